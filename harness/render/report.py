"""The markdown report and the PR comment: pure functions of a ``RunResult`` (no clocks, no I/O), so
``harness report --from RESULT.json`` reproduces the original byte for byte.

Sections, in order: title and headline (best passing candidate, runtime, median with its interval, what
N% and X.XXx mean), explanation (docstring and profile-derived facts), correctness verification, all
candidates, speedup by size (a mermaid chart and a table), generated regression tests with their runtimes,
line profiles of the baseline and each candidate, and a footer with the environment.

Test code is never taken from the result: a result file is untrusted, and its ``test`` fields could say
anything.  Every test shown (the regression tests, a failure's reproducer) is written anew by
``harness.judge.verify.regression_test`` from the case's fields, the candidate's spec and the policy, for the
target the result names as this project defines it (``case_test``); where that target is not here (or
torch is not, as in the PR bot's job), no test code is shown, only the cases and their runtimes.
"""

from __future__ import annotations

import json
import math
import re

from harness.core import stats
from harness.core.config import PRECISION_ROUNDS
from harness.core.fmt import (change_note, fmt_bytes, fmt_interval, fmt_pairs, fmt_speedup, fmt_time, html_text, md_code, md_fence, md_label,
                         md_text, py_comment, stages_line)
from harness.core.fmt import md_table as _table
from harness.core.result import CandidateResult, Profile, RunResult, Verdict, best_candidate as result_best
from harness.core.target import Case, Target, TargetError, get_target
from harness.render.attention import gate_section, troubles
from harness.render.attention import title as _title

LOCAL_CHART = re.compile(r"[A-Za-z0-9_.-]+\.svg")  # a file name beside the report: nothing else is linked

MARKER = "<!-- harness-report"  # the bot finds its own comment by this prefix (plus target and device)
GITHUB_COMMENT_LIMIT = 65536
COMMENT_BUDGET = 20_000  # what a PR comment aims at (a reviewer reads it; GitHub's own limit is above)
TESTS_SHOWN = 8  # generated regression tests in a report; the rest: export-tests --all
PROFILE_LINES_SHOWN = 15  # the costliest lines of each profile, in source order


def best_candidate(result: RunResult) -> CandidateResult | None:
    """The passing candidate with the largest significant speedup at the headline size."""
    return result_best(result.candidates)


def _details(summary: str, body: str) -> str:
    """A collapsible section; ``summary`` is HTML (escape untrusted parts with ``html.escape``)."""
    return f"<details>\n<summary>{summary}</summary>\n\n{body.strip()}\n\n</details>\n"


def find_target(name: str) -> Target | None:
    """The project's target called ``name`` (as ``export-tests`` finds it), or None where it has none or its
    oracles cannot be imported here."""
    try:
        return get_target(name)
    except (TargetError, ImportError):
        return None


def case_test(target: Target | None, case: Case, spec: str, policy: str, imports: bool = False) -> str | None:
    """The pytest test of ``case`` against ``spec`` under ``policy``, written anew (never a result's own
    text); None without the target, or where the case's fields do not make one (a crafted file)."""
    if target is None:
        return None
    try:
        from harness.core.reproducer import REPRODUCER_IMPORTS, regression_test  # needs torch

        return (REPRODUCER_IMPORTS if imports else "") + regression_test(target, case, spec, policy)
    except Exception:  # no torch here, or the target's code on params a result file chose (KeyError, ValueError, ...)
        return None


def verdict_text(c: CandidateResult) -> str:
    """The verdict with its one-line reason, e.g. "error: timed out after 300 s"."""
    if c.verdict == Verdict.PASS and c.verification is not None and c.verification.domain:
        return "pass on its domain"
    return f"{c.verdict}: {c.error}" if c.error and c.verdict != Verdict.PASS else c.verdict


# -- sections -------------------------------------------------------------------------------------

