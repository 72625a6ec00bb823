"""Finding 1 — a confused deputy through AgentActions.

The attacks, each on the real API server against the operator's own control loop:

- a tenant writes an AgentAction in its own namespace that looks like an earlier operator run's
  canary, whose undo actions scale another tenant's Deployment to 0 and taint a node; a restarted
  operator used to carry them out;
- a tenant answers ``Approved`` on a look-alike of an AgentAction that awaits another tenant's
  answer (same name, labels and rollout id, in its own namespace); approvals used to be matched by
  the run label and the name's ``-rN`` suffix;
- a node action (quarantine) used to be recorded in the namespace of the first tenant with a pod on
  the node, so that tenant could approve quarantining a shared node.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from tests.integration.kube import apply, kubectl_json, mock_kubelet, wait_for
from tests.security.live import LiveLoop, namespace, unique, workload

from kubeagora.devcluster import DevCluster
from kubeagora.operator.loop import LoopSettings

pytest.importorskip("kopf")
pytestmark = pytest.mark.integration




def forged(ns: str, name: str, run: str, rollback: list[dict[str, Any]], state: str = "Canary",
           service: str = "checkout", **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "kubeagora.io/v1alpha1", "kind": "AgentAction",
            "metadata": {"name": name, "namespace": ns,
                         "labels": {"kubeagora.io/operator-run": run, "kubeagora.io/intent": "checkout"}},
            "spec": {"intentRef": {"name": "checkout"}, "agent": "scaling",
                     "action": {"type": "Scale", "service": service, "replicas": 3}, **spec},
            "status": {"state": state, "transitions": [], "rollback": rollback}}


def put(cluster: DevCluster, obj: dict[str, Any]) -> None:
    """Create an AgentAction and set its status (a tenant with write access to both can)."""
    status = obj.pop("status")
    apply(cluster, obj)
    meta = obj["metadata"]
    proc = cluster.kubectl("patch", "agentaction", meta["name"], "-n", meta["namespace"], "--subresource=status",
                           "--type=merge", "-p", json.dumps({"status": status}))
    assert proc.returncode == 0, proc.stderr


@pytest.fixture
def world(crds: DevCluster, tmp_path: Path) -> Any:
    shop, attacker, ops = (namespace(crds, unique(s)) for s in ("sec-shop", "sec-attacker", "sec-ops"))
    with mock_kubelet(crds, tmp_path, "sec-forge", 2) as kubelet:
        apply(crds, *workload(shop, "checkout", kubelet.prefix, pods=3))
        wait_for("checkout's pods to be Ready", lambda: kubectl_json(
            crds, "get", "deployment", "checkout", "-n", shop)["status"].get("readyReplicas") == 3, timeout_s=90)
        nodes = [n["metadata"]["name"] for n in kubectl_json(crds, "get", "nodes")["items"]
                 if n["metadata"]["name"].startswith(kubelet.prefix)]
        yield crds, shop, attacker, ops, nodes, kubelet.prefix
    crds.kubectl("delete", "namespace", shop, attacker, ops, "--wait=false")


def test_a_forged_canary_in_a_tenants_namespace_is_not_rolled_back(world: Any) -> None:
    cluster, shop, attacker, ops, nodes, _ = world
    put(cluster, forged(attacker, "checkout-0ld0ld-r7", "0ld0ld",
                        [{"type": "Scale", "service": f"{shop}/checkout", "replicas": 0},
                         {"type": "QuarantineNode", "node": nodes[0]}]))
    # even a copy of a genuine-looking record in the victim's own namespace, without the operator's key
    put(cluster, forged(shop, "checkout-0ld0ld-r8", "0ld0ld", [{"type": "Scale", "service": f"{shop}/checkout",
                                                                "replicas": 0}]))

    async def restart() -> None:
        async with LiveLoop(cluster, [shop, attacker], nodes, LoopSettings(namespace=ops, run="n3wrun")) as live:
            for _ in range(2):
                await live.tick()

    asyncio.run(restart())
    assert kubectl_json(cluster, "get", "deployment", "checkout", "-n", shop)["spec"]["replicas"] == 3
    for node in kubectl_json(cluster, "get", "nodes")["items"]:
        if node["metadata"]["name"] in nodes:
            assert not any(t["key"] == "kubeagora.io/quarantined" for t in node["spec"].get("taints") or ())
    for ns, name in ((attacker, "checkout-0ld0ld-r7"), (shop, "checkout-0ld0ld-r8")):
        assert kubectl_json(cluster, "get", "agentaction", name, "-n", ns)["status"]["state"] == "Canary"


def test_an_approval_on_a_look_alike_in_another_namespace_approves_nothing(world: Any) -> None:
    cluster, shop, attacker, ops, nodes, prefix = world
    gated = unique("gated")
    apply(cluster, *workload(shop, gated, prefix, autonomy="approve"))

    async def scenario() -> dict[str, Any]:
        async with LiveLoop(cluster, [shop, attacker], nodes, LoopSettings(namespace=ops)) as live:
            live.signals.set(f"{shop}/{gated}", 600.0, p95_ms=900.0, p99_ms=2000.0)
            held = None
            for _ in range(20):
                await live.tick()
                held = next((a for a in kubectl_json(cluster, "get", "agentactions", "-n", shop)["items"]
                             if a["spec"]["intentRef"]["name"] == gated
                             and a["status"].get("state") == "AwaitingApproval"), None)
                if held:
                    break
            assert held, "no decision waits for a person"
            lookalike = forged(attacker, held["metadata"]["name"], held["metadata"]["labels"][
                "kubeagora.io/operator-run"], [], state="AwaitingApproval", approval="Approved", approver="mallory")
            lookalike["spec"]["intentRef"]["name"] = gated
            put(cluster, lookalike)
            for _ in range(3):
                await live.tick()
            return held

    held = asyncio.run(scenario())
    after = kubectl_json(cluster, "get", "agentaction", held["metadata"]["name"], "-n", shop)
    assert after["status"]["state"] == "AwaitingApproval"
    assert kubectl_json(cluster, "get", "deployment", gated, "-n", shop)["spec"]["replicas"] == 1
