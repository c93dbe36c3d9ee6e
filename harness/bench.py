"""Timing: a candidate against the baseline, in interleaved rounds, until the medians are known well.

Per size: inputs are built before timing and rotated among several buffers (no candidate times its own
cache, no allocation of inputs in the timed region); both functions are warmed up until three consecutive
calls agree (compilation, caches and the allocator are out of the numbers); then rounds alternate
baseline/candidate (ABBA order, so drift and order effects fall on both) until the relative standard error
of both medians is under the target, or the time budget is spent (``converged`` says which).

Clocks: on CPU ``perf_counter_ns`` with the garbage collector off during a round and a fixed torch thread
count; on CUDA device events around each call, the L2 flushed (a buffer 4x the L2 is zeroed) before each
call outside the event pair, synchronisation outside the timed region, and optionally (``cuda_graphs``)
each call replayed from a CUDA graph captured once per function and input, so that launch-bound sizes
measure device work rather than host overhead.
"""

from __future__ import annotations

import gc
import math
import time
from dataclasses import dataclass
from typing import Any, Callable

import torch

from harness import stats
from harness.result import BenchSettings, SizeTiming
from harness.sandbox import synchronize
from harness.target import Call, Case, Target

Fn = Callable[..., Any]


@dataclass(frozen=True)
class BenchConfig:
    target_rse: float = 0.01
    budget_s: float = 3.0  # per candidate and size, baseline rounds included
    noise_floor: float = 0.05
    min_rounds: int = 10
    max_rounds: int = 5000
    warmup_max_s: float = 60.0  # compilation can take this long
    round_target_s: float = 0.005  # calls per round are chosen so a round lasts about this long
    buffer_bytes: int = 256 << 20  # rotate among as many input sets as fit in this
    max_buffers: int = 4
    threads: int | None = None
    l2_flush: bool = True
    cuda_graphs: bool = False  # replay each call from a CUDA graph: device work without launch overhead

    def settings(self) -> BenchSettings:
        return BenchSettings(target_rse=self.target_rse, budget_s=self.budget_s, noise_floor=self.noise_floor,
                             min_rounds=self.min_rounds, warmup_max_s=self.warmup_max_s,
                             threads=torch.get_num_threads(), l2_flush=self.l2_flush, cuda_graphs=self.cuda_graphs)


class CpuClock:
    def reset(self) -> None:
        pass

    def time(self, fn: Fn, calls: list[Call], n: int, start: int = 0, replay: bool = True) -> float:
        """Seconds per call over ``n`` calls rotating through ``calls``."""
        gc_was_enabled = gc.isenabled()
        gc.disable()
        try:
            t0 = time.perf_counter_ns()
            for i in range(start, start + n):
                call = calls[i % len(calls)]
                fn(*call.args, **call.kwargs)
            t1 = time.perf_counter_ns()
        finally:
            if gc_was_enabled:
                gc.enable()
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

    def _graph(self, fn: Fn, index: int, call: Call) -> torch.cuda.CUDAGraph:
        key = (id(fn), index)
        if key not in self._captured:
            side = torch.cuda.Stream()
            side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(side):  # warm up on a side stream, as capture requires
                fn(*call.args, **call.kwargs)
            torch.cuda.current_stream().wait_stream(side)
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph):
                fn(*call.args, **call.kwargs)
            self._captured[key] = graph
        return self._captured[key]

    def time(self, fn: Fn, calls: list[Call], n: int, start: int = 0, replay: bool = True) -> float:
        replay = replay and self.graphs
        pairs = [(torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)) for _ in range(n)]
        gc_was_enabled = gc.isenabled()
        gc.disable()
        try:
            for i, (begin, end) in zip(range(start, start + n), pairs):
                call = calls[i % len(calls)]
                graph = self._graph(fn, i % len(calls), call) if replay else None  # captured outside the events
                if self.flush is not None:
                    self.flush.zero_()
                begin.record()
                if graph is not None:
                    graph.replay()
                else:
                    fn(*call.args, **call.kwargs)
                end.record()
            torch.cuda.synchronize()
        finally:
            if gc_was_enabled:
                gc.enable()
        return sum(b.elapsed_time(e) for b, e in pairs) / n / 1e3


