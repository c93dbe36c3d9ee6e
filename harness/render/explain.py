"""What changed between the baseline's line profile and a candidate's, in words: by kind of work
(reduction, conversion, slicing, ...), what dominated and what its share became.  A pure function of two
``Profile``s, for the report."""

from __future__ import annotations

from harness.core.result import Profile


def by_kind(p: Profile) -> dict[str, tuple[float, float]]:
    """Per kind of work: (share of the call in %, seconds per call)."""
    out: dict[str, tuple[float, float]] = {}
    for stat in p.lines:
        share, seconds = out.get(stat.kind, (0.0, 0.0))
        out[stat.kind] = (share + stat.percent, seconds + stat.total_s)
    return out


def explain(baseline: Profile, candidate: Profile, floor: float = 5.0) -> list[str]:
    """Plain-words facts: what dominated the baseline (>= floor % of its time) and what it became in the
    candidate, as a share of each call and in time per call (shares alone mislead when the call got faster)."""
    from harness.core.fmt import fmt_time

    before, after = by_kind(baseline), by_kind(candidate)
    facts = []
    for kind, (share, seconds) in sorted(before.items(), key=lambda kv: -kv[1][0]):
        if share < floor:
            continue
        now_share, now_seconds = after.get(kind, (0.0, 0.0))
        became = "gone" if now_share < 0.05 else f"{now_share:.1f}% ({fmt_time(now_seconds)})"
        facts.append(f"{kind}: {share:.1f}% ({fmt_time(seconds)}) → {became}")
    for kind, (share, seconds) in sorted(after.items(), key=lambda kv: -kv[1][0]):
        if share >= 10 and before.get(kind, (0.0, 0.0))[0] < floor:
            facts.append(f"{kind}: new, {share:.1f}% ({fmt_time(seconds)}) of the candidate")
    if candidate.kernels and candidate.kernels[0].percent >= 50:
        k = candidate.kernels[0]
        facts.append(f"the candidate's time is in `{k.name}` ({k.percent:.0f}% of its {candidate.kernel_clock} time)")
    return facts
