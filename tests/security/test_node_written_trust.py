"""Finding 5 and zero trust — a node writing its own trust on the real API server.

A node's kubelet credentials (user ``system:node:NAME``, group ``system:nodes``) may create and patch its
own Node object, labels and annotations included. Trust in a node is the operator's verdict, so a node
that could write ``kubeagora.io/trust`` could undo a distrust it earned. On today's main nothing stops it;
the ValidatingAdmissionPolicy ``kubeagora-node-trust-operator-only`` (``manifests/node-policy.yaml``)
refuses a change of that annotation or label by anyone but the operator's ServiceAccount. The attacks
here are made with the node's own identity (``kubectl --as``) after ``kubectl apply -f manifests/``; each
starts by showing the identity may write its Node otherwise, so a refusal is the policy's.
"""

from __future__ import annotations

import json
import subprocess
from typing import Any

import pytest
from tests.integration.kube import kubectl_json, wait_for
from tests.integration.test_manifests import OPERATOR, installed  # noqa: F401  (fixture)
from tests.security.live import unique

from kubeagora.devcluster import DevCluster

pytestmark = pytest.mark.integration

POLICY = "kubeagora-node-trust-operator-only"
TRUST = "kubeagora.io/trust"


def as_node(cluster: DevCluster, node: str, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return cluster.kubectl(*args, f"--as=system:node:{node}", "--as-group=system:nodes",
                           "--as-group=system:authenticated", input=stdin)


def patch(cluster: DevCluster, node: str, body: Any, who: list[str]) -> subprocess.CompletedProcess[str]:
    return cluster.kubectl("patch", "node", node, *who, "--type", "merge", "-p", json.dumps(body))


def node_identity(node: str) -> list[str]:
    return [f"--as=system:node:{node}", "--as-group=system:nodes", "--as-group=system:authenticated"]


def annotations(cluster: DevCluster, node: str) -> dict[str, str]:
    return dict(kubectl_json(cluster, "get", "node", node)["metadata"].get("annotations") or {})


@pytest.fixture
def node(installed: DevCluster) -> Any:  # noqa: F811
    name = unique("trust-node")
    body = {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name, "labels": {"kubeagora.io/tier": "cloud"}}}
    proc = installed.kubectl("apply", "-f", "-", input=json.dumps(body))
    assert proc.returncode == 0, proc.stderr
    # the policy takes effect once the API server has loaded it; the probe is a server-side dry run, which
    # goes through admission and stores nothing: a probe that got through before the policy was loaded
    # would otherwise have written trust "1", and every later probe, no longer a change, would pass it
    wait_for("the trust policy to refuse a node's own trust", lambda: POLICY in patch(
        installed, name, {"metadata": {"annotations": {TRUST: "1"}}}, [*node_identity(name), "--dry-run=server"]
    ).stderr, timeout_s=60)
    assert TRUST not in annotations(installed, name)
    yield name
    installed.kubectl("delete", "node", name, "--ignore-not-found")


def test_a_node_cannot_write_its_own_trust_and_cannot_undo_the_operators(installed: DevCluster,  # noqa: F811
                                                                         node: str) -> None:
    me = node_identity(node)
    # the node may write its Node: a speed report (which the extender bounds) goes through
    allowed = patch(installed, node, {"metadata": {"annotations": {"kubeagora.io/speed-factor": "0.5"}}}, me)
    assert allowed.returncode == 0, allowed.stderr
    for what, body in {"annotation": {"metadata": {"annotations": {TRUST: "1"}}},
                       "label": {"metadata": {"labels": {TRUST: "1"}}}}.items():
        refused = patch(installed, node, body, me)
        assert refused.returncode != 0, f"the node wrote its own trust {what}"
        assert POLICY in refused.stderr, refused.stderr
    # the operator publishes its verdict; the node can neither raise nor remove it
    published = patch(installed, node, {"metadata": {"annotations": {TRUST: "0.2"}}}, [f"--as={OPERATOR}"])
    assert published.returncode == 0, published.stderr
    for body in ({"metadata": {"annotations": {TRUST: "1"}}}, {"metadata": {"annotations": {TRUST: None}}}):
        refused = patch(installed, node, body, me)
        assert refused.returncode != 0
        assert POLICY in refused.stderr, refused.stderr
    # nor may anyone else (here a cluster administrator by hand): only the operator writes trust
    by_hand = installed.kubectl("annotate", "node", node, f"{TRUST}=1", "--overwrite")
    assert by_hand.returncode != 0
    assert POLICY in by_hand.stderr
    assert annotations(installed, node)[TRUST] == "0.2"
    # the operator's own policy still keeps it to its taint and its trust annotation
    relabel = patch(installed, node, {"metadata": {"annotations": {"kubeagora.io/speed-factor": "1"}}},
                    [f"--as={OPERATOR}"])
    assert relabel.returncode != 0
    assert "kubeagora-operator-node-taints-only" in relabel.stderr


def test_a_node_cannot_register_itself_already_trusted(installed: DevCluster, node: str) -> None:  # noqa: F811
    name = unique("trust-new")

    def register(extra: dict[str, str]) -> subprocess.CompletedProcess[str]:
        body = {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name, "annotations": extra}}
        return as_node(installed, name, "create", "-f", "-", stdin=json.dumps(body))

    try:
        refused = register({TRUST: "1"})
        assert refused.returncode != 0
        assert POLICY in refused.stderr, refused.stderr
        allowed = register({"kubeagora.io/speed-factor": "0.9"})  # the same identity may register a plain Node
        assert allowed.returncode == 0, allowed.stderr
    finally:
        installed.kubectl("delete", "node", name, "--ignore-not-found")
