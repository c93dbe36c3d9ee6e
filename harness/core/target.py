"""The contract between the generic harness and one function under optimisation (a *target*).

Everything particular to a target lives next to its oracle in ``oracles/<name>.py``, which exposes
``TARGET = SomeTarget()``: the oracle function, its named case families, a hypothesis strategy for
property cases, how inputs are built from a case's plain-data parameters, how two outputs are compared
under each policy, how many bytes a call must move, and which sizes to time.  ``harness/`` only calls
these methods, so a second target is one new file in ``oracles/`` plus its candidates.

Cases are plain data (name, family, JSON-able params, seed) so that a result can name them, a report can
print them and ``export-tests`` can rebuild them without re-running anything.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import importlib
import pkgutil
from pathlib import Path
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

from harness.core.domain import Domain


TIMING_FAMILY = "timing size"  # a size a candidate is timed at, verified like a named case (``verify``)


@dataclass(frozen=True)
class Case:
    """One input to check or time, described as data.  ``seed`` picks the random values."""

    name: str
    family: str
    params: Mapping[str, Any]
    seed: int = 0


@dataclass(frozen=True)
class Call:
    """The positional and keyword arguments of one call of the target."""

    args: tuple
    kwargs: Mapping[str, Any] = field(default_factory=dict)

    def tensors(self) -> list[Any]:
        """The tensor arguments (what is hashed to compare inputs and to catch a call that writes them)."""
        import torch

        return [a for a in (*self.args, *self.kwargs.values()) if isinstance(a, torch.Tensor)]

    def map(self, fn: Callable[[Any], Any]) -> "Call":
        """The same call with ``fn`` applied to every argument, positional and keyword."""
        return Call(tuple(fn(a) for a in self.args), {k: fn(v) for k, v in self.kwargs.items()})


def map_tensors(fn: Callable[[Any], Any], value: Any) -> Any:
    """``value`` (a tensor, or tuples and lists of tensors and plain values) with ``fn`` applied to every
    tensor in it, the structure kept."""
    import torch

    if isinstance(value, torch.Tensor):
        return fn(value)
    if isinstance(value, (tuple, list)):
        return type(value)(map_tensors(fn, v) for v in value)
    return value


@dataclass(frozen=True)
class Difference:
    """One located difference between expected and actual output, already decoded for humans."""

    segment: str
    where: str
    expected: str
    got: str
    note: str = ""

    def describe(self) -> str:
        note = f" ({self.note})" if self.note else ""
        return f"{self.segment} at {self.where}: expected {self.expected}, got {self.got}{note}"


@dataclass(frozen=True)
class Comparison:
    """The verdict of comparing one output against the oracle's under one policy."""

    ok: bool
    summary: str  # one line, e.g. "scales: 3/64 differ; codes: 41/8192 differ (max 1 ulp)"
    differences: tuple[Difference, ...] = ()

    @staticmethod
    def passed() -> "Comparison":
        return Comparison(ok=True, summary="identical")


