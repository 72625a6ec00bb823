"""Node attestation: the claims a node signs about itself, and the operator's verdict on them (pure).

A node (its attestation agent: here the mock kubelet) holds an ed25519 key whose public half an
administrator enrolled with the operator, with the measurements a healthy node may report. Every
``CLAIM_INTERVAL_S`` it signs a claim and publishes it as the annotation ``kubeagora.io/attestation``
on its Lease in ``kube-node-lease`` (the object it renews anyway: no extra write, no Node update
for every watcher of Nodes). The claim is compact JSON,

    {"counter": N, "issuedAt": EPOCH_S, "measurement": SHA256_HEX, "node": NAME, "nonce": HEX,
     "notAfter": EPOCH_S}

and the annotation is ``base64url(claim) "." base64url(signature over those bytes)``. ``measurement`` is
the digest of the node's measured boot and state (a TPM quote's PCR digest on real hardware);
``notAfter`` the expiry of the node's identity; ``counter`` rises with every claim.

``verify`` gives one ``Verdict`` per node; every one but VERIFIED and UNKNOWN is evidence against it:

- UNKNOWN: no key is enrolled for the node (attestation is not in use there; nothing is held against it);
- MISSING: a key is enrolled but the node published no readable claim;
- FORGED: the signature does not verify under the node's key, or the claim names another node
  (a claim copied from elsewhere);
- REPLAYED: the counter is not above the last accepted one (an old claim published again);
- STALE: the newest claim is older than ``max_age_s`` (the node stopped attesting);
- EXPIRED: the node's identity expired (``notAfter`` passed);
- FAILED: the measurement is not one the administrator enrolled (the node booted or runs
  something else).

The same codes fill ``Observation.node_attestation`` in the simulator, which models the outcomes
without the cryptography; the sentinel turns them into trust.
"""

from __future__ import annotations

import base64
import binascii
import json
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from kubeagora.trust.intent_signing import SigningError, load_public_key

CLAIM_ANNOTATION = "kubeagora.io/attestation"
CLAIM_INTERVAL_S = 30.0
"""A node signs a new claim this often."""
MAX_CLAIM_AGE_S = 3 * CLAIM_INTERVAL_S
"""A claim older than this is STALE (three missed claims: one late renewal is not evidence)."""
MAX_CLAIM_BYTES = 2048


class Verdict(IntEnum):
    UNKNOWN = 0
    VERIFIED = 1
    MISSING = 2
    FORGED = 3
    REPLAYED = 4
    STALE = 5
    EXPIRED = 6
    FAILED = 7

    @property
    def against(self) -> bool:
        """Evidence against the node (everything but VERIFIED and UNKNOWN)."""
        return self not in (Verdict.UNKNOWN, Verdict.VERIFIED)


@dataclass(frozen=True, slots=True)
class Claim:
    node: str
    counter: int
    issued_at_s: float
    not_after_s: float
    measurement: str
    nonce: str = field(default_factory=lambda: secrets.token_hex(8))

    def as_json(self) -> bytes:
        return json.dumps({"counter": self.counter, "issuedAt": self.issued_at_s, "measurement": self.measurement,
                           "node": self.node, "nonce": self.nonce, "notAfter": self.not_after_s},
                          sort_keys=True, separators=(",", ":")).encode()


@dataclass(frozen=True, slots=True)
class Enrolment:
    """What an administrator told the operator about a node: its key and the measurements it may report."""

    public_key_pem: str
    measurements: frozenset[str]


@dataclass(frozen=True, slots=True)
class Seen:
    """The last claim accepted from a node (what a replay is judged against)."""

    counter: int
    issued_at_s: float


@dataclass(frozen=True, slots=True)
class Result:
    verdict: Verdict
    why: str
    seen: Seen | None
    """What to remember for the node's next claim."""


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def encode(claim: Claim, key: Ed25519PrivateKey) -> str:
    """The annotation value: the claim and its signature."""
    body = claim.as_json()
    return f"{_b64(body)}.{_b64(key.sign(body))}"


