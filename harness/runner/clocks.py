"""Clocks: how a runner times its own calls.  Runs in the runner process (the judge only measures the
machine's copy bandwidth with ``measure_copy_bandwidth``).

On CPU ``perf_counter_ns`` around ``n`` calls with the garbage collector off.  On CUDA device events around
each call, the L2 flushed (a buffer 4x the L2 is zeroed) before each call outside the event pair,
synchronisation outside the timed region, and optionally (``cuda_graphs``) each call replayed from a CUDA
graph captured once per function and input, so that launch-bound sizes measure device work rather than
host overhead.  ``warm_up`` calls until three consecutive calls agree, so compilation, caches and the
allocator stay out of the numbers.
"""

from __future__ import annotations

import gc
import time
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Callable

import torch

from harness.core import stats
from harness.core.machine import effective_cache, last_level_cache_bytes
from harness.core.target import Call, map_tensors

Fn = Callable[..., Any]


def synchronize(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


class CpuClock:
    written_s = 0.0  # seconds the last ``time`` spent in ``prime`` (untimed: the judge's round-time check)

    def reset(self) -> None:
        pass

    def time(self, fn: Fn, calls: list[Call], n: int, start: int = 0, replay: bool = True,
             keep: list | None = None, prime: Callable[[int], object] | None = None) -> float:
        """Seconds per call over ``n`` calls rotating through ``calls``; each call's return value is appended
        to ``keep`` if given (so the judge can check any timed call's output afterwards).  ``prime(i)``, if
        given, runs untimed before call ``i`` (of ``0..n-1``), and each call is timed on its own."""
        gc_was_enabled = gc.isenabled()
        gc.disable()
        try:
            if prime is not None:
                total = written = 0
                for i in range(n):
                    call = calls[(start + i) % len(calls)]
                    t0 = time.perf_counter_ns()
                    prime(i)
                    t1 = time.perf_counter_ns()
                    out = fn(*call.args, **call.kwargs)
                    total += time.perf_counter_ns() - t1
                    written += t1 - t0
                    if keep is not None:
                        keep.append(out)
                self.written_s = written / 1e9
                return total / n / 1e9
            if keep is None:
                t0 = time.perf_counter_ns()
                for i in range(start, start + n):
                    call = calls[i % len(calls)]
                    fn(*call.args, **call.kwargs)
                t1 = time.perf_counter_ns()
            else:
                t0 = time.perf_counter_ns()
                for i in range(start, start + n):
                    call = calls[i % len(calls)]
                    keep.append(fn(*call.args, **call.kwargs))
                t1 = time.perf_counter_ns()
        finally:
            if gc_was_enabled:
                gc.enable()
        self.written_s = 0.0
        return (t1 - t0) / n / 1e9


class CudaClock:
    def __init__(self, l2_flush: bool, graphs: bool = False) -> None:
        l2 = torch.cuda.get_device_properties(torch.cuda.current_device()).L2_cache_size
        self.flush = torch.empty(4 * max(l2, 1 << 20), dtype=torch.uint8, device="cuda") if l2_flush else None
        self.graphs = graphs
        self._captured: dict[tuple[int, int], torch.cuda.CUDAGraph] = {}

    def reset(self) -> None:
        """Forget captured graphs (they hold their own copies of the outputs' memory)."""
        self._captured.clear()

    def _graph(self, fn: Fn, call: Call) -> tuple[torch.cuda.CUDAGraph, Call, Any]:
        """The graph of ``fn`` captured once on a private copy of ``call``'s inputs (its static inputs), and
        its static output: each replay runs on whatever was copied into the static inputs."""
        key = id(fn)
        if key not in self._captured:
            static = call.map(lambda v: v.clone() if isinstance(v, torch.Tensor) else v)
            side = torch.cuda.Stream()
            side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(side):  # warm up on a side stream, as capture requires
                fn(*static.args, **static.kwargs)
            torch.cuda.current_stream().wait_stream(side)
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph):
                out = fn(*static.args, **static.kwargs)
            self._captured[key] = (graph, static, out)
        return self._captured[key]

    def time(self, fn: Fn, calls: list[Call], n: int, start: int = 0, replay: bool = True,
             keep: list | None = None, prime: Callable[[int], object] | None = None) -> float:
        """As ``CpuClock.time``, each call between its own pair of device events (``prime(i)`` before them)."""
        replay = replay and self.graphs
        pairs = [(torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)) for _ in range(n)]
        gc_was_enabled = gc.isenabled()
        gc.disable()
        try:
            for i, (begin, end) in zip(range(start, start + n), pairs):
                call = calls[i % len(calls)]
                if prime is not None:
                    prime(i - start)
                graph = None
                if replay:  # captured, and this call's inputs copied in, outside the events
                    graph, static, out = self._graph(fn, call)
                    for dst, src in zip(static.tensors(), call.tensors()):
                        dst.copy_(src)
                if self.flush is not None:
                    self.flush.zero_()
                begin.record()
                if graph is not None:
                    graph.replay()
                else:
                    out = fn(*call.args, **call.kwargs)
                end.record()
                if keep is not None:  # a replay's output is overwritten by the next: a copy, outside the events
                    keep.append(map_tensors(torch.Tensor.clone, out) if graph is not None else out)
            torch.cuda.synchronize()
        finally:
            if gc_was_enabled:
                gc.enable()
        return sum(b.elapsed_time(e) for b, e in pairs) / n / 1e3