def _noise_warning(result: RunResult) -> str:
    if not result.noise:
        return ""
    more = f" (and {len(result.noise) - 1} more in the footer)" if len(result.noise) > 1 else ""
    return (f"> ⚠️ **The machine was noisy during this run: the timings below may be off.** "
            f"{md_text(result.noise[0].text)}{more}.\n\n")


def _headline(result: RunResult) -> str:
    best = best_candidate(result)
    fn = md_code(result.function)
    warning = _noise_warning(result)
    if result.checkout_changes:
        warning += (f"> ❌ **The checkout changed during this run** ({len(result.checkout_changes)} change(s), e.g. "
                    f"{md_code(result.checkout_changes[0])}): a function under test edited the project. "
                    f"Nothing below can be trusted.\n\n")
    if best is None:
        timed = [c for c in result.candidates if c.headline and c.verdict == Verdict.PASS]
        undecided = [c for c in timed if c.headline.verdict == stats.INCONCLUSIVE]
        if undecided:
            c = undecided[0]
            return (f"{_title(f'❔ Inconclusive: no verdict on the speed of function {fn}', result)}{warning}"
                    f"At the headline size {md_code(c.headline.size)} the timing budget ran out before the interval "
                    f"was decided: {md_code(c.name)} {fmt_interval(c.headline)}, {md_text(c.headline.shown)}. "
                    f"Run with a larger `--budget` or on a quieter machine.\n")
        why = ("no candidate was timed" if not timed
               else "no passing candidate is significantly faster than the baseline")
        text = f"{_title(f'⚖️ No speedup for function {fn}', result)}{warning}{why.capitalize()} at the headline size (rule below).\n"
        elsewhere = [f"{md_code(c.name)} {fmt_interval(t)} at {md_code(t.size)}" for c in timed
                     for t in c.timings if t.verdict == stats.FASTER]
        if elsewhere:
            text += "\nSignificantly faster at smaller sizes: " + "; ".join(elsewhere) + ".\n"
        return text
    t = best.headline
    pct = stats.percent_faster(t.speedup)
    return (
        f"{_title(f'⚡️ Speed up function {fn} by {pct:.0f}%', result)}{warning}"
        f"📄 **{pct:.0f}% ({fmt_speedup(t.speedup)}) speedup** for {fn} in {md_code(result.source)} "
        f"— candidate {md_code(best.name)} ({md_code(best.spec)})"
        + (f", **on its domain only**: {md_code(best.verification.domain)}" if best.verification and best.verification.domain
           else "") + "\n\n"
        f"⏱️ Runtime at size {md_code(t.size)}, median: **{fmt_time(t.baseline.median_s)} → "
        f"{fmt_time(t.candidate.median_s)}**, speedup {fmt_interval(t)} (95% interval), {md_text(t.shown)} "
        f"(best of {t.candidate.rounds} runs: {fmt_time(t.baseline.min_s)} → {fmt_time(t.candidate.min_s)})\n\n"
        f"> N% is baseline time / candidate time − 1 (how much faster); X.XXx is baseline time / candidate time, "
        f"so above 1.00x is faster and below is slower; both are the median over paired rounds.\n"
    )


def _explanation(result: RunResult) -> str:
    best = best_candidate(result) or next((c for c in result.candidates if c.verdict == Verdict.PASS), None)
    if best is None:
        return ""
    body = [f"**{md_code(best.name)}** — {md_text(best.doc) if best.doc else '(no docstring)'}", ""]
    if result.baseline_profile and best.profile:
        from harness.render.explain import explain

        p = best.profile
        body.append(f"**Where the time went**, by kind of work, as shares of the *profiled* call (line profiles "
                    f"at {md_code(p.size)}, {md_text(p.timing)}; the profiler slows each call: the baseline took "
                    f"{fmt_time(result.baseline_profile.total_s)} per call under it, {md_code(best.name)} "
                    f"{fmt_time(p.total_s)}; baseline → {md_code(best.name)}):")
        body.append("")
        body += [f"- {md_text(fact)}" for fact in explain(result.baseline_profile, p)]
        body.append("")
    body += ["**By size** (medians of the timed rounds, without the profiler):", ""]
    for t in best.timings:
        body.append(f"- {md_code(t.size)} ({md_text(t.input)}): {fmt_time(t.baseline.median_s)} → "
                    f"{fmt_time(t.candidate.median_s)}, {fmt_interval(t)}, {md_text(t.shown)}; {t.gbps:.1f} GB/s"
                    + (f"; {md_text(pairs)}" if (pairs := fmt_pairs(t)) else ""))
    return _details("📝 Explanation and details", "\n".join(body))


