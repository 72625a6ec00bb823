"""`devcluster delete` (stop and wipe, safe to repeat, never a foreign directory) and what `up` says
when it reuses an earlier session's state."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from kubeagora.cli import app
from kubeagora.devcluster import DevCluster, DevClusterError
from kubeagora.devcluster.contents import parse

runner = CliRunner()


def fake_state(root: Path) -> Path:
    """A stopped devcluster's state directory: its state file, keys and etcd data."""
    (root / "pki").mkdir(parents=True)
    (root / "pki" / "ca.crt").write_text("x")
    (root / "etcd" / "member").mkdir(parents=True)
    (root / "cluster.json").write_text(json.dumps({"pids": {}, "ports": None}))
    return root


def test_delete_wipes_the_state_and_is_safe_to_repeat(tmp_path: Path) -> None:
    root = fake_state(tmp_path / "dc")
    cluster = DevCluster(root)
    assert cluster.holds_data()
    assert cluster.delete()
    assert not root.exists()
    assert not cluster.delete()
    assert not cluster.holds_data()


def test_delete_refuses_a_directory_that_is_not_a_devclusters(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(DevClusterError, match="not a devcluster's"):
        DevCluster(tmp_path).delete()
    assert (tmp_path / "notes.txt").exists()


def test_the_cli_deletes_then_says_there_is_nothing_to_delete(tmp_path: Path) -> None:
    root = fake_state(tmp_path / "dc")
    first = runner.invoke(app, ["devcluster", "delete", "--state-dir", str(root)])
    assert first.exit_code == 0, first.output
    assert f"deleted {root}" in first.output.replace("\n", "")
    second = runner.invoke(app, ["devcluster", "delete", "--state-dir", str(root)])
    assert second.exit_code == 0, second.output
    assert "nothing to delete" in second.output
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "keep.txt").write_text("x")
    refused = runner.invoke(app, ["devcluster", "delete", "--state-dir", str(tmp_path / "other")])
    assert refused.exit_code == 2
    assert "Traceback" not in refused.output


def test_what_a_reused_state_holds_is_counted_and_named() -> None:
    listing = {"kind": "List", "items": [
        {"kind": "Node", "metadata": {"name": "edge-mcu-0-0-0"},
         "status": {"conditions": [{"type": "Ready", "status": "Unknown"}]}},
        {"kind": "Node", "metadata": {"name": "cloud-cpu-0-0"},
         "status": {"conditions": [{"type": "Ready", "status": "True"}]}},
        *({"kind": "Namespace", "metadata": {"name": n}}
          for n in ("default", "kube-system", "kube-public", "kube-node-lease", "team-a"))]}
    held = parse(json.dumps(listing))
    assert (held.nodes, held.ready_nodes) == (2, 1)
    assert held.describe() == "2 node(s), 1 Ready; namespaces: team-a (and the system ones)"
    empty = parse(json.dumps({"items": [{"kind": "Namespace", "metadata": {"name": "default"}}]}))
    assert empty.describe() == "0 node(s), 0 Ready; namespaces: only the system ones"
