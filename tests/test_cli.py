"""The command line end to end (in-process, so each test costs no interpreter start)."""

import json
import os
import textwrap
from pathlib import Path

import pytest
import torch

from harness.render import report

from harness.core import stats

from harness.core import schema
from harness.cli.commands import main

FAST = ["--budget", "0.2", "--examples", "5"]
PASSED = (0, 3)  # 3: everything passed, and the timings were flagged as noisy (the suite may run under load)


def run_cli(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_list_names_each_candidate_spec(capsys):
    code, out, _ = run_cli(capsys, "list")
    assert code == 0
    for spec in ("candidates/slow_loop.py:slow_loop", "candidates/amax_vectorized.py:amax_vectorized",
                 "candidates/fused.py:fused"):
        assert spec in out
    assert "quantize_k_cache" in out
    from harness.core.candidates import discover

    docs = {c.spec: " ".join(c.doc.split("\n\n")[0].split()) for c in discover("quantize_k_cache", ["quantize_k_cache", "dequantize_k_cache", "per_token_group_quant_fp8"])}
    for line in out.splitlines():  # each docstring's first paragraph, cut only where a word ends, and marked
        spec = next((s for s in docs if line.startswith(f"  {s} ")), None)
        shown = line[len(spec) + 2:].strip() if spec else None
        if shown and shown != docs[spec]:
            assert shown.endswith(" …") and docs[spec].startswith(shown[:-2]), (line, docs[spec])
            assert docs[spec][len(shown) - 2] == " ", (line, docs[spec])


@pytest.fixture
def outside(tmp_path):
    path = tmp_path / "outside.py"
    path.write_text(textwrap.dedent('''
        from candidates.fused import fused

        def good(input_k_cache, dv=512, tile_size=128):
            """Delegates to the fused candidate."""
            return fused(input_k_cache, dv, tile_size)

        def bad(input_k_cache, dv=512, tile_size=128):
            return fused(input_k_cache.flip(-1), dv, tile_size)
    '''))
    return path


def test_verify_a_file_outside_the_repo(capsys, outside, tmp_path):
    code, out, _ = run_cli(capsys, "verify", "--target", "quantize_k_cache", "--candidate", f"{outside}:good", "--examples", "10",
                           "--json", str(tmp_path / "v.json"))
    assert code == 0
    data = json.loads((tmp_path / "v.json").read_text())
    (cand,) = data["candidates"]
    assert (cand["name"], cand["verdict"], cand["failed"]) == ("good", "pass", 0)
    assert cand["cases"] > 90 and cand["spec"].endswith("outside.py:good")


def test_verify_exits_1_and_prints_the_minimal_case(capsys, outside, tmp_path):
    code, out, _ = run_cli(capsys, "verify", "--target", "quantize_k_cache", "--candidate", f"{outside}:bad", "--examples", "20",
                           "--json", str(tmp_path / "v.json"))
    assert code == 1
    assert "minimal failing case" in out and "--show-reproducer prints it here" in out
    cand = json.loads((tmp_path / "v.json").read_text())["candidates"][0]
    assert cand["verdict"] == "fail" and cand["first_failure"]
    test = cand["verification"]["failures"][-1]["test"]
    assert test.startswith("from harness.core.target import Case\nfrom harness.judge.verify import check_case\n")


def test_show_reproducer_prints_a_whole_pytest_file_that_runs_and_fails(capsys, outside, tmp_path):
    import subprocess
    import sys

    code, out, _ = run_cli(capsys, "verify", "--target", "quantize_k_cache", "--candidate", f"{outside}:bad",
                           "--examples", "5", "--show-reproducer")
    assert code == 1
    text = out.split("ready to paste into a pytest file\n", 1)[1].split("\n\n\n\n", 1)[0]
    assert all(len(line) < 10_000 for line in text.splitlines())
    assert max(len(line) for line in text.splitlines()) > 140  # a long line came through whole, not cut
    path = tmp_path / "test_repro.py"
    path.write_text(text)
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(path)],
                          capture_output=True, text=True)
    assert proc.returncode == 1 and "1 failed" in proc.stdout, proc.stdout[-2000:]


