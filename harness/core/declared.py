"""Declared targets: a tensor-in, tensor-out function judged from a few lines of ``pyproject.toml``.

    [tool.harness.targets.row_softmax]
    oracle = "softmax_ref:softmax_slow"                  # module:function, imported from the project root
    inputs = { x = { shape = ["rows", "cols"], dtype = ["float32", "bfloat16"] } }
    params = { rows = { min = 1, max = 4096 }, cols = [1, 7, 64, 1000, 4096] }
    values = ["randn", "huge", "tiny", "zeros", "inf_nan"]
    compare = ["allclose(rtol=1e-5, atol=1e-6)", "exact"]
    sizes = { "256x4096" = { rows = 256, cols = 4096 }, "4096x4096" = { rows = 4096, cols = 4096 } }

Inputs are passed positionally in the order declared; a dim is a param, an integer or a product such as
``"groups*group_size"``; ``kwargs = ["group_size"]`` passes params by keyword.  Every case carries its
params plus ``dtype`` and ``values`` (the family, ``harness.core.values``), so ``--where`` and failure patterns
speak of them.  Named cases sweep each param over edge values (1, odd sizes, powers of two and their
neighbours) at small sizes, and every dtype and value family at a typical shape; property cases draw every
param (ranges capped at 256 per dim, to stay quick).  The comparisons are ``harness.core.compare``'s; the
first listed is the default policy.  Optional: ``outputs`` (shapes and dtypes, for bytes moved: default,
one output like the first input), ``growth`` (the params a size ladder grows: default, the first input's
first dim), ``raises`` (the oracle's precondition errors: default AssertionError), ``function_name``,
``source``.  ``docs/adding-a-target.md`` is the tutorial.

A declared target travels to runners as data: its reference carries the checked declaration, so a runner
builds exactly the inputs the judge checked, whatever the file says later.  Runs in the judge and runners.
"""

from __future__ import annotations

import builtins
import importlib
import json
import math
import re
from typing import Any, Callable, Mapping

from harness.core import compare, values
from harness.core.domain import Domain
from harness.core.target import Call, Case, Comparison, Target

MODULE = __name__  # a declared target's ``ref`` is "harness.core.declared:" + its declaration as JSON
KEYS = ("oracle", "inputs", "params", "kwargs", "values", "compare", "sizes", "outputs", "growth", "raises",
        "function_name", "source")
NAMED_ELEMENTS = 1 << 16  # the largest input of a named case (elements): verification stays quick
TYPICAL = 64  # a range param's value where another param is swept
PROPERTY_CAP = 256  # a range param's largest value in property cases
EDGES = (1, 2, 3, 7, 8, 31, 32, 33, 127, 128, 129, 1000)
_DIM = re.compile(r"^[A-Za-z_]\w*(\*[A-Za-z_0-9]\w*)*$")


class DeclarationError(ValueError):
    """A declaration that cannot be judged from, in one line naming the key."""


def _dims(shape: Any, where: str, params: Mapping[str, Any]) -> list[Any]:
    if not isinstance(shape, list) or not shape:
        raise DeclarationError(f"{where}.shape must be a list of dims (params, integers or products like \"a*b\")")
    for dim in shape:
        if isinstance(dim, int) and not isinstance(dim, bool) and dim >= 0:
            continue
        if not isinstance(dim, str) or not _DIM.match(dim.replace(" ", "")):
            raise DeclarationError(f"{where}.shape: {dim!r} is not a param, an integer or a product of them")
        for factor in dim.replace(" ", "").split("*"):
            if not factor.isdigit() and factor not in params:
                raise DeclarationError(f"{where}.shape: {factor!r} is not a declared param ({', '.join(params)})")
    return shape


def _size(dim: Any, params: Mapping[str, Any]) -> int:
    if isinstance(dim, int):
        return dim
    return math.prod(int(f) if f.isdigit() else int(params[f]) for f in dim.replace(" ", "").split("*"))


def _shape(dims: list[Any], params: Mapping[str, Any]) -> tuple[int, ...]:
    return tuple(_size(d, params) for d in dims)


def _choices(spec: Any, where: str) -> tuple[Any, ...] | tuple[int, int]:
    if isinstance(spec, dict):
        low, high = spec.get("min"), spec.get("max")
        if set(spec) != {"min", "max"} or not all(isinstance(v, int) and not isinstance(v, bool) for v in (low, high)) \
                or not 0 <= low <= high:
            raise DeclarationError(f"{where} must be {{ min = A, max = B }} with integers 0 <= A <= B")
        return (low, high)
    if isinstance(spec, list) and spec and all(isinstance(v, (int, float, str, bool)) for v in spec):
        return tuple(spec)
    if isinstance(spec, (int, float, str)) and not isinstance(spec, bool):
        return (spec,)
    raise DeclarationError(f"{where} must be a value, a list of values or {{ min = A, max = B }}")


