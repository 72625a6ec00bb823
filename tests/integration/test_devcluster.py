"""The local control plane behaves like a Kubernetes cluster without kubelets."""

from __future__ import annotations

import json
import ssl
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from tests.integration.kube import apply, kubectl_json, wait_for
from typer.testing import CliRunner

from kubeagora.devcluster import COMPONENTS, DevCluster
from kubeagora.devcluster.cli import devcluster_app
from kubeagora.devcluster.cluster import pid_alive
from kubeagora.devcluster.pki import ADMIN, Pki

pytestmark = pytest.mark.integration








@pytest.fixture
def namespace(devcluster: DevCluster) -> Iterator[str]:
    """A fresh namespace whose default ServiceAccount exists (pods need it to be admitted)."""
    name = f"t-{uuid.uuid4().hex[:8]}"
    apply(devcluster, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
    wait_for(
        f"serviceaccount default in {name}",
        lambda: devcluster.kubectl("get", "serviceaccount", "default", "-n", name).returncode == 0,
    )
    yield name
    devcluster.kubectl("delete", "namespace", name, "--wait=false")


def test_apiserver_answers_with_admin_client_cert(devcluster: DevCluster) -> None:
    pki = Pki(devcluster.layout.pki_dir)
    ctx = ssl.create_default_context(cafile=str(pki.ca_cert))
    ctx.load_cert_chain(str(pki.client_cert(ADMIN)), str(pki.client_key(ADMIN)))
    with urllib.request.urlopen(f"{devcluster.server}/version", context=ctx, timeout=10) as resp:
        version = json.loads(resp.read())
    assert version["gitVersion"].startswith("v1.37.")
    with urllib.request.urlopen(f"{devcluster.server}/readyz", context=ctx, timeout=10) as resp:
        assert resp.read().decode().strip() == "ok"


def test_every_component_is_healthy(devcluster: DevCluster) -> None:
    rows = devcluster.status()
    assert [r.name for r in rows] == list(COMPONENTS)
    assert all(r.running and r.healthy for r in rows), rows


def test_kubectl_of_the_same_release_lists_namespaces(devcluster: DevCluster) -> None:
    proc = devcluster.kubectl("get", "ns", "-o", "name")
    assert proc.returncode == 0, proc.stderr
    assert {"namespace/default", "namespace/kube-system"} <= set(proc.stdout.split())
    client = json.loads(devcluster.kubectl("version", "-o", "json").stdout)
    assert client["clientVersion"]["minor"] == client["serverVersion"]["minor"] == "37"


def test_deployment_gets_a_replicaset_and_pending_pods(devcluster: DevCluster, namespace: str) -> None:
    labels = {"app": "web"}
    apply(
        devcluster,
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "web", "namespace": namespace},
            "spec": {
                "replicas": 3,
                "selector": {"matchLabels": labels},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {"containers": [{"name": "web", "image": "registry.invalid/web:1"}]},
                },
            },
        },
    )
    replicasets = wait_for(
        "a ReplicaSet",
        lambda: kubectl_json(devcluster, "get", "replicasets", "-n", namespace, "-l", "app=web")["items"],
    )
    assert replicasets[0]["metadata"]["ownerReferences"][0]["name"] == "web"
    pods = wait_for(
        "3 pods",
        lambda: (
            items
            if len(
                items := kubectl_json(devcluster, "get", "pods", "-n", namespace, "-l", "app=web")["items"]
            )
            == 3
            else None
        ),
    )
    assert {p["status"].get("phase") for p in pods} == {"Pending"}  # no kubelet runs them


def node(name: str, capacity: dict[str, str]) -> dict[str, Any]:
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name, "test": "devcluster"}},
        "status": {
            "capacity": capacity,
            "allocatable": capacity,
            "conditions": [
                {
                    "type": "Ready",
                    "status": "True",
                    "reason": "KubeletReady",
                    "lastHeartbeatTime": now,
                    "lastTransitionTime": now,
                }
            ],
        },
    }