@pytest.mark.parametrize("argv, message", [
    (["verify", "--target", "quantize_k_cache", "--candidate", "missing/file.py:fn"], "candidate file not found: missing/file.py"),
    (["verify", "--target", "quantize_k_cache", "--candidate", "candidates/fused.py:nope"], "no function 'nope'"),
    (["verify", "--policy", "close"], "unknown policy 'close': choose from exact, ulp, dequant"),
    (["verify", "--device", "tpu"], "unknown device 'tpu'"),
    (["bench", "--sizes", "12x"], "bad size '12x'"),
    (["bench", "--sizes", "1x1x1", "--candidate", "candidates/fused.py:fused"], "size 1x1x1: the oracle "),
    (["bench", "--processes", "17"], "--processes 17: at most 16 runner pairs per candidate"),
    (["bench", "--processes", "0"], "--processes"),
    (["report", "--from", "missing.json"], "no such result file: missing.json"),
    (["profile", "missing.py:fn"], "candidate file not found: missing.py"),
    (["profile", "candidates/fused.py:fused", "--size", "huge"], "bad size 'huge'"),
])
def test_user_mistakes_are_one_line_and_exit_2(capsys, argv, message):
    code, out, err = run_cli(capsys, *argv)
    assert code == 2
    assert err.strip() == f"harness: error: {err.strip().removeprefix('harness: error: ')}"
    assert message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_cuda_without_a_gpu_is_a_usage_error(capsys):
    code, _, err = run_cli(capsys, "verify", "--device", "cuda")
    assert code == 2 and "no CUDA device" in err


