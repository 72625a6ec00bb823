"""Signed intents, the pure parts: the canonical payload, sign and verify, the policy's rule, the CLI."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

pytest.importorskip("cryptography")

from kubeagora.cli import app
from kubeagora.model.intent import (
    IntentError,
    IntentSigning,
    OrchestrationPolicy,
    TenantSigning,
    parse_orchestration_policy,
)
from kubeagora.trust import intent_signing as signing

ROOT = Path(__file__).resolve().parents[2]


def intent(name: str = "checkout", namespace: str = "shop", **spec: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"targetRef": {"name": name}, "slo": {"p95Ms": 150.0, "p99Ms": 250}, "tenant": "shop"}
    body.update(spec)
    return {"apiVersion": "kubeagora.io/v1alpha1", "kind": "OrchestrationIntent",
            "metadata": {"name": name, "namespace": namespace}, "spec": body}


def keypair() -> tuple[Any, str]:
    private_pem, public_pem = signing.generate_keypair()
    return signing.load_private_key(private_pem, "test"), public_pem.decode()


def policy(*, require_all: bool = False, **tenants: TenantSigning) -> OrchestrationPolicy:
    return OrchestrationPolicy(intent_signing=IntentSigning(require_all, tenants))


def test_the_canonical_payload_is_sorted_compact_json_of_the_stored_spec() -> None:
    payload = signing.canonical_payload(intent())
    assert b" " not in payload
    assert b"\n" not in payload
    body = json.loads(payload)
    assert list(body) == sorted(body)
    assert body["metadata"] == {"name": "checkout", "namespace": "shop"}
    assert body["kind"] == "OrchestrationIntent"
    # the CRD's defaults filled in, 150.0 written as the API server stores it
    assert body["spec"]["slo"] == {"p95Ms": 150, "p99Ms": 250}
    assert body["spec"]["autonomy"] == "auto"
    assert body["spec"]["priority"] == 1
    assert body["spec"]["targetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "checkout"}


def test_a_file_and_what_the_api_server_stores_for_it_give_the_same_payload() -> None:
    as_written = intent(rollout={"canarySeconds": 90.0}, replicas={"max": 5})
    as_stored = intent(rollout={"shadowSeconds": 30, "canarySeconds": 90, "canaryFraction": 0.25},
                       replicas={"min": 1, "max": 5}, priority=1, autonomy="auto",
                       targetRef={"apiVersion": "apps/v1", "kind": "Deployment", "name": "checkout"})
    assert signing.canonical_payload(as_written) == signing.canonical_payload(as_stored)


def _crd_defaults(schema: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, prop in (schema.get("properties") or {}).items():
        if "default" in prop:
            out[key] = prop["default"]
        elif prop.get("type") == "object":
            nested = _crd_defaults(prop)
            if nested:
                out[key] = nested
    return out


def test_the_defaults_filled_in_are_the_crds() -> None:
    crd = yaml.safe_load((ROOT / "crds" / "orchestrationintents.yaml").read_text())
    spec = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    assert _crd_defaults(spec) == signing.SPEC_DEFAULTS


def test_a_signed_intent_verifies_and_an_edited_or_moved_one_does_not() -> None:
    key, public = keypair()
    signed = signing.signed(intent(), key)
    assert signing.verifies(signed, [public])
    edited = json.loads(json.dumps(signed))
    edited["spec"]["replicas"] = {"max": 500}
    assert not signing.verifies(edited, [public])
    for field, value in (("name", "payments"), ("namespace", "other")):
        moved = json.loads(json.dumps(signed))
        moved["metadata"][field] = value
        assert not signing.verifies(moved, [public]), field
    _, other_public = keypair()
    assert not signing.verifies(signed, [other_public])


@pytest.mark.parametrize(("value", "message"), [
    ("rsa:abc:def", "not of the form ed25519:<key id>:<signature>"),
    ("ed25519:abc:not base64!", "not base64url"),
    ("ed25519:abc:AAAA", "an ed25519 signature is 64 bytes, this one 3"),
    (42, "not of the form"),
])
def test_a_malformed_signature_is_named(value: object, message: str) -> None:
    with pytest.raises(signing.SigningError, match=message) as e:
        signing.parse_signature(value)
    assert signing.FIELD in str(e.value)


def test_the_rule_refuses_what_it_requires_and_is_missing_or_wrong() -> None:
    key, public = keypair()
    rule = policy(shop=TenantSigning((public,), required=True))
    assert signing.check(signing.signed(intent(), key), rule) is None
    missing = signing.check(intent(), rule)
    assert missing is not None
    assert missing.startswith(f"{signing.FIELD}: missing")
    assert "tenant shop requires it" in missing
    stranger, _ = keypair()
    wrong_key = signing.check(signing.signed(intent(), stranger), rule)
    assert wrong_key is not None
    assert "is not a key of tenant shop" in wrong_key
    edited = signing.signed(intent(), key)
    edited["spec"]["priority"] = 1000
    stale = signing.check(edited, rule)
    assert stale is not None
    assert "does not verify" in stale


def test_an_unsigned_intent_passes_where_nothing_requires_a_signature() -> None:
    _, public = keypair()
    assert signing.check(intent(), None) is None
    assert signing.check(intent(), policy(shop=TenantSigning((public,)))) is None
    assert signing.check(intent(tenant="other"), policy(shop=TenantSigning((public,), required=True))) is None


def test_require_all_needs_a_key_for_every_tenant() -> None:
    why = signing.check(intent(), policy(require_all=True))
    assert why is not None
    assert "missing" in why
    assert "requireAll" in why
    key, _ = keypair()
    why = signing.check(signing.signed(intent(), key), policy(require_all=True))
    assert why is not None
    assert "tenant shop has no public key" in why


def test_naming_another_tenant_does_not_escape_the_namespace_owners_rule() -> None:
    """shop's namespace is shop's: an intent there naming tenant 'free' must still carry shop's signature."""
    key, public = keypair()
    rule = replace(policy(shop=TenantSigning((public,), required=True)), tenant_namespaces={"shop": ("shop",)})
    escaped = intent(tenant="free")
    why = signing.check(escaped, rule)
    assert why is not None
    assert "missing" in why
    assert signing.check(signing.signed(escaped, key), rule) is None


