"""Runs set side by side in markdown: ``harness compare`` (two runs) and ``harness history`` (saved runs, oldest
first), and how a run is named in both.  Pure functions of results."""

from __future__ import annotations

from harness.core.fmt import fmt_interval, fmt_time, md_code, md_text
from harness.core.result import RunResult
from harness.render.history import headline_names
from harness.render.report import LOCAL_CHART, _table


def run_label(run: RunResult) -> str:
    """Which run a column is: its commit (with "+" when the checkout was dirty), device and date."""
    env = run.environment
    commit = (env.git_commit or "no commit") + ("+" if env.git_dirty else "")
    return f"{commit} on {env.device_name} ({env.device}), {run.when}"


def comparison(previous: RunResult, current: RunResult, changes: list) -> str:
    """``harness compare`` as markdown: per candidate and size, old and new medians and the speedup between
    them (old / new, above 1.00x: faster now) with its interval and verdict."""
    rows = [[md_code(c.candidate), md_code(c.size), fmt_time(c.before_s), fmt_time(c.after_s),
             fmt_interval(c), md_text(c.label)]
            for c in changes]
    return (f"# Runs compared: {md_code(current.function)}\n\n"
            f"- old: {md_text(run_label(previous))}\n- new: {md_text(run_label(current))}\n\n"
            f"Speedup is old median / new median (above 1.00x the new run is faster) with a bootstrap 95% interval "
            f"of the ratio of medians over each run's rounds.\n\n"
            + _table(["Candidate", "Size", "Old", "New", "Speedup [95% CI]", "Verdict"], rows))


def history(saved: list, chart: str | None = None) -> str:
    """``harness history`` as markdown: per saved run (oldest first), each candidate's headline speedup."""
    names = headline_names([s.run for s in saved])
    rows = []
    for s in saved:
        by_name = {c.name: c.headline for c in s.run.candidates if c.headline}
        rows.append([md_code(s.label), md_text(s.run.when),
                     *(f"{fmt_interval(by_name[n])} at {md_code(by_name[n].size)}" if n in by_name else "—" for n in names)])
    first = saved[0].run
    image = f"![Speedup across runs]({chart})\n\n" if chart and LOCAL_CHART.fullmatch(chart) else ""
    return (f"# History: {md_code(first.function)} on {md_code(first.environment.device)}\n\n{image}"
            + _table(["Commit", "Run", *(md_code(n) for n in names)], rows))