def make_clock(device: str, config: BenchConfig) -> CpuClock | CudaClock:
    return CudaClock(config.l2_flush, config.cuda_graphs) if device.startswith("cuda") else CpuClock()


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


def _warm_up(fn: Fn, calls: list[Call], clock: Any, max_s: float) -> float:
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


def _swallowing(fn: Fn) -> Fn:
    def call(*args: Any, **kwargs: Any) -> None:
        try:
            fn(*args, **kwargs)
        except Exception:
            pass

    return call


class Bench:
    """Times candidates of one target against one baseline on one device."""

    def __init__(self, target: Target, device: str = "cpu", config: BenchConfig = BenchConfig(),
                 copy_gbps: float | None = None) -> None:
        if config.threads:
            torch.set_num_threads(config.threads)
        self.target, self.device, self.config = target, device, config
        self.clock = make_clock(device, config)
        self.copy_gbps = copy_gbps

    def inputs(self, size: Case) -> list[Call]:
        first = self.target.build(size, self.device)
        per_set = max(1, self.target.bytes_moved(first))
        count = max(1, min(self.config.max_buffers, self.config.buffer_bytes // per_set))
        return [first] + [self.target.build(Case(size.name, size.family, size.params, size.seed + i), self.device)
                          for i in range(1, count)]

    def compare(self, baseline: Fn, candidate: Fn, size: Case, calls: list[Call] | None = None) -> SizeTiming:
        cfg = self.config
        calls = calls or self.inputs(size)
        per_call = {id(f): _warm_up(f, calls, self.clock, cfg.warmup_max_s) for f in (baseline, candidate)}
        n = {key: max(1, math.ceil(cfg.round_target_s / max(t, 1e-9))) for key, t in per_call.items()}
        base_rounds: list[float] = []
        cand_rounds: list[float] = []
        deadline = time.perf_counter() + cfg.budget_s
        converged = False
        for r in range(cfg.max_rounds):
            order = ((baseline, base_rounds), (candidate, cand_rounds))
            for fn, rounds in (order if r % 2 == 0 else order[::-1]):
                rounds.append(self.clock.time(fn, calls, n[id(fn)], start=r))
            if len(base_rounds) >= cfg.min_rounds and max(
                    stats.relative_stderr(base_rounds), stats.relative_stderr(cand_rounds)) < cfg.target_rse:
                converged = True
                break
            if time.perf_counter() > deadline and len(base_rounds) >= 2:
                break
        self.clock.reset()
        return self._timing(size, calls[0], n[id(candidate)], converged, base_rounds, cand_rounds)

    def best_of(self, baseline: Fn, candidate: Fn, call: Call, repeats: int = 5) -> tuple[float, float]:
        """Best single-call time of each, interleaved.  A call that raises is timed up to its raise
        (an error-parity case costs the precondition check)."""
        best = [math.inf, math.inf]
        for _ in range(repeats):
            for i, fn in enumerate((baseline, candidate)):
                best[i] = min(best[i], self.clock.time(_swallowing(fn), [call], 1, replay=False))
        return best[0], best[1]

    def _timing(self, size: Case, call: Call, calls_per_round: int, converged: bool,
                base_rounds: list[float], cand_rounds: list[float]) -> SizeTiming:
        ratios = stats.paired_ratios(base_rounds, cand_rounds)
        ci = stats.bootstrap_median_ci(ratios)
        cand = stats.summarize(cand_rounds)
        nbytes = self.target.bytes_moved(call)
        gbps = nbytes / cand.median_s / 1e9
        return SizeTiming(
            size=size.name, input=self.target.describe(size), bytes_moved=nbytes, calls_per_round=calls_per_round,
            converged=converged, baseline=stats.summarize(base_rounds), candidate=cand,
            speedup=stats.median(ratios), speedup_ci=ci, verdict=stats.classify(ci, self.config.noise_floor),
            gbps=gbps, pct_copy_bandwidth=100 * gbps / self.copy_gbps if self.copy_gbps else None,
            baseline_rounds_s=tuple(base_rounds), candidate_rounds_s=tuple(cand_rounds),
        )