def make_clock(device: str, l2_flush: bool = True, cuda_graphs: bool = False) -> CpuClock | CudaClock:
    return CudaClock(l2_flush, cuda_graphs) if device.startswith("cuda") else CpuClock()


def copy_seconds(device: str, nbytes: int, repeats: int = 5) -> float:
    """The best time of a copy of ``nbytes`` (reading and writing them) on ``device``: by the judge, for the
    physics check of a size's timings (``bench``).  On CUDA by device events after an L2 flush, as runners
    time calls, so that launch overhead is not counted."""
    src = torch.ones(max(1, nbytes // 4), dtype=torch.float32, device=device)
    dst = torch.empty_like(src)
    best = float("inf")
    if device.startswith("cuda"):
        l2 = torch.cuda.get_device_properties(torch.cuda.current_device()).L2_cache_size
        flush = torch.empty(4 * max(l2, 1 << 20), dtype=torch.uint8, device=device)
        for _ in range(repeats + 1):
            flush.zero_()
            begin, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            begin.record()
            dst.copy_(src)
            end.record()
            end.synchronize()
            best = min(best, begin.elapsed_time(end) / 1e3)
        return best
    for _ in range(repeats + 1):
        t0 = time.perf_counter()
        dst.copy_(src)
        best = min(best, time.perf_counter() - t0)
    return best


@dataclass(frozen=True)
class CopyReading:
    """What copies say of the CPU cache: the largest working set (doubling from 1 MiB) that still copies at
    least 1.3x faster than one far beyond any cache (None: none did), and whether a working set of half the
    reported cache copies at memory speed (within 10% of the far one; False where nothing is reported)."""
    knee: int | None
    half_reported_at_memory_speed: bool = False


def copy_reading(reported: int | None, largest: int = 1 << 30,
                 gbps: Callable[[int], float] | None = None) -> CopyReading:
    """The CPU cache as copies see it (the far working set: 4x the reported size, at least 256 MiB).  About
    a second, by the judge, before a CPU run's timing: a virtual machine may report its host's whole cache
    (480 MiB on a 2-core Xeon VM), which the bench must not take for the share this machine gets."""
    far = min(largest, max(256 << 20, 4 * (reported or 0)))
    # a working set is a copy of half its bytes into the other half (a test passes a bandwidth curve instead)
    gbps = gbps or (lambda total: total / copy_seconds("cpu", total // 2, max(3, (256 << 20) // total)))
    memory = gbps(far)
    speeds = {size: gbps(size) for size in (1 << 20 << k for k in range(16)) if size < far}
    fast = [size for size, speed in speeds.items() if speed >= 1.3 * memory]
    half = reported // 2 if reported and reported // 2 < far else None
    half_speed = None if half is None else speeds[half] if half in speeds else gbps(half)  # not copied twice
    return CopyReading(max(fast) if fast else None, half_speed is not None and half_speed < 1.1 * memory)


@lru_cache(maxsize=1)
def cpu_cache() -> tuple[int | None, str]:
    """This machine's CPU cache as the bench uses it, and where the figure comes from
    (``machine.effective_cache`` of the reported size and ``copy_reading``): measured once per process."""
    reported = last_level_cache_bytes()
    reading = copy_reading(reported)
    return effective_cache(reported, reading.knee, reading.half_reported_at_memory_speed)


def measure_copy_bandwidth(device: str, nbytes: int | None = None) -> float:
    """The machine's copy bandwidth in GB/s (bytes read plus bytes written), median of several copies."""
    nbytes = nbytes or ((2 << 30) if device.startswith("cuda") else (256 << 20))
    src = torch.ones(nbytes // 4, dtype=torch.float32, device=device)
    dst = torch.empty_like(src)
    times = []
    for _ in range(7):
        synchronize(device)
        t0 = time.perf_counter()
        dst.copy_(src)
        synchronize(device)
        times.append(time.perf_counter() - t0)
    return 2 * nbytes / stats.median(times[2:]) / 1e9


def warm_up(fn: Fn, calls: list[Call], clock: Any, max_s: float) -> float:
    """Call until three consecutive single calls agree within 20%; return the typical per-call time."""
    times: list[float] = []
    deadline = time.perf_counter() + max_s
    while True:
        times.append(clock.time(fn, calls, 1, start=len(times)))
        recent = times[-3:]
        if len(times) >= 3 and max(recent) <= 1.2 * min(recent):
            return stats.median(recent)
        if time.perf_counter() > deadline or len(times) >= 200:
            return stats.median(recent)


def swallowing(fn: Fn) -> Fn:
    """``fn`` returning None where it raises (a call that raises is timed up to its raise)."""
    def call(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except Exception:
            return None

    return call
