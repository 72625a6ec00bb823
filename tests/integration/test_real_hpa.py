"""The real HorizontalPodAutoscaler (kube-controller-manager's, default settings) on mock nodes.

The mock kubelet serves ``metrics.k8s.io/v1beta1`` as an aggregated API and registers it; the
devcluster's API server routes to it (``--enable-aggregator-routing``). A Deployment with a CPU
request and an autoscaling/v2 HPA on CPU utilisation then run as on a real cluster: the HPA reads
the pods' usage (from the traffic model) every 15 s, and after a ``POST /load`` burst it scales
the Deployment up by itself. The pods have a CPU request and no limit (Burstable): overloaded, they
use more than their request, and the HPA reads a utilisation above 100 %, as on a real cluster.

The nodes carry a taint unique to this module's mock kubelet and the pods tolerate only that one,
so they land on nothing else (see ``test_mock_kubelet``). The APIService is one per cluster, so a
lock in the cluster's state directory lets one mock kubelet at a time serve it: under xdist a
second worker that runs tests of this module waits for the first to finish them. Timing: pods are Ready ~2 s after
creation; the HPA counts a pod's CPU only once its metric window (15 s) lies after its Ready
transition, and syncs every 15 s: ~30-45 s to a first utilisation, ~15-30 s more to a scale-up.
"""

from __future__ import annotations

import fcntl
import json
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from tests.integration.kube import TAINT_KEY, MockKubelet, apply, kubectl_json, mock_kubelet, wait_for

from kubeagora.devcluster import DevCluster
from kubeagora.devcluster.cluster import free_ports

pytest.importorskip("aiohttp")
pytestmark = pytest.mark.integration

APP = "shop"
BASE_RPS = 40
REPLICAS = 2
TARGET_PCT = 50
BURST_FACTOR = 20


def apiservice_available(cluster: DevCluster) -> bool:
    proc = cluster.kubectl("get", "apiservice", "v1beta1.metrics.k8s.io", "-o", "json")
    if proc.returncode != 0:
        return False
    conditions = json.loads(proc.stdout).get("status", {}).get("conditions") or ()
    return any(c["type"] == "Available" and c["status"] == "True" for c in conditions)


@contextmanager
def metrics_api_lock(cluster: DevCluster, timeout_s: float = 300.0) -> Iterator[None]:
    """Exclusive use of the cluster's metrics.k8s.io APIService (across xdist workers)."""
    with (cluster.layout.root / "metrics-api.lock").open("w") as fh:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    pytest.fail(f"another mock kubelet held the metrics API for {timeout_s:.0f}s", pytrace=False)
                time.sleep(1.0)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


@pytest.fixture(scope="module")
def mock(devcluster: DevCluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[MockKubelet]:
    with metrics_api_lock(devcluster):
        yield from _mock(devcluster, tmp_path_factory)


def _mock(devcluster: DevCluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[MockKubelet]:
    (api_port,) = free_ports(1)
    with mock_kubelet(devcluster, tmp_path_factory.mktemp("mock-kubelet-hpa"), "hpa", 4,
                      "--metrics-api-port", str(api_port), timeout_s=60) as m:
        wait_for("APIService v1beta1.metrics.k8s.io to become Available",
                 lambda: m.alive() or apiservice_available(devcluster), timeout_s=60)
        yield m
    # it unregisters the APIService on the way out (else namespace deletion would stall on discovery)
    assert not apiservice_available(devcluster)


@pytest.fixture(scope="module")
def namespace(devcluster: DevCluster, mock: MockKubelet) -> Iterator[str]:
    name = f"hpa-{uuid.uuid4().hex[:8]}"
    apply(devcluster, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
    wait_for(f"serviceaccount default in {name}",
             lambda: devcluster.kubectl("get", "serviceaccount", "default", "-n", name).returncode == 0,
             timeout_s=90)
    yield name
    devcluster.kubectl("delete", "namespace", name, "--wait=false")


def deployment(namespace: str, prefix: str) -> dict[str, Any]:
    labels = {"app": APP}
    return {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": APP, "namespace": namespace},
        "spec": {
            "replicas": REPLICAS, "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels, "annotations": {"kubeagora.io/rps": str(BASE_RPS),
                                                               "kubeagora.io/cold-start-s": "1",
                                                               "kubeagora.io/template": "web"}},
                "spec": {
                    "nodeSelector": {"kubeagora.io/mock-node": "true", "kubeagora.io/node-class": "cpu"},
                    "tolerations": [{"key": TAINT_KEY, "operator": "Equal", "value": prefix.rstrip("-"),
                                     "effect": "NoSchedule"}],
                    "terminationGracePeriodSeconds": 5,
                    "containers": [{"name": "app", "image": "registry.invalid/shop:1",
                                    "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}}}],
                },
            },
        },
    }


def hpa(namespace: str) -> dict[str, Any]:
    return {
        "apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": APP, "namespace": namespace},
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": APP},
            "minReplicas": REPLICAS, "maxReplicas": 10,
            "metrics": [{"type": "Resource", "resource": {
                "name": "cpu", "target": {"type": "Utilization", "averageUtilization": TARGET_PCT}}}],
        },
    }


