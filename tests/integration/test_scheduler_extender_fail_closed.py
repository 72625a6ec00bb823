"""Fail-closed mode (``ignorable: false``) with a real kube-scheduler: residency is never skipped.

With ``ignorable: true`` a scheduler that cannot reach the extender (down, slow, or refusing a request)
places the pod without it, outside its intent's regions if it must. This module runs a control plane
whose scheduler is configured from ``manifests/devcluster/scheduler-config-fail-closed.yaml`` (HTTPS,
the scheduler's client certificate) and checks: with the extender down nothing is scheduled; once it
is up every replica lands in its intent's region; a pod whose request the extender refuses (larger
than its ``--max-body-bytes``) waits in Pending while the other pods go on being placed.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from tests.integration.kube import apply, kubectl_json, wait_for
from tests.integration.test_scheduler_extender import (
    ROOT,
    Service,
    deployment,
    intent,
    intents_and_a_namespace,
    label,
    scheduler_config,
    start,
    start_extender,
)

from kubeagora.devcluster import DevCluster, Settings
from kubeagora.devcluster.cluster import free_ports

pytest.importorskip("aiohttp")
pytestmark = pytest.mark.integration

FAIL_CLOSED = ROOT / "manifests" / "devcluster" / "scheduler-config-fail-closed.yaml"
MAX_BODY_BYTES = 64 * 1024
"""The extender here refuses bodies over 64 KiB, so one pod can be made too large for it."""


@dataclass
class Cluster:
    cluster: DevCluster
    namespace: str
    extender_port: int
    tmp: Path


@pytest.fixture(scope="module")
def fail_closed(controlplane_binary: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    tmp = tmp_path_factory.mktemp("fail-closed")
    extender_port, kubelet_port = free_ports(2)
    cluster = DevCluster(tmp / "state", binary=controlplane_binary,
                         settings=Settings(scheduler_config=scheduler_config(extender_port, tmp, FAIL_CLOSED)))
    kubelet: Service | None = None
    try:
        cluster.up()
        kubelet = start(["mock-kubelet", "--kubeconfig", str(cluster.kubeconfig), "--scenario", "gpu-throttle",
                         "--no-faults", "--metrics-port", str(kubelet_port)], kubelet_port, tmp / "mock-kubelet.log")
        wait_for("the mock kubelet to register its nodes", kubelet.healthy, timeout_s=90)
        yield Cluster(cluster, intents_and_a_namespace(cluster, "closed"), extender_port, tmp)
    finally:
        if kubelet is not None:
            kubelet.stop()
        cluster.down()


def pods_of(c: Cluster, app: str) -> list[dict[str, Any]]:
    items = kubectl_json(c.cluster, "get", "pods", "-n", c.namespace, "-l", f"app={app}")["items"]
    return [p for p in items if not p["metadata"].get("deletionTimestamp")]


def pending(c: Cluster, app: str) -> list[str]:
    return [p["metadata"]["name"] for p in pods_of(c, app) if not p["spec"].get("nodeName")]


def bound(c: Cluster, app: str, n: int) -> list[dict[str, Any]] | None:
    live = pods_of(c, app)
    return live if len(live) == n and all(p["spec"].get("nodeName") for p in live) else None


def test_nothing_is_placed_unchecked_and_everything_lands_in_its_region_once_the_extender_is_up(
        fail_closed: Cluster) -> None:
    c = fail_closed
    apply(c.cluster, intent("checkout", c.namespace, regions=["region-1"]),
          deployment("checkout", c.namespace, 6, "web"))
    wait_for("6 checkout pods created", lambda: len(pending(c, "checkout")) == 6 or None, timeout_s=60)
    time.sleep(10)  # several scheduling attempts, each failing on the unreachable extender
    assert len(pending(c, "checkout")) == 6, "a pod was scheduled without the extender"
    extender = start_extender(c.cluster, c.extender_port, c.tmp / "extender.log")
    try:
        wait_for("the extender to list nodes and pods", extender.healthy, timeout_s=60)
        pods = wait_for("6 checkout pods bound", lambda: bound(c, "checkout", 6), timeout_s=180)
        by_name = {n["metadata"]["name"]: n for n in kubectl_json(c.cluster, "get", "nodes")["items"]}
        assert {label(by_name[p["spec"]["nodeName"]], "topology.kubernetes.io/region") for p in pods} == {"region-1"}
    finally:
        extender.stop()


def test_a_pod_the_extender_refuses_waits_and_the_others_go_on(fail_closed: Cluster) -> None:
    c = fail_closed
    extender = start_extender(c.cluster, c.extender_port, c.tmp / "extender-small.log",
                              "--max-body-bytes", str(MAX_BODY_BYTES))
    try:
        wait_for("the extender to list nodes and pods", extender.healthy, timeout_s=60)
        bloated = deployment("bloated", c.namespace, 1, "web")
        bloated["spec"]["template"]["metadata"]["annotations"]["padding"] = "x" * (2 * MAX_BODY_BYTES)
        apply(c.cluster, bloated, deployment("plain", c.namespace, 3, "web"))
        wait_for("3 plain pods bound", lambda: bound(c, "plain", 3), timeout_s=180)
        time.sleep(5)
        assert len(pending(c, "bloated")) == 1, "the pod the extender refused was scheduled without it"
        _, metrics = extender.get("/metrics")
        refused = [line for line in metrics.decode().splitlines()
                   if line.startswith('kubeagora_extender_requests_total{outcome="too_large"')]
        assert refused, "the extender refused nothing as too large"
        assert float(refused[0].rsplit(" ", 1)[1]) >= 1, refused
    finally:
        extender.stop()
