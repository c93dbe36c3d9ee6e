"""Running one call of a candidate (or the oracle) so that it cannot fool or break the caller.

Each call gets inputs freshly built from the case (so strides, offsets and aliasing are exactly the
case's, which ``clone()`` would not preserve), exceptions are captured rather than propagated, CUDA work is
synchronised inside the guarded region (so asynchronous errors are the candidate's), and the inputs are
compared afterwards with another fresh build to catch a candidate that writes into its input.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import torch

from harness.target import Call


@dataclass(frozen=True)
class Outcome:
    value: Any = None
    error: BaseException | None = None
    mutated_input: bool = False

    @property
    def error_line(self) -> str:
        return f"{type(self.error).__name__}: {_first_line(self.error)}" if self.error else ""


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else "(no message)"


def _tensors(call: Call) -> list[torch.Tensor]:
    return [a for a in (*call.args, *call.kwargs.values()) if isinstance(a, torch.Tensor)]


def _same_bytes(a: torch.Tensor, b: torch.Tensor) -> bool:
    return a.shape == b.shape and torch.equal(a.contiguous().view(torch.uint8), b.contiguous().view(torch.uint8))


def synchronize(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def invoke(fn: Callable[..., Any], build: Callable[[], Call], device: str, check_mutation: bool = True) -> Outcome:
    """Call ``fn`` on a fresh build of the inputs; never raises for what ``fn`` does."""
    call = build()
    try:
        value = fn(*call.args, **call.kwargs)
        synchronize(device)
    except Exception as exc:  # a candidate's failure is data, not a crash of the harness
        return Outcome(error=exc)
    mutated = check_mutation and any(
        not _same_bytes(after, pristine) for after, pristine in zip(_tensors(call), _tensors(build()))
    )
    return Outcome(value=value, mutated_input=mutated)
