"""Finding and loading candidates.

A candidate is a plain function with the oracle's signature.  In ``candidates/*.py`` a function becomes
one by being marked with ``@candidate`` (or ``name = candidate(existing_function)``); nothing else
registers it.  Outside the repo a candidate is named by a spec: ``path/to/file.py:function`` or
``package.module:function``.  A candidate's docstring is its explanation in the report.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import inspect
import sys
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, Callable

MARK = "__harness_candidate__"


class SpecError(Exception):
    """A candidate spec that cannot be loaded (a user mistake, reported in one line)."""


@dataclass(frozen=True)
class Mark:
    name: str
    target: str | None  # None: the default target
    doc: str | None


@dataclass(frozen=True)
class Candidate:
    name: str
    spec: str
    function: Callable[..., Any]
    doc: str
    target: str | None = None


def candidate(fn: Callable | None = None, *, name: str | None = None, target: str | None = None,
              doc: str | None = None) -> Any:
    """Mark ``fn`` as a candidate of the module that calls this (usable as ``@candidate`` or
    ``@candidate(name=..., target=..., doc=...)``).  The mark is kept per module, so marking a function
    imported from elsewhere does not make it a candidate of every module that imports it."""
    module = sys._getframe(1).f_globals.get("__name__", "")

    def mark(f: Callable) -> Callable:
        marks = f.__dict__.setdefault(MARK, {})
        marks[module] = Mark(name or f.__name__, target, doc)
        return f

    return mark(fn) if fn is not None else mark


def candidates_dir() -> Path:
    return Path(importlib.import_module("candidates").__file__).parent


def _display(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def _import_file(path: Path) -> ModuleType:
    """Import a .py file; files inside ``candidates/`` keep their package name so they can import siblings."""
    path = path.resolve()
    if path.parent == candidates_dir().resolve():
        return importlib.import_module(f"candidates.{path.stem}")
    module_name = f"harness_ext_{path.stem}_{hashlib.sha1(str(path).encode()).hexdigest()[:8]}"
    if module_name in sys.modules:
        return sys.modules[module_name]
    spec = importlib.util.spec_from_file_location(module_name, path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[module_name]
        raise
    return module


def _import(where: str) -> ModuleType:
    try:
        if where.endswith(".py") or "/" in where or "\\" in where:
            path = Path(where)
            if not path.is_file():
                raise SpecError(f"candidate file not found: {where}")
            return _import_file(path)
        return importlib.import_module(where)
    except SpecError:
        raise
    except ModuleNotFoundError as exc:
        raise SpecError(f"cannot import {where}: no module named {exc.name!r}") from exc
    except SyntaxError as exc:
        raise SpecError(f"cannot import {where}: SyntaxError: {exc.msg} (line {exc.lineno})") from exc
    except Exception as exc:  # an import-time error of arbitrary user code
        raise SpecError(f"cannot import {where}: {type(exc).__name__}: {exc}") from exc


def _from(module: ModuleType, attr: str, spec: str) -> Candidate:
    fn = getattr(module, attr, None)
    if fn is None:
        raise SpecError(f"{spec}: no function {attr!r} in {module.__name__}")
    if not callable(fn):
        raise SpecError(f"{spec}: {attr!r} is a {type(fn).__name__}, not a function")
    mark = getattr(fn, MARK, {}).get(module.__name__)
    doc = (mark.doc if mark and mark.doc else None) or (getattr(fn, "__doc__", None) or "").strip()
    return Candidate(name=mark.name if mark else attr, spec=spec, function=fn, doc=inspect.cleandoc(doc),
                     target=mark.target if mark else None)


def load(spec: str) -> Candidate:
    """Load ``path/to/file.py:function`` or ``package.module:function``."""
    where, sep, attr = spec.rpartition(":")
    if not sep or not where or not attr:
        raise SpecError(f"bad candidate spec {spec!r}: expected path/to/file.py:function or package.module:function")
    module = _import(where)
    shown = f"{_display(Path(where))}:{attr}" if where.endswith(".py") else spec
    return _from(module, attr, shown)


def candidate_files(directory: Path | None = None) -> list[Path]:
    """The files of ``directory`` (default: the ``candidates`` package) that may hold candidates."""
    return [p for p in sorted((directory or candidates_dir()).glob("*.py")) if not p.name.startswith("_")]


def discover(target: str, default_target: str, directory: Path | None = None,
             files: list[Path] | None = None) -> list[Candidate]:
    """Every candidate marked for ``target`` in ``files`` (default: those of ``directory``)."""
    found: list[Candidate] = []
    for path in files if files is not None else candidate_files(directory):
        try:
            module = _import_file(path)
        except SyntaxError as exc:
            raise SpecError(f"cannot import {_display(path)}: SyntaxError: {exc.msg} (line {exc.lineno})") from exc
        except Exception as exc:
            raise SpecError(f"cannot import {_display(path)}: {type(exc).__name__}: {exc}") from exc
        for attr, obj in vars(module).items():
            mark = getattr(obj, MARK, {}).get(module.__name__) if callable(obj) else None
            if mark and attr != mark.name and getattr(module, mark.name, None) is obj:
                continue  # the same function under another name (e.g. the import it was marked from)
            if mark and (mark.target or default_target) == target:
                found.append(_from(module, attr, f"{_display(path)}:{attr}"))
    return found


@dataclass(frozen=True)
class Described:
    """What the parent process needs of a candidate it must not import itself."""

    name: str
    spec: str
    doc: str
    crashed: str | None = None  # why importing it killed the process that tried


def describe(target: str, default_target: str, specs: list[str], files: list[Path] | None = None,
             progress: Any = None) -> list[Described] | str:
    """Load ``specs`` (or discover candidates, in ``files`` if given) and describe them; a user mistake comes
    back as its one-line message.  Run in a child process, so the caller never imports candidate code."""
    try:
        found = [load(spec) for spec in specs] if specs else discover(target, default_target, files=files)
    except SpecError as exc:
        return str(exc)
    return [Described(c.name, c.spec, c.doc) for c in found]
