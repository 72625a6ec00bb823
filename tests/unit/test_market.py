"""Market clearing: hand-solved instances, and the market against cvxpy's centralised optimum and duals."""

from __future__ import annotations

from dataclasses import replace

import cvxpy as cp
import numpy as np
import pytest
from hypothesis import given, seed, settings
from hypothesis import strategies as st
from tests.unit.observations import cpu_node, observation, web_service

from kubeagora.coordination.market import (
    MarketClearing,
    ReplicaDemands,
    ResourcePools,
    best_response,
    clear_market,
    demands_from_observation,
    dual_value,
    pools_from_observation,
    utility,
)
from kubeagora.model import Node, NodeClass, Service, Tier


def demands(value: list[float], needed: list[float], usage: list[list[float]], *,
            min_replicas: list[float] | None = None, max_replicas: list[float] | None = None) -> ReplicaDemands:
    n = len(value)
    return ReplicaDemands(
        services=tuple(f"svc-{i}" for i in range(n)),
        value_per_replica=np.array(value, dtype=np.float64),
        needed_replicas=np.array(needed, dtype=np.float64),
        min_replicas=np.array(min_replicas or [0.0] * n, dtype=np.float64),
        max_replicas=np.array(max_replicas or [50.0] * n, dtype=np.float64),
        usage_per_replica=np.array(usage, dtype=np.float64),
    )


def pools(*capacity: float) -> ResourcePools:
    return ResourcePools(tuple(f"pool-{j}" for j in range(len(capacity))), np.array(capacity, dtype=np.float64))


def centralised(d: ReplicaDemands, p: ResourcePools) -> tuple[float, np.ndarray, np.ndarray]:
    """cvxpy's optimum: (total utility, allocation, capacity duals)."""
    x = cp.Variable(len(d.services))
    n, w = d.needed_replicas, d.value_per_replica
    capacity = d.usage_per_replica.T @ x <= p.capacity
    problem = cp.Problem(cp.Maximize(cp.sum(cp.multiply(w * n, cp.log(n + x)))),
                         [capacity, x >= d.min_replicas, x <= d.max_replicas])
    problem.solve(solver=cp.CLARABEL)
    assert problem.status == cp.OPTIMAL
    allocation = np.clip(np.asarray(x.value), d.min_replicas, d.max_replicas)
    return float(np.sum(utility(d, allocation))), allocation, np.asarray(capacity.dual_value)


def assert_matches_the_optimum(d: ReplicaDemands, p: ResourcePools, market: MarketClearing) -> None:
    optimum, allocation, duals = centralised(d, p)
    assert market.converged
    assert market.utility == pytest.approx(optimum, rel=0.02)
    assert (market.replicas @ d.usage_per_replica <= p.capacity + 1e-9).all()
    # the prices are dual optimal: the dual function there equals the optimum (strong duality)
    assert dual_value(d, p, market.price_per_unit) == pytest.approx(optimum, rel=0.02, abs=1e-6)
    # and equal to cvxpy's duals wherever those are unique: the pools whose price some unbounded
    # buyer's demand pins down (a pool whose buyers all sit at a bound has a range of right prices)
    interior = (allocation > d.min_replicas + 1e-3) & (allocation < d.max_replicas - 1e-3)
    tight = allocation @ d.usage_per_replica > p.capacity * (1 - 1e-6)
    pinned = d.usage_per_replica[interior][:, tight]
    if np.linalg.matrix_rank(pinned) == tight.sum():
        scale = max(float(duals.max()), 1.0)
        np.testing.assert_allclose(market.price_per_unit, duals, rtol=0.02, atol=0.02 * scale)


# ---------------------------------------------------------------------------- solved by hand
def test_two_equal_services_split_a_pool_and_the_price_is_their_marginal_value() -> None:
    # 10 cores, 1 core a replica; each needs 5 and values the first replica at 2:
    # 5 each, and the price is U'(5) = 2 / (1 + 5/5) = 1 per core
    d = demands([2.0, 2.0], [5.0, 5.0], [[1.0], [1.0]])
    market = clear_market(d, pools(10.0))
    np.testing.assert_allclose(market.replicas, [5.0, 5.0], rtol=1e-3)
    assert market.price_per_unit[0] == pytest.approx(1.0, rel=1e-3)
    assert market.prices() == {"pool-0": pytest.approx(1.0, rel=1e-3)}
    assert_matches_the_optimum(d, pools(10.0), market)


