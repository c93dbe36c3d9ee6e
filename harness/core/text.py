"""Text no renderer should meet: a control character other than newline and tab, or a lone surrogate.
``check_text`` refuses it in a result file (``SchemaError``); ``clean`` replaces it where the harness builds
a result from what a candidate's messages carry."""

from __future__ import annotations

import dataclasses
import re
from typing import Any


class SchemaError(ValueError):
    """A result file whose fields are missing or of the wrong type (one line: which field, what is wrong)."""


# C0 and C1 controls but newline and tab (escape sequences, bells, carriage returns, DEL), and lone surrogates
# (which no UTF-8 file can hold: writing a report of them fails)
_BAD_CHARACTER = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff]")


def shown(value: Any) -> str:
    """A refused value in an error message: a short repr of a string (control characters escaped), else its type."""
    if not isinstance(value, str):
        return type(value).__name__
    text = repr(value)
    return text if len(text) <= 60 else text[:56] + "...'"


def check_text(data: Any, where: str) -> None:
    """``SchemaError`` for the first string of JSON ``data`` (keys included, recursively) that holds a control
    character other than newline and tab, or a lone surrogate."""
    if isinstance(data, str):
        found = _BAD_CHARACTER.search(data)
        if found:
            code = ord(found.group())
            what = "a lone surrogate" if 0xD800 <= code <= 0xDFFF else "a control character"
            raise SchemaError(f"{where}: contains {what} (U+{code:04X})")
    elif isinstance(data, dict):
        for key, value in data.items():
            check_text(key, f"{where} (a key)")
            check_text(value, f"{where}.{key}" if key.isidentifier() else f"{where}[{shown(key)}]")
    elif isinstance(data, list):
        for i, value in enumerate(data):
            check_text(value, f"{where}[{i}]")


def clean(value: Any) -> Any:
    """``value`` (a string, or a dataclass, tuple, list or dict holding strings) with every character that
    ``check_text`` refuses replaced by ``?``; the very same object where there is none."""
    if isinstance(value, str):
        return _BAD_CHARACTER.sub("?", value) if _BAD_CHARACTER.search(value) else value
    if isinstance(value, (tuple, list)):
        items = [clean(v) for v in value]
        return value if all(a is b for a, b in zip(items, value)) else type(value)(items)
    if isinstance(value, dict):
        items = [(clean(k), clean(v)) for k, v in value.items()]
        return value if all(a is k and b is v for (a, b), (k, v) in zip(items, value.items())) else dict(items)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        changed = {}
        for f in dataclasses.fields(value):
            old = getattr(value, f.name)
            new = clean(old)
            if new is not old:
                changed[f.name] = new
        return dataclasses.replace(value, **changed) if changed else value
    return value
