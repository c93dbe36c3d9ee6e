"""Formatting shared by every renderer (markdown, PR comment, terminal, exported tests): numbers with their
units, and untrusted text made safe for the format it lands in.  Pure functions, no I/O.

Everything that comes from a candidate or a result file — names, specs, docstrings, exception messages,
paths, case names, source lines — is untrusted.  In markdown it must not be able to close a ``<details>``,
open an HTML comment that hides the rest of the report, start a heading, a list or a table row, or leave
a code span or fence: ``md_text`` (prose, one paragraph, `code spans` kept), ``md_code`` (an inline code
span) and ``md_fence`` (a fenced block) see to that.  In Python source, ``py_comment`` keeps it on one line.
"""

from __future__ import annotations

import html
import math
import re

from typing import TYPE_CHECKING, Protocol

from harness.core import stats

if TYPE_CHECKING:
    from harness.core.result import CandidateResult, Environment


class WithInterval(Protocol):
    """A speedup and its interval: a ``SizeTiming``, or a ``gate.Change`` between two runs."""

    speedup: float
    speedup_ci: tuple[float, float]


def fmt_bytes(n: int) -> str:
    """A size in the largest binary unit under it: 32 MiB, 1.5 GiB, 512 KiB."""
    for unit, scale in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= scale:
            return f"{n / scale:.3g} {unit}"
    return f"{n} B"


def machine_line(e: "Environment") -> str:
    """What a reader needs to compare a run's figures with another machine's, in one line (plain text)."""
    parts = [e.device_name]
    if e.copy_gbps:
        parts.append(f"copy bandwidth {e.copy_gbps:.1f} GB/s (measured)")
    if e.cache_bytes:
        parts.append(f"last-level cache {fmt_bytes(e.cache_bytes)}" + (f" ({e.cache_source})" if e.cache_source else ""))
    parts.append(f"{e.threads} threads")
    if e.load_start is not None:
        parts.append(f"load average {e.load_start:.2f}" + (f" → {e.load_end:.2f}" if e.load_end is not None else ""))
    return " · ".join(parts)


STAGE_WORDS = (("load_s", "loading"), ("verify_s", "verifying"), ("wait_s", "waiting for the device"),
               ("time_s", "timing"), ("cases_s", "timing regression cases"), ("profile_s", "profiling"))


def stages_line(candidates: "tuple[CandidateResult, ...] | list[CandidateResult]") -> str:
    """Where judging the candidates took its time, summed over them (with ``--jobs`` they overlap, so the sum
    can exceed the run's wall time): 'judging 3 candidates took 41.2 s: loading 3.1 s, verifying 20.4 s,
    timing 16.5 s, profiling 1.2 s' ('' when nothing was measured, e.g. a result from an older harness)."""
    totals = {key: sum(getattr(c.stages, key) for c in candidates) for key, _ in STAGE_WORDS}
    total = sum(totals.values())
    if total <= 0:
        return ""
    parts = [f"{words} {value:.1f} s" for (key, words), value in zip(STAGE_WORDS, totals.values()) if value >= 0.05]
    n = len(candidates)
    return f"judging {n} candidate{'s' * (n != 1)} took {total:.1f} s: " + ", ".join(parts)


def fmt_time(seconds: float | None, space: bool = True) -> str:
    """Three significant digits in the largest unit under the value: 16.4 ms, 95.6 μs, 104 μs."""
    if seconds is None or not math.isfinite(seconds):
        return "—"
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("μs", 1e-6), ("ns", 1e-9)):
        if seconds >= scale or unit == "ns":
            value = seconds / scale
            digits = max(0, 2 - int(math.floor(math.log10(value)))) if value > 0 else 0
            return f"{value:.{digits}f}{' ' if space else ''}{unit}"
    raise AssertionError("unreachable")


def fmt_speedup(speedup: float) -> str:
    return f"{speedup:.2f}x"


def change_note(baseline_s: float, candidate_s: float) -> str:
    """``104μs -> 95.6μs (9.11% faster)``, the seed's annotation."""
    if not (baseline_s > 0 and candidate_s > 0):
        return f"{fmt_time(baseline_s, False)} -> {fmt_time(candidate_s, False)}"
    pct = stats.percent_faster(baseline_s / candidate_s)
    word = "faster" if pct >= 0 else "slower"
    return f"{fmt_time(baseline_s, False)} -> {fmt_time(candidate_s, False)} ({abs(pct):.3g}% {word})"


def fmt_interval(t: WithInterval) -> str:
    """``1.55x [1.51–1.59]``: the speedup and its 95% interval."""
    return f"{fmt_speedup(t.speedup)} [{t.speedup_ci[0]:.2f}–{t.speedup_ci[1]:.2f}]"


