"""Finding candidates without running them, and the one place where a spec becomes a function.

A candidate is a plain function with the oracle's signature.  In ``candidates/*.py`` a function becomes
one by being marked with ``@candidate`` (or ``name = candidate(existing_function)``); outside the repo a
candidate is named by a spec: ``path/to/file.py:function`` or ``package.module:function``; the baseline
may also be ``oracle:<target>``.  A candidate's docstring is its explanation in the report.

Two halves, for two processes:
- The judge finds candidates and checks specs by *reading* their source (``discover``, ``describe``):
  it parses the file with ``ast`` and never imports it, so ``harness list`` and every other command can
  name candidates without running a line of them.  ``@candidate`` arguments must therefore be literals.
- A runner turns its one spec into a function (``resolve``), importing it.
"""

from __future__ import annotations

import ast
import importlib
import importlib.machinery
import importlib.util
import inspect
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

from harness.core.domain import Domain, DomainError

MARK = "__harness_candidate__"
ORACLE_PREFIX = "oracle:"


class SpecError(Exception):
    """A candidate spec that cannot be loaded (a user mistake, reported in one line)."""


@dataclass(frozen=True)
class Mark:
    name: str
    target: str | None  # None: the project's only target
    doc: str | None


def candidate(fn: Callable | None = None, *, name: str | None = None, target: str | None = None,
              doc: str | None = None, supports: Any = None) -> Any:
    """Mark ``fn`` as a candidate of the module that calls this (usable as ``@candidate`` or
    ``@candidate(name=..., target=..., doc=..., supports=...)``, with literal arguments).  ``supports`` is
    the domain it handles, read by the judge from the source (see ``domain``): a mapping of parameter to
    allowed values, e.g. ``{"dtype": ("bfloat16",), "d": (576,)}``, or the text ``--where`` takes.  The
    mark is kept per module, so marking a function imported from elsewhere does not make it a candidate of
    every module that imports it."""
    module = sys._getframe(1).f_globals.get("__name__", "")

    def mark(f: Callable) -> Callable:
        marks = f.__dict__.setdefault(MARK, {})
        marks[module] = Mark(name or f.__name__, target, doc)
        return f

    return mark(fn) if fn is not None else mark


# -- the judge's half: reading, not importing ---------------------------------------------------------

@dataclass(frozen=True)
class Described:
    """A candidate as the judge knows it: from its source text, never from running it."""

    name: str
    spec: str
    doc: str
    target: str | None = None  # the target its mark names (None: the project's only target)
    signature: "Signature | None" = None  # its parameters, where the source says (a plain def)
    supports: Domain = Domain()  # the inputs it declares it handles (``@candidate(supports=...)``)
    wraps: str | None = None  # "module:function" where it marks a function imported from elsewhere

    def mismatch(self, expected: inspect.Signature) -> str | None:
        """Why a call the way the target calls its oracle — the first parameter by position, the others by
        keyword — cannot bind to this function, or None (also when its source does not say)."""
        sig = self.signature
        if sig is None:
            return None
        missing = [] if sig.positional >= 1 or sig.varargs else ["a first positional parameter"]
        keywords = list(expected.parameters)[1:]
        if not sig.varkw:
            missing += [name for name in keywords if name not in sig.keywords]
        extra = [name for name in sig.required if name not in keywords and name != sig.first]
        if not missing and not extra:
            return None
        why = "; ".join(filter(None, [f"missing {', '.join(missing)}" if missing else "",
                                      f"requires {', '.join(extra)}, which the target never passes" if extra else ""]))
        plain = expected.replace(parameters=[p.replace(annotation=inspect.Parameter.empty)
                                             for p in expected.parameters.values()],
                                 return_annotation=inspect.Signature.empty)
        return f"{self.spec} does not take the target's arguments ({why}): expected {self.spec.rsplit(':', 1)[-1]}{plain}"


@dataclass(frozen=True)
class Signature:
    """A function's parameters as its ``def`` line gives them."""

    positional: int  # parameters that can be passed by position
    keywords: tuple[str, ...]  # names that can be passed by keyword
    required: tuple[str, ...]  # parameters without a default, in order
    varargs: bool
    varkw: bool
    first: str | None = None  # the first positional parameter: the target passes its input there

    @staticmethod
    def of(node: ast.FunctionDef | ast.AsyncFunctionDef) -> "Signature":
        a = node.args
        positional = [*a.posonlyargs, *a.args]
        first_default = len(positional) - len(a.defaults)
        required = [p.arg for p in positional[:first_default]]
        required += [p.arg for p, d in zip(a.kwonlyargs, a.kw_defaults) if d is None]
        return Signature(positional=len(positional), keywords=tuple(p.arg for p in [*a.args, *a.kwonlyargs]),
                         required=tuple(required), varargs=a.vararg is not None, varkw=a.kwarg is not None,
                         first=positional[0].arg if positional else None)


