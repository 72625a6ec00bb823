"""Finding 3 — the OrchestrationPolicy was not enforced at runtime.

Only the admission webhook read the policy; the control loop decided with default settings, the
quarantine limit lived in memory and a restart reset it, and tenants set their own tenant and
priority (up to 1000). Here the operator's own control loop runs against the real API server, with
a policy of the test's own name (no webhook runs: what admission would have refused is in the
cluster already, as after a policy change):

- a restarted operator still counts the quarantine of the last hour (the ledger in a ConfigMap);
- the carbon and energy caps hold a burst's scale-up for a person;
- a tenant named from a namespace the policy does not allow is not managed; a priority above the
  tenant's cap is capped; the tenant's weight multiplies its services' priority; minAvailablePct
  reaches the shield.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import pytest
from tests.integration.kube import apply, kubectl_json, mock_kubelet, wait_for
from tests.security.live import LiveLoop, namespace, unique, workload

from kubeagora.devcluster import DevCluster
from kubeagora.model import Observation
from kubeagora.operator.loop import LoopSettings

pytest.importorskip("kopf")
pytestmark = pytest.mark.integration




def policy(name: str, **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "kubeagora.io/v1alpha1", "kind": "OrchestrationPolicy", "metadata": {"name": name},
            "spec": spec}


@pytest.fixture(scope="module")
def kubelet(crds: DevCluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[DevCluster, str, list[str]]]:
    with mock_kubelet(crds, tmp_path_factory.mktemp("policy"), "sec-pol", 2) as k:
        nodes = [n["metadata"]["name"] for n in kubectl_json(crds, "get", "nodes")["items"]
                 if n["metadata"]["name"].startswith(k.prefix)]
        yield crds, k.prefix, nodes


def ready(cluster: DevCluster, ns: str, name: str, replicas: int = 1) -> None:
    wait_for(f"{ns}/{name} to be Ready", lambda: kubectl_json(
        cluster, "get", "deployment", name, "-n", ns)["status"].get("readyReplicas") == replicas, timeout_s=90)


def test_a_restarted_operator_still_counts_the_last_hours_quarantine(kubelet: Any) -> None:
    """Two silent nodes (Node objects no kubelet renews): the default limit is one quarantine per hour."""
    cluster, prefix, nodes = kubelet
    ns, ops = namespace(cluster, unique("sec-ledger")), unique("sec-ops")
    apply(cluster, *workload(ns, "web", prefix))
    ready(cluster, ns, "web")
    silent = [unique("sec-silent") for _ in range(2)]
    for i, name in enumerate(silent):
        apply(cluster, {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name}})
        # a managed replica bound to each silent node (a node holding nothing is an orphan the agents skip)
        pinned = workload(ns, f"pinned-{i}", prefix, replicas={"min": 1, "max": 1})
        template = pinned[1]["spec"]["template"]["spec"]
        template["nodeName"] = name
        template["tolerations"] = [{"operator": "Exists"}]
        apply(cluster, *pinned)

    def quarantined() -> list[str]:
        return sorted(n["metadata"]["name"] for n in kubectl_json(cluster, "get", "nodes")["items"]
                      if n["metadata"]["name"] in silent
                      and any(t["key"] == "kubeagora.io/quarantined" for t in n["spec"].get("taints") or ()))

    async def run(name: str) -> None:
        async with LiveLoop(cluster, [ns], [*nodes, *silent], LoopSettings(namespace=ops, run=name)) as live:
            live.signals.set(f"{ns}/web", 5.0, p95_ms=40.0, p99_ms=60.0)
            for _ in range(3):
                await live.tick()

    try:
        asyncio.run(run("first"))
        assert len(quarantined()) == 1
        ledger = kubectl_json(cluster, "get", "configmap", "kubeagora-action-ledger", "-n", ops)
        assert [e["kind"] for e in json.loads(ledger["data"]["events.json"])] == ["quarantine"]
        asyncio.run(run("second"))  # a restart: a new process, the same API server
        assert len(quarantined()) == 1, "the restart reset the privileged-action limit"
    finally:
        cluster.kubectl("delete", "node", *silent, "--ignore-not-found")
        cluster.kubectl("delete", "namespace", ns, ops, "--wait=false")


@pytest.mark.parametrize(("spec", "guard"), [({"carbonCapGPerKwh": 100}, "carbon"),
                                             ({"energyCapWatts": 1}, "budget")])
def test_the_carbon_and_energy_caps_hold_a_scale_up_for_a_person(kubelet: Any, spec: dict[str, Any],
                                                                 guard: str) -> None:
    cluster, prefix, nodes = kubelet
    ns, name = namespace(cluster, unique("sec-caps")), unique("caps")
    apply(cluster, policy(name, **spec), *workload(ns, "web", prefix))
    ready(cluster, ns, "web")

    async def burst() -> None:
        settings = LoopSettings(namespace=unique("sec-ops"), policy_name=name)
        async with LiveLoop(cluster, [ns], nodes, settings, policies=[name]) as live:
            live.signals.set(f"{ns}/web", 600.0, p95_ms=900.0, p99_ms=2000.0)
            for _ in range(3):
                await live.tick()

    try:
        asyncio.run(burst())
        assert kubectl_json(cluster, "get", "deployment", "web", "-n", ns)["spec"]["replicas"] == 1
        held = [a for a in kubectl_json(cluster, "get", "agentactions", "-n", ns)["items"]
                if (a.get("status") or {}).get("state") == "AwaitingApproval"]
        assert held, "nothing waits for a person"
        assert any(f"shield: {guard}:" in a["status"]["message"] for a in held), [a["status"]["message"] for a in held]
    finally:
        cluster.kubectl("delete", "orchestrationpolicy", name, "--ignore-not-found")
        cluster.kubectl("delete", "namespace", ns, "--wait=false")


def test_tenants_priorities_weights_and_availability_apply_at_runtime(kubelet: Any) -> None:
    cluster, prefix, nodes = kubelet
    shop, rogue, name = namespace(cluster, unique("sec-shop")), namespace(cluster, unique("sec-rogue")), unique("ten")
    apply(cluster, *workload(shop, "web", prefix, tenant="gold", priority=1000),
          *workload(rogue, "web", prefix, tenant="gold", priority=1))
    apply(cluster, policy(name, tenantWeights={"gold": 3}, tenantNamespaces={"gold": [shop]}, maxPriority=5,
                          disruptionBudget={"minAvailablePct": 75}))
    ready(cluster, shop, "web")
    seen: list[Observation] = []

    async def tick() -> LiveLoop:
        settings = LoopSettings(namespace=unique("sec-ops"), policy_name=name)
        async with LiveLoop(cluster, [shop, rogue], nodes, settings, policies=[name]) as live:
            live.signals.set(f"{shop}/web", 5.0, p95_ms=40.0, p99_ms=60.0)
            assert live.loop is not None
            decide = live.loop.controller.decide

            def watched(observation: Observation, state: Any) -> Any:
                seen.append(observation)
                return decide(observation, state)

            live.loop.controller.decide = watched  # type: ignore[method-assign]
            await live.tick()
            return live

    try:
        live = asyncio.run(tick())
        assert live.loop is not None
        assert live.loop.controller.settings.shield.min_available_fraction == 0.75
        (observation,) = seen
        (service,) = observation.services
        assert service.name == f"{shop}/web"
        assert service.priority_weight == 5 * 3  # capped at 5, times the tenant's weight
        managed = kubectl_json(cluster, "get", "intent", "web", "-n", shop)["status"]["conditions"]
        assert "spec.priority 1000 capped at 5" in next(c for c in managed if c["type"] == "Ready")["message"]
        refused = kubectl_json(cluster, "get", "intent", "web", "-n", rogue)["status"]["conditions"]
        degraded = next(c for c in refused if c["type"] == "Degraded")
        assert degraded["status"] == "True"
        assert f"may be named only in namespaces {shop}" in degraded["message"]
    finally:
        cluster.kubectl("delete", "orchestrationpolicy", name, "--ignore-not-found")
        cluster.kubectl("delete", "namespace", shop, rogue, "--wait=false")


