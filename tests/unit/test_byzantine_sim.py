"""Byzantine nodes and agents in the simulator: each attack is run with the MAS's zero-trust checks off
(the attack must work there) and on (it must be contained), on the same seed."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
from tests.unit.sim_helpers import SMALL_TOPOLOGY

from kubeagora.controllers.mas import MasController, MasSettings
from kubeagora.model import QuarantineNode
from kubeagora.sim.engine import Engine
from kubeagora.sim.scenario import ScenarioError, ScenarioModel, compile_scenario

LIAR = "cloud-cpu-0-0"
"""A node that hosts replicas of api-0 and web-2 from the start in this scenario."""


@dataclass
class Outcome:
    engine: Engine
    trust: dict[str, float]
    quarantined: list[str]
    slo_violation_pct: float
    replica_seconds: float


def scenario(faults: list[dict[str, Any]], *, attestation: bool = False, duration_s: float = 600) -> Any:
    model = ScenarioModel.model_validate({
        "name": "byzantine", "seed": 7, "duration_s": duration_s, "topology": SMALL_TOPOLOGY,
        "services": {"count": 4, "mix": {"web": 1, "api": 1}}, "workload": {"total_rps": 600},
        "faults": faults, "attestation": attestation})
    return compile_scenario(model, "byzantine")


def run(faults: list[dict[str, Any]], zero_trust: bool, **kw: Any) -> Outcome:
    sc = scenario(faults, **kw)
    engine = Engine(sc)
    mas = MasController(settings=MasSettings(zero_trust=zero_trust))
    state = mas.initial_state(engine.observe())
    every = round(mas.interval_s / sc.step_s)
    quarantined: list[str] = []
    for i in range(round(sc.duration_s / sc.step_s)):
        if i and i % every == 0:
            actions, state = mas.decide(engine.observe(), state)
            engine.apply(actions)
            quarantined += [a.node for a in actions if isinstance(a, QuarantineNode)]
        engine.step()
    metrics = engine.recorder.metrics(sc.duration_s, 0.0, None)
    return Outcome(engine, dict(state.trust), quarantined, float(metrics["slo_violation_pct"] or 0.0),
                   float(metrics["replica_seconds"] or 0.0))


@functools.cache
def honest(attestation: bool = False, duration_s: float = 600) -> Outcome:
    """The same scenario with no attack, defended (what the services need when nobody lies)."""
    return run([], zero_trust=True, attestation=attestation, duration_s=duration_s)


def late_violating(outcome: Outcome, last_s: float = 150.0) -> float:
    """Mean number of services violating their SLO over the run's last `last_s` seconds."""
    series = outcome.engine.recorder.series
    t, violating = np.array(series["t_s"]), np.array(series["violating_services"])
    return float(violating[t >= t[-1] - last_s].mean())


def served_on(outcome: Outcome, node: str) -> float:
    names = [n.name for n in outcome.engine.scenario.nodes]
    return float(outcome.engine.state.node_served[names.index(node)])


def test_a_node_hiding_that_it_runs_at_half_speed_is_drained_and_quarantined() -> None:
    attack = [{"at_s": 60, "kind": "falsified-metrics", "target": LIAR, "factor": 0.5}]
    baseline = honest()
    undefended = run(attack, zero_trust=False)
    defended = run(attack, zero_trust=True)

    # the attack works without the checks: the node keeps its replicas and the SLOs break
    assert undefended.quarantined == []
    assert LIAR not in undefended.trust
    assert undefended.slo_violation_pct > 20 * max(baseline.slo_violation_pct, 1.0)
    # with them, the callers' measured service times give it away, its replicas move and it is quarantined
    assert defended.quarantined == [LIAR]
    assert served_on(defended, LIAR) < 0.5 * served_on(undefended, LIAR)
    assert defended.slo_violation_pct < undefended.slo_violation_pct / 2
    # and once it is out (the shield lets two disruptions per service in 300 s), the SLOs hold again
    assert late_violating(undefended) >= 1.5
    assert late_violating(defended) <= 0.25
    # no honest node is blamed for the liar's slowness
    assert [n for n, t in defended.trust.items() if t < 0.9 and n != LIAR] == []


def test_an_agent_claiming_five_times_its_demand_gets_what_its_real_demand_needs() -> None:
    attack = [{"at_s": 60, "kind": "inflated-demand", "target": "api-0", "factor": 5}]
    baseline = honest()
    undefended = run(attack, zero_trust=False)
    defended = run(attack, zero_trust=True)
    api = 0

    # undefended, the claim buys the service more than twice the replicas it needs
    assert undefended.engine.state.desired[api] >= 2 * baseline.engine.state.desired[api]
    assert undefended.replica_seconds > 1.5 * baseline.replica_seconds
    # defended, outcomes (served + dropped + queued) cap the claim, and the bidder loses its trust
    assert defended.engine.state.desired[api] <= baseline.engine.state.desired[api] + 1
    assert defended.replica_seconds < 1.15 * baseline.replica_seconds
    assert defended.trust.get("bidder:api-0", 1.0) < 0.3
    assert [who for who in defended.trust if who.startswith("bidder:") and who != "bidder:api-0"] == []


@pytest.mark.parametrize(("kind", "factor", "quarantined"), [
    ("attestation-failure", 1.0, True),  # every claim reports an unenrolled measurement
    ("replayed-claims", 0.5, True),
    ("identity-expired", 0.5, True),
    ("attestation-failure", 0.02, False),  # one claim in fifty: noise, not a reason to lose a node
])
def test_attestation_verdicts_quarantine_a_node_that_keeps_failing_and_spare_one_that_rarely_does(
        kind: str, factor: float, quarantined: bool) -> None:
    attack = [{"at_s": 60, "kind": kind, "target": LIAR, "factor": factor}]
    defended = run(attack, zero_trust=True, attestation=True, duration_s=300)
    assert (LIAR in defended.quarantined) is quarantined
    undefended = run(attack, zero_trust=False, attestation=True, duration_s=300)
    assert undefended.quarantined == []


def test_honest_enrolled_nodes_lose_no_trust() -> None:
    outcome = honest(attestation=True, duration_s=300)
    assert outcome.trust == {}
    assert outcome.quarantined == []


def test_attestation_faults_need_enrolled_nodes_and_inflation_needs_a_multiple_above_one() -> None:
    with pytest.raises(ScenarioError, match="needs `attestation: true`"):
        scenario([{"at_s": 1, "kind": "replayed-claims", "target": LIAR}])
    with pytest.raises(ValueError, match="inflated-demand needs a factor above 1"):
        scenario([{"at_s": 1, "kind": "inflated-demand", "target": "api-0", "factor": 0.5}])
    with pytest.raises(ValueError, match="factor must be at most 1"):
        scenario([{"at_s": 1, "kind": "falsified-metrics", "target": LIAR, "factor": 2}])
    assert np.isfinite(scenario([]).duration_s)
