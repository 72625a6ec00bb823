"""A real Prometheus scrapes the mock kubelet, and the operator's reader gets rates and percentiles from it.

The mock kubelet (a subprocess) plays a few tainted nodes, as in ``test_mock_kubelet``; a Deployment
whose pods carry ``kubeagora.io/rps`` gets traffic; Prometheus (Debian's binary, fetched and
cached without root when it is not on PATH) scrapes it every 2 s; ``PrometheusSignals`` must then
report the offered rate within 30 % and finite percentiles. Skipped only where Prometheus cannot
be obtained at all (no ``prometheus`` binary and no apt-get/dpkg-deb).
"""

from __future__ import annotations

import math
import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from tests.integration.kube import TAINT_KEY, apply, kubectl_json, mock_kubelet, wait_for

from kubeagora.devcluster import DevCluster
from kubeagora.devcluster.prometheus import (
    JOB_MOCK_KUBELET,
    JOBS,
    PROMETHEUS_ENV,
    PrometheusServer,
    cached_binary,
    promtool_for,
    resolve_prometheus,
    scrape_config,
)
from kubeagora.operator.metrics_source import MetricsUnavailable, PrometheusSignals, ServiceSignals, Windows
from kubeagora.operator.scrape_interval import read_scrape_interval_s, scrape_interval_s

pytest.importorskip("aiohttp")
pytest.importorskip("prometheus_api_client")
pytestmark = pytest.mark.integration

OFFERED_RPS = 80.0
REPLICAS = 3


def _obtainable() -> bool:
    return bool(os.environ.get(PROMETHEUS_ENV) or shutil.which("prometheus") or cached_binary()
                or (shutil.which("apt-get") and shutil.which("dpkg-deb")))


@pytest.fixture(scope="module")
def prometheus_binary() -> Path:
    if not _obtainable():
        pytest.skip("Prometheus cannot be obtained: no prometheus on PATH, no cached copy, and no apt-get/dpkg-deb "
                    f"to fetch Debian's package (or set ${PROMETHEUS_ENV})")
    return resolve_prometheus()  # a failure here is a failure, not a skip


@pytest.fixture(scope="module")
def mock(devcluster: DevCluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """(prefix of its node names, HOST:PORT of its /metrics)."""
    with mock_kubelet(devcluster, tmp_path_factory.mktemp("mock-kubelet"), "pr", 6, "--default-rps", "5") as m:
        yield m.prefix, m.url.removeprefix("http://")


def deployment(name: str, namespace: str, prefix: str) -> dict[str, Any]:
    labels = {"app": name}
    return {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "replicas": REPLICAS, "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels, "annotations": {"kubeagora.io/rps": f"{OFFERED_RPS:g}",
                                                               "kubeagora.io/cold-start-s": "1"}},
                "spec": {
                    "nodeSelector": {"kubeagora.io/mock-node": "true"},
                    "tolerations": [{"key": TAINT_KEY, "operator": "Equal", "value": prefix.rstrip("-"),
                                     "effect": "NoSchedule"}],
                    "terminationGracePeriodSeconds": 5,
                    "containers": [{"name": "app", "image": "registry.invalid/app:1",
                                    "resources": {"requests": {"cpu": "20m", "memory": "16Mi"}}}],
                },
            },
        },
    }


@pytest.fixture(scope="module")
def service(devcluster: DevCluster, mock: tuple[str, str]) -> Iterator[str]:
    """A service running on the mock nodes, "namespace/name" (a Deployment, label app=NAME)."""
    prefix, _ = mock
    namespace, name = f"pr-{uuid.uuid4().hex[:8]}", f"shop{uuid.uuid4().hex[:4]}"
    apply(devcluster, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}})
    wait_for(f"serviceaccount default in {namespace}",
             lambda: devcluster.kubectl("get", "serviceaccount", "default", "-n", namespace).returncode == 0,
             timeout_s=90)
    apply(devcluster, deployment(name, namespace, prefix))

    def all_ready() -> bool:
        pods = kubectl_json(devcluster, "get", "pods", "-n", namespace, "-l", f"app={name}")["items"]
        return len(pods) == REPLICAS and all(
            any(c["type"] == "Ready" and c["status"] == "True" for c in p["status"].get("conditions") or ())
            for p in pods)

    wait_for(f"{REPLICAS} Ready pods of {name}", all_ready, timeout_s=120)
    yield f"{namespace}/{name}"
    devcluster.kubectl("delete", "namespace", namespace, "--wait=false")