def _correctness(result: RunResult) -> str:
    failing = any(c.verification and c.verification.failures for c in result.candidates)
    target = find_target(result.target) if failing else None
    verified = [c for c in result.candidates if c.verification]
    if not verified:
        return "## Correctness verification report\n\nNot run.\n"
    ok = all(c.verification.passed for c in verified)
    v0 = verified[0].verification
    families = list(dict.fromkeys(f.family for c in verified for f in c.verification.families))
    rows = []
    for family in families:
        row = [md_text(family)]
        for c in verified:
            counts = {f.family: f for f in c.verification.families}.get(family)
            row.append("—" if counts is None else
                       f"{counts.checked - counts.failed}/{counts.checked} {'✅' if not counts.failed else '❌'}")
        rows.append(row)
    rows.append(["**all**", *(f"**{c.verification.cases - c.verification.failed}/{c.verification.cases}**" for c in verified)])
    out = [f"## {'✅' if ok else '❌'} Correctness verification report\n",
           f"Policy: **{md_code(result.policy)}** — {md_text(result.policy_text or result.policy)}. "
           f"Device: {md_code(v0.device)}, hypothesis seed {v0.seed}. Cells are passed/checked.\n",
           _table(["Case family", *(md_code(c.name) for c in verified)], rows)]
    out.append("**Coverage** (what each verdict covers):\n\n" + "\n".join(
        f"- {md_code(c.name)}: {md_text(c.verdict)}, {c.verification.cases - c.verification.failed} of "
        f"{c.verification.cases} right, judged {md_text(c.verification.coverage)}" for c in verified) + "\n")
    notes = list(dict.fromkeys(n for c in verified for n in c.verification.notes))
    if notes:
        out.append("\n".join(f"- {md_text(n)}" for n in notes) + "\n")
    for c in verified:
        v = c.verification
        if v.passed:
            continue
        lines = [f"**{md_code(c.name)} — {md_text(c.verdict)}**: {v.failed} of {v.cases} cases failed"
                 + (f", {md_text(v.pattern)}" if v.pattern else "") + f" — {md_text(v.reason())}."]
        for f in v.notable():
            lines.append(f"- {md_code(f.family)} case {md_code(f.case)} ({md_text(f.input)}): {md_text(f.reason)}")
            lines += [f"  - {md_text(d)}" for d in f.differences[:3]]
        first = v.minimal()
        test = first and case_test(target, Case(first.case, first.family, first.params, first.seed), c.spec,
                                   result.policy, imports=True)
        if test:
            lines.append("\n" + _details(f"Reproduce <code>{html_text(first.case)}</code> (ready-to-paste pytest)",
                                         md_fence(test, "python")))
        out.append("\n".join(lines) + "\n")
    return "\n".join(out)


def _round_trips(result: RunResult) -> str:
    """Each pair of passing candidates of this target and the target it inverts (or that inverts it)."""
    if not result.round_trips:
        return ""
    rows = [[md_code(r.forward), md_code(r.inverse), f"{r.cases - r.failed}/{r.cases} {'✅' if r.passed else '❌'}",
             md_text(r.first_failure or "—")] for r in result.round_trips]
    first = result.round_trips[0]
    ok = all(r.passed for r in result.round_trips)
    return (f"## {'✅' if ok else '❌'} Round trip: {md_code(first.forward_target)} then {md_code(first.inverse_target)}\n\n"
            f"{md_text(result.round_trip_text)}\n\n"
            + _table([f"{md_code(first.forward_target)} candidate", f"{md_code(first.inverse_target)} candidate",
                      "Cases", "First failure"], rows))


