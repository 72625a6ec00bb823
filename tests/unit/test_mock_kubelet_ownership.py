"""The mock kubelet on a cluster used before: adopt, recreate or remove its own nodes, never another's;
its runtime record; ``--detach`` that reports a start-up failure on the terminal."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from kubeagora.kubelet import nodes as nodes_mod
from kubeagora.kubelet import runtime
from kubeagora.kubelet.detach import child_args, error_lines
from kubeagora.kubelet.plan import make_plan

NOW = "2025-06-01T12:00:00Z"


def manifests(prefix: str = "", **plan: Any) -> dict[str, dict[str, Any]]:
    p = make_plan(plan.get("scenario"), plan.get("nodes"), None, None, 10.0, prefix, False)
    owner = nodes_mod.owner_of(prefix)
    return {name: nodes_mod.manifest(node, name, j, NOW, (), owner)
            for j, (node, name) in enumerate(zip(p.topology.nodes, p.names, strict=True))}


def test_nodes_carry_the_owner_of_the_kubelet_that_registered_them() -> None:
    assert nodes_mod.owner_of("") == "default"
    assert nodes_mod.owner_of("test-ab12-") == "test-ab12"
    labels = next(iter(manifests("test-ab12-", nodes=3).values()))["metadata"]["labels"]
    assert labels[nodes_mod.LABEL_OWNER] == "test-ab12"
    assert labels[nodes_mod.LABEL_MOCK] == "true"


def test_an_earlier_topologys_nodes_are_recreated_where_the_pod_cidr_moved_and_removed_where_gone() -> None:
    """The issue: after `--nodes 30`, `--scenario gpu-throttle` died on `PATCH .../edge-mcu-0-0-0: 422 …
    node updates may not change podCIDR`; the old topology's nodes stayed NotReady."""
    before = list(manifests(nodes=30).values())
    after = manifests(scenario="gpu-throttle")
    plan = nodes_mod.reconcile(before, after, "default")
    names_before = {n["metadata"]["name"] for n in before}
    assert plan.recreate, "some names come back at another index: their pod CIDR moves"
    assert all("pod CIDR" in why for _, why in plan.recreate)
    assert "edge-mcu-0-0-0" in {name for name, _ in plan.recreate} | set(plan.adopt)
    assert set(plan.remove) == names_before - set(after)
    assert set(plan.adopt) | {name for name, _ in plan.recreate} == names_before & set(after)
    assert not plan.foreign
    again = nodes_mod.reconcile(list(after.values()), after, "default")
    assert again == nodes_mod.Takeover(adopt=tuple(sorted(after)))


def test_nodes_of_another_owner_or_no_mock_at_all_are_never_touched() -> None:
    mine = manifests(nodes=3)
    others = list(manifests("other-", nodes=3).values())
    plan = nodes_mod.reconcile(others, mine, "default")
    assert plan == nodes_mod.Takeover(), "another kubelet's nodes (other names) are left alone"
    real = {"metadata": {"name": next(iter(mine)), "labels": {"kubernetes.io/hostname": next(iter(mine))}},
            "spec": {"podCIDR": "10.1.0.0/24"}}
    plan = nodes_mod.reconcile([real], mine, "default")
    assert plan.foreign == ((next(iter(mine)), "a kubelet that is not kubeagora's mock"),)
    legacy = next(iter(manifests(nodes=3).values()))
    del legacy["metadata"]["labels"][nodes_mod.LABEL_OWNER]  # registered by an older mock kubelet
    assert nodes_mod.owned_by(legacy, "default")
    assert not nodes_mod.owned_by(legacy, "test-ab12")


# ---------------------------------------------------------------------------------------------- records
def test_runtime_records_are_per_cluster_and_stop_kills_only_the_recorded_process(tmp_path: Path) -> None:
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        record = runtime.Record(sleeper.pid, "https://127.0.0.1:6443", "default", "http://127.0.0.1:9108", 12,
                                "scenario gpu-throttle")
        runtime.write(record, tmp_path)
        runtime.write(runtime.Record(os.getpid(), "https://127.0.0.1:7443", "default", "http://x", 1, ""), tmp_path)
        assert runtime.records_for("https://127.0.0.1:6443", tmp_path) == [record]
        assert runtime.alive(record)
        assert not runtime.serving(record), "nothing answers its /healthz"
        assert runtime.stop(record, root=tmp_path)
        sleeper.wait(timeout=10)
        assert runtime.records_for("https://127.0.0.1:6443", tmp_path) == []
        assert not runtime.stop(record, root=tmp_path), "stopping twice is safe"
        assert len(runtime.records_for("https://127.0.0.1:7443", tmp_path)) == 1, "another cluster's is kept"
    finally:
        sleeper.kill()
        sleeper.wait()


def test_detach_runs_the_same_command_without_the_flag_and_keeps_the_error_lines() -> None:
    args = child_args(["mock-kubelet", "--nodes", "3", "--detach", "--log-file", "k.log"])
    assert args[0] == sys.executable
    assert args[3:] == ["mock-kubelet", "--nodes", "3", "--log-file", "k.log"]
    log = "12:00:00 mock-kubelet: serving\nerror: cannot reach the API server: refused; start it with: x\n"
    assert error_lines(log) == ["error: cannot reach the API server: refused; start it with: x"]
    assert error_lines("Traceback\n  boom\n") == ["Traceback", "  boom"]


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.slow
def test_a_detached_kubelet_that_cannot_start_says_why_on_the_terminal(tmp_path: Path) -> None:
    """The issue: run in the background as the README did, a failed start was only in the log file."""
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "c",
        "clusters": [{"name": "c", "cluster": {"server": f"http://127.0.0.1:{closed_port()}"}}],
        "users": [{"name": "u", "user": {}}],
        "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}]}))
    proc = subprocess.run(
        [sys.executable, "-c", "from kubeagora.cli import app; app()", "mock-kubelet", "--kubeconfig", str(kubeconfig),
         "--nodes", "3", "--metrics-port", "0", "--detach", "--log-file", str(tmp_path / "kubelet.log")],
        capture_output=True, text=True, timeout=120, env={**os.environ, "HOME": str(tmp_path)}, check=False)
    assert proc.returncode == 2, proc.stderr
    assert "error: cannot reach the API server" in proc.stderr
    assert "kubeagora devcluster up" in proc.stderr, "names the command that fixes it"
    assert "its log:" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert (tmp_path / "kubelet.log").read_text().count("cannot reach the API server") == 1
