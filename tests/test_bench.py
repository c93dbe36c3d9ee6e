"""The timing engine's logic with a scripted clock (no real time measured, so nothing can flake):
interleaving, warm-up, convergence, budget, the paired speedup, and the check that both runners were
given the same inputs.  The two functions are in-process ``Worker``s (what a runner serves); real-clock
behaviour, across real runners, is shown by benchmarks/, which prints figures."""

import dataclasses
import itertools
import warnings

import pytest
import torch

from harness.runner import clocks
from harness.judge import noise
from harness.judge.bench import Bench, BenchConfig, InputsDiffer
from harness.runner.clocks import CpuClock
from harness.core.target import get_target
from harness.runner.worker import Worker

TARGET = get_target("quantize_k_cache")
SIZE = TARGET.parse_size("1x4x576")


class ScriptedClock:
    """Per-call seconds from a table per function, with a slow first call (warm-up) and a fixed jitter."""

    def __init__(self, seconds: dict, first_call_penalty: float = 10.0) -> None:
        self.seconds, self.penalty, self.calls, self.log = seconds, first_call_penalty, {}, []
        self.jitter = itertools.cycle([1.0, 1.004, 0.996, 1.002, 0.998])

    def reset(self):
        pass

    def time(self, fn, calls, n, start=0, replay=True, keep=None, prime=None):
        self.log.append((fn.__name__, n))
        for i in range(n):  # what a real clock does: each input written (if asked) before its call, outputs kept
            if prime is not None:
                prime(i)
            if keep is not None:
                keep.append(fn(*calls[(start + i) % len(calls)].args))
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
    b = make({"base": 1e-3, "cand": 1.053e-3}, budget_s=2.0)  # (wall-clock: a busy machine gets fewer rounds in it)
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


def test_every_timed_call_runs_on_an_input_with_fresh_content():
    seen = []

    def records(x, dv=512, tile_size=128):
        seen.append(x.clone())
        return x

    worker = Worker(records, TARGET, "cpu", BenchConfig())
    worker.prepare(SIZE)
    base = worker._inputs.base.args[0]
    seen.clear()
    worker.round(3, 0)
    worker.round(3, 1)
    timed = [x for x in seen if not torch.equal(x.view(torch.int16), base.view(torch.int16))]
    assert len(timed) == 6  # the settling calls run on the base; no timed call does
    assert len({x.view(torch.int16).sum().item() for x in timed}) == 6  # and no two timed calls on the same data
    for x in timed:  # every element taken from the same column of some row of the base
        rows, got = base.reshape(-1, base.shape[-1]).view(torch.int16), x.reshape(-1, x.shape[-1]).view(torch.int16)
        assert ((got == rows) | (got == rows.flip(0))).all()


def test_a_baseline_round_that_starts_at_the_checked_call_holds_its_output_without_another_call():
    calls = []

    def counts(x, dv=512, tile_size=128):
        calls.append(1)
        return x.clone()

    baseline, candidate = Worker(counts, TARGET, "cpu", BenchConfig()), Worker(counts, TARGET, "cpu", BenchConfig())
    for w in (baseline, candidate):
        w.prepare(SIZE)
    candidate.round(4, 7)
    baseline.round(2, 7, first=3)  # the judge will check the candidate's call 3 of round 7
    made = len(calls)
    assert baseline.output_for(7, 3, digest=True) == candidate.timed_output(3, digest=True)
    assert len(calls) == made  # kept from the baseline's round, not computed again
    assert baseline.output_for(7, 1, digest=True) == candidate.timed_output(1, digest=True)
    assert len(calls) == made + 1  # a call outside its round: computed untimed, on the same fresh input


