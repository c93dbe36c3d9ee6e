"""The regression gate's rules (harness/judge/gate.py), pure: checks in, a verdict out; and two saved runs
compared through each run's speedup over its own baseline, with both runs' intervals."""

import dataclasses

import pytest

from harness.core import stats
from harness.core.result import CandidateResult, Environment, GateCheck, RunResult, SizeTiming, Summary
from harness.judge import gate


def _check(speedup, low, high, floor=0.05):
    ci = (low, high)
    verdict = stats.decide(ci, floor)
    return GateCheck("fused", "prod-4096", speedup, ci, verdict, stats.label(verdict, speedup, ci, floor))


def test_only_a_decided_slowdown_on_a_quiet_run_fails():
    same, slower, undecided = _check(1.0, 0.97, 1.03), _check(0.90, 0.87, 0.93), _check(0.95, 0.91, 1.02)
    assert gate.verdict("HEAD", [same], 0.05).status == "passed"
    failed = gate.verdict("HEAD", [same, slower], 0.05)
    assert failed.status == "failed" and failed.reason.startswith("1 of 2 candidate/size pairs slower than HEAD by more than 5%")
    assert gate.verdict("HEAD", [same, undecided], 0.05).status == "undecided"
    noisy = gate.verdict("HEAD", [slower], 0.05, noise=["other processes used 40% of the CPUs"])
    assert noisy.status == "noisy" and "cannot judge" in noisy.reason and "1 of 1 candidate/size pair read slower" in noisy.reason
    assert gate.verdict("HEAD", [], 0.05).status == "failed"  # a gate that compared nothing is no pass
    assert {s: gate.EXIT_FOR_STATUS[s] for s in ("passed", "failed", "noisy", "undecided")} == {
        "passed": 0, "failed": 1, "noisy": 3, "undecided": 3}


def _timing(speedup, low, high, candidate_s=1e-3):
    summary = Summary(5, candidate_s, candidate_s, candidate_s, 0.0, 0.0, 0.0)
    return SizeTiming("prod-4096", "", 1, 1, True, summary, summary, speedup, (low, high), "faster", 1.0, None,
                      (candidate_s,) * 5, (candidate_s,) * 5)


def _run(timing, baseline="oracle:quantize_k_cache"):
    env = Environment("cpu", "cpu", "3.11", "2", None, "linux", 2, "abc", "0", "harness run")
    return RunResult("quantize_k_cache", "f", "f.py", baseline, "exact", "2026-12-06T10:00:00", env,
                     (CandidateResult("fused", "candidates/fused.py:fused", "", "pass", timings=(timing,)),))


def test_saved_runs_compare_speedups_over_their_own_baselines_with_both_intervals():
    old = _run(_timing(10.0, 9.99, 10.01, candidate_s=1.0e-3))
    # the machine got 10% slower between the runs: the candidate's time moved, its speedup did not
    new = _run(_timing(10.0, 9.99, 10.01, candidate_s=1.1e-3))
    (change,) = gate.changes(old, new, 0.05)
    assert change.speedup == 1.0 and change.verdict == stats.SAME
    # wider than either run's: both runs' spread, and what a run moves beyond its interval (between_runs)
    widen = (1 + gate.BETWEEN_RUNS) ** 2
    assert change.speedup_ci == pytest.approx((9.99 / 10.01 / widen, 10.01 / 9.99 * widen))
    slower = _run(_timing(7.5, 7.4, 7.6))
    assert gate.against_saved(old, slower, 0.05, "old.json").status == "failed"
    assert gate.against_saved(old, _run(_timing(9.6, 9.2, 10.0)), 0.05, "old.json").status == "undecided"
    other = _run(_timing(10.0, 9.8, 10.2), baseline="candidates/slow_loop.py:slow_loop")
    refused = gate.against_saved(old, other, 0.05, "old.json")
    assert refused.status == "failed" and "timed against oracle:quantize_k_cache, the other against" in refused.reason


def test_runner_pairs_that_disagree_widen_the_comparison():
    from harness.core.result import SpeedVerdict

    steady = _timing(10.0, 9.8, 10.2)
    split = dataclasses.replace(steady, pair_speedups=(9.0, 11.0), pair_verdicts=(SpeedVerdict("faster"),) * 2)
    assert gate.between_runs(steady) == gate.BETWEEN_RUNS
    assert gate.between_runs(split) == pytest.approx((11.0 / 9.0 - 1) / 2)


def test_an_interval_that_does_not_hold_its_speedup_is_no_data():
    old = _run(_timing(10.0, 11.0, 12.0))  # a crafted file
    assert gate.changes(old, _run(_timing(10.0, 9.8, 10.2)), 0.05) == []