def test_a_stale_signature_is_refused_even_where_none_is_required() -> None:
    key, public = keypair()
    stale = signing.signed(intent(), key)
    stale["spec"]["slo"] = {"p95Ms": 10, "p99Ms": 20}
    why = signing.check(stale, policy(shop=TenantSigning((public,))))
    assert why is not None
    assert "does not verify" in why


def test_the_gate_splits_what_the_operator_may_act_on() -> None:
    key, public = keypair()
    rule = policy(shop=TenantSigning((public,), required=True))
    good, bad = signing.signed(intent("a"), key), intent("b")
    admitted, refused = signing.gate([good, bad], rule)
    assert admitted == [good]
    assert [r.key for r in refused] == ["shop/b"]


def test_the_gate_memoises_payloads_by_the_spec_itself_so_an_edit_is_still_refused() -> None:
    key, public = keypair()
    rule = policy(shop=TenantSigning((public,), required=True))
    stored = signing.signed(intent("memo"), key)
    stored["metadata"].update(uid="uid-memo", generation=1)
    assert signing.gate([stored], rule)[0] == [stored]
    assert signing.memoised_payload(stored) is signing.memoised_payload(json.loads(json.dumps(stored)))
    edited = json.loads(json.dumps(stored))
    edited["spec"]["priority"] = 1000  # same uid and generation: the memo must not trust either
    admitted, refused = signing.gate([edited], rule)
    assert admitted == []
    assert "does not verify" in refused[0].why


