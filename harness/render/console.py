"""Terminal rendering with rich: live progress while a run works (to stderr), and the summary tables and
failure diagnoses at the end.  The tables are pure functions of a ``RunResult``.

Every string a result holds is untrusted (a result file can say anything that passes its schema): it reaches
rich only as ``Text`` (``text``/``line``), never parsed as markup, with its control characters shown as ``?``
(``plain``), and styles are looked up by the harness, never taken from the result.  ``escape`` is for the
few places that must build markup (progress descriptions, the CLI's messages)."""

from __future__ import annotations

import io
import os
import sys
import threading
from typing import Any

from rich.console import Console, Group
from rich.markup import escape as rich_escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from harness.core.fmt import fmt_interval, fmt_pair_count, fmt_time, machine_line, plain, stages_line
from harness.render.report import best_candidate, case_test, find_target, verdict_text
from harness.render.runs import run_label
from harness.render.history import headline_names
from harness.core.result import CandidateResult, Profile, RunResult, Verdict
from harness.core.target import Case

def plain_lines(text: str) -> str:
    """Untrusted multi-line text: each line made ``plain``."""
    return "\n".join(plain(line) for line in str(text).splitlines())


def escape(text: object) -> str:
    """Untrusted text for rich markup: printable, and no markup of its own."""
    return rich_escape(plain(text))


def text(value: object, style: str = "") -> Text:
    """Untrusted text as a rich ``Text``: printable, never read as markup."""
    return Text(plain(value), style=style)


def line(*parts: object) -> Text:
    """One line of output from parts: a string (untrusted, shown as it is) or a ``(string, style)`` pair."""
    out = Text()
    for part in parts:
        if isinstance(part, tuple):
            out.append(plain(part[0]), style=part[1])
        else:
            out.append(plain(part))
    return out


VERDICT_STYLE = {"pass": "green", "fail": "red", "error": "bold red", "untested": "yellow"}
SIGNIFICANCE_STYLE = {"faster": "green", "slower": "red", "inconclusive": "yellow"}


class LiveProgress:
    """A ``progress(event, **details)`` callback that drives a rich progress display.  Judge workers
    (``--jobs``) report from threads of their own: one event at a time, or two could remove one step."""

    def __init__(self, console: Console) -> None:
        self.progress = Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(),
                                 MofNCompleteColumn(), TimeElapsedColumn(), console=console, transient=False)
        self.phase: Any = None
        self.step: Any = None
        self._lock = threading.Lock()

    def __enter__(self) -> "LiveProgress":
        self.progress.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.progress.__exit__(*exc)

    def __call__(self, event: str, **info: Any) -> None:
        with self._lock:
            self._event(event, info)

    def _event(self, event: str, info: dict[str, Any]) -> None:
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


def _name_column(table: Table, header: str, values: list[str]) -> None:
    """A column of names (candidates, sizes, commits): never wrapped or cut to ``…``, whatever the width;
    the wordy columns beside it wrap instead."""
    table.add_column(header, no_wrap=True, min_width=max([len(header), *map(len, values)]))


def summary_table(result: RunResult, width: int = 140) -> Table | Group:
    """One row per candidate; where that table would cut a word at ``width``, one wrapped line each instead
    (a table of seven columns beside a long name would cut every cell)."""
    best = best_candidate(result)
    title = text(f"{result.function} — policy {result.policy}, baseline {result.baseline}")
    rows = []
    for c in result.candidates:
        v, t = c.verification, c.headline
        name = line((c.name, "bold"), " ★") if best is c else line(c.name, (" (control)", "dim") if c.control else "")
        verdict = text(verdict_text(c), VERDICT_STYLE.get(c.verdict, ""))
        timed = ([fmt_time(t.candidate.median_s), text(fmt_interval(t)),
                  text(t.shown, SIGNIFICANCE_STYLE.get(t.verdict, "dim")), f"{t.gbps:.2f}"] if t is not None
                 else ["—", "—", "not timed" if c.verdict != Verdict.PASS else "—", "—"])
        rows.append([name, verdict, f"{v.cases - v.failed}/{v.cases}" if v else "—", *timed])
    table = Table(title=title)
    _name_column(table, "candidate", [c.name + (" (control)" if c.control else " ★") for c in result.candidates])
    table.add_column("verdict", ratio=1)
    for column in ("cases", "median", "speedup [95% CI]"):
        table.add_column(column, justify="right", no_wrap=True)
    table.add_column("speed", ratio=1, min_width=6)  # the timing's verdict: faster, slower, ...
    table.add_column("GB/s", justify="right", no_wrap=True)
    for r in rows:
        table.add_row(*r)
    if not _fits(table, width):
        return Group(title, *(line(r[0], ": ", r[1], f", {r[2]} cases" if r[2] != "—" else "",
                                   *((f", median {r[3]}, ", r[4], " ", r[5], f", {r[6]} GB/s") if r[3] != "—" else ()))
                              for r in rows))
    return table