def test_priority_buys_capacity_and_a_minimum_is_always_kept() -> None:
    # values 3 and 1: x₁ = 5(3/λ − 1), x₂ = 5(1/λ − 1), x₁ + x₂ = 10 → λ = 1, x = (10, 0)
    d = demands([3.0, 1.0], [5.0, 5.0], [[1.0], [1.0]])
    market = clear_market(d, pools(10.0))
    np.testing.assert_allclose(market.replicas, [10.0, 0.0], atol=1e-3)
    assert market.price_per_unit[0] == pytest.approx(1.0, rel=1e-3)
    # with min_replicas 1 the low-priority service keeps one: x₁ = 9, λ = 3 / (1 + 9/5)
    floored = replace(d, min_replicas=np.array([0.0, 1.0]))
    market = clear_market(floored, pools(10.0))
    np.testing.assert_allclose(market.replicas, [9.0, 1.0], atol=1e-3)
    assert market.price_per_unit[0] == pytest.approx(3.0 / 2.8, rel=1e-3)


def test_spare_capacity_is_free_and_everyone_gets_their_maximum() -> None:
    d = demands([2.0, 1.0], [5.0, 5.0], [[1.0], [1.0]], max_replicas=[8.0, 8.0])
    market = clear_market(d, pools(100.0))
    assert market.price_per_unit[0] == 0.0
    np.testing.assert_allclose(market.replicas, [8.0, 8.0])
    assert market.sweeps == 1


def test_a_gpu_service_pays_for_cores_and_accelerators_in_its_region() -> None:
    # pools: cpu:r0, accelerators:r0, cpu:r1. svc-0 web in r0, svc-1 llm in r0 (1 core + 1 GPU), svc-2 web in r1
    d = demands([1.0, 4.0, 1.0], [6.0, 3.0, 4.0],
                [[0.5, 0.0, 0.0], [1.0, 1.0, 0.0], [0.0, 0.0, 0.5]], min_replicas=[1.0, 1.0, 1.0])
    p = pools(6.0, 2.0, 3.0)
    market = clear_market(d, p)
    assert_matches_the_optimum(d, p, market)
    assert market.replicas[1] == pytest.approx(2.0, rel=1e-3)  # two GPUs, both taken: the GPU is scarce
    assert market.price_per_unit[1] > 0


def test_warm_started_from_the_clearing_prices_the_market_clears_at_once() -> None:
    d = demands([2.0, 1.0, 3.0], [4.0, 6.0, 2.0], [[1.0, 0.0], [0.5, 0.5], [0.0, 2.0]])
    p = pools(5.0, 4.0)
    cold = clear_market(d, p)
    warm = clear_market(d, p, initial_prices=cold.price_per_unit)
    assert warm.sweeps == 1
    np.testing.assert_allclose(warm.replicas, cold.replicas)


def test_minimums_that_overfill_a_pool_are_reported_not_hidden() -> None:
    d = demands([1.0, 1.0], [2.0, 2.0], [[1.0], [1.0]], min_replicas=[4.0, 4.0])
    market = clear_market(d, pools(6.0))
    assert not market.converged
    assert market.max_excess_fraction == pytest.approx(2.0 / 6.0)


def test_best_response_buys_until_marginal_value_equals_the_bundle_price() -> None:
    d = demands([2.0], [5.0], [[1.0, 2.0]])
    # bundle price 1 × 0.2 + 2 × 0.1 = 0.4: 2 / (1 + x/5) = 0.4 → x = 20
    assert best_response(d, np.array([0.2, 0.1]))[0] == pytest.approx(20.0)
    assert best_response(d, np.array([0.0, 0.0]))[0] == 50.0  # free: as many as allowed


