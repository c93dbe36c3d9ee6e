"""Timing the judge can trust: a candidate is verified at every size it is timed at (the production rows
included), one timed call per round, chosen by the judge after the round, is checked against the oracle's
answer for the same input, every timed call runs on an input with fresh content (so a memo of past answers
never hits), and a time faster than the machine can move the bytes is refused.  Each attack of an
attacker's pass over the timing is a candidate here, all judged in one `harness run`."""

import pytest

from harness.judge import noise

from harness.core import stats

from harness.core import schema
from harness.judge.bench import ImpossibleTiming
from harness.cli.commands import main

CHEATS = "tests/hostile/timing_cheats.py"


@pytest.fixture(scope="module")
def judged(tmp_path_factory):
    out = tmp_path_factory.mktemp("timed")
    argv = ["run", "--target", "quantize_k_cache", "--out", str(out), "--sizes", "4096", "--budget", "2",
            "--examples", "3", "--no-profile"]
    # case_times_divided first: the first timed candidate's regression cases are timed (``task.CaseChoice``)
    for name in ("case_times_divided", "right_only_on_small_rows", "wrong_while_gc_is_off", "memo_by_sample",
                 "oracle_again", "deferred_always", "deferred_while_gc_is_off", "answers_computed_while_placed"):
        argv += ["--candidate", f"{CHEATS}:{name}"]
    code = main(argv)
    run = schema.load(out / "quantize_k_cache-cpu.json")
    return code, {c.name: c for c in run.candidates}, run.noise


def test_a_function_wrong_only_on_production_rows_fails_verification_there(judged):
    _, by_name, _ = judged
    c = by_name["right_only_on_small_rows"]
    assert c.verdict == "fail" and c.timings == ()
    assert [f.case for f in c.verification.failures] == ["prod-4096"]
    assert {f.family for f in c.verification.failures} == {"timing size"}


def test_a_function_wrong_only_while_timed_is_caught_by_the_checked_call(judged):
    code, by_name, noise_notes = judged
    c = by_name["wrong_while_gc_is_off"]
    assert c.verification.passed  # right wherever it is called with the collector on
    assert c.verdict == "fail" and c.timings == () and code == 1
    assert c.error.startswith("was wrong while timed at prod-4096 (round 1, call "), c.error


def _loaded(timing, noise_notes=()) -> bool:
    """Other processes took CPUs while it was timed (a busy CI machine): the run says its timings are not to
    be trusted (exit 3, "noisy machine"), and rightly: beside busy processes, the oracle timed against
    itself read anywhere from 0.01x to 59x at small sizes (a call now and then waits ~32 ms, as if for a
    thread a busy process holds; benchmarks/NOTES.md), so no speedup bound holds there, not even against the memo's
    fake 10x.  Then no bound is asserted."""
    return (timing.foreign_cpu or 0) > noise.FOREIGN_CPU_LIMIT or any(
        n.kind == "load" for n in noise_notes)  # (a timing too short to say has no figure)


def test_a_tensor_subclass_whose_work_waits_until_its_bytes_are_read_is_refused(judged):
    _, by_name, _ = judged
    always, while_timed = by_name["deferred_always"], by_name["deferred_while_gc_is_off"]
    assert always.verdict == "error" and not always.verification.passed and always.timings == ()
    assert "returned a Deferred, a torch.Tensor subclass: only plain tensors are judged" in always.error
    assert while_timed.verification.passed and while_timed.timings == ()
    assert while_timed.verdict == "error", while_timed.verdict
    assert "returned a Deferred, a torch.Tensor subclass: only plain tensors are judged (while timed)" in while_timed.error


def test_a_patched_runner_that_computes_answers_while_placing_a_round_is_refused(judged):
    _, by_name, noise_notes = judged
    c = by_name["answers_computed_while_placed"]
    assert c.verification.passed
    if c.timings and _loaded(c.timings[0], noise_notes):
        return  # beside busy processes placing is not judged, and the run says its timings are not to be trusted
    assert c.timings == () and c.verdict == "error" and "a round placing its rounds' inputs" in c.error, c.error


def test_a_memo_of_past_answers_earns_no_speedup(judged):
    code, by_name, noise_notes = judged
    c = by_name["memo_by_sample"]
    assert c.verdict == "pass", c.error
    (timing,) = c.timings
    if not _loaded(timing, noise_notes):
        assert timing.verdict != stats.FASTER and timing.speedup < 1.2, (timing.label, timing.pair_speedups)


def test_the_unchanged_oracle_as_a_candidate_is_no_faster_and_no_slower(judged):
    code, by_name, noise_notes = judged
    (timing,) = by_name["oracle_again"].timings
    if not _loaded(timing, noise_notes):
        assert timing.verdict not in (stats.FASTER, stats.SLOWER), (timing.label, timing.pair_speedups)


def test_a_time_faster_than_a_copy_of_its_bytes_is_impossible(monkeypatch):
    from tests.test_bench import SIZE, make

    b = make({"base": 1e-3, "cand": 1e-9})  # a candidate that reports a nanosecond per call
    monkeypatch.setattr(b.bench, "_copy_seconds", lambda nbytes, again=False: 1e-4)  # the judge's copy: 0.1 ms
    with pytest.raises(ImpossibleTiming, match=r"reported an impossible time at .*GB/s, more than 2x the judge's own copy"):
        b.compare(SIZE)
    honest = make({"base": 1e-3, "cand": 2e-4})  # 2x slower than the copy: possible
    monkeypatch.setattr(honest.bench, "_copy_seconds", lambda nbytes, again=False: 1e-4)
    assert honest.compare(SIZE).verdict == stats.FASTER


def test_the_regression_cases_times_are_measured_not_reported(judged):
    """The annotated tests' per-case times come from checked rounds, so a runner patched to report a
    twentieth of each single call's time shows the oracle's own speed (error-parity cases, one call up to
    the raise, stay the runners' report)."""
    _, by_name, _ = judged
    c = by_name["case_times_divided"]
    assert c.verdict == "pass", c.error
    ratios = sorted(ct.candidate_s / ct.baseline_s for ct in c.case_timings if ct.raises is None)
    assert len(ratios) >= 5
    assert 0.5 < ratios[len(ratios) // 2] < 2, ratios  # the oracle against itself, not 20x faster
