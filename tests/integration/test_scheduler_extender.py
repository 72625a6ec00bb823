"""The scheduler extender with a real kube-scheduler: residency, GPU placement by interference, ignorable.

This module runs a control plane of its own (the session one's scheduler has no extender): its
kube-scheduler is configured from ``manifests/devcluster/scheduler-config.yaml`` with the extender's URL moved to a
free port, and calls it over HTTPS with its client certificate (the devcluster's PKI). One extender and
one mock kubelet (the two-region ``gpu-throttle`` topology, faults off) run as subprocesses for the
module; the last test kills the extender and checks that pods still schedule.
"""

from __future__ import annotations

import json
import os
import signal
import ssl
import subprocess
import sys
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from tests.integration.kube import apply, kubectl_json, wait_for

from kubeagora.devcluster import DevCluster, Settings
from kubeagora.devcluster.cluster import free_ports
from kubeagora.devcluster.pki import SCHEDULER, Pki

pytest.importorskip("aiohttp")
pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "manifests" / "devcluster" / "scheduler-config.yaml"
CRD = ROOT / "crds" / "orchestrationintents.yaml"
MINIMAL_CRD: dict[str, Any] = {
    "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
    "metadata": {"name": "orchestrationintents.kubeagora.io"},
    "spec": {"group": "kubeagora.io", "scope": "Namespaced",
             "names": {"plural": "orchestrationintents", "singular": "orchestrationintent",
                       "kind": "OrchestrationIntent", "shortNames": ["intent"]},
             "versions": [{"name": "v1alpha1", "served": True, "storage": True,
                           "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                               "spec": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
                               "status": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}}}}}]},
}


@dataclass
class Service:
    """A kubeagora subprocess with an HTTP port."""

    url: str
    proc: subprocess.Popen[bytes]
    log: Path
    tls: ssl.SSLContext | None = None
    """How to reach an HTTPS service (whom to trust, which client certificate to present)."""

    def get(self, path: str) -> tuple[int, bytes]:
        try:
            with urllib.request.urlopen(self.url + path, timeout=10, context=self.tls) as resp:
                return resp.status, resp.read()
        except urllib.error.HTTPError as e:
            return e.code, e.read()

    def post(self, path: str, body: bytes) -> tuple[int, bytes]:
        req = urllib.request.Request(self.url + path, data=body, method="POST",
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=10, context=self.tls) as resp:
                return resp.status, resp.read()
        except urllib.error.HTTPError as e:
            return e.code, e.read()

    def healthy(self) -> bool:
        assert self.proc.poll() is None, f"{self.log.name} exited ({self.proc.returncode}):\n{self.tail()}"
        try:
            return self.get("/healthz") == (200, b"ok")
        except (urllib.error.URLError, OSError):
            return False

    def tail(self) -> str:
        return self.log.read_text()[-3000:]

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()


def start(args: list[str], port: int, log: Path, tls: ssl.SSLContext | None = None) -> Service:
    cmd = [sys.executable, "-c", "from kubeagora.cli import app; app()", *args]
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    return Service(f"{'https' if tls else 'http'}://127.0.0.1:{port}", proc, log, tls)


def start_extender(cluster: DevCluster, port: int, log: Path, *extra: str) -> Service:
    """The extender on HTTPS with the devcluster's serving certificate, answering the verbs only to the
    cluster CA's client certificates; the returned Service calls it as the scheduler does."""
    pki = Pki(cluster.layout.pki_dir)
    as_scheduler = ssl.create_default_context(cafile=str(pki.ca_cert))
    as_scheduler.load_cert_chain(pki.client_cert(SCHEDULER), pki.client_key(SCHEDULER))
    return start(["scheduler-extender", "--kubeconfig", str(cluster.kubeconfig), "--port", str(port),
                  "--tls-cert-file", str(pki.extender_cert), "--tls-key-file", str(pki.extender_key),
                  "--client-ca-file", str(pki.ca_cert), *extra], port, log, as_scheduler)


@dataclass
class World:
    cluster: DevCluster
    extender: Service
    kubelet: Service
    namespace: str


