"""Signed OrchestrationIntents: ed25519 over a canonical payload, and the policy's rule (pure).

The signature covers what the intent asks for and where it applies, so it can be neither kept over
an edited spec nor replayed onto another intent. The signed payload is the **canonical JSON** of

    {"apiVersion": "kubeagora.io/v1alpha1", "kind": "OrchestrationIntent",
     "metadata": {"name": NAME, "namespace": NAMESPACE}, "spec": SPEC}

with keys sorted, no whitespace (``separators=(",", ":")``), UTF-8 without escaping, where SPEC is
the spec as the API server stores it: the CRD's defaults filled in (``SPEC_DEFAULTS``; a unit test
holds them to the CRD) and every integral number written as an integer (YAML's ``150.0`` and the
API server's ``150`` are one value). A file and the object the API server returns for it therefore
give the same bytes.

The signature is the annotation ``kubeagora.io/signature: ed25519:<key id>:<signature>``: the key id
is the first 16 hex digits of the SHA-256 of the raw 32-byte public key, the signature is base64url
without padding. Keys are PEM files (``kubeagora intent keygen``, or ``openssl genpkey -algorithm
ed25519`` and ``openssl pkey -pubout``).

The rule (``check``) under an OrchestrationPolicy's ``intentSigning``: the tenants an intent answers
to are the tenant it names and every tenant whose namespaces (``spec.tenantNamespaces``) hold it.
Where one of them requires signatures (or ``requireAll``), the annotation must be present and verify
under a key of each such tenant; a signature that is present must verify wherever the tenants hold
keys, required or not (a stale signature says the spec changed without the key). Verification results are cached by
(payload, signature, key), so an operator tick re-checking unchanged intents costs a dict lookup.
"""

from __future__ import annotations

import base64
import binascii
import copy
import functools
import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from kubeagora.kubeapi.stored_numbers import whole_numbers
from kubeagora.model.intent import GROUP, INTENT_KIND, VERSION, OrchestrationPolicy

SIGNATURE_ANNOTATION = "kubeagora.io/signature"
FIELD = f"metadata.annotations[{SIGNATURE_ANNOTATION}]"
"""The field path every signature problem names."""
SCHEME = "ed25519"
SPEC_DEFAULTS: Mapping[str, Any] = {
    "tenant": "default",
    "priority": 1,
    "autonomy": "auto",
    "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment"},
    "replicas": {"min": 1},
    "rollout": {"shadowSeconds": 30, "canarySeconds": 60, "canaryFraction": 0.25},
}
"""The CRD's defaults: top-level values always; a nested object's only where the object is present."""


class SigningError(ValueError):
    """A key or signature that cannot be used; the message names the file or field."""


# ------------------------------------------------------------------------------------- canonical form
def defaulted_spec(spec: Mapping[str, Any]) -> dict[str, Any]:
    """The spec with the CRD's defaults filled in, as the API server stores it."""
    out = copy.deepcopy(dict(spec))
    for key, default in SPEC_DEFAULTS.items():
        if isinstance(default, Mapping):
            if isinstance(out.get(key), Mapping):
                out[key] = {**default, **out[key]}
        elif key not in out:
            out[key] = default
    return out


def canonical_payload(obj: Mapping[str, Any]) -> bytes:
    """The bytes a signature covers (see the module docstring)."""
    meta = obj.get("metadata") or {}
    spec = obj.get("spec")
    if not isinstance(spec, Mapping):
        raise SigningError("spec: is required (it is what the signature covers)")
    body = {"apiVersion": f"{GROUP}/{VERSION}", "kind": INTENT_KIND,
            "metadata": {"name": str(meta.get("name") or ""), "namespace": str(meta.get("namespace") or "default")},
            "spec": whole_numbers(defaulted_spec(spec))}
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()


# ---------------------------------------------------------------------------------------------- keys
def generate_keypair() -> tuple[bytes, bytes]:
    """(private key PEM, public key PEM) of a new ed25519 key."""
    key = Ed25519PrivateKey.generate()
    private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    public = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    return private, public


def load_private_key(pem: bytes, source: str) -> Ed25519PrivateKey:
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError) as e:
        raise SigningError(f"{source}: not an unencrypted PEM private key ({e})") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise SigningError(f"{source}: a {type(key).__name__.removeprefix('_')} key, not ed25519 "
                           "(make one with: openssl genpkey -algorithm ed25519)")
    return key


