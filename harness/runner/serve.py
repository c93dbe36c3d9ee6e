"""The runner process, started by the judge (``sandbox``) as ``python -c BOOT READ_FD WRITE_FD``: the
bootstrap reads the run's snapshot of the sources from the pipe and imports this module, and every module
of the checkout after it, from that copy, never from the disk (``snapshot``); then ``main`` reads ``hello``.

A runner holds exactly one function under test (a candidate, or the baseline): it loads that one spec,
then serves the judge's requests over the pipe (``protocol``) with a ``Worker`` — call on a case, prepare
a timing size, time a round, time one case, profile — and sends back only data.  It decides nothing:
no oracle, no comparison, no statistics happen here.  Its standard output is its standard error, so a
function that prints cannot write into the protocol by accident (on purpose it can; the judge checks
everything it reads); both go to a file the judge relays, sanitised, when it stops the runner.  It asks
the kernel to kill it if the judge dies.
"""

from __future__ import annotations

import dataclasses
import os
import sys
from typing import Any

from harness.core import messages as m
from harness.core.protocol import Closed, error_name, first_line, read_frame, write_frame


def _die_with_parent() -> None:
    try:
        import ctypes
        import signal

        ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGKILL))  # PR_SET_PDEATHSIG
    except Exception:  # not Linux: the judge still kills its runners' process groups
        pass


def _case(data: Any) -> Any:
    from harness.core.target import Case

    if not isinstance(data, dict) or not isinstance(data.get("params"), dict):
        raise ValueError("malformed case")
    return Case(str(data.get("name", "")), str(data.get("family", "")), data["params"], int(data.get("seed", 0)))


def _given(request: m.CallOn, blob: bytes) -> Any:
    """The inputs the judge sent with a ``call_on`` request: tensors and plain keyword values."""
    from harness.core.protocol import decode_value
    from harness.core.target import Call

    args, _ = decode_value(request.args, blob)
    if not isinstance(args, tuple):
        raise ValueError("malformed call_on request")
    return Call(args, request.kwargs)


def _answer(request: m.Message, sent: bytes, worker: Any, spec: str) -> tuple[dict, bytes]:
    """The reply to one request, and the bytes that go with it."""
    from harness.runner.worker import called

    if isinstance(request, m.CallCase):
        reply, blobs = worker.call(_case(request.case), request.device)
    elif isinstance(request, m.CallOn):
        reply, blobs = worker.call(None, request.device, _given(request, sent))
    elif isinstance(request, m.Prepare):
        prepared = worker.prepare(_case(request.size), request.fresh, request.warm, request.move_inputs)
        return m.Prepared(**prepared).header(), b""
    elif isinstance(request, m.Place):
        worker.place(request.start, request.n, request.first)
        return m.Ok().header(), b""
    elif isinstance(request, (m.TimedOutput, m.OutputFor)):
        value = (worker.timed_output(request.index, request.digest) if isinstance(request, m.TimedOutput)
                 else worker.output_for(request.start, request.index, request.digest))
        if request.digest:
            return m.Digest(value).header(), b""
        reply, blobs = called(value)
    elif isinstance(request, m.Round):
        seconds = worker.round(request.n, request.start, request.first)
        return m.Timed(seconds, getattr(worker.clock, "written_s", 0.0)).header(), b""
    elif isinstance(request, m.TimeCase):
        return m.Timed(worker.time_case(_case(request.case))).header(), b""
    elif isinstance(request, m.Release):
        worker.release()
        return m.Ok().header(), b""
    elif isinstance(request, m.ProfileAt):
        return m.Profiled(dataclasses.asdict(worker.profile(spec, _case(request.size)))).header(), b""
    else:
        return m.Failed(f"unknown request {request.kind!r}").header(), b""
    return reply, b"".join(blobs)


def _serve(read_fd: int, write_fd: int, worker: Any, spec: str) -> None:
    """Answer requests until the judge closes the pipe (the judge kills a runner when done with it)."""
    from harness.runner.audit import StateChanged

    while True:
        try:
            header, sent = read_frame(read_fd)
        except Closed:
            return
        try:
            reply, blob = _answer(m.parse(header, *m.REQUESTS), sent, worker, spec)
        except StateChanged as exc:
            reply, blob = m.StateChanged(exc.changes).header(), b""
        except Exception as exc:  # the function raised while timed or profiled, or a request was malformed
            reply, blob = m.Failed(f"{error_name(exc).rsplit('.', 1)[-1]}: {first_line(str(exc))}").header(), b""
        write_frame(write_fd, reply, blob)


def main(argv: list[str]) -> int:
    from harness.runner.isolation import harden_runner  # before anything is read: not dumpable, no capabilities

    harden_runner()
    read_fd, write_fd = int(argv[0]), int(argv[1])
    _die_with_parent()
    os.dup2(2, 1)
    hello, _ = read_frame(read_fd)
    sys.path[:0] = [p for p in hello["path"] if isinstance(p, str)]

    import torch

    from harness.core.config import BenchConfig
    from harness.runner import audit
    from harness.core.candidates import SpecError
    from harness.runner.load import resolve
    from harness.core.target import load_target
    from harness.runner.worker import Worker

    target = load_target(hello["target"])
    config = BenchConfig(**hello["config"])
    if config.threads:  # the judge's setting, applied before the audit's first reading
        torch.set_num_threads(config.threads)
    before = audit.snapshot()
    try:
        fn = resolve(hello["spec"], target)
    except SpecError as exc:
        write_frame(write_fd, m.LoadFailed(str(exc)).header())
        return 0
    except BaseException as exc:  # SystemExit or worse at import time: still one line for the judge
        write_frame(write_fd, m.LoadFailed(f"cannot import {hello['spec']}: {type(exc).__name__}: "
                                         f"{first_line(str(exc))}").header())
        return 0
    worker = Worker(fn, target, hello["device"], config)
    write_frame(write_fd, m.Ready(torch.get_num_threads(), audit.changes(before, audit.snapshot())).header())
    _serve(read_fd, write_fd, worker, hello["spec"])
    return 0


if __name__ == "__main__":  # by hand, from the disk; the judge starts runners from a snapshot (``snapshot.BOOT``)
    sys.exit(main(sys.argv[1:]))
