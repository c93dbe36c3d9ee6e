"""Runs across time: ``harness compare OLD NEW``, and the regression gate (``run --compare SAVED.json`` or
``run --against REF``, whose side-by-side timing is ``against``).  Pure: results in, findings out
(renderers: ``console.comparison_table``, ``runs.comparison``, ``report``, ``prbot``).

Two saved runs are two sets of processes at two times: a candidate's time can move between them by more
than either run's rounds say (where its code and data landed, the machine's state), which is how a commit
compared with itself once read "0.89x [0.86-0.94] slower".  So a saved run is compared through each
candidate's speedup over the baseline *of its own run* — the baseline's shift between the runs cancels —
and the interval of the change is the interval arithmetic of the two runs' speedup intervals (each spans
its runner pairs, ``Bench.combine``): new low / old high to new high / old low, widened at each end by the
between-run spread (``between_runs``): what a speedup over the run's own baseline moves between runs of the
same code beyond its interval — the larger of ``BETWEEN_RUNS`` and half the range of the run's runner
pairs' speedups.  That is wider than either run's interval, on purpose: the gate must not cry wolf, and
where the width crosses the threshold it says it cannot decide.
To catch a small slowdown, ``--against REF`` times the reference's candidate beside the current one in the
same run, in interleaved rounds: a within-run ratio, as narrow as any timing.

The gate's verdict (``verdict``) is "failed" only where a check decided "slower" (the whole interval below
1 - ``fail_slower``) in a run with no noise flagged; a noisy run is "noisy" (exit 3) whatever it read; an
interval across the threshold is "undecided" (exit 3), never "slower".
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

from harness.core import stats
from harness.core.config import DEFAULTS
from harness.core.result import Gate, GateCheck, RunResult, SizeTiming

EXIT_FOR_STATUS = {"passed": 0, "failed": 1, "noisy": 3, "undecided": 3}
# Twenty saved runs of unchanged code, each compared with the one before (2-core AMD EPYC VM, fused at
# prod-65536, one pair of runners each): with the intervals alone one of twenty read "faster" (1.09x
# [1.06-1.13]); widened by 2% at each end none did (benchmarks/gate-trials-saved-cpu-epyc.txt).  More would
# leave no room for "no significant difference" inside the default 5% floor.
BETWEEN_RUNS = 0.02


def between_runs(t: SizeTiming) -> float:
    """How far a timing's speedup may move in another run of the same code, beyond its interval: half the
    relative range of its runner pairs' speedups where it has several, at least ``BETWEEN_RUNS``."""
    pairs = [s for s in t.pair_speedups if math.isfinite(s) and s > 0]
    spread = (max(pairs) / min(pairs) - 1) / 2 if len(pairs) > 1 else 0.0
    return max(BETWEEN_RUNS, spread)


@dataclass(frozen=True)
class Change:
    """One candidate at one size in two runs: how its time and its speedup over the baseline moved."""

    candidate: str
    spec: str
    size: str
    before_s: float  # the candidate's medians, as measured (for reading; the verdict is the speedups')
    after_s: float
    speedup: float  # new speedup over the baseline / old: above 1 it got faster
    speedup_ci: tuple[float, float]  # the two runs' intervals combined (module docstring)
    verdict: str  # stats.decide
    label: str  # stats.label

    def check(self) -> GateCheck:
        return GateCheck(self.candidate, self.size, self.speedup, self.speedup_ci, self.verdict, self.label)


def mismatch(previous: RunResult, current: RunResult) -> str | None:
    """Why two runs cannot be compared at all (another target, device or baseline), or None."""
    if previous.target != current.target:
        return f"one is a result of {previous.target}, the other of {current.target}"
    if previous.environment.device != current.environment.device:
        return f"one ran on {previous.environment.device}, the other on {current.environment.device}"
    if previous.baseline != current.baseline:
        return f"one was timed against {previous.baseline}, the other against {current.baseline}"
    return None


