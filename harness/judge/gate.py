"""Runs across time: ``harness compare OLD NEW`` and the regression gate (``run --compare``).

For each candidate (matched by spec) and size present in both runs, the saved and current per-call round
times are independent samples.  ``changes`` gives every pair's speedup (old median / new median) with a
bootstrap 95% interval and the same verdict words as a run's timings (``stats.decide``); the gate reports a
slowdown only when the whole interval of new / old is above ``1 + fail_slower``.  Pure: two results in,
findings out (renderers: ``console.comparison_table``, ``runs.comparison``).
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Sequence

from harness.core import stats
from harness.core.config import DEFAULTS
from harness.core.result import RunResult


@dataclass(frozen=True)
class Regression:
    candidate: str
    size: str
    before_s: float
    after_s: float
    ratio_ci: tuple[float, float]

    def describe(self) -> str:
        return (f"{self.candidate} @ {self.size}: {self.before_s * 1e3:.4g} ms -> {self.after_s * 1e3:.4g} ms "
                f"(x{self.after_s / self.before_s:.3f} time, 95% CI {self.ratio_ci[0]:.3f}-{self.ratio_ci[1]:.3f})")


def ratio_of_medians_ci(after: Sequence[float], before: Sequence[float], resamples: int = 2000,
                        seed: int = 0) -> tuple[float, float]:
    rng = random.Random(seed)
    ratios = sorted(
        stats.median([after[rng.randrange(len(after))] for _ in after])
        / stats.median([before[rng.randrange(len(before))] for _ in before])
        for _ in range(resamples)
    )
    return stats.quantile(ratios, 0.025), stats.quantile(ratios, 0.975)


@dataclass(frozen=True)
class Change:
    """One candidate at one size in two runs: how its time moved."""

    candidate: str
    spec: str
    size: str
    before_s: float  # medians
    after_s: float
    speedup: float  # before / after: above 1 it got faster
    speedup_ci: tuple[float, float]
    verdict: str  # stats.decide
    label: str  # stats.label


def mismatch(previous: RunResult, current: RunResult) -> str | None:
    """Why two runs cannot be compared at all (another target or device), or None."""
    if previous.target != current.target:
        return f"one is a result of {previous.target}, the other of {current.target}"
    if previous.environment.device != current.environment.device:
        return f"one ran on {previous.environment.device}, the other on {current.environment.device}"
    return None


def _usable(rounds: Sequence[float]) -> bool:
    """Round times a ratio can be taken of (a result file is untrusted: zero or negative times are not)."""
    return bool(rounds) and all(math.isfinite(t) and t > 0 for t in rounds)


def _pairs(previous: RunResult, current: RunResult) -> list[tuple[str, str, object, object]]:
    """(name, spec, old timing, new timing) for every candidate (by spec) and size timed in both runs."""
    before = {(c.spec, t.size): t for c in previous.candidates for t in c.timings if _usable(t.candidate_rounds_s)}
    return [(c.name, c.spec, before[(c.spec, t.size)], t) for c in current.candidates for t in c.timings
            if (c.spec, t.size) in before and _usable(t.candidate_rounds_s)]


def changes(previous: RunResult, current: RunResult, noise_floor: float = DEFAULTS.noise_floor) -> list[Change]:
    """Every (candidate, size) timed in both runs, in the current run's order."""
    found = []
    for name, spec, old, t in _pairs(previous, current):
        speedup = stats.median(old.candidate_rounds_s) / stats.median(t.candidate_rounds_s)
        ci = ratio_of_medians_ci(old.candidate_rounds_s, t.candidate_rounds_s)
        verdict = stats.decide(ci, noise_floor)
        found.append(Change(name, spec, t.size, stats.median(old.candidate_rounds_s),
                            stats.median(t.candidate_rounds_s), speedup, ci, verdict,
                            stats.label(verdict, speedup, ci, noise_floor)))
    return found


def compared_pairs(previous: RunResult, current: RunResult) -> int:
    """How many (candidate, size) timings the two runs have in common: what the gate can compare."""
    return len(_pairs(previous, current))


def regressions(previous: RunResult, current: RunResult, fail_slower: float) -> list[Regression]:
    found = []
    for name, _, old, t in _pairs(previous, current):
        ci = ratio_of_medians_ci(t.candidate_rounds_s, old.candidate_rounds_s)
        if ci[0] > 1 + fail_slower:
            found.append(Regression(name, t.size, stats.median(old.candidate_rounds_s),
                                    stats.median(t.candidate_rounds_s), ci))
    return found
