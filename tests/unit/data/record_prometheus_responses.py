"""Record ``prometheus_responses.json``: what a real Prometheus answers the operator's queries.

    .venv/bin/python -m tests.unit.data.record_prometheus_responses

Starts the local control plane (cached binary), a mock kubelet with four nodes, and Prometheus
(Debian's) scraping it every 2 s; in namespace ``shop`` it runs ``checkout`` (3 pods, 120 req/s) and
``idle`` (1 pod, no traffic), records the answers to the OpenTelemetry and Istio presets' queries
and the node query (``steady``), then adds ``flood`` (1 pod, 4000 req/s: most dropped) and records
again (``overload``). The query windows are four scrapes (8 s). Takes about two minutes.
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml
from tests.integration.kube import TAINT_KEY, kubectl_json, mock_kubelet, wait_for

from kubeagora.devcluster import DevCluster, resolve_binary
from kubeagora.devcluster.prometheus import JOB_MOCK_KUBELET, PrometheusServer
from kubeagora.operator.metric_presets import ISTIO, OTEL
from kubeagora.operator.metrics_source import PrometheusSignals, Windows, node_queries, service_queries

OUT = Path(__file__).with_name("prometheus_responses.json")
SCRAPE_S = 2.0
WINDOWS = Windows(4 * SCRAPE_S, 4 * SCRAPE_S)
NAMESPACE = "shop"


def deployment(name: str, replicas: int, rps: float, prefix: str) -> dict[str, Any]:
    labels = {"app": name}
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "namespace": NAMESPACE},
            "spec": {"replicas": replicas, "selector": {"matchLabels": labels}, "template": {
                "metadata": {"labels": labels, "annotations": {"kubeagora.io/rps": f"{rps:g}",
                                                               "kubeagora.io/cold-start-s": "1"}},
                "spec": {"nodeSelector": {"kubeagora.io/mock-node": "true"},
                         "tolerations": [{"key": TAINT_KEY, "operator": "Equal", "value": prefix.rstrip("-"),
                                          "effect": "NoSchedule"}],
                         "terminationGracePeriodSeconds": 5,
                         "containers": [{"name": "app", "image": "registry.invalid/app:1",
                                         "resources": {"requests": {"cpu": "250m", "memory": "64Mi"}}}]}}}}


def record(reader: PrometheusSignals) -> dict[str, Any]:
    out: dict[str, Any] = {p.name: {k: reader.query(q) for k, q in service_queries(p, WINDOWS).items()}
                           for p in (OTEL, ISTIO)}
    out["nodes"] = {k: reader.query(q) for k, q in node_queries().items()}
    return out


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        cluster = DevCluster(Path(tmp) / "cluster", binary=resolve_binary())
        cluster.up()
        try:
            with mock_kubelet(cluster, Path(tmp), "rec", 4) as mock:
                prefix = mock.prefix

                def apply(*objs: dict[str, Any]) -> None:
                    proc = cluster.kubectl("apply", "-f", "-", input=yaml.safe_dump_all(objs))
                    assert proc.returncode == 0, proc.stderr

                apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}})
                wait_for("the default service account", lambda: cluster.kubectl(
                    "get", "serviceaccount", "default", "-n", NAMESPACE).returncode == 0, timeout_s=90)
                apply(deployment("checkout", 3, 120, prefix), deployment("idle", 1, 0, prefix))

                def ready(name: str, n: int) -> bool:
                    pods = kubectl_json(cluster, "get", "pods", "-n", NAMESPACE, "-l", f"app={name}")["items"]
                    return len(pods) == n and all(any(c["type"] == "Ready" and c["status"] == "True"
                                                      for c in p["status"].get("conditions") or ()) for p in pods)

                wait_for("checkout and idle Ready", lambda: ready("checkout", 3) and ready("idle", 1), timeout_s=120)
                server = PrometheusServer(Path(tmp) / "prometheus", {JOB_MOCK_KUBELET: [mock.url.removeprefix(
                    "http://")]}, scrape_interval_s=SCRAPE_S, port=0)
                with server:
                    assert server.url is not None
                    reader = PrometheusSignals(server.url, WINDOWS)
                    time.sleep(6 * SCRAPE_S + 5)
                    steady = record(reader)
                    apply(deployment("flood", 1, 4000, prefix))
                    wait_for("flood Ready", lambda: ready("flood", 1), timeout_s=120)
                    time.sleep(6 * SCRAPE_S + 5)
                    overload = record(reader)
        finally:
            cluster.down()
    doc = {"_about": f"Raw results of PrometheusConnect.custom_query for the operator's queries (OpenTelemetry and "
                     f"Istio presets, windows {WINDOWS.rate_s:g} s), recorded from Prometheus (Debian) scraping "
                     f"`kubeagora mock-kubelet --nodes 4` every {SCRAPE_S:g} s by "
                     "tests/unit/data/record_prometheus_responses.py. steady: Deployments shop/checkout (3 pods, "
                     "120 req/s) and shop/idle (1 pod, none). overload: as steady plus shop/flood (1 pod, "
                     "4000 req/s, most dropped).",
           "queries": {p.name: service_queries(p, WINDOWS) for p in (OTEL, ISTIO)},
           "node_queries": node_queries(), "steady": steady, "overload": overload}
    OUT.write_text(json.dumps(doc, indent=1) + "\n")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
