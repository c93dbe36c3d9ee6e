"""The markdown report of a real (small) run: its sections, parsed as GitHub-flavoured markdown, and its
byte-for-byte reproduction from the JSON."""

import re
import json

import pytest
from markdown_it import MarkdownIt

from harness.core import fmt

from harness.core import schema

from harness.render import report
from harness.core.config import BenchConfig
from harness.judge.pipeline import Pipeline
from harness.judge.plan import RunOptions


@pytest.fixture(scope="module")
def run():
    options = RunOptions(target="quantize_k_cache", sizes=["1x64x576", "2x64x576"], examples=10, bench=BenchConfig(budget_s=0.3, min_rounds=3),
                         profile=True)
    return Pipeline(options).run()


@pytest.fixture(scope="module")
def text(run):
    return report.markdown(run)


def tokens(text):
    return MarkdownIt("commonmark").enable("table").parse(text)


def test_the_built_ins_all_pass(run):
    """The tables below assume it; a failure here names what the judge said (a CI run once failed only the
    per-size table's test, with the reason nowhere in its log)."""
    assert [(c.name, c.verdict, c.error) for c in run.candidates if c.verdict != "pass"] == []


def test_regression_cases_are_timed_for_the_candidate_the_report_annotates(run):
    """The best candidate's cases are timed; besides it only the first timed and each that led when it was
    judged (``task.CaseChoice``): the A-vs-A ``slow_loop``, after a faster one, gets none."""
    best = report.best_candidate(run)
    assert best is not None and best.case_timings
    by_name = {c.name: c for c in run.candidates}
    assert run.candidates[0].case_timings and not by_name["slow_loop"].case_timings
    assert by_name["slow_loop"].stages.cases_s == 0


def test_sections_in_order(text):
    order = ["# ", "📝 Explanation and details", "Correctness verification report", "## Candidates",
             "## Speedup by size", "🌀 Generated regression tests and runtime", "🔬 Line profiles of the baseline and each candidate", "\nCommand: `harness"]
    positions = [text.index(marker) for marker in order]
    assert positions == sorted(positions)


def test_headline_has_runtime_interval_and_meaning(run, text):
    best = report.best_candidate(run)
    first = text.splitlines()[0]
    if best is None:  # no decisive speedup: none, or (a busy machine, a small budget) undecided
        assert first.startswith(("# ⚖️ No speedup for function `_quantize_k_cache_slow`",
                                 "# ❔ Inconclusive: no verdict on the speed of function `_quantize_k_cache_slow`"))
    else:
        assert first.startswith("# ⚡️ Speed up function `_quantize_k_cache_slow` by ")
        assert f"(best of {best.headline.candidate.rounds} runs: " in text
        assert "(95% interval)" in text
        assert "X.XXx is baseline time / candidate time" in text  # the notation, beside the speedup it explains


def test_tables_have_the_right_columns(text):
    toks = tokens(text)
    headers = []
    for i, tok in enumerate(toks):
        if tok.type == "thead_open":
            row = []
            for t in toks[i:]:
                if t.type == "inline":
                    row.append(t.content)
                if t.type == "thead_close":
                    break
            headers.append(row)
    assert ["Case family", "`amax_vectorized`", "`fused`", "`slow_loop`"] in headers
    assert ["Candidate", "Spec", "Verdict", "Median", "Speedup [95% CI]", "Significance", "GB/s", "% of copy BW"] in headers
    assert ["Size", "`amax_vectorized`", "`fused`", "`slow_loop`"] in headers
    for i, tok in enumerate(toks):  # every body row has as many cells as its header
        if tok.type == "table_open":
            widths, cells = [], 0
            for t in toks[i:]:
                if t.type in ("th_open", "td_open"):
                    cells += 1
                if t.type == "tr_close":
                    widths.append(cells)
                    cells = 0
                if t.type == "table_close":
                    break
            assert len(set(widths)) == 1


def test_details_blocks_close_and_mermaid_is_fenced(text):
    assert text.count("<details>") == text.count("</details>") >= 2
    fences = [t for t in tokens(text) if t.type == "fence"]
    mermaid = [t for t in fences if t.info == "mermaid"]
    assert len(mermaid) == 1 and mermaid[0].content.startswith("xychart-beta\n")
    assert 'x-axis ["1x64x576", "2x64x576"]' in mermaid[0].content


