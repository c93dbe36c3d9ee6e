"""SVG charts for local reports, drawn with matplotlib: pure functions of results (results in, SVG text out).
Runs in the judge.  Optional: where matplotlib is not installed ``available()`` is false and reports carry
their mermaid chart and tables only.  Names in a result are untrusted: matplotlib escapes text in SVG.
"""

from __future__ import annotations

import io
from typing import Any, Sequence

from harness.render.history import headline_names
from harness.core.result import RunResult


def available() -> bool:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def _figure(title: str, xlabel: str) -> tuple[Any, Any]:
    from matplotlib.figure import Figure

    figure = Figure(figsize=(7.5, 4.2), layout="constrained")  # text added with parse_math off (see _label)
    axes = figure.subplots()
    axes.set_title(title, parse_math=False)
    axes.set_xlabel(xlabel)
    axes.set_ylabel("speedup over the baseline (x, median, 95% interval)")
    axes.axhline(1.0, color="grey", linewidth=0.8, linestyle="--")
    return figure, axes


def _label(name: str) -> str:
    """A legend entry for an untrusted name: "$" would start mathtext, a leading "_" hides the entry."""
    return " " + name if name.startswith("_") else name


def _svg(figure: Any, axes: Any) -> str:
    import matplotlib

    legend = axes.legend(loc="best", fontsize="small")
    for text in legend.get_texts() if legend else ():
        text.set_parse_math(False)
    buffer = io.StringIO()
    # a fixed hash salt and no date: the same result draws the same bytes
    with matplotlib.rc_context({"svg.hashsalt": "harness", "svg.fonttype": "none"}):
        figure.savefig(buffer, format="svg", metadata={"Date": None})
    return buffer.getvalue()


def _errors(values: Sequence[float], intervals: Sequence[tuple[float, float]]) -> list[list[float]]:
    """Error bars from intervals, never negative (a result file's interval need not contain its value)."""
    return [[max(0.0, v - lo) for v, (lo, _) in zip(values, intervals)],
            [max(0.0, hi - v) for v, (_, hi) in zip(values, intervals)]]


def speedup_by_size(run: RunResult) -> str:
    """Each timed candidate's speedup against the bytes a call moves (log scale), with its interval."""
    figure, axes = _figure(f"{run.function}: speedup by size ({run.environment.device_name})",
                           "bytes moved per call")
    axes.set_xscale("log")
    for c in run.candidates:
        timings = sorted(c.timings, key=lambda t: t.bytes_moved)
        if not timings:
            continue
        x = [t.bytes_moved for t in timings]
        y = [t.speedup for t in timings]
        axes.errorbar(x, y, yerr=_errors(y, [t.speedup_ci for t in timings]), marker="o", capsize=3, label=_label(c.name))
    return _svg(figure, axes)


def history(runs: Sequence[RunResult], labels: Sequence[str]) -> str:
    """Each candidate's headline speedup (its largest size) across saved runs, oldest first."""
    figure, axes = _figure(f"{runs[0].function}: speedup across runs ({runs[0].environment.device})", "run")
    for name in headline_names(list(runs)):
        points = [(i, c.headline) for i, run in enumerate(runs) for c in run.candidates
                  if c.name == name and c.headline]
        x = [i for i, _ in points]
        y = [t.speedup for _, t in points]
        axes.errorbar(x, y, yerr=_errors(y, [t.speedup_ci for _, t in points]), marker="o", capsize=3, label=_label(name))
    axes.set_xticks(range(len(runs)), labels, rotation=30, ha="right", fontsize="small", parse_math=False)
    return _svg(figure, axes)