def _candidates_table(result: RunResult) -> str:
    rows = []
    icons = {"pass": "✅", "fail": "❌", "error": "💥"}
    for c in result.candidates:
        t = c.headline
        verdict = f"{icons.get(c.verdict, '')} {md_text(verdict_text(c))}".strip()
        notes = "".join(f"<br>{md_text(n)}" for n in (*c.notes, *([f"judged on {c.judged_on}"] if c.judged_on else [])))
        name = md_code(c.name) + (" (control)" if c.control else "")
        if t is None:
            rows.append([name, md_code(c.spec), verdict + notes, "—", "not timed", "—", "—", "—"])
            continue
        pct = f"{t.pct_copy_bandwidth:.1f}%" if t.pct_copy_bandwidth is not None else "—"
        rows.append([name, md_code(c.spec), verdict + notes, fmt_time(t.candidate.median_s),
                     fmt_interval(t), md_text(t.shown), f"{t.gbps:.2f}", pct])
    size = next((c.headline.size for c in result.candidates if c.headline), None)
    note = f" at size {md_code(size)}" if size else ""
    control = (" A *control* is the oracle itself registered as a candidate: its speedup shows the measurement's "
               "noise (about 1.00x); it is never the best candidate and is not profiled."
               if any(c.control for c in result.candidates) else "")
    return (f"## Candidates\n\nBaseline: {md_code(result.baseline)}{note}. Speedup is the median of paired "
            f"baseline/candidate rounds with its 95% bootstrap interval.{control}\n\n"
            + _table(["Candidate", "Spec", "Verdict", "Median", "Speedup [95% CI]", "Significance", "GB/s",
                      "% of copy BW"], rows))


def _by_size(result: RunResult, chart: str | None = None) -> str:
    timed = [c for c in result.candidates if c.timings]
    if not timed:
        return ""
    image = f"![Speedup by size, with intervals]({chart})\n\n" if chart else ""
    sizes = list(dict.fromkeys(t.size for c in timed for t in c.timings))
    speed = {(c.name, t.size): t.speedup for c in timed for t in c.timings}
    top = max(speed.values())
    lines = [
        "xychart-beta", '    title "Speedup over the baseline by size"',
        "    x-axis [" + ", ".join(json.dumps(md_label(s)) for s in sizes) + "]",
        f'    y-axis "speedup (x)" 0 --> {math.ceil(top * 1.1 * 10) / 10}',
    ]
    for c in timed:
        lines.append("    line [" + ", ".join(f"{speed.get((c.name, s), 0):.3f}" for s in sizes) + "]")
    rows = [[md_code(s), *(fmt_speedup(speed[(c.name, s)]) if (c.name, s) in speed else "—" for c in timed)]
            for s in sizes]
    return ("## Speedup by size\n\n" + image + md_fence("\n".join(lines), "mermaid") + "\n\n"
            + f"Lines, in order: {', '.join(md_code(c.name) for c in timed)}.\n\n"
            + _table(["Size", *(md_code(c.name) for c in timed)], rows))


def _timing_statistics(result: RunResult) -> str:
    stats_rows = [
        [md_code(c.name), md_code(t.size), who, fmt_time(m.min_s), fmt_time(m.median_s), fmt_time(m.mean_s),
         fmt_time(m.iqr_s), fmt_time(m.stderr_s), f"{m.rse:.2%}", str(m.rounds), "yes" if t.converged else "no: budget spent",
         md_text(fmt_pairs(t)) if who == "candidate" else ""]
        for c in result.candidates for t in c.timings for who, m in (("baseline", t.baseline), ("candidate", t.candidate))
    ]
    if not stats_rows:
        return ""
    return _details("Timing statistics per candidate and size (per-call times over interleaved rounds)",
                    _table(["Candidate", "Size", "Timed", "Min", "Median", "Mean", "IQR", "SE of median", "RSE",
                            "Rounds", "Decided", "Pairs"], stats_rows))