def test_regression_tests_are_annotated_like_the_seed(text):
    assert "def test_quantize_k_cache_basic_shape_and_dtype_cpu():" in text
    annotated = [line for line in text.splitlines() if line.strip().startswith("check_case(") and "  # " in line]
    assert len(annotated) == report.TESTS_SHOWN  # the rest: one command away
    assert re.search(r"\n\d+ more cases: `harness export-tests --from RESULT.json --all` writes every test.", text)
    timed = [line for line in annotated if "error parity" not in line]
    assert all(("% faster)" in line or "% slower)" in line) and " -> " in line for line in timed)
    parity = [line for line in annotated if "error parity" in line]  # the seed's cases where the oracle asserts
    assert parity and all(line.endswith("# raises AssertionError: error parity, not timed as a speedup")
                          for line in parity)


def test_rerender_from_json_is_byte_for_byte(run, text, tmp_path):
    path = schema.write_atomic(tmp_path / "r.json", schema.dumps(run))
    assert report.markdown(schema.load(path)) == text


def test_pr_comment_has_marker_and_fits(run):
    body = report.pr_comment(run)
    assert body.startswith("<!-- harness-report quantize_k_cache cpu -->\n")
    # every built-in candidate with its profile and tests fits the reviewer's budget as it is
    assert len(body) <= report.COMMENT_BUDGET
    small = report.pr_comment(run, limit=4000)  # collapsible sections go, last first; nothing is cut mid-table
    assert len(small) < len(body) and "section trimmed to keep this comment short" in small
    assert "see the full report" not in small and "](" not in small.split("## ", 1)[0]


@pytest.mark.parametrize("seconds, text", [(16.4e-3, "16.4 ms"), (95.6e-6, "95.6 μs"), (104e-6, "104 μs"),
                                           (1.41e-6, "1.41 μs"), (2.5, "2.50 s"), (841e-9, "841 ns")])
def test_time_format(seconds, text):
    assert fmt.fmt_time(seconds) == text


def test_change_note_matches_the_seed():
    assert fmt.change_note(104e-6, 95.6e-6) == "104μs -> 95.6μs (8.79% faster)"
    assert fmt.change_note(2.63e-6, 2.68e-6) == "2.63μs -> 2.68μs (1.87% slower)"


def test_explanation_carries_profile_facts(run, text):
    assert run.baseline_profile is not None and run.baseline_profile.spec == "oracle:quantize_k_cache"
    assert "**Where the time went**, by kind of work, as shares of the *profiled* call (line profiles at `2x64x576`" in text
    assert "the profiler slows each call: the baseline took " in text
    assert "abs + max reduction: " in text
    # the profile's facts and the per-size figures are two lists, each under its own heading
    facts, sizes = text.split("**By size** (medians of the timed rounds, without the profiler):\n\n")
    assert facts.rstrip().endswith(")") or facts.rstrip().splitlines()[-1].startswith("- ")
    assert sizes.startswith("- `1x64x576`")


def test_every_candidate_profile_is_in_the_report(run, text):
    for cand in run.candidates:
        if not cand.control:
            assert cand.profile is not None and f"**`{cand.spec}`**" in text


def test_the_oracle_as_a_candidate_is_a_control_marked_and_not_profiled(run, text):
    """slow_loop is the oracle itself: its timing is the noise floor; its profile would repeat the baseline's."""
    controls = [c for c in run.candidates if c.control]
    assert [c.name for c in controls] == ["slow_loop"] and controls[0].profile is None
    assert "| `slow_loop` (control) |" in text and "A *control* is the oracle itself" in text
    assert f"**`{controls[0].spec}`**" not in text
    assert report.best_candidate(run) is not controls[0]


