"""The runner protocol's messages as types.  Each request the judge sends and each reply a runner gives is a
frozen dataclass named by its ``kind``; ``header()`` is its frame's JSON (``protocol.write_frame``), and
``parse`` turns a frame's JSON back into one, checking every field against the annotations.  Both processes
use this module: the runner parses requests, the judge parses replies — and a reply comes from the
candidate's own process, so anything off (a missing field, a wrong type, a time out of range, an unknown
kind) is a ``ProtocolError``, which the judge turns into that runner's ``error: sent malformed data``.
A ``called`` reply (a call's outcome and its tensors' bytes) is decoded by ``protocol.decode_outcome``.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from typing import Any, ClassVar

from harness.core.protocol import ProtocolError

MAX_SECONDS = 1e6  # a reported time at or beyond this (or not above 0) is not a time
MAX_DIGEST = 1 << 16  # characters of an output fingerprint


@dataclass(frozen=True)
class Message:
    kind: ClassVar[str] = ""

    def header(self) -> dict:
        return {"kind": self.kind, **{f.name: getattr(self, f.name) for f in dataclasses.fields(self)}}

    def check(self) -> None:
        """``ProtocolError`` if a value is out of its range (``parse`` calls it: the receiver judges)."""


# -- requests: judge -> runner --------------------------------------------------------------------------

@dataclass(frozen=True)
class CallCase(Message):
    kind: ClassVar[str] = "call"
    case: dict
    device: str | None = None


@dataclass(frozen=True)
class CallOn(Message):
    """A call on inputs the judge sends (another function's output, for a round trip); tensors in the blob."""

    kind: ClassVar[str] = "call_on"
    args: Any
    kwargs: dict
    device: str | None = None


@dataclass(frozen=True)
class Prepare(Message):
    kind: ClassVar[str] = "prepare"
    size: dict
    fresh: bool = False
    warm: bool = True
    move_inputs: bool = False


@dataclass(frozen=True)
class Place(Message):
    kind: ClassVar[str] = "place"
    start: int
    n: int = 1
    first: int = 0


@dataclass(frozen=True)
class Round(Message):
    kind: ClassVar[str] = "round"
    n: int
    start: int
    first: int = 0


@dataclass(frozen=True)
class TimedOutput(Message):
    kind: ClassVar[str] = "timed_output"
    index: int
    digest: bool = False


@dataclass(frozen=True)
class OutputFor(Message):
    kind: ClassVar[str] = "output_for"
    start: int
    index: int
    digest: bool = False


@dataclass(frozen=True)
class TimeCase(Message):
    kind: ClassVar[str] = "time_case"
    case: dict


@dataclass(frozen=True)
class Release(Message):
    kind: ClassVar[str] = "release"


@dataclass(frozen=True)
class ProfileAt(Message):
    kind: ClassVar[str] = "profile"
    size: dict


REQUESTS = (CallCase, CallOn, Prepare, Place, Round, TimedOutput, OutputFor, TimeCase, Release, ProfileAt)


# -- replies: runner -> judge ---------------------------------------------------------------------------

@dataclass(frozen=True)
class Ready(Message):
    kind: ClassVar[str] = "ready"
    threads: int = 0
    state_changes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class LoadFailed(Message):
    kind: ClassVar[str] = "load_failed"
    message: str = "cannot load it"


@dataclass(frozen=True)
class Prepared(Message):
    kind: ClassVar[str] = "prepared"
    input_digest: str
    per_call_s: float | None = None

    def check(self) -> None:
        if self.per_call_s is not None:
            _time(self.per_call_s, "a per-call time")


@dataclass(frozen=True)
class Timed(Message):
    kind: ClassVar[str] = "timed"
    seconds: float
    written_s: float = 0.0  # a round's untimed input writing (``worker.place``, within the cache)

    def check(self) -> None:
        _time(self.seconds, "a time")
        if not 0 <= self.written_s < MAX_SECONDS:
            raise ProtocolError(f"a write time of {self.written_s!r}")


@dataclass(frozen=True)
class Digest(Message):
    kind: ClassVar[str] = "digest"
    digest: str

    def check(self) -> None:
        if len(self.digest) > MAX_DIGEST:
            raise ProtocolError(f"an output digest of {len(self.digest)} characters")


@dataclass(frozen=True)
class Ok(Message):
    kind: ClassVar[str] = "ok"


@dataclass(frozen=True)
class Called(Message):
    """A call's outcome; its fields (value or error, digests, state changes) are checked as they are decoded
    (``protocol.decode_outcome``), so ``parse`` reads none of them."""

    kind: ClassVar[str] = "called"


@dataclass(frozen=True)
class Profiled(Message):
    kind: ClassVar[str] = "profiled"
    profile: dict


@dataclass(frozen=True)
class Failed(Message):
    """The function raised while timed or profiled, or a request was malformed."""

    kind: ClassVar[str] = "failed"
    message: str = "failed"


@dataclass(frozen=True)
class StateChanged(Message):
    kind: ClassVar[str] = "state_changed"
    changes: list[str]


REPLIES = (Ready, LoadFailed, Prepared, Timed, Digest, Ok, Called, Profiled, Failed, StateChanged)
_BY_KIND = {cls.kind: cls for cls in (*REQUESTS, *REPLIES)}


def _time(value: float, what: str) -> None:
    if not 0 < value < MAX_SECONDS:
        raise ProtocolError(f"{what} of {value!r}")


def _fits(value: Any, tp: Any) -> bool:
    """Whether a JSON value is of annotation ``tp`` (the few kinds messages use)."""
    if tp is Any:
        return True
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        return any(_fits(value, option) for option in typing.get_args(tp))
    if tp is type(None):
        return value is None
    if tp is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if tp is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if origin is list:
        (item,) = typing.get_args(tp)
        return isinstance(value, list) and all(_fits(v, item) for v in value)
    return isinstance(value, origin or tp)


def parse(header: dict, *expected: type[Message]) -> Message:
    """The message a frame's JSON ``header`` holds, of one of the ``expected`` classes (any, if none given);
    ``ProtocolError`` with a one-line reason if it is not one."""
    kind = header.get("kind")
    cls = _BY_KIND.get(kind) if isinstance(kind, str) else None
    if cls is None or (expected and cls not in expected):
        raise ProtocolError(f"a {str(header.get('kind'))[:40]!r} message where "
                            f"{' or '.join(repr(c.kind) for c in expected) or 'a message'} was due")
    hints = typing.get_type_hints(cls)
    values = {}
    for f in dataclasses.fields(cls):
        if f.name not in header:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise ProtocolError(f"a {cls.kind!r} message without {f.name!r}")
            continue
        if not _fits(header[f.name], hints[f.name]):
            raise ProtocolError(f"a {cls.kind!r} message whose {f.name!r} is {type(header[f.name]).__name__}")
        values[f.name] = header[f.name]
    message = cls(**values)
    message.check()
    return message
