"""The mock kubelet against the real control plane: nodes, pods, the scheduler, node loss, /metrics.

One mock kubelet (a subprocess, always stopped) per module and xdist worker plays a ~20-node
topology. Its nodes carry a taint whose value is unique to this instance, and the test pods
tolerate only that value and select ``kubeagora.io/mock-node=true``: pods of other tests (and of
another worker's instance) never land on these nodes, and these pods land on nothing else.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from tests.integration.kube import TAINT_KEY, MockKubelet, apply, kubectl_json, mock_kubelet, wait_for

from kubeagora.devcluster import DevCluster

pytest.importorskip("aiohttp")
pytestmark = pytest.mark.integration

WEB_REPLICAS = 50


@pytest.fixture(scope="module")
def mock(devcluster: DevCluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[MockKubelet]:
    with mock_kubelet(devcluster, tmp_path_factory.mktemp("mock-kubelet"), "mk", 20, "--default-rps", "50") as m:
        yield m


@pytest.fixture(scope="module")
def namespace(devcluster: DevCluster) -> Iterator[str]:
    name = f"mk-{uuid.uuid4().hex[:8]}"
    apply(devcluster, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
    wait_for(f"serviceaccount default in {name}",
             lambda: devcluster.kubectl("get", "serviceaccount", "default", "-n", name).returncode == 0,
             timeout_s=90)
    yield name
    devcluster.kubectl("delete", "namespace", name, "--wait=false")


def deployment(name: str, replicas: int, prefix: str, resources: dict[str, Any] | None = None) -> dict[str, Any]:
    labels = {"app": name, "kubeagora.io/service": name}
    tolerations = [{"key": TAINT_KEY, "operator": "Equal", "value": prefix.rstrip("-"), "effect": "NoSchedule"}] + [
        {"key": key, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 10}
        for key in ("node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable")
    ]
    return {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
        "spec": {
            "replicas": replicas, "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels, "annotations": {"kubeagora.io/cold-start-s": "1",
                                                               "kubeagora.io/rps": "100"}},
                "spec": {
                    "nodeSelector": {"kubeagora.io/mock-node": "true"},
                    "tolerations": tolerations,
                    "terminationGracePeriodSeconds": 5,
                    "containers": [{"name": "app", "image": "registry.invalid/app:1",
                                    "resources": resources or {"requests": {"cpu": "20m", "memory": "16Mi"}}}],
                },
            },
        },
    }


def live_pods(cluster: DevCluster, namespace: str, app: str) -> list[dict[str, Any]]:
    items = kubectl_json(cluster, "get", "pods", "-n", namespace, "-l", f"app={app}")["items"]
    return [p for p in items if not p["metadata"].get("deletionTimestamp")]


def ready(pod: dict[str, Any]) -> bool:
    return pod["status"].get("phase") == "Running" and any(
        c["type"] == "Ready" and c["status"] == "True" for c in pod["status"].get("conditions") or ())


def all_ready(cluster: DevCluster, namespace: str, app: str, n: int) -> list[dict[str, Any]] | None:
    pods = live_pods(cluster, namespace, app)
    return pods if len(pods) == n and all(ready(p) for p in pods) else None


@pytest.fixture(scope="module")
def web(devcluster: DevCluster, namespace: str, mock: MockKubelet) -> str:
    apply(devcluster, {**deployment("web", WEB_REPLICAS, mock.prefix), "metadata": {"name": "web",
                                                                                    "namespace": namespace}})
    wait_for(f"{WEB_REPLICAS} Running Ready pods", lambda: all_ready(devcluster, namespace, "web", WEB_REPLICAS),
             timeout_s=120)
    return "web"


def node_classes(cluster: DevCluster, prefix: str) -> dict[str, str]:
    items = kubectl_json(cluster, "get", "nodes", "-l", "kubeagora.io/mock-node=true")["items"]
    return {n["metadata"]["name"]: n["metadata"]["labels"]["kubeagora.io/node-class"]
            for n in items if n["metadata"]["name"].startswith(prefix)}


def test_kubectl_shows_the_mock_nodes_with_their_tiers(devcluster: DevCluster, mock: MockKubelet) -> None:
    proc = devcluster.kubectl("get", "nodes", "-l", "kubeagora.io/mock-node=true", "-L", "kubeagora.io/tier")
    assert proc.returncode == 0, proc.stderr
    rows = [line.split() for line in proc.stdout.splitlines()[1:] if line.startswith(mock.prefix)]
    assert len(rows) >= 17
    assert {r[1] for r in rows} == {"Ready"}
    assert {r[-1] for r in rows} == {"edge", "fog", "cloud"}
    leases = kubectl_json(devcluster, "get", "leases", "-n", "kube-node-lease")["items"]
    assert {r[0] for r in rows} <= {item["metadata"]["name"] for item in leases}


def test_deployment_of_50_runs_on_mock_nodes(devcluster: DevCluster, namespace: str, mock: MockKubelet,
                                             web: str) -> None:
    pods = live_pods(devcluster, namespace, web)
    assert len(pods) == WEB_REPLICAS
    assert all(p["spec"]["nodeName"].startswith(mock.prefix) for p in pods)
    ips = [p["status"]["podIP"] for p in pods]
    assert len(set(ips)) == WEB_REPLICAS
    assert all(ip.startswith("10.") for ip in ips)
    statuses = [p["status"]["containerStatuses"][0] for p in pods]
    assert all(s["ready"] and s["started"] and "running" in s["state"] for s in statuses)


def test_gpu_pods_land_only_on_gpu_nodes(devcluster: DevCluster, namespace: str, mock: MockKubelet) -> None:
    gpu = {"limits": {"nvidia.com/gpu": "1"}, "requests": {"cpu": "100m", "memory": "64Mi"}}
    apply(devcluster, {**deployment("infer", 3, mock.prefix, gpu), "metadata": {"name": "infer",
                                                                                "namespace": namespace}})
    pods = wait_for("3 Ready GPU pods", lambda: all_ready(devcluster, namespace, "infer", 3), timeout_s=90)
    classes = node_classes(devcluster, mock.prefix)
    assert {classes[p["spec"]["nodeName"]] for p in pods} == {"gpu"}


def histogram_quantile(q: float, buckets: list[tuple[float, float]]) -> float:
    """Prometheus's histogram_quantile over cumulative (le, count) buckets, +Inf last."""
    buckets = sorted(buckets)
    total = buckets[-1][1]
    rank = q * total
    prev_le, prev_count = 0.0, 0.0
    for le, count in buckets:
        if count >= rank:
            if math.isinf(le):
                return prev_le
            return prev_le + (le - prev_le) * (rank - prev_count) / max(count - prev_count, 1e-12)
        prev_le, prev_count = le, count
    return math.nan


