"""Risk: a big, hard-to-undo move on a service without slack needs a person; a scale-up does not."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
from tests.unit.observations import cpu_node, observation, web_service

from kubeagora.agents.base import Proposal
from kubeagora.decision.risk import RiskPolicy, assess, blast_radius, with_risk
from kubeagora.model import Migrate, Observation, QuarantineNode, Scale, SetConcurrency, ShedLoad


def busy(p99_ms: float, arrival_rps: float, ready: int = 4) -> Observation:
    return observation(ready=ready, p99_ms=p99_ms, p95_ms=p99_ms * 0.7, arrival_rps=arrival_rps,
                       capacity_rps=160.0 * ready)


def test_a_scale_up_is_low_risk_and_needs_no_person() -> None:
    a = assess(busy(240.0, 600.0), Scale("web", 8))
    assert a.blast_radius == 0.0
    assert a.risk < 0.1
    assert not a.needs_approval


def test_scaling_most_replicas_away_from_a_service_without_slack_needs_a_person() -> None:
    tight = assess(busy(245.0, 600.0), Scale("web", 1))
    assert tight.blast_radius == 0.75
    assert tight.slo_slack < 0.05
    assert tight.needs_approval
    relaxed = assess(busy(60.0, 100.0), Scale("web", 1))
    assert relaxed.risk < tight.risk
    assert not relaxed.needs_approval


def test_less_slack_means_more_risk_for_the_same_move() -> None:
    risks = [assess(busy(p99, 300.0), Scale("web", 2)).risk for p99 in (50.0, 150.0, 250.0, 400.0)]
    assert risks == sorted(risks)
    assert risks[0] < risks[-1]


def test_a_service_the_model_knows_less_well_counts_on_less_slack() -> None:
    """The calibration's uncertainty feeds the risk: the same scale-down on a service whose service time is
    known to ±30 % is judged against a capacity 1.6× smaller (2 sd), so it is riskier; a scale-up stays free."""
    obs = busy(60.0, 350.0)
    known = assess(obs, Scale("web", 2), uncertainty=np.array([0.0]))
    unknown = assess(obs, Scale("web", 2), uncertainty=np.array([0.3]))
    assert unknown.model_uncertainty == 0.3
    assert unknown.slo_slack < known.slo_slack
    assert unknown.risk > known.risk
    assert assess(obs, Scale("web", 8), uncertainty=np.array([0.3])).risk < 0.1
    proposal = Proposal("scaling", Scale("web", 2), "less load")
    assert with_risk(obs, proposal, uncertainty=np.array([0.3])).risk == unknown.risk


def test_a_node_quarantine_touches_the_share_of_all_capacity_on_that_node() -> None:
    nodes = (cpu_node("node-0"), cpu_node("node-1"))
    obs = observation(services=(web_service("a"), web_service("b")), nodes=nodes, ready=2, capacity_rps=320.0,
                      arrival_rps=100.0, p99_ms=100.0, p95_ms=80.0)
    # one of the four Ready replicas moves to node-1
    obs = replace(obs, replica_node=np.array([0, 1, 0, 0]))
    assert blast_radius(obs, QuarantineNode("node-0")) == 0.75
    assert blast_radius(obs, QuarantineNode("node-1")) == 0.25
    assert assess(obs, QuarantineNode("node-0")).risk > assess(obs, QuarantineNode("node-1")).risk


def test_irreversible_actions_weigh_more_than_reversible_ones_of_the_same_reach() -> None:
    obs = busy(150.0, 300.0)
    assert assess(obs, ShedLoad("web", 0.25)).risk > assess(obs, Migrate("web", "node-0", "node-0")).risk
    assert assess(obs, SetConcurrency("web", 8)).blast_radius == 1.0


def test_the_threshold_is_the_policy_s_and_with_risk_fills_the_proposal() -> None:
    obs = busy(200.0, 400.0)
    risk = assess(obs, Scale("web", 2)).risk
    assert assess(obs, Scale("web", 2), RiskPolicy(approval_threshold=risk - 0.01)).needs_approval
    assert not assess(obs, Scale("web", 2), RiskPolicy(approval_threshold=risk + 0.01)).needs_approval
    assert with_risk(obs, Proposal("scaler", Scale("web", 2), "idle")).risk == risk