def _regression_tests(result: RunResult) -> str:
    best = best_candidate(result) or next((c for c in result.candidates if c.case_timings), None)
    if best is None or not best.case_timings:
        return ""
    target = find_target(result.target)
    tests, untested = [], []
    # the first timed cases, and two where the oracle raises (error parity), in the run's order
    timed = [ct for ct in best.case_timings if ct.raises is None][:TESTS_SHOWN - 2]
    shown = timed + [ct for ct in best.case_timings if ct.raises is not None][:TESTS_SHOWN - len(timed)]
    for ct in sorted(shown, key=best.case_timings.index):
        note = (f"raises {py_comment(ct.raises)}: error parity, not timed as a speedup" if ct.raises
                else change_note(ct.baseline_s, ct.candidate_s))
        test = case_test(target, Case(ct.case, ct.family, ct.params, ct.seed), best.spec, result.policy)
        if test:
            tests.append(test.rstrip("\n") + f"  # {note}\n")
        else:
            untested.append(f"- {md_code(ct.case)}: {md_text(note)}")
    header = "from harness.core.target import Case\nfrom harness.judge.verify import check_case\n\n\n"
    body = (f"Candidate {md_code(best.name)} against the baseline, each case in two rounds on fresh inputs, checked "
            f"as the ladder's (which carries the verdict); an error-parity case as one call (best of 5).\n\n"
            + (md_fence(header + "\n\n".join(tests), "python") + "\n\n" if tests else "")
            + (f"Cases without a test here (target {md_code(result.target)} is not in this project, or the case "
               f"does not make one):\n\n" + "\n".join(untested) + "\n" if untested else "")
            + (f"\n{len(best.case_timings) - len(shown)} more cases: `harness export-tests --from RESULT.json --all` "
               f"writes every test.\n" if len(best.case_timings) > len(shown) else ""))
    return _details("🌀 Generated regression tests and runtime", body)


def _profile_table(p: Profile) -> str:
    costliest = set(sorted(p.lines, key=lambda s: -s.total_s)[:PROFILE_LINES_SHOWN])
    rows = [[str(s.line), f"{s.hits / max(p.calls, 1):g}", fmt_time(s.total_s), f"{s.percent:.1f}%", md_text(s.kind),
             md_code(s.source)] for s in p.lines if s in costliest]
    left = len(p.lines) - len(rows)
    if left:
        rest = sum(s.percent for s in p.lines if s not in costliest)
        rows.append(["…", "", "", f"{rest:.1f}%", "", md_text(f"{left} cheaper lines (`harness profile` shows all)")])
    kernels = [[md_code(k.name), str(k.calls), fmt_time(k.total_s), f"{k.percent:.1f}%"] for k in p.kernels[:10]]
    return (f"**{md_code(p.spec)}** ({md_code(p.function)}) at {md_code(p.size)} on {md_code(p.device)}: "
            f"{fmt_time(p.total_s)} per call over {p.calls} calls; {md_text(p.timing)}.\n\n"
            + _table(["Line", "Hits", "Time/call", "%", "Kind", "Source"], rows)
            + f"\nOps and kernels ({md_text(p.kernel_clock)} time of one call, by cost):\n\n"
            + _table(["Name", "Calls", "Total", "%"], kernels))


def _profiles(result: RunResult) -> str:
    shown = [p for p in (result.baseline_profile, *(c.profile for c in result.candidates)) if p is not None]
    if not shown:
        return ""
    return _details("🔬 Line profiles of the baseline and each candidate", "\n".join(_profile_table(p) for p in shown))