def test_unwritable_out_fails_before_any_work(capsys, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    code, _, err = run_cli(capsys, "run", "--out", str(blocker / "sub"), *FAST)
    assert code == 2 and "cannot write to --out" in err


@pytest.fixture(scope="module")
def saved_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("reports")
    code = main(["run", "--target", "quantize_k_cache", "--out", str(out), "--sizes", "1x32x576", "--candidate", "candidates/fused.py:fused", *FAST])
    return code, out


def test_run_writes_report_and_json(saved_run):
    code, out = saved_run
    assert code in PASSED
    data = json.loads((out / "quantize_k_cache-cpu.json").read_text())
    (cand,) = data["candidates"]
    for key in ("name", "spec", "verdict", "cases", "failed", "median_s", "speedup", "speedup_ci", "significant", "gbps"):
        assert key in cand
    assert cand["speedup"] > 0 and len(cand["timings"][0]["candidate_rounds_s"]) >= 2
    assert (out / "quantize_k_cache-cpu.md").read_text().startswith("# ")


def test_report_rerenders_the_same_bytes(capsys, saved_run):
    _, out = saved_run
    code, text, _ = run_cli(capsys, "report", "--from", str(out / "quantize_k_cache-cpu.json"))
    assert code == 0 and text == (out / "quantize_k_cache-cpu.md").read_text()


def test_regression_gate(capsys, saved_run, tmp_path):
    _, out = saved_run
    previous = json.loads((out / "quantize_k_cache-cpu.json").read_text())
    # "it used to be 1000x faster than the baseline": far beyond what a loaded machine can do to the new run
    _scale(previous["candidates"][0]["timings"][0], 1000)
    doctored = tmp_path / "previous.json"
    doctored.write_text(json.dumps(previous))
    code, _, err = run_cli(capsys, "run", "--out", str(tmp_path / "new"), "--sizes", "1x32x576", "--candidate",
                           "candidates/fused.py:fused", "--compare", str(doctored), "--fail-slower", "5%", *FAST)
    saved = schema.load(tmp_path / "new" / "quantize_k_cache-cpu.json")
    assert _gate_verdict(code, tmp_path / "new", 1)
    if code == 3:
        return  # a machine too busy to judge the new run: the gate said "noisy" (see _gate_verdict)
    assert "regression gate failed: 1 of 1 candidate/size pair slower than" in " ".join(err.split())
    assert saved.gate.status == "failed" and saved.gate.checks[0].verdict == "slower"
    assert "❌ regression gate failed" in (tmp_path / "new" / "index-cpu.md").read_text()


def _steady(timing: dict) -> None:
    """A saved timing given steady rounds (baseline 1 ms, candidate 0.1 ms, 0.4% apart at most): what a
    comparison test checks is the comparison, not how busy this machine was when the fixture ran."""
    timing["baseline_rounds_s"] = [1e-3 * (1 + 0.001 * (i % 5)) for i in range(30)]
    timing["candidate_rounds_s"] = [1e-4 * (1 + 0.001 * ((i + 2) % 5)) for i in range(30)]
    timing["speedup"], timing["speedup_ci"] = 10.0, [9.97, 10.03]
    timing["baseline"]["median_s"], timing["candidate"]["median_s"] = 1.002e-3, 1.002e-4
    timing["pair_speedups"], timing["pair_verdicts"] = [], []


def _gate_verdict(code: int, out: Path, expected_code: int) -> bool:
    """The gate's exit as expected — or, where this machine was too busy to judge the new run (its result
    says so), the gate's own "noisy" (exit 3), never a pass or a failure it cannot back."""
    run = schema.load(out / "quantize_k_cache-cpu.json")
    if run.noise and code == 3:
        return run.gate.status == "noisy"
    return code == expected_code


def _scale(timing: dict, factor: float) -> None:
    """A saved timing doctored to read ``factor`` times faster (its speedup, interval and rounds)."""
    timing["speedup"] *= factor
    timing["speedup_ci"] = [v * factor for v in timing["speedup_ci"]]
    timing["candidate_rounds_s"] = [t / factor for t in timing["candidate_rounds_s"]]
    timing["candidate"]["median_s"] /= factor


def test_regression_gate_counts_its_pairs_and_fails_when_none_overlap(capsys, saved_run, tmp_path):
    _, out = saved_run
    # What is tested is the count of pairs, so the saved run is made 1000x slower than anything this run can
    # measure, however loaded the machine (tiny rounds under load once read 10x slower between two runs);
    # the gate's detection is test_regression_gate's, with a 1000x doctored speedup.
    previous = json.loads((out / "quantize_k_cache-cpu.json").read_text())
    _scale(previous["candidates"][0]["timings"][0], 1 / 1000)
    slow = tmp_path / "slow.json"
    slow.write_text(json.dumps(previous))
    argv = ["run", "--target", "quantize_k_cache", "--out", str(tmp_path / "new"), "--candidate",
            "candidates/fused.py:fused", "--compare", str(slow), *FAST]
    code, _, err = run_cli(capsys, *argv, "--sizes", "1x32x576")
    assert _gate_verdict(code, tmp_path / "new", 0)
    assert code == 3 or "regression gate passed: none of 1 candidate/size pair slower" in " ".join(err.split())
    code, _, err = run_cli(capsys, *argv, "--sizes", "1x8x576")  # no size in common with the saved run
    assert code == 1 and "regression gate failed: compared nothing" in " ".join(err.split())


def test_bench_json_keeps_every_round(capsys, tmp_path):
    code, _, _ = run_cli(capsys, "bench", "--target", "quantize_k_cache", "--candidate", "candidates/amax_vectorized.py:amax_vectorized",
                         "--sizes", "1x16x576", "--budget", "0.2", "--json", str(tmp_path / "b.json"))
    assert code in PASSED
    run = schema.load(tmp_path / "b.json")
    (cand,) = run.candidates
    assert cand.verdict == "untested" and cand.timings[0].baseline_rounds_s


def test_processes_times_each_size_in_that_many_runner_pairs(capsys, tmp_path):
    code, _, _ = run_cli(capsys, "bench", "--target", "quantize_k_cache", "--candidate", "candidates/amax_vectorized.py:amax_vectorized",
                         "--sizes", "1x16x576", "--budget", "0.2", "--processes", "2", "--json", str(tmp_path / "b.json"))
    assert code in PASSED
    run = schema.load(tmp_path / "b.json")
    (timing,) = run.candidates[0].timings
    assert len(timing.pair_speedups) in (2, 3) and run.bench.processes == 2  # a third if the two disagreed
    voted = [s for s, v in zip(timing.pair_speedups, timing.pair_verdicts)
             if stats.verdict_class(v) == stats.verdict_class(timing.verdict)] or timing.pair_speedups
    if not run.noise:  # beside busy processes a disturbed pair votes for nothing and its interval is left out
        assert timing.speedup_ci[0] <= min(voted) and max(voted) <= timing.speedup_ci[1]
    assert "timed in 2 pairs of runner processes" in report.markdown(run)
    from harness.cli.options import run_options
    from harness.cli.arguments import parser

    for device, processes in (("cpu", 1), ("cuda", 3)):
        args = parser().parse_args(["bench", "--device", device])
        assert run_options(args, verify=False, time=True).bench.processes == processes


def test_a_verdict_close_to_the_floor_is_confirmed_in_a_second_pair_of_runners(capsys, tmp_path):
    """Busy waits of 2.0 and 2.2 ms (wall-clock): 0.91x "slower", close to the floor, so a second pair of
    runners times the size again (a third if the two disagree), and the pairs vote."""
    waits = tmp_path / "waits.py"
    waits.write_text("import time\n"
                     "def _wait(s):\n    end = time.perf_counter() + s\n    while time.perf_counter() < end:\n        pass\n"
                     "def base(input_k_cache, dv=512, tile_size=128):\n    _wait(2.0e-3)\n"
                     "def cand(input_k_cache, dv=512, tile_size=128):\n    _wait(2.2e-3)\n")
    code, out, _ = run_cli(capsys, "bench", "--target", "quantize_k_cache", "--baseline", f"{waits}:base",
                           "--candidate", f"{waits}:cand", "--sizes", "1x4x576", "--budget", "3",
                           "--json", str(tmp_path / "b.json"))
    run = schema.load(tmp_path / "b.json")
    (timing,) = run.candidates[0].timings
    text = report.markdown(run)
    assert "timed in a second pair of runner processes" in text  # the footer states the rule
    pairs = len(timing.pair_speedups)
    assert pairs == len(timing.pair_verdicts) and pairs in (0, 2, 3)
    if pairs:  # and the statistics table how each pair voted
        from harness.core.fmt import fmt_pairs

        assert fmt_pairs(timing).split(":")[0] + ":" in text
    if pairs == 0:  # a verdict from one pair is never one close to the floor
        from harness.judge.bench import Bench
        from harness.core.target import get_target

        assert Bench(get_target("quantize_k_cache")).stands_alone(timing), timing.speedup_ci
    if not run.noise:  # a quiet machine measures the 0.91x it is: close to the floor, so confirmed
        assert code in PASSED and timing.verdict == "slower" and pairs >= 2, (timing.speedup_ci, timing.pair_speedups)
        agreeing = [s for s, v in zip(timing.pair_speedups, timing.pair_verdicts) if v == "slower"]
        assert len(agreeing) >= 2 and all(0.85 < s < 0.95 for s in agreeing)
        assert f"{pairs} pairs" in " ".join(out.split())  # the terminal says how many pairs decided it
    else:  # other processes took the CPUs (a loaded CI machine): the run says so, whatever it measured
        assert code == 3


def _count_starts(monkeypatch) -> list[str]:
    """The spec of every runner a run's pool starts, in order."""
    from harness.judge.pool import RunnerPool

    started: list[str] = []
    real_start = RunnerPool.start

    def counted(self, spec, env=None):
        started.append(spec)
        return real_start(self, spec, env)

    monkeypatch.setattr(RunnerPool, "start", counted)
    return started


def test_the_baselines_extra_runner_serves_every_candidate_and_every_runner_is_closed(monkeypatch, tmp_path):
    """Two candidates identical to the baseline (busy waits of 2 ms): "no significant difference" from one
    pair is not enough at a size the cache holds, so each is timed in a second pair, whose baseline runner
    is the same process for both (started once, with the first); all runners are closed at the end."""
    from harness.judge import sandbox
    from harness.core.config import BenchConfig
    from harness.judge.pipeline import Pipeline
    from harness.judge.plan import RunOptions

    waits = tmp_path / "waits.py"
    waits.write_text("import time\n"
                     "def _wait(s):\n    end = time.perf_counter() + s\n    while time.perf_counter() < end:\n        pass\n"
                     + "".join(f"def {name}(input_k_cache, dv=512, tile_size=128):\n    _wait(2.0e-3)\n"
                               for name in ("base", "first", "second")))
    started = _count_starts(monkeypatch)
    live_before = set(sandbox._LIVE)
    run = Pipeline(RunOptions(target="quantize_k_cache", baseline=f"{waits}:base", verify=False, sizes=["1x4x576"],
                              candidates=[f"{waits}:first", f"{waits}:second"], bench=BenchConfig(budget_s=3.0))).run()
    pairs = {c.name: max(1, len(c.timings[0].pair_speedups)) for c in run.candidates}
    assert started.count(f"{waits}:base") == max(2, *pairs.values())  # one runner per pair, whatever the candidates
    # each candidate: its runner and the spare its likely second pair takes (started while it is verified),
    # used or not (a busy machine can make one pair decide alone), and any third pair's
    assert started.count(f"{waits}:first") == max(2, pairs["first"]) and started.count(f"{waits}:second") == max(2, pairs["second"])
    assert set(sandbox._LIVE) <= live_before  # every runner of the run was closed
    if not run.noise:  # a quiet machine decides each pair inside the floor: a second pair, the same baseline runner
        assert all(n >= 2 for n in pairs.values()), pairs


def test_a_baseline_runner_that_dies_is_blamed_and_the_next_candidate_gets_fresh_ones(monkeypatch, tmp_path):
    """The baseline's second process (its runner for pairs 2) exits when first called: the candidate being
    timed gets "error" naming the baseline; the next candidate is timed against fresh baseline runners."""
    from harness.core.config import BenchConfig
    from harness.judge.pipeline import Pipeline
    from harness.judge.plan import RunOptions

    wait = "def _wait(s):\n    end = time.perf_counter() + s\n    while time.perf_counter() < end:\n        pass\n"
    monkeypatch.setenv("HARNESS_RUNNER_WRITABLE", str(tmp_path))  # its runners count their imports there
    counter = tmp_path / "imports"
    base = tmp_path / "base.py"
    base.write_text("import os, time\n" + wait
                    # the n-th import (runners import at once: a marker file each, created exclusively)
                    + "n = 1\nwhile True:\n    try:\n"
                    + f"        os.close(os.open({str(counter)!r} + f'.{{n}}', os.O_CREAT | os.O_EXCL)); break\n"
                    + "    except FileExistsError:\n        n += 1\n"
                    + "def base(input_k_cache, dv=512, tile_size=128):\n"
                    + "    if n == 2:\n        os._exit(3)\n    _wait(2.0e-3)\n")
    cands = tmp_path / "cands.py"
    cands.write_text("import time\n" + wait + "".join(f"def {name}(input_k_cache, dv=512, tile_size=128):\n    _wait(2.0e-3)\n"
                                                         for name in ("first", "second")))
    started = _count_starts(monkeypatch)
    run = Pipeline(RunOptions(target="quantize_k_cache", baseline=f"{base}:base", verify=False, sizes=["1x4x576"],
                              candidates=[f"{cands}:first", f"{cands}:second"],
                              bench=BenchConfig(budget_s=3.0, processes=2))).run()  # (two pairs always: a
    # busy machine can make one pair's verdict stand alone, and the second baseline runner would never be called)
    first, second = run.candidates
    assert first.verdict == "error" and first.error.startswith(f"the baseline {base}:base ") and "code 3" in first.error
    assert second.verdict == "untested" and second.timings and second.error is None
    pairs = max(1, len(second.timings[0].pair_speedups))  # one, or more where a verdict needed them
    assert started.count(f"{base}:base") == 2 + pairs  # its first two, then a fresh one per pair, not the first again


def test_a_candidate_right_only_in_the_runner_it_was_verified_in_fails(capsys, tmp_path, monkeypatch):
    """Its second process (an extra timing pair) finds a marker the first one left, and turns wrong (where
    the view allows: its runners share only their own compile caches and the folders named here)."""
    monkeypatch.setenv("HARNESS_RUNNER_WRITABLE", str(tmp_path))
    cheat = tmp_path / "second_process_cheats.py"
    marker = tmp_path / "marker"
    cheat.write_text("import os\nfrom harness.core.target import get_target\n"
                     f"SECOND = os.path.exists({str(marker)!r})\nopen({str(marker)!r}, 'a').close()\n"
                     "def quantize(input_k_cache, dv=512, tile_size=128):\n"
                     "    out = get_target('quantize_k_cache').oracle(input_k_cache, dv, tile_size)\n"
                     "    return out.zero_() if SECOND else out\n")
    out = tmp_path / "out"
    code, _, _ = run_cli(capsys, "run", "--target", "quantize_k_cache", "--candidate", f"{cheat}:quantize",
                         "--sizes", "1x16x576", "--budget", "0.2", "--examples", "3", "--no-profile",
                         "--processes", "2", "--out", str(out))
    (cand,) = schema.load(out / "quantize_k_cache-cpu.json").candidates
    assert code == 1 and cand.verdict == "fail" and "in a second runner, for timing, it failed" in cand.error, cand.error


def test_profile_command(capsys, tmp_path):
    code, out, _ = run_cli(capsys, "profile", "candidates/slow_loop.py:slow_loop", "--size", "256",
                           "--json", str(tmp_path / "p.json"))
    assert code == 0 and "abs + max reduction" in out and "aten::max" in out
    data = json.loads((tmp_path / "p.json").read_text())
    assert data["spec"] == "candidates/slow_loop.py:slow_loop" and sum(l["percent"] for l in data["lines"]) == pytest.approx(100)


def test_run_covers_every_target_with_round_trips_and_an_index(capsys, tmp_path):
    # "16": 16 tokens, a size every target takes (the K-cache targets' production row, 16 tokens of 7168 values)
    code, out, _ = run_cli(capsys, "run", "--out", str(tmp_path), "--sizes", "16", "--no-profile", "--budget",
                           "0.1", "--examples", "3")
    assert code in PASSED, out
    names = sorted(p.name for p in tmp_path.iterdir() if not p.name.endswith("-speedup.svg"))  # charts: their test
    assert names == ["dequantize_k_cache-cpu.json", "dequantize_k_cache-cpu.md", "index-cpu.md",
                     "per_token_group_quant_fp8-cpu.json", "per_token_group_quant_fp8-cpu.md",
                     "quantize_k_cache-cpu.json", "quantize_k_cache-cpu.md"]
    third = schema.load(tmp_path / "per_token_group_quant_fp8-cpu.json")
    assert [c.verdict for c in third.candidates] == ["pass"] * 3 and third.candidates[0].timings[0].size == "16"
    for target in ("quantize_k_cache", "dequantize_k_cache"):
        run = schema.load(tmp_path / f"{target}-cpu.json")
        assert all(c.verdict == "pass" for c in run.candidates) and len(run.candidates) == 3
        assert len(run.round_trips) == 9 and all(r.passed for r in run.round_trips)  # every pair of passing ones
        assert "## ✅ Round trip: `quantize_k_cache` then `dequantize_k_cache`" in (tmp_path / f"{target}-cpu.md").read_text()
    index = (tmp_path / "index-cpu.md").read_text()
    assert "[report](quantize_k_cache-cpu.md)" in index and "9/9 pairs" in index
    assert out.count("round trip ok") == 9
    code, body, _ = run_cli(capsys, "comment", "--from", str(tmp_path / "quantize_k_cache-cpu.json"),
                            "--from", str(tmp_path / "dequantize_k_cache-cpu.json"))
    # ✅, or ⚠️ where the machine was noisy (a busy CI machine), never ❌: every candidate passed
    assert code == 0 and body.startswith(("<!-- harness-report quantize_k_cache dequantize_k_cache cpu -->\n# ✅ harness run",
                                          "<!-- harness-report quantize_k_cache dequantize_k_cache cpu -->\n# ⚠️ harness run"))
    # one headline per target; with --budget 0.1 on a busy machine a size may stay undecided ("Inconclusive")
    headlines = ("# ⚡️ Speed up function", "# ⚖️ No speedup", "# ❔ Inconclusive")
    assert sum(body.count(h) for h in headlines) == 2


def test_a_round_trip_that_breaks_the_bound_is_reported():
    from harness.judge.roundtrip import RoundTrips
    from harness.core.target import discover_targets
    from harness.judge.verify import InProcess
    from oracles.kcache_dequant_reference import dequantize_k_cache_slow
    from oracles.kcache_reference import quantize_k_cache_slow

    targets = discover_targets()
    forward, inverse = targets["quantize_k_cache"], targets["dequantize_k_cache"]
    sloppy = lambda *a, **k: (dequantize_k_cache_slow(*a, **k).float() * 1.1).to(torch.bfloat16)  # noqa: E731
    trips = RoundTrips(targets)
    trips.collect(forward, InProcess(quantize_k_cache_slow, forward), "q.py:q")
    trips.check(inverse, InProcess(dequantize_k_cache_slow, inverse), "good.py:d")
    trips.check(inverse, InProcess(sloppy, inverse), "sloppy.py:d")
    good, bad = trips.for_target("quantize_k_cache")
    assert good.passed and good.cases == len(inverse.round_trip_cases())
    assert not bad.passed and bad.failed == bad.cases
    assert "beyond the bound" in bad.first_failure


def test_a_loaded_machine_is_flagged_in_the_report_and_the_exit_code(tmp_path):
    """Busy processes on purpose, one per core: the timings are flagged (exit 3, the report says so at the
    top).  The harness runs as a process of its own: its judge would take the busy processes, children of
    this one, for processes a candidate left behind, and kill them."""
    import subprocess
    import sys

    hogs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(os.cpu_count() or 2)]
    try:
        proc = subprocess.run([sys.executable, "-m", "harness", "bench", "--target", "quantize_k_cache",
                               "--candidate", "candidates/fused.py:fused", "--sizes", "16384", "65536",
                               "--budget", "2", "--json", str(tmp_path / "b.json")], capture_output=True, text=True)
    finally:
        for hog in hogs:
            hog.kill()
            hog.wait()
    run = schema.load(tmp_path / "b.json")
    assert proc.returncode == 3 and "noisy machine" in proc.stderr, (run.candidates[0].error, run.noise, run.checkout_changes, proc.stderr[-2000:])
    assert run.noise and run.noise[0].text.startswith("other processes used ") and run.noise[0].kind == "load"
    assert run.noise[0].candidate == "fused" and run.noise[0].figure > 0.25
    assert run.candidates[0].foreign_cpu > 0.25
    # several torch threads beside busy processes: the run says what to do (--threads 1), once
    advice = [n for n in run.noise if n.kind == "advice" and "--threads 1" in n.text]
    assert len(advice) == (1 if run.environment.threads > 1 else 0), run.noise
    from harness.render import report

    assert "⚠️ **The machine was noisy during this run" in report.markdown(run)


