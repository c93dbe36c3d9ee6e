"""The verdict cannot be changed by the code it judges: candidates that rebind the oracle (when imported or
on their first call), patch the comparison, flip flush-to-zero, leave the thread count changed, write
garbage into the runner's pipe, forge their timings or leave a process running each get the verdict their
arithmetic and behaviour earn; a correct candidate in an unusual style still passes.  All in one
`harness run`."""

import os

import pytest

from harness.render import report


from harness.core import schema
from harness.cli.commands import main

CHEATS = "tests/hostile/cheats.py"


@pytest.fixture(scope="module")
def judged(tmp_path_factory):
    out = tmp_path_factory.mktemp("judged")
    marker = tmp_path_factory.mktemp("marker") / "late-write"  # not in --out (read-only for runners)
    os.environ["HOSTILE_MARKER"] = str(marker)
    os.environ["HARNESS_RUNNER_WRITABLE"] = str(marker.parent)  # else the view keeps it read-only too
    argv = ["run", "--target", "quantize_k_cache", "--out", str(out), "--sizes", "1x32x576", "--budget", "0.3", "--examples", "5", "--no-profile",
            "--candidate", "tests/hostile/rebind_on_import.py:quantize"]
    for name in ("rebinds_oracle_on_first_call", "patches_comparison", "flips_flush_denormal", "leaves_one_thread",
                 "writes_garbage", "leaves_a_process", "unusual_but_correct"):
        argv += ["--candidate", f"{CHEATS}:{name}"]
    try:
        code = main(argv)
    finally:
        del os.environ["HOSTILE_MARKER"], os.environ["HARNESS_RUNNER_WRITABLE"]
    run = schema.load(out / "quantize_k_cache-cpu.json")
    return code, {c.name: c for c in run.candidates}, marker, run


@pytest.mark.parametrize("name", ["quantize", "rebinds_oracle_on_first_call", "patches_comparison"])
def test_wrong_arithmetic_fails_whatever_it_rebinds_in_its_own_process(judged, name):
    _, by_name, _, _ = judged
    v = by_name[name].verification
    assert by_name[name].verdict == "fail" and v.failed >= 40, (name, v.failed, by_name[name].error)
    assert "scales:" in by_name[name].error and by_name[name].timings == ()


def test_flush_to_zero_is_a_changed_process_state_and_its_subnormal_outputs_differ(judged):
    _, by_name, _, _ = judged
    c = by_name["flips_flush_denormal"]
    assert c.verdict == "fail"
    assert c.error == "changed process state: flush denormals (torch.set_flush_denormal) False -> True"
    # with flush-to-zero on, even the runner's own build of subnormal inputs differs from the judge's
    subnormal = [f for f in c.verification.failures if f.params.get("values") == "subnormal"]
    assert subnormal and all(f.reason == "its runner built other inputs for this case than the judge did"
                             for f in subnormal)


def test_a_changed_thread_count_fails_and_gets_no_speedup(judged):
    _, by_name, _, _ = judged
    c = by_name["leaves_one_thread"]
    assert c.verdict == "fail" and c.timings == () and c.headline is None
    assert c.error.startswith("changed process state: torch.get_num_threads() ") and c.error.endswith(" -> 1")


def test_garbage_on_the_pipe_is_an_error_of_that_candidate(judged):
    _, by_name, _, _ = judged
    c = by_name["writes_garbage"]
    assert c.verdict == "error" and c.error.startswith("sent malformed data on the runner pipe (bad frame header")


def test_forged_timings_are_caught_by_the_judges_clock(tmp_path):
    # rounds of single ~100 ms calls (131,072 tokens): the judge's clock (quiet) or the CPU time the runner
    # used (loaded) shows a tenth reported
    out = tmp_path / "forged"
    assert main(["run", "--target", "quantize_k_cache", "--out", str(out), "--sizes", "131072", "--budget", "1.5", "--examples", "1", "--no-profile",
                 "--candidate", f"{CHEATS}:forges_its_timings"]) == 1
    (c,) = schema.load(out / "quantize_k_cache-cpu.json").candidates
    assert c.verdict == "error" and c.timings == ()
    assert c.error.startswith("its reported times account for ")
    assert "that the judge saw take" in c.error or "of CPU time" in c.error  # quiet / loaded (the suite's own load)


def test_forged_timings_are_caught_beside_busy_processes(tmp_path):
    """One busy process per core: rounds wait behind them, so the judge's clock cannot tell a forger from an
    honest runner (tests/test_cli.py: an honest fused under the same load passes); the CPU time it used can."""
    import subprocess
    import sys

    hogs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(os.cpu_count() or 2)]
    try:
        proc = subprocess.run([sys.executable, "-m", "harness", "run", "--target", "quantize_k_cache", "--out",
                               str(tmp_path), "--sizes", "131072", "--budget", "1.5", "--examples", "1",
                               "--no-profile", "--candidate", f"{CHEATS}:forges_its_timings"],
                              capture_output=True, text=True)
    finally:
        for hog in hogs:
            hog.kill()
            hog.wait()
    (c,) = schema.load(tmp_path / "quantize_k_cache-cpu.json").candidates
    assert proc.returncode in (1, 3) and c.verdict == "error" and c.timings == (), (c.error, proc.stderr[-2000:])
    assert c.error.startswith("its reported times account for "), c.error


def test_a_process_left_running_is_killed_and_noted(judged):
    _, by_name, marker, run = judged
    c = by_name["leaves_a_process"]
    assert c.verdict == "pass" and "left 1 process running after its calls (killed by the judge)" in c.notes
    extra = [n for n in c.notes if "extra timing runners" in n]  # the pairs a verdict inside the floor needs
    assert len(c.notes) == 1 + len(extra) and all(n.startswith("left ") for n in extra)
    alive = []  # by its command line (the pid it wrote is its pid inside the runner's PID namespace)
    for entry in filter(str.isdigit, os.listdir("/proc")):
        try:
            if str(marker).encode() in open(f"/proc/{entry}/cmdline", "rb").read():
                alive.append(entry)
        except OSError:
            pass
    assert alive == []
    assert not marker.exists()
    assert "left 1 process running" in report.markdown(run)


def test_correct_candidates_still_pass_and_are_timed(judged):
    code, by_name, _, run = judged
    c = by_name["unusual_but_correct"]
    assert c.verdict == "pass" and c.verification.cases > 80 and c.timings
    assert code == 1 and run.checkout_changes == ()


def test_each_candidate_says_where_its_judging_time_went(judged):
    """Every candidate's stages are wall seconds the judge measured: a timed one loaded, was verified and
    timed; one that failed verification was never timed; the report sums them in one line."""
    _, by_name, _, run = judged
    timed, wrong = by_name["unusual_but_correct"].stages, by_name["quantize"].stages
    assert timed.load_s > 0 and timed.verify_s > 0 and timed.time_s > 0 and timed.profile_s == 0  # --no-profile
    first_timed = next(c for c in run.candidates if c.timings)  # its regression cases timed after the ladder
    assert first_timed.case_timings and first_timed.stages.cases_s > 0
    assert wrong.verify_s > 0 and wrong.time_s == 0 and wrong.cases_s == 0 and wrong.wait_s == 0
    line = report.markdown(run)
    total = sum(c.stages.total_s for c in run.candidates)
    assert f"Judging {len(run.candidates)} candidates took {total:.1f} s: loading " in line
