"""The timing engine's logic with a scripted clock (no real time measured, so nothing can flake):
interleaving, warm-up, convergence, budget and the paired speedup.  Real-clock behaviour is shown by
benchmarks/, which prints figures."""

import itertools

import pytest
import torch

from harness import bench as bench_mod
from harness.bench import Bench, BenchConfig, CpuClock
from harness.target import get_target

TARGET = get_target("quantize_k_cache")
SIZE = TARGET.parse_size("1x4x576")


class ScriptedClock:
    """Per-call seconds from a table per function, with a slow first call (warm-up) and a fixed jitter."""

    def __init__(self, seconds: dict, first_call_penalty: float = 10.0) -> None:
        self.seconds, self.penalty, self.calls, self.log = seconds, first_call_penalty, {}, []
        self.jitter = itertools.cycle([1.0, 1.004, 0.996, 1.002, 0.998])

    def reset(self):
        pass

    def time(self, fn, calls, n, start=0, replay=True):
        self.log.append(fn.__name__)
        first = self.calls.get(fn, 0) == 0
        self.calls[fn] = self.calls.get(fn, 0) + n
        return self.seconds[fn.__name__] * (self.penalty if first else 1.0) * next(self.jitter)


def base(x, dv=512, tile_size=128):
    return x


def cand(x, dv=512, tile_size=128):
    return x


def make(seconds, **config):
    b = Bench(TARGET, "cpu", BenchConfig(**{"budget_s": 5.0, "min_rounds": 10, **config}), copy_gbps=10.0)
    b.clock = ScriptedClock(seconds)
    return b


def test_rounds_alternate_abba_after_warm_up():
    b = make({"base": 1e-3, "cand": 1e-3})
    b.compare(base, cand, SIZE)
    timed = b.clock.log[-8:]
    assert timed == ["base", "cand", "cand", "base", "base", "cand", "cand", "base"]


def test_identical_functions_are_no_significant_difference():
    t = make({"base": 1e-3, "cand": 1e-3}).compare(base, cand, SIZE)
    assert t.verdict == "no significant difference"
    assert t.converged and t.candidate.rounds >= 10
    assert t.speedup_ci[0] <= 1.0 <= t.speedup_ci[1]


def test_ten_percent_slower_is_slower_and_twice_as_fast_is_faster():
    slower = make({"base": 1e-3, "cand": 1.1e-3}).compare(base, cand, SIZE)
    faster = make({"base": 2e-3, "cand": 1e-3}).compare(base, cand, SIZE)
    assert slower.verdict == "slower" and slower.speedup == pytest.approx(1 / 1.1, rel=0.01)
    assert faster.verdict == "faster" and faster.speedup == pytest.approx(2.0, rel=0.01)


def test_warm_up_keeps_the_first_call_out_of_the_numbers():
    t = make({"base": 1e-3, "cand": 1e-3}).compare(base, cand, SIZE)
    assert t.baseline.min_s > 0.9e-3 and max(t.baseline_rounds_s) < 1.1e-3


def test_budget_stops_an_unconverged_run():
    b = make({"base": 1e-3, "cand": 1e-3}, budget_s=0.0, target_rse=0.0)
    t = b.compare(base, cand, SIZE)
    assert not t.converged and t.candidate.rounds == 2


def test_roofline_numbers_come_from_bytes_moved():
    t = make({"base": 1e-3, "cand": 1e-3}).compare(base, cand, SIZE)
    call = TARGET.build(SIZE, "cpu")
    assert t.bytes_moved == TARGET.bytes_moved(call) == 4 * (576 * 2 + 656)
    assert t.gbps == pytest.approx(t.bytes_moved / t.candidate.median_s / 1e9)
    assert t.pct_copy_bandwidth == pytest.approx(100 * t.gbps / 10.0)


def test_inputs_rotate_among_distinct_buffers():
    b = Bench(TARGET, "cpu", BenchConfig(max_buffers=3))
    calls = b.inputs(SIZE)
    assert len(calls) == 3
    assert not torch.equal(calls[0].args[0], calls[1].args[0])


def test_cpu_clock_turns_off_gc_during_a_round():
    seen = []

    def probe(x, **kwargs):
        import gc
        seen.append(gc.isenabled())

    CpuClock().time(probe, [TARGET.build(SIZE, "cpu")], 3)
    assert seen == [False, False, False]


def test_copy_bandwidth_is_positive():
    assert bench_mod.measure_copy_bandwidth("cpu", 8 << 20) > 0.1