def candidates_dir() -> Path:
    """The ``candidates`` package's folder, found without importing the package."""
    spec = importlib.util.find_spec("candidates")
    if spec is None or not spec.submodule_search_locations:
        return Path.cwd() / "candidates"
    return Path(list(spec.submodule_search_locations)[0])


def _display(path: Path) -> str:
    """A file as specs name it: relative to the project root (so a result names the same candidate from
    any folder of the project), else to the current folder, else absolute."""
    from harness.core.project import active_root

    for base in filter(None, (active_root(), Path.cwd().resolve())):
        try:
            return str(path.resolve().relative_to(base))
        except ValueError:
            continue
    return str(path)


def _parse(path: Path, shown: str) -> ast.Module:
    try:
        return ast.parse(path.read_text(encoding="utf-8"), filename=shown)
    except SyntaxError as exc:
        raise SpecError(f"cannot import {shown}: SyntaxError: {exc.msg} (line {exc.lineno})") from None
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise SpecError(f"cannot read {shown}: {exc}") from None


def _is_candidate(node: ast.expr) -> bool:
    func = node.func if isinstance(node, ast.Call) else node
    return (isinstance(func, ast.Name) and func.id == "candidate") or (
        isinstance(func, ast.Attribute) and func.attr == "candidate")


def _literal_keywords(call: ast.expr, shown: str) -> dict[str, Any]:
    if not isinstance(call, ast.Call):
        return {}
    out: dict[str, Any] = {}
    for kw in call.keywords:
        if kw.arg in ("name", "target", "doc"):
            if not (isinstance(kw.value, ast.Constant) and isinstance(kw.value.value, (str, type(None)))):
                raise SpecError(f"{shown} line {call.lineno}: candidate({kw.arg}=...) must be a literal string")
            out[kw.arg] = kw.value.value
        elif kw.arg == "supports":
            try:
                out["supports"] = Domain.of(ast.literal_eval(kw.value))
            except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError) as exc:
                why = exc if isinstance(exc, DomainError) else "must be a literal mapping or text (the judge reads it, never runs it)"
                raise SpecError(f"{shown} line {call.lineno}: candidate(supports=...) {why}") from None
    return out


def _bindings(tree: ast.Module) -> dict[str, ast.stmt]:
    """Every name bound at a module's top level, to the statement that binds it."""
    names: dict[str, ast.stmt] = {}
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names[node.name] = node
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            for target in (node.targets if isinstance(node, ast.Assign) else [node.target]):
                if isinstance(target, ast.Name):
                    names[target.id] = node
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            for alias in node.names:
                names[(alias.asname or alias.name).split(".")[0]] = node
    return names


def _describe(attr: str, node: ast.stmt, defs: dict[str, ast.stmt], spec: str, shown: str,
              marked_only: bool) -> Described | None:
    """The candidate ``attr`` bound by ``node``, if it is one (or if ``marked_only`` is false, any function)."""
    mark: ast.expr | None = None
    doc = ""
    signature = None
    wraps = None
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
        mark = next((d for d in node.decorator_list if _is_candidate(d)), None)
        doc = ast.get_docstring(node) or ""
        others = [d for d in node.decorator_list if not _is_candidate(d)]
        signature = None if others else Signature.of(node)  # another decorator may change what it takes
    elif isinstance(node, ast.Assign) and isinstance(node.value, ast.Call) and _is_candidate(node.value):
        mark = node.value
        wrapped = node.value.args[0] if node.value.args else None
        if isinstance(wrapped, ast.Name) and isinstance(defs.get(wrapped.id), (ast.FunctionDef, ast.AsyncFunctionDef)):
            doc = ast.get_docstring(defs[wrapped.id]) or ""
        wraps = _imported(wrapped, defs)
    if mark is None and marked_only:
        return None
    kw = _literal_keywords(mark, shown) if mark is not None else {}
    return Described(name=kw.get("name") or attr, spec=spec, doc=inspect.cleandoc(kw.get("doc") or doc),
                     target=kw.get("target"), signature=signature, supports=kw.get("supports", Domain()),
                     wraps=wraps)