def test_fresh_inputs_keep_layout_and_aliasing_and_are_reproducible():
    from harness.runner.fresh import TimingInputs
    from harness.core.target import Call

    storage = torch.arange(64, dtype=torch.float32)
    a, b = storage[:32].view(4, 8), storage[16:48].view(4, 8).t()  # overlapping views of one storage
    inputs = TimingInputs(Call((a, b), {"k": 3}), seed=5)
    one, again = inputs.fresh(7), TimingInputs(Call((a.clone(), b), {"k": 3}), seed=5)
    x, y = one.args
    assert x.stride() == a.stride() and y.stride() == b.stride() and y.storage_offset() == 16
    assert x.untyped_storage().data_ptr() == y.untyped_storage().data_ptr()  # still one storage
    assert not torch.equal(x, a) and one.kwargs == {"k": 3}
    assert torch.equal(inputs.fresh(7).args[0], x) and torch.equal(inputs.fresh(8).args[0], x) is False
    assert torch.equal(TimingInputs(Call((storage[:32].view(4, 8),)), seed=5).fresh(7).args[0], x)
    assert inputs.fresh(0) is inputs.base  # key 0: the base (warm-up and settling calls)
    assert not TimingInputs(Call((a,)), enabled=False).mixed  # a target that opts out: the base alone
    del again


def test_a_round_has_no_more_fresh_inputs_than_the_buffer_holds():
    b = make({"base": 1e-5, "cand": 1e-5}, buffer_bytes=3 * TARGET.case_bytes(SIZE))
    t = b.compare()
    assert t.calls_per_round == 3  # 5 ms of 10 us calls would be 500


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
    from harness.core.target import Call
    from harness.runner.worker import moved

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


def _addresses(target, rounds=(0, 1), **prepare) -> set:
    """The input addresses a worker's timed and settling calls saw over ``rounds`` of one call each."""
    seen = []

    def records(x, dv=512, tile_size=128):
        seen.append(x.data_ptr())
        return x

    worker = Worker(records, target, "cpu", BenchConfig())
    worker.prepare(SIZE, **prepare)
    seen.clear()
    for r in rounds:
        worker.round(1, r)
    return set(seen)


def test_rounds_run_on_inputs_in_fresh_memory():
    assert len(_addresses(TARGET, move_inputs=True)) == 2  # within the cache: one address per round
    assert len(_addresses(TARGET)) == 1  # beyond it: the last round's memory, rewritten with fresh content
    opted_out = type(TARGET)()
    opted_out.fresh_timing_inputs = False  # a target whose inputs cannot be mixed: the base, moved if asked
    assert len(_addresses(opted_out, move_inputs=True)) == 2
    assert len(_addresses(opted_out)) == 1  # not asked: the base stays where it was built


def _inconclusive():
    b = make({"base": 1e-3, "cand": 1.053e-3}, budget_s=0.5)
    b.clock.jitter = itertools.cycle([1.0, 1.06, 0.95, 1.03, 0.97, 1.08, 0.93, 1.01])  # a noisy machine
    return b.compare()


def test_runner_pairs_vote_and_the_verdict_is_the_majoritys():
    """Bench.combine: several pairs of one size as one timing; the verdict is what more than half of them
    decided, its interval spans theirs and its medians pool their rounds; the others are kept, outvoted."""
    faster = make({"base": 1.2e-3, "cand": 1e-3}).compare()
    also_faster = make({"base": 1.3e-3, "cand": 1e-3}).compare()
    same = make({"base": 1e-3, "cand": 1e-3}).compare()
    within = make({"base": 1.02e-3, "cand": 1e-3}).compare()
    bench = make({}).bench
    both = bench.combine([faster, also_faster])
    assert both.verdict == "faster" and both.pair_speedups == (faster.speedup, also_faster.speedup)
    assert both.pair_verdicts == ("faster", "faster")
    assert both.speedup_ci == (faster.speedup_ci[0], also_faster.speedup_ci[1])
    assert both.candidate.rounds == faster.candidate.rounds + also_faster.candidate.rounds
    assert 1.2 <= both.speedup <= 1.3 and both.converged
    two_of_three = bench.combine([faster, same, also_faster])  # one pair outvoted: kept, but not in the numbers
    assert two_of_three.verdict == "faster" and two_of_three.speedup_ci == both.speedup_ci
    assert two_of_three.candidate.rounds == both.candidate.rounds and two_of_three.converged
    assert two_of_three.pair_speedups == (faster.speedup, same.speedup, also_faster.speedup)
    assert two_of_three.pair_verdicts == ("faster", "no significant difference", "faster")
    split = bench.combine([faster, same])  # no majority: the interval spans both, across the floor
    low, high = split.speedup_ci
    assert split.verdict == "inconclusive" and split.label == f"inconclusive (interval {low:.2f}–{high:.2f})"
    assert high == faster.speedup_ci[1]
    assert split.speedup_ci[0] <= 1.0 and not split.converged  # each pair decided, but together they did not
    inside = bench.combine([same, within])  # "no significant difference" and "within" both say: inside the floor
    assert inside.verdict in ("no significant difference", "within the noise floor") and inside.converged
    assert bench.combine([same]) is same and same.pair_speedups == () and same.pair_verdicts == ()
    undecided = bench.combine([faster, _inconclusive(), same])  # an inconclusive pair votes for nothing
    assert undecided.verdict == "inconclusive"