class Target(ABC):
    """Base class of a target.  Subclasses in ``oracles/`` must say what the function is (``oracle``), how a
    case becomes its inputs (``build``) and when two outputs are the same (``compare``); everything else has a
    default they override where their function needs it.  ``tests/test_target_conformance.py`` checks
    every discovered target against what the harness assumes of one."""

    name: str = ""  # short identifier, e.g. the original function's name without its underscore
    ref: str = ""  # "module:ATTRIBUTE" where it was found, so that runners load the same target
    function_name: str = ""  # the original function's name, used in report titles
    source: str = ""  # where the original lives, used in report headlines
    policies: tuple[str, ...] = ("exact",)
    # What each policy accepts, in one line for the report (the target's words, not the harness's).
    policy_text: Mapping[str, str] = {"exact": "outputs identical"}
    # Kinds of work a profiled line is counted under: (kind, regex over the statement's source), first match
    # wins; a target adds the words of its own operations in front of these generic ones.
    line_kinds: tuple[tuple[str, str], ...] = (
        ("loop header", r"^\s*for\b"),
        ("allocation", r"torch\.(empty|zeros|ones|full)\b"),
        ("copy / store", r"(copy_|\[:\]\s*=|\]\s*=)"),
        ("slicing / indexing", r"\[.*:.*\]"),
    )
    # Kinds named differently on one device, e.g. {"cpu": {"kernel launch": "C call"}} (see ``kinds_on``).
    device_kind_names: Mapping[str, Mapping[str, str]] = {}
    # Families of named cases each timed once more and shown as annotated regression tests in the report.
    annotated_families: tuple[str, ...] = ()
    # The params a ladder of sizes grows (e.g. rows): sizes differing only in these are one shape family,
    # drawn as one line in a chart; sizes of other shapes are never joined to it.
    growth_params: tuple[str, ...] = ()
    sizes_help: str = "sizes to time, in the target's own notation"
    # A target that inverts another one's output names it here; round trips are then checked for every
    # pair of passing candidates (see ``round_trip_cases`` and ``round_trip_check``).
    inverse_of: str | None = None
    round_trip_text: str = ""  # the round-trip property and its bound, in words, for the report
    # Exception types the oracle raises for violated preconditions: a candidate must raise the same type.
    precondition_errors: tuple[type[BaseException], ...] = (AssertionError,)
    # Timed calls run on inputs with fresh content (``fresh``): each element taken from somewhere in a valid
    # input of the same layout.  Set False where an input is valid only as a whole (sorted, a permutation).
    fresh_timing_inputs: bool = True

    @property
    def source_refs(self) -> tuple[str, ...]:
        """The ``module:attribute`` references whose sources a run snapshots for its runners: the target's
        own module (a declared target adds its oracle's)."""
        return (self.ref,)

    def kinds_on(self, device: str) -> tuple[tuple[str, str], ...]:
        """``line_kinds`` in the words of ``device`` (``device_kind_names``)."""
        names = self.device_kind_names.get(device, {})
        return tuple((names.get(kind, kind), pattern) for kind, pattern in self.line_kinds)

    # -- the oracle -------------------------------------------------------------------------------
    @abstractmethod
    def oracle(self, *args: Any, **kwargs: Any) -> Any:
        """The original function (as ``staticmethod(f)``, so a profile shows the function's own lines)."""

    # -- cases ------------------------------------------------------------------------------------
    @abstractmethod
    def build(self, case: Case, device: str) -> Call:
        """Materialise a case's inputs on ``device``; deterministic in (params, seed)."""

    def named_cases(self) -> list[Case]:
        """Explicit regression cases (seed document, edge and error cases)."""
        return []

    def property_strategy(self, domain: Domain = Domain()) -> Any | None:
        """A hypothesis strategy of case params for property-based cases, or None.  It should draw each
        param inside ``domain`` (``Domain.restrict``); the verifier filters what is still outside."""
        return None

    def describe(self, case: Case) -> str:
        """A one-line human description of a case's input (shape, dtype, values...)."""
        return ", ".join(f"{k}={v}" for k, v in case.params.items()) + f", seed={case.seed}"

    # -- comparison -------------------------------------------------------------------------------
    def check_output(self, call: Call, got: Any) -> str | None:
        """Return why ``got`` is not even an output of the right type/shape/dtype, or None."""
        return None

    @abstractmethod
    def compare(self, call: Call, expected: Any, got: Any, policy: str) -> Comparison:
        """Whether ``got`` passes for the oracle's ``expected`` on ``call`` under ``policy`` (one of
        ``policies``), and if not, the differences in the target's own words."""

    # -- timing -----------------------------------------------------------------------------------
    def bytes_moved(self, call: Call) -> int:
        """The fewest bytes one call must move: inputs read once plus output written once."""
        return 0

    def case_bytes(self, case: Case) -> int:
        """``bytes_moved`` of a case, from its params where a target can say so without building it
        (the default builds it on the CPU)."""
        return self.bytes_moved(self.build(case, "cpu"))

    def size_family(self, case: Case) -> str:
        """The shape family of a timing size: its params other than ``growth_params``."""
        return ", ".join(f"{k}={v}" for k, v in case.params.items() if k not in self.growth_params)

    def sizes(self, device: str, quick: bool) -> list[Case]:
        """The default ladder of sizes to time."""
        return []

    def parse_size(self, text: str) -> Case:
        """Turn a ``--sizes`` entry into a case; raise ValueError with a one-line reason."""
        raise ValueError(f"target {self.name!r} takes no --sizes")

    # -- round trips (only for a target with ``inverse_of``) -----------------------------------------
    def round_trip_cases(self) -> list[Case]:
        """Cases *of the forward target* whose outputs this target's candidates are given back."""
        return []

    def round_trip_call(self, forward: Call, forward_output: Any) -> Call:
        """This target's call on the forward target's output for the call ``forward``."""
        raise NotImplementedError

    def round_trip_check(self, forward: Call, output: Any) -> Comparison:
        """Whether ``output`` (this target's answer on the forward output) gives ``forward``'s input back
        within the property's bound."""
        raise NotImplementedError


