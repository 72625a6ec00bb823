"""A mock kubelet on a cluster an earlier one used (the issue's `--nodes 30`, then `--scenario
gpu-throttle`): it takes over its own nodes, never another's, starts detached only once serving, and
`devcluster status` shows it. Nodes are named and owned by a prefix of this module's own and tainted,
so other tests' pods stay off them."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.integration.kube import TAINT_KEY, kubectl_json, wait_for

from kubeagora.devcluster import DevCluster
from kubeagora.devcluster.cluster import free_ports
from kubeagora.devcluster.stack import stop_process
from kubeagora.kubelet import runtime
from kubeagora.kubelet.nodes import LABEL_OWNER, owner_of
from kubeagora.kubelet.plan import make_plan

pytestmark = pytest.mark.integration
CLI = [sys.executable, "-c", "from kubeagora.cli import app; app()"]


@pytest.fixture
def prefix(devcluster: DevCluster) -> Iterator[str]:
    p = f"takeover{uuid.uuid4().hex[:6]}-"
    yield p
    devcluster.kubectl("delete", "nodes", "-l", f"{LABEL_OWNER}={owner_of(p)}", "--wait=false")


def kubelet_args(cluster: DevCluster, prefix: str, *where: str) -> list[str]:
    (port,) = free_ports(1)
    return [*CLI, "mock-kubelet", "--kubeconfig", str(cluster.kubeconfig), *where, "--no-faults",
            "--name-prefix", prefix, "--taint", f"{TAINT_KEY}={prefix.rstrip('-')}:NoSchedule",
            "--metrics-port", str(port)]


def owned(cluster: DevCluster, prefix: str) -> set[str]:
    listed = kubectl_json(cluster, "get", "nodes", "-l", f"{LABEL_OWNER}={owner_of(prefix)}")
    return {n["metadata"]["name"] for n in listed["items"]}


def names(prefix: str, scenario: str | None = None, nodes: int | None = None) -> set[str]:
    return set(make_plan(scenario, nodes, None, None, 10.0, prefix, False).names)


def test_a_new_topology_takes_over_an_earlier_ones_nodes_and_a_detached_start_reports(
        devcluster: DevCluster, prefix: str, tmp_path: Path) -> None:
    first = subprocess.Popen(kubelet_args(devcluster, prefix, "--nodes", "30"), stdout=subprocess.DEVNULL,
                             stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_for("the first topology's nodes", lambda: owned(devcluster, prefix) == names(prefix, nodes=30), 120)
    finally:
        stop_process(first, 60)  # without --delete-nodes-on-exit: its nodes stay, as after a session's end
    assert owned(devcluster, prefix) == names(prefix, nodes=30)

    log = tmp_path / "kubelet.log"
    proc = subprocess.run([*kubelet_args(devcluster, prefix, "--scenario", "gpu-throttle"), "--detach",
                           "--log-file", str(log)], capture_output=True, text=True, timeout=240, check=False)
    try:
        assert proc.returncode == 0, proc.stderr + log.read_text()[-3000:]
        assert "mock kubelet serving" in proc.stdout
        assert owned(devcluster, prefix) == names(prefix, "gpu-throttle"), "the earlier topology's nodes are gone"
        text = log.read_text()
        assert "recreating it" in text, "a node whose pod CIDR moved was recreated (the 422 before)"
        assert "removing" in text
        ready = kubectl_json(devcluster, "get", "nodes", "-l", f"{LABEL_OWNER}={owner_of(prefix)}")["items"]
        assert all(any(c["type"] == "Ready" and c["status"] == "True" for c in n["status"]["conditions"])
                   for n in ready)
        status = subprocess.run([*CLI, "devcluster", "status", "--state-dir", str(devcluster.layout.root)],
                                capture_output=True, text=True, timeout=60, check=False)
        assert f"mock-kubelet {owner_of(prefix)}" in status.stdout, status.stdout
        assert "serving" in status.stdout
    finally:
        stop = subprocess.run([*CLI, "mock-kubelet", "--kubeconfig", str(devcluster.kubeconfig), "--name-prefix",
                               prefix, "--stop"], capture_output=True, text=True, timeout=90, check=False)
    assert stop.returncode == 0, stop.stderr
    assert "stopped the mock kubelet" in stop.stdout
    assert not [r for r in runtime.records_for(str(devcluster.server)) if r.owner == owner_of(prefix)]


def test_a_node_of_another_kubelet_stops_the_start_with_the_command_that_resolves_it(
        devcluster: DevCluster, prefix: str, tmp_path: Path) -> None:
    taken = sorted(names(prefix, nodes=3))[0]
    node = {"apiVersion": "v1", "kind": "Node", "metadata": {"name": taken, "labels": {"team": "someone-else"}}}
    applied = devcluster.kubectl("create", "-f", "-", input=json.dumps(node))
    assert applied.returncode == 0, applied.stderr
    try:
        proc = subprocess.run([*kubelet_args(devcluster, prefix, "--nodes", "3"), "--detach", "--log-file",
                               str(tmp_path / "kubelet.log")], capture_output=True, text=True, timeout=120,
                              check=False)
        assert proc.returncode == 2, proc.stdout + proc.stderr
        assert taken in proc.stderr
        assert f"kubectl delete node {taken}" in proc.stderr
        assert "Traceback" not in proc.stderr
        labels = kubectl_json(devcluster, "get", "node", taken)["metadata"]["labels"]
        assert labels.get("team") == "someone-else", "another's node is left as it was"
    finally:
        devcluster.kubectl("delete", "node", taken, "--wait=false")
