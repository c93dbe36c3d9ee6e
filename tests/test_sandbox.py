"""Runners as the judge sees them: misbehaving functions cost only their own verdict, with a one-line reason;
a runner's processes never outlive it; and results are written atomically with ordinary permissions."""

import os
import stat
import time

import pytest
import torch


from harness.core import schema
from harness.core.config import BenchConfig
from harness.cli.commands import main
from harness.judge.sandbox import LoadFailed, RunnerError, kill_strays, spawn
from harness.core.target import get_target

HOSTILE = "tests/hostile_candidates.py"
TIMEOUT = 20  # seconds; only `hangs` waits for it, every other runner answers in a fraction of that
REASONS = {
    "raises": "raised RuntimeError: kernel launch failed",
    "returns_none": "returned NoneType, expected a torch.Tensor",
    "returns_object": "returned Widget, expected a torch.Tensor",
    "wrong_dtype": "returned dtype torch.float32, expected torch.float8_e4m3fn",
    "hangs": f"timed out after {TIMEOUT} s",
    "exits": "exited with code 3",
    "exits_zero": "exited with code 0",
    "segfaults": "killed by signal SIGSEGV",
}
TARGET = get_target("quantize_k_cache")


@pytest.fixture(scope="module")
def hostile_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("hostile")
    argv = ["run", "--target", "quantize_k_cache", "--out", str(out), "--sizes", "1x32x576", "--budget", "0.2", "--examples", "5",
            "--timeout", str(TIMEOUT), "--no-profile"]
    for name in REASONS:
        argv += ["--candidate", f"{HOSTILE}:{name}"]
    return main(argv), out


WRONG_OUTPUTS = ("returns_none", "returns_object", "wrong_dtype")  # wrong answers like wrong values: fail


def test_every_misbehaviour_gets_its_verdict_and_reason(hostile_run):
    code, out = hostile_run
    assert code == 1
    run = schema.load(out / "quantize_k_cache-cpu.json")
    by_name = {c.name: c for c in run.candidates}
    for name, reason in REASONS.items():
        assert by_name[name].verdict == ("fail" if name in WRONG_OUTPUTS else "error"), name
        assert by_name[name].error == reason, (name, by_name[name].error)
    assert "killed by signal SIGSEGV" in (out / "quantize_k_cache-cpu.md").read_text()


def test_a_good_candidate_beside_a_crashing_import_is_verified_and_timed(tmp_path):
    crasher = tmp_path / "crash_on_import.py"
    crasher.write_text("import ctypes\nctypes.string_at(0)\n\ndef quantize(input_k_cache, dv=512, tile_size=128):\n    pass\n")
    out = tmp_path / "out"
    code = main(["run", "--target", "quantize_k_cache", "--out", str(out), "--sizes", "1x16x576", "--budget", "0.2", "--examples", "5", "--no-profile",
                 "--candidate", f"{crasher}:quantize", "--candidate", "candidates/fused.py:fused"])
    assert code == 1
    run = schema.load(out / "quantize_k_cache-cpu.json")
    crashed, fused = run.candidates
    assert crashed.verdict == "error" and crashed.error == "importing it killed by signal SIGSEGV"
    assert fused.verdict == "pass" and fused.timings and fused.timings[0].speedup > 0


def _runner(spec="oracle:quantize_k_cache", timeout=60.0):
    import dataclasses

    return spawn(spec, TARGET.ref, "cpu", dataclasses.asdict(BenchConfig()), timeout)


def test_a_runner_calls_and_reports_data():
    runner = _runner()
    try:
        case = TARGET.named_cases()[0]
        got = runner.call(case)
        expected = TARGET.oracle(*TARGET.build(case, "cpu").args, **TARGET.build(case, "cpu").kwargs)
        assert got.error_type is None and not got.mutated_input and got.state_changes == ()
        assert got.value.dtype == expected.dtype and got.value.shape == expected.shape
        assert torch.equal(got.value.view(torch.uint8), expected.view(torch.uint8))
        error_case = next(c for c in TARGET.named_cases() if c.family == "error")
        raised = runner.call(error_case)
        assert raised.error_type and raised.error_type.startswith("builtins.")
    finally:
        assert runner.close() == 0
    assert not runner.alive()


