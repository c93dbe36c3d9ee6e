"""What a reader must see first: the troubles of a run (failed candidates, a changed checkout, noise, the
regression gate) in a report's title and the index, and the gate's own section.  Pure functions of a
``RunResult``; used by ``report`` (the markdown report, the index, the PR comment)."""

from __future__ import annotations

from harness.core.fmt import fmt_interval, md_code, md_text
from harness.core.fmt import md_table as _table
from harness.core.result import RunResult, Verdict


def troubles(result: RunResult) -> list[str]:
    """What a reader must know before any speedup, in a few words each: failed candidates, a changed
    checkout, failed round trips, a noisy machine, the regression gate's verdict when it did not pass."""
    found = []
    bad = [c for c in result.candidates if c.verdict in (Verdict.FAIL, Verdict.ERROR)]
    if bad:
        found.append(f"❌ {len(bad)} of {len(result.candidates)} candidates failed")
    if result.checkout_changes:
        found.append("❌ the checkout changed during the run")
    broken = [r for r in result.round_trips if not r.passed]
    if broken:
        found.append(f"❌ {len(broken)} round trip{'s' * (len(broken) != 1)} failed")
    if result.gate is not None and result.gate.status != "passed":
        found.append(f"{'❌' if result.gate.status == 'failed' else '⚠️'} regression gate {result.gate.status}")
    if result.noise and not (result.gate is not None and result.gate.status == "noisy"):
        found.append("⚠️ noisy machine")
    return found


def title(text: str, result: RunResult) -> str:
    """A report's first line: what it found, then what went wrong, so neither hides the other."""
    found = troubles(result)
    return f"# {text}" + (f" — {'; '.join(found)}" if found else "") + "\n\n"


def gate_section(result: RunResult) -> str:
    g = result.gate
    if g is None:
        return ""
    icon = {"passed": "✅", "failed": "❌"}.get(g.status, "⚠️")
    text = (f"{icon} **Regression gate {g.status}** against {md_text(g.reference)} (fails where a candidate is "
            f"decided more than {g.fail_slower:.0%} slower): {md_text(g.reason)}.\n")
    if g.checks:
        rows = [[md_code(c.candidate), md_code(c.size), fmt_interval(c), md_text(c.label or c.verdict)] for c in g.checks]
        text += "\n" + _table(["Candidate", "Size", "Reference time / this run's [95% CI]", "Verdict"], rows)
    if g.skipped:
        text += "\nNot gated: " + "; ".join(md_text(s) for s in g.skipped) + ".\n"
    return text
