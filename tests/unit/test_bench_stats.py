"""Bootstrap intervals against cases whose answer is known exactly or in closed form."""

from __future__ import annotations

import numpy as np
import pytest

from kubeagora.bench.stats import (
    Interval,
    mean_interval,
    median_ratio_interval,
    paired_difference_interval,
    paired_ratio_interval,
)


def test_identical_seeds_give_an_interval_of_zero_width() -> None:
    assert mean_interval([2.5] * 5) == Interval(2.5, 2.5, 2.5, 5)


def test_one_seed_has_no_spread_and_says_so() -> None:
    interval = mean_interval([7.0])
    assert (interval.estimate, interval.low, interval.high, interval.n) == (7.0, 7.0, 7.0, 1)


def test_two_values_span_exactly_their_range() -> None:
    # resampling {0, 1}: mean 0 with probability 1/4, 1/2 w.p. 1/2, 1 w.p. 1/4, so the 2.5th and
    # 97.5th percentiles are the two values themselves
    interval = mean_interval([0.0, 1.0])
    assert (interval.estimate, interval.low, interval.high) == (0.5, 0.0, 1.0)


def test_a_value_drawn_with_probability_above_the_tail_is_inside() -> None:
    # {0, 0, 1}: all three draws are 1 with probability 1/27 = 3.7 % > 2.5 %, so the upper end is 1;
    # all three 0 with probability 8/27, so the lower end is 0
    interval = mean_interval([0.0, 0.0, 1.0])
    assert (interval.low, interval.high) == (0.0, 1.0)
    # {0, 0, 0, 1}: all four 1 with probability 1/256 < 2.5 %: the upper end drops below 1
    assert mean_interval([0.0, 0.0, 0.0, 1.0]).high == pytest.approx(0.75)


def test_a_large_normal_sample_matches_the_normal_approximation() -> None:
    sample = np.random.default_rng(5).normal(10.0, 2.0, size=400)
    interval = mean_interval(sample.tolist())
    half_width = 1.96 * sample.std(ddof=1) / np.sqrt(sample.size)
    assert interval.estimate == pytest.approx(sample.mean())
    assert interval.low == pytest.approx(sample.mean() - half_width, abs=0.05 * half_width + 0.01)
    assert interval.high == pytest.approx(sample.mean() + half_width, abs=0.05 * half_width + 0.01)


def test_agrees_with_scipys_percentile_bootstrap() -> None:
    scipy_stats = pytest.importorskip("scipy.stats")
    sample = [0.4, 2.1, 1.3, 5.2, 0.9, 3.3]
    ours = mean_interval(sample)
    theirs = scipy_stats.bootstrap(
        (np.array(sample),), np.mean, method="percentile", n_resamples=20_000, random_state=1
    ).confidence_interval
    spread = max(sample) - min(sample)
    assert ours.low == pytest.approx(theirs.low, abs=0.03 * spread)
    assert ours.high == pytest.approx(theirs.high, abs=0.03 * spread)


def test_pairing_removes_the_spread_the_seeds_share() -> None:
    # seed-to-seed load varies 10..50, but a beats b by exactly 1 on every seed
    b = [10.0, 20.0, 30.0, 40.0, 50.0]
    a = [x - 1.0 for x in b]
    paired = paired_difference_interval(a, b)
    assert (paired.estimate, paired.low, paired.high) == (-1.0, -1.0, -1.0)
    assert paired.excludes(0.0)
    # the unpaired intervals of the two means overlap almost entirely
    assert mean_interval(a).high > mean_interval(b).low + 20


def test_a_difference_that_changes_sign_across_seeds_is_no_win() -> None:
    interval = paired_difference_interval([1.0, 3.0, 2.0, 5.0, 1.5], [2.0, 2.0, 2.5, 4.0, 1.0])
    assert interval.low < 0.0 < interval.high
    assert not interval.excludes(0.0)


def test_ratio_of_means_with_a_constant_factor_is_exact() -> None:
    b = [4.0, 8.0, 2.0, 6.0, 10.0]
    interval = paired_ratio_interval([0.5 * x for x in b], b)
    assert interval.estimate == pytest.approx(0.5)
    assert interval.low == pytest.approx(0.5)
    assert interval.high == pytest.approx(0.5)


def test_ratio_to_zero_has_no_estimate() -> None:
    assert np.isnan(paired_ratio_interval([1.0, 2.0], [0.0, 0.0]).estimate)


def test_median_over_scenarios_takes_the_middle_scenario() -> None:
    groups = [
        ([1.0, 1.0, 1.0], [4.0, 4.0, 4.0]),  # 0.25
        ([2.0, 2.0, 2.0], [4.0, 4.0, 4.0]),  # 0.5
        ([3.0, 3.0, 3.0], [1.0, 1.0, 1.0]),  # 3.0
    ]
    assert median_ratio_interval(groups) == Interval(0.5, 0.5, 0.5, 3)


def test_median_interval_widens_with_the_spread_inside_scenarios() -> None:
    steady = [([1.0] * 5, [2.0] * 5)] * 3
    noisy = [([0.5, 1.5, 1.0, 0.2, 1.8], [2.0] * 5)] * 3
    assert median_ratio_interval(steady).high == pytest.approx(0.5)
    wide = median_ratio_interval(noisy)
    assert wide.low < 0.5 < wide.high


def test_median_leaves_out_scenarios_without_a_ratio() -> None:
    groups = [([1.0, 1.0], [2.0, 2.0]), ([1.0, 1.0], [0.0, 0.0])]
    assert median_ratio_interval(groups).n == 1


def test_mismatched_pairs_and_non_numbers_are_refused() -> None:
    with pytest.raises(ValueError, match="same length"):
        paired_difference_interval([1.0, 2.0], [1.0])
    with pytest.raises(ValueError, match="finite"):
        mean_interval([1.0, float("nan")])
    with pytest.raises(ValueError, match="no samples"):
        mean_interval([])