@pytest.mark.parametrize("command", ["run", "verify", "bench", "profile", "report", "compare", "history",
                                     "export-tests", "comment", "list", "machine"])
def test_help_shows_percent_signs_once(capsys, command):
    """argparse %-formats help strings but not descriptions: neither may print a doubled %% to the user."""
    code, out, _ = run_cli(capsys, command, "--help")
    assert code == 0 and "usage:" in out
    assert "%%" not in out and "%(" not in out
    if command == "bench":
        assert "with a 95% interval" in " ".join(out.split())


def test_machine_says_what_a_run_footer_says(capsys):
    code, out, _ = run_cli(capsys, "machine")
    (line, *_) = out.splitlines()
    assert code == 0 and line.startswith("machine: ") and " GB/s (measured)" in line and " threads" in line
    assert float(line.split("copy bandwidth ")[1].split(" GB/s")[0]) > 0


def test_bare_harness_lists_the_commands_and_version_prints_the_version(capsys):
    code, out, err = run_cli(capsys)
    assert code == 2 and "list" in err and "run " in err and "export-tests" in err and out == ""
    with pytest.raises(SystemExit) as info:
        from harness.cli.commands import parser

        parser().parse_args(["--version"])
    assert info.value.code == 0
    assert capsys.readouterr().out.startswith("harness 0.")