def test_the_policy_parses_signing_rules_and_names_bad_fields() -> None:
    _, public = keypair()
    parsed = parse_orchestration_policy({"metadata": {"name": "default"}, "spec": {"intentSigning": {
        "requireAll": False, "tenants": {"shop": {"publicKeys": [public], "required": True}}}}})
    assert parsed.intent_signing.tenants["shop"] == TenantSigning((public,), True)
    for bad, field in (({"requireAll": "yes"}, "spec.intentSigning.requireAll"),
                       ({"tenants": {"shop": {"publicKeys": ["ssh-ed25519 AAAA"]}}},
                        "spec.intentSigning.tenants.shop.publicKeys[0]"),
                       ({"tenants": {"shop": {"publicKey": [public]}}}, "spec.intentSigning.tenants.shop.publicKey")):
        with pytest.raises(IntentError) as e:
            parse_orchestration_policy({"spec": {"intentSigning": bad}})
        assert e.value.field_path == field


def test_a_policy_key_that_is_not_ed25519_is_named() -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    p256 = ec.generate_private_key(ec.SECP256R1()).public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    problems = signing.key_problems(policy(shop=TenantSigning((p256,))))
    assert problems == ["spec.intentSigning.tenants.shop.publicKeys[0]: not an ed25519 public key"]


# ---------------------------------------------------------------------------------------------- CLI
runner = CliRunner()


def test_keygen_then_sign_prints_an_intent_that_verifies(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    made = runner.invoke(app, ["intent", "keygen", "shop", "--tenant", "shop"])
    assert made.exit_code == 0, made.output
    assert (tmp_path / "shop.key").stat().st_mode & 0o777 == 0o600
    snippet = made.output.split("# add to the OrchestrationPolicy 'default':\n", 1)[1]
    public = yaml.safe_load(snippet)["spec"]["intentSigning"]["tenants"]["shop"]["publicKeys"][0]
    assert public == (tmp_path / "shop.pub").read_text()
    source = tmp_path / "intent.yaml"
    unnamed = intent()
    del unnamed["metadata"]["namespace"]
    source.write_text(yaml.safe_dump_all([{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop"}},
                                          unnamed]))
    out = runner.invoke(app, ["intent", "sign", "--key", "shop.key", "-n", "shop", str(source)])
    assert out.exit_code == 0, out.output
    namespace_doc, signed = yaml.safe_load_all(out.stdout)
    assert namespace_doc["kind"] == "Namespace"
    assert signed["metadata"]["namespace"] == "shop"
    assert signing.verifies(signed, [public])
    again = runner.invoke(app, ["intent", "keygen", "shop"])
    assert again.exit_code == 2
    assert "exists" in again.output


def test_sign_in_place_rewrites_the_file(tmp_path: Path) -> None:
    key, public = keypair()
    from cryptography.hazmat.primitives import serialization

    (tmp_path / "k.pem").write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                       serialization.NoEncryption()))
    path = tmp_path / "i.yaml"
    path.write_text(yaml.safe_dump(intent()))
    out = runner.invoke(app, ["intent", "sign", "--key", str(tmp_path / "k.pem"), "--in-place", str(path)])
    assert out.exit_code == 0, out.output
    assert signing.verifies(yaml.safe_load(path.read_text()), [public])


@pytest.mark.parametrize(("content", "key_text", "message"), [
    ("a: [", None, "not YAML"),
    (yaml.safe_dump({"kind": "Namespace"}), None, "no OrchestrationIntent in it"),
    (yaml.safe_dump(intent(slo={"p95Ms": 300, "p99Ms": 250})), None, "spec.slo.p99Ms"),
    (yaml.safe_dump({**intent(), "metadata": {}}), None, "metadata.name: is required"),
    (yaml.safe_dump(intent()), "not a key", "not an unencrypted PEM private key"),
])
def test_sign_refuses_bad_input_in_one_line(tmp_path: Path, content: str, key_text: str | None, message: str) -> None:
    path = tmp_path / "i.yaml"
    path.write_text(content)
    key_path = tmp_path / "k.pem"
    if key_text is None:
        private_pem, _ = signing.generate_keypair()
        key_path.write_bytes(private_pem)
    else:
        key_path.write_text(key_text)
    out = runner.invoke(app, ["intent", "sign", "--key", str(key_path), str(path)])
    assert out.exit_code == 2
    assert message in out.output
    assert "Traceback" not in out.output
