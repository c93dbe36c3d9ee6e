"""The timing engine's logic with a scripted clock (no real time measured, so nothing can flake):
interleaving, warm-up, convergence, budget, the paired speedup, and the check that both runners were
given the same inputs.  The two functions are in-process ``Worker``s (what a runner serves); real-clock
behaviour, across real runners, is shown by benchmarks/, which prints figures."""

import itertools
import warnings

import pytest
import torch

from harness import clocks
from harness.bench import Bench, BenchConfig, InputsDiffer
from harness.clocks import CpuClock
from harness.target import get_target
from harness.worker import Worker

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
        self.log.append((fn.__name__, n))
        first = self.calls.get(fn, 0) == 0
        self.calls[fn] = self.calls.get(fn, 0) + n
        return self.seconds[fn.__name__] * (self.penalty if first else 1.0) * next(self.jitter)


def base(x, dv=512, tile_size=128):
    return x


def cand(x, dv=512, tile_size=128):
    return x


class Scripted:
    """A bench and two workers sharing one scripted clock."""

    def __init__(self, seconds, **config):
        cfg = BenchConfig(**{"budget_s": 5.0, "min_rounds": 10, **config})
        self.bench = Bench(TARGET, "cpu", cfg, copy_gbps=10.0)
        self.clock = ScriptedClock(seconds)
        self.workers = [Worker(fn, TARGET, "cpu", cfg) for fn in (base, cand)]
        for w in self.workers:
            w._clock = self.clock

    def compare(self, size=SIZE):
        return self.bench.compare(*self.workers, size)


def make(seconds, **config):
    return Scripted(seconds, **config)


def test_rounds_alternate_abba_after_warm_up():
    b = make({"base": 1e-3, "cand": 1e-3})
    b.compare()
    assert b.clock.log[-2:] == [("base", 1), ("base", 5)]  # an untimed settling call before each round
    timed = [name for name, n in b.clock.log if n > 1][-8:]
    assert timed == ["base", "cand", "cand", "base", "base", "cand", "cand", "base"]


def test_identical_functions_are_no_significant_difference():
    t = make({"base": 1e-3, "cand": 1e-3}).compare()
    assert t.verdict == "no significant difference"
    assert t.converged and t.candidate.rounds >= 10
    assert t.speedup_ci[0] <= 1.0 <= t.speedup_ci[1]


def test_ten_percent_slower_is_slower_and_twice_as_fast_is_faster():
    slower = make({"base": 1e-3, "cand": 1.1e-3}).compare()
    faster = make({"base": 2e-3, "cand": 1e-3}).compare()
    assert slower.verdict == "slower" and slower.speedup == pytest.approx(1 / 1.1, rel=0.01)
    assert faster.verdict == "faster" and faster.speedup == pytest.approx(2.0, rel=0.01)


def test_a_clear_difference_is_decided_at_the_first_checkpoint():
    t = make({"base": 2e-3, "cand": 1e-3}, budget_s=60.0).compare()
    assert t.converged and t.candidate.rounds == 10  # min_rounds: the interval is decisive at once


def test_a_difference_smaller_than_the_floor_is_within_it_not_no_difference():
    t = make({"base": 1.02e-3, "cand": 1e-3}).compare()
    assert t.verdict == "within the noise floor" and t.label == "within ±5% (1.02x)" and t.converged
    assert t.significant and not t.speedup_ci[0] <= 1.0 <= t.speedup_ci[1]


def test_an_interval_across_the_floor_keeps_measuring_then_is_inconclusive():
    b = make({"base": 1e-3, "cand": 1.053e-3}, budget_s=0.5)
    b.clock.jitter = itertools.cycle([1.0, 1.06, 0.95, 1.03, 0.97, 1.08, 0.93, 1.01])  # a noisy machine
    t = b.compare()
    assert t.verdict == "inconclusive" and not t.converged
    assert t.label == f"inconclusive (interval {t.speedup_ci[0]:.2f}–{t.speedup_ci[1]:.2f})"
    assert t.speedup_ci[0] < 0.95 < t.speedup_ci[1]
    assert t.candidate.rounds > 10  # it went on past the first checkpoint