def test_compare_shows_two_runs_side_by_side(capsys, saved_run, tmp_path):
    _, out = saved_run
    steady = json.loads((out / "quantize_k_cache-cpu.json").read_text())
    _steady(steady["candidates"][0]["timings"][0])
    saved = tmp_path / "steady.json"
    saved.write_text(json.dumps(steady))
    code, stdout, _ = run_cli(capsys, "compare", str(saved), str(saved))
    # the runs are independent samples (each resampled on its own), so a run against itself reads 1.00x
    # with an interval as wide as its rounds' spread: never faster or slower
    assert code == 0 and "1.00x [" in stdout and "faster" not in stdout and "slower" not in stdout
    assert "compared 1 candidate/size pair" in stdout
    slower = json.loads(saved.read_text())
    _scale(slower["candidates"][0]["timings"][0], 1 / 10)
    doctored = tmp_path / "slower.json"
    doctored.write_text(json.dumps(slower))
    code, stdout, _ = run_cli(capsys, "compare", str(saved), str(doctored), "--format", "markdown")
    assert code == 0 and "| `fused` | `1x32x576` |" in stdout and "| 0.10x [" in stdout and "| slower |" in stdout
    assert stdout.startswith("# Runs compared: `_quantize_k_cache_slow`")


def test_compare_with_nothing_in_common_is_a_usage_error(capsys, saved_run, tmp_path):
    _, out = saved_run
    saved = out / "quantize_k_cache-cpu.json"
    other = json.loads(saved.read_text())
    other["candidates"][0]["timings"][0]["size"] = "1x8x576"
    moved = tmp_path / "moved.json"
    moved.write_text(json.dumps(other))
    code, _, err = run_cli(capsys, "compare", str(saved), str(moved))
    assert code == 2 and "no candidate (by spec) and size in common: nothing to compare" in " ".join(err.split())