@functools.lru_cache(maxsize=1024)
def load_public_key(pem: str, source: str = "public key") -> Ed25519PublicKey:
    try:
        key = serialization.load_pem_public_key(pem.encode())
    except (ValueError, TypeError) as e:
        raise SigningError(f"{source}: not a PEM public key ({e})") from None
    if not isinstance(key, Ed25519PublicKey):
        raise SigningError(f"{source}: not an ed25519 public key")
    return key


def key_id(public_key: Ed25519PublicKey) -> str:
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


@functools.lru_cache(maxsize=1024)
def _key_id_of_pem(pem: str) -> str:
    return key_id(load_public_key(pem))


# ---------------------------------------------------------------------------------------- signatures
def sign(obj: Mapping[str, Any], private_key: Ed25519PrivateKey) -> str:
    """The annotation value that signs ``obj`` (its namespace must be the one it will be applied in)."""
    raw = private_key.sign(canonical_payload(obj))
    encoded = base64.urlsafe_b64encode(raw).decode().rstrip("=")
    return f"{SCHEME}:{key_id(private_key.public_key())}:{encoded}"


def signed(obj: Mapping[str, Any], private_key: Ed25519PrivateKey) -> dict[str, Any]:
    """A copy of ``obj`` carrying its signature annotation."""
    out = copy.deepcopy(dict(obj))
    meta = out.setdefault("metadata", {})
    meta.setdefault("annotations", {})[SIGNATURE_ANNOTATION] = sign(out, private_key)
    return out


@dataclass(frozen=True, slots=True)
class Signature:
    key_id: str
    raw: bytes


def parse_signature(value: object) -> Signature:
    """The annotation's value; SigningError naming the field when it is malformed."""
    parts = value.split(":") if isinstance(value, str) else []
    if len(parts) != 3 or parts[0] != SCHEME or not parts[1]:
        raise SigningError(f"{FIELD}: not of the form {SCHEME}:<key id>:<signature> (kubeagora intent sign writes it)")
    try:
        raw = base64.urlsafe_b64decode(parts[2] + "=" * (-len(parts[2]) % 4))
    except (binascii.Error, ValueError):
        raise SigningError(f"{FIELD}: the signature is not base64url") from None
    if len(raw) != 64:
        raise SigningError(f"{FIELD}: an ed25519 signature is 64 bytes, this one {len(raw)}")
    return Signature(parts[1], raw)


@functools.lru_cache(maxsize=8192)
def _verifies(payload: bytes, signature: bytes, public_pem: str) -> bool:
    try:
        load_public_key(public_pem).verify(signature, payload)
    except InvalidSignature:
        return False
    return True


def verifies(obj: Mapping[str, Any], public_pems: Iterable[str]) -> bool:
    """Whether ``obj``'s signature annotation verifies under one of the keys (False when it has none)."""
    value = ((obj.get("metadata") or {}).get("annotations") or {}).get(SIGNATURE_ANNOTATION)
    try:
        sig = parse_signature(value)
        payload = canonical_payload(obj)
    except SigningError:
        return False
    return any(_verifies(payload, sig.raw, pem) for pem in public_pems)


# ------------------------------------------------------------------------------------------ the rule
def answering_tenants(tenant: str, namespace: str, policy: OrchestrationPolicy) -> list[str]:
    """The tenants whose signing rule an intent meets: the one it names and every one whose namespaces
    (``spec.tenantNamespaces``) hold it, so naming another tenant does not escape a namespace's owner."""
    owners = sorted(t for t, namespaces in policy.tenant_namespaces.items() if namespace in namespaces and t != tenant)
    return [tenant, *owners]


