"""Running candidates so that they cannot fool or break the harness.

- One call (``invoke``): inputs freshly built from the case (so strides, offsets and aliasing are exactly
  the case's, which ``clone()`` would not preserve), exceptions captured rather than propagated, CUDA work
  synchronised inside the guarded region (so asynchronous errors are the candidate's), and the inputs
  compared afterwards with another fresh build to catch a candidate that writes into its input.
- A whole job (``run_isolated``): a spawned child process with a timeout, so that a candidate that hangs,
  calls ``os._exit`` or crashes the interpreter costs only its own verdict, with a one-line reason.
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


# -- process isolation -------------------------------------------------------------------------------

class Isolated(Exception):
    """A child process did not return a result: it timed out, exited or was killed by a signal."""


def _child(conn: Any, job: Callable[..., Any], args: tuple) -> None:
    def progress(event: str, **info: Any) -> None:
        conn.send(("progress", (event, info)))

    try:
        value = job(*args, progress=progress)
    except BaseException as exc:  # report a harness-side failure instead of dying silently
        conn.send(("failed", f"{type(exc).__name__}: {_first_line(exc)}"))
    else:
        conn.send(("result", value))
    finally:
        conn.close()


def _death(exitcode: int | None) -> str:
    import signal

    if exitcode is not None and exitcode < 0:
        try:
            return f"killed by signal {signal.Signals(-exitcode).name}"
        except ValueError:
            return f"killed by signal {-exitcode}"
    return f"exited with code {exitcode}"


def run_isolated(job: Callable[..., Any], args: tuple, timeout: float,
                 progress: Callable[..., None] | None = None) -> Any:
    """Run ``job(*args, progress=...)`` in a spawned child and return its result; raise ``Isolated`` with a
    one-line reason when the child times out, exits or crashes.  Progress events are forwarded.  The child's
    start-up (interpreter, imports) happens before the job, so it never falls inside a timed region."""
    import multiprocessing
    import time

    context = multiprocessing.get_context("spawn")
    receiver, sender = context.Pipe(duplex=False)
    child = context.Process(target=_child, args=(sender, job, args), daemon=True)
    child.start()
    sender.close()
    deadline = time.monotonic() + timeout
    try:
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise Isolated(f"timed out after {timeout:g} s")
            if not receiver.poll(min(remaining, 0.5)):
                if not child.is_alive() and not receiver.poll(0):
                    child.join()
                    raise Isolated(_death(child.exitcode))
                continue
            try:
                kind, payload = receiver.recv()
            except (EOFError, OSError):
                child.join(5)
                raise Isolated(_death(child.exitcode)) from None
            if kind == "progress" and progress is not None:
                event, info = payload
                progress(event, **info)
            elif kind == "result":
                return payload
            elif kind == "failed":
                raise Isolated(payload)
    finally:
        if child.is_alive():
            child.kill()
        child.join(5)
        receiver.close()