def _usable(t: SizeTiming) -> bool:
    """A timing a ratio can be taken of (a result file is untrusted: zero, negative or non-finite values and
    an interval that does not hold its speedup are no data)."""
    values = (t.speedup, *t.speedup_ci, *t.candidate_rounds_s)
    return (bool(t.candidate_rounds_s) and all(math.isfinite(v) and v > 0 for v in values)
            and t.speedup_ci[0] <= t.speedup <= t.speedup_ci[1])


def _pairs(previous: RunResult, current: RunResult) -> list[tuple[str, str, SizeTiming, SizeTiming]]:
    """(name, spec, old timing, new timing) for every candidate (by spec) and size timed in both runs."""
    before = {(c.spec, t.size): t for c in previous.candidates for t in c.timings if _usable(t)}
    return [(c.name, c.spec, before[(c.spec, t.size)], t) for c in current.candidates for t in c.timings
            if (c.spec, t.size) in before and _usable(t)]


def changes(previous: RunResult, current: RunResult, noise_floor: float = DEFAULTS.noise_floor) -> list[Change]:
    """Every (candidate, size) timed in both runs, in the current run's order."""
    found = []
    for name, spec, old, new in _pairs(previous, current):
        speedup = new.speedup / old.speedup
        widen = (1 + between_runs(old)) * (1 + between_runs(new))
        ci = (new.speedup_ci[0] / old.speedup_ci[1] / widen, new.speedup_ci[1] / old.speedup_ci[0] * widen)
        verdict = stats.decide(ci, noise_floor)
        found.append(Change(name, spec, new.size, stats.median(old.candidate_rounds_s),
                            stats.median(new.candidate_rounds_s), speedup, ci, verdict,
                            stats.label(verdict, speedup, ci, noise_floor)))
    return found


def _listed(checks: Sequence[GateCheck], most: int = 3) -> str:
    shown = "; ".join(f"{c.candidate} @ {c.size} {c.speedup:.2f}x [{c.speedup_ci[0]:.2f}–{c.speedup_ci[1]:.2f}]"
                      for c in checks[:most])
    return shown + (f"; and {len(checks) - most} more" if len(checks) > most else "")


def verdict(reference: str, checks: Sequence[GateCheck], fail_slower: float, noise: Sequence[str] = (),
            skipped: Sequence[str] = ()) -> Gate:
    """The gate's outcome over its checks (each decided with ``fail_slower`` as the floor)."""
    slower = [c for c in checks if c.verdict == stats.SLOWER]
    undecided = [c for c in checks if c.verdict == stats.INCONCLUSIVE]
    n = len(checks)
    pairs = f"{n} candidate/size pair{'s' * (n != 1)}"
    if not checks:
        status, reason = "failed", f"compared nothing: no passing candidate and size in common with {reference}"
    elif noise:
        status = "noisy"
        reason = (f"the machine was noisy during this run ({noise[0]}): the gate cannot judge it"
                  + (f" ({len(slower)} of {pairs} read slower: {_listed(slower)})" if slower else ""))
    elif slower:
        status = "failed"
        reason = f"{len(slower)} of {pairs} slower than {reference} by more than {fail_slower:.0%}: {_listed(slower)}"
    elif undecided:
        status = "undecided"
        reason = (f"none of {pairs} decided slower by more than {fail_slower:.0%}, but {len(undecided)} could not be "
                  f"decided (the interval crosses {1 - fail_slower:.2f}x): {_listed(undecided)}")
    else:
        status, reason = "passed", f"none of {pairs} slower than {reference} by more than {fail_slower:.0%}"
    return Gate(reference, fail_slower, status, reason, tuple(checks), tuple(skipped))


def against_saved(previous: RunResult, current: RunResult, fail_slower: float, name: str) -> Gate:
    """The gate of ``current`` against a saved run (``name``: how to call it), through speedups over each
    run's own baseline (module docstring)."""
    reference = f"{name} ({_label(previous)})"
    if (why := mismatch(previous, current)) is not None:
        return Gate(reference, fail_slower, "failed", f"cannot be compared: {why}")
    found = changes(previous, current, fail_slower)
    return verdict(reference, [c.check() for c in found], fail_slower, [n.text for n in current.noise])


def _label(run: RunResult) -> str:
    env = run.environment
    return f"commit {env.git_commit or 'unknown'}{'+' if env.git_dirty else ''}, {run.when}"