def scheduler_config(port: int, directory: Path, config: Path = CONFIG) -> Path:
    cfg = yaml.safe_load(config.read_text())
    cfg["extenders"][0]["urlPrefix"] = f"https://127.0.0.1:{port}"
    path = directory / "scheduler-config.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def intents_and_a_namespace(cluster: DevCluster, prefix: str) -> str:
    """The OrchestrationIntent CRD served and a fresh namespace with its default ServiceAccount."""
    apply(cluster, yaml.safe_load(CRD.read_text()) if CRD.is_file() else MINIMAL_CRD)
    wait_for("the OrchestrationIntent CRD to be served",
             lambda: cluster.kubectl("get", "orchestrationintents", "-A").returncode == 0, timeout_s=60)
    namespace = f"{prefix}-{uuid.uuid4().hex[:6]}"
    apply(cluster, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}})
    wait_for(f"serviceaccount default in {namespace}",
             lambda: cluster.kubectl("get", "serviceaccount", "default", "-n", namespace).returncode == 0,
             timeout_s=90)
    return namespace


@pytest.fixture(scope="module")
def world(controlplane_binary: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    tmp = tmp_path_factory.mktemp("extender")
    extender_port, kubelet_port = free_ports(2)
    cluster = DevCluster(tmp / "state", binary=controlplane_binary,
                         settings=Settings(scheduler_config=scheduler_config(extender_port, tmp)))
    services: list[Service] = []
    try:
        cluster.up()
        kubeconfig = str(cluster.kubeconfig)
        extender = start_extender(cluster, extender_port, tmp / "extender.log")
        services.append(extender)
        kubelet = start(["mock-kubelet", "--kubeconfig", kubeconfig, "--scenario", "gpu-throttle", "--no-faults",
                         "--metrics-port", str(kubelet_port)], kubelet_port, tmp / "mock-kubelet.log")
        services.append(kubelet)
        wait_for("the mock kubelet to register its nodes", kubelet.healthy, timeout_s=90)
        wait_for("the extender to list nodes and pods", extender.healthy, timeout_s=60)
        yield World(cluster, extender, kubelet, intents_and_a_namespace(cluster, "ext"))
    finally:
        for s in reversed(services):
            s.stop()
        cluster.down()


def deployment(name: str, namespace: str, replicas: int, template: str,
               resources: dict[str, Any] | None = None) -> dict[str, Any]:
    labels = {"app": name, "kubeagora.io/service": name}
    return {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "namespace": namespace},
        "spec": {"replicas": replicas, "selector": {"matchLabels": labels}, "template": {
            "metadata": {"labels": labels, "annotations": {"kubeagora.io/template": template,
                                                           "kubeagora.io/cold-start-s": "1"}},
            "spec": {"terminationGracePeriodSeconds": 1, "containers": [{
                "name": "app", "image": "registry.invalid/app:1",
                "resources": resources or {"requests": {"cpu": "100m", "memory": "64Mi"}}}]}}},
    }


def intent(name: str, namespace: str, **placement: list[str]) -> dict[str, Any]:
    return {"apiVersion": "kubeagora.io/v1alpha1", "kind": "OrchestrationIntent",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name},
                     "slo": {"p95Ms": 150, "p99Ms": 250}, "replicas": {"min": 1, "max": 20},
                     "placement": placement}}


def extender_gauge(world: World, kind: str) -> float:
    _, body = world.extender.get("/metrics")
    for line in body.decode().splitlines():
        if line.startswith(f'kubeagora_extender_cache_objects{{kind="{kind}"}}'):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def extender_counter(world: World, verb: str) -> float:
    _, body = world.extender.get("/metrics")
    prefix = f'kubeagora_extender_requests_total{{outcome="ok",verb="{verb}"}}'
    return sum(float(line.rsplit(" ", 1)[1]) for line in body.decode().splitlines() if line.startswith(prefix))


def bound_pods(world: World, app: str, n: int) -> list[dict[str, Any]] | None:
    items = kubectl_json(world.cluster, "get", "pods", "-n", world.namespace, "-l", f"app={app}")["items"]
    live = [p for p in items if not p["metadata"].get("deletionTimestamp")]
    return live if len(live) == n and all(p["spec"].get("nodeName") for p in live) else None


def nodes(world: World) -> dict[str, dict[str, Any]]:
    return {n["metadata"]["name"]: n for n in kubectl_json(world.cluster, "get", "nodes")["items"]}


def label(node: dict[str, Any], key: str) -> str:
    return str(node["metadata"]["labels"].get(key, ""))