def test_demands_must_be_shaped_one_row_per_service() -> None:
    with pytest.raises(ValueError, match="needed_replicas has shape"):
        replace(demands([1.0, 1.0], [1.0, 1.0], [[1.0], [1.0]]), needed_replicas=np.ones(3))


# ---------------------------------------------------------------------------- from an Observation
def test_pools_and_demands_come_from_the_observation() -> None:
    gpu = Node("gpu-0", Tier.CLOUD, "region-1", "region-1-z0", NodeClass.GPU, 16.0, 64.0, accelerators=2)
    llm = Service("llm", {NodeClass.GPU: 80.0}, cpu_request=2.0, accelerator_request=1,
                  origin_region="region-1", priority_weight=3.0)
    obs = observation(services=(web_service(), llm), nodes=(cpu_node(cores=8.0), gpu))
    obs = replace(obs, regions=("region-0", "region-1"), ingress_rtt_ms=np.full((2, 2), 20.0))
    p = pools_from_observation(obs)
    assert dict(zip(p.names, p.capacity, strict=True)) == {
        "cpu:region-0": 8.0, "accelerators:region-0": 0.0, "cpu:region-1": 16.0, "accelerators:region-1": 2.0}
    d = demands_from_observation(obs, [4.0, 3.0], p)
    np.testing.assert_allclose(d.usage_per_replica, [[0.5, 0, 0, 0], [0, 0, 2.0, 1.0]])
    np.testing.assert_allclose(d.value_per_replica, [1.0, 3.0])
    market = clear_market(d, p)
    assert market.converged
    assert market.replicas[1] == pytest.approx(2.0, rel=1e-3)  # two accelerators in region-1
    assert market.prices()["accelerators:region-1"] > 0
    # 8 cores hold 16 web replicas (fewer than its 50): worth U'(16) = 1 / (1 + 16/4) = 0.2, i.e. 0.4 a core
    assert market.replicas[0] == pytest.approx(16.0, rel=1e-3)
    assert market.prices()["cpu:region-0"] == pytest.approx(0.4, rel=1e-3)
    assert market.prices()["cpu:region-1"] == 0.0  # 16 cores, the llm's 2 replicas take 4


# ---------------------------------------------------------------------------- against cvxpy, generated
@st.composite
def market_instances(draw: st.DrawFn) -> tuple[ReplicaDemands, ResourcePools]:
    """1–3 regions, each a CPU and an accelerator pool; 2–25 services, a fifth of them on accelerators."""
    regions = draw(st.integers(1, 3))
    services = draw(st.integers(2, 25))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    region = rng.integers(0, regions, services)
    on_accelerators = rng.random(services) < 0.2
    usage = np.zeros((services, 2 * regions))
    usage[np.arange(services), 2 * region] = rng.choice([0.25, 0.5, 1.0, 2.0, 4.0], services)
    usage[on_accelerators, 2 * region[on_accelerators] + 1] = rng.choice([1.0, 2.0], int(on_accelerators.sum()))
    needed = rng.uniform(1.0, 20.0, services)
    min_replicas = rng.integers(0, 3, services).astype(np.float64)
    d = ReplicaDemands(
        services=tuple(f"svc-{i}" for i in range(services)),
        value_per_replica=rng.uniform(0.5, 5.0, services),
        needed_replicas=needed,
        min_replicas=min_replicas,
        max_replicas=min_replicas + rng.uniform(5.0, 60.0, services),
        usage_per_replica=usage,
    )
    # from scarce (a tenth of the need beyond the minimums) to plentiful (1.5×); the minimums always fit
    tightness = draw(st.floats(0.1, 1.5))
    floor = min_replicas @ usage
    capacity = np.maximum(floor + tightness * (needed @ usage), 1.05 * floor + 0.1)
    return d, ResourcePools(tuple(f"pool-{j}" for j in range(2 * regions)), capacity)


@seed(20240611)
@settings(max_examples=60, deadline=None, database=None)
@given(market_instances())
def test_the_market_reaches_the_centralised_optimum_and_its_duals(
    instance: tuple[ReplicaDemands, ResourcePools],
) -> None:
    d, p = instance
    assert_matches_the_optimum(d, p, clear_market(d, p))