def test_scheduler_binds_gpu_pod_to_the_gpu_node(devcluster: DevCluster, namespace: str) -> None:
    suffix = namespace.removeprefix("t-")
    cpu_node, gpu_node = f"cpu-{suffix}", f"gpu-{suffix}"
    base = {"cpu": "8", "memory": "32Gi", "pods": "110"}
    for obj in (node(cpu_node, base), node(gpu_node, {**base, "nvidia.com/gpu": "1"})):
        # create (not apply): a Node's status may be set on creation, as a kubelet does.
        proc = devcluster.kubectl("create", "-f", "-", input=yaml.safe_dump(obj))
        assert proc.returncode == 0, proc.stderr
    try:
        apply(
            devcluster,
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": "trainer", "namespace": namespace},
                "spec": {
                    "containers": [
                        {
                            "name": "trainer",
                            "image": "registry.invalid/trainer:1",
                            "resources": {"limits": {"nvidia.com/gpu": "1"}},
                        }
                    ]
                },
            },
        )
        bound = wait_for(
            "the GPU pod to be bound",
            lambda: kubectl_json(devcluster, "get", "pod", "trainer", "-n", namespace)["spec"].get(
                "nodeName"
            ),
        )
        assert bound == gpu_node
    finally:
        devcluster.kubectl("delete", "node", cpu_node, gpu_node, "--wait=false")


def test_cli_status_and_kubeconfig(devcluster: DevCluster) -> None:
    runner = CliRunner()
    state_dir = str(devcluster.layout.root)
    result = runner.invoke(devcluster_app, ["status", "--state-dir", state_dir])
    assert result.exit_code == 0, result.output
    assert "kube-scheduler" in result.output
    result = runner.invoke(devcluster_app, ["kubeconfig", "--state-dir", state_dir])
    assert result.exit_code == 0, result.output
    assert Path(result.output.strip()) == devcluster.kubeconfig


def test_up_twice_then_down_leaves_no_process(tmp_path: Path, controlplane_binary: Path) -> None:
    cluster = DevCluster(tmp_path / "own", binary=controlplane_binary)
    try:
        assert cluster.up() is True
        pids = cluster.pids()
        assert set(pids) == set(COMPONENTS)
        assert cluster.up() is False  # already running: nothing started
        assert cluster.pids() == pids
    finally:
        stopped = cluster.down()
    assert sorted(stopped) == sorted(COMPONENTS)
    assert not [name for name, pid in pids.items() if pid_alive(pid)]
    assert all(not r.running for r in cluster.status())
    assert cluster.down() == []  # idempotent


def test_up_on_a_used_state_says_what_it_holds_and_delete_starts_clean(tmp_path: Path,
                                                                       controlplane_binary: Path) -> None:
    """The issue: `devcluster up` reused an earlier session's nodes silently, and nothing started clean."""
    runner = CliRunner()
    state_dir = tmp_path / "used"
    up = ["up", "--state-dir", str(state_dir), "--binary", str(controlplane_binary)]
    pids: dict[str, int] = {}
    try:
        first = runner.invoke(devcluster_app, up)
        assert first.exit_code == 0, first.output
        assert "reusing" not in first.output
        cluster = DevCluster(state_dir, binary=controlplane_binary)
        assert cluster.kubectl("create", "namespace", "team-a").returncode == 0
        cluster.kubectl("create", "-f", "-", input=json.dumps(
            {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "left-over-node"}}))
        assert runner.invoke(devcluster_app, ["down", "--state-dir", str(state_dir)]).exit_code == 0
        again = runner.invoke(devcluster_app, up)
        assert again.exit_code == 0, again.output
        said = " ".join(again.output.split())
        assert "reusing the existing state" in said
        assert "1 node(s), 0 Ready" in said
        assert "team-a" in said
        assert "kubeagora devcluster delete" in said
        pids = cluster.pids()
    finally:
        deleted = runner.invoke(devcluster_app, ["delete", "--state-dir", str(state_dir)])
    assert deleted.exit_code == 0, deleted.output
    assert "deleted" in deleted.output
    assert not state_dir.exists()
    assert pids
    assert not [n for n, pid in pids.items() if pid_alive(pid)]
    twice = runner.invoke(devcluster_app, ["delete", "--state-dir", str(state_dir)])
    assert twice.exit_code == 0, twice.output
    assert "nothing to delete" in twice.output
    fresh = runner.invoke(devcluster_app, up)
    try:
        assert fresh.exit_code == 0, fresh.output
        assert "reusing" not in fresh.output
    finally:
        runner.invoke(devcluster_app, ["delete", "--state-dir", str(state_dir)])