def _strings(value: Any, where: str) -> list[str]:
    found = [value] if isinstance(value, str) else value
    if not isinstance(found, list) or not found or not all(isinstance(v, str) and v for v in found):
        raise DeclarationError(f"{where} must be a string or a list of strings")
    return found


def _builtin_error(name: str, where: str) -> type[BaseException]:
    found = getattr(builtins, name, None)
    if not (isinstance(found, type) and issubclass(found, BaseException)):
        raise DeclarationError(f"{where} raises: {name!r} is not a built-in exception")
    return found


def _outputs(outputs: Any, where: str, params: Mapping[str, Any]) -> list[dict[str, Any]]:
    if not isinstance(outputs, list) or not all(isinstance(o, dict) and set(o) <= {"shape", "dtype"} for o in outputs):
        raise DeclarationError(f"{where} outputs must be a list of {{ shape = [...], dtype = ... }}")
    for i, out in enumerate(outputs):
        _dims(out.get("shape"), f"{where} outputs[{i}]", params)
        try:
            values.dtype_of(out["dtype"]) if "dtype" in out else None
        except (ValueError, TypeError) as exc:
            raise DeclarationError(f"{where} outputs[{i}].dtype: {exc}") from None
    return outputs


class DeclaredTarget(Target):
    """A target made from a declaration (see the module's docstring); ``check`` has read every key."""

    def __init__(self, name: str, declaration: Mapping[str, Any]) -> None:
        where = f"[tool.harness.targets.{name}]"
        unknown = set(declaration) - set(KEYS)
        if unknown:
            raise DeclarationError(f"{where} has unknown key(s) {', '.join(sorted(unknown))}; known: {', '.join(KEYS)}")
        self.name, self.declaration = name, dict(declaration)
        self.ref = f"{MODULE}:{json.dumps({'name': name, **self.declaration}, sort_keys=True)}"
        oracle = declaration.get("oracle")
        if not isinstance(oracle, str) or ":" not in oracle:
            raise DeclarationError(f"{where} oracle must be \"module:function\"")
        self.oracle_ref = oracle
        params = declaration.get("params", {})
        if not isinstance(params, dict):
            raise DeclarationError(f"{where} params must be a table of name = values")
        self.params = {k: _choices(v, f"{where} params.{k}") for k, v in params.items()}
        self.ranges = {k for k, v in params.items() if isinstance(v, dict)}
        inputs = declaration.get("inputs")
        if not isinstance(inputs, dict) or not inputs:
            raise DeclarationError(f"{where} inputs must be a table of name = {{ shape = [...], dtype = ... }}")
        self.inputs = {k: (_dims((v or {}).get("shape") if isinstance(v, dict) else None, f"{where} inputs.{k}", params),
                           _strings((v or {}).get("dtype", "float32") if isinstance(v, dict) else None,
                                    f"{where} inputs.{k}.dtype")) for k, v in inputs.items()}
        # the dtype a case carries: the choices of the inputs that have several, else the first input's
        self.dtypes = list(dict.fromkeys(d for _, ds in self.inputs.values() if len(ds) > 1 for d in ds)) or [
            next(iter(self.inputs.values()))[1][0]]
        self.families = _strings(declaration.get("values", "randn"), f"{where} values")
        self.kwargs = _strings(declaration["kwargs"], f"{where} kwargs") if "kwargs" in declaration else []
        for key in self.kwargs:
            if key not in self.params:
                raise DeclarationError(f"{where} kwargs: {key!r} is not a declared param")
        try:
            values.check(self.families, [d for _, ds in self.inputs.values() for d in ds])
            self.comparisons = {p.name: p for p in map(compare.parse, _strings(declaration.get("compare", "exact"),
                                                                                  f"{where} compare"))}
        except ValueError as exc:
            raise DeclarationError(f"{where} {exc}") from None
        self.policies = tuple(self.comparisons)
        self.policy_text = {k: p.describe for k, p in self.comparisons.items()}
        first_dim = next(iter(self.inputs.values()))[0][0]
        self.growth_params = tuple(_strings(declaration.get("growth", []), f"{where} growth")) if declaration.get(
            "growth") else tuple(f for f in str(first_dim).split("*") if f in self.params)[:1]
        if unknown_growth := set(self.growth_params) - set(self.params):
            raise DeclarationError(f"{where} growth: {', '.join(sorted(unknown_growth))} is not a declared param")
        self.precondition_errors = tuple(_builtin_error(n, where) for n in _strings(declaration.get(
            "raises", "AssertionError"), f"{where} raises"))
        self.function_name = str(declaration.get("function_name") or oracle.rpartition(":")[2])
        self.source = str(declaration.get("source") or oracle)
        self.sizes_help = ("sizes to time: " + ", ".join(self._declared_sizes(where)) + ", N (the first size's "
                           + (self.growth_params[0] if self.growth_params else "growth param") + "), or "
                           + ",".join(f"{k}=N" for k in self.params) + " (params not given: the first size's)")
        self.outputs = _outputs(declaration.get("outputs") or [{"shape": next(iter(self.inputs.values()))[0]}],
                                where, params)
        self._sizes = self._declared_sizes(where)

    def _declared_sizes(self, where: str) -> dict[str, dict[str, Any]]:
        sizes = self.declaration.get("sizes")
        if sizes is None:  # one size: every param at its largest value
            return {"largest": {k: max(v) for k, v in self.params.items()}}
        if not isinstance(sizes, dict) or not sizes:
            raise DeclarationError(f"{where} sizes must be a table of name = {{ param = value, ... }}")
        first = {k: max(v) for k, v in self.params.items()}
        return {name: {**first, **self._check_params(p, f"{where} sizes.{name}")} for name, p in sizes.items()}

    def _check_params(self, given: Any, where: str) -> dict[str, Any]:
        if not isinstance(given, dict) or set(given) - set(self.params):
            raise DeclarationError(f"{where} must set declared params only ({', '.join(self.params)})")
        return dict(given)

    # -- the oracle ------------------------------------------------------------------------------------
    @property
    def oracle(self) -> Callable[..., Any]:  # type: ignore[override]
        """The declared function itself (so a profile shows its own lines)."""
        module, _, attr = self.oracle_ref.partition(":")
        fn = getattr(importlib.import_module(module), attr, None)
        if not callable(fn):
            raise DeclarationError(f"[tool.harness.targets.{self.name}] oracle: no function {attr!r} in {module}")
        return fn

    # -- cases -----------------------------------------------------------------------------------------
    @property
    def source_refs(self) -> tuple[str, ...]:
        return (self.ref, self.oracle_ref)

    def _case(self, name: str, family: str, params: Mapping[str, Any], seed: int, dtype: str = "",
              fill: str = "") -> Case:
        return Case(name, family, {**params, "dtype": dtype or self.dtypes[0], "values": fill or self.families[0]}, seed)

    def _typical(self) -> dict[str, Any]:
        """Where the other params sit while one is swept: ranges near ``TYPICAL`` (the largest halved until
        the input leaves room for a sweep), lists at their first value."""
        typical = {k: (min(max(TYPICAL, v[0]), v[1]) if k in self.ranges else v[0]) for k, v in self.params.items()}
        while self._elements(typical) > NAMED_ELEMENTS // 4:
            shrinkable = [k for k in self.ranges if typical[k] > self.params[k][0]]
            if not shrinkable:
                break
            key = max(shrinkable, key=lambda k: typical[k])
            typical[key] = max(self.params[key][0], typical[key] // 2)
        return typical

    def _tensors(self, params: Mapping[str, Any]) -> list[tuple[str, tuple[int, ...], str]]:
        """Each input's name, shape and dtype for a case's params (an input with a choice of dtypes takes
        the case's ``dtype``)."""
        return [(name, _shape(dims, params), params.get("dtype") if len(dtypes) > 1 else dtypes[0])
                for name, (dims, dtypes) in self.inputs.items()]

    def _elements(self, params: Mapping[str, Any]) -> int:
        return max(math.prod(shape) for _, shape, _ in self._tensors(params))

    def named_cases(self) -> list[Case]:
        typical, found, seen = self._typical(), [], set()

        def add(prefix: str, params: dict, dtype: str = "", fill: str = "") -> None:
            case = self._case("", "named", params, len(found), dtype, fill)
            key = json.dumps(case.params, sort_keys=True)
            if key in seen or self._elements(params) > NAMED_ELEMENTS:
                return
            seen.add(key)
            shape = "_".join(f"{k}{v}" for k, v in params.items())
            found.append(Case(f"{prefix}_{shape}" if shape else prefix, case.family, case.params, case.seed))

        for dtype in self.dtypes:
            for fill in self.families:
                add(f"{fill}_{dtype or 'default'}", typical, dtype, fill)
        for key, choices in self.params.items():
            low, high = (choices[0], choices[-1]) if key in self.ranges else (None, None)
            swept = [v for v in EDGES if low <= v <= high] + [low, high] if key in self.ranges else list(choices)
            for value in sorted(set(swept), key=lambda v: (str(type(v)), v)):
                add(f"edge_{key}", {**typical, key: value})
        return found

    def property_strategy(self, domain: Domain = Domain()) -> Any:
        from hypothesis import strategies as st

        drawn = {k: domain.restrict(k, st.integers(v[0], min(v[1], max(v[0], PROPERTY_CAP))) if k in self.ranges
                                    else st.sampled_from(v)) for k, v in self.params.items()}
        drawn["dtype"] = domain.restrict("dtype", st.sampled_from(self.dtypes))
        drawn["values"] = domain.restrict("values", st.sampled_from(self.families))
        return st.fixed_dictionaries(drawn)

    def build(self, case: Case, device: str) -> Call:
        p = case.params
        tensors = tuple(values.fill(p.get("values", self.families[0]), shape, dtype, case.seed * 7919 + i, device)
                        for i, (_, shape, dtype) in enumerate(self._tensors(p)))
        return Call(tensors, {k: p[k] for k in self.kwargs})

    def describe(self, case: Case) -> str:
        p = case.params
        shapes = ", ".join(f"{name}{shape} {dtype}" for name, shape, dtype in self._tensors(p))
        extra = "".join(f", {k}={p[k]}" for k in self.kwargs)
        return f"{shapes} {p.get('values')}{extra}, seed={case.seed}"

    # -- comparison ------------------------------------------------------------------------------------
    def compare(self, call: Call, expected: Any, got: Any, policy: str) -> Comparison:
        return compare.compare(self.comparisons[policy], expected, got)

    # -- timing ----------------------------------------------------------------------------------------
    def case_bytes(self, case: Case) -> int:
        p = case.params
        tensors = [(shape, dtype) for _, shape, dtype in self._tensors(p)]
        tensors += [(_shape(out["shape"], p), out.get("dtype") or p["dtype"]) for out in self.outputs]  # (declared,
        # else one output like the first input)
        return sum(math.prod(shape) * values.dtype_of(dtype).itemsize for shape, dtype in tensors)

    def bytes_moved(self, call: Call) -> int:
        return 0  # ``case_bytes`` answers from the params (a call alone does not say its output's size)

    def sizes(self, device: str, quick: bool) -> list[Case]:
        ladder = [self._case(name, "size", p, 0) for name, p in self._sizes.items()]
        return ladder[:1] if quick else ladder

    def parse_size(self, text: str) -> Case:
        text = text.strip()
        if text in self._sizes:
            return self._case(text, "size", self._sizes[text], 0)
        first = next(iter(self._sizes.values()))
        if text.isdigit() and int(text) > 0 and self.growth_params:  # N: the first size grown to N (e.g. tokens)
            return self._case(text, "size", {**first, self.growth_params[0]: int(text)}, 0)
        try:
            given = dict(part.split("=", 1) for part in text.split(",") if part)
            params = {k: type(first[k])(v) if isinstance(first[k], (int, float)) else v for k, v in given.items()}
            return self._case(text, "size", {**first, **self._check_params(params, f"size {text!r}")}, 0)
        except (ValueError, KeyError, DeclarationError):
            raise ValueError(f"bad size {text!r}: {self.sizes_help}") from None


def from_ref(declaration: str) -> DeclaredTarget:
    """The target a declared reference carries (how a runner gets the judge's checked declaration)."""
    data = json.loads(declaration)
    name = data.pop("name")
    return DeclaredTarget(name, data)


def declared_targets(config: Mapping[str, Any]) -> dict[str, DeclaredTarget]:
    """Every ``[tool.harness.targets.NAME]`` of a project's checked ``[tool.harness]`` table, by name."""
    tables = config.get("targets", {})
    if not isinstance(tables, dict):
        raise DeclarationError("[tool.harness.targets] must hold one table per target")
    found = {}
    for name, declaration in tables.items():
        if not isinstance(declaration, dict):
            raise DeclarationError(f"[tool.harness.targets.{name}] must be a table")
        found[name] = DeclaredTarget(name, declaration)
    return found
