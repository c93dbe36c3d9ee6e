"""Profiling: where a candidate's time goes, line by line and kernel by kernel.

``profile`` runs in the function's runner and returns a ``Profile`` (data); ``harness.render.explain`` puts
two of them in words.

- Lines: line_profiler over the candidate's own function on one size, a few calls.  On CUDA a line's
  wall time measures launches, not work, so the judge takes CUDA profiles in a runner started with
  ``CUDA_LAUNCH_BLOCKING=1``: every launch then returns only when its kernel has finished, and a line's
  time is the device time of the work it launched (``Profile.timing`` says which clock a profile used).
- Kernels: ``torch.profiler`` over one call: each op or kernel with its calls, total and mean time and
  share of the call — the view for candidates whose work is not in Python lines (Triton, C, compiled).
"""

from __future__ import annotations

import linecache

import ast
import contextlib
import gc
import os
import re
import sys
import time
from typing import Any, Callable


from harness.core.result import KernelStat, LineStat, Profile
from harness.core.target import Case, Target

WALL = "CPU wall time per line"
DEVICE = "device time per line (CUDA_LAUNCH_BLOCKING=1: each launch waits for its kernel)"


def _line_profile(fn: Callable[..., Any], calls: list, device: str, min_calls: int, budget_s: float) -> tuple[list, int, str]:
    from line_profiler import LineProfiler

    from harness.runner.clocks import synchronize

    profiler = LineProfiler()
    wrapped = profiler(fn)
    done, deadline = 0, time.perf_counter() + budget_s
    gc_was_enabled = gc.isenabled()
    gc.disable()  # as in timing rounds: a collection would be billed to whichever line allocates
    try:
        while done < min_calls or (time.perf_counter() < deadline and done < 50):
            call = calls[done % len(calls)]
            wrapped(*call.args, **call.kwargs)
            synchronize(device)
            done += 1
    finally:
        if gc_was_enabled:
            gc.enable()
    stats = profiler.get_stats()
    ((filename, _, _), timings), = [(k, v) for k, v in stats.timings.items() if v] or [((fn.__code__.co_filename, 0, ""), [])]
    return [(line, hits, t * stats.unit) for line, hits, t in timings], done, filename


@contextlib.contextmanager
def _quiet_stderr():
    """Kineto prints start/stop lines on file descriptor 2 from C++; hide them (the candidate has already run
    once outside this window, so its own warnings were shown)."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def _kernel_table(fn: Callable[..., Any], call: Any, device: str) -> tuple[list[KernelStat], str]:
    """One call under torch.profiler (the caller has warmed ``fn`` up).  On the CPU, the autograd
    profiler without Kineto: the same per-op table, without Kineto's second of start-up in every runner."""
    import torch
    from torch.profiler import ProfilerActivity, profile

    from harness.runner.clocks import synchronize

    if device == "cuda":
        session: Any = profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA])
    else:
        session = torch.autograd.profiler.profile(use_kineto=False)
    with _quiet_stderr(), session as prof:
        fn(*call.args, **call.kwargs)
        synchronize(device)
    events = prof.key_averages()
    if device == "cuda":
        clock = "device"
        rows = [(e.key, e.count, getattr(e, "self_device_time_total", 0.0) or getattr(e, "self_cuda_time_total", 0.0))
                for e in events]
    else:
        clock = "cpu"
        rows = [(e.key, e.count, e.self_cpu_time_total) for e in events]
    rows = [(name, count, us * 1e-6) for name, count, us in rows if us > 0]
    total = sum(t for _, _, t in rows) or 1.0
    rows.sort(key=lambda r: -r[2])
    return [KernelStat(name, count, t, t / count, 100 * t / total) for name, count, t in rows], clock


def profile(fn: Callable[..., Any], spec: str, target: Target, size: Case, device: str = "cpu",
            min_calls: int = 3, budget_s: float = 0.3, calls: list | None = None) -> Profile:
    """Profile ``fn`` in this process (the runner's; on CUDA one started with ``CUDA_LAUNCH_BLOCKING=1``),
    on ``calls`` if given (inputs the runner already built for ``size``)."""
    from harness.runner.clocks import synchronize

    calls = calls or [target.build(size, device)]
    fn(*calls[0].args, **calls[0].kwargs)  # first-call costs stay out of the line times
    synchronize(device)
    timings, done, filename = _line_profile(fn, calls, device, min_calls, budget_s)
    text = "".join(linecache.getlines(filename))  # the run's snapshot of the source (``snapshot``), not the disk
    source, statements = text.splitlines(), statement_sources(text)
    total = sum(t for _, _, t in timings) or 1.0
    lines = tuple(
        LineStat(line, hits, t / done, t / hits if hits else 0.0, 100 * t / total,
                 source[line - 1].strip() if 0 < line <= len(source) else "",
                 kind_of(statements.get(line, source[line - 1] if 0 < line <= len(source) else ""), target.kinds_on(device)))
        for line, hits, t in timings
    )
    kernels, clock = _kernel_table(fn, calls[0], device)
    blocking = device == "cuda" and os.environ.get("CUDA_LAUNCH_BLOCKING") == "1"
    return Profile(spec=spec, function=getattr(fn, "__qualname__", str(fn)), file=filename, size=size.name,
                   device=device, timing=DEVICE if blocking else WALL, calls=done, total_s=total / done,
                   lines=lines, kernel_clock=clock, kernels=tuple(kernels[:25]))


# -- the derived explanation ------------------------------------------------------------------------

def kind_of(source: str, kinds: tuple[tuple[str, str], ...]) -> str:
    """The first of a target's ``line_kinds`` whose pattern matches the statement (comments ignored)."""
    code = "\n".join(line.split("#", 1)[0] for line in source.splitlines())
    for kind, pattern in kinds:
        if re.search(pattern, code):
            return kind
    return "other"


def statement_sources(text: str) -> dict[int, str]:
    """For every line of a module, the source of the innermost simple statement that spans it (so a
    multi-line statement is classified as a whole); compound statements contribute their header line."""
    try:
        tree = ast.parse(text)
    except SyntaxError:
        return {}
    spans: dict[int, str] = {}
    for node in ast.walk(tree):
        if not isinstance(node, ast.stmt):
            continue
        compound = hasattr(node, "body")
        end = node.lineno if compound else (node.end_lineno or node.lineno)
        segment = text.splitlines()[node.lineno - 1] if compound else (ast.get_source_segment(text, node) or "")
        for line in range(node.lineno, end + 1):
            if line not in spans or not compound:  # inner statements are visited after outer ones
                spans[line] = segment
    return spans