def test_a_disturbed_pair_votes_for_nothing():
    """The oracle against itself on a busy machine: two pairs whose baseline runner was starved read 25x
    and 69x "faster"; the same function timed 30x slower than in another pair is no measurement of it."""
    bench = make({}).bench
    steady = make({"base": 1e-3, "cand": 1e-3}).compare()
    starved = make({"base": 30e-3, "cand": 1e-3}).compare()
    starved_again = make({"base": 25e-3, "cand": 1e-3}).compare()
    combined = bench.combine([steady, starved, starved_again])
    assert combined.verdict == steady.verdict == "no significant difference" and combined.speedup == steady.speedup
    assert combined.pair_speedups == (steady.speedup, starved.speedup, starved_again.speedup)
    assert combined.pair_verdicts == (steady.verdict, "inconclusive", "inconclusive")
    slowed_candidate = make({"base": 1e-3, "cand": 20e-3}).compare()  # either side: never a fake slowdown either
    assert bench.combine([steady, slowed_candidate, steady]).verdict == "no significant difference"


def test_a_single_pair_stands_alone_only_when_its_speedup_is_far_beyond_the_floor(monkeypatch):
    bench = make({}).bench
    near = make({"base": 1.08e-3, "cand": 1e-3}).compare()  # 8% faster: a pair off by 8% would read this
    faster = make({"base": 1.3e-3, "cand": 1e-3}).compare()  # 30%: beyond any offset one pair was seen to have
    slower_near = make({"base": 1e-3, "cand": 1.08e-3}).compare()
    slower = make({"base": 1e-3, "cand": 1.3e-3}).compare()
    same = make({"base": 1e-3, "cand": 1e-3}).compare()
    assert near.verdict == "faster" and not bench.stands_alone(near)
    assert slower_near.verdict == "slower" and not bench.stands_alone(slower_near)
    assert bench.stands_alone(faster) and bench.stands_alone(slower)
    assert not bench.stands_alone(same)  # a 10% slower function in a pair off by 10% reads like this
    assert not bench.stands_alone(_inconclusive())
    from harness.core import machine

    monkeypatch.setattr(machine, "last_level_cache_bytes", lambda: 32 << 20)
    streaming = dataclasses.replace(same, bytes_moved=64 << 20)  # beyond the cache: pairs seen at most 5% off
    assert same.verdict == "no significant difference" and bench.stands_alone(streaming)
    within = make({"base": 1.02e-3, "cand": 1e-3}).compare()  # a 10%-slower function in a pair 8% off
    assert not bench.stands_alone(dataclasses.replace(within, bytes_moved=64 << 20))
    assert not bench.stands_alone(dataclasses.replace(near, bytes_moved=64 << 20))
    assert make({}, confirm_margin=0.0).bench.stands_alone(same)  # 0: every single pair is trusted


