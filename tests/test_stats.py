"""The pure statistics: quantiles, robust standard error, bootstrap interval and the verdict rule."""

import math

import pytest

from harness import stats


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


@pytest.mark.parametrize("ci, verdict", [
    ((1.06, 1.10), stats.FASTER),
    ((1.04, 1.10), stats.SAME),  # the whole interval must clear the floor
    ((0.90, 0.95), stats.SLOWER),
    ((0.90, 0.96), stats.SAME),
    ((0.98, 1.02), stats.SAME),
])
def test_verdict_needs_the_whole_interval_beyond_the_noise_floor(ci, verdict):
    assert stats.classify(ci, 0.05) == verdict


def test_paired_ratios_and_percent():
    assert stats.paired_ratios([2.0, 3.0], [1.0, 3.0]) == [2.0, 1.0]
    with pytest.raises(ValueError):
        stats.paired_ratios([1.0], [1.0, 2.0])
    assert stats.percent_faster(1.55) == pytest.approx(55.0)
    assert stats.percent_faster(0.8) == pytest.approx(-20.0)
