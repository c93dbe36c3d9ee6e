"""Importing the function a spec names: the runner's half of ``harness.core.candidates`` (which finds and
describes candidates by reading their source).  Runs in a runner (and in a generated regression test, the
user's own test process); a file inside a run is imported from the run's ``snapshot``."""

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

from harness.core.candidates import MARK, ORACLE_PREFIX, SpecError, _is_path, _split, candidates_dir


@dataclass(frozen=True)
class Candidate:
    name: str
    spec: str
    function: Callable[..., Any]
    doc: str
    target: str | None = None


def _import_file(path: Path) -> ModuleType:
    """Import a .py file; files inside ``candidates/`` keep their package name so they can import siblings."""
    path = path.resolve()
    if path.parent == candidates_dir().resolve():
        return importlib.import_module(f"candidates.{path.stem}")
    module_name = f"harness_ext_{path.stem}_{hashlib.sha1(str(path).encode()).hexdigest()[:8]}"
    if module_name in sys.modules:
        return sys.modules[module_name]
    from harness.runner import snapshot  # in a runner, the copy of the file taken when the run started

    spec = snapshot.file_spec(module_name, path) or importlib.util.spec_from_file_location(module_name, path)
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
        if _is_path(where):
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


def load(spec: str) -> Candidate:
    """Import ``path/to/file.py:function`` or ``package.module:function`` (in a runner, or in a generated
    regression test, which is the user's own test process)."""
    where, attr = _split(spec)
    module = _import(where)
    fn = getattr(module, attr, None)
    if fn is None:
        raise SpecError(f"{spec}: no function {attr!r} in {where}")
    if not callable(fn):
        raise SpecError(f"{spec}: {attr!r} is a {type(fn).__name__}, not a function")
    mark = getattr(fn, MARK, {}).get(module.__name__)
    doc = (mark.doc if mark and mark.doc else None) or (getattr(fn, "__doc__", None) or "").strip()
    return Candidate(name=mark.name if mark else attr, spec=spec, function=fn, doc=inspect.cleandoc(doc),
                     target=mark.target if mark else None)


def resolve(spec: str, target: Any) -> Callable[..., Any]:
    """The function a spec names: ``oracle:<target>`` is the target's original function."""
    if spec.startswith(ORACLE_PREFIX):
        if spec[len(ORACLE_PREFIX):] != target.name:
            raise SpecError(f"{spec}: this run's target is {target.name!r}")
        return target.oracle
    return load(spec).function
