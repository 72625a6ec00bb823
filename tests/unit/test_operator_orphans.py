"""Nodes no live kubelet plays: one finding, not a quarantine request per node per tick."""

from __future__ import annotations

import asyncio
from typing import Any

from tests.unit.operator_objects import node, pod, signals
from tests.unit.test_operator_control_loop import CHECKOUT, FakeSignals, loop_over
from tests.unit.test_operator_control_loop import world_of as checkout_world

from kubeagora.model import NodeClass, Tier
from kubeagora.operator import orphans


def dead(name: str, index: int) -> dict[str, Any]:
    """A node whose kubelet is gone: the node lifecycle controller set its Ready condition Unknown."""
    obj = node(name, Tier.EDGE, NodeClass.MCU, index=index)
    for c in obj["status"]["conditions"]:
        c["status"] = "Unknown"
        c["reason"] = "NodeStatusUnknown"
    return obj


def test_dead_nodes_without_managed_pods_are_orphaned_and_dead_nodes_with_them_are_not() -> None:
    live = node("cloud-cpu-0")
    empty, hosting = dead("edge-mcu-0", 1), dead("edge-mcu-1", 2)
    never_posted = node("edge-mcu-2", Tier.EDGE, NodeClass.MCU, index=3)
    never_posted["status"]["conditions"] = []
    managed = [pod("checkout-0", "checkout", "edge-mcu-1"), pod("checkout-1", "checkout", "edge-mcu-0",
                                                                 terminating=True)]
    kept, orphaned = orphans.split([live, empty, hosting, never_posted], managed)
    assert [n["metadata"]["name"] for n in kept] == ["cloud-cpu-0", "edge-mcu-1"]
    assert orphaned == ["edge-mcu-0", "edge-mcu-2"]
    assert not orphans.no_live_kubelet(node("edge-mcu-3", ready=False)), "a kubelet saying NotReady is alive"


def test_the_finding_names_a_few_and_counts_the_rest() -> None:
    found = orphans.finding([f"edge-mcu-{i}" for i in range(20)])
    assert found.present
    assert found.message.startswith("20 node(s) have no live kubelet")
    assert "edge-mcu-4 and 15 more" in found.message
    assert "kubectl delete node" in found.message
    assert not orphans.finding([]).present


def test_an_old_topologys_twenty_dead_nodes_make_one_finding_and_no_quarantine_requests() -> None:
    """The issue: after down/up with a new topology, the old nodes stayed NotReady and the reliability
    agent filed 20+ QuarantineNode AgentActions within 60 s."""
    world = checkout_world(replicas=2)
    world["nodes"] += [dead(f"edge-mcu-old-{i}", 10 + i) for i in range(20)]
    quiet = FakeSignals({CHECKOUT: signals(CHECKOUT, 50.0, p95_ms=60.0, p99_ms=90.0)})
    loop, api = loop_over(world, quiet)
    for _ in range(12):  # a minute of ticks
        asyncio.run(loop.tick())
    actions = [b for b in api.to("POST", "/agentactions") if b.get("kind") == "AgentAction"]
    assert not [a for a in actions if a["spec"]["action"]["type"] == "QuarantineNode"]
    warnings = [e for e in api.to("POST", "/events") if e["reason"] == "OrphanedNodes"]
    assert len(warnings) == 1
    assert warnings[0]["message"].startswith("20 node(s)")
    status = api.to("PATCH", "/orchestrationintents/checkout/status")[-1]["status"]
    finding = next(c for c in status["conditions"] if c["type"] == orphans.CONDITION)
    assert (finding["status"], finding["reason"]) == ("True", "NoLiveKubelet")