def _imported(node: ast.expr | None, defs: dict[str, ast.stmt]) -> str | None:
    """``module:function`` for a name bound by ``from module import function [as name]`` (absolute imports)."""
    bound = defs.get(node.id) if isinstance(node, ast.Name) else None
    if not isinstance(bound, ast.ImportFrom) or bound.level or not bound.module:
        return None
    return next((f"{bound.module}:{a.name}" for a in bound.names if (a.asname or a.name) == node.id), None)


def candidate_files(directory: Path | None = None) -> list[Path]:
    """The files of ``directory`` (default: the ``candidates`` package) that may hold candidates."""
    return [p for p in sorted((directory or candidates_dir()).glob("*.py")) if not p.name.startswith("_")]


def discover(target: str, targets: Sequence[str], directory: Path | None = None,
             files: list[Path] | None = None) -> list[Described]:
    """Every candidate marked for ``target`` in ``files`` (default: those of ``directory``), read from source.
    A mark must name one of ``targets`` (the project's); it may leave the target out only when there is one."""
    found: list[Described] = []
    for path in files if files is not None else candidate_files(directory):
        shown = _display(path)
        tree = _parse(path, shown)
        defs = _bindings(tree)
        for attr, node in defs.items():
            described = _describe(attr, node, defs, f"{shown}:{attr}", shown, marked_only=True)
            if described is None:
                continue
            if described.target is None and len(targets) > 1:
                raise SpecError(f"{shown}:{attr} is marked @candidate without a target, and this project has "
                                f"{len(targets)}: say which with @candidate(target=...), one of {', '.join(targets)}")
            if described.target is not None and described.target not in targets:
                raise SpecError(f"{shown}:{attr}: @candidate(target={described.target!r}) names no target of this "
                                f"project; known: {', '.join(targets)}")
            if (described.target or targets[0]) == target:
                found.append(described)
    return found


def _split(spec: str) -> tuple[str, str]:
    where, sep, attr = spec.rpartition(":")
    if not sep or not where or not attr or not attr.isidentifier():
        raise SpecError(f"bad candidate spec {spec!r}: expected path/to/file.py:function or package.module:function")
    return where, attr


def _is_path(where: str) -> bool:
    return where.endswith(".py") or "/" in where or "\\" in where


def _module_file(module: str) -> Path | None:
    """The source file of ``module``, found on the import path without importing it or its packages."""
    parts = module.split(".")
    locations: Any = None
    found = None
    for i in range(len(parts)):
        found = importlib.machinery.PathFinder.find_spec(".".join(parts[: i + 1]), locations)
        if found is None:
            raise SpecError(f"cannot import {module}: no module named {'.'.join(parts[: i + 1])!r}")
        locations = found.submodule_search_locations
    origin = found.origin if found else None
    return Path(origin) if origin and origin.endswith(".py") else None


def describe(spec: str) -> Described:
    """Check ``spec`` by reading its source: the file or module exists, parses, and binds the name."""
    where, attr = _split(spec)
    if _is_path(where):
        path = Path(where)
        if not path.is_file():
            raise SpecError(f"candidate file not found: {where}")
        shown = f"{_display(path)}:{attr}"
    else:
        path = _module_file(where)
        shown = spec
        if path is None:  # an extension or namespace module: its runner will find out
            return Described(attr, spec, "")
    source_name = _display(path) if _is_path(where) else where
    tree = _parse(path, source_name)
    defs = _bindings(tree)
    if attr not in defs:
        functions = [n for n, node in defs.items() if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))]
        listing = f"; functions there: {', '.join(functions)}" if functions else ""
        raise SpecError(f"{shown}: no function {attr!r} in {source_name}{listing}")
    return _describe(attr, defs[attr], defs, shown, source_name, marked_only=False)


def absolute(spec: str) -> str:
    """The spec with its file path made absolute (runners work in a scratch directory)."""
    if spec.startswith(ORACLE_PREFIX):
        return spec
    where, attr = _split(spec)
    if not _is_path(where):
        return spec
    from harness.core.project import active_root

    path = Path(where)
    if not path.is_absolute() and not path.exists() and active_root() is not None:
        path = active_root() / where  # a discovered spec, relative to the project root
    return f"{path.resolve()}:{attr}"