def test_save_keeps_a_history_that_history_shows_with_a_chart(capsys, tmp_path):
    pytest.importorskip("matplotlib", reason="charts need matplotlib (in the [test] extra)")
    saved = tmp_path / "history"
    argv = ["run", "--target", "quantize_k_cache", "--out", str(tmp_path / "out"), "--sizes", "1x32x576", "4x32x576",
            "--candidate", "candidates/fused.py:fused", "--save", str(saved), "--no-profile", *FAST]
    code, out, _ = run_cli(capsys, *argv)
    assert code in PASSED
    svg = tmp_path / "out" / "quantize_k_cache-cpu-speedup.svg"
    assert svg.read_text().startswith("<?xml") and "fused" in svg.read_text()
    assert "![Speedup by size, with intervals](quantize_k_cache-cpu-speedup.svg)" in (
        tmp_path / "out" / "quantize_k_cache-cpu.md").read_text()
    (kept,) = saved.glob("*/quantize_k_cache-cpu.json")
    # a second run of another "commit": the same result under another folder, a minute later
    later = json.loads(kept.read_text())
    later["created"] = later["created"][:14] + "59:59+00:00"
    (saved / "abc1234").mkdir()
    (saved / "abc1234" / "quantize_k_cache-cpu.json").write_text(json.dumps(later))
    code, out, _ = run_cli(capsys, "history", str(saved), "--format", "markdown")
    assert code == 0 and "# History: `_quantize_k_cache_slow` on `cpu`" in out
    rows = [line for line in out.splitlines() if line.startswith("| `")]
    assert len(rows) == 2 and rows[-1].startswith("| `abc1234` |") and "at `4x32x576`" in rows[0]
    assert (saved / "history-quantize_k_cache-cpu.svg").read_text().count("abc1234") >= 1