def test_another_pair_is_timed_until_a_majority_decides_or_none_can():
    faster = make({"base": 1.08e-3, "cand": 1e-3}).compare()
    clear = make({"base": 1.3e-3, "cand": 1e-3}).compare()
    same = make({"base": 1e-3, "cand": 1e-3}).compare()
    unsure = _inconclusive()
    bench = make({}).bench
    assert bench.another_pair([same]) and bench.another_pair([faster]) and bench.another_pair([unsure])
    assert not bench.another_pair([clear])
    assert not bench.another_pair([faster, faster]) and not bench.another_pair([same, same])  # they agree
    assert bench.another_pair([faster, same]) and bench.another_pair([unsure, same])  # a third decides
    assert not bench.another_pair([faster, same, faster])  # two of three
    assert not bench.another_pair([faster, same, unsure])  # three pairs at most, and no majority is left
    assert not bench.another_pair([unsure, unsure])  # a third could not make a majority
    assert not make({}, confirm_margin=0.0).bench.another_pair([same])
    three = make({}, processes=3).bench  # --processes 3: three pairs are timed anyway, and decide by majority
    assert not three.another_pair([faster, same, faster]) and not three.another_pair([faster, same, unsure])
    assert make({}, processes=1).bench.config.most_pairs == 3 and three.config.most_pairs == 3  # no tie to break
    assert make({}, processes=2).bench.config.most_pairs == 3 and make({}, processes=4).bench.config.most_pairs == 5
    assert make({}, confirm_margin=0.0).bench.config.most_pairs == 1
    four = make({}, processes=4).bench
    assert four.another_pair([faster, faster, same, same]) and not four.another_pair([faster, faster, faster, same])


def test_an_overwhelming_first_pair_needs_no_other_pair_however_many_are_asked_for():
    """Only a speedup (or slowdown) beyond 1.5x: the worst pair of runners measured was 17% off."""
    three = make({}, processes=3).bench

    def quiet(times):  # the scripted pair on a quiet machine, whatever this one is doing now
        return dataclasses.replace(make(times).compare(), foreign_cpu=0.0, steal_cpu=0.0)

    assert three.overwhelming(quiet({"base": 3e-3, "cand": 1e-3}))
    assert three.overwhelming(quiet({"base": 1e-3, "cand": 3e-3}))
    assert not three.overwhelming(quiet({"base": 1.3e-3, "cand": 1e-3}))  # stands alone with one asked for
    assert not three.overwhelming(quiet({"base": 1e-3, "cand": 1e-3}))
    assert not make({}, processes=3, alone_beyond=0.0).bench.overwhelming(quiet({"base": 3e-3, "cand": 1e-3}))
    # a size too short for the whole reading (0.5 s) that still showed load over 0.1 s: not quiet, not alone
    loaded_short = dataclasses.replace(quiet({"base": 3e-3, "cand": 1e-3}), foreign_cpu=noise.recorded_share(None, 0.6))
    assert not three.overwhelming(loaded_short)


def test_a_pair_that_joins_to_settle_a_verdict_has_half_the_budget():
    b = make({"base": 1e-3, "cand": 1e-3}, budget_s=60.0, target_rse=0.0)
    assert b.bench.pair_budget(0) == 60.0 and b.bench.pair_budget(1) == 30.0
    assert make({}, budget_s=6.0, processes=3).bench.pair_budget(2) == 6.0  # asked for: a full budget
    assert b.bench.compare(*b.workers, SIZE, budget_s=0.0).candidate.rounds == 2  # the argument is the deadline


def test_cuda_runners_share_one_cpu_and_cpu_runners_are_not_pinned():
    import os

    from harness.judge.process import runner_cpus

    assert runner_cpus("cpu") is None
    if hasattr(os, "sched_getaffinity"):
        assert runner_cpus("cuda") == sorted(os.sched_getaffinity(0))[:1]


def test_within_the_cache_each_input_is_written_just_before_its_call():
    """Where a round's inputs together outgrow a quarter of the cache, each call's fresh input is written just
    before the call (untimed), so the call finds it in the cache as when timing reused one input; its
    content is still that call's own (``call_key``), as the judge rebuilds it to check an output."""
    from harness.runner.fresh import TimingInputs, call_key

    seen = []

    def records(x, dv=512, tile_size=128):
        seen.append(x.clone())
        return x

    worker = Worker(records, TARGET, "cpu", BenchConfig())
    worker._cache_bytes = TARGET.case_bytes(SIZE)  # as if the cache held a little more than one call's bytes
    worker.prepare(SIZE, move_inputs=True)
    assert worker._prime is None
    seen.clear()
    worker.round(3, 5)
    assert worker._prime is not None and len(seen) == 4  # the settling call on the base, then three timed
    rebuilt = TimingInputs.build(TARGET, SIZE, "cpu")
    for i, got in enumerate(seen[1:]):
        assert torch.equal(got, rebuilt.fresh(call_key(5, i)).args[0])
    assert len({t.data_ptr() for t in worker._calls[0].tensors()} | {t.data_ptr() for t in worker._calls[1].tensors()}) == 2


