"""The install command a user runs, `kubectl apply -f crds/ -f manifests/`, against the real API server.

Every object in the files must be accepted; the ServiceAccounts must get exactly the access they need
(checked with `kubectl auth can-i --as=system:serviceaccount:…`); the Deployments' pods must pass the
"restricted" Pod Security admission of their namespace. No kubelet runs for these pods, so they stay
Pending. Everything from manifests/ is deleted afterwards (the CRDs stay: other tests share them).
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import yaml
from tests.integration.kube import kubectl_json, wait_for

from kubeagora.devcluster import DevCluster

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
CRDS = ROOT / "crds"
MANIFESTS = ROOT / "manifests"
NAMESPACE = "kubeagora-system"
OPERATOR = f"system:serviceaccount:{NAMESPACE}:kubeagora-operator"
EXTENDER = f"system:serviceaccount:{NAMESPACE}:kubeagora-scheduler-extender"


def manifest_objects() -> list[dict[str, Any]]:
    """The objects `kubectl apply -f manifests/` reads: the directory's own .yaml/.yml/.json files, not subfolders."""
    objects: list[dict[str, Any]] = []
    for path in sorted(MANIFESTS.iterdir()):
        if path.is_file() and path.suffix in {".yaml", ".yml", ".json"}:
            objects += [doc for doc in yaml.safe_load_all(path.read_text()) if doc]
    return objects


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    with path.open("a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _users(path: Path, delta: int) -> int:
    n = max(0, (int(path.read_text()) if path.exists() else 0) + delta)
    path.write_text(str(n))
    return n


@pytest.fixture(scope="module")
def installed(devcluster: DevCluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevCluster]:
    """crds/ and manifests/ applied; manifests/ deleted when the last xdist worker using them is done.

    pytest-xdist spreads this module's tests over workers, each with its own module fixture: a count of
    users in the directory the workers share keeps one worker from deleting what another still tests.
    """
    base = tmp_path_factory.getbasetemp()
    shared = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base
    lock, users = shared / "kubeagora-manifests.lock", shared / "kubeagora-manifests.users"
    with _locked(lock):
        if _users(users, +1) == 1:
            proc = devcluster.kubectl("apply", "-f", str(CRDS), "-f", str(MANIFESTS), timeout_s=120)
            if proc.returncode != 0:
                _users(users, -1)
                pytest.fail(f"kubectl apply -f crds/ -f manifests/ failed:\n{proc.stderr}", pytrace=False)
    try:
        yield devcluster
    finally:
        with _locked(lock):
            if _users(users, -1) == 0:  # wait for the namespace to go, so a later apply does not meet it Terminating
                devcluster.kubectl("delete", "-f", str(MANIFESTS), "--ignore-not-found", "--timeout=90s",
                                   timeout_s=120)


def can_i(cluster: DevCluster, who: str, verb: str, resource: str, *extra: str) -> bool:
    proc = cluster.kubectl("auth", "can-i", verb, resource, f"--as={who}", *extra)
    answer = proc.stdout.strip()
    assert answer in {"yes", "no"}, f"kubectl auth can-i {verb} {resource}: {proc.stdout}{proc.stderr}"
    return answer == "yes"


def test_every_object_in_manifests_is_accepted(installed: DevCluster) -> None:
    expected = {(o["kind"], o["metadata"]["name"]) for o in manifest_objects()}
    assert {("Deployment", "kubeagora-operator"), ("Deployment", "kubeagora-scheduler-extender")} <= expected
    found = kubectl_json(installed, "get", "-f", str(MANIFESTS))
    items = found["items"] if found.get("kind") == "List" else [found]
    assert {(o["kind"], o["metadata"]["name"]) for o in items} == expected


def test_applying_again_changes_nothing(installed: DevCluster) -> None:
    proc = installed.kubectl("apply", "-f", str(CRDS), "-f", str(MANIFESTS), timeout_s=120)
    assert proc.returncode == 0, proc.stderr
    changed = [line for line in proc.stdout.splitlines() if not line.endswith(" unchanged")]
    assert not changed, f"a second apply changed objects: {changed}"


@pytest.mark.parametrize(
    ("verb", "resource", "extra"),
    [
        ("patch", "deployments", ("--subresource=scale", "-n", "default")),
        ("get", "deployments", ("-n", "default")),
        ("create", "pods", ("--subresource=eviction", "-n", "default")),
        ("list", "pods", ("-A",)),
        ("patch", "nodes", ()),
        ("create", "events", ("-n", "default")),
        ("patch", "orchestrationintents.kubeagora.io", ("-n", "default")),
        ("update", "orchestrationintents.kubeagora.io", ("--subresource=status", "-n", "default")),
        ("create", "agentactions.kubeagora.io", ("-n", "default")),
        ("get", "orchestrationpolicies.kubeagora.io", ()),
        ("patch", "deployments", ("-n", "default")),  # residency: the pod template's node affinity
        ("create", "subjectaccessreviews.authorization.k8s.io", ()),
        ("get", "secrets/kubeagora-record-key", ("-n", NAMESPACE)),
        ("update", "leases.coordination.k8s.io/kubeagora-operator", ("-n", NAMESPACE)),
        ("update", "configmaps/kubeagora-action-ledger", ("-n", NAMESPACE)),
    ],
)
def test_operator_may_do_what_its_actions_need(
    installed: DevCluster, verb: str, resource: str, extra: tuple[str, ...]
) -> None:
    assert can_i(installed, OPERATOR, verb, resource, *extra)


@pytest.mark.parametrize(
    ("verb", "resource", "extra"),
    [
        ("create", "clusterrolebindings", ()),
        ("delete", "nodes", ()),
        ("get", "secrets", ("-A",)),
        ("create", "pods", ("-n", "default")),
        ("delete", "pods", ("-n", "default")),
        ("create", "deployments", ("-n", "default")),
        ("delete", "customresourcedefinitions", ()),
        ("patch", "orchestrationpolicies.kubeagora.io", ()),
        ("delete", "validatingwebhookconfigurations", ()),
        ("create", "validatingwebhookconfigurations", ()),
        ("patch", "validatingwebhookconfigurations", ()),
        ("create", "mutatingwebhookconfigurations", ()),
        ("get", "secrets/other", ("-n", NAMESPACE)),
        ("create", "secrets", ("-n", NAMESPACE)),
        ("update", "leases.coordination.k8s.io/other", ("-n", NAMESPACE)),
        ("impersonate", "users", ()),
    ],
)
def test_operator_may_not_do_more(installed: DevCluster, verb: str, resource: str, extra: tuple[str, ...]) -> None:
    assert not can_i(installed, OPERATOR, verb, resource, *extra)


@pytest.mark.parametrize(
    ("verb", "resource"),
    [("list", "nodes"), ("watch", "pods"), ("get", "deployments"), ("list", "orchestrationintents.kubeagora.io")],
)
def test_extender_reads_what_it_scores(installed: DevCluster, verb: str, resource: str) -> None:
    assert can_i(installed, EXTENDER, verb, resource, "-A")


@pytest.mark.parametrize(
    ("verb", "resource", "extra"),
    [
        ("patch", "nodes", ()),
        ("create", "pods", ("--subresource=eviction", "-n", "default")),
        ("patch", "deployments", ("--subresource=scale", "-n", "default")),
        ("update", "orchestrationintents.kubeagora.io", ("-n", "default")),
        ("create", "agentactions.kubeagora.io", ("-n", "default")),
        ("get", "secrets", ("-A",)),
        ("create", "bindings", ("-n", "default")),
    ],
)
def test_extender_is_read_only(installed: DevCluster, verb: str, resource: str, extra: tuple[str, ...]) -> None:
    assert not can_i(installed, EXTENDER, verb, resource, *extra)


DEPLOYMENTS = {o["metadata"]["name"]: o for o in manifest_objects() if o["kind"] == "Deployment"}


@pytest.mark.parametrize("deployment", sorted(DEPLOYMENTS))
def test_pods_pass_restricted_pod_security(installed: DevCluster, deployment: str) -> None:
    """The ReplicaSet creates the pod (Pending: no kubelet here) only if Pod Security admission accepts it."""

    def pod_or_refusal() -> Any:
        pods = kubectl_json(installed, "get", "pods", "-n", NAMESPACE,
                            "-l", f"app.kubernetes.io/name={deployment}")["items"]
        if pods:
            return pods
        events = kubectl_json(installed, "get", "events", "-n", NAMESPACE)["items"]
        refused = [e["message"] for e in events if e.get("reason") == "FailedCreate"
                   and deployment in e.get("involvedObject", {}).get("name", "")]
        assert not refused, refused[0]
        return None

    pods = wait_for(f"a pod of {deployment}", pod_or_refusal, timeout_s=60)
    template = DEPLOYMENTS[deployment]["spec"]["template"]["spec"]
    for pod in pods:  # the operator runs two replicas (leader election)
        assert pod["spec"]["serviceAccountName"] == template["serviceAccountName"]
        assert pod["spec"]["containers"][0]["image"] == template["containers"][0]["image"]