class Voted(Protocol):
    """A size timed in pairs of runners (``SizeTiming``): each pair's speedup and verdict, and the verdict."""

    pair_speedups: tuple[float, ...]
    pair_verdicts: tuple[str, ...]
    verdict: str


def _votes(t: Voted) -> list[bool] | None:
    """Which pairs voted for the verdict (``Bench.combine``); None when no verdict won, or a result file
    from before pairs' verdicts were kept (empty ``pair_verdicts``)."""
    if t.verdict not in stats.DECISIVE or len(t.pair_verdicts) != len(t.pair_speedups):
        return None
    return [stats.verdict_class(v) == stats.verdict_class(t.verdict) for v in t.pair_verdicts]


def fmt_pair_count(t: Voted) -> str:
    """"2 pairs", "2 of 3 pairs", "no majority of 2 pairs"; empty for one pair."""
    n = len(t.pair_speedups)
    if not n:
        return ""
    votes = _votes(t)
    if votes is None:
        return f"{n} pairs" if not t.pair_verdicts else f"no majority of {n} pairs"
    return f"{n} pairs" if all(votes) else f"{sum(votes)} of {n} pairs"


def fmt_pairs(t: Voted) -> str:
    """How the pairs of runners voted: "2 pairs of runners: 0.91x slower, 0.90x slower", "2 of 3 pairs of
    runners: ..., 1.00x no significant difference (outvoted), ..."; empty for one pair.  Plain text: the
    caller escapes it for its format."""
    if not t.pair_speedups:
        return ""
    votes = _votes(t) or [True] * len(t.pair_speedups)
    verdicts = t.pair_verdicts if len(t.pair_verdicts) == len(t.pair_speedups) else ("",) * len(t.pair_speedups)
    each = ", ".join(f"{fmt_speedup(s)} {v}".rstrip() + ("" if ok else " (outvoted)")
                     for s, v, ok in zip(t.pair_speedups, verdicts, votes))
    return f"{fmt_pair_count(t)} of runners: {each}"


def _one_line(text: object) -> str:
    """Whitespace (every kind of line break included) collapsed, control characters dropped."""
    return " ".join("".join(c if c.isprintable() or c.isspace() else " " for c in str(text)).split())


_CODE_SPAN = re.compile(r"(`[^`]+`)")
_MD_PUNCTUATION = re.compile(r"([\\`*_{}\[\]#|~>@$])")  # @: no mentions; $: no math


def plain(text: object) -> str:
    """Untrusted text for a terminal: control characters (escape sequences, carriage returns) shown as
    ``?`` so that a name or message cannot move the cursor, recolour or hide output."""
    return "".join(c if c.isprintable() or c == " " else "?" for c in str(text))


def md_text(text: object) -> str:
    """Untrusted prose as one markdown paragraph: HTML escaped, markdown punctuation backslash-escaped,
    except inside the `code spans` it already had (whose content renders literally anyway)."""
    parts = []
    for i, part in enumerate(_CODE_SPAN.split(_one_line(text))):
        if i % 2:  # a code span: its content is literal; only the fence could matter, and it has no backtick
            parts.append(part)
        else:
            parts.append(_MD_PUNCTUATION.sub(r"\\\1", html.escape(part, quote=False)))
    return "".join(parts)


def md_code(text: object) -> str:
    """Untrusted text as an inline code span, whatever backticks it contains (CommonMark: a longer fence)."""
    text = _one_line(text)
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * (longest + 1)
    pad = " " if text.startswith("`") or text.endswith("`") or longest else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def md_fence(body: str, language: str = "") -> str:
    """Untrusted text as a fenced code block that it cannot close (a fence longer than any in it)."""
    longest = max((len(run) for run in re.findall(r"`{3,}", body)), default=2)
    fence = "`" * (longest + 1)
    return f"{fence}{language}\n{body.rstrip()}\n{fence}"


def html_text(text: object) -> str:
    """Untrusted text inside an HTML element (a ``<summary>``): one line, HTML-escaped."""
    return html.escape(_one_line(text))


def md_label(text: object) -> str:
    """Untrusted text where only a short plain label is safe (chart axes, hidden markers)."""
    return re.sub(r"[^\w.,=+-]", "_", _one_line(text))[:80] or "_"


def py_comment(text: object) -> str:
    """Untrusted text for a ``#`` comment in generated Python: one line, nothing to end the comment."""
    return _one_line(text)


def _md_row(cells: list[str]) -> str:
    return "| " + " | ".join(re.sub(r"(?<!\\)\|", r"\\|", c).replace("\n", " ") for c in cells) + " |"


def md_table(header: list[str], rows: list[list[str]]) -> str:
    """A markdown table; a ``|`` inside a cell is escaped, a newline made a space."""
    return "\n".join([_md_row(header), _md_row(["---"] * len(header)), *(_md_row(r) for r in rows)]) + "\n"