def test_history_of_nothing_is_a_usage_error(capsys, tmp_path):
    code, _, err = run_cli(capsys, "history", str(tmp_path / "missing"))
    assert code == 2 and "is not a folder of saved runs" in err


def _doctored(saved, tmp_path, name, change):
    data = json.loads(saved.read_text())
    change(data)
    path = tmp_path / name
    path.write_text(json.dumps(data))
    return path


def test_compare_refuses_another_device_and_unusable_rounds(capsys, saved_run, tmp_path):
    _, out = saved_run
    saved = out / "quantize_k_cache-cpu.json"
    cuda = _doctored(saved, tmp_path, "cuda.json", lambda d: d["environment"].update(device="cuda"))
    code, _, err = run_cli(capsys, "compare", str(saved), str(cuda))
    assert code == 2 and "cannot be compared: one ran on cpu, the other on cuda" in err

    def zero(d):
        d["candidates"][0]["timings"][0]["candidate_rounds_s"] = [0.0] * 3
    code, _, err = run_cli(capsys, "compare", str(saved), str(_doctored(saved, tmp_path, "zero.json", zero)))
    assert code == 2 and "nothing to compare" in " ".join(err.split())  # zero times are no data, not a crash


def test_untrusted_names_cannot_break_charts_paths_or_markup(capsys, saved_run, tmp_path):
    pytest.importorskip("matplotlib", reason="charts need matplotlib (in the [test] extra)")
    _, out = saved_run
    saved = out / "quantize_k_cache-cpu.json"
    history = tmp_path / "history"

    def hostile(d):
        d["target"] = "quantize_k_cache"
        d["function"] = "f $\\frac$ [/bold]"
        d["candidates"][0]["name"] = "_x $\\frac$ [/bold]"
        d["candidates"][0]["timings"][0]["speedup_ci"] = [50.0, 60.0]  # an interval without its value
    (history / "c1").mkdir(parents=True)
    _doctored(saved, history / "c1", "quantize_k_cache-cpu.json", hostile)
    code, stdout, err = run_cli(capsys, "history", str(history), "--format", "markdown")
    assert code == 0, err
    assert (history / "history-quantize_k_cache-cpu.svg").exists() and "![Speedup across runs](history-" in stdout
    (history / "c2").mkdir()
    _doctored(saved, history / "c2", "quantize_k_cache-cpu.json", lambda d: d.update(target="../../escape"))
    code, _, err = run_cli(capsys, "history", str(history))
    assert code == 2 and "not what its name says" in err
    assert not [*tmp_path.parent.glob("escape*"), *tmp_path.glob("escape*")]  # (other tests' folders: test_*escape*)


