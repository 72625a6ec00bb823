"""Online calibration: it finds the true service times, interference and cold starts, and knows how well."""

from __future__ import annotations

from dataclasses import replace
from itertools import pairwise

import numpy as np
import pytest
from tests.unit.observations import cpu_node, observation, web_service
from tests.unit.sim_helpers import small_scenario, uniform_world

from kubeagora.controllers.mpc import MpcController, MpcControllerState
from kubeagora.controllers.registry import make_controller
from kubeagora.decision import calibration as cal
from kubeagora.model import NODE_CLASSES, NodeClass, Observation, Scale
from kubeagora.sim.engine import Engine
from kubeagora.sim.scenario import compile_scenario, load_scenario

CPU = NODE_CLASSES.index(NodeClass.CPU)
IDLE = cal.CalibrationSettings().idle_cpu_fraction
BETA_CPU = float(cal.NOMINAL_BETA[CPU])


def synthetic_interval(obs: Observation, rng: np.random.Generator, theta: float, interference: float,
                       seconds: float = 15.0) -> Observation:
    """The next observation of one web service whose replicas fill one CPU node, as the world (θ, β ×
    interference) makes it: a random load, the requests served, the CPU they burnt (busy slots at native
    concurrency + the pods' idle share) and the node's utilisation that follows."""
    service = obs.services[0]
    replicas = int(obs.ready_replicas[0])
    busy = float(rng.uniform(0.1, 0.9))
    utilisation = IDLE + (1.0 - IDLE) * busy
    true_ms = service.service_time_ms[NodeClass.CPU] * theta * (1.0 + BETA_CPU * interference * utilisation**2)
    true_ms *= float(rng.lognormal(0.0, 0.02))  # what one interval's noise does
    served = busy * replicas * service.concurrency * 1000.0 / true_ms * seconds
    cpu_s = service.cpu_request * replicas * utilisation * seconds
    return replace(obs, time_s=obs.time_s + seconds, served_total=obs.served_total + served,
                   arrived_total=obs.arrived_total + served,
                   busy_core_seconds_total=obs.busy_core_seconds_total + cpu_s,
                   node_utilization=np.array([utilisation]))


def one_full_node(replicas: int) -> Observation:
    service = web_service()
    return observation(services=(service,), nodes=(cpu_node(cores=replicas * service.cpu_request),), ready=replicas)


def test_the_estimator_converges_to_the_true_service_time_and_interference() -> None:
    rng = np.random.default_rng(3)
    obs = one_full_node(4)
    state = cal.initial_state(obs)
    sd_before = cal.service_time_factor_sd(state)[0, CPU]
    for _ in range(120):
        obs = synthetic_interval(obs, rng, theta=1.3, interference=1.8)
        state = cal.observe(state, obs)
    # one service on one node: only θ × the node's slowness is identifiable, and that is what it finds
    product = cal.service_time_factor(state)[0, CPU] * state.node_slowness[0]
    assert product == pytest.approx(1.3, rel=0.04)
    assert cal.replica_service_ms(state, replace(obs, node_utilization=np.array([0.0])))[0] == pytest.approx(
        1.3 * 25.0, rel=0.04)
    assert cal.interference_factor(state)[CPU] == pytest.approx(1.8, rel=0.15)
    assert cal.service_time_factor_sd(state)[0, CPU] < 0.2 * sd_before
    # classes it never ran on keep the prior
    gpu = NODE_CLASSES.index(NodeClass.GPU)
    assert cal.service_time_factor(state)[0, gpu] == 1.0
    assert cal.service_time_factor_sd(state)[0, gpu] == pytest.approx(cal.CalibrationSettings().prior_sd)


def test_uncertainty_shrinks_with_data() -> None:
    rng = np.random.default_rng(5)
    obs = one_full_node(2)
    at_half_load = replace(obs, node_utilization=np.array([0.5]))
    state = cal.initial_state(obs)
    spreads = [float(cal.relative_uncertainty(state, at_half_load)[0])]
    for _ in range(20):
        obs = synthetic_interval(obs, rng, theta=0.8, interference=1.0)
        state = cal.observe(state, obs)
        spreads.append(float(cal.relative_uncertainty(state, at_half_load)[0]))
    # the prior (±40 % on the service's terms and on its node) until the first measurement
    assert spreads[0] > cal.CalibrationSettings().prior_sd
    assert all(later < earlier for earlier, later in pairwise(spreads[:4]))
    # down to the floor the random-walk drift keeps (a world that changes must stay learnable)
    assert spreads[20] < spreads[10] < spreads[5] < spreads[1]
    assert spreads[20] < 0.05
    assert min(spreads) > cal.CalibrationSettings().drift_sd