def declare(world: World, name: str, template: str, resources: dict[str, Any] | None = None,
            **placement: list[str]) -> None:
    """The intent and its Deployment at 0 replicas, known to the extender before any pod exists."""
    apply(world.cluster, intent(name, world.namespace, **placement),
          deployment(name, world.namespace, 0, template, resources))
    wait_for(f"the extender to see intent {name}",
             lambda: extender_gauge(world, "intents") >= 1 and extender_gauge(world, "deployments") >= 1,
             timeout_s=60)


def scale(world: World, name: str, replicas: int) -> None:
    proc = world.cluster.kubectl("scale", "deployment", name, "-n", world.namespace, f"--replicas={replicas}")
    assert proc.returncode == 0, proc.stderr


def test_a_malformed_request_gets_400_and_the_extender_stays_up(world: World) -> None:
    status, body = world.extender.post("/filter", b'{"Pod": "not a pod"')
    assert status == 400
    assert "not JSON" in json.loads(body)["error"]
    status, body = world.extender.post("/prioritize", json.dumps({"Pod": {"metadata": {}}}).encode())
    assert status == 400
    assert "NodeNames" in json.loads(body)["error"]
    assert world.extender.healthy()


def test_a_resident_service_never_lands_outside_its_regions(world: World) -> None:
    before = extender_counter(world, "filter")
    declare(world, "checkout", "web", regions=["region-1"])
    scale(world, "checkout", 12)
    pods = wait_for("12 checkout pods bound", lambda: bound_pods(world, "checkout", 12), timeout_s=120)
    by_name = nodes(world)
    regions = {label(by_name[p["spec"]["nodeName"]], "topology.kubernetes.io/region") for p in pods}
    assert regions == {"region-1"}, f"checkout pods landed in {sorted(regions)}"
    assert extender_counter(world, "filter") >= before + 12  # the scheduler asked the extender for each pod


def test_a_gpu_service_lands_on_the_gpu_node_with_the_least_interference(world: World) -> None:
    by_name = nodes(world)
    cloud_gpus = sorted((n for n in by_name.values()
                         if label(n, "kubeagora.io/node-class") == "gpu" and label(n, "kubeagora.io/tier") == "cloud"
                         and label(n, "topology.kubernetes.io/region") == "region-1"),
                        key=lambda n: -float(n["metadata"]["annotations"]["kubeagora.io/speed-factor"]))
    assert len(cloud_gpus) == 2
    # three GPUs of the faster node already serve other LLM replicas (bound directly, as a kubelet's pods are)
    loaded, quiet = (n["metadata"]["name"] for n in cloud_gpus)
    noisy = [{"apiVersion": "v1", "kind": "Pod",
              "metadata": {"name": f"noisy-{i}", "namespace": world.namespace,
                           "labels": {"app": "noisy"}, "annotations": {"kubeagora.io/template": "llm"}},
              "spec": {"nodeName": loaded, "terminationGracePeriodSeconds": 1, "containers": [{
                  "name": "app", "image": "registry.invalid/llm:1",
                  "resources": {"requests": {"cpu": "100m", "memory": "64Mi"},
                                "limits": {"nvidia.com/gpu": "1"}}}]}} for i in range(3)]
    apply(world.cluster, *noisy)
    wait_for("the noisy neighbours bound", lambda: bound_pods(world, "noisy", 3), timeout_s=60)
    wait_for("the extender to count them", lambda: extender_gauge(world, "pods") >= 15, timeout_s=30)
    gpu = {"requests": {"cpu": "4", "memory": "24Gi"}, "limits": {"nvidia.com/gpu": "1"}}
    declare(world, "llm", "llm", gpu, regions=["region-1"], tiers=["cloud"])
    scale(world, "llm", 1)
    (pod,) = wait_for("the llm pod bound", lambda: bound_pods(world, "llm", 1), timeout_s=120)
    assert label(by_name[pod["spec"]["nodeName"]], "kubeagora.io/node-class") == "gpu"
    assert pod["spec"]["nodeName"] == quiet, f"llm landed on {pod['spec']['nodeName']}, next to 3 other LLMs"


def test_with_the_extender_gone_pods_still_schedule(world: World) -> None:
    world.extender.proc.kill()
    world.extender.proc.wait(timeout=30)
    apply(world.cluster, deployment("after", world.namespace, 4, "web"))
    pods = wait_for("4 pods bound without the extender", lambda: bound_pods(world, "after", 4), timeout_s=120)
    assert len(pods) == 4
