"""The probability that a window's p95/p99 exceeded target: the scatter model and its pieces."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from kubeagora.sim import verdict


def test_correlation_time_of_a_rare_level_is_the_relaxation_time_and_shrinks_for_common_ones() -> None:
    t0 = np.full(3, 2.0)
    tau = verdict.correlation_time_s(np.array([1e-9, 0.5, 1.0 - 1e-9]), t0)
    assert tau[0] == pytest.approx(2.0)
    assert tau[1] == pytest.approx(2.0 * (1.0 - np.log(2.0)))
    assert tau[2] == pytest.approx(0.0, abs=1e-6)


def test_time_average_factor_is_one_for_short_windows_and_two_tau_over_t_for_long_ones() -> None:
    factor = verdict.time_average_factor(10.0, np.array([1e6, 0.01]))
    assert factor[0] == pytest.approx(1.0, abs=1e-4)
    assert factor[1] == pytest.approx(2.0 * 0.01 / 10.0, rel=1e-3)


def test_window_scatter_of_a_reflected_brownian_motion_matches_the_formula() -> None:
    """Simulate the RBM (drift −1, variance 1: t₀ = 1) and measure the spread of the share of time it
    spends above a level in windows of 5: p(1 − p) κ(T/τ) with τ from the Poisson equation."""
    rng = np.random.default_rng(11)
    dt, window, windows, paths = 0.005, 5.0, 40, 300
    steps = int(window / dt)
    w = rng.exponential(0.5, paths)  # the stationary law
    above = np.zeros((windows, paths))
    level = 0.6
    for k in range(windows):
        count = np.zeros(paths)
        for _ in range(steps):
            w = np.abs(w - dt + np.sqrt(dt) * rng.standard_normal(paths))
            count += w > level
        above[k] = count / steps
    p = float(above.mean())
    predicted = p * (1 - p) * verdict.time_average_factor(window, verdict.correlation_time_s(np.array([p]),
                                                                                             np.ones(1)))[0]
    assert above.std() == pytest.approx(np.sqrt(predicted), rel=0.15)


def test_exceed_probability_is_the_gamma_tail() -> None:
    mean, var = np.array([0.03, 0.08]), np.array([0.0004, 0.001])
    shape, scale = mean**2 / var, var / mean
    expected = stats.gamma.sf(0.05, shape, scale=scale)
    np.testing.assert_allclose(verdict.exceed_probability(mean, var, 0.05), expected, rtol=1e-9)


def test_without_scatter_the_verdict_is_the_expected_share_against_the_level() -> None:
    p = verdict.exceed_probability(np.array([0.02, 0.06, 0.0]), np.zeros(3), 0.05)
    assert p.tolist() == [0.0, 1.0, 0.0]


def test_violation_probability_rises_with_the_share_above_target() -> None:
    shares = np.array([0.001, 0.02, 0.04, 0.05, 0.06, 0.1, 0.3])
    var = (0.5 * shares) ** 2
    p = verdict.violation_probability(shares, var, shares / 10.0, var / 100.0)
    assert np.all(np.diff(p) > 0.0)
    assert p[0] < 1e-6
    assert p[-1] > 0.99


def test_pair_tail_table_matches_draws() -> None:
    rng = np.random.default_rng(3)
    cv, ratio = 0.8, 2.0
    sigma = float(np.sqrt(np.log1p(cv * cv)))
    n = 400_000
    z = rng.lognormal(-sigma * sigma / 2, sigma, (2, n))
    draws = ratio * rng.exponential(1.0, n) + z.min(axis=0)
    levels = np.array([2.0, 5.0, 9.0])
    table = verdict.pair_tail_table(cv).ravel()
    got = verdict.pair_tail(table, np.zeros(3, np.int64), np.full(3, ratio), levels)
    np.testing.assert_allclose(got, [(draws > v).mean() for v in levels], rtol=0.05)


def test_stationary_variance_is_that_of_a_hard_threshold_when_service_times_do_not_blur_it() -> None:
    """With no wait the conditional share is g(0) for everyone: no variance; with every request waiting
    and min(S₁, S₂) as likely above the threshold as S, E[g²] = f and Var = f(1 − f)."""
    assert verdict.stationary_variance(np.array([0.04]), np.array([0.04]), np.zeros(1), np.zeros(1))[0] == 0.0
    f = 0.04
    assert verdict.stationary_variance(np.array([f]), np.zeros(1), np.ones(1), np.array([f]))[0] == pytest.approx(
        f * (1 - f))
