"""harness/judge/task.py: whose regression cases a run times (``CaseChoice``) — the candidate the report
annotates must always have them, and a run of many candidates times few others; and how many pairs of
runners a size is timed in."""

import dataclasses
import multiprocessing

from harness.core.result import CandidateResult, SizeTiming, Summary, best_candidate
from harness.judge.task import CaseChoice


def _summary(median_s: float) -> Summary:
    return Summary(rounds=8, min_s=median_s, median_s=median_s, mean_s=median_s, iqr_s=0.0, stderr_s=0.0, rse=0.0)


def _result(name: str, speedup: float | None, verdict: str = "pass", control: bool = False) -> CandidateResult:
    """A candidate timed at one size with ``speedup`` (None: not timed); faster beyond 1.05x."""
    result = CandidateResult(name=name, spec=f"c.py:{name}", doc="", verdict=verdict, control=control)
    if speedup is None:
        return result
    timing = SizeTiming(size="s", input="", bytes_moved=1, family="prod", calls_per_round=1, converged=True,
                        baseline=_summary(1.0), candidate=_summary(1.0 / speedup), speedup=speedup,
                        speedup_ci=(speedup * 0.98, speedup * 1.02),
                        verdict="faster" if speedup > 1.05 else "no significant difference", label="", gbps=1.0,
                        pct_copy_bandwidth=None, baseline_rounds_s=(), candidate_rounds_s=())
    return dataclasses.replace(result, timings=(timing,))


def _annotated(choice: CaseChoice, results: list[CandidateResult]) -> list[str]:
    chosen = []
    for r in results:
        if choice.wanted(r):
            choice.annotated(r)
            chosen.append(r.name)
    return chosen


def test_the_first_timed_and_each_new_leader_are_annotated_and_the_best_always():
    results = [_result("same", 1.0), _result("a", 1.1), _result("b", 40.0), _result("c", 30.0),
               _result("control", 90.0, control=True), _result("d", 47.0), _result("e", 45.0)]
    chosen = _annotated(CaseChoice(), results)
    assert chosen == ["same", "a", "b", "d"]
    assert best_candidate(results).name in chosen


def test_when_none_is_faster_only_the_first_is_annotated_as_the_report_falls_back_to_it():
    results = [_result("x", 1.0), _result("y", 0.5), _result("z", 1.02)]
    assert _annotated(CaseChoice(), results) == ["x"]
    assert best_candidate(results) is None


def test_a_candidate_whose_case_timing_failed_does_not_count():
    choice = CaseChoice()
    first = _result("first", 40.0)
    assert choice.wanted(first)  # its case timing then failed: never annotated
    assert choice.wanted(_result("second", 2.0))  # so the next is still the first annotated


def test_every_and_a_shared_state():
    assert _annotated(CaseChoice(every=True), [_result("x", 1.0), _result("y", 0.5)]) == ["x", "y"]
    shared = multiprocessing.get_context("spawn").Array("d", [0.0, 0.0])
    one, other = CaseChoice(shared, shared.get_lock), CaseChoice(shared, shared.get_lock)
    assert _annotated(one, [_result("a", 10.0)]) == ["a"]
    assert _annotated(other, [_result("b", 5.0), _result("c", 12.0)]) == ["c"]  # it saw a's 10x
    assert list(shared) == [2.0, 12.0]


def test_three_pairs_are_timed_unless_the_first_is_overwhelming():
    """With ``processes`` 3 (CUDA's default; here on the CPU), the oracle against itself is timed in three
    pairs of runners at each size, the fused kernel (many times faster) in one."""
    from harness.core.config import BenchConfig
    from harness.judge.pipeline import Pipeline
    from harness.judge.plan import RunOptions

    options = RunOptions(target="quantize_k_cache", sizes=["4096"], examples=5, profile=False,
                         candidates=["candidates/fused.py:fused", "candidates/slow_loop.py:slow_loop"],
                         bench=BenchConfig(budget_s=0.5, min_rounds=4, processes=3))
    run = Pipeline(options).run()
    by_name = {c.name: c for c in run.candidates}
    fused, same = by_name["fused"].timings[0], by_name["slow_loop"].timings[0]
    assert len(same.pair_verdicts) == 3, same
    assert fused.verdict == "faster"
    if not run.noise:  # beside busy processes every pair is timed (a loaded pair can read anything)
        assert fused.speedup_ci[0] > 1.5 and fused.pair_verdicts == ()  # one pair
