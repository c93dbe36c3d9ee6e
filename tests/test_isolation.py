"""Hostile candidates in one `harness run`: each gets the verdict `error` with the right one-line reason,
the good candidate is still verified and timed, the report is written, and the exit code is non-zero.
Also the isolation primitive on its own, and atomic writes."""

import os

import pytest

from harness import result
from harness.cli import main
from harness.sandbox import Isolated, run_isolated

HOSTILE = "tests/hostile_candidates.py"
REASONS = {
    "raises": "raised RuntimeError: kernel launch failed",
    "returns_none": "returned NoneType, expected a torch.Tensor",
    "wrong_dtype": "returned dtype torch.float32, expected torch.float8_e4m3fn",
    "hangs": "timed out after 15 s",
    "exits": "exited with code 3",
    "segfaults": "killed by signal SIGSEGV",
}


@pytest.fixture(scope="module")
def hostile_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("hostile")
    specs = [f"{HOSTILE}:{name}" for name in REASONS] + ["candidates/fused.py:fused"]
    argv = ["run", "--out", str(out), "--sizes", "1x32x576", "--budget", "0.2", "--examples", "5", "--timeout", "15"]
    for spec in specs:
        argv += ["--candidate", spec]
    return main(argv), out


def test_every_misbehaviour_is_an_error_with_its_reason(hostile_run):
    code, out = hostile_run
    assert code == 1
    run = result.load(out / "quantize_k_cache-cpu.json")
    by_name = {c.name: c for c in run.candidates}
    for name, reason in REASONS.items():
        assert by_name[name].verdict == "error", name
        assert by_name[name].error == reason, (name, by_name[name].error)


def test_the_good_candidate_is_still_verified_and_timed(hostile_run):
    _, out = hostile_run
    run = result.load(out / "quantize_k_cache-cpu.json")
    fused = next(c for c in run.candidates if c.name == "fused")
    assert fused.verdict == "pass" and fused.timings and fused.timings[0].speedup > 0
    report = (out / "quantize_k_cache-cpu.md").read_text()
    assert "killed by signal SIGSEGV" in report or "💥 error" in report


def _double(x, progress):
    progress("step", name="doubling")
    return 2 * x


def _crash(x, progress):
    os._exit(7)


def test_run_isolated_returns_results_and_forwards_progress():
    seen = []
    assert run_isolated(_double, (21,), 60, lambda event, **info: seen.append((event, info))) == 42
    assert seen == [("step", {"name": "doubling"})]


def test_run_isolated_reports_a_dead_child():
    with pytest.raises(Isolated, match="exited with code 7"):
        run_isolated(_crash, (1,), 60)


def test_atomic_write_keeps_the_old_file_when_interrupted(tmp_path, monkeypatch):
    path = tmp_path / "report.md"
    path.write_text("the earlier report")

    def interrupted(*args):
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "replace", interrupted)
    with pytest.raises(KeyboardInterrupt):
        result.write_atomic(path, "half of a new report")
    assert path.read_text() == "the earlier report"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.md"]  # no temporary file left behind


@pytest.mark.parametrize("argv, message", [
    (["verify", "--candidate", "tests/broken_syntax_candidate.py:f"], "SyntaxError"),
    (["verify", "--candidate", "tests/hostile_candidates.py:nope"], "no function 'nope'"),
])
def test_bad_specs_exit_2(capsys, tmp_path, argv, message, monkeypatch):
    broken = tmp_path / "broken_syntax_candidate.py"
    broken.write_text("def f(:\n")
    argv = [a.replace("tests/broken_syntax_candidate.py", str(broken)) for a in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1 and "Traceback" not in err


def test_debug_shows_the_traceback():
    with pytest.raises(Exception, match="candidate file not found"):
        main(["verify", "--candidate", "missing.py:f", "--debug"])


def test_a_module_that_crashes_on_import_costs_only_its_verdict(tmp_path, capsys):
    crasher = tmp_path / "crash_on_import.py"
    crasher.write_text("import ctypes\nctypes.string_at(0)\n\ndef quantize(input_k_cache, dv=512, tile_size=128):\n    pass\n")
    out = tmp_path / "out"
    code = main(["run", "--out", str(out), "--sizes", "1x16x576", "--budget", "0.2", "--examples", "5", "--no-profile",
                 "--candidate", f"{crasher}:quantize", "--candidate", "candidates/fused.py:fused"])
    assert code == 1
    run = result.load(out / "quantize_k_cache-cpu.json")
    crashed, fused = run.candidates
    assert crashed.verdict == "error" and crashed.error == "importing it killed by signal SIGSEGV"
    assert fused.verdict == "pass" and fused.timings