def test_warm_up_keeps_the_first_call_out_of_the_numbers():
    t = make({"base": 1e-3, "cand": 1e-3}).compare()
    assert t.baseline.min_s > 0.9e-3 and max(t.baseline_rounds_s) < 1.1e-3


def test_budget_stops_an_unconverged_run():
    b = make({"base": 1e-3, "cand": 1e-3}, budget_s=0.0, target_rse=0.0)
    t = b.compare()
    assert not t.converged and t.candidate.rounds == 2


def test_roofline_numbers_come_from_bytes_moved():
    t = make({"base": 1e-3, "cand": 1e-3}).compare()
    call = TARGET.build(SIZE, "cpu")
    assert t.bytes_moved == TARGET.bytes_moved(call) == 4 * (576 * 2 + 656)
    assert t.gbps == pytest.approx(t.bytes_moved / t.candidate.median_s / 1e9)
    assert t.pct_copy_bandwidth == pytest.approx(100 * t.gbps / 10.0)


def test_timing_inputs_must_be_the_same_in_both_runners():
    b = make({"base": 1e-3, "cand": 1e-3})
    b.workers[1].target = type(TARGET)()  # a runner whose inputs were tampered with: other values
    b.workers[1].target.build = lambda case, device: TARGET.build(case.__class__(case.name, case.family, case.params,
                                                                                 case.seed + 1), device)
    with pytest.raises(InputsDiffer, match="other timing inputs"):
        b.compare()


def test_inputs_rotate_among_distinct_buffers():
    calls = Worker(base, TARGET, "cpu", BenchConfig(max_buffers=3)).inputs(SIZE)
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
    assert clocks.measure_copy_bandwidth("cpu", 8 << 20) > 0.1


def test_the_pytest_benchmark_suite_groups_by_size_and_takes_the_plugins_rounds(tmp_path):
    """benchmarks/test_candidates_benchmark.py as a pytest-benchmark user runs it, with a candidate of theirs."""
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path

    (tmp_path / "mine.py").write_text("from candidates.fused import fused\n\n"
                                      "def mine(input_k_cache, dv=512, tile_size=128):\n"
                                      "    return fused(input_k_cache, dv, tile_size)\n")
    root = Path(__file__).resolve().parent.parent
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "benchmarks/test_candidates_benchmark.py",
         "-k", "4096 and not 16384", "--benchmark-min-rounds=7", "--benchmark-max-time=0.000001",
         f"--benchmark-json={tmp_path / 'b.json'}"],
        cwd=root, env={**os.environ, "HARNESS_CANDIDATE": f"{tmp_path / 'mine.py'}:mine"}, capture_output=True,
        text=True, timeout=900)  # seconds alone; generous for a loaded machine
    assert done.returncode == 0, done.stdout[-2000:]
    benchmarks = json.loads((tmp_path / "b.json").read_text())["benchmarks"]
    assert {b["group"] for b in benchmarks} == {"size 4096"}  # relative columns within one size
    assert {b["name"] for b in benchmarks} >= {"test_candidate[mine-4096]", "test_candidate[fused-4096]"}
    assert all(b["stats"]["rounds"] == 7 for b in benchmarks)  # --benchmark-min-rounds, with no time for more