def test_too_few_requests_teach_nothing_and_a_wild_interval_moves_the_belief_only_so_far() -> None:
    obs = observation(services=(web_service(),), ready=2)
    state = cal.initial_state(obs)
    quiet = replace(obs, time_s=15.0, served_total=obs.served_total + 5.0,
                    busy_core_seconds_total=obs.busy_core_seconds_total + 10.0)
    assert cal.service_time_factor(cal.observe(state, quiet))[0, CPU] == 1.0
    # a single interval claiming 20× the declared service time (a pod crash, a burst of starts)
    service = obs.services[0]
    served = 5000.0
    cpu_s = service.cpu_request * (1 - IDLE) * served * 20 * 25.0 / 1000.0 / service.concurrency
    wild = replace(obs, time_s=15.0, served_total=obs.served_total + served,
                   busy_core_seconds_total=obs.busy_core_seconds_total + cpu_s)
    assert cal.service_time_factor(cal.observe(state, wild))[0, CPU] < 2.5


def test_cold_starts_are_learnt_from_pods_turning_ready() -> None:
    obs = observation(services=(web_service(),), ready=1)
    obs = replace(obs, replica_started_s=np.array([0.0]), replica_ready_s=np.array([0.0]))
    state = cal.initial_state(obs)
    declared = web_service().cold_start_on(NodeClass.CPU)
    t = 0.0
    for k in range(6):
        t += 60.0
        # one more pod, created 40 s ago, turned Ready 2.5 × its declared start after creation
        started = np.append(obs.replica_started_s, t - 40.0)  # type: ignore[arg-type]
        ready_at = np.append(obs.replica_ready_s, t - 40.0 + 2.5 * declared)  # type: ignore[arg-type]
        obs = replace(obs, time_s=t, replica_service=np.zeros(k + 2, np.int64),
                      replica_node=np.zeros(k + 2, np.int64), replica_ready=np.ones(k + 2, bool),
                      ready_replicas=np.array([k + 2]), replica_started_s=started, replica_ready_s=ready_at)
        state = cal.observe(state, obs)
    assert state.cold_samples[0, CPU] == 6, "each pod counted once, the warm one (ready at creation) never"
    assert cal.cold_start_factor(state)[0, CPU] == pytest.approx(2.5, rel=0.05)
    assert cal.cold_start_s(state, obs)[0, 0] == pytest.approx(2.5 * declared, rel=0.05)


def test_calibration_on_the_engine_finds_the_world_it_runs() -> None:
    """A world where every service is 40 % slower and starts 2× slower than declared: the calibration
    reads it off the engine's CPU counters and pod timestamps, within a few per cent."""
    nominal = small_scenario(services=3, mix={"web": 1, "api": 1}, total_rps=600, duration_s=400)
    engine = Engine(replace(nominal, world=uniform_world(nominal, service_time=1.4, cold_start=2.0), model_error=0.3))
    state = cal.initial_state(engine.observe())
    for step in range(400):
        if step == 100:
            obs = engine.observe()
            engine.apply([Scale(s.name, int(obs.desired_replicas[i]) + 2) for i, s in enumerate(nominal.services)])
        engine.step()
        if step % 15 == 14:
            state = cal.observe(state, engine.observe())
    # per replica, the service time where it runs (θ × the node's slowness: how the two split is not
    # identifiable from services that share nodes, their product is)
    obs = engine.observe()
    r, st = engine.state.replicas, engine.state
    live = (r.state == 1) | (r.state == 2)
    true_ms = (r.base_ms[live] / st.node_speed[r.node[live]]
               * (1.0 + engine.node_beta[r.node[live]] * st.node_util[r.node[live]] ** 2))
    ready = obs.replica_ready
    np.testing.assert_allclose(cal.replica_service_ms(state, obs)[ready], true_ms[ready], rtol=0.06)
    np.testing.assert_allclose(cal.cold_start_factor(state)[:, CPU], 2.0, rtol=0.05)
    believed = cal.world(state)
    np.testing.assert_allclose(believed.service_time_factor[:, CPU], cal.service_time_factor(state)[:, CPU])
    np.testing.assert_allclose(believed.node_speed_factor, cal.node_speed_factor(state))


