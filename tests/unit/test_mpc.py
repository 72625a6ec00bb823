"""The replica MPC: DPP once, re-solved; cold starts, pools and priorities shape the plan; the controller."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np
import pytest
from tests.unit.observations import advance, node, observation, web_service, with_replicas

from kubeagora.controllers.mpc import MpcController, MpcControllerSettings
from kubeagora.decision.calibration import CalibrationSettings
from kubeagora.decision.capacity import safe_replica_capacity_rps
from kubeagora.decision.mpc import (
    Mpc,
    MpcInputs,
    MpcSettings,
    bound_residual,
    make_mpc,
    pending_ready_by_step,
    resource_pools,
)
from kubeagora.model import NodeClass, Scale, Service

HORIZON = 6


def inputs(n_services: int = 1, n_pools: int = 1, **changes: Any) -> MpcInputs:
    """One or more web-like services: 100 req/s per replica, 2 Ready, cold start 2 steps, ample pool."""
    s, p, h = n_services, n_pools, HORIZON
    base = MpcInputs(
        demand_rps=np.full((s, h), 150.0), ready_replicas=np.full(s, 2.0), pending_replicas=np.zeros(s),
        pending_ready_replicas=np.zeros((s, h)), safe_capacity_rps=np.full(s, 100.0),
        cold_start_steps=np.full(s, 2, dtype=np.int64), min_replicas=np.ones(s), max_replicas=np.full(s, 50.0),
        priority_weight=np.ones(s), change_cost=np.full(s, 0.0001), energy_cost_per_replica_hour=np.full(s, 0.001),
        pool_usage=np.full((p, s), 0.5), pool_capacity=np.full(p, 100.0), price_per_unit_hour=np.full(p, 0.04),
    )
    return replace(base, **changes)


@pytest.fixture(scope="module")
def mpc_one() -> Any:
    return make_mpc(1, 1, MpcSettings(horizon_steps=HORIZON))


def test_the_problem_is_built_once_as_dpp(mpc_one: Any) -> None:
    assert mpc_one.problem.is_dcp(dpp=True)
    assert {p.name() for p in mpc_one.problem.parameters()} >= {
        "demand_rps", "ready_replicas", "pending_replicas", "safe_capacity_rps_0", "cold_start_onehot_0",
        "pool_capacity", "price_per_unit_hour"}


def test_parameters_in_blocks_of_services_compile_the_same_program() -> None:
    """The Parameters that multiply variables come in blocks of services so that compiling stays linear in
    the services (one block over 10,000 services asked cvxpy for 47.7 GiB); the program must not change."""
    rng = np.random.default_rng(7)
    s, p = 10, 2
    pending = rng.integers(0, 3, s).astype(float)
    cold = rng.integers(0, HORIZON + 2, s)
    varied = inputs(s, p, demand_rps=rng.uniform(0, 600, (s, HORIZON)), ready_replicas=rng.integers(0, 5, s) * 1.0,
                    pending_replicas=pending, pending_ready_replicas=pending_ready_by_step(pending, cold, HORIZON),
                    safe_capacity_rps=rng.uniform(20, 200, s), cold_start_steps=cold,
                    pool_usage=rng.uniform(0, 1, (p, s)), pool_capacity=np.array([6.0, 40.0]))
    settings = MpcSettings(horizon_steps=HORIZON)
    whole = make_mpc(s, p, settings).solve(varied)
    blocked_mpc = Mpc(s, p, settings, parameter_block=3)
    assert len(blocked_mpc.blocks) == 4
    blocked = blocked_mpc.solve(varied)
    assert whole.status == blocked.status == "optimal"
    for name in ("setpoints", "replicas", "ready_replicas", "shortfall_rps", "pool_prices", "pool_usage"):
        np.testing.assert_array_equal(getattr(blocked, name), getattr(whole, name), err_msg=name)
    assert whole.pool_prices.max() > 0, "the first pool must bind, or the duals were not compared"


def test_enough_replicas_for_the_demand_and_none_to_spare(mpc_one: Any) -> None:
    plan = mpc_one.solve(inputs(demand_rps=np.full((1, HORIZON), 730.0)))
    assert plan.status == "optimal"
    assert plan.setpoints[0] == 8  # 730 req/s at 100 req/s per replica
    # the two Ready replicas cover 200 req/s until the new ones are Ready two steps later
    np.testing.assert_allclose(plan.shortfall_rps[0, :2], 530.0, atol=1e-3)
    np.testing.assert_allclose(plan.shortfall_rps[0, 2:], 0.0, atol=1e-3)
    # re-solving the same compiled problem with new values follows the new demand down
    lower = mpc_one.solve(inputs(demand_rps=np.full((1, HORIZON), 120.0), ready_replicas=np.array([8.0])))
    assert lower.setpoints[0] == 2


def test_replicas_needed_later_start_a_cold_start_ahead(mpc_one: Any) -> None:
    demand = np.array([[150.0, 150.0, 150.0, 600.0, 600.0, 600.0]])
    plan = mpc_one.solve(inputs(demand_rps=demand, change_cost=np.array([0.0])))
    assert plan.setpoints[0] == 2, "nothing is needed yet: no replica is paid for early"
    assert plan.replicas[0, 1] == pytest.approx(6.0, abs=1e-3), "started one step early, Ready at step 3"
    np.testing.assert_allclose(plan.shortfall_rps, 0.0, atol=1e-3)


def test_pending_replicas_count_once_they_are_ready(mpc_one: Any) -> None:
    pending = np.array([4.0])
    plan = mpc_one.solve(inputs(demand_rps=np.full((1, HORIZON), 590.0), pending_replicas=pending,
                                pending_ready_replicas=pending_ready_by_step(pending, np.array([2]), HORIZON)))
    assert plan.setpoints[0] == 6, "2 Ready + 4 starting cover 590 req/s once the 4 are Ready"


def test_a_full_pool_goes_to_the_higher_priority_service_and_gets_a_price() -> None:
    mpc = make_mpc(2, 1, MpcSettings(horizon_steps=HORIZON))
    tight = inputs(2, 1, demand_rps=np.full((2, HORIZON), 1000.0), ready_replicas=np.full(2, 10.0),
                   pool_capacity=np.array([8.0]), priority_weight=np.array([1.0, 3.0]),
                   cold_start_steps=np.zeros(2, dtype=np.int64))
    plan = mpc.solve(tight)
    # 8 cores = 16 replicas of 0.5 core: the priority-3 service gets its 10, the other the rest
    assert plan.setpoints[1] == 10
    assert plan.setpoints[0] == 6
    assert plan.shortfall_rps[0].min() == pytest.approx(400.0, abs=1.0)
    assert np.all(plan.pool_prices > 0.0), "a binding pool has a positive shadow price"
    ample = mpc.solve(replace(tight, pool_capacity=np.array([100.0])))
    np.testing.assert_allclose(ample.pool_prices, 0.0, atol=1e-6)
    assert list(ample.setpoints) == [10, 10]


def test_max_replicas_caps_the_plan_and_the_rest_is_reported_as_shortfall(mpc_one: Any) -> None:
    plan = mpc_one.solve(inputs(demand_rps=np.full((1, HORIZON), 900.0), max_replicas=np.array([5.0])))
    assert plan.setpoints[0] == 5
    assert plan.shortfall_rps[0, -1] == pytest.approx(400.0, abs=1e-2)


def test_shapes_are_checked_with_a_clear_message(mpc_one: Any) -> None:
    with pytest.raises(ValueError, match=r"demand_rps must have shape \(1, 6\)"):
        mpc_one.solve(inputs(demand_rps=np.zeros((2, HORIZON))))
    with pytest.raises(ValueError, match="min_replicas must not exceed"):
        mpc_one.solve(inputs(min_replicas=np.array([9.0]), max_replicas=np.array([3.0])))
    with pytest.raises(ValueError, match="horizon_steps"):
        MpcSettings(horizon_steps=0)


def test_a_learned_residual_is_bounded() -> None:
    setpoints = np.array([5])
    assert list(bound_residual(setpoints, setpoints + 10, 2, np.array([1]), np.array([50]))) == [7]
    assert list(bound_residual(setpoints, setpoints - 10, 2, np.array([1]), np.array([50]))) == [3]
    assert list(bound_residual(setpoints, setpoints + 10, 2, np.array([1]), np.array([6]))) == [6]
    with pytest.raises(ValueError, match="shape"):
        bound_residual(setpoints, np.array([1, 2]), 2, np.array([1]), np.array([50]))


def test_safe_capacity_shrinks_with_tighter_slos_and_slower_replicas() -> None:
    loose, tight, slow = safe_replica_capacity_rps(
        np.array([25.0, 25.0, 50.0]), np.full(3, 10.0), np.full(3, 4.0), np.full(3, 0.8),
        np.array([150.0, 60.0, 150.0]), np.array([250.0, 100.0, 250.0]))
    assert 0 < tight < loose < 160.0  # 160 req/s is a web replica flat out
    assert slow < loose


def test_pools_are_cpu_and_accelerators_per_region() -> None:
    nodes = (node("a", "region-0", cores=8.0), node("b", "region-1", cores=4.0),
             node("g", "region-1", node_class=NodeClass.GPU, cores=16.0, accelerators=4))
    obs = replace(observation(nodes=nodes), regions=("region-0", "region-1"), ingress_rtt_ms=np.full((2, 3), 10.0))
    pools = resource_pools(obs)
    assert pools.names == ("region-0/cpu", "region-1/cpu", "region-1/accelerators")
    # the GPU node's cores serve its accelerators, not the CPU pool
    np.testing.assert_allclose(pools.capacity, [8.0, 4.0, 4.0])
    down = resource_pools(replace(obs, node_ready=np.array([True, False, True])))
    np.testing.assert_allclose(down.capacity, [8.0, 0.0, 4.0])


def _loaded(rps: float, seconds: float, ready: int = 1, cpu_measured: bool = True) -> Any:
    """A web service offered `rps` for `seconds`; its replicas served what they could (160 req/s each) and
    burnt the CPU the declared 25 ms per request take (plus the idle share), unless `cpu_measured` is off."""
    obs = observation(services=(web_service(),), ready=ready)
    served = min(rps, 160.0 * ready) * seconds
    idle = CalibrationSettings().idle_cpu_fraction
    cpu_s = 0.5 * (idle * ready * seconds + (1.0 - idle) * served * 0.025 / 4) if cpu_measured else 0.0
    return obs, advance(obs, seconds, arrived_total=rps * seconds, arrival_rps=rps, served_total=served,
                        busy_core_seconds_total=cpu_s)


def test_the_controller_scales_for_measured_load_and_says_why() -> None:
    controller = MpcController()
    start, later = _loaded(1000.0, 15.0)
    actions, state = controller.decide(later, controller.initial_state(start))
    assert len(actions) == 1
    action = actions[0]
    assert isinstance(action, Scale)
    # 1000 req/s at ~125 req/s per web replica within its SLO
    assert 8 <= action.replicas <= 11
    assert "forecast 1000 req/s" in action.reason
    assert "safe capacity" in action.reason
    assert state.last_plan is not None
    assert state.pool_names == ("region-0/cpu",)


def test_a_service_whose_service_time_was_never_measured_gets_headroom() -> None:
    """Without a CPU reading the calibration keeps its prior (±40 %): the plan carries one standard deviation
    of it as headroom; once the declared service time is confirmed, the plan shrinks to what it needs."""
    controller = MpcController()
    start, measured = _loaded(1000.0, 15.0)
    _, unmeasured = _loaded(1000.0, 15.0, cpu_measured=False)
    (confirmed,), _ = controller.decide(measured, controller.initial_state(start))
    (cautious,), state = controller.decide(unmeasured, controller.initial_state(start))
    assert isinstance(confirmed, Scale)
    assert isinstance(cautious, Scale)
    assert cautious.replicas >= confirmed.replicas + 2
    assert state.calibration is not None
    assert state.calibration.service_updates.tolist() == [0]
    without = MpcController(MpcControllerSettings(calibration=None))
    (declared,), _ = without.decide(unmeasured, without.initial_state(start))
    assert isinstance(declared, Scale)
    assert declared.replicas == pytest.approx(confirmed.replicas, abs=1)


def test_the_controller_leaves_a_quiet_service_alone() -> None:
    controller = MpcController()
    start, later = _loaded(50.0, 15.0)
    actions, _ = controller.decide(later, controller.initial_state(start))
    assert actions == []


def test_the_controller_plans_gpu_services_in_the_accelerator_pool() -> None:
    gpu_service = Service("model", {NodeClass.GPU: 18.0}, cpu_request=2.0, accelerator_request=1, concurrency=8,
                          cold_start_s={NodeClass.GPU: 25.0})
    nodes = (node("gpu", node_class=NodeClass.GPU, cores=32.0, accelerators=2),)
    obs = with_replicas(observation(services=(gpu_service,), nodes=nodes), [(0, 0, True)])
    later = advance(obs, 15.0, arrived_total=3000.0 * 15, arrival_rps=3000.0)
    controller = MpcController()
    actions, state = controller.decide(later, controller.initial_state(obs))
    # only two accelerators: the plan stops there and reports the rest as shortfall
    assert [a.replicas for a in actions if isinstance(a, Scale)] == [2]
    assert state.last_plan is not None
    assert state.last_plan.shortfall_rps[0, -1] > 1000.0


def _energy_cost_by_definition(controller: MpcController, obs: Any) -> np.ndarray:
    """Each service's energy cost on the first node, in node order, of those it runs fastest on."""
    cfg = controller.settings
    out = np.zeros(len(obs.services))
    for i, service in enumerate(obs.services):
        candidates = [n for n in obs.nodes if service.can_run_on(n.node_class)]
        if not candidates:
            continue
        fastest = min(candidates, key=lambda n: service.service_time_ms[n.node_class] / n.speed_factor)
        share = (service.accelerator_request / fastest.accelerators if fastest.accelerators
                 and service.accelerator_request else service.cpu_request / fastest.cpu_cores)
        g_per_kwh = obs.region_carbon_g_per_kwh.get(fastest.region, 0.0)
        price_per_kwh = cfg.electricity_per_kwh + cfg.carbon_price_per_tonne * g_per_kwh / 1e6
        out[i] = (fastest.peak_power_w - fastest.idle_power_w) * min(share, 1.0) / 1000.0 * price_per_kwh
    return out


@pytest.mark.parametrize("seed", [1, 2])
def test_energy_cost_per_replica_hour_is_the_fastest_nodes_as_defined(seed: int) -> None:
    from kubeagora.sim.engine import Engine
    from kubeagora.sim.scenario import compile_scenario, load_scenario

    scenario = compile_scenario(*load_scenario("diurnal-mixed"), seed=seed)
    obs = Engine(scenario).observe()
    rng = np.random.default_rng(seed)
    # uneven speeds, with ties (two speeds only): the first of the fastest nodes must win
    speeds = rng.choice([0.8, 1.25], size=len(obs.nodes))
    obs = replace(obs, nodes=tuple(replace(n, speed_factor=float(v)) for n, v in zip(obs.nodes, speeds, strict=True)),
                  region_carbon_g_per_kwh={r: float(rng.uniform(50, 600)) for r in obs.regions})
    controller = MpcController()
    got = controller.energy_cost_per_replica_hour(obs)
    assert np.array_equal(got, _energy_cost_by_definition(controller, obs))
    assert np.count_nonzero(got) > 0