def test_how_the_pairs_of_runners_voted_is_shown_and_escaped(run):
    from types import SimpleNamespace as Voted

    assert fmt.fmt_pairs(Voted(pair_speedups=(), pair_verdicts=(), verdict="faster")) == ""
    assert fmt.fmt_pairs(Voted(pair_speedups=(0.91, 0.9), pair_verdicts=("slower", "slower"), verdict="slower")) == (
        "2 pairs of runners: 0.91x slower, 0.90x slower")
    two_of_three = Voted(pair_speedups=(0.91, 1.0, 0.9), pair_verdicts=("slower", "no significant difference", "slower"),
                         verdict="slower")
    assert fmt.fmt_pairs(two_of_three) == (
        "2 of 3 pairs of runners: 0.91x slower, 1.00x no significant difference (outvoted), 0.90x slower")
    assert fmt.fmt_pair_count(two_of_three) == "2 of 3 pairs"
    split = Voted(pair_speedups=(1.1, 1.0), pair_verdicts=("faster", "within the noise floor"), verdict="inconclusive")
    assert fmt.fmt_pairs(split) == "no majority of 2 pairs of runners: 1.10x faster, 1.00x within the noise floor"
    inside = Voted(pair_speedups=(1.0, 1.02), pair_verdicts=("no significant difference", "within the noise floor"),
                   verdict="no significant difference")
    assert fmt.fmt_pair_count(inside) == "2 pairs"  # both inside the floor: one class
    older = Voted(pair_speedups=(1.2, 1.3), pair_verdicts=(), verdict="faster")  # a file from before the votes
    assert fmt.fmt_pairs(older) == "2 pairs of runners: 1.20x, 1.30x"
    import dataclasses

    cand = next(c for c in run.candidates if c.timings)
    with pytest.raises(ValueError, match="not a valid SpeedVerdict"):  # a verdict the harness never decides:
        dataclasses.replace(cand.timings[0], pair_speedups=(1.2, 1.0, 1.3),  # not even in memory
                            pair_verdicts=("faster", "</details><!-- hidden", "faster"), verdict="faster")
    timing = dataclasses.replace(cand.timings[0], pair_speedups=(1.2, 1.0, 1.3),
                                 pair_verdicts=("faster", "no significant difference", "faster"), verdict="faster")
    data = json.loads(schema.dumps(dataclasses.replace(run, candidates=tuple(
        dataclasses.replace(c, timings=(timing, *c.timings[1:])) if c is cand else c for c in run.candidates))))
    at = next(i for i, c in enumerate(run.candidates) if c is cand)
    data["candidates"][at]["timings"][0]["pair_verdicts"][1] = "</details><!-- hidden"
    with pytest.raises(ValueError, match=r"timings\[0\]\.pair_verdicts\[1\]: expected one of 'faster', "):
        schema.load_text(json.dumps(data))  # nor from a file
    voted = dataclasses.replace(run, candidates=tuple(
        dataclasses.replace(c, timings=(timing, *c.timings[1:])) if c is cand else c for c in run.candidates))
    text = report.markdown(voted)
    assert "2 of 3 pairs of runners: 1.20x faster, 1.00x" in text and "(outvoted), 1.30x faster" in text
    assert text.count("<details>") == text.count("</details>")
    honest = dataclasses.replace(timing, pair_verdicts=("faster", "no significant difference", "faster"))
    voted = dataclasses.replace(run, candidates=tuple(
        dataclasses.replace(c, timings=(honest, *c.timings[1:])) if c is cand else c for c in run.candidates))
    assert schema.load_text(schema.dumps(voted)) == voted  # the votes are part of the one JSON schema


def test_the_stages_line_sums_candidates_and_leaves_out_what_took_no_time():
    from harness.core.fmt import stages_line
    from harness.core.result import CandidateResult, Stages

    cands = [CandidateResult(name=n, spec=f"c.py:{n}", doc="", verdict="pass", stages=Stages(load_s=1.0, verify_s=2.0, time_s=3.0, cases_s=0.25, profile_s=0.5))
             for n in ("a", "b")]
    assert stages_line(cands) == ("judging 2 candidates took 13.5 s: loading 2.0 s, verifying 4.0 s, timing 6.0 s, "
                                  "timing regression cases 0.5 s, profiling 1.0 s")
    assert stages_line([CandidateResult(name="a", spec="c.py:a", doc="", verdict="pass")]) == ""  # an older result
