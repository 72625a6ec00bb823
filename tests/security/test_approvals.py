"""Finding 1 (approvals) — who may answer an AgentAction, judged by the operator's webhooks on the real
API server, for users made with impersonation (``kubectl --as``).

Before, any user who could patch an AgentAction approved it (a tenant approved quarantining a shared
node with a plain spec patch), and nothing recorded who. Now an answer is admitted only from a user
RBAC lets ``approve`` agentactions in that namespace (a SubjectAccessReview), or one the
OrchestrationPolicy names; an action on a node (recorded in the operator's namespace) only with a
cluster-wide grant; and the mutating webhook writes who answered into ``spec.approver``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.integration.kube import apply, kubectl_json, wait_for
from tests.security.live import unique

from kubeagora.devcluster import DevCluster
from kubeagora.devcluster.cluster import free_ports
from kubeagora.operator.admission import self_signed_certificate, webhook_configurations

pytest.importorskip("kopf")
pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
LABEL = "kubeagora-security-approvals"


def record(ns: str, name: str, action: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": "kubeagora.io/v1alpha1", "kind": "AgentAction", "metadata": {"name": name, "namespace": ns},
            "spec": {"intentRef": {"name": "checkout"}, "agent": "scaling", "action": action, "approval": "Pending"}}


def role(ns: str, name: str, verbs: list[str], user: str) -> list[dict[str, Any]]:
    return [{"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": {"name": name, "namespace": ns},
             "rules": [{"apiGroups": ["kubeagora.io"], "resources": ["agentactions"], "verbs": verbs}]},
            {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
             "metadata": {"name": name, "namespace": ns},
             "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
             "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": user}]}]


@pytest.fixture(scope="module")
def webhook(crds: DevCluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[DevCluster, str, str]]:
    """The webhooks served for AgentActions in this module's namespaces only (a label selects them)."""
    shop, ops = unique("sec-shop"), unique("sec-ops")
    for ns in (shop, ops):
        apply(crds, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns, "labels": {LABEL: "yes"}}})
    tmp = tmp_path_factory.mktemp("approvals")
    cert, key = self_signed_certificate(tmp, "127.0.0.1")
    (port,) = free_ports(1)
    name = f"{unique('ka-sec')}.kubeagora.io"
    configs = webhook_configurations(cert.read_bytes(), url=f"https://127.0.0.1:{port}", name=name)
    for c in configs:
        c["webhooks"] = [h for h in c["webhooks"] if h["name"].startswith("agentaction")]
        for h in c["webhooks"]:
            h["namespaceSelector"] = {"matchLabels": {LABEL: "yes"}}
    log = tmp / "kopf.log"
    env = {**os.environ, "KUBECONFIG": str(crds.kubeconfig), "KUBEAGORA_WEBHOOK_PORT": str(port),
           "KUBEAGORA_WEBHOOK_CERT": str(cert), "KUBEAGORA_WEBHOOK_KEY": str(key), "KUBEAGORA_POLICY": unique("none")}
    cmd = [sys.executable, "-m", "kopf", "run", "--standalone", "--all-namespaces",
           str(ROOT / "tests" / "security" / "approvals_webhook.py")]
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=ROOT, start_new_session=True)
    try:
        apply(crds, *configs)
        probe = record(shop, "probe", {"type": "Scale", "service": "checkout", "replicas": 2})
        apply(crds, probe)

        def serving() -> bool:
            assert proc.poll() is None, f"kopf exited ({proc.returncode}):\n{log.read_text()[-3000:]}"
            answered = crds.kubectl("patch", "agentaction", "probe", "-n", shop, "--type=merge", "--dry-run=server",
                                    "-o", "json", "-p", '{"spec": {"approval": "Approved"}}')
            if answered.returncode != 0:
                return False
            return bool(json.loads(answered.stdout)["spec"].get("approver") == "kubeagora-admin")

        wait_for("the webhooks to answer", serving, timeout_s=90)
        yield crds, shop, ops
    finally:
        for c in configs:
            crds.kubectl("delete", c["kind"].lower(), name, "--ignore-not-found")
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
        crds.kubectl("delete", "namespace", shop, ops, "--wait=false")


def answer(cluster: DevCluster, ns: str, name: str, user: str, verdict: str = "Approved",
           approver: str | None = None) -> subprocess.CompletedProcess[str]:
    spec: dict[str, Any] = {"approval": verdict}
    if approver is not None:
        spec["approver"] = approver
    return cluster.kubectl("patch", "agentaction", name, "-n", ns, f"--as={user}", "--type=merge",
                           "-p", json.dumps({"spec": spec}))


def test_a_tenant_who_may_patch_but_not_approve_cannot_answer(webhook: tuple[DevCluster, str, str]) -> None:
    cluster, shop, _ = webhook
    apply(cluster, record(shop, "scale-up", {"type": "Scale", "service": "checkout", "replicas": 5}),
          *role(shop, "patcher", ["get", "patch"], "mallory"))
    refused = answer(cluster, shop, "scale-up", "mallory")
    assert refused.returncode != 0
    assert "mallory may not answer this AgentAction" in refused.stderr, refused.stderr
    assert kubectl_json(cluster, "get", "agentaction", "scale-up", "-n", shop)["spec"]["approval"] == "Pending"


def test_an_approver_answers_once_and_the_record_says_who(webhook: tuple[DevCluster, str, str]) -> None:
    cluster, shop, _ = webhook
    apply(cluster, record(shop, "scale-down", {"type": "Scale", "service": "checkout", "replicas": 1}),
          *role(shop, "approver", ["get", "patch", "approve"], "alice"))
    ok = answer(cluster, shop, "scale-down", "alice", approver="bob")  # naming someone else changes nothing
    assert ok.returncode == 0, ok.stderr
    spec = kubectl_json(cluster, "get", "agentaction", "scale-down", "-n", shop)["spec"]
    assert (spec["approval"], spec["approver"]) == ("Approved", "alice")
    again = answer(cluster, shop, "scale-down", "alice", verdict="Denied")
    assert again.returncode != 0
    assert "already answered" in again.stderr, again.stderr


def test_a_node_action_needs_a_cluster_wide_grant(webhook: tuple[DevCluster, str, str]) -> None:
    """A tenant allowed to approve in the operator's namespace still may not quarantine a shared node."""
    cluster, _, ops = webhook
    apply(cluster, record(ops, "quarantine", {"type": "QuarantineNode", "node": "control-plane-0"}),
          *role(ops, "ops-approver", ["get", "patch", "approve"], "carol"))
    refused = answer(cluster, ops, "quarantine", "carol")
    assert refused.returncode != 0
    assert "cluster-wide" in refused.stderr, refused.stderr
    admin = answer(cluster, ops, "quarantine", "root-admin-for-test")  # no grant at all
    assert admin.returncode != 0
    ok = cluster.kubectl("patch", "agentaction", "quarantine", "-n", ops, "--type=merge",
                         "-p", '{"spec": {"approval": "Approved"}}')  # the cluster administrator (system:masters)
    assert ok.returncode == 0, ok.stderr
    stored = kubectl_json(cluster, "get", "agentaction", "quarantine", "-n", ops)["spec"]
    assert stored["approver"] == "kubeagora-admin"


