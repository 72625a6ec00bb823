"""The shield: what it lets through never breaks a guard, and filtering twice changes nothing.

The property tests check every invariant with their own arithmetic over the allowed set, not with
the shield's guard functions.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import replace
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kubeagora.agents.base import Lane, Proposal
from kubeagora.decision.shield import (
    DisruptionEvent,
    ShieldPolicy,
    ShieldState,
    filter_proposals,
    release,
)
from kubeagora.model import (
    Action,
    Migrate,
    Node,
    NodeClass,
    Observation,
    Place,
    QuarantineNode,
    Scale,
    Service,
    SetConcurrency,
    ShedLoad,
    Tier,
)

NOW_S = 1000.0
PER_REPLICA_RPS = 160.0


def make_observation(*, nodes: list[tuple[str, NodeClass]], services: list[Service],
                     replicas: list[tuple[int, int, bool]], arrival_rps: list[float],
                     p99_ms: list[float] | None = None, desired: list[int] | None = None,
                     shed: list[float] | None = None, power_w: float = 0.0,
                     regions: tuple[str, ...] = ("region-0", "region-1")) -> Observation:
    """replicas: (service, node, ready) rows; Ready capacity is 160 req/s per Ready replica."""
    node_objs = tuple(Node(f"node-{i}", Tier.CLOUD, region, f"{region}-z0", cls, 16.0, 64.0,
                           4 if cls is NodeClass.GPU else 0) for i, (region, cls) in enumerate(nodes))
    n_s, n_n = len(services), len(node_objs)
    rs = np.array([r[0] for r in replicas], dtype=np.int64)
    rn = np.array([r[1] for r in replicas], dtype=np.int64)
    rr = np.array([r[2] for r in replicas], dtype=bool)
    ready = np.bincount(rs[rr], minlength=n_s).astype(np.int64)
    live = np.bincount(rs, minlength=n_s).astype(np.int64)
    cpu = np.bincount(rn, np.array([services[s].cpu_request for s in rs.tolist()]), minlength=n_n)
    acc = np.bincount(rn, np.array([services[s].accelerator_request if node_objs[n].node_class is NodeClass.GPU
                                    else 0 for s, n in zip(rs.tolist(), rn.tolist(), strict=True)]),
                      minlength=n_n).astype(np.int64)
    p99 = np.array(p99_ms if p99_ms is not None else [100.0] * n_s)
    return Observation(
        time_s=NOW_S, nodes=node_objs, services=tuple(services),
        arrived_total=np.zeros(n_s), served_total=np.zeros(n_s), dropped_total=np.zeros(n_s),
        busy_core_seconds_total=np.zeros(n_s), arrival_rps=np.array(arrival_rps, dtype=float),
        queue_length=np.zeros(n_s),
        desired_replicas=np.array(desired, dtype=np.int64) if desired is not None else live.copy(),
        ready_replicas=ready, pending_replicas=live - ready,
        concurrency=np.array([s.concurrency for s in services], dtype=np.int64),
        p95_ms=p99 * 0.8, p99_ms=p99, capacity_rps=ready * PER_REPLICA_RPS,
        shed_fraction=np.array(shed if shed is not None else [0.0] * n_s),
        node_ready=np.ones(n_n, bool), node_heartbeat_age_s=np.zeros(n_n), node_quarantined=np.zeros(n_n, bool),
        node_cpu_allocated=cpu, node_memory_allocated_gib=np.zeros(n_n), node_accelerators_allocated=acc,
        node_utilization=np.zeros(n_n), node_power_w=np.full(n_n, power_w / max(n_n, 1)),
        node_speed=np.ones(n_n), region_carbon_g_per_kwh=dict.fromkeys(regions, 300.0), regions=regions,
        ingress_rtt_ms=np.full((len(regions), n_n), 20.0),
        replica_service=rs, replica_node=rn, replica_ready=rr,
    )


def web(name: str, **fields: Any) -> Service:
    return Service(name, {NodeClass.CPU: 25.0}, **{"cpu_request": 0.5, "concurrency": 4, **fields})


def gpu_model(name: str, **fields: Any) -> Service:
    return Service(name, {NodeClass.GPU: 20.0}, **{"cpu_request": 2.0, "accelerator_request": 1, **fields})


def proposal(action: Action, lane: Lane = Lane.ROUTINE) -> Proposal:
    return Proposal("test-agent", action, "because", lane=lane)


# ------------------------------------------------------------------ strategies
@st.composite
def worlds(draw: st.DrawFn) -> tuple[Observation, list[Proposal], ShieldPolicy, ShieldState]:
    n_nodes = draw(st.integers(1, 4))
    nodes = [(f"region-{draw(st.integers(0, 1))}", draw(st.sampled_from([NodeClass.CPU, NodeClass.CPU, NodeClass.GPU])))
             for _ in range(n_nodes)]
    n_services = draw(st.integers(1, 3))
    services = []
    for i in range(n_services):
        make = draw(st.sampled_from([web, gpu_model]))
        lo = draw(st.integers(0, 2))
        services.append(make(f"svc-{i}", min_replicas=lo, max_replicas=lo + draw(st.integers(1, 6)),
                             allowed_regions=draw(st.sampled_from([None, ("region-0",), ("region-1",)]))))
    replicas = [(s, draw(st.integers(0, n_nodes - 1)), draw(st.booleans()))
                for s in range(n_services) for _ in range(draw(st.integers(0, 5)))]
    live = Counter(r[0] for r in replicas)
    obs = make_observation(
        nodes=nodes, services=services, replicas=replicas,
        arrival_rps=[draw(st.floats(0, 900)) for _ in range(n_services)],
        p99_ms=[draw(st.sampled_from([math.nan, 80.0, 240.0, 400.0])) for _ in range(n_services)],
        desired=[live[s] + draw(st.integers(0, 1)) for s in range(n_services)],
        shed=[draw(st.sampled_from([0.0, 0.2])) for _ in range(n_services)],
        power_w=draw(st.floats(0, 2000)))
    policy = ShieldPolicy(
        safe_utilisation=draw(st.floats(0.3, 1.0)),
        max_total_cpu_cores=draw(st.none() | st.floats(0, 20)),
        max_total_accelerators=draw(st.none() | st.integers(0, 6)),
        max_power_w=draw(st.none() | st.floats(0, 3000)),
        disruption_window_s=draw(st.sampled_from([60.0, 300.0])),
        max_disruptions_per_service=draw(st.integers(0, 3)),
        max_disruptions_cluster=draw(st.integers(0, 5)),
        min_ready_replicas=draw(st.integers(0, 2)),
        max_quarantines_per_window=draw(st.integers(0, 2)),
    )
    names = [s.name for s in services]
    events = tuple(DisruptionEvent(draw(st.floats(0, NOW_S)), draw(st.sampled_from(["scale-down", "migrate",
                                                                                    "quarantine"])),
                                   tuple(draw(st.sets(st.sampled_from(names), max_size=2))))
                   for _ in range(draw(st.integers(0, 4))))
    node_names = [f"node-{i}" for i in range(n_nodes)]
    action = st.one_of(
        st.builds(Scale, st.sampled_from(names), st.integers(0, 9)),
        st.builds(Place, st.sampled_from(names), st.sampled_from(node_names)),
        st.builds(Migrate, st.sampled_from(names), st.sampled_from(node_names), st.sampled_from(node_names)),
        st.builds(ShedLoad, st.sampled_from(names), st.sampled_from([0.0, 0.1, 0.5])),
        st.builds(SetConcurrency, st.sampled_from(names), st.integers(1, 8)),
        st.builds(QuarantineNode, st.sampled_from(node_names)),
    )
    proposals = draw(st.lists(st.builds(proposal, action, st.sampled_from(list(Lane))), max_size=10))
    return obs, proposals, policy, ShieldState(events)


# ------------------------------------------------------------------ the invariants, in the test's own arithmetic
def needed_replicas(obs: Observation, s: int, utilisation: float) -> int:
    ready = obs.ready_replicas[s]
    per = obs.capacity_rps[s] / ready if ready and obs.capacity_rps[s] > 0 else \
        obs.concurrency[s] * 1000.0 / min(obs.services[s].service_time_ms.values())
    return math.ceil(obs.arrival_rps[s] / (per * utilisation) - 1e-9)


def assert_no_guard_broken(obs: Observation, allowed: tuple[Proposal, ...], policy: ShieldPolicy,
                           state: ShieldState) -> None:
    idx = {s.name: i for i, s in enumerate(obs.services)}
    node_idx = {n.name: i for i, n in enumerate(obs.nodes)}
    desired = {s.name: int(obs.desired_replicas[i]) for i, s in enumerate(obs.services)}
    cpu = acc = 0.0
    new_disruptions: list[tuple[str, tuple[str, ...]]] = []
    migrations_from: Counter[tuple[str, int]] = Counter()
    quarantined: set[int] = set()
    for p in allowed:
        a = p.action
        if isinstance(a, Scale):
            s, svc = idx[a.service], obs.services[idx[a.service]]
            assert svc.min_replicas <= a.replicas <= svc.max_replicas, "replica bounds"
            if a.replicas < desired[a.service]:
                assert a.replicas >= needed_replicas(obs, s, policy.safe_utilisation), "SLO invariant"
                new_disruptions.append(("scale-down", (a.service,)))
            pods = a.replicas - desired[a.service]
            cpu += pods * svc.cpu_request
            acc += pods * svc.accelerator_request  # GPU-only services take one per replica
            desired[a.service] = a.replicas
        elif isinstance(a, Place | Migrate):
            svc = obs.services[idx[a.service]]
            target = obs.nodes[node_idx[a.node if isinstance(a, Place) else a.to_node]]
            assert svc.allowed_regions is None or target.region in svc.allowed_regions, "data residency"
            cpu += svc.cpu_request
            acc += svc.accelerator_request if target.node_class is NodeClass.GPU else 0
            if isinstance(a, Place):
                desired[a.service] += 1
                assert desired[a.service] <= svc.max_replicas, "replica bounds"
            else:
                new_disruptions.append(("migrate", (a.service,)))
                migrations_from[(a.service, node_idx[a.from_node])] += 1
        elif isinstance(a, ShedLoad):
            s = idx[a.service]
            if a.fraction > obs.shed_fraction[s]:
                svc = obs.services[s]
                healthy = (obs.p99_ms[s] <= svc.slo_p99_ms and obs.p95_ms[s] <= svc.slo_p95_ms
                           if not math.isnan(obs.p99_ms[s]) else obs.arrival_rps[s] <= obs.capacity_rps[s])
                assert not healthy, "shed a service within its SLO"
        elif isinstance(a, QuarantineNode):
            n = node_idx[a.node]
            on = obs.replica_ready & (obs.replica_node == n)
            touched = tuple(sorted({obs.services[s].name for s in obs.replica_service[on].tolist()}))
            new_disruptions.append(("quarantine", touched))
            quarantined.add(n)

    def within(used: float, delta: float, cap: float | None) -> bool:
        return cap is None or used + delta <= max(cap, used) + 1e-6

    assert within(float(obs.node_cpu_allocated.sum()), cpu, policy.max_total_cpu_cores), "CPU budget"
    assert within(float(obs.node_accelerators_allocated.sum()), acc, policy.max_total_accelerators), "accelerators"

    since = obs.time_s - policy.disruption_window_s
    past = [e for e in state.events if e.at_s > since]
    assert len(new_disruptions) <= max(0, policy.max_disruptions_cluster - len(past)), "cluster disruptions"
    for name in idx:
        hist = sum(name in e.services for e in past)
        new = sum(name in services for _, services in new_disruptions)
        assert new <= max(0, policy.max_disruptions_per_service - hist), f"disruptions of {name}"
    quarantines_before = sum(e.kind == "quarantine" and e.at_s > obs.time_s - policy.privileged_window_s
                             for e in state.events)
    new_quarantines = sum(kind == "quarantine" for kind, _ in new_disruptions)
    assert new_quarantines <= max(0, policy.max_quarantines_per_window - quarantines_before), "quarantine rate"

    # availability: Ready replicas left after every allowed migration and quarantine
    for name, s in idx.items():
        ready_rows = obs.replica_ready & (obs.replica_service == s)
        lost = sum(int(np.count_nonzero(ready_rows & (obs.replica_node == n))) for n in quarantined)
        for (svc_name, n), moves in migrations_from.items():
            if svc_name == name and n not in quarantined:
                lost += min(moves, int(np.count_nonzero(ready_rows & (obs.replica_node == n))))
        if lost:
            assert obs.ready_replicas[s] - lost >= policy.min_ready_replicas, f"availability of {name}"


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(worlds())
def test_no_allowed_set_breaks_a_guard(world: tuple[Observation, list[Proposal], ShieldPolicy, ShieldState]) -> None:
    obs, proposals, policy, state = world
    allowed, rejected, _ = filter_proposals(obs, proposals, policy, state)
    assert len(allowed) + len(rejected) == len(proposals)
    assert_no_guard_broken(obs, allowed, policy, state)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(worlds())
def test_filtering_the_allowed_set_again_rejects_nothing(
        world: tuple[Observation, list[Proposal], ShieldPolicy, ShieldState]) -> None:
    obs, proposals, policy, state = world
    allowed, _, new_state = filter_proposals(obs, proposals, policy, state)
    again, rejected, again_state = filter_proposals(obs, allowed, policy, state)
    assert rejected == ()
    assert again == allowed
    assert again_state == new_state


# ------------------------------------------------------------------ each guard, by example
def two_region_world(**overrides: Any) -> Observation:
    fields: dict[str, Any] = {
        "nodes": [("region-0", NodeClass.CPU), ("region-0", NodeClass.CPU), ("region-1", NodeClass.CPU)],
        "services": [web("checkout", min_replicas=1, max_replicas=6, allowed_regions=("region-0",))],
        "replicas": [(0, 0, True), (0, 0, True), (0, 1, True), (0, 1, True)],
        "arrival_rps": [300.0],
    }
    return make_observation(**{**fields, **overrides})


def only_rejection(obs: Observation, action: Action, policy: ShieldPolicy | None = None,
                   state: ShieldState | None = None) -> tuple[str, str, dict[str, float]]:
    allowed, rejected, _ = filter_proposals(obs, [proposal(action)], policy or ShieldPolicy(), state or ShieldState())
    assert allowed == ()
    v = rejected[0].violation
    return v.guard, v.reason, dict(v.figures)


def test_scaling_a_busy_service_below_what_its_load_needs_is_rejected_with_the_numbers() -> None:
    # 300 req/s at 160 req/s per replica and 70 % utilisation needs 3 replicas
    guard, reason, figures = only_rejection(two_region_world(), Scale("checkout", 2))
    assert guard == "slo-invariant"
    assert figures["replicas_needed"] == 3
    assert "needs (3" in reason
    allowed, _, _ = filter_proposals(two_region_world(), [proposal(Scale("checkout", 3))], ShieldPolicy(),
                                     ShieldState())
    assert len(allowed) == 1


def test_shedding_a_service_within_its_slo_is_rejected_but_one_in_violation_may_shed() -> None:
    assert only_rejection(two_region_world(p99_ms=[120.0]), ShedLoad("checkout", 0.3))[0] == "slo-invariant"
    allowed, _, _ = filter_proposals(two_region_world(p99_ms=[900.0]), [proposal(ShedLoad("checkout", 0.3))],
                                     ShieldPolicy(), ShieldState())
    assert len(allowed) == 1


def test_replicas_stay_within_the_service_bounds() -> None:
    guard, _, figures = only_rejection(two_region_world(), Scale("checkout", 7))
    assert (guard, figures["max_replicas"]) == ("replica-bounds", 6)


def test_a_replica_may_not_leave_its_data_residency_region() -> None:
    guard, reason, _ = only_rejection(two_region_world(), Migrate("checkout", "node-0", "node-2"))
    assert guard == "data-residency"
    assert "region-1" in reason


def test_the_cpu_budget_holds_over_the_whole_batch() -> None:
    obs = two_region_world(arrival_rps=[0.0])  # 4 × 0.5 cores allocated
    policy = ShieldPolicy(max_total_cpu_cores=2.7)
    allowed, rejected, _ = filter_proposals(obs, [proposal(Scale("checkout", 5)), proposal(Scale("checkout", 6))],
                                            policy, ShieldState())
    assert [p.action for p in allowed] == [Scale("checkout", 5)]
    assert rejected[0].violation.guard == "budget"
    assert rejected[0].violation.figures["cpu_cap"] == 2.7
    # lowering usage is always allowed, even over the cap
    allowed, _, _ = filter_proposals(obs, [proposal(Scale("checkout", 1))], ShieldPolicy(max_total_cpu_cores=1.0),
                                     ShieldState())
    assert len(allowed) == 1


def test_disruptions_are_rate_limited_per_service_and_remembered_across_calls() -> None:
    obs = two_region_world(arrival_rps=[0.0])
    policy = ShieldPolicy(max_disruptions_per_service=1, disruption_window_s=300.0)
    allowed, rejected, state = filter_proposals(
        obs, [proposal(Scale("checkout", 3)), proposal(Migrate("checkout", "node-0", "node-1"))], policy,
        ShieldState())
    assert len(allowed) == 1
    assert rejected[0].violation.guard == "disruption-rate"
    # the next tick, still inside the window, the service has had its disruption
    _, rejected, _ = filter_proposals(obs, [proposal(Scale("checkout", 2))], policy, state)
    assert rejected[0].violation.guard == "disruption-rate"
    # a scale-up is not a disruption
    allowed, _, _ = filter_proposals(obs, [proposal(Scale("checkout", 5))], policy, state)
    assert len(allowed) == 1


def test_routine_disruptions_leave_part_of_the_cluster_budget_to_slo_repairs() -> None:
    # four services, each with replicas on both region-0 nodes: every one could migrate
    names = ["a", "b", "c", "d"]
    obs = two_region_world(services=[web(n, min_replicas=1, max_replicas=6) for n in names],
                           replicas=[(s, n, True) for s in range(4) for n in (0, 0, 1, 1)],
                           arrival_rps=[0.0] * 4)
    policy = ShieldPolicy(max_disruptions_cluster=3, routine_disruption_share=2.0 / 3.0)
    moves = [proposal(Migrate(n, "node-0", "node-1")) for n in names]
    allowed, rejected, state = filter_proposals(obs, moves, policy, ShieldState())
    # routine moves fill 2 of the 3; the third is kept back even though the cluster limit is not reached
    assert [p.action.service for p in allowed] == ["a", "b"]  # type: ignore[union-attr]
    assert {r.violation.guard for r in rejected} == {"disruption-rate"}
    assert "kept for SLO repairs" in rejected[0].violation.reason
    # a move that repairs a service's SLO may take the reserved one, and nothing may pass the cluster limit
    repair = proposal(Migrate("c", "node-0", "node-1"), Lane.SLO)
    allowed, _, state = filter_proposals(obs, [repair], policy, state)
    assert allowed == (repair,)
    _, rejected, _ = filter_proposals(obs, [proposal(Migrate("d", "node-0", "node-1"), Lane.SLO)], policy, state)
    assert "cluster limit 3" in rejected[0].violation.reason
    # without a reserve, routine moves may fill the whole budget (the old behaviour)
    allowed, _, _ = filter_proposals(obs, moves, replace(policy, routine_disruption_share=1.0), ShieldState())
    assert len(allowed) == 3


def test_a_move_that_was_not_delivered_gives_its_disruption_back() -> None:
    obs = two_region_world(arrival_rps=[0.0])
    policy = ShieldPolicy(max_disruptions_per_service=1)
    move = proposal(Migrate("checkout", "node-0", "node-1"))
    allowed, _, state = filter_proposals(obs, [move], policy, ShieldState())
    assert allowed == (move,)
    assert len(state.events) == 1
    # the twin turned it down: the service has not been disrupted, and may be moved again
    state = release(state, obs.time_s, [move])
    assert state.events == ()
    allowed, _, _ = filter_proposals(obs, [move], policy, state)
    assert allowed == (move,)
    # releasing a move of another time or kind leaves the history alone
    _, _, state = filter_proposals(obs, [move], policy, ShieldState())
    assert release(state, obs.time_s + 5.0, [move]) == state
    assert release(state, obs.time_s, [proposal(Scale("checkout", 1))]) == state


def test_a_quarantine_must_leave_k_ready_replicas_and_is_rate_limited() -> None:
    obs = two_region_world(arrival_rps=[0.0], replicas=[(0, 0, True), (0, 0, True), (0, 1, True)])
    guard, _, figures = only_rejection(obs, QuarantineNode("node-0"), ShieldPolicy(min_ready_replicas=2))
    assert (guard, figures["ready_left"]) == ("min-availability", 1)
    allowed, _, state = filter_proposals(obs, [proposal(QuarantineNode("node-1"))], ShieldPolicy(), ShieldState())
    assert len(allowed) == 1
    guard, _, _ = only_rejection(obs, QuarantineNode("node-0"), ShieldPolicy(), state)
    assert guard == "privileged-rate"


def test_incidents_are_served_before_routine_work_when_a_budget_is_tight() -> None:
    obs = two_region_world(arrival_rps=[0.0])
    policy = ShieldPolicy(max_total_cpu_cores=2.5)
    routine, incident = proposal(Scale("checkout", 6)), proposal(Scale("checkout", 5), Lane.INCIDENT)
    allowed, rejected, _ = filter_proposals(obs, [routine, incident], policy, ShieldState())
    assert allowed == (incident,)
    assert rejected[0].proposal is routine


def test_policy_refuses_nonsense() -> None:
    with pytest.raises(ValueError, match="safe_utilisation"):
        ShieldPolicy(safe_utilisation=0.0)
    with pytest.raises(ValueError, match="routine_disruption_share"):
        ShieldPolicy(routine_disruption_share=1.5)
