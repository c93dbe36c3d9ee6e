"""Untrusted text is data, and bad input is refused up front: names, docstrings, exception messages and
result files crafted like an attacker's pull request cannot inject markdown or code; out-of-range numbers
and unusable paths are one-line usage errors (exit 2) before any work; a candidate that edits the
checkout fails the run."""

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import pytest
from markdown_it import MarkdownIt

from harness.render import report


from harness.core import schema
from harness.cli.commands import main
from harness.render.export import export_tests
from harness.core.result import CaseFailure, CaseTiming

ROOT = Path(__file__).resolve().parent.parent
PAYLOAD = "ok</details>\n\n# ✅ All good\n<!--\n| a | b |\n```\nx"


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    out = tmp_path_factory.mktemp("saved")
    assert main(["run", "--target", "quantize_k_cache", "--out", str(out), "--sizes", "1x32x576", "--budget", "0.2", "--examples", "5", "--no-profile",
                 "--candidate", "candidates/fused.py:fused", "--candidate", "tests/wrong_candidates.py:wrong_for_fp16"]) == 1
    run = schema.load(out / "quantize_k_cache-cpu.json")
    assert run.candidates[0].verdict == "pass", run.candidates[0].error
    return run, out / "quantize_k_cache-cpu.json"


def hostile(run):
    """The saved run with attacker-controlled strings everywhere a candidate or a result file reaches."""
    good, bad = run.candidates
    failure = dataclasses.replace(bad.verification.failures[0], reason=PAYLOAD, case=PAYLOAD, test=PAYLOAD)
    bad = dataclasses.replace(bad, name="bad -->", error=PAYLOAD,
                              verification=dataclasses.replace(bad.verification, failures=(failure,), pattern=PAYLOAD))
    good = dataclasses.replace(good, name=PAYLOAD, doc=PAYLOAD + "\n<!--", spec="x`y`|z")
    return dataclasses.replace(run, candidates=(good, bad), function=PAYLOAD)


def test_injected_markdown_cannot_add_headings_or_hide_the_failure(saved):
    run, _ = saved
    text = report.markdown(hostile(run))
    tokens = MarkdownIt("commonmark").enable("table").parse(text)
    headings = [tokens[i + 1].content for i, t in enumerate(tokens) if t.type == "heading_open"]
    assert not any(h.startswith("✅ All good") for h in headings), headings  # (inside a code span is fine)
    assert sum("All good" in h for h in headings) <= 1
    inline = [c for t in tokens if t.children for c in t.children]
    html = "".join(t.content for t in [*tokens, *inline] if t.type in ("html_block", "html_inline"))
    assert "<!--" not in html
    assert html.count("<details>") == html.count("</details>")
    assert "❌ Correctness verification report" in headings
    assert "💥" in text or "❌ fail" in text  # the failing candidate's row is still there
    assert text.count("\n| ") > 5


def test_the_pr_comment_marker_cannot_be_closed_by_a_target_name(saved):
    run, _ = saved
    crafted = dataclasses.replace(run, target="x --> <b>", environment=dataclasses.replace(run.environment, device="y -->"))
    marker = report.marker(crafted)
    assert marker.count("-->") == 1 and marker.endswith("-->")


def test_exported_tests_cannot_run_injected_code(saved, tmp_path):
    run, _ = saved
    planted = tmp_path / "pwned"
    code = f"\nimport pathlib; pathlib.Path({str(planted)!r}).write_text('x')\n"
    cand = run.candidates[0]
    timing = CaseTiming(case="a" + code, baseline_s=1e-3, candidate_s=1e-3, test="", family="seed" + code,
                        params={"num_blocks": 1, "block_size": 1, "h_k": 1, "d": 128, "dv": 128, "tile_size": 64,
                                "dtype": "float32", "values": "randn" + code, "layout": "contiguous"}, seed=0)
    crafted = dataclasses.replace(run, function="f\"\"\"" + code, created=code,
                                  candidates=(dataclasses.replace(cand, case_timings=(timing,)),))
    crafted_path = tmp_path / "crafted.json"
    crafted_path.write_text(schema.dumps(crafted))
    out = tmp_path / "test_generated.py"
    assert main(["export-tests", "--from", str(crafted_path), "-o", str(out)]) == 0
    compile(out.read_text(), str(out), "exec")
    subprocess.run([sys.executable, "-m", "pytest", "-q", "--collect-only", "-p", "no:cacheprovider", str(out)],
                   cwd=ROOT, capture_output=True, text=True)
    assert not planted.exists()
    assert export_tests(crafted).count("\ndef test_") == 1


