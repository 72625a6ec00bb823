"""The engine's latency description: knots of the wait/service mixture, spread into histograms, and replica groups."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from kubeagora.sim import latency as lat

KNOTS_MS = np.array([3.0, 20.0, 40.0, 52.0, 66.0, 95.0, 120.0, 140.0, 190.0])
"""Knots of some distribution, one per KNOT_LEVELS."""


def _histogram(knots_ms: np.ndarray, served: float = 1000.0) -> np.ndarray:
    """One row's histogram of `served` requests spread between `knots_ms` (no loss)."""
    return lat.knot_histogram(knots_ms.astype(np.float32)[:, None].copy(), np.array([served]), np.zeros(1),
                              np.zeros(1))[0]


def test_without_waiting_the_knots_are_the_lognormal_service_time_quantiles() -> None:
    cv = 0.8
    sigma = lat.lognormal_sigma(cv)
    table = lat.mixture_knot_table(cv)
    knots = table[lat.knot_row(np.zeros(1), np.ones(1))][0]
    levels = np.where(lat.KNOT_LEVELS[1:-1] > 0.6, 1.0 - lat.KNOT_PLACEMENT * (1.0 - lat.KNOT_LEVELS[1:-1]),
                      lat.KNOT_LEVELS[1:-1])
    exact = stats.lognorm.ppf(levels, sigma, scale=np.exp(-sigma * sigma / 2))
    np.testing.assert_allclose(knots[1:-1], exact, rtol=0.01)
    assert np.all(np.diff(table, axis=1) >= 0.0)


def test_when_everyone_waits_long_the_knots_follow_the_exponential_wait() -> None:
    table = lat.mixture_knot_table(0.5)
    ratio = 100.0  # waits 100 service times on average: the service time hardly matters
    knots = table[lat.knot_row(np.ones(1), np.array([ratio]))][0]
    level = 1.0 - lat.KNOT_PLACEMENT * (1.0 - 0.99)  # the 99 % knot's place
    assert knots[lat.KNOT_LEVELS.tolist().index(0.99)] == pytest.approx(1.0 - ratio * np.log(1.0 - level), rel=0.04)


def test_spreading_between_knots_conserves_the_requests_and_puts_each_level_at_its_knot() -> None:
    knots = KNOTS_MS
    hist = _histogram(knots)
    assert hist.sum() == pytest.approx(1000.0, rel=1e-9)
    assert hist.min() >= -1e-9
    # the cumulative mass at a knot is its level, up to what a bin's even spread misplaces (< 0.5 %)
    below = hist @ lat.mass_below_weights(knots).T / 1000.0
    np.testing.assert_allclose(below, lat.KNOT_LEVELS, atol=5e-3)
    assert np.all(np.diff(below) > 0.0)


def test_knots_that_fall_together_keep_their_mass() -> None:
    """A service with no traffic this step has all its knots at its offset."""
    hist = _histogram(np.full(lat.N_KNOTS, 42.0), served=7.0)
    assert hist.sum() == pytest.approx(7.0)
    assert hist[int(lat.bin_index(np.array([42.0]))[0])] == pytest.approx(7.0, rel=0.02)


def test_lost_packets_are_a_point_mass_a_retransmission_later_when_the_loss_matters() -> None:
    knots = np.linspace(20.0, 60.0, lat.N_KNOTS).astype(np.float32)[:, None]
    hist = lat.knot_histogram(knots.copy(), np.array([1000.0]), np.array([0.05]), np.array([240.0]))[0]
    assert hist[int(lat.point_bin(np.array([240.0]))[0])] == pytest.approx(50.0)
    quiet = lat.knot_histogram(knots.copy(), np.array([1000.0]), np.array([1e-4]), np.array([240.0]))[0]
    assert quiet[int(lat.point_bin(np.array([240.0]))[0])] == pytest.approx(0.0, abs=1e-9)
    assert quiet.sum() == pytest.approx(1000.0)


def test_tail_share_reads_the_knots_as_the_histogram_does() -> None:
    knots = KNOTS_MS
    hist = _histogram(knots)
    latencies = np.array([10.0, 35.0, 55.0, 63.0, 100.0, 150.0, 500.0])
    from_hist = 1.0 - hist @ lat.mass_below_weights(latencies).T / hist.sum()
    share = lat.tail_share(np.log(knots)[:, None], np.log(latencies)[:, None])[:, 0]
    np.testing.assert_allclose(share, from_hist, atol=3e-3)
    assert share[-1] == 0.0


def test_the_mixture_histogram_has_the_tail_of_a_simulated_mixture() -> None:
    """P(wait) 0.7, waits of 2 service times on average, cv 0.8, 30 ms of network: tail shares at the
    90th–99.5th percentiles within 8 % of a million draws (knots between levels, 5 % bins)."""
    rng = np.random.default_rng(5)
    mean_ms, offset_ms, p_wait, ratio, cv = 25.0, 30.0, 0.7, 2.0, 0.8
    sigma = lat.lognormal_sigma(cv)
    n = 1_000_000
    draws = offset_ms + mean_ms * (rng.lognormal(-sigma * sigma / 2, sigma, n)
                                   + (rng.random(n) < p_wait) * ratio * rng.exponential(1.0, n))
    knots = lat.mixture_knots_ms(lat.mixture_knot_table(cv), np.array([p_wait]), np.array([ratio * mean_ms]),
                                 np.array([mean_ms]), np.array([offset_ms]))
    hist = lat.knot_histogram(knots, np.array([1.0]), np.zeros(1), np.zeros(1))[0]
    levels = np.array([0.9, 0.93, 0.95, 0.96, 0.975, 0.985, 0.99, 0.995])
    x = np.quantile(draws, levels)
    share = 1.0 - hist @ lat.mass_below_weights(x).T
    np.testing.assert_allclose(share, 1.0 - levels, rtol=0.08)


def test_one_far_replica_among_many_gets_a_group_of_its_own() -> None:
    service = np.array([0, 0, 0, 0, 1, 1])
    weight = np.array([10.0, 10.0, 10.0, 10.0, 5.0, 5.0])
    served = weight.copy()
    offset = np.array([20.0, 20.0, 20.0, 80.0, 20.0, 21.0])  # replica 3 is 60 ms farther
    same = np.full(6, 25.0)
    groups = lat.replica_groups(service, weight, served, np.bincount(service, served), same, offset, np.full(6, 0.5),
                                np.full(6, 10.0), np.full(6, 0.6), 2)
    assert groups.service.tolist() == [0, 1, 0]
    assert groups.group.tolist() == [0, 1, 2]
    np.testing.assert_allclose(groups.offset_ms, [20.0, 20.5, 80.0])
    np.testing.assert_allclose(groups.served, [30.0, 10.0, 10.0])
    np.testing.assert_allclose(groups.stats[6], [3.0, 2.0, 1.0])  # effective replicas


def test_alike_replicas_stay_in_one_group() -> None:
    service = np.array([0, 0, 0])
    ones = np.ones(3)
    groups = lat.replica_groups(service, ones, ones, np.array([3.0]), np.array([25.0, 26.0, 24.0]),
                                np.array([20.0, 22.0, 21.0]), np.full(3, 0.5), np.full(3, 10.0), np.full(3, 0.6), 1)
    assert groups.service.tolist() == [0]
    assert groups.mean_ms[0] == pytest.approx(25.0)
