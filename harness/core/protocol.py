"""The wire between the judge and a runner: length-prefixed frames of JSON plus raw bytes, and how a call's
outcome (an output tensor's bytes, or an exception's type and message) travels as data.

Both processes use this module.  Nothing is ever unpickled: a frame is a magic number, two lengths, a JSON
object and a byte blob, and everything read from a runner is checked (sizes bounded, JSON a mapping with
a ``kind``, tensor metadata of the right types) before use, because the runner runs candidate code that
can write anything to its end of the pipe.  Tensors are sent as their bytes in logical (contiguous) order
with dtype, shape, strides and device; CUDA outputs are copied to the host first.  ``benchmarks/
transport.py`` measures the cost (NOTES.md has the numbers).
"""

from __future__ import annotations

import ctypes
import hashlib
import json
import os
import select
import struct
import time
import zlib
from dataclasses import dataclass
from typing import Any

import torch

MAGIC = b"HRN1"
_HEAD = struct.Struct("<4sIQ")  # magic, JSON length, blob length
MAX_JSON = 8 << 20
MAX_BLOB = 8 << 30


class ProtocolError(Exception):
    """What came over the pipe is not a frame of this protocol (one-line reason)."""


class Timeout(Exception):
    """No complete frame before the deadline."""


class Closed(Exception):
    """The other end closed the pipe (the process exited or crashed)."""


# -- frames ---------------------------------------------------------------------------------------

def write_frame(fd: int, header: dict, blob: bytes = b"") -> None:
    data = json.dumps(header, allow_nan=True).encode()
    view = memoryview(_HEAD.pack(MAGIC, len(data), len(blob)) + data)
    for chunk in (view, memoryview(blob)):
        while len(chunk):
            written = os.write(fd, chunk)
            chunk = chunk[written:]


def _read_exact(fd: int, n: int, deadline: float | None) -> bytes:
    parts, got = [], 0
    while got < n:
        if deadline is not None:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not select.select([fd], [], [], remaining)[0]:
                raise Timeout()
        chunk = os.read(fd, min(n - got, 1 << 22))
        if not chunk:
            raise Closed()
        parts.append(chunk)
        got += len(chunk)
    return b"".join(parts)


def read_frame(fd: int, deadline: float | None = None) -> tuple[dict, bytes]:
    """One frame; ``ProtocolError`` for anything that is not one, ``Closed`` at end of file, ``Timeout``."""
    magic, json_len, blob_len = _HEAD.unpack(_read_exact(fd, _HEAD.size, deadline))
    if magic != MAGIC:
        raise ProtocolError(f"bad frame header {magic!r}")
    if json_len > MAX_JSON or blob_len > MAX_BLOB:
        raise ProtocolError(f"frame of {json_len} + {blob_len} bytes is over the limit")
    data = _read_exact(fd, json_len, deadline)
    try:
        header = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ProtocolError(f"frame is not JSON ({exc})") from None
    except RecursionError:
        raise ProtocolError("frame's JSON is nested too deeply") from None
    except Exception as exc:  # anything else the decoder raises (an integer of 5000 digits: ValueError) is no frame
        raise ProtocolError(f"frame's JSON cannot be read ({_reason(exc)})") from None
    if not isinstance(header, dict) or not isinstance(header.get("kind"), str):
        raise ProtocolError("frame is not an object with a 'kind'")
    return header, _read_exact(fd, blob_len, deadline) if blob_len else b""


def _reason(exc: BaseException) -> str:
    """An exception raised while decoding untrusted data, in one short line."""
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text[:200]}" if text else type(exc).__name__


# -- tensors and values ---------------------------------------------------------------------------

def _dtype(name: Any) -> torch.dtype:
    dtype = getattr(torch, name, None) if isinstance(name, str) else None
    if not isinstance(dtype, torch.dtype):
        raise ProtocolError(f"unknown dtype {name!r}")
    return dtype


def tensor_bytes(t: torch.Tensor) -> bytes:
    """The tensor's elements in logical order, as bytes (a copy, made while the contiguous copy lives;
    no numpy needed)."""
    t = t.detach().contiguous().cpu()
    nbytes = t.numel() * t.element_size()
    return ctypes.string_at(t.data_ptr(), nbytes) if nbytes else b""


