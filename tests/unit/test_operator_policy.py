"""The OrchestrationPolicy enforced at runtime, without a cluster: the shield the loop decides with comes
from the watched policy; tenants' claims, priority caps and weights apply when intents are bound;
the shield's rate limits are counted in the API server (a ConfigMap) and survive a restart."""

from __future__ import annotations

import asyncio
from typing import Any

from tests.unit.operator_objects import by_key, checkout_cluster, deployment, intent, node_signals, observe_checkout
from tests.unit.operator_objects import signals as sig
from tests.unit.test_operator_control_loop import SIGNER, FakeApi, FakeSignals

from kubeagora.agents.base import Proposal
from kubeagora.decision.shield import ShieldPolicy, ShieldState, carbon_cap, filter_proposals, min_availability
from kubeagora.model import Migrate, Place, Scale
from kubeagora.model.intent import parse_orchestration_policy, shield_policy
from kubeagora.operator import adapter, ledger
from kubeagora.operator.loop import ControlLoop, LoopSettings
from kubeagora.operator.telemetry import Telemetry
from kubeagora.operator.view import ClusterView


def policy(name: str = "default", **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "kubeagora.io/v1alpha1", "kind": "OrchestrationPolicy", "metadata": {"name": name},
            "spec": spec}


# ---------------------------------------------------------------------------------------------- the shield
def test_the_policy_maps_onto_the_shield_caps_and_rates() -> None:
    p = parse_orchestration_policy(policy(energyCapWatts=900, carbonCapGPerKwh=250, disruptionBudget={
        "minAvailablePct": 75}, rateLimits={"migrationsPerMinute": 1, "quarantinesPerHour": 3,
                                            "privilegedActionsPerHour": 2}))
    shield = shield_policy(p)
    assert (shield.max_power_w, shield.max_carbon_g_per_kwh, shield.min_available_fraction) == (900, 250, 0.75)
    assert shield.max_disruptions_cluster == 5  # 1/min over the 300 s window
    assert shield.max_quarantines_per_window == 2  # the smaller of the two hourly rates


CHECKOUT = adapter.service_key("default", "checkout")


def _proposal(action: Any) -> Proposal:
    return Proposal("placement", action, "test", risk=0.1)


def test_the_carbon_cap_refuses_new_capacity_in_a_dirty_region_only() -> None:
    obs = observe_checkout(checkout_cluster(replicas=2), 100.0)  # every region at the devcluster's 300 g/kWh
    for action in (Place(CHECKOUT, "edge-cpu-0"), Scale(CHECKOUT, 5), Migrate(CHECKOUT, "edge-cpu-0", "fog-cpu-0")):
        allowed, rejected, _ = filter_proposals(obs, [_proposal(action)], ShieldPolicy(max_carbon_g_per_kwh=200.0),
                                                ShieldState(), guards=(carbon_cap,))
        assert not allowed, action
        assert rejected[0].violation.guard == "carbon"
        assert rejected[0].violation.person_may_approve
    allowed, _, _ = filter_proposals(obs, [_proposal(Scale(CHECKOUT, 1))], ShieldPolicy(max_carbon_g_per_kwh=200.0),
                                     ShieldState(), guards=(carbon_cap,))
    assert allowed  # removing capacity is never held back by the carbon cap
    allowed, _, _ = filter_proposals(obs, [_proposal(Place(CHECKOUT, "edge-cpu-0"))],
                                     ShieldPolicy(max_carbon_g_per_kwh=300.0), ShieldState(), guards=(carbon_cap,))
    assert allowed


def test_min_available_pct_counts_the_share_of_desired_replicas_a_move_must_leave() -> None:
    obs = observe_checkout(checkout_cluster(replicas=4), 100.0)
    move = _proposal(Migrate(CHECKOUT, "edge-cpu-0", "fog-cpu-0"))
    assert filter_proposals(obs, [move], ShieldPolicy(min_available_fraction=0.75), ShieldState(),
                            guards=(min_availability,))[0]  # 3 of 4 left: 75 %
    allowed, rejected, _ = filter_proposals(obs, [move], ShieldPolicy(min_available_fraction=0.9), ShieldState(),
                                            guards=(min_availability,))
    assert not allowed
    assert "at least 4 required" in rejected[0].violation.reason