def test_moved_inputs_keep_bytes_strides_offsets_and_aliasing_at_another_address():
    from harness.target import Call
    from harness.worker import moved

    storage = torch.arange(64, dtype=torch.float32)
    sliced, transposed = storage[8:40].view(4, 8), storage[:32].view(4, 8).t()  # two views of one storage
    call = Call((sliced, 3), {"other": transposed})
    got = moved(call)
    a, b = got.args[0], got.kwargs["other"]
    assert got.args[1] == 3
    for old, new in ((sliced, a), (transposed, b)):
        assert torch.equal(old, new) and new.stride() == old.stride() and new.storage_offset() == old.storage_offset()
        assert new.data_ptr() != old.data_ptr()
    assert a.untyped_storage().data_ptr() == b.untyped_storage().data_ptr()  # still one storage between them
    grad, conj = torch.ones(4, requires_grad=True), torch.ones(4, dtype=torch.complex64).conj()
    with warnings.catch_warnings():  # torch deprecates these dtypes; while they exist, they are left alone
        warnings.simplefilter("ignore", UserWarning)
        scaled = torch._make_per_tensor_quantized_tensor(torch.ones(4, dtype=torch.int8), 0.1, 0)
    kept = moved(Call((grad, conj, scaled)))
    assert all(k is v for k, v in zip(kept.args, (grad, conj, scaled)))  # not plain dense tensors: left as they are


def test_rounds_within_the_cache_run_on_inputs_moved_to_fresh_memory():
    seen = []

    def records(x, dv=512, tile_size=128):
        seen.append(x.data_ptr())
        return x

    worker = Worker(records, TARGET, "cpu", BenchConfig(max_buffers=1))
    worker.prepare(SIZE, move_inputs=True)
    seen.clear()
    worker.round(1, 0)
    worker.round(1, 1)
    assert len(set(seen)) == 2  # one address per round
    worker.prepare(SIZE)
    seen.clear()
    worker.round(1, 0)
    worker.round(1, 1)
    assert len(set(seen)) == 1  # not asked: the inputs stay where they were built


def test_runner_pairs_are_faster_only_if_every_pair_says_so():
    """Bench.combine: three pairs of one size as one timing; the interval spans all three."""
    faster = make({"base": 1.2e-3, "cand": 1e-3}).compare()
    also_faster = make({"base": 1.3e-3, "cand": 1e-3}).compare()
    same = make({"base": 1e-3, "cand": 1e-3}).compare()
    bench = make({}).bench
    both = bench.combine([faster, also_faster])
    assert both.verdict == "faster" and both.pair_speedups == (faster.speedup, also_faster.speedup)
    assert both.speedup_ci == (faster.speedup_ci[0], also_faster.speedup_ci[1])
    assert both.candidate.rounds == faster.candidate.rounds + also_faster.candidate.rounds
    assert 1.2 <= both.speedup <= 1.3 and both.converged
    split = bench.combine([faster, same, also_faster])  # one pair disagrees: no verdict the pairs do not share
    assert split.verdict == "inconclusive" and split.label == f"inconclusive (interval {split.speedup_ci[0]:.2f}–1.30)"
    assert split.speedup_ci[0] <= 1.0 and split.speedup_ci[1] >= 1.3
    assert not split.converged  # each pair decided, but together they did not
    assert bench.combine([same]) is same and same.pair_speedups == ()


def test_cuda_runners_share_one_cpu_and_cpu_runners_are_not_pinned():
    import os

    from harness.sandbox import runner_cpus

    assert runner_cpus("cpu") is None
    if hasattr(os, "sched_getaffinity"):
        assert runner_cpus("cuda") == sorted(os.sched_getaffinity(0))[:1]


def test_a_verdict_close_to_the_floor_is_borderline_and_a_clear_one_is_not():
    bench = make({}).bench
    near = make({"base": 1.08e-3, "cand": 1e-3}).compare()  # 8% faster: within 5% of the 5% floor
    clear = make({"base": 1.12e-3, "cand": 1e-3}).compare()  # 12% faster: beyond any one pair's offset
    slower = make({"base": 1e-3, "cand": 1.08e-3}).compare()
    same = make({"base": 1e-3, "cand": 1e-3}).compare()
    assert near.verdict == "faster" and bench.borderline(near)
    assert slower.verdict == "slower" and bench.borderline(slower)
    assert not bench.borderline(clear) and not bench.borderline(same)
    off = make({}, confirm_margin=0.0).bench
    assert not off.borderline(near)
