"""The pure statistics: quantiles, robust standard error, bootstrap interval and the verdict rule."""

import math

import pytest

from harness.core import stats


def test_quantiles_match_linear_interpolation():
    xs = [4.0, 1.0, 3.0, 2.0]
    assert stats.median(xs) == 2.5
    assert stats.quantile(xs, 0.25) == 1.75
    assert stats.iqr(xs) == pytest.approx(1.5)


def test_stderr_of_median_is_robust_to_one_outlier():
    calm = [1.0 + 0.01 * (i % 5) for i in range(100)]
    spiky = calm[:-1] + [50.0]
    assert stats.stderr_of_median(spiky) == pytest.approx(stats.stderr_of_median(calm), rel=0.1)
    assert stats.stderr_of_median([1.0]) == math.inf


def test_summary_fields():
    s = stats.summarize([3.0, 1.0, 2.0])
    assert (s.rounds, s.min_s, s.median_s, s.mean_s) == (3, 1.0, 2.0, 2.0)
    assert s.rse == pytest.approx(s.stderr_s / 2.0)


def test_bootstrap_interval_contains_the_median_and_is_reproducible():
    ratios = [1.0 + 0.02 * math.sin(i) for i in range(60)]
    lo, hi = stats.bootstrap_median_ci(ratios, seed=1)
    assert lo <= stats.median(ratios) <= hi
    assert (lo, hi) == stats.bootstrap_median_ci(ratios, seed=1)
    assert hi - lo < 0.02


@pytest.mark.parametrize("ci, verdict, label", [
    ((1.06, 1.10), stats.FASTER, "faster"),  # the whole interval above 1 + floor
    ((0.90, 0.94), stats.SLOWER, "slower"),  # the whole interval below 1 - floor
    ((0.97, 0.99), stats.WITHIN, "within ±5% (0.98x)"),  # inside the floor, excluding 1.00: a small difference
    ((1.01, 1.04), stats.WITHIN, "within ±5% (1.02x)"),
    ((0.98, 1.02), stats.SAME, "no significant difference"),  # inside the floor and containing 1.00
    ((0.94, 1.10), stats.INCONCLUSIVE, "inconclusive (interval 0.94–1.10)"),  # across both floor boundaries
    ((0.93, 0.96), stats.INCONCLUSIVE, "inconclusive (interval 0.93–0.96)"),  # a difference, size undecided
    ((1.04, 1.10), stats.INCONCLUSIVE, "inconclusive (interval 1.04–1.10)"),
])
def test_the_verdict_reads_the_whole_interval_against_the_noise_floor(ci, verdict, label):
    speedup = (ci[0] + ci[1]) / 2
    assert stats.decide(ci, 0.05) == verdict
    assert stats.label(verdict, speedup, ci, 0.05) == label
    assert (verdict in stats.DECISIVE) == (verdict != stats.INCONCLUSIVE)


def test_paired_ratios_and_percent():
    assert stats.paired_ratios([2.0, 3.0], [1.0, 3.0]) == [2.0, 1.0]
    with pytest.raises(ValueError):
        stats.paired_ratios([1.0], [1.0, 2.0])
    assert stats.percent_faster(1.55) == pytest.approx(55.0)
    assert stats.percent_faster(0.8) == pytest.approx(-20.0)


def test_verdicts_inside_the_floor_are_one_class_when_pairs_vote():
    assert stats.verdict_class(stats.SAME) == stats.verdict_class(stats.WITHIN) == stats.INSIDE
    assert {stats.verdict_class(v) for v in (stats.FASTER, stats.SLOWER, stats.INCONCLUSIVE)} == {
        stats.FASTER, stats.SLOWER, stats.INCONCLUSIVE}
