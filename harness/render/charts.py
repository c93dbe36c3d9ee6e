"""SVG charts for local reports, drawn with matplotlib: pure functions of results (results in, SVG text out).
Runs in the judge.  Optional: where matplotlib is not installed ``available()`` is false and reports carry
their mermaid chart and tables only.  Names in a result are untrusted: matplotlib escapes text in SVG.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Any, Sequence

from harness.render.history import headline_names
from harness.core.result import RunResult

MARKERS = "osD^vP*X"


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


def _short_families(families: Sequence[str]) -> dict[str, str]:
    """Each family's label with the ``k=v`` parts every family shares left out (legends stay short)."""
    parts = {f: [p.strip() for p in f.split(",") if p.strip()] for f in families}
    shared = set.intersection(*(set(p) for p in parts.values())) if parts else set()
    return {f: ", ".join(p for p in ps if p not in shared) or f or "sizes" for f, ps in parts.items()}


@dataclass(frozen=True)
class Series:
    """One line of a chart: points joined in order, drawn in one colour and marker."""
    label: str
    colour: str
    marker: str
    x: tuple[float, ...]
    y: tuple[float, ...]
    intervals: tuple[tuple[float, float], ...]


def size_series(run: RunResult) -> list[Series]:
    """One series per timed candidate and shape family (sizes of different shapes are never joined into one
    zig-zag line), one colour per candidate, one marker per family; legends name the family only when there
    are several."""
    families = list(dict.fromkeys(t.family for c in run.candidates for t in c.timings))
    labels = _short_families(families)
    found = []
    for index, c in enumerate(c for c in run.candidates if c.timings):
        for k, family in enumerate(families):
            timings = sorted((t for t in c.timings if t.family == family), key=lambda t: t.bytes_moved)
            if timings:
                found.append(Series(c.name if len(families) == 1 else f"{c.name} · {labels[family]}",
                                    f"C{index % 10}", MARKERS[k % len(MARKERS)],
                                    tuple(t.bytes_moved for t in timings), tuple(t.speedup for t in timings),
                                    tuple(t.speedup_ci for t in timings)))
    return found


def speedup_by_size(run: RunResult) -> str:
    """Each timed candidate's speedup against the bytes a call moves (log scale), with its interval."""
    figure, axes = _figure(f"{run.function}: speedup by size ({run.environment.device_name})",
                           "bytes moved per call")
    axes.set_xscale("log")
    series = size_series(run)
    for line in series:
        axes.errorbar(line.x, line.y, yerr=_errors(line.y, line.intervals), marker=line.marker, color=line.colour,
                      capsize=3, label=_label(line.label))
    xs = {x for line in series for x in line.x}
    if len(xs) == 1:  # one size: matplotlib's log axis would span nothing (a divide-by-zero warning)
        axes.set_xlim(min(xs) / 2, min(xs) * 2)
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