def _footer(result: RunResult, local: bool = True) -> list[str]:
    """The run's facts: in a local report one block; in a PR comment the machine, commit, noise and checkout
    changes stay in view and the command, load, isolation and timing method fold into a section that can be
    trimmed."""
    e, b = result.environment, result.bench
    dirty = {True: " (with uncommitted changes)", False: " (clean)", None: ""}[e.git_dirty]
    lines = [
        f"Device: {md_text(e.device_name)} ({md_code(e.device)}) · torch {md_text(e.torch)} · "
        f"triton {md_text(e.triton or 'n/a')} · Python {md_text(e.python)} · {e.threads} threads · {md_text(e.platform)}",
        (f"Copy bandwidth (measured): {e.copy_gbps:.1f} GB/s" if e.copy_gbps else "Copy bandwidth: not measured")
        + (f" · last-level cache {fmt_bytes(e.cache_bytes)}, which timing inputs are sized against"
           + (f" ({md_text(e.cache_source)})" if e.cache_source else "") if e.cache_bytes else ""),
        f"Commit {md_code(e.git_commit or 'unknown')}{dirty} · harness {md_text(e.harness_version)} · "
        f"{md_text(result.created)}",
        f"Command: {md_code(e.command)}",
    ]
    if e.load_start is not None or e.governor:
        load = (f"load average {e.load_start:.2f} at the start, {e.load_end:.2f} at the end"
                if e.load_start is not None and e.load_end is not None else "")
        governor = f"CPU frequency governor {md_code(e.governor)}" if e.governor else ""
        lines.append("Machine: " + " · ".join(x for x in (load, governor) if x))
    if spent := stages_line(result.candidates):
        lines.append(md_text(spent[0].upper() + spent[1:]))
    if e.isolation:
        lines.append(f"Runners: each in a fresh process loading the run's snapshot of the sources; isolation: "
                     f"{md_text(e.isolation)}")
    if b:
        lines.append(
            f"Timing: interleaved rounds until the 95% interval of the speedup is decided against the "
            f"±{b.noise_floor:.0%} noise floor and each median's relative standard error is under {b.target_rse:.0%} "
            f"(or {PRECISION_ROUNDS * b.min_rounds} rounds back the decisive interval), "
            f"or {b.budget_s:g} s per candidate and size: \"faster\"/\"slower\" when the whole interval is beyond "
            f"the floor; inside it \"no significant difference\" if it contains 1.00, else \"within "
            f"±{b.noise_floor:.0%}\" (a difference smaller than the floor); across a floor boundary when the budget "
            f"ran out, \"inconclusive\"."
            + (" CUDA graphs: each call replayed from a graph (device work, no launch overhead)." if b.cuda_graphs else "")
            + (f" Each candidate was timed in {b.processes} pairs of runner processes (baseline, candidate), and one "
               f"more where an even number split: the pairs vote, the verdict is what most of them decided (\"inside "
               f"the floor\" counting as one), its interval spans theirs and its medians pool their rounds."
               if b.processes > 1 else "")
            + (f" One pair of runner processes decided a size alone only with \"faster\" or \"slower\" more than "
               f"{b.confirm_margin:.0%} beyond the floor, or \"no significant difference\" at a size beyond the CPU's "
               f"cache; any other verdict was timed in a second pair of runner processes (with half the budget), and "
               f"a third where two disagreed: the "
               f"pairs vote, the verdict is what most of them decided, its interval spans theirs and its medians pool "
               f"their rounds."
               if b.processes == 1 and b.confirm_margin > 0 else "")
        )
    alerts = [f"Noisy machine: {md_text(note.text)}" for note in result.noise]
    alerts += [f"Checkout changed during the run: {md_code(change)}" for change in result.checkout_changes]
    if local:
        return ["---\n\n" + "<br>\n".join(lines + alerts) + "\n"]
    return ["---\n\n" + "<br>\n".join(lines[:3] + alerts) + "\n",
            _details("🖥️ Command, machine load, isolation and how it was timed", "<br>\n".join(lines[3:]))]