@pytest.fixture(scope="module")
def prometheus(prometheus_binary: Path, mock: tuple[str, str],
               tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrometheusServer]:
    _, target = mock
    server = PrometheusServer(tmp_path_factory.mktemp("prometheus"), {JOB_MOCK_KUBELET: [target]},
                              scrape_interval_s=2.0, port=0, binary=prometheus_binary)
    with server:
        yield server


def test_reader_sees_the_offered_rate_and_finite_percentiles(
    prometheus: PrometheusServer, service: str, mock: tuple[str, str]
) -> None:
    assert prometheus.url is not None
    reader = PrometheusSignals(prometheus.url, Windows.for_scrape_interval(2.0))

    def settled() -> ServiceSignals | None:
        signals = reader.services().services.get(service)
        if signals is None or not math.isfinite(signals.p99_ms):
            return None
        return signals if abs(signals.served_rps - OFFERED_RPS) <= 0.3 * OFFERED_RPS else None

    signals = wait_for(f"Prometheus to report ~{OFFERED_RPS:g} rps for {service}", settled, timeout_s=90)
    assert abs(signals.offered_rps - OFFERED_RPS) <= 0.3 * OFFERED_RPS
    assert signals.dropped_rps < 0.05 * OFFERED_RPS  # 3 pods of a web service are far from saturated
    assert 0 < signals.p95_ms <= signals.p99_ms < 2000  # tens of ms of network plus ~25 ms of service
    # the mesh preset reads the same requests from the Istio series
    istio = reader.services({service: reader.source("istio")}).services[service]
    assert abs(istio.offered_rps - signals.offered_rps) <= 0.3 * OFFERED_RPS

    prefix, _ = mock
    nodes = {name: n for name, n in reader.nodes().items() if name.startswith(prefix)}
    assert len(nodes) >= 5
    assert all(n.power_w > 0 for n in nodes.values())


def test_the_operator_reads_the_scrape_interval_prometheus_runs_with(prometheus: PrometheusServer) -> None:
    assert prometheus.url is not None
    assert read_scrape_interval_s(prometheus.url) == 2.0
    assert scrape_interval_s(prometheus.url, None) == 2.0  # no --scrape-interval: the windows span 8 s
    assert scrape_interval_s(prometheus.url, 15.0) == 15.0


def test_a_stopped_prometheus_raises_one_clear_error(prometheus_binary: Path,
                                                     tmp_path_factory: pytest.TempPathFactory) -> None:
    server = PrometheusServer(tmp_path_factory.mktemp("prometheus-stopped"), {}, port=0, binary=prometheus_binary)
    with server:
        url = server.url
        assert url is not None
        assert PrometheusSignals(url).services().services == {}
    with pytest.raises(MetricsUnavailable, match=url):
        PrometheusSignals(url, timeout_s=2).services()


def test_promtool_accepts_the_local_config_and_the_manifests(prometheus_binary: Path, tmp_path: Path) -> None:
    """Both configs parse in Prometheus itself; the manifest's with static targets in place of Kubernetes
    discovery, which Debian's build leaves out (upstream's image, which the manifest runs, has it)."""
    promtool = promtool_for(prometheus_binary)
    if promtool is None:
        pytest.skip("no promtool next to prometheus or on PATH")
    local = scrape_config({job: [f"127.0.0.1:{9100 + i}"] for i, job in enumerate(JOBS)})
    manifest = Path(__file__).resolve().parents[2] / "manifests" / "prometheus.yaml"
    (config_map,) = [d for d in yaml.safe_load_all(manifest.read_text()) if d and d["kind"] == "ConfigMap"]
    in_cluster = yaml.safe_load(config_map["data"]["prometheus.yml"])
    for job in in_cluster["scrape_configs"]:
        assert job.pop("kubernetes_sd_configs") == [{"role": "pod"}]
        job["static_configs"] = [{"targets": ["10.0.0.1:8080"]}]
    for name, config in (("local.yml", local), ("manifest.yml", in_cluster)):
        path = tmp_path / name
        path.write_text(yaml.safe_dump(config))
        proc = subprocess.run([str(promtool), "check", "config", str(path)], capture_output=True, text=True,
                              check=False)
        assert proc.returncode == 0, f"{name}: {proc.stdout}{proc.stderr}"