def tensor_crc(t: torch.Tensor) -> int:
    """The CRC-32 of the tensor's elements in logical order, read in place where they are contiguous
    (6x faster than blake2b here: 16 ms against 96 ms for 118 MB)."""
    t = t.detach().contiguous().cpu()
    nbytes = t.numel() * t.element_size()
    return zlib.crc32((ctypes.c_char * nbytes).from_address(t.data_ptr())) if nbytes else 0


SAMPLE_ABOVE = 16 << 20  # bytes; larger tensors are hashed by a sample of their elements
SAMPLE_CHUNK = 1 << 16


def digest(tensors: list[torch.Tensor], sample: bool = False) -> str:
    """A hash of several tensors' dtypes, shapes, strides and elements (how a runner's inputs are compared
    with the judge's, and an input before a call with the same input after it).  The elements enter as
    their CRC-32 (``tensor_crc``): these digests catch honest differences (another build, a write into an
    input); a runner that lies sends whatever digest it likes anyway, so a cryptographic hash of every byte
    bought nothing for its 0.2 s per production-sized case.  With ``sample`` (timing inputs), tensors over
    16 MiB are hashed by every 8th 64 KiB chunk of their bytes plus the last."""
    h = hashlib.blake2b(digest_size=16)
    for t in tensors:
        h.update(f"{t.dtype}{tuple(t.shape)}{t.stride()}{t.storage_offset()};".encode())
        flat = t.detach().reshape(-1)
        if sample and flat.numel() * flat.element_size() > SAMPLE_ABOVE:
            chunks = flat.contiguous().view(torch.uint8)
            step = 8 * SAMPLE_CHUNK
            sampled = (chunks[: (len(chunks) // step) * step].view(-1, step)[:, :SAMPLE_CHUNK], chunks[-SAMPLE_CHUNK:])
            h.update(b"".join(tensor_crc(c).to_bytes(4, "little") for c in sampled))
        else:
            h.update(tensor_crc(t).to_bytes(4, "little"))
    return h.hexdigest()


def _items(value: tuple | list) -> Any:
    """A tuple's or list's items as stored (a subclass's own ``__iter__`` is not called)."""
    return tuple.__iter__(value) if isinstance(value, tuple) else list.__iter__(value)


def not_plain(value: Any) -> str | None:
    """Why ``value`` is not a value the judge takes as returned, or None: every tensor in it must be exactly a
    ``torch.Tensor``.  A subclass can run code whenever something looks at it (``__torch_function__``), so
    its answer could be computed after the timed call, when the runner reads its bytes; this looks only at
    types, which runs none of its code."""
    if type(value) is torch.Tensor:
        return None
    if isinstance(value, torch.Tensor):
        return f"returned a {type(value).__name__}, a torch.Tensor subclass: only plain tensors are judged"
    if isinstance(value, (tuple, list)):
        return next(filter(None, map(not_plain, _items(value))), None)
    return None


def encode_value(value: Any, blobs: list[bytes]) -> dict:
    """A JSON description of a return value; tensor bytes are appended to ``blobs``.  ``TypeError`` for a
    tensor subclass (``not_plain``)."""
    if isinstance(value, torch.Tensor):
        if type(value) is not torch.Tensor:
            raise TypeError(not_plain(value))
        data = tensor_bytes(value)
        blobs.append(data)
        return {"kind": "tensor", "dtype": str(value.dtype).removeprefix("torch."), "shape": list(value.shape),
                "strides": list(value.stride()), "device": str(value.device), "nbytes": len(data)}
    if isinstance(value, (tuple, list)):
        return {"kind": "tuple" if isinstance(value, tuple) else "list",
                "items": [encode_value(v, blobs) for v in _items(value)]}
    if value is None or isinstance(value, (bool, int, float, str)):
        return {"kind": "scalar", "value": value}
    return {"kind": "object", "type": type(value).__name__}


class Opaque:
    """Stands in, on the judge's side, for a returned object that is neither a tensor nor plain data."""


def _int_list(x: Any, what: str) -> list[int]:
    if not isinstance(x, list) or not all(isinstance(i, int) and not isinstance(i, bool) for i in x):
        raise ProtocolError(f"tensor {what} is not a list of integers")
    return x


def _device(name: Any) -> str:
    """The device a runner says a tensor was on, where the judge can place it (else the CPU)."""
    if isinstance(name, str) and name.startswith("cuda") and torch.cuda.is_available():
        try:
            return str(torch.device(name))
        except RuntimeError:
            pass
    return "cpu"


def decode_value(desc: Any, blob: bytes, offset: int = 0, depth: int = 0) -> tuple[Any, int]:
    """Rebuild a value from ``encode_value``'s description, each tensor on the device it was on; anything
    that does not describe a value it could have sent is a ``ProtocolError``."""
    try:
        return _decode_value(desc, blob, offset, depth)
    except ProtocolError:
        raise
    except Exception as exc:  # whatever rebuilding untrusted data raises (ValueError, OverflowError, ...) is no value
        raise ProtocolError(f"value cannot be rebuilt ({type(exc).__name__})") from None


def _decode_value(desc: Any, blob: bytes, offset: int, depth: int) -> tuple[Any, int]:
    if depth > 32:
        raise ProtocolError("value nested too deeply")
    if not isinstance(desc, dict):
        raise ProtocolError("value description is not an object")
    kind = desc.get("kind")
    if kind == "tensor":
        dtype, shape = _dtype(desc.get("dtype")), _int_list(desc.get("shape"), "shape")
        nbytes = desc.get("nbytes")
        expected = torch.Size(shape).numel() * torch.empty((), dtype=dtype).element_size()
        if nbytes != expected or offset + nbytes > len(blob) or any(s < 0 for s in shape):
            raise ProtocolError("tensor bytes do not match its shape and dtype")
        raw = bytearray(blob[offset:offset + nbytes])
        flat = torch.frombuffer(raw, dtype=torch.uint8) if nbytes else torch.empty(0, dtype=torch.uint8)
        t = (flat.view(dtype) if nbytes else torch.empty(0, dtype=dtype)).reshape(shape)
        device = _device(desc.get("device"))
        return (t.to(device) if device != "cpu" else t), offset + nbytes
    if kind in ("tuple", "list"):
        items, out = desc.get("items"), []
        if not isinstance(items, list):
            raise ProtocolError("sequence without items")
        for item in items:
            value, offset = _decode_value(item, blob, offset, depth + 1)
            out.append(value)
        return (tuple(out) if kind == "tuple" else out), offset
    if kind == "scalar" and (desc.get("value") is None or isinstance(desc.get("value"), (bool, int, float, str))):
        return desc.get("value"), offset
    if kind == "object" and isinstance(desc.get("type"), str):
        name = "".join(c for c in desc["type"] if c.isalnum() or c == "_")[:80] or "object"
        return type(name, (Opaque,), {})(), offset
    raise ProtocolError(f"unknown value kind {kind!r}")


# -- one call's outcome, as the judge sees it --------------------------------------------------------

@dataclass(frozen=True)
class Outcome:
    """What a function did on one case: its return value, or the type and message of what it raised;
    whether it changed its input; the digest of the input it was given; process settings it changed."""

    value: Any = None
    error_type: str | None = None  # qualified name, e.g. builtins.AssertionError
    error_message: str = ""
    precondition: bool = False  # (oracle only) the error is one of the target's precondition errors
    mutated_input: bool = False
    input_digest: str = ""
    state_changes: tuple[str, ...] = ()

    @property
    def raised(self) -> bool:
        return self.error_type is not None

    @property
    def error_line(self) -> str:
        if self.error_type is None:
            return ""
        return f"{self.error_type.rsplit('.', 1)[-1]}: {first_line(self.error_message)}"


def first_line(text: str) -> str:
    lines = str(text).strip().splitlines()
    return lines[0][:500] if lines else "(no message)"


def error_name(exc: BaseException) -> str:
    return f"{type(exc).__module__}.{type(exc).__qualname__}"


def decode_outcome(header: dict, blob: bytes) -> Outcome:
    """The judge's reading of a runner's ``called`` reply (every field checked)."""
    error = header.get("error")
    changes = header.get("state_changes", [])
    if not isinstance(changes, list) or not all(isinstance(c, str) for c in changes):
        raise ProtocolError("state_changes is not a list of strings")
    for key in ("input_digest", "after_digest"):
        if not isinstance(header.get(key), str):
            raise ProtocolError(f"{key} is missing")
    common = dict(input_digest=header["input_digest"], mutated_input=header["after_digest"] != header["input_digest"],
                  state_changes=tuple(changes))
    if error is not None:
        if not (isinstance(error, dict) and isinstance(error.get("type"), str) and isinstance(error.get("message"), str)):
            raise ProtocolError("error is not {type, message}")
        return Outcome(error_type=error["type"], error_message=error["message"], **common)
    value, _ = decode_value(header.get("value"), blob)
    return Outcome(value=value, **common)
