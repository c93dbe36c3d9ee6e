"""The command line end to end (in-process, so each test costs no interpreter start)."""

import json
import textwrap

import pytest
import torch

from harness import result
from harness.cli import main

FAST = ["--budget", "0.2", "--examples", "5"]


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
    code, out, _ = run_cli(capsys, "verify", "--candidate", f"{outside}:good", "--examples", "10",
                           "--json", str(tmp_path / "v.json"))
    assert code == 0
    data = json.loads((tmp_path / "v.json").read_text())
    (cand,) = data["candidates"]
    assert (cand["name"], cand["verdict"], cand["failed"]) == ("good", "pass", 0)
    assert cand["cases"] > 90 and cand["spec"].endswith("outside.py:good")


def test_verify_exits_1_and_prints_the_minimal_case(capsys, outside, tmp_path):
    code, out, _ = run_cli(capsys, "verify", "--candidate", f"{outside}:bad", "--examples", "20",
                           "--json", str(tmp_path / "v.json"))
    assert code == 1
    assert "minimal failing case" in out and "def test_quantize_k_cache_" in out
    cand = json.loads((tmp_path / "v.json").read_text())["candidates"][0]
    assert cand["verdict"] == "fail" and cand["first_failure"]


@pytest.mark.parametrize("argv, message", [
    (["verify", "--candidate", "missing/file.py:fn"], "candidate file not found: missing/file.py"),
    (["verify", "--candidate", "candidates/fused.py:nope"], "no function 'nope'"),
    (["verify", "--policy", "close"], "unknown policy 'close': choose from exact, ulp, dequant"),
    (["verify", "--device", "tpu"], "unknown device 'tpu'"),
    (["bench", "--sizes", "12x"], "bad size '12x'"),
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
    code = main(["run", "--out", str(out), "--sizes", "1x32x576", "--candidate", "candidates/fused.py:fused", *FAST])
    return code, out


def test_run_writes_report_and_json(saved_run):
    code, out = saved_run
    assert code == 0
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
    timing = previous["candidates"][0]["timings"][0]
    # "it used to be 1000x faster": far beyond what a loaded machine can do to the new run's rounds
    timing["candidate_rounds_s"] = [t / 1000 for t in timing["candidate_rounds_s"]]
    timing["candidate"]["median_s"] /= 1000
    doctored = tmp_path / "previous.json"
    doctored.write_text(json.dumps(previous))
    code, _, err = run_cli(capsys, "run", "--out", str(tmp_path / "new"), "--sizes", "1x32x576", "--candidate",
                           "candidates/fused.py:fused", "--compare", str(doctored), "--fail-slower", "5%", *FAST)
    assert code == 1 and "slower than" in err


def test_bench_json_keeps_every_round(capsys, tmp_path):
    code, _, _ = run_cli(capsys, "bench", "--candidate", "candidates/amax_vectorized.py:amax_vectorized",
                         "--sizes", "1x16x576", "--budget", "0.2", "--json", str(tmp_path / "b.json"))
    assert code == 0
    run = result.load(tmp_path / "b.json")
    (cand,) = run.candidates
    assert cand.verdict == "untested" and cand.timings[0].baseline_rounds_s


def test_profile_command(capsys, tmp_path):
    code, out, _ = run_cli(capsys, "profile", "candidates/slow_loop.py:slow_loop", "--size", "256",
                           "--json", str(tmp_path / "p.json"))
    assert code == 0 and "abs + max reduction" in out and "aten::max" in out
    data = json.loads((tmp_path / "p.json").read_text())
    assert data["spec"] == "candidates/slow_loop.py:slow_loop" and sum(l["percent"] for l in data["lines"]) == pytest.approx(100)