def test_placing_a_round_does_no_first_time_work():
    """Placing is judged against the baseline runner's (``check_placing``), so each round's must cost what
    the next one's does: the fresh-content masks are built with the inputs, at ``prepare`` (built on first
    use, the first round's placing cost 5-10 ms more), and what is alive after ``prepare`` is kept out of
    the collector's sight (a full collection cost one round's placing 70-90 ms); with few rounds either one
    moved the median round's placing near the limit, and a CI run failed an honest candidate."""
    import gc

    worker = Worker(lambda x, dv=512, tile_size=128: x, TARGET, "cpu", BenchConfig())
    worker.prepare(SIZE, move_inputs=True)
    masks = dict(worker._inputs._masks)
    assert masks and gc.get_freeze_count() > 0
    worker.round(3, 5)
    assert worker._inputs._masks == masks  # the same mask objects: none built while placing


def test_each_round_is_named_by_a_number_drawn_when_it_is_asked_for(monkeypatch):
    """No runner can build a round's inputs, or compute their answers, before the judge asks for the round:
    both runners of a pair get the same number, which no earlier request told them."""
    b = make({"base": 1e-3, "cand": 1e-3})
    placed = {0: [], 1: []}
    for i, w in enumerate(b.workers):
        real = w.place
        monkeypatch.setattr(w, "place", lambda start, n=1, first=0, real=real, i=i: (placed[i].append(start), real(start, n, first))[1])
    b.compare()
    b.compare()
    starts = sorted(set(placed[0]))
    assert sorted(set(placed[1])) == starts and len(starts) >= 20
    assert min(starts) >= 1 and max(starts) > 1 << 20  # not the round's index


class _Placing:
    """A runner as ``check_placing`` sees it: for each round, placing's CPU seconds (main thread), seconds by
    the judge's clock, and the round's calls."""

    def __init__(self, rounds, spec="cand.py:f"):
        self.rounds, self.spec = rounds, spec

    def placing(self):
        return self.rounds


def test_work_done_while_placing_a_round_is_refused_beyond_the_baselines():
    from harness.judge.bench import PLACING_RATIO, UnwatchedWork, check_placing

    baseline = _Placing([(0.010, 0.011, 10)] * 30)  # 1 ms a call
    honest = _Placing([(0.012, 0.013, 8)] * 29 + [(0.4, 0.9, 8)])  # 1.5 ms a call; one round delayed
    check_placing(baseline, honest)
    check_placing(baseline, _Placing([(0.0049, 0.0049, 1)]))  # one call: 4 ms + 1 ms allowed
    with pytest.raises(UnwatchedWork, match=r"spent 0.0052 s of CPU time"):  # a slow forger's whole round (5 ms)
        check_placing(baseline, _Placing([(0.0052, 0.0052, 1)]))
    forger = _Placing([(0.010 + 10 * 0.02, 0.010 + 10 * 0.02, 10)] * 30)  # ten 20 ms calls computed ahead each round
    with pytest.raises(UnwatchedWork, match=r"spent 0.21 s of CPU time a round placing its rounds' inputs, where "
                                            r"the baseline's runner needed 0.01 s for as many calls") as caught:
        check_placing(baseline, forger)
    assert caught.value.spec == "cand.py:f"
    threads = _Placing([(0.010, 0.21, 10)] * 30)  # the same work in another thread, the main one waiting
    with pytest.raises(UnwatchedWork, match=r"spent 0.21 s of time a round placing .* needed 0.011 s for as many calls"):
        check_placing(baseline, threads)
    check_placing(baseline, forger, loaded=True)  # beside busy processes nothing is concluded (flagged noisy)
    assert PLACING_RATIO >= 3  # room for the same work read on a busy machine
    check_placing(_Placing(None), forger)  # unreadable (off the CPU): nothing concluded


