"""The CRDs on the real API server (schema, CEL rules, printer columns, short names, the category) and
the admission webhook served by kopf: a policy-violating intent is refused with the field named.

The webhook runs as a kopf subprocess with only `kubeagora.operator.admission` loaded, on a free port;
kopf manages a ValidatingWebhookConfiguration of a name unique to this module. The intent rules come
from a OrchestrationPolicy of a unique name too (not `default`, which other tests' operators may own), and
every object lives in a namespace of this module's own.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from tests.integration.kube import apply, kubectl_json, wait_for

from kubeagora.devcluster import DevCluster
from kubeagora.devcluster.cluster import free_ports

pytest.importorskip("kopf")
pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
CRDS = ("orchestrationintents.kubeagora.io", "orchestrationpolicies.kubeagora.io", "agentactions.kubeagora.io")
INTENT_COLUMNS = ["NAME", "TARGET", "P95 SLO", "P99 SLO", "OBSERVED P99", "REPLICAS", "SLO-MET", "AUTONOMY", "AGE"]


def intent(namespace: str, name: str, **spec: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name},
                            "slo": {"p95Ms": 150, "p99Ms": 250}, "replicas": {"min": 1, "max": 20}}
    body.update(spec)
    return {"apiVersion": "kubeagora.io/v1alpha1", "kind": "OrchestrationIntent",
            "metadata": {"name": name, "namespace": namespace}, "spec": body}


def try_apply(cluster: DevCluster, obj: dict[str, Any], *flags: str) -> subprocess.CompletedProcess[str]:
    return cluster.kubectl("apply", *flags, "-f", "-", input=yaml.safe_dump(obj))


@pytest.fixture(scope="module")
def crds(devcluster: DevCluster) -> DevCluster:
    proc = devcluster.kubectl("apply", "-f", str(ROOT / "crds"))
    assert proc.returncode == 0, proc.stderr
    proc = devcluster.kubectl("wait", "--for=condition=Established", "--timeout=60s", *(f"crd/{c}" for c in CRDS))
    assert proc.returncode == 0, proc.stderr
    return devcluster


@pytest.fixture(scope="module")
def namespace(crds: DevCluster) -> Iterator[str]:
    name = f"ka-adm-{uuid.uuid4().hex[:6]}"
    apply(crds, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
    yield name
    crds.kubectl("delete", "namespace", name, "--wait=false")


# ------------------------------------------------------------------------------------------- schema
def test_crds_are_established_with_short_names_and_the_kubeagora_category(crds: DevCluster) -> None:
    for name in CRDS:
        crd = kubectl_json(crds, "get", "crd", name)
        established = [c for c in crd["status"]["conditions"] if c["type"] == "Established"]
        assert established[0]["status"] == "True"
        assert "kubeagora" in crd["spec"]["names"]["categories"]
    for short in ("intent", "intents", "opol", "aa", "kubeagora"):
        proc = crds.kubectl("get", short, "-A")
        assert proc.returncode == 0, f"kubectl get {short}: {proc.stderr}"


def test_get_intent_shows_the_printer_columns(crds: DevCluster, namespace: str) -> None:
    apply(crds, intent(namespace, "columns"))
    status = {"observed": {"p95Ms": 120.5, "p99Ms": 210, "rps": 50, "replicas": 3, "readyReplicas": 3},
              "sloCompliancePct": 99.5,
              "conditions": [{"type": "SLOMet", "status": "True", "reason": "WithinTarget", "message": "",
                              "lastTransitionTime": "2026-01-01T00:00:00Z"}],
              "lastDecisions": [{"time": "2026-01-01T00:00:00Z", "agent": "scaling", "action": "Scale columns 2->3",
                                 "reason": "load", "state": "Applied"}]}
    proc = crds.kubectl("patch", "intent", "columns", "-n", namespace, "--subresource=status", "--type=merge",
                        "-p", yaml.safe_dump({"status": status}))
    assert proc.returncode == 0, proc.stderr
    stored = kubectl_json(crds, "get", "intent", "columns", "-n", namespace)["status"]
    assert stored["observed"] == status["observed"]
    assert stored["lastDecisions"] == status["lastDecisions"]

    proc = crds.kubectl("get", "intent", "columns", "-n", namespace)
    assert proc.returncode == 0, proc.stderr
    header, row = proc.stdout.splitlines()
    starts = [header.index(c) for c in INTENT_COLUMNS]
    assert starts == sorted(starts), header
    assert row.split()[:-1] == ["columns", "columns", "150", "250", "210", "3", "True", "auto"]


@pytest.mark.parametrize(("spec", "field", "message"), [
    ({"autonomy": "yolo"}, "spec.autonomy", 'Unsupported value: "yolo"'),
    ({"placement": {"tiers": ["edge", "moon"]}}, "spec.placement.tiers[1]", 'Unsupported value: "moon"'),
    ({"slo": {"p95Ms": 300, "p99Ms": 250}}, "spec.slo.p99Ms", "must be at least spec.slo.p95Ms"),
    ({"replicas": {"min": 5, "max": 2}}, "spec.replicas.max", "must be at least spec.replicas.min"),
    ({"slo": {"p95Ms": 0, "p99Ms": 250}}, "spec.slo.p95Ms", "should be greater than 0"),
])
def test_the_schema_refuses_a_bad_intent_naming_the_field(crds: DevCluster, namespace: str, spec: dict[str, Any],
                                                           field: str, message: str) -> None:
    proc = try_apply(crds, intent(namespace, "bad", **spec))
    assert proc.returncode != 0
    assert f"{field}: " in proc.stderr, proc.stderr
    assert message in proc.stderr, proc.stderr


def test_the_schema_refuses_an_agent_action_without_what_its_type_needs(crds: DevCluster, namespace: str) -> None:
    action = {"apiVersion": "kubeagora.io/v1alpha1", "kind": "AgentAction",
              "metadata": {"name": "move", "namespace": namespace},
              "spec": {"intentRef": {"name": "x"}, "agent": "placement",
                       "action": {"type": "Migrate", "service": "x", "fromNode": "a"}}}
    proc = try_apply(crds, action)
    assert proc.returncode != 0
    assert "spec.action: " in proc.stderr, proc.stderr
    assert "fromNode and toNode are required" in proc.stderr, proc.stderr
    action["spec"]["action"]["toNode"] = "b"
    assert try_apply(crds, action).returncode == 0


def test_the_examples_apply(crds: DevCluster) -> None:
    proc = crds.kubectl("apply", "--dry-run=server", "-f", str(ROOT / "examples" / "intent.yaml"),
                        "-f", str(ROOT / "examples" / "policy.yaml"))
    assert proc.returncode == 0, proc.stderr


# ------------------------------------------------------------------------------------------ webhook
@dataclass(frozen=True)
class Webhook:
    configuration: str
    policy: str
    proc: subprocess.Popen[bytes]
    log: Path


@pytest.fixture(scope="module")
def webhook(crds: DevCluster, namespace: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Webhook]:
    suffix = uuid.uuid4().hex[:6]
    configuration, policy = f"ka-{suffix}.kubeagora.io", f"ka-test-{suffix}"
    apply(crds, {"apiVersion": "kubeagora.io/v1alpha1", "kind": "OrchestrationPolicy", "metadata": {"name": policy},
                 "spec": {"maxReplicasPerIntent": 10, "energyCapWatts": 5000, "tenantWeights": {"retail": 2}}})
    (port,) = free_ports(1)
    log = tmp_path_factory.mktemp("admission") / "kopf.log"
    env = {**os.environ, "KUBECONFIG": str(crds.kubeconfig), "KUBEAGORA_WEBHOOK_PORT": str(port),
           "KUBEAGORA_WEBHOOK_CONFIGURATION": configuration, "KUBEAGORA_POLICY": policy}
    cmd = [sys.executable, "-m", "kopf", "run", "--standalone", "--all-namespaces",
           str(ROOT / "tests" / "integration" / "admission_only.py")]
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=ROOT, start_new_session=True)
    hook = Webhook(configuration, policy, proc, log)
    try:
        def configured() -> bool:
            assert proc.poll() is None, f"kopf exited ({proc.returncode}):\n{log.read_text()[-3000:]}"
            got = crds.kubectl("get", "validatingwebhookconfiguration", configuration, "-o", "json")
            if got.returncode != 0:
                return False
            hooks = yaml.safe_load(got.stdout).get("webhooks") or []
            return len(hooks) == 3 and all(h["clientConfig"].get("caBundle") for h in hooks)

        wait_for("kopf to configure the validating webhook", configured, timeout_s=60)
        # the indices fill from watches: wait until the test policy's cap is enforced
        over_cap = intent(namespace, "probe", replicas={"min": 1, "max": 11})
        wait_for("the webhook to enforce the test policy",
                 lambda: "denied the request" in try_apply(crds, over_cap, "--dry-run=server").stderr, timeout_s=60)
        yield hook
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)  # kopf empties its managed webhooks on the way out
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
        for kind in ("validatingwebhookconfiguration", "mutatingwebhookconfiguration"):
            crds.kubectl("delete", kind, configuration, "--ignore-not-found")
        crds.kubectl("delete", "orchestrationpolicy", policy, "--ignore-not-found")


def test_kopf_manages_a_webhook_configuration_pointing_at_its_port(crds: DevCluster, webhook: Webhook) -> None:
    config = kubectl_json(crds, "get", "validatingwebhookconfiguration", webhook.configuration)
    urls = sorted(h["clientConfig"]["url"] for h in config["webhooks"])
    assert all(u.startswith("https://127.0.0.1:") for u in urls), urls
    assert [u.rsplit("/", 1)[1] for u in urls] == ["agentaction", "intent", "orchestration-policy"]
    resources = {r for h in config["webhooks"] for rule in h["rules"] for r in rule["resources"]}
    assert resources == {"orchestrationintents", "orchestrationpolicies", "agentactions"}


@pytest.mark.parametrize(("spec", "message"), [
    ({"replicas": {"min": 1, "max": 11}}, "spec.replicas.max: 11 is above the cluster cap"),
    ({"tenant": "retial"}, "spec.tenant: tenant 'retial' has no weight"),
    ({"budget": {"energyCapWatts": 9000}}, "spec.budget.energyCapWatts: 9000 W is above the cluster cap"),
])
def test_the_webhook_refuses_a_policy_violating_intent_naming_the_field(
        crds: DevCluster, namespace: str, webhook: Webhook, spec: dict[str, Any], message: str) -> None:
    proc = try_apply(crds, intent(namespace, "violating", **spec))
    assert proc.returncode != 0
    assert f'admission webhook "intent.{webhook.configuration}" denied the request' in proc.stderr, proc.stderr
    assert message in proc.stderr, proc.stderr
    assert crds.kubectl("get", "intent", "violating", "-n", namespace).returncode != 0


def test_the_webhook_admits_a_good_intent_and_metadata_changes_after_the_policy_tightens(
        crds: DevCluster, namespace: str, webhook: Webhook) -> None:
    proc = try_apply(crds, intent(namespace, "good", tenant="retail", replicas={"min": 2, "max": 10},
                                  budget={"energyCapWatts": 4000}))
    assert proc.returncode == 0, proc.stderr
    assert kubectl_json(crds, "get", "intent", "good", "-n", namespace)["spec"]["replicas"] == {"min": 2, "max": 10}

    proc = crds.kubectl("patch", "orchestrationpolicy", webhook.policy, "--type=merge",
                        "-p", '{"spec": {"maxReplicasPerIntent": 5}}')
    assert proc.returncode == 0, proc.stderr
    nine = intent(namespace, "probe-tight", replicas={"min": 1, "max": 9})
    wait_for("the webhook to see the tighter cap",
             lambda: "denied the request" in try_apply(crds, nine, "--dry-run=server").stderr, timeout_s=30)
    # the existing intent now asks for more than the cap: labels (and finalizers) still go through ...
    proc = crds.kubectl("label", "intent", "good", "-n", namespace, "team=checkout")
    assert proc.returncode == 0, proc.stderr
    # ... a spec change is judged by the new cap
    proc = crds.kubectl("patch", "intent", "good", "-n", namespace, "--type=merge",
                        "-p", '{"spec": {"replicas": {"max": 8}}}')
    assert proc.returncode != 0
    assert "spec.replicas.max: 8 is above the cluster cap" in proc.stderr, proc.stderr


def _sign_with_the_cli(tmp_path: Path, obj: dict[str, Any]) -> dict[str, Any]:
    source = tmp_path / "intent.yaml"
    source.write_text(yaml.safe_dump(obj))
    proc = subprocess.run([str(Path(sys.executable).parent / "kubeagora"), "intent", "sign", "--key",
                           str(tmp_path / "t.key"), str(source)], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    signed: dict[str, Any] = yaml.safe_load(proc.stdout)
    return signed


def test_a_signed_intent_is_admitted_and_an_edit_without_the_key_is_refused(
        crds: DevCluster, webhook: Webhook, tmp_path: Path) -> None:
    """What `kubeagora intent sign` writes survives the API server's defaulting and storage (the stored
    object's canonical payload is the signed one), and an edit made without the key is refused naming the
    annotation. The signing tenant owns a namespace of this test's own (tenantNamespaces), so the module's
    other intents are not asked for signatures."""
    pytest.importorskip("cryptography")
    from kubeagora.trust import intent_signing as signing

    ns = f"ka-signed-{uuid.uuid4().hex[:6]}"
    apply(crds, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
    private_pem, public_pem = signing.generate_keypair()
    (tmp_path / "t.key").write_bytes(private_pem)
    rule = {"spec": {"tenantNamespaces": {"signers": [ns]}, "intentSigning": {"tenants": {"signers": {
        "publicKeys": [public_pem.decode()], "required": True}}}}}
    proc = crds.kubectl("patch", "orchestrationpolicy", webhook.policy, "--type=merge", "-p", json.dumps(rule))
    assert proc.returncode == 0, proc.stderr
    try:
        unsigned = intent(ns, "signed-checkout", replicas={"max": 5}, rollout={"canarySeconds": 90.0})
        wait_for("the webhook to require signatures in the namespace", lambda: "signature]: missing" in try_apply(
            crds, unsigned, "--dry-run=server").stderr, timeout_s=30)
        signed = _sign_with_the_cli(tmp_path, unsigned)
        proc = try_apply(crds, signed)
        assert proc.returncode == 0, proc.stderr
        stored = kubectl_json(crds, "get", "intent", "signed-checkout", "-n", ns)
        assert stored["spec"]["rollout"] == {"shadowSeconds": 30, "canarySeconds": 90, "canaryFraction": 0.25}
        assert signing.verifies(stored, [public_pem.decode()]), "the stored object's payload is not the signed one"

        proc = crds.kubectl("patch", "intent", "signed-checkout", "-n", ns, "--type=merge",
                            "-p", '{"spec": {"priority": 1000}}')
        assert proc.returncode != 0
        assert "denied the request: metadata.annotations[kubeagora.io/signature]: does not verify" in proc.stderr, \
            proc.stderr
        assert kubectl_json(crds, "get", "intent", "signed-checkout", "-n", ns)["spec"]["priority"] == 1
        changed = {**signed, "spec": {**signed["spec"], "replicas": {"max": 4}}}  # the signer's own change
        assert try_apply(crds, _sign_with_the_cli(tmp_path, changed)).returncode == 0
    finally:
        crds.kubectl("patch", "orchestrationpolicy", webhook.policy, "--type=json", "-p", json.dumps(
            [{"op": "remove", "path": "/spec/intentSigning"}, {"op": "remove", "path": "/spec/tenantNamespaces"}]))
        crds.kubectl("delete", "namespace", ns, "--wait=false")


def test_the_webhook_warns_that_a_policy_of_another_name_has_no_effect(
        crds: DevCluster, webhook: Webhook) -> None:
    name = f"ka-unused-{uuid.uuid4().hex[:6]}"
    policy = {"apiVersion": "kubeagora.io/v1alpha1", "kind": "OrchestrationPolicy", "metadata": {"name": name},
              "spec": {"energyCapWatts": 100}}
    try:
        proc = try_apply(crds, policy)
        assert proc.returncode == 0, proc.stderr
        assert f"the operator enforces only the OrchestrationPolicy named '{webhook.policy}'" in proc.stderr
    finally:
        crds.kubectl("delete", "orchestrationpolicy", name, "--ignore-not-found")


def test_the_webhook_refuses_an_intent_on_a_deployment_an_hpa_already_scales(
        crds: DevCluster, namespace: str, webhook: Webhook) -> None:
    hpa = {"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
           "metadata": {"name": "contested-hpa", "namespace": namespace},
           "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "contested"},
                    "minReplicas": 1, "maxReplicas": 5,
                    "metrics": [{"type": "Resource", "resource": {"name": "cpu", "target": {
                        "type": "Utilization", "averageUtilization": 60}}}]}}
    free = intent(namespace, "contested", tenant="retail", replicas={"min": 1, "max": 5})
    assert try_apply(crds, free, "--dry-run=server").returncode == 0  # admitted while no HPA scales it
    apply(crds, hpa)
    # the webhook's index fills from its watch of HPAs
    wait_for("the webhook to see the HPA",
             lambda: "denied the request" in try_apply(crds, free, "--dry-run=server").stderr, timeout_s=30)
    proc = try_apply(crds, free)
    assert proc.returncode != 0
    assert f"HorizontalPodAutoscaler {namespace}/contested-hpa" in proc.stderr, proc.stderr
    assert "would fight over its replicas" in proc.stderr
    assert crds.kubectl("get", "intent", "contested", "-n", namespace).returncode != 0
    crds.kubectl("delete", "hpa", "contested-hpa", "-n", namespace)
    wait_for("the webhook to admit it once the HPA is gone",
             lambda: try_apply(crds, free, "--dry-run=server").returncode == 0, timeout_s=30)


def test_a_keda_scaled_object_installed_after_the_operator_is_a_conflict_too(
        crds: DevCluster, namespace: str, webhook: Webhook) -> None:
    """KEDA installed after kubeagora: the webhook starts watching ScaledObjects once their CRD appears
    (a minimal stand-in for KEDA's CRD: same group, version and names, no schema)."""
    crd = {"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
           "metadata": {"name": "scaledobjects.keda.sh"},
           "spec": {"group": "keda.sh", "scope": "Namespaced",
                    "names": {"plural": "scaledobjects", "singular": "scaledobject", "kind": "ScaledObject",
                              "shortNames": ["so"]},
                    "versions": [{"name": "v1alpha1", "served": True, "storage": True, "schema": {"openAPIV3Schema": {
                        "type": "object", "x-kubernetes-preserve-unknown-fields": True}}}]}}
    existed = crds.kubectl("get", "crd", "scaledobjects.keda.sh").returncode == 0
    try:
        if not existed:
            apply(crds, crd)
            proc = crds.kubectl("wait", "--for=condition=Established", "--timeout=60s", "crd/scaledobjects.keda.sh")
            assert proc.returncode == 0, proc.stderr
        apply(crds, {"apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject",
                     "metadata": {"name": "queue-scaler", "namespace": namespace},
                     "spec": {"scaleTargetRef": {"name": "worker"}, "triggers": [{"type": "cpu"}]}})
        worker = intent(namespace, "worker", tenant="retail", replicas={"min": 1, "max": 5})
        proc = wait_for("the webhook to watch ScaledObjects and refuse the intent", lambda: (
            p := try_apply(crds, worker, "--dry-run=server")).returncode != 0 and p, timeout_s=180)
        assert f"ScaledObject {namespace}/queue-scaler" in proc.stderr, proc.stderr
    finally:
        crds.kubectl("delete", "scaledobject", "queue-scaler", "-n", namespace, "--ignore-not-found")
        if not existed:
            crds.kubectl("delete", "crd", "scaledobjects.keda.sh", "--ignore-not-found")