def sizes_tables(result: RunResult, width: int = 140) -> list[Table]:
    """One table per timed candidate (stacked, so no column of names eats the width); where the full table
    would cut a word at ``width`` (rich's own measure of it), only the size, the speedup, its verdict and
    the rounds (the markdown report has the rest)."""
    timed = [c for c in result.candidates if c.timings]
    wide = all(_fits(_sizes_table(c, result.environment.copy_gbps, True), width) for c in timed)
    return [_sizes_table(c, result.environment.copy_gbps, wide) for c in timed]


def _sizes_table(c: CandidateResult, copy_gbps: float | None, wide: bool) -> Table:
    table = Table(title=text(f"{c.name} by size" + (f" (copy bandwidth {copy_gbps:.1f} GB/s)" if copy_gbps else "")),
                  title_justify="left")
    _name_column(table, "size", [t.size for t in c.timings])
    for column in (("baseline", "median") if wide else ()) + ("speedup [95% CI]",):
        table.add_column(column, justify="right", no_wrap=True)
    table.add_column("verdict", ratio=1, min_width=len("significant"))  # wraps between words only
    table.add_column("rounds", justify="right", ratio=1)
    for column in (("GB/s", "%BW") if wide else ()):
        table.add_column(column, justify="right", no_wrap=True)
    for t in c.timings:
        pairs = fmt_pair_count(t)
        rounds = f"{t.candidate.rounds}" + ("" if t.converged else ", budget") + (
            f", {pairs.replace(' of ', '/')}" if pairs else "")  # short words: the column wraps between them
        bandwidth = f"{t.pct_copy_bandwidth:.0f}%" if t.pct_copy_bandwidth is not None else "—"
        table.add_row(text(t.size), *([fmt_time(t.baseline.median_s), fmt_time(t.candidate.median_s)] if wide else []),
                      text(fmt_interval(t)), text(t.shown, SIGNIFICANCE_STYLE.get(t.verdict, "dim")), text(rounds),
                      *([f"{t.gbps:.2f}", bandwidth] if wide else []))
    return table


def _fits(renderable: Any, width: int) -> bool:
    """Whether ``renderable`` draws in ``width`` columns without cutting a word to ``…``: drawn, not
    measured (rich's measure of a table's narrowest undershoots what its ratio columns need by up to ten
    columns)."""
    return _drawn(renderable, width).count("…") <= _drawn(renderable, 10_000).count("…")


def _drawn(renderable: Any, width: int) -> str:
    console = Console(width=width, file=io.StringIO(), record=True)
    console.print(renderable)
    return console.export_text()


def failures(result: RunResult) -> Group | None:
    parts: list[Any] = []
    for c in result.candidates:
        v = c.verification
        if v is None or v.passed:
            continue
        parts.append(line((c.name, "bold red"), f" ({c.spec}): {v.failed} of {v.cases} cases failed"
                          + (f", {v.pattern}" if v.pattern else "") + f" — {v.reason()}"))
        for f in v.notable():
            parts.append(line(f"  • {f.family} ", (f.case, "bold"), f" ({f.input}): {f.reason}"))
            parts += [text(f"      {d}") for d in f.differences[:3]]
        minimal = v.minimal()
        if minimal is None:  # not passed without a failing case: nothing was compared (see the reason)
            continue
        parts.append(line("  minimal failing case: ", (minimal.case, "bold"), " (its pytest test is in the report and the "
                          "JSON; --show-reproducer prints it here)"))
    return Group(*parts) if parts else None


def reproducers(result: RunResult, console: Console) -> None:
    """Each failing candidate's minimal failing case as a whole pytest file: imports included, never wrapped
    or cut by the terminal's width (soft wrap: what is copied is what runs).  Written anew from the case
    (``report.case_test``), never the result's own text; none where the target is not in this project."""
    target = None
    for c in result.candidates:
        minimal = c.verification.minimal() if c.verification is not None else None
        if minimal is None:
            continue
        target = target or find_target(result.target)
        test = case_test(target, Case(minimal.case, minimal.family, minimal.params, minimal.seed), c.spec,
                         result.policy, imports=True)
        if test is None:
            console.print(f"# {plain(c.name)}: minimal failing case {plain(minimal.case)}: no test (target "
                          f"{plain(result.target)} is not in this project)", markup=False, highlight=False)
            continue
        console.print(f"# {plain(c.name)}: minimal failing case, ready to paste into a pytest file",
                      markup=False, highlight=False)
        console.print(plain_lines(test), soft_wrap=True, markup=False, highlight=False)


def make_console(stderr: bool = False) -> Console:
    """A terminal's own width; where output goes to a pipe or a log, ``$COLUMNS`` if set, else 140 columns
    (rich would assume 80)."""
    stream = sys.stderr if stderr else sys.stdout
    columns = os.environ.get("COLUMNS", "")
    piped = int(columns) if columns.isdigit() and 20 <= int(columns) <= 1000 else 140
    return Console(stderr=stderr, width=None if stream.isatty() else piped)