def check(obj: Mapping[str, Any], policy: OrchestrationPolicy | None, memoised: bool = False) -> str | None:
    """Why the policy refuses this intent's signature (one sentence naming the field), or None. ``memoised``:
    keep the canonical payload for the next call with the same spec (the operator's gate, every tick)."""
    if policy is None:
        return None
    rules = policy.intent_signing
    meta = obj.get("metadata") or {}
    raw_spec = obj.get("spec")
    spec: Mapping[str, Any] = raw_spec if isinstance(raw_spec, Mapping) else {}
    tenant = str(spec.get("tenant") or "default")
    namespace = str(meta.get("namespace") or "default")
    where = f"OrchestrationPolicy {policy.name}"
    value = (meta.get("annotations") or {}).get(SIGNATURE_ANNOTATION)
    answering = answering_tenants(tenant, namespace, policy)
    requiring = [t for t in answering if rules.require_all or (t in rules.tenants and rules.tenants[t].required)]
    if value is None:
        if not requiring:
            return None
        why = "requireAll" if rules.require_all else f"tenant {requiring[0]} requires it"
        return (f"{FIELD}: missing; {where} wants this intent signed ({why}); sign it with "
                f"`kubeagora intent sign --key KEY FILE` and apply the signed file")
    try:
        sig = parse_signature(value)
        payload = memoised_payload(obj) if memoised else canonical_payload(obj)
    except SigningError as e:
        return str(e)
    for t in requiring or [t for t in answering if t in rules.tenants and rules.tenants[t].public_keys]:
        pems = rules.tenants[t].public_keys if t in rules.tenants else ()
        if not pems:
            return f"{FIELD}: tenant {t} has no public key in {where} (spec.intentSigning.tenants.{t}.publicKeys)"
        matching = [pem for pem in pems if _safe_key_id(pem) == sig.key_id]
        if not matching:
            return f"{FIELD}: key {sig.key_id} is not a key of tenant {t} in {where}"
        if not any(_verifies(payload, sig.raw, pem) for pem in matching):
            return (f"{FIELD}: does not verify: the spec, namespace or name changed after it was signed "
                    f"(key {sig.key_id} of tenant {t}); sign the intent again")
    return None


def _safe_key_id(pem: str) -> str:
    try:
        return _key_id_of_pem(pem)
    except SigningError:
        return ""


def key_problems(policy: OrchestrationPolicy) -> list[str]:
    """Public keys in the policy that are not ed25519 PEM keys, each naming its field."""
    problems = []
    for tenant, rule in policy.intent_signing.tenants.items():
        for i, pem in enumerate(rule.public_keys):
            try:
                load_public_key(pem, f"spec.intentSigning.tenants.{tenant}.publicKeys[{i}]")
            except SigningError as e:
                problems.append(str(e))
    return problems


@dataclass(frozen=True, slots=True)
class Refusal:
    """An intent the operator will not act on, and why (its condition says so)."""

    key: str
    why: str


_PAYLOADS: dict[bytes, bytes] = {}
MAX_PAYLOADS = 16_384
"""Memoised canonical payloads (a 32-byte digest of the raw input → the payload, under 1 KB each)."""


def memoised_payload(obj: Mapping[str, Any]) -> bytes:
    """``canonical_payload(obj)``, memoised by a digest of exactly what it depends on (namespace, name and the
    spec as stored): the operator's gate sees the same intents every tick, and canonicalising (filling the
    defaults, normalising numbers), not verifying, was most of its cost. Raises as ``canonical_payload``."""
    meta = obj.get("metadata") or {}
    try:
        raw = json.dumps([meta.get("namespace"), meta.get("name"), obj.get("spec")], sort_keys=True,
                         separators=(",", ":"), allow_nan=True).encode()
    except (TypeError, ValueError):
        return canonical_payload(obj)
    key = hashlib.sha256(raw).digest()
    payload = _PAYLOADS.get(key)
    if payload is None:
        payload = canonical_payload(obj)
        if len(_PAYLOADS) >= MAX_PAYLOADS:
            _PAYLOADS.clear()
        _PAYLOADS[key] = payload
    return payload


def gate(intent_objs: Sequence[Mapping[str, Any]], policy: OrchestrationPolicy | None,
         ) -> tuple[list[Mapping[str, Any]], list[Refusal]]:
    """The policy enforcement point of the operator: (intents it may act on, refusals)."""
    admitted: list[Mapping[str, Any]] = []
    refused: list[Refusal] = []
    for obj in intent_objs:
        why = check(obj, policy, memoised=True)
        if why is None:
            admitted.append(obj)
        else:
            meta = obj.get("metadata") or {}
            refused.append(Refusal(f"{meta.get('namespace')}/{meta.get('name')}", why))
    return admitted, refused
