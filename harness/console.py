"""Terminal rendering with rich: live progress while a run works (to stderr), and the summary tables and
failure diagnoses at the end.  The tables are pure functions of a ``RunResult``."""

from __future__ import annotations

import sys
from typing import Any

from rich.console import Console, Group
from rich.markup import escape as rich_escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from harness.fmt import fmt_interval, fmt_pair_count, fmt_time, plain
from harness.report import best_candidate, run_label, verdict_text
from harness.history import headline_names
from harness.result import Profile, RunResult

def plain_lines(text: str) -> str:
    """Untrusted multi-line text: each line made ``plain``."""
    return "\n".join(plain(line) for line in str(text).splitlines())


def escape(text: object) -> str:
    """Untrusted text for rich markup: printable, and no markup of its own."""
    return rich_escape(plain(text))


VERDICT_STYLE = {"pass": "green", "fail": "red", "error": "bold red", "untested": "yellow"}
SIGNIFICANCE_STYLE = {"faster": "green", "slower": "red", "inconclusive": "yellow"}


class LiveProgress:
    """A ``progress(event, **details)`` callback that drives a rich progress display."""

    def __init__(self, console: Console) -> None:
        self.progress = Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(),
                                 MofNCompleteColumn(), TimeElapsedColumn(), console=console, transient=False)
        self.phase: Any = None
        self.step: Any = None

    def __enter__(self) -> "LiveProgress":
        self.progress.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.progress.__exit__(*exc)

    def __call__(self, event: str, **info: Any) -> None:
        if event == "phase":
            self.phase = self.progress.add_task(f"[bold]{info['name']}", total=info["total"])
        elif event == "step":
            if self.step is not None:
                self.progress.remove_task(self.step)
            self.step = self.progress.add_task(f"  {escape(info['name'])}", total=None)
        elif event == "advance" and self.step is not None:
            self.progress.update(self.step, completed=info["done"], total=info["total"])
        elif event == "done":
            if self.step is not None:
                self.progress.remove_task(self.step)
                self.step = None
            self.progress.advance(self.phase)


def summary_table(result: RunResult) -> Table:
    best = best_candidate(result)
    table = Table(title=f"{escape(result.function)} — policy {escape(result.policy)}, baseline {escape(result.baseline)}")
    for column in ("candidate", "verdict", "cases", "median", "speedup [95% CI]", "significance", "GB/s"):
        table.add_column(column, justify="left" if column in ("candidate", "verdict", "significance") else "right",
                         no_wrap=column not in ("candidate", "verdict"))
    for c in result.candidates:
        v, t = c.verification, c.headline
        cases = f"{v.cases - v.failed}/{v.cases}" if v else "—"
        name = f"[bold]{escape(c.name)}[/] ★" if best is c else escape(c.name)
        verdict = f"[{VERDICT_STYLE.get(c.verdict, '')}]{escape(verdict_text(c))}[/]"
        if t is None:
            table.add_row(name, verdict, cases, "—", "—", "not timed" if c.verdict != "pass" else "—", "—")
            continue
        table.add_row(name, verdict, cases, fmt_time(t.candidate.median_s),
                      fmt_interval(t),
                      f"[{SIGNIFICANCE_STYLE.get(t.verdict, 'dim')}]{escape(t.shown)}[/]", f"{t.gbps:.2f}")
    return table


def sizes_table(result: RunResult) -> Table | None:
    timed = [c for c in result.candidates if c.timings]
    if not timed:
        return None
    pct = result.environment.copy_gbps
    table = Table(title=f"by size (copy bandwidth {pct:.1f} GB/s)" if pct else "by size")
    for column in ("candidate", "size", "baseline", "median", "speedup [95% CI]", "verdict", "rounds", "GB/s", "%BW"):
        table.add_column(column, justify="left" if column in ("candidate", "size", "verdict") else "right",
                         no_wrap=column not in ("candidate", "size"))
    for c in timed:
        for t in c.timings:
            pairs = fmt_pair_count(t)
            rounds = f"{t.candidate.rounds}" + ("" if t.converged else " (budget)") + (f", {escape(pairs)}" if pairs else "")
            table.add_row(escape(c.name), escape(t.size), fmt_time(t.baseline.median_s), fmt_time(t.candidate.median_s),
                          fmt_interval(t),
                          f"[{SIGNIFICANCE_STYLE.get(t.verdict, 'dim')}]{escape(t.shown)}[/]", rounds, f"{t.gbps:.2f}",
                          f"{t.pct_copy_bandwidth:.1f}%" if t.pct_copy_bandwidth is not None else "—")
    return table


def failures(result: RunResult) -> Group | None:
    parts: list[Any] = []
    for c in result.candidates:
        v = c.verification
        if v is None or v.passed:
            continue
        parts.append(f"[bold red]{escape(c.name)}[/] ({escape(c.spec)}): {v.failed} of {v.cases} cases failed"
                     + (f", {escape(v.pattern)}" if v.pattern else "") + f" — {escape(v.reason())}")
        for f in v.notable():
            parts.append(f"  • {escape(f.family)} [bold]{escape(f.case)}[/] ({escape(f.input)}): {escape(f.reason)}")
            parts += [f"      {escape(d)}" for d in f.differences[:3]]
        minimal = v.minimal()
        if minimal is None:  # not passed without a failing case: nothing was compared (see the reason)
            continue
        parts.append(f"  minimal failing case: [bold]{escape(minimal.case)}[/] (its pytest test is in the report and "
                     f"the JSON; --show-reproducer prints it here)")
    return Group(*parts) if parts else None


