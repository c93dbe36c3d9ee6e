"""Pure statistics over timing rounds: no clocks, no torch, no I/O, so it is easy to test and to trust.

- The standard error of the median is estimated robustly: 1.2533 * sigma / sqrt(n), with sigma taken from
  the interquartile range (IQR / 1.349) rather than the standard deviation, because timing data has a long
  right tail (interrupts, page faults) that would inflate a standard deviation.
- The speedup is the median of paired ratios baseline_i / candidate_i over interleaved rounds, and its 95%
  interval a percentile bootstrap of that median (resampling pairs, seeded so a result is reproducible).
- The verdict reads the whole interval against the noise floor (``decide``): "faster" when it lies above
  1 + floor, "slower" below 1 - floor; inside 1 +/- floor it is "no significant difference" when it
  contains 1.00 and "within +/-floor" when it does not (a real difference, smaller than the floor); an
  interval across a floor boundary is "inconclusive" — the timing loop keeps measuring until it is not,
  or its budget is spent.  ``label`` says it in the words every renderer shows.
"""

from __future__ import annotations

import math
import random
from typing import Sequence

from harness.core.result import SpeedVerdict, Summary

FASTER, SLOWER, SAME = SpeedVerdict.FASTER, SpeedVerdict.SLOWER, SpeedVerdict.SAME
WITHIN, INCONCLUSIVE = SpeedVerdict.WITHIN, SpeedVerdict.INCONCLUSIVE
DECISIVE = (FASTER, SLOWER, SAME, WITHIN)
INSIDE = "inside the noise floor"  # the class of SAME and WITHIN, as pairs of runners vote (``verdict_class``)


def quantile(xs: Sequence[float], q: float) -> float:
    """Linear-interpolation quantile (numpy's default) of a non-empty sequence."""
    s = sorted(xs)
    pos = (len(s) - 1) * q
    lo, hi = math.floor(pos), math.ceil(pos)
    return s[lo] + (s[hi] - s[lo]) * (pos - lo)


def median(xs: Sequence[float]) -> float:
    return quantile(xs, 0.5)


def iqr(xs: Sequence[float]) -> float:
    return quantile(xs, 0.75) - quantile(xs, 0.25)


def stderr_of_median(xs: Sequence[float]) -> float:
    if len(xs) < 2:
        return math.inf
    sigma = iqr(xs) / 1.349
    return 1.2533 * sigma / math.sqrt(len(xs))


def relative_stderr(xs: Sequence[float]) -> float:
    m = median(xs)
    return stderr_of_median(xs) / m if m > 0 else math.inf


def summarize(xs: Sequence[float]) -> Summary:
    se = stderr_of_median(xs)
    m = median(xs)
    return Summary(rounds=len(xs), min_s=min(xs), median_s=m, mean_s=sum(xs) / len(xs), iqr_s=iqr(xs),
                   stderr_s=se, rse=se / m if m > 0 else math.inf)


def paired_ratios(baseline: Sequence[float], candidate: Sequence[float]) -> list[float]:
    if len(baseline) != len(candidate):
        raise ValueError("paired rounds must have the same length")
    return [b / c for b, c in zip(baseline, candidate)]


def bootstrap_median_ci(xs: Sequence[float], confidence: float = 0.95, resamples: int = 2000,
                        seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap interval of the median.  Each resample is drawn as positions in ``xs`` sorted, so
    sorting the drawn positions sorts the resample: its median is read off them (2000 resamples of 200
    rounds: 0.079 s, where drawn and sorted as values they took 0.139 s on a 2-core EPYC; the judge takes one
    at checkpoints of every size, and the rest of a 24-candidate CUDA run's compares, mostly these, was 23 s)."""
    rng = random.Random(seed)
    ordered, n = sorted(xs), len(xs)
    positions, low, high = range(n), (n - 1) // 2, n // 2  # the middle one, or the middle two

    def resampled_median() -> float:
        drawn = sorted(rng.choices(positions, k=n))
        return (ordered[drawn[low]] + ordered[drawn[high]]) / 2

    medians = sorted(resampled_median() for _ in range(resamples))
    alpha = (1 - confidence) / 2
    return quantile(medians, alpha), quantile(medians, 1 - alpha)


def decide(ci: tuple[float, float], noise_floor: float) -> str:
    """The verdict of a speedup interval against the noise floor (see the module docstring)."""
    low, high = ci
    if low > 1 + noise_floor:
        return FASTER
    if high < 1 - noise_floor:
        return SLOWER
    if low >= 1 - noise_floor and high <= 1 + noise_floor:
        return SAME if low <= 1.0 <= high else WITHIN
    return INCONCLUSIVE


def verdict_class(verdict: str) -> str:
    """What a verdict claims, for comparing verdicts: "no significant difference" and "within the noise
    floor" both say the difference is smaller than the floor."""
    return INSIDE if verdict in (SAME, WITHIN) else verdict


def label(verdict: str, speedup: float, ci: tuple[float, float], noise_floor: float) -> str:
    """The verdict in words: "faster", "slower", "within ±5% (0.97x)", "no significant difference",
    "inconclusive (interval 0.94–1.10)"."""
    if verdict == WITHIN:
        return f"within ±{noise_floor:.0%} ({speedup:.2f}x)"
    if verdict == INCONCLUSIVE:
        return f"inconclusive (interval {ci[0]:.2f}–{ci[1]:.2f})"
    return verdict


def percent_faster(speedup: float) -> float:
    """baseline/candidate - 1, in percent: 1.55x is 55% faster, 0.80x is -20%."""
    return (speedup - 1) * 100