class TargetError(Exception):
    """A target could not be found or loaded (a user mistake, reported in one line)."""


def discover_targets(package: str = "oracles") -> dict[str, Target]:
    """Every ``TARGET`` defined by a public module of the ``oracles`` package, and every target the active
    project declares in ``[tool.harness.targets]`` (``harness.core.declared``), by name."""
    from harness.core import declared, project

    try:  # the project's own declarations (not those of another package a test discovers)
        declarations = declared.declared_targets(project.active_config()) if package == "oracles" else {}
    except declared.DeclarationError as exc:
        raise TargetError(str(exc)) from None
    found: dict[str, Target] = {}
    try:
        pkg = importlib.import_module(package)
    except ModuleNotFoundError as exc:
        if exc.name != package:
            raise
        if declarations:
            return dict(declarations)
        raise TargetError(f"no {package}/ package here ({Path.cwd()}): run harness from a project's root (a folder "
                          f"with {package}/ and candidates/, or below a pyproject.toml with [tool.harness])") from None
    for info in sorted(pkgutil.iter_modules(pkg.__path__), key=lambda i: i.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{package}.{info.name}")
        target = getattr(module, "TARGET", None)
        if isinstance(target, Target):
            if target.name in declarations:
                raise TargetError(f"target {target.name!r} is declared in pyproject.toml and defined in "
                                  f"{module.__name__}: rename one of them")
            target.ref = f"{module.__name__}:TARGET"
            found[target.name] = target
    return {**found, **declarations}


def load_target(ref: str) -> Target:
    """The target a ``module:ATTRIBUTE`` reference names (how a runner finds the judge's target)."""
    module, _, attr = ref.partition(":")
    from harness.core import declared

    if module == declared.MODULE:  # the declaration itself, as the judge checked it
        return declared.from_ref(attr)
    target = getattr(importlib.import_module(module), attr, None)
    if not isinstance(target, Target):
        raise TargetError(f"{ref} is not a target")
    target.ref = ref
    return target


def get_target(name: str | None, targets: Mapping[str, Target] | None = None) -> Target:
    """The target called ``name``; with no name, the project's only target (several: a usage error)."""
    targets = discover_targets() if targets is None else targets
    if not targets:
        raise TargetError("no target found in oracles/")
    if name is None:
        if len(targets) > 1:
            raise TargetError(f"this project has {len(targets)} targets ({', '.join(targets)}): choose one with --target")
        return next(iter(targets.values()))
    if name not in targets:
        raise TargetError(f"unknown target {name!r}; known: {', '.join(targets)}")
    return targets[name]


def in_run_order(targets: Mapping[str, Target]) -> list[Target]:
    """Targets with each inverse after the target it inverts (so round trips have forward outputs)."""
    order: list[Target] = []
    def visit(t: Target, seen: tuple[str, ...] = ()) -> None:
        if t in order or t.name in seen:
            return
        if t.inverse_of in targets:
            visit(targets[t.inverse_of], (*seen, t.name))
        order.append(t)
    for t in targets.values():
        visit(t)
    return order