@pytest.fixture(scope="module")
def workload(devcluster: DevCluster, namespace: str, mock: MockKubelet) -> str:
    apply(devcluster, deployment(namespace, mock.prefix), hpa(namespace))

    def ready() -> bool:
        d = kubectl_json(devcluster, "get", "deployment", APP, "-n", namespace)
        return bool(d.get("status", {}).get("readyReplicas") == REPLICAS)

    wait_for(f"{REPLICAS} Ready pods of {APP}", ready, timeout_s=60)
    return namespace


def utilisation(cluster: DevCluster, namespace: str) -> int | None:
    status = kubectl_json(cluster, "get", "hpa", APP, "-n", namespace).get("status", {})
    for m in status.get("currentMetrics") or ():
        current = (m.get("resource") or {}).get("current") or {}
        if m.get("type") == "Resource" and "averageUtilization" in current:
            return int(current["averageUtilization"])
    return None


def test_metrics_api_serves_pod_and_node_usage_through_the_api_server(
    devcluster: DevCluster, workload: str, mock: MockKubelet
) -> None:
    path = f"/apis/metrics.k8s.io/v1beta1/namespaces/{workload}/pods?labelSelector=app%3D{APP}"

    def both_pods() -> Any:
        mock.alive()
        proc = devcluster.kubectl("get", "--raw", path)
        assert proc.returncode == 0, proc.stderr
        body = json.loads(proc.stdout)
        return body if len(body["items"]) == REPLICAS else None

    body = wait_for("PodMetrics of both pods", both_pods, timeout_s=30)
    assert body["kind"] == "PodMetricsList"
    for item in body["items"]:
        assert item["metadata"]["labels"]["app"] == APP
        assert item["window"].endswith("s")
        (container,) = item["containers"]
        cores = int(container["usage"]["cpu"].removesuffix("n")) / 1e9
        assert 0.0 < cores <= 0.1 + 1e-6  # busy share of a 100m request
    none = devcluster.kubectl("get", "--raw", path.replace(f"%3D{APP}", "%3Dnothing"))
    assert none.returncode == 0, none.stderr
    assert json.loads(none.stdout)["items"] == []
    bad = devcluster.kubectl("get", "--raw", path.replace(f"app%3D{APP}", "app%20in%20(x"))
    assert bad.returncode != 0
    assert "unbalanced" in bad.stderr
    mock.alive()

    raw = devcluster.kubectl("get", "--raw", "/apis/metrics.k8s.io/v1beta1/nodes")
    assert raw.returncode == 0, raw.stderr
    nodes = json.loads(raw.stdout)
    ours = [n for n in nodes["items"] if n["metadata"]["name"].startswith(mock.prefix)]
    assert len(ours) == 4
    top = devcluster.kubectl("top", "pods", "-n", workload)
    assert top.returncode == 0, top.stderr
    assert top.stdout.count(APP) == REPLICAS


def test_the_real_hpa_sees_burstable_pods_above_their_request_and_scales_up(
    devcluster: DevCluster, workload: str, mock: MockKubelet
) -> None:
    before = wait_for("the HPA to report a current CPU utilisation",
                      lambda: mock.alive() or utilisation(devcluster, workload), timeout_s=60)
    assert 0 < before < TARGET_PCT  # 20 rps per pod x 25 ms: ~17 % of the request
    assert kubectl_json(devcluster, "get", "deployment", APP, "-n", workload)["spec"]["replicas"] == REPLICAS

    reply = mock.request("/load", {"service": APP, "factor": BURST_FACTOR})
    key = f"{workload}/{APP}"  # a service is a workload in its namespace
    rps = BURST_FACTOR * BASE_RPS
    assert reply["services"] == {key: {"rps": pytest.approx(rps), "base_rps": BASE_RPS,
                                       "factor": float(BURST_FACTOR)}}
    assert mock.request("/load")["services"][key]["rps"] == pytest.approx(rps)
    try:
        # 400 rps per pod is 2.5 x what a pod serves at its request: without a CPU limit it uses
        # ~240 % of its request, and the HPA reads that until new pods take the load
        def over_request() -> int | None:
            mock.alive()
            seen = utilisation(devcluster, workload)
            return seen if seen is not None and seen > 100 else None

        seen = wait_for("the HPA to read a utilisation above 100 % of the request", over_request,
                        timeout_s=90, every_s=1.0)
        assert seen > 100

        def scaled_up() -> int | None:
            mock.alive()
            replicas = int(kubectl_json(devcluster, "get", "deployment", APP, "-n", workload)["spec"]["replicas"])
            return replicas if replicas > REPLICAS else None

        replicas = wait_for("the HPA to scale the Deployment up", scaled_up, timeout_s=60)
        status = kubectl_json(devcluster, "get", "hpa", APP, "-n", workload)["status"]
        assert status["desiredReplicas"] >= replicas > REPLICAS
    finally:
        mock.request("/load", {"service": APP, "factor": 1})


def test_bad_load_requests_get_a_400_with_a_reason(mock: MockKubelet, workload: str) -> None:
    for body, reason in (({"service": APP, "factor": -2}, "factor"), ({"service": "nope", "rps": 1}, "no pods"),
                         ({"service": APP}, "exactly one")):
        with pytest.raises(urllib.error.HTTPError) as err:
            mock.request("/load", body)
        assert err.value.code == 400
        assert reason in json.loads(err.value.read())["error"]
    mock.alive()