def scrape(mock: MockKubelet) -> dict[str, list[tuple[dict[str, str], float]]]:
    out: dict[str, list[tuple[dict[str, str], float]]] = {}
    for line in mock.get("/metrics").decode().splitlines():
        if not line or line.startswith("#"):
            continue
        head, _, value = line.rpartition(" ")
        name, _, rest = head.partition("{")
        labels = dict(kv.split("=", 1) for kv in rest.rstrip("}").split(",") if kv) if rest else {}
        out.setdefault(name, []).append(({k: v.strip('"') for k, v in labels.items()}, float(value)))
    return out


def test_metrics_histograms_give_quantiles(mock: MockKubelet, web: str, namespace: str) -> None:
    def mine(labels: dict[str, str], code: str = "200") -> bool:
        return (labels.get("k8s_deployment_name") == web and labels.get("k8s_namespace_name") == namespace
                and labels.get("http_response_status_code") == code)

    otel = "http_server_request_duration_seconds"

    def served() -> dict[str, list[tuple[dict[str, str], float]]] | None:
        m = scrape(mock)
        counts = [v for labels, v in m.get(f"{otel}_count", []) if mine(labels)]
        return m if counts and counts[0] > 200 else None

    metrics = wait_for("requests served by the web pods", served, timeout_s=30)
    buckets = [(float(labels["le"]), v) for labels, v in metrics[f"{otel}_bucket"] if mine(labels)]
    assert len(buckets) > 10
    p50, p95 = histogram_quantile(0.5, buckets), histogram_quantile(0.95, buckets)
    assert 0.005 < p50 <= p95 < 2.0  # 25 ms service time plus tens of ms of network
    count = [v for labels, v in metrics[f"{otel}_count"] if mine(labels)]
    assert count[0] == max(v for _, v in buckets)
    istio = [v for labels, v in metrics["istio_requests_total"] if labels.get("destination_workload") == web
             and labels.get("destination_workload_namespace") == namespace and labels.get("response_code") == "200"]
    assert istio == count  # the mesh preset's counter sees the same requests
    power = metrics["kubeagora_node_power_watts"]
    assert len(power) >= 17
    assert all(v > 0 for _, v in power)
    assert any(v > 0 for _, v in metrics["kubeagora_node_utilization_ratio"])


def test_terminated_node_goes_not_ready_and_its_pods_are_replaced(
    devcluster: DevCluster, namespace: str, mock: MockKubelet, web: str
) -> None:
    pods = live_pods(devcluster, namespace, web)
    by_node: dict[str, int] = {}
    for p in pods:
        by_node[p["spec"]["nodeName"]] = by_node.get(p["spec"]["nodeName"], 0) + 1
    victim = max(by_node, key=lambda n: by_node[n])
    mock.post("/faults", {"kind": "node-termination", "node": victim})
    try:
        def not_ready() -> bool:
            node = kubectl_json(devcluster, "get", "node", victim)
            cond = [c for c in node["status"]["conditions"] if c["type"] == "Ready"]
            return bool(cond) and cond[0]["status"] != "True"

        wait_for(f"the node lifecycle controller to mark {victim} NotReady", not_ready, timeout_s=90)

        def replaced() -> bool:
            now = live_pods(devcluster, namespace, web)
            return len(now) == WEB_REPLICAS and all(ready(p) and p["spec"]["nodeName"] != victim for p in now)

        wait_for(f"{by_node[victim]} pods of {victim} to be evicted and replaced elsewhere", replaced, timeout_s=120)
    finally:
        mock.post("/faults", {}, method="DELETE")
    # the node comes back: Ready again, and the evicted pods it held are finally deleted
    wait_for(f"{victim} Ready again", lambda: not not_ready(), timeout_s=60)
