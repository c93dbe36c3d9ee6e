"""A ``RunResult`` as JSON and back: ``dumps``/``to_dict`` write it (with the derived per-candidate fields
tools look for), ``load``/``load_text``/``from_dict`` rebuild it exactly, checking every field's type
against the dataclasses of ``result`` and every string with ``text.check_text`` (a result file is untrusted
input), and ``write_atomic`` writes any text file whole or not at all."""

from __future__ import annotations

import dataclasses
import enum
import json
import math
import os
import tempfile
import types
import typing
from pathlib import Path
from typing import Any, Literal

from harness.core.result import READABLE_SCHEMAS, SCHEMA_VERSION, CandidateResult, RunResult
from harness.core.text import SchemaError, check_text, shown


def to_dict(obj: Any) -> dict:
    """A JSON-able dict that also carries the derived per-candidate fields tools look for."""
    data = dataclasses.asdict(obj)
    if isinstance(obj, RunResult):
        for cand, raw in zip(obj.candidates, data["candidates"]):
            raw.update(_candidate_digest(cand))
    return data


def _candidate_digest(cand: CandidateResult) -> dict:
    v, h = cand.verification, cand.headline
    return {
        "cases": v.cases if v else 0,
        "failed": v.failed if v else 0,
        "first_failure": v.first_failure if v else cand.error,
        "median_s": h.candidate.median_s if h else None,
        "speedup": h.speedup if h else None,
        "speedup_ci": list(h.speedup_ci) if h else None,
        "significant": h.significant if h else None,
        "gbps": h.gbps if h else None,
    }


def dumps(obj: Any) -> str:
    return json.dumps(to_dict(obj), indent=2, sort_keys=False) + "\n"


_SCALARS = {str: "a string", int: "an integer", bool: "true or false"}
_MAY_BE_INFINITE = (".stderr_s", ".rse")  # the standard error of fewer than two rounds


def _decode(tp: Any, value: Any, where: str) -> Any:
    origin = typing.get_origin(tp)
    if tp is Any:
        return value
    if origin is Literal:
        allowed = typing.get_args(tp)
        if isinstance(value, bool) or value not in allowed:
            raise SchemaError(f"{where}: expected one of {', '.join(map(repr, allowed))}, got {shown(value)}")
        return value
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(tp)
        if value is None and type(None) in options:
            return None
        error: SchemaError | None = None
        for option in (o for o in options if o is not type(None)):
            try:
                return _decode(option, value, where)
            except SchemaError as exc:
                error = exc
        raise error or SchemaError(f"{where}: unexpected null")
    if dataclasses.is_dataclass(tp):
        return from_dict(tp, value, where)
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        allowed = [m.value for m in tp]
        if not isinstance(value, str) or value not in allowed:
            raise SchemaError(f"{where}: expected one of {', '.join(map(repr, allowed))}, got {shown(value)}")
        return tp(value)
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise SchemaError(f"{where}: expected a list, got {type(value).__name__}")
        args = typing.get_args(tp)
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_decode(args[0], v, f"{where}[{i}]") for i, v in enumerate(value))
        if len(args) != len(value):
            raise SchemaError(f"{where}: expected {len(args)} items, got {len(value)}")
        return tuple(_decode(a, v, f"{where}[{i}]") for i, (a, v) in enumerate(zip(args, value)))
    if tp is dict or origin is dict:
        if not isinstance(value, dict):
            raise SchemaError(f"{where}: expected an object, got {type(value).__name__}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise SchemaError(f"{where}: expected a number, got {type(value).__name__}")
        try:
            value = float(value)
        except OverflowError:
            raise SchemaError(f"{where}: expected a finite number, got an integer too large for a float") from None
        if not math.isfinite(value) and not (math.isinf(value) and where.endswith(_MAY_BE_INFINITE)):
            raise SchemaError(f"{where}: expected a finite number, got {value}")
        return float(value)
    if tp in _SCALARS:
        if not isinstance(value, tp) or (tp is int and isinstance(value, bool)):
            raise SchemaError(f"{where}: expected {_SCALARS[tp]}, got {type(value).__name__}")
        return value
    raise SchemaError(f"{where}: no rule for type {tp!r}")


def from_dict(cls: type, data: Any, where: str | None = None) -> Any:
    """Rebuild dataclass ``cls`` from JSON data, checking every field (``SchemaError`` names the first bad one)."""
    where = where or cls.__name__
    if not isinstance(data, dict):
        raise SchemaError(f"{where}: expected an object, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    values = {}
    for f in dataclasses.fields(cls):
        if f.name in data:
            values[f.name] = _decode(hints[f.name], data[f.name], f"{where}.{f.name}")
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise SchemaError(f"{where}.{f.name}: missing")
    try:
        return cls(**values)
    except SchemaError as exc:  # a check across fields (``__post_init__``)
        raise SchemaError(f"{where}: {exc}") from None


def load_text(text: str, source: str = "result") -> RunResult:
    """Rebuild a ``RunResult`` from its JSON; ValueError with a one-line reason if it is not one."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{source} is not JSON: {exc}") from None
    except RecursionError:
        raise ValueError(f"{source} is not a harness result: JSON nested too deeply") from None
    except ValueError as exc:  # e.g. an integer of more digits than Python converts
        raise ValueError(f"{source} is not a harness result: {' '.join(str(exc).split())[:200]}") from None
    if not isinstance(data, dict) or data.get("schema") not in READABLE_SCHEMAS or "candidates" not in data:
        raise ValueError(f"{source} is not a harness result (schema {SCHEMA_VERSION})")
    if data["schema"] == 1 and isinstance(data.get("noise"), list):  # noise was words: kept, as "other" notes
        data["noise"] = [{"kind": "other", "text": n} if isinstance(n, str) else n for n in data["noise"]]
        data["schema"] = SCHEMA_VERSION
    try:
        check_text(data, "result")
        return from_dict(RunResult, data, "result")
    except SchemaError as exc:
        raise ValueError(f"{source} is not a valid harness result: {exc}") from None
    except RecursionError:
        raise ValueError(f"{source} is not a harness result: JSON nested too deeply") from None


def load(path: str | os.PathLike) -> RunResult:
    """Read a result written by ``harness run``."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ValueError(f"no such result file: {path}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"cannot read {path}: {exc}") from None
    return load_text(text, str(path))


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def write_atomic(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` to ``path`` through a temporary file in the same folder and a rename, with the mode
    a newly created file gets (``mkstemp`` alone would leave it readable by its owner only)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
