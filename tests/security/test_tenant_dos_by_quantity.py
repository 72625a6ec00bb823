"""Finding 2 — one tenant stops the operator for everyone.

The attack: a tenant's Deployment asks for ``nvidia.com/gpu: 1000``; the API server stores it as
``"1k"``, which the operator once read with ``int(float(...))`` outside any try: every tick failed for
every tenant while ``/healthz`` stayed green. Here the attack runs against the real API server and
the operator's own control loop: the other tenant's burst must still be scaled, and the attacker's
intent must say, in its ``Degraded`` condition, why it is not managed.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from tests.integration.kube import apply, kubectl_json, mock_kubelet, wait_for
from tests.security.live import LiveLoop, namespace, unique, workload

from kubeagora.devcluster import DevCluster

pytest.importorskip("kopf")
pytestmark = pytest.mark.integration



def test_a_thousand_gpus_stored_as_1k_degrade_only_the_tenant_that_asked(crds: DevCluster, tmp_path: Path) -> None:
    greedy_ns, shop_ns = namespace(crds, unique("sec-greedy")), namespace(crds, unique("sec-shop"))
    with mock_kubelet(crds, tmp_path, "sec-dos", 2) as kubelet:
        apply(crds, *workload(shop_ns, "checkout", kubelet.prefix, requests={"cpu": "250m"}))
        apply(crds, *workload(greedy_ns, "greedy", kubelet.prefix, requests={"cpu": "250m", "nvidia.com/gpu": "1000"}))
        stored = kubectl_json(crds, "get", "deployment", "greedy", "-n", greedy_ns)
        requests = stored["spec"]["template"]["spec"]["containers"][0]["resources"]["requests"]
        assert requests["nvidia.com/gpu"] == "1k"  # what the operator reads back
        wait_for("checkout's pod to be Ready", lambda: kubectl_json(
            crds, "get", "deployment", "checkout", "-n", shop_ns)["status"].get("readyReplicas"), timeout_s=90)
        nodes = [n["metadata"]["name"] for n in kubectl_json(crds, "get", "nodes")["items"]
                 if n["metadata"]["name"].startswith(kubelet.prefix)]

        async def attack() -> list[str]:
            async with LiveLoop(crds, [greedy_ns, shop_ns], nodes) as live:
                live.signals.set(f"{shop_ns}/checkout", 600.0, p95_ms=900.0, p99_ms=2000.0)
                return [await live.tick() for _ in range(3)]

        results = asyncio.run(attack())
    assert results == ["decided"] * 3
    assert kubectl_json(crds, "get", "deployment", "checkout", "-n", shop_ns)["spec"]["replicas"] > 1
    greedy = kubectl_json(crds, "get", "intent", "greedy", "-n", greedy_ns)
    degraded = next(c for c in greedy["status"]["conditions"] if c["type"] == "Degraded")
    assert degraded["status"] == "True"
    assert "requests 1000 accelerators" in degraded["message"], degraded
    crds.kubectl("delete", "namespace", greedy_ns, shop_ns, "--wait=false")