class _PlacedWorker(Worker):
    """An in-process runner that reports, for each round, the placing cost ``cost(round index, calls)`` (CPU
    seconds and the judge's clock alike) as ``sandbox.Runner.placing`` does, and can be asked to place
    without a round (``sandbox.Runner.place_only``), as a baseline's runner is; ``probes``: the calls asked."""

    def __init__(self, *args, cost, **kwargs):
        super().__init__(*args, **kwargs)
        self.cost, self.records, self.probes = cost, [], []

    def round(self, n, start, first=0):
        spent = self.cost(len(self.records), n)
        self.records.append((spent, spent, n))
        return super().round(n, start, first)

    def placing(self):
        return self.records

    def place_only(self, n, start):
        self.probes.append(n)
        spent = self.cost(len(self.records), n)
        return spent, spent, n


def _placed_pair(seconds, baseline_cost, candidate_cost):
    """A bench and two ``_PlacedWorker``s on one scripted clock; the budget is spent after two rounds."""
    cfg = BenchConfig(budget_s=0.0, min_rounds=2)
    bench, clock = Bench(TARGET, "cpu", cfg, copy_gbps=10.0), ScriptedClock(seconds)
    workers = [_PlacedWorker(fn, TARGET, "cpu", cfg, cost=cost) for fn, cost in ((base, baseline_cost), (cand, candidate_cost))]
    for w in workers:
        w._clock = clock
    return bench, workers


@pytest.fixture
def quiet_machine(monkeypatch):
    """No other process seen on the CPUs: beside busy ones placing is not judged (``check_placing``), which
    is not what these tests are about (a loaded suite run saw the machine busy and nothing raised)."""
    from harness.judge import noise

    monkeypatch.setattr(noise.CpuWatch, "share", lambda self, minimum_s=0.0: 0.0)


def test_a_pair_whose_placing_reads_over_the_limit_gets_more_rounds_before_it_is_judged(quiet_machine):
    """Two slow placings in few rounds are a slow moment until more rounds say otherwise (a CI run failed
    an honest candidate that way); work hidden in every round's placing is still refused."""
    from harness.judge.bench import PLACING_SUSPECT_ROUNDS, UnwatchedWork

    same = {"base": 1e-3, "cand": 1e-3}
    bench, workers = _placed_pair(same, lambda r, n: 0.001, lambda r, n: 0.05 if r < 2 else 0.001)  # 2 preempted
    timing = bench.compare(*workers, SIZE)
    assert len(timing.candidate_rounds_s) == 5  # [50, 50, 1, 1, 1] ms: a median of 1 ms
    bench, workers = _placed_pair(same, lambda r, n: 0.001, lambda r, n: 0.05)  # every round: work done ahead
    with pytest.raises(UnwatchedWork, match="a round placing its rounds' inputs"):
        bench.compare(*workers, SIZE)
    assert len(workers[1].records) == PLACING_SUSPECT_ROUNDS


def test_a_slower_candidates_few_calls_are_judged_against_the_baseline_placing_as_many(quiet_machine):
    """A round's placing has a fixed part; the baseline's cost per call spreads it over its many calls, so a
    candidate slower than the baseline (fewer calls a round) read as hiding work: the gate's planted 30x
    slowdown was refused so.  The baseline's runner now places as many calls as the candidate's, and that
    is the reference; work hidden there is still refused."""
    from harness.judge.bench import UnwatchedWork

    def pair(hidden):  # placing costs 4 ms (the heap shift, the request) + 0.1 ms a call's input, + hidden
        return _placed_pair({"base": 1e-4, "cand": 5e-3}, lambda r, n: 0.004 + 1e-4 * n,
                            lambda r, n: 0.004 + 1e-4 * n + hidden)

    bench, (baseline, candidate) = pair(hidden=0.0)
    bench.compare(baseline, candidate, SIZE)  # 4.1 ms a round against the baseline's 4.1 ms for one call
    assert baseline.probes == [1] * 5 and len(candidate.records) == 2  # no rounds more: the reference settled it
    bench, (baseline, candidate) = pair(hidden=0.04)  # its one call's answer computed while placing
    with pytest.raises(UnwatchedWork, match="a round placing its rounds' inputs"):
        bench.compare(baseline, candidate, SIZE)