def render(result: RunResult, console: Console, show_reproducer: bool = False) -> None:
    for note in result.noise:
        console.print(line(("noisy machine, timings may be off:", "bold yellow"), f" {note.text}"))
    for part in (*sizes_tables(result, console.width), failures(result), summary_table(result, console.width)):
        if part is not None:
            console.print(part)
    for c in result.candidates:
        if c.verification is not None and (c.verification.domain or c.verification.excluded):
            console.print(text(f"{c.name} judged {c.verification.coverage}", "dim"))
    notes = dict.fromkeys(n for c in result.candidates if c.verification for n in c.verification.notes)
    notes.update(dict.fromkeys(f"{c.name}: {n}" for c in result.candidates for n in c.notes))
    for note in notes:
        console.print(text(note, "dim"))
    for change in result.checkout_changes:
        console.print(line(("the checkout changed during the run:", "bold red"), f" {change}"))
    if spent := stages_line(result.candidates):
        console.print(text(spent, "dim"))
    if show_reproducer:
        reproducers(result, console)
    if any(c.timings for c in result.candidates):  # what the figures depend on
        console.print(text(f"machine: {machine_line(result.environment)}", "dim"))
    for trip in result.round_trips:
        if trip.inverse_target == result.target:  # shown once, with the inverse target's result
            mark = ("round trip ok", "green") if trip.passed else ("round trip FAILED", "bold red")
            console.print(line(mark, f" {trip.forward} → {trip.inverse}: {trip.cases - trip.failed}/{trip.cases} cases"
                               + (f" — {trip.first_failure}" if trip.first_failure else "")))


def profile_view(p: Profile) -> Group:
    """A profile for the terminal: the line table in source order with hot lines highlighted, then the
    kernel/op table sorted by cost."""
    head = line((p.spec, "bold"), f" ({p.function}) at size {p.size} on {p.device}: "
                f"{fmt_time(p.total_s)} per call over {p.calls} calls — {p.timing}")
    lines = Table(title="lines (hits and time per call)", title_justify="left")
    for column in ("line", "hits", "time", "per hit", "%"):
        lines.add_column(column, justify="right", no_wrap=True)
    lines.add_column("kind", no_wrap=True)
    lines.add_column("source", no_wrap=True, overflow="ellipsis", max_width=60)
    for stat in p.lines:
        style = "bold red" if stat.percent >= 20 else "yellow" if stat.percent >= 5 else "dim" if stat.percent < 0.5 else ""
        lines.add_row(str(stat.line), f"{stat.hits / max(p.calls, 1):g}", fmt_time(stat.total_s), fmt_time(stat.per_hit_s),
                      f"{stat.percent:.1f}", text(stat.kind), text(stat.source), style=style)
    kernels = Table(title=text(f"ops and kernels ({p.kernel_clock} time, one call, by cost)"), title_justify="left")
    kernels.add_column("name", overflow="ellipsis", no_wrap=True)
    for column in ("calls", "total", "mean", "%"):
        kernels.add_column(column, justify="right", no_wrap=True)
    for k in p.kernels:
        kernels.add_row(text(k.name), str(k.calls), fmt_time(k.total_s), fmt_time(k.mean_s), f"{k.percent:.1f}",
                        style="bold red" if k.percent >= 20 else "")
    return Group(head, lines, kernels)


def comparison_table(previous: RunResult, current: RunResult, changes: list) -> Table:
    """``harness compare`` for the terminal (the same data as ``runs.comparison``)."""
    table = Table(title=text(f"old: {run_label(previous)}") + Text("\n") + text(f"new: {run_label(current)}"),
                  title_justify="left")
    _name_column(table, "candidate", [c.candidate for c in changes])
    _name_column(table, "size", [c.size for c in changes])
    for column in ("old", "new", "change [95% CI]"):
        table.add_column(column, justify="right", no_wrap=True)
    table.add_column("verdict", ratio=1)
    for c in changes:
        table.add_row(text(c.candidate), text(c.size), fmt_time(c.before_s), fmt_time(c.after_s),
                      text(fmt_interval(c)), text(c.label, SIGNIFICANCE_STYLE.get(c.verdict, "dim")))
    return table


def history_table(saved: list) -> Group:
    """``harness history`` for the terminal: per candidate, a table of the saved runs (oldest first) with its
    headline speedup — stacked rather than wide, so that commits and names are never cut at 80 columns."""
    first = saved[0].run
    tables = []
    for name in headline_names([s.run for s in saved]):
        table = Table(title=text(f"{name}: headline speedup per run ({first.function} on {first.environment.device})"),
                      title_justify="left")
        _name_column(table, "commit", [s.label for s in saved])
        table.add_column("run", no_wrap=True)
        table.add_column("speedup [95% CI]", justify="right", no_wrap=True)
        table.add_column("at size", ratio=1)
        for s in saved:
            t = next((c.headline for c in s.run.candidates if c.name == name and c.headline), None)
            table.add_row(text(s.label), text(s.run.when), text(fmt_interval(t)) if t else "—", text(t.size) if t else "—")
        tables.append(table)
    return Group(*tables)