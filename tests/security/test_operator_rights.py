"""Finding 9 — the operator's rights, and the bundled Prometheus.

- The operator's ServiceAccount could create and patch ValidatingWebhookConfigurations without limit
  (a compromised operator could register a webhook on Secrets): now the configurations are static and
  it has no verb on them.
- It may patch every Node (RBAC has no field-level rules, and a fleet's node names are not known in
  advance for ``resourceNames``): a ValidatingAdmissionPolicy now refuses any change to a Node by the
  operator but adding or removing its own taint. The attacks here are made as that ServiceAccount
  (``kubectl --as``) after ``kubectl apply -f manifests/``.
- The bundled Prometheus ran with ``--web.enable-lifecycle``: any pod could ``POST /-/quit`` and the
  operator held every intent. The real Prometheus binary runs here with the manifest's arguments.
"""

from __future__ import annotations

import json
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml
from tests.integration.kube import kubectl_json, wait_for
from tests.integration.test_manifests import NAMESPACE, OPERATOR, can_i, installed  # noqa: F401  (fixture)
from tests.security.live import unique

from kubeagora.devcluster import DevCluster
from kubeagora.devcluster.cluster import free_ports
from kubeagora.devcluster.stack import stop_process

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
TAINT = {"key": "kubeagora.io/quarantined", "value": "true", "effect": "NoExecute"}


@pytest.mark.parametrize("kind", ["validatingwebhookconfigurations", "mutatingwebhookconfigurations"])
@pytest.mark.parametrize("verb", ["create", "patch", "update", "delete"])
def test_the_operator_cannot_register_or_change_a_webhook(installed: DevCluster, kind: str,  # noqa: F811
                                                          verb: str) -> None:
    assert not can_i(installed, OPERATOR, verb, kind)


@pytest.fixture
def node(installed: DevCluster) -> Any:  # noqa: F811
    """A bare Node object (no kubelet plays it: only its spec and metadata matter here)."""
    name = unique("sec-node")
    body = {"apiVersion": "v1", "kind": "Node",
            "metadata": {"name": name, "labels": {"kubeagora.io/tier": "cloud"}},
            "spec": {"taints": [{"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}]}}
    proc = installed.kubectl("apply", "-f", "-", input=json.dumps(body))
    assert proc.returncode == 0, proc.stderr
    yield name
    installed.kubectl("delete", "node", name, "--ignore-not-found")


def as_operator(cluster: DevCluster, node: str, patch: Any, kind: str = "json",
                *extra: str) -> subprocess.CompletedProcess[str]:
    return cluster.kubectl("patch", "node", node, f"--as={OPERATOR}", "--type", kind, "-p", json.dumps(patch), *extra)


def test_the_operator_may_add_and_remove_its_taint_and_change_nothing_else_on_a_node(installed: DevCluster,  # noqa: F811
                                                                                   node: str) -> None:
    def taints() -> list[dict[str, Any]]:
        return list(kubectl_json(installed, "get", "node", node)["spec"].get("taints") or [])

    # the policy takes effect once the API server has loaded it; the probe is a server-side dry run (it
    # goes through admission and stores nothing: a relabel stored before the policy was loaded would make
    # every later probe no change at all, and the policy refuses only changes)
    wait_for("the node policy to refuse a relabel", lambda: as_operator(
        installed, node, {"metadata": {"labels": {"kubeagora.io/tier": "edge"}}}, "merge", "--dry-run=server"
    ).returncode != 0, timeout_s=60)
    # the taint is appended and removed by index, as the operator does: the node lifecycle controller adds
    # its own taints to this kubelet-less Node at any moment, and a patch that rewrote the whole list from
    # an older read would remove those, which the policy rightly refuses
    added = as_operator(installed, node, [{"op": "add", "path": "/spec/taints/-", "value": TAINT}])
    assert added.returncode == 0, added.stderr
    assert any(t["key"] == TAINT["key"] for t in taints())
    refusals = {
        "relabel": ({"metadata": {"labels": {"kubeagora.io/tier": "edge", "kubeagora.io/trust": "1"}}}, "merge"),
        "annotate": ({"metadata": {"annotations": {"kubeagora.io/speed-factor": "1e9"}}}, "merge"),
        "untaint the control plane": ([{"op": "add", "path": "/spec/taints", "value": [TAINT]}], "json"),
        "mark it schedulable-no-more": ({"spec": {"unschedulable": True}}, "merge"),
    }
    for what, (patch, kind) in refusals.items():
        proc = as_operator(installed, node, patch, kind)
        assert proc.returncode != 0, f"the operator could {what}"
        assert "kubeagora-operator-node-taints-only" in proc.stderr, proc.stderr
    for _ in range(5):  # a concurrent change to the list moves our taint's index: read it again
        at = next(i for i, t in enumerate(taints()) if t["key"] == TAINT["key"])
        removed = as_operator(installed, node, [{"op": "test", "path": f"/spec/taints/{at}/key", "value": TAINT["key"]},
                                                {"op": "remove", "path": f"/spec/taints/{at}"}])
        if removed.returncode == 0:
            break
    assert removed.returncode == 0, removed.stderr
    keys = [t["key"] for t in taints()]
    assert TAINT["key"] not in keys
    assert "node-role.kubernetes.io/control-plane" in keys


def test_the_bundled_prometheus_cannot_be_stopped_over_http(tmp_path: Path) -> None:
    from kubeagora.devcluster.prometheus import resolve_prometheus

    deployment = next(d for path in sorted((ROOT / "manifests").glob("*.yaml"))
                      for d in yaml.safe_load_all(path.read_text())
                      if d and d["kind"] == "Deployment" and d["metadata"]["name"] == "prometheus")
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    (port,) = free_ports(1)
    config = tmp_path / "prometheus.yml"
    config.write_text("global: {scrape_interval: 15s}\n")
    here = {"--config.file": str(config), "--storage.tsdb.path": str(tmp_path / "data"),
            "--web.listen-address": f"127.0.0.1:{port}"}
    args = [f"{a.split('=', 1)[0]}={here[a.split('=', 1)[0]]}" if a.split("=", 1)[0] in here else a
            for a in container["args"]]
    proc = subprocess.Popen([str(resolve_prometheus()), *args], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        url = f"http://127.0.0.1:{port}"

        def ready() -> bool:
            try:
                with urllib.request.urlopen(f"{url}/-/ready", timeout=2) as resp:
                    return bool(resp.status == 200)
            except (urllib.error.URLError, OSError):
                return False

        wait_for("Prometheus to be ready", ready, timeout_s=60)
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(urllib.request.Request(f"{url}/-/quit", method="POST"), timeout=5)
        assert refused.value.code == 403
        time.sleep(1.0)
        assert proc.poll() is None
        assert ready()
    finally:
        stop_process(proc, 20)  # type: ignore[arg-type]