@pytest.mark.parametrize("mutate, field", [
    (lambda d: d["candidates"][0].update(name=7), "result.candidates[0].name: expected a string, got int"),
    (lambda d: d["candidates"][0]["timings"][0].update(speedup="fast"), "speedup: expected a number, got str"),
    (lambda d: d["environment"].pop("device"), "result.environment.device: missing"),
    (lambda d: d.update(candidates={"a": 1}), "result.candidates: expected a list, got dict"),
])
def test_a_result_with_wrong_types_is_refused_in_one_line(saved, tmp_path, capsys, mutate, field):
    _, path = saved
    data = json.loads(path.read_text())
    mutate(data)
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(data))
    assert main(["report", "--from", str(bad)]) == 2
    err = capsys.readouterr().err.strip()
    assert field in err and "\n" not in err and "Traceback" not in err


@pytest.mark.parametrize("argv, message", [
    (["run", "--noise-floor", "-1"], "argument --noise-floor: expected a percentage with its % sign"),
    (["run", "--noise-floor", "5"], "expected a percentage with its % sign, like 5%, got '5'"),
    (["run", "--rse", "200%"], "expected a percentage above 0% and below 100%, got '200%'"),
    (["run", "--rse=-5%"], "expected a percentage above 0% and below 100%, got '-5%'"),
    (["bench", "--budget", "nan"], "argument --budget: expected a positive number, got 'nan'"),
    (["verify", "--timeout", "nan"], "argument --timeout: expected a positive number, got 'nan'"),
    (["verify", "--examples", "-1"], "argument --examples: expected an integer of at least 1, got '-1'"),
    (["bench", "--sizes", "100000000"], "needs about"),
    (["verify", "--json", "."], "--json . is a directory"),
])
def test_bad_numbers_and_paths_are_refused_up_front(capsys, argv, message):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "\n" not in err and "Traceback" not in err


def test_report_output_is_atomic_and_checked(saved, tmp_path, capsys):
    _, path = saved
    existing = tmp_path / "report.txt"
    existing.write_text("the earlier report")
    (tmp_path / "broken.json").write_text("{not json")
    assert main(["report", "--from", str(tmp_path / "broken.json"), "--format", "terminal", "-o", str(existing)]) == 2
    assert existing.read_text() == "the earlier report"
    assert main(["report", "--from", str(path), "--format", "terminal", "-o", str(tmp_path)]) == 2
    assert "is a directory" in capsys.readouterr().err
    nested = tmp_path / "new" / "folder" / "report.txt"
    assert main(["report", "--from", str(path), "--format", "terminal", "-o", str(nested)]) == 0
    assert "fused" in nested.read_text()


def test_a_candidate_that_edits_the_checkout_fails_the_run(tmp_path, capsys, isolated):
    """In mount namespaces the checkout is read-only to it (``readonly``): the edit raises and nothing is
    written; without, the comparison before and after finds the file."""
    written = ROOT / "candidates" / "_written_by_a_candidate.txt"
    candidate = tmp_path / "edits.py"
    candidate.write_text(
        "from oracles.kcache_reference import quantize_k_cache_slow\n"
        f"def edits(input_k_cache, dv=512, tile_size=128):\n    open({str(written)!r}, 'w').write('x')\n"
        "    return quantize_k_cache_slow(input_k_cache, dv, tile_size)\n")
    try:
        out = tmp_path / "out"
        code = main(["verify", "--target", "quantize_k_cache", "--examples", "1", "--candidate", f"{candidate}:edits", "--json", str(out / "r.json")])
        run = schema.load(out / "r.json")
    finally:
        written.unlink(missing_ok=True)
    if isolated:
        assert code == 1 and run.candidates[0].verdict == "error" and not written.exists()
        assert "Read-only file system" in run.candidates[0].error, run.candidates[0].error
        assert run.checkout_changes == ()
        return
    assert code == 1 and run.candidates[0].verdict == "pass"
    assert f"{written} created" in run.checkout_changes
    assert "the checkout changed during the run" in capsys.readouterr().out