# ---------------------------------------------------------------------------------------------- tenants
def test_tenants_claims_priority_caps_and_weights_apply_when_binding() -> None:
    p = parse_orchestration_policy(policy(tenantWeights={"retail": 3, "batch": 1}, tenantNamespaces={
        "retail": ["shop"]}, maxPriority=5, tenantPriorityCaps={"batch": 2}))
    objs = [intent("shop-a", namespace="shop", tenant="retail", priority=1000),
            intent("thief", namespace="attacker", tenant="retail", priority=1),
            intent("job", namespace="batch", tenant="batch", priority=4),
            intent("stranger", namespace="other", tenant="nobody", priority=1)]
    deps = by_key([deployment("shop-a", namespace="shop"), deployment("thief", namespace="attacker"),
                   deployment("job", namespace="batch"), deployment("stranger", namespace="other")])
    bound, unbound = adapter.bind(objs, deps, ["region-0"], p)
    weights = {b.intent: b.service.priority_weight for b in bound}
    assert weights == {"shop-a": 5 * 3, "job": 2 * 1}  # capped, then weighed
    notes = {b.intent: b.policy_note for b in bound}
    assert "spec.priority 1000 capped at 5" in notes["shop-a"]
    why = {u.key: u.why for u in unbound}
    assert "may be named only in namespaces shop" in why["attacker/thief"]
    assert "has no weight" in why["other/stranger"]
    assert all(u.degraded for u in unbound)
    # no policy: the intent's own figures, as before
    (free,), _ = adapter.bind(objs[:1], deps, ["region-0"])
    assert free.service.priority_weight == 1000


# ---------------------------------------------------------------------------------------------- the loop
def _loop(api: FakeApi, objs: dict[str, list[dict[str, Any]]], signals: FakeSignals,
          run: str) -> ControlLoop:
    view = ClusterView()
    for kind, items in objs.items():
        for o in items:
            view.apply(kind, None, o)
    return ControlLoop(view, api, LoopSettings(run=run, namespace="ops"), Telemetry(),  # type: ignore[arg-type]
                       signals=signals, signer=SIGNER)


def test_the_loop_decides_with_the_watched_policy_and_keeps_the_last_good_one() -> None:
    world = checkout_cluster()
    objs = {"nodes": world["nodes"], "pods": world["pods"], "deployments": list(world["deployments"].values()),
            "intents": [intent("checkout")], "policies": [policy(energyCapWatts=1234, carbonCapGPerKwh=99)]}
    loop = _loop(FakeApi(), objs, FakeSignals({CHECKOUT: sig(CHECKOUT, 50.0, p95_ms=60.0, p99_ms=90.0)}), "p1")
    asyncio.run(loop.tick())
    assert loop.controller.settings.shield.max_power_w == 1234
    assert loop.controller.settings.shield.max_carbon_g_per_kwh == 99
    loop.view.apply("policies", None, policy(energyCapWatts=-5))  # a malformed edit (the webhook was down)
    asyncio.run(loop.tick())
    assert loop.controller.settings.shield.max_power_w == 1234


def test_a_restarted_operator_still_counts_the_quarantines_of_the_last_hour() -> None:
    """The privileged-rate limit (1 quarantine per hour by default) held in memory only was reset by
    a restart (finding 3): the ledger in the API server carries it over."""
    world = checkout_cluster(replicas=3)
    silent = [replace_ready(n, ready=False) if n["metadata"]["name"] in ("edge-cpu-0", "fog-cpu-0") else n
              for n in world["nodes"]]
    objs = {"nodes": silent, "pods": world["pods"], "deployments": list(world["deployments"].values()),
            "intents": [intent("checkout")]}
    signals = FakeSignals({CHECKOUT: sig(CHECKOUT, 20.0, p95_ms=60.0, p99_ms=90.0)},
                          {n["metadata"]["name"]: node_signals(n["metadata"]["name"], 0.1) for n in silent})
    api = FakeApi()

    def quarantines() -> list[str]:
        return [b["metadata"]["name"] for b in api.to("POST", "/agentactions")
                if b["spec"]["action"]["type"] == "QuarantineNode"
                and any(st["status"]["state"] == "Applied" for st in api.to("PATCH", b["metadata"]["name"]))]

    first = _loop(api, objs, signals, "run1")
    for _ in range(3):
        asyncio.run(first.tick())
    applied_before = quarantines()
    assert len(applied_before) == 1, applied_before
    stored = ledger.decode(api.stored[ledger.path("ops")])
    assert [e.kind for e in stored.events] == ["quarantine"]
    second = _loop(api, objs, signals, "run2")  # a restart: fresh memory, same API server
    for _ in range(3):
        asyncio.run(second.tick())
    assert quarantines() == applied_before


def replace_ready(node: dict[str, Any], ready: bool) -> dict[str, Any]:
    node = {**node, "status": {**node["status"], "conditions": [
        {**c, "status": "True" if ready else "Unknown"} if c["type"] == "Ready" else c
        for c in node["status"]["conditions"]]}}
    return node


def test_a_ledger_written_by_someone_else_since_it_was_read_holds_the_tick() -> None:
    api = FakeApi()

    async def race() -> None:
        mine = await ledger.read(api, "ops")
        theirs = await ledger.append(api, "ops", mine, [_event(10.0)], 0.0)
        assert theirs.resource_version
        try:
            await ledger.append(api, "ops", mine, [_event(11.0)], 0.0)
        except ledger.LedgerConflict:
            return
        raise AssertionError("a stale ledger was written over")

    asyncio.run(race())
    assert [e.at_s for e in ledger.decode(api.stored[ledger.path("ops")]).events] == [10.0]


def _event(at: float) -> Any:
    from kubeagora.decision.shield import DisruptionEvent
    return DisruptionEvent(at, "quarantine", ())