def test_sizes_beyond_the_cache_build_together_then_warm_up_alone_once(tmp_path, monkeypatch):
    """Building together (``Bench._prepare``, together) never calls the function; each runner's one warm-up
    comes after, alone.  A function that counts its calls in a file shows it."""
    from harness.judge.bench import Bench

    monkeypatch.setenv("HARNESS_RUNNER_WRITABLE", str(tmp_path))  # where it counts (else read-only for it)

    counting = tmp_path / "counting.py"
    calls = tmp_path / "calls.txt"
    counting.write_text("from harness.core.target import get_target\n"
                        "def quantize(input_k_cache, dv=512, tile_size=128):\n"
                        f"    open({str(calls)!r}, 'a').write('call\\n')\n"
                        "    return get_target('quantize_k_cache').oracle(input_k_cache, dv, tile_size)\n")
    pair = (_runner(f"{counting}:quantize"), _runner())
    try:
        size = TARGET.parse_size("1x16x576")
        for runner in pair:
            runner.prepare_begin(size, fresh=True, warm=False)
        built = [runner.prepare_end() for runner in pair]
        assert not calls.exists() and [b["per_call_s"] for b in built] == [None, None]
        warmed = Bench._prepare(pair, size, together=True)
        assert all(w["per_call_s"] > 0 for w in warmed) and warmed[0]["input_digest"] == built[1]["input_digest"]
        assert len(calls.read_text().splitlines()) >= 3  # its warm-up: until three calls agree
    finally:
        for runner in pair:
            runner.close()


def test_a_spec_that_cannot_be_loaded_is_a_load_failure(tmp_path):
    path = tmp_path / "imports_nothing.py"
    path.write_text("import not_a_module_anywhere\n")
    with pytest.raises(LoadFailed, match="no module named 'not_a_module_anywhere'"):
        _runner(f"{path}:f")


def test_a_runner_that_hangs_at_import_times_out(tmp_path):
    path = tmp_path / "sleeps.py"
    path.write_text("import time\ntime.sleep(3600)\n")
    with pytest.raises(RunnerError, match="importing it timed out after 10 s"):
        _runner(f"{path}:f", timeout=10)


@pytest.mark.parametrize("namespaces", [True, False], ids=["namespaces", "fallback"])
def test_processes_a_runner_detached_are_killed_with_it(tmp_path, monkeypatch, namespaces):
    from harness.runner import isolation

    if namespaces and not isolation.available():
        pytest.skip(f"no namespaces here: {isolation.describe()}")
    if not namespaces:
        monkeypatch.setattr(isolation, "_PROBED", (None, "turned off by a test"))
    marker = f"detached-{os.getpid()}-{tmp_path.name}"  # in a PID namespace its pid there is not the judge's
    path = tmp_path / "detaches.py"
    path.write_text(
        "import subprocess, sys\n"
        f"child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)  # {marker}'], start_new_session=True)\n"
        "def f(input_k_cache, dv=512, tile_size=128):\n    pass\n")
    runner = _runner(f"{path}:f")
    try:
        assert len(_with_marker(marker, wait_s=10.0)) == 1  # alive while the runner is
    finally:
        assert runner.close() == 1
    assert _with_marker(marker) == []
    assert kill_strays(runner.process.pid) == 0


def _with_marker(marker: str, wait_s: float = 0.0) -> list[int]:
    """Live processes whose command line holds ``marker``; with ``wait_s``, looked for until one is found.
    (A process's command line is written a moment after its parent sees the exec succeed: the candidate's
    ``Popen`` can return, and its runner say it loaded, while the child's reads empty, on a loaded machine
    one run in ten.)"""
    deadline = time.monotonic() + wait_s
    while not (found := _scan(marker)) and time.monotonic() < deadline:
        time.sleep(0.01)
    return found


def _scan(marker: str) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        try:
            if entry.isdigit() and marker.encode() in open(f"/proc/{entry}/cmdline", "rb").read():
                if open(f"/proc/{entry}/stat", "rb").read().rsplit(b")", 1)[1].split()[0] != b"Z":
                    found.append(int(entry))
        except OSError:
            continue
    return found


def test_atomic_write_keeps_the_old_file_when_interrupted(tmp_path, monkeypatch):
    path = tmp_path / "report.md"
    path.write_text("the earlier report")

    def interrupted(*args):
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "replace", interrupted)
    with pytest.raises(KeyboardInterrupt):
        schema.write_atomic(path, "half of a new report")
    assert path.read_text() == "the earlier report"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.md"]  # no temporary file left behind


def test_written_files_get_the_usual_permissions(tmp_path):
    old = os.umask(0o022)
    try:
        path = schema.write_atomic(tmp_path / "r.md", "text")
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644


