"""Signed intents on the real API server, through kopf's webhook: what ``kubeagora intent sign`` writes
survives the API server's defaulting and storage (the canonical payload matches), and an edit made
without the tenant's key is refused naming the annotation.

The webhook, its policy and the namespace are the fixtures of ``tests/integration/test_crds_admission.py``
(a kopf subprocess and a policy of names unique to this module).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from tests.integration.kube import kubectl_json, wait_for
from tests.integration.test_crds_admission import Webhook, crds, intent, namespace, try_apply, webhook

from kubeagora.devcluster import DevCluster

pytest.importorskip("cryptography")
from kubeagora.trust import intent_signing as signing

pytestmark = pytest.mark.integration
__all__ = ["crds", "namespace", "webhook"]  # the fixtures, used by name


def sign_with_the_cli(tmp_path: Path, obj: dict[str, object]) -> dict[str, object]:
    source = tmp_path / "intent.yaml"
    source.write_text(yaml.safe_dump(obj))
    proc = subprocess.run([str(Path(sys.executable).parent / "kubeagora"), "intent", "sign", "--key",
                           str(tmp_path / "t.key"), str(source)], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    signed: dict[str, object] = yaml.safe_load(proc.stdout)
    return signed


def test_a_signed_intent_is_admitted_and_an_edit_without_the_key_is_refused(
        crds: DevCluster, namespace: str, webhook: Webhook, tmp_path: Path) -> None:
    private_pem, public_pem = signing.generate_keypair()
    (tmp_path / "t.key").write_bytes(private_pem)
    rule = {"spec": {"intentSigning": {"tenants": {"retail": {"publicKeys": [public_pem.decode()], "required": True}}}}}
    proc = crds.kubectl("patch", "orchestrationpolicy", webhook.policy, "--type=merge", "-p", yaml.safe_dump(rule))
    assert proc.returncode == 0, proc.stderr
    unsigned = intent(namespace, "signed-checkout", tenant="retail", replicas={"max": 5},
                      rollout={"canarySeconds": 90.0})
    wait_for("the webhook to require signatures",
             lambda: "signature]: missing" in try_apply(crds, unsigned, "--dry-run=server").stderr, timeout_s=30)

    signed = sign_with_the_cli(tmp_path, unsigned)
    proc = try_apply(crds, signed)
    assert proc.returncode == 0, proc.stderr
    stored = kubectl_json(crds, "get", "intent", "signed-checkout", "-n", namespace)
    assert stored["spec"]["rollout"] == {"shadowSeconds": 30, "canarySeconds": 90, "canaryFraction": 0.25}
    assert signing.verifies(stored, [public_pem.decode()]), "the stored object's payload differs from the signed one"

    proc = crds.kubectl("patch", "intent", "signed-checkout", "-n", namespace, "--type=merge",
                        "-p", '{"spec": {"priority": 1000, "replicas": {"max": 10}}}')
    assert proc.returncode != 0
    assert f'admission webhook "intent.{webhook.configuration}" denied the request' in proc.stderr, proc.stderr
    assert "metadata.annotations[kubeagora.io/signature]: does not verify" in proc.stderr, proc.stderr
    assert kubectl_json(crds, "get", "intent", "signed-checkout", "-n", namespace)["spec"]["priority"] == 1

    # the tenant re-signs its own change: admitted
    changed = {**signed, "spec": {**signed["spec"], "replicas": {"max": 10}}}  # type: ignore[dict-item]
    assert try_apply(crds, sign_with_the_cli(tmp_path, changed)).returncode == 0