def reproducers(result: RunResult, console: Console) -> None:
    """Each failing candidate's minimal failing case as a whole pytest file: imports included, never wrapped
    or cut by the terminal's width (soft wrap: what is copied is what runs)."""
    for c in result.candidates:
        minimal = c.verification.minimal() if c.verification is not None else None
        if minimal is not None:
            console.print(f"# {plain(c.name)}: minimal failing case, ready to paste into a pytest file",
                          markup=False, highlight=False)
            console.print(plain_lines(minimal.test), soft_wrap=True, markup=False, highlight=False)


def make_console(stderr: bool = False) -> Console:
    """A terminal's own width; 140 columns where output goes to a pipe or a log (rich would assume 80)."""
    stream = sys.stderr if stderr else sys.stdout
    return Console(stderr=stderr, width=None if stream.isatty() else 140)


def render(result: RunResult, console: Console, show_reproducer: bool = False) -> None:
    for note in result.noise:
        console.print(f"[bold yellow]noisy machine, timings may be off:[/] {escape(note)}", highlight=False)
    for part in (sizes_table(result), failures(result), summary_table(result)):
        if part is not None:
            console.print(part)
    for c in result.candidates:
        if c.verification is not None and (c.verification.domain or c.verification.excluded):
            console.print(f"[dim]{escape(c.name)} judged {escape(c.verification.coverage)}[/]", highlight=False)
    notes = dict.fromkeys(n for c in result.candidates if c.verification for n in c.verification.notes)
    notes.update(dict.fromkeys(f"{c.name}: {n}" for c in result.candidates for n in c.notes))
    for note in notes:
        console.print(f"[dim]{escape(note)}[/]")
    for change in result.checkout_changes:
        console.print(f"[bold red]the checkout changed during the run:[/] {escape(change)}")
    if show_reproducer:
        reproducers(result, console)
    for trip in result.round_trips:
        if trip.inverse_target == result.target:  # shown once, with the inverse target's result
            mark = "[green]round trip ok[/]" if trip.passed else "[bold red]round trip FAILED[/]"
            console.print(f"{mark} {escape(trip.forward)} → {escape(trip.inverse)}: {trip.cases - trip.failed}/"
                          f"{trip.cases} cases" + (f" — {escape(trip.first_failure)}" if trip.first_failure else ""),
                          highlight=False)


def profile_view(p: Profile) -> Group:
    """A profile for the terminal: the line table in source order with hot lines highlighted, then the
    kernel/op table sorted by cost."""
    head = (f"[bold]{escape(p.spec)}[/] ({escape(p.function)}) at size {escape(p.size)} on {escape(p.device)}: "
            f"{fmt_time(p.total_s)} per call over {p.calls} calls — {escape(p.timing)}")
    lines = Table(title="lines (hits and time per call)", title_justify="left")
    for column in ("line", "hits", "time", "per hit", "%"):
        lines.add_column(column, justify="right", no_wrap=True)
    lines.add_column("kind", no_wrap=True)
    lines.add_column("source", no_wrap=True, overflow="ellipsis", max_width=60)
    for stat in p.lines:
        style = "bold red" if stat.percent >= 20 else "yellow" if stat.percent >= 5 else "dim" if stat.percent < 0.5 else ""
        lines.add_row(str(stat.line), f"{stat.hits / max(p.calls, 1):g}", fmt_time(stat.total_s), fmt_time(stat.per_hit_s),
                      f"{stat.percent:.1f}", escape(stat.kind), escape(stat.source), style=style)
    kernels = Table(title=f"ops and kernels ({escape(p.kernel_clock)} time, one call, by cost)", title_justify="left")
    kernels.add_column("name", overflow="ellipsis", no_wrap=True)
    for column in ("calls", "total", "mean", "%"):
        kernels.add_column(column, justify="right", no_wrap=True)
    for k in p.kernels:
        kernels.add_row(escape(k.name), str(k.calls), fmt_time(k.total_s), fmt_time(k.mean_s), f"{k.percent:.1f}",
                        style="bold red" if k.percent >= 20 else "")
    return Group(head, lines, kernels)


def comparison_table(previous: RunResult, current: RunResult, changes: list) -> Table:
    """``harness compare`` for the terminal (the same data as ``report.comparison``)."""
    table = Table(title=f"old: {escape(run_label(previous))}\nnew: {escape(run_label(current))}", title_justify="left")
    for column in ("candidate", "size", "old", "new", "speedup [95% CI]", "verdict"):
        table.add_column(column, justify="left" if column in ("candidate", "size", "verdict") else "right", no_wrap=True)
    for c in changes:
        table.add_row(escape(c.candidate), escape(c.size), fmt_time(c.before_s), fmt_time(c.after_s),
                      fmt_interval(c),
                      f"[{SIGNIFICANCE_STYLE.get(c.verdict, 'dim')}]{escape(c.label)}[/]")
    return table


def history_table(saved: list) -> Table:
    """``harness history`` for the terminal: per saved run, each candidate's headline speedup."""
    names = headline_names([s.run for s in saved])
    first = saved[0].run
    table = Table(title=f"{escape(first.function)} on {escape(first.environment.device)}: headline speedup per run",
                  title_justify="left")
    for column in ("commit", "run", *names):
        table.add_column(escape(column), justify="left" if column in ("commit", "run") else "right", no_wrap=True)
    for s in saved:
        by_name = {c.name: c.headline for c in s.run.candidates if c.headline}
        table.add_row(escape(s.label), escape(s.run.when),
                      *(f"{fmt_interval(by_name[n])} @ {escape(by_name[n].size)}" if n in by_name else "—" for n in names))
    return table