def _sections(result: RunResult, local: bool = True) -> list[str]:
    chart = result.chart if local and result.chart and LOCAL_CHART.fullmatch(result.chart) else None
    sections = [_headline(result), gate_section(result), _explanation(result), _correctness(result), _round_trips(result), _candidates_table(result),
                _by_size(result, chart), _timing_statistics(result), _regression_tests(result), _profiles(result),
                *_footer(result, local)]
    return [s for s in sections if s]


def markdown(result: RunResult) -> str:
    """The local report: with a link to the run's SVG chart beside it, where it has one."""
    return "\n".join(_sections(result))


def _summary_line(result: RunResult, local: bool = True) -> list[str]:
    """One row of the index: target, verdicts, best speedup at the headline size, round trips, what went
    wrong (and, locally, the link to the report beside it)."""
    passed = sum(c.verdict == Verdict.PASS for c in result.candidates)
    best = best_candidate(result)
    speed = (f"{md_code(best.name)} {fmt_interval(best.headline)} at {md_code(best.headline.size)}" if best
             else "no significant speedup")
    trips = (f"{sum(r.passed for r in result.round_trips)}/{len(result.round_trips)} pairs"
             if result.round_trips else "—")
    link = f"[report]({md_label(result.target)}-{md_label(result.environment.device)}.md)"
    row = [md_code(result.target), md_code(result.function), f"{passed}/{len(result.candidates)} pass", speed,
           trips, "; ".join(troubles(result)) or "—"]
    return row + [link] if local else row


def index(results: list[RunResult] | tuple[RunResult, ...], local: bool = True) -> str:
    """The run's front page: one line per target, what went wrong first, linking each target's report
    (written beside it; no link in a PR comment, where the reports follow the index)."""
    found = [t for r in results for t in troubles(r)]
    icon = "❌" if any(t.startswith("❌") for t in found) else "⚠️" if found else "✅"
    device = results[0].environment.device if results else "?"
    return (f"# {icon} harness run on {md_code(device)}: {len(results)} target(s)\n\n"
            + _table(["Target", "Oracle", "Verdicts", "Best speedup", "Round trips", "Attention",
                      *(["Report"] if local else [])], [_summary_line(r, local) for r in results]))


def marker(result: RunResult | list[RunResult]) -> str:
    """The hidden first line of the PR comment: one comment per set of targets and device."""
    results = [result] if isinstance(result, RunResult) else list(result)
    names = " ".join(md_label(r.target) for r in results)
    return f"{MARKER} {names} {md_label(results[0].environment.device)} -->"


def pr_comment(result: RunResult | list[RunResult], limit: int = COMMENT_BUDGET) -> str:
    """The report(s) with a hidden marker (so a bot edits its own comment), trimmed to ``limit`` characters
    (``COMMENT_BUDGET``) by replacing collapsible sections with a note, last first, and never beyond GitHub's
    own limit.  Several results (one per target) make one comment: an index (no links: the reports follow
    it), then each target's report; a section two targets share (their round trip) is shown once."""
    results = [result] if isinstance(result, RunResult) else list(result)
    sections = [index(results, local=False)] if len(results) > 1 else []
    for r in results:  # a file beside a local report is nothing on GitHub
        sections += [s for s in _sections(r, local=False) if s not in sections]
    head = marker(results) + "\n"
    text = head + "\n".join(sections)
    for i in reversed(range(len(sections))):
        if len(text) <= limit:
            break
        if sections[i].startswith("<details>"):
            sections[i] = ("_(section trimmed to keep this comment short; `harness report --from RESULT.json` "
                           "renders it whole from the run's JSON)_\n")
            text = head + "\n".join(sections)
    return text[:GITHUB_COMMENT_LIMIT]
