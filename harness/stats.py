"""Pure statistics over timing rounds: no clocks, no torch, no I/O, so it is easy to test and to trust.

- The standard error of the median is estimated robustly: 1.2533 * sigma / sqrt(n), with sigma taken from
  the interquartile range (IQR / 1.349) rather than the standard deviation, because timing data has a long
  right tail (interrupts, page faults) that would inflate a standard deviation.
- The speedup is the median of paired ratios baseline_i / candidate_i over interleaved rounds, and its 95%
  interval a percentile bootstrap of that median (resampling pairs, seeded so a result is reproducible).
- The verdict needs the whole interval beyond the noise floor: "faster" when low > 1 + floor, "slower"
  when high < 1 / (1 + floor), otherwise "no significant difference".
"""

from __future__ import annotations

import math
import random
from typing import Sequence

from harness.result import Summary

FASTER, SLOWER, SAME = "faster", "slower", "no significant difference"


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
    """Percentile bootstrap interval of the median."""
    rng = random.Random(seed)
    n = len(xs)
    medians = sorted(median([xs[rng.randrange(n)] for _ in range(n)]) for _ in range(resamples))
    alpha = (1 - confidence) / 2
    return quantile(medians, alpha), quantile(medians, 1 - alpha)


def classify(ci: tuple[float, float], noise_floor: float) -> str:
    low, high = ci
    if low > 1 + noise_floor:
        return FASTER
    if high < 1 / (1 + noise_floor):
        return SLOWER
    return SAME


def percent_faster(speedup: float) -> float:
    """baseline/candidate - 1, in percent: 1.55x is 55% faster, 0.80x is -20%."""
    return (speedup - 1) * 100