def test_fail_fast_stops_verification_at_the_first_failure_and_keeps_the_reproducer(capsys, outside, tmp_path):
    code, _, _ = run_cli(capsys, "run", "--target", "quantize_k_cache", "--candidate", f"{outside}:bad",
                         "--candidate", f"{outside}:good", "--fail-fast", "--examples", "5", "--quick", "--budget",
                         "0.5", "--sizes", "4096", "--no-profile", "--out", str(tmp_path))
    assert code == 1
    by_name = {c.name: c for c in schema.load(tmp_path / "quantize_k_cache-cpu.json").candidates}
    bad, good = by_name["bad"], by_name["good"]
    assert bad.verdict == "fail" and bad.timings == ()
    assert bad.verification.cases == bad.verification.failed == 1  # nothing checked after the first failure
    assert any("stopped at its first failure (--fail-fast): 1 of" in n for n in bad.verification.notes)
    assert bad.verification.failures[0].test.startswith("from harness.core.target import Case")
    assert good.verdict == "pass" and good.timings  # a passing candidate is verified in full and timed
    assert not any("fail-fast" in n for n in good.verification.notes)


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_a_baseline_that_cannot_be_imported_is_a_usage_error_with_any_number_of_jobs(capsys, tmp_path, jobs):
    base = tmp_path / "base.py"
    base.write_text('raise RuntimeError("boom at import")\n\ndef base(input_k_cache, dv=512, tile_size=128):\n    pass\n')
    code, _, err = run_cli(capsys, "run", "--target", "quantize_k_cache", "--baseline", f"{base}:base", "--jobs", jobs,
                           "--candidate", "candidates/fused.py:fused", "--candidate", "candidates/slow_loop.py:slow_loop",
                           "--examples", "3", "--sizes", "4096", "--no-profile", "--out", str(tmp_path / "out"))
    assert code == 2
    assert err.strip().splitlines()[-1] == f"harness: error: --baseline {base}:base: cannot import {base}: RuntimeError: boom at import"