def decode(value: object) -> tuple[bytes, bytes, dict[str, Any]]:
    """(claim bytes, signature, claim) of an annotation value; ValueError saying what is malformed."""
    if not isinstance(value, str) or len(value) > MAX_CLAIM_BYTES or value.count(".") != 1:
        raise ValueError("not a claim (base64url JSON, a dot, a base64url signature)")
    body_text, sig_text = value.split(".")
    try:
        body, sig = _unb64(body_text), _unb64(sig_text)
        claim = json.loads(body)
    except (binascii.Error, ValueError) as e:
        raise ValueError(f"not a claim ({type(e).__name__})") from None
    if not isinstance(claim, dict):
        raise ValueError("the claim is not a JSON object")
    for name, kind in (("node", str), ("counter", int), ("issuedAt", (int, float)), ("notAfter", (int, float)),
                       ("measurement", str), ("nonce", str)):
        if not isinstance(claim.get(name), kind) or isinstance(claim.get(name), bool):
            raise ValueError(f"the claim's {name!r} is missing or of the wrong type")
    return body, sig, claim


def verify(value: object, node: str, enrolment: Enrolment | None, now_s: float, last: Seen | None,
           max_age_s: float = MAX_CLAIM_AGE_S) -> Result:
    """The verdict on a node's published claim (``value`` None: it published none)."""
    if enrolment is None:
        return Result(Verdict.UNKNOWN, f"{node}: no attestation key enrolled", last)
    if value is None:
        return Result(Verdict.MISSING, f"{node}: no attestation claim published", last)
    try:
        body, sig, claim = decode(value)
    except ValueError as e:
        return Result(Verdict.MISSING, f"{node}: attestation claim unreadable: {e}", last)
    try:
        load_public_key(enrolment.public_key_pem).verify(sig, body)
    except (InvalidSignature, SigningError):
        return Result(Verdict.FORGED, f"{node}: attestation claim not signed by the node's enrolled key", last)
    if claim["node"] != node:
        return Result(Verdict.FORGED, f"{node}: attestation claim is {claim['node']}'s, not this node's", last)
    counter, issued = int(claim["counter"]), float(claim["issuedAt"])
    if last is not None and counter < last.counter:
        return Result(Verdict.REPLAYED, f"{node}: attestation claim #{counter} replayed (#{last.counter} seen)", last)
    if now_s - issued > max_age_s:
        return Result(Verdict.STALE, f"{node}: newest attestation claim is {now_s - issued:.0f} s old", last)
    seen = Seen(counter, issued)
    if float(claim["notAfter"]) <= now_s:
        return Result(Verdict.EXPIRED, f"{node}: identity expired {now_s - float(claim['notAfter']):.0f} s ago", seen)
    if claim["measurement"] not in enrolment.measurements:
        return Result(Verdict.FAILED, f"{node}: measured state {claim['measurement'][:12]}… is not an enrolled one",
                      seen)
    return Result(Verdict.VERIFIED, f"{node}: attestation verified (claim #{counter})", seen)


# ------------------------------------------------------------------------------------ enrolment
ENROLMENT_CONFIGMAP = "kubeagora-node-keys"
"""The ConfigMap (in the operator's namespace) an administrator fills: ``<node>.pub`` = PEM public key per
node and ``measurements`` = the allowed digests, one a line."""
MEASUREMENTS_KEY = "measurements"


def enrolments(configmap_data: Mapping[str, Any]) -> dict[str, Enrolment]:
    """Node name → its enrolment, from the enrolment ConfigMap's data (entries that are not keys are skipped)."""
    allowed = frozenset(line.strip() for line in str(configmap_data.get(MEASUREMENTS_KEY) or "").splitlines()
                        if line.strip())
    out = {}
    for key, value in configmap_data.items():
        if key.endswith(".pub") and isinstance(value, str):
            out[key.removesuffix(".pub")] = Enrolment(value, allowed)
    return out
