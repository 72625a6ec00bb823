"""mas's digital twin runs what a cluster reports and what mas calibrated from it, never the true world.

The engine runs a world that strays from the declared specs (`CompiledScenario.world`); mas sees only
Observations. Its twin must start from the raw observation (declared node speeds, declared capacity)
and run the world its calibration estimated. These tests would fail if mas's twin were handed the
engine's true world, and show that handing it the truth would change what the twin decides.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np
from tests.unit.sim_helpers import small_scenario, uniform_world
from tests.unit.test_twin import checkout_cluster, flat

from kubeagora.controllers import mas as mas_module
from kubeagora.controllers.registry import make_controller
from kubeagora.decision import calibration as cal
from kubeagora.decision.twin import evaluate
from kubeagora.model import NODE_CLASSES, Scale, WorldParameters
from kubeagora.sim.engine import Engine
from kubeagora.sim.run import simulate


def test_the_twin_decides_differently_in_the_true_world_than_in_the_declared_one() -> None:
    """The premise of the tests below: which world the twin runs changes its verdict. Six replicas of
    25 ms × 4 slots serve 960 req/s; at 400 req/s five (800 req/s) are plenty by the specs, but not if
    requests really take 1.8× as long (five then serve 444 req/s, at utilisation 0.9)."""
    obs = checkout_cluster(ready=6, arrival_rps=400.0)
    down = [Scale("checkout", 5)]
    declared = evaluate(obs, down, flat(obs), 120.0)
    slow = WorldParameters(np.full((1, len(NODE_CLASSES)), 1.8), np.ones((1, len(NODE_CLASSES))),
                           np.ones(len(NODE_CLASSES)), np.ones(len(obs.nodes)))
    true = evaluate(obs, down, flat(obs), 120.0, world=slow)
    assert declared.accepted, declared.reasons
    assert not true.accepted
    assert true.candidate.slo_violation_pct > declared.candidate.slo_violation_pct + 10.0


def _erring_scenario() -> Any:
    """Two web services whose requests really take half as long as declared (so mas, once calibrated,
    finds replicas to spare and tests scale-downs in its twin), with twice the declared interference,
    cold starts three times the declared ones and node speeds off by ±30 %."""
    nominal = small_scenario(services=2, mix={"web": 1}, total_rps=400, duration_s=600, warm_start=True)
    speeds = np.where(np.arange(len(nominal.nodes)) % 2 == 0, 0.7, 1.3)
    truth = uniform_world(nominal, service_time=0.5, cold_start=3.0, interference=2.0, node_speed=speeds)
    return replace(nominal, world=truth, model_error=0.3), truth


def test_mas_runs_its_twin_on_the_raw_observation_and_the_calibrated_world(monkeypatch: Any) -> None:
    scenario, truth = _erring_scenario()
    believed: list[WorldParameters] = []
    twin_calls: list[tuple[Any, WorldParameters | None, WorldParameters | None]] = []
    real_world, real_evaluate = cal.world, mas_module.evaluate

    def calibrated_world(*args: Any, **kwargs: Any) -> WorldParameters:
        believed.append(real_world(*args, **kwargs))
        return believed[-1]

    def twin(observation: Any, actions: Any, *args: Any, world: WorldParameters | None = None,
             **kwargs: Any) -> Any:
        twin_calls.append((observation, world, believed[-1] if believed else None))
        return real_evaluate(observation, actions, *args, world=world, **kwargs)

    monkeypatch.setattr(cal, "world", calibrated_world)
    monkeypatch.setattr(mas_module, "evaluate", twin)
    simulate(scenario, make_controller("mas", scenario))

    assert twin_calls, "the scenario must make mas test a capacity-removing move in its twin"
    declared_speeds = np.array([n.speed_factor for n in scenario.nodes])
    for observation, world, latest_estimate in twin_calls:
        # the raw observation: what the cluster reported, not the true speeds nor mas's corrected ones
        np.testing.assert_allclose(observation.node_speed, declared_speeds)
        # the world is the one mas's calibration estimated this tick ...
        assert world is not None
        assert world is latest_estimate
        # ... which is not the truth: the node speeds and interference are estimated, not read
        assert not np.allclose(world.node_speed_factor, truth.node_speed_factor, rtol=0.02)
        assert not np.allclose(world.interference_factor, truth.interference_factor, rtol=0.02)
    # and the estimate has learnt from what it measured: a request on a node takes the service's time
    # over the node's speed (the calibration learns that product; a lone replica cannot tell them apart)
    observation, last, _ = twin_calls[-1]
    assert last is not None
    node_class = np.array([NODE_CLASSES.index(n.node_class) for n in scenario.nodes])
    svc, node = observation.replica_service, observation.replica_node
    estimated = last.service_time_factor[svc, node_class[node]] / last.node_speed_factor[node]
    true = truth.service_time_factor[svc, node_class[node]] / truth.node_speed_factor[node]
    np.testing.assert_allclose(estimated, true, rtol=0.25)
    assert np.all(true < 0.75), "the specs (factor 1) are far from the truth here"


def test_mas_decides_the_same_on_the_same_observations_whatever_world_the_scenario_holds() -> None:
    """make_controller hands mas the scenario; mas must not read its world. Fed the observations of one
    run, a mas built for the true world and one built for a world where requests take six times as long
    decide identically, while the clairvoyant planner, which does read the world, decides differently."""
    scenario, truth = _erring_scenario()
    scenario = replace(scenario, duration_s=250.0)
    other = replace(scenario, world=replace(truth, service_time_factor=truth.service_time_factor * 6.0,
                                            node_speed_factor=np.ones_like(truth.node_speed_factor)))
    engine = Engine(scenario)
    deciders = {name: (make_controller(name, scenario), make_controller(name, other))
                for name in ("mas", "clairvoyant")}
    states = {name: [c.initial_state(engine.observe()) for c in pair] for name, pair in deciders.items()}
    differs = dict.fromkeys(deciders, False)
    every = round(deciders["mas"][0].interval_s / scenario.step_s)
    for i in range(1, round(scenario.duration_s / scenario.step_s)):
        engine.step()
        if i % every:
            continue
        observation = engine.observe()
        enacted: list[Any] = []
        for name, pair in deciders.items():
            decided = []
            for k, controller in enumerate(pair):
                actions, states[name][k] = controller.decide(observation, states[name][k])
                decided.append(list(actions))
            differs[name] |= decided[0] != decided[1]
            if name == "mas":
                assert decided[0] == decided[1], f"at {observation.time_s:g} s"
                enacted = decided[0]
        engine.apply(enacted)
    assert differs["clairvoyant"], "a controller that reads the world decides differently in these two worlds"
    assert not differs["mas"]