@pytest.mark.parametrize("argv, message", [
    (["verify", "--target", "quantize_k_cache", "--candidate", "tests/broken_syntax_candidate.py:f"], "SyntaxError"),
    (["verify", "--target", "quantize_k_cache", "--candidate", "tests/hostile_candidates.py:nope"], "no function 'nope'"),
])
def test_bad_specs_exit_2(capsys, tmp_path, argv, message):
    broken = tmp_path / "broken_syntax_candidate.py"
    broken.write_text("def f(:\n")
    argv = [a.replace("tests/broken_syntax_candidate.py", str(broken)) for a in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1 and "Traceback" not in err


def test_debug_shows_the_traceback():
    with pytest.raises(Exception, match="candidate file not found"):
        main(["verify", "--target", "quantize_k_cache", "--candidate", "missing.py:f", "--debug"])


def test_the_timing_cross_check_judges_the_median_round_not_the_delayed_ones():
    from harness.judge.sandbox import underreported

    short_with_two_delayed = [(0.005, 1.05)] * 20 + [(0.030, 6.0), (0.040, 8.0)]  # a quiet run of short rounds
    assert not underreported(short_with_two_delayed)
    forged = [(0.050, 10.0)] * 6  # long rounds reported at a tenth
    assert underreported(forged)
    assert not underreported([(0.050, 1.1)] * 6) and not underreported([(0.050, 10.0)])  # honest; too few


def test_the_cpu_time_cross_check_holds_whatever_the_load():
    """On a loaded machine the judge's clock proves nothing (a round waits behind other processes), the CPU
    time a runner's main thread used does: honest rounds used at most 0.7 s per reported second there."""
    from harness.judge.sandbox import MIN_CHECKED_CPU_S, cpu_underreported

    assert not cpu_underreported(0.54, 0.854, rounds=17)  # fused on 2 threads beside two busy processes
    assert not cpu_underreported(0.47, 0.751, rounds=17)  # the oracle, the same run
    assert cpu_underreported(0.47, 0.0751, rounds=17)  # the same rounds reported at a tenth
    assert not cpu_underreported(0.05, 0.001, rounds=50)  # tiny rounds: their own work around the calls
    assert not cpu_underreported(0.6, 0.05, rounds=20, calls=10_000)  # tiny calls, each its input written first
    assert not cpu_underreported(MIN_CHECKED_CPU_S / 2, 0.001, rounds=1)  # too few ticks to judge


def _resident_bytes(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        return next(int(line.split()[1]) * 1024 for line in status if line.startswith("VmRSS:"))


def test_prepare_faults_in_the_memory_its_rounds_use():
    """After ``prepare`` a runner's rounds (shifted heap, fresh inputs, kept outputs) run on pages already
    faulted in: its resident memory, read by the judge from /proc, does not grow while it is timed.  Before,
    the first rounds at 65,536 tokens paid the kernel's page zeroing (50-95 ms a call against 3.5 ms)."""
    from harness.runner.worker import HEAP_SHIFT_MAX

    runner = _runner()
    try:
        size = TARGET.parse_size("4096")
        per_call = runner.prepare(size)["per_call_s"]
        calls = BenchConfig().calls_per_round(TARGET.case_bytes(size), per_call)
        prepared = _resident_bytes(runner.pid)
        assert prepared > HEAP_SHIFT_MAX + 3 * calls * TARGET.case_bytes(size)
        for r in range(12):
            runner.round(calls, r)
        assert _resident_bytes(runner.pid) < prepared + (4 << 20)  # a few pages of the interpreter's own, at most
    finally:
        runner.close()


def _sleep_a_while() -> None:
    import time

    time.sleep(30)


def test_the_judges_own_helpers_are_never_strays_but_an_adopted_process_is():
    """The judge kills live children that are not runners (what a runner detached is adopted by it), but
    not its own judge workers nor multiprocessing's resource tracker (killed, it warned "process died
    unexpectedly" in every --jobs run with round trips)."""
    import multiprocessing
    import subprocess
    import sys

    from harness.judge import strays

    helper = multiprocessing.get_context("spawn").Process(target=_sleep_a_while, daemon=True)
    helper.start()
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        found = strays._strays(session=-1)  # no runner's session: only what the judge itself holds
        assert other.pid in found and helper.pid not in found
    finally:
        other.kill()
        other.wait()
        helper.kill()
        helper.join()