def test_the_mpc_plans_with_its_calibration_and_without_one_uses_the_specs() -> None:
    model, source = load_scenario("steady-drift")
    scenario = compile_scenario(model, source, seed=1, duration_s=120, model_error=0.3)
    engine = Engine(scenario)
    controller = make_controller("mpc", scenario)
    assert isinstance(controller, MpcController)
    state = controller.initial_state(engine.observe())
    for step in range(90):
        engine.step()
        if step % 15 == 14:
            _, state = controller.decide(engine.observe(), state)
    assert isinstance(state, MpcControllerState)
    assert state.calibration is not None
    assert state.calibration.service_updates.min() >= 3
    obs = engine.observe()
    planned_ms, _ = controller.replica_conditions(obs, state.calibration)
    declared_ms, _ = controller.replica_conditions(obs)
    estimated_ms, sd_ms = cal.service_time_ms(state.calibration, obs)
    np.testing.assert_allclose(planned_ms, estimated_ms + controller.settings.planning_upper_sds * sd_ms)
    # the truth: the engine's mean service time over each service's Ready replicas where they run now
    r = engine.state.replicas
    ready = r.state == 2
    true_per_replica = (r.base_ms / engine.state.node_speed[r.node]
                        * (1.0 + engine.node_beta[r.node] * engine.state.node_util[r.node] ** 2))
    n_s = len(scenario.services)
    true_ms = (np.bincount(r.service[ready], true_per_replica[ready], minlength=n_s)
               / np.bincount(r.service[ready], minlength=n_s))
    calibrated_error = np.abs(np.log(estimated_ms / true_ms))
    declared_error = np.abs(np.log(declared_ms / true_ms))
    assert float(np.median(declared_error)) > 0.1, "σ 0.3: the specs are off"
    assert float(np.median(calibrated_error)) < 0.05
    assert float(calibrated_error.max()) < 0.15


def test_a_slow_node_is_found_from_its_utilisation_and_shows_in_the_calibrated_observation() -> None:
    """Two CPU nodes are half as fast as declared: the calibration reads it off their CPU utilisation (the
    services on them burn twice the CPU per request there), and the calibrated observation reports them slow."""
    nominal = small_scenario(services=4, mix={"web": 1, "api": 1}, total_rps=900, duration_s=300)
    enough = [Scale(s.name, 6) for s in nominal.services]  # no replica saturated, even on a slow node
    engine0 = Engine(nominal)
    engine0.apply(enough)
    hosts = np.unique(engine0.observe().replica_node)
    slow = hosts[:2]
    speed = np.ones(len(nominal.nodes))
    speed[slow] = 0.5
    engine = Engine(replace(nominal, world=uniform_world(nominal, node_speed=speed), model_error=0.3))
    engine.apply(enough)
    state = cal.initial_state(engine.observe())
    for step in range(300):
        engine.step()
        if step % 15 == 14:
            state = cal.observe(state, engine.observe())
    estimated = cal.node_speed_factor(state)
    assert estimated[slow].max() < 0.65
    others = np.setdiff1d(hosts, slow)
    assert estimated[others].min() > 0.8
    obs = engine.observe()
    believed = cal.calibrated_observation(obs, state)
    np.testing.assert_allclose(believed.node_speed[slow], obs.node_speed[slow] * estimated[slow])
    # a service with a replica on a slow node: its slowest replica is that one, about twice as slow
    on_slow = obs.replica_ready & np.isin(obs.replica_node, slow)
    s = int(obs.replica_service[on_slow][0])
    mine = obs.replica_ready & (obs.replica_service == s) & ~np.isin(obs.replica_node, slow)
    if mine.any():
        fast_ms = cal.replica_service_ms(state, obs)[mine].min()
        assert cal.slowest_replica_ms(state, obs)[s] > 1.6 * fast_ms
