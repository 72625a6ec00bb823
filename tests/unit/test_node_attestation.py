"""Node attestation claims: the operator's verdict on each way a node's claim can be wrong."""

from __future__ import annotations

import base64
import json

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from kubeagora.trust.attestation import (
    Claim,
    Enrolment,
    Seen,
    Verdict,
    decode,
    encode,
    enrolments,
    verify,
)

GOOD = "a" * 64
NOW = 1_000_000.0


def pem(key: Ed25519PrivateKey) -> str:
    return key.public_key().public_bytes(serialization.Encoding.PEM,
                                         serialization.PublicFormat.SubjectPublicKeyInfo).decode()


KEY = Ed25519PrivateKey.generate()
ENROLLED = Enrolment(pem(KEY), frozenset({GOOD}))


def claim(counter: int = 5, *, node: str = "n1", issued: float = NOW - 1, not_after: float = NOW + 3600,
          measurement: str = GOOD) -> Claim:
    return Claim(node, counter, issued, not_after, measurement)


def test_a_fresh_claim_signed_by_the_enrolled_key_verifies_and_is_remembered() -> None:
    result = verify(encode(claim(), KEY), "n1", ENROLLED, NOW, Seen(4, NOW - 31))
    assert result.verdict is Verdict.VERIFIED
    assert result.seen == Seen(5, NOW - 1)


def test_a_claim_signed_by_another_key_is_forged() -> None:
    result = verify(encode(claim(), Ed25519PrivateKey.generate()), "n1", ENROLLED, NOW, None)
    assert result.verdict is Verdict.FORGED
    assert "not signed by the node's enrolled key" in result.why


def test_a_claim_copied_from_another_node_is_forged_even_when_validly_signed() -> None:
    result = verify(encode(claim(node="n2"), KEY), "n1", ENROLLED, NOW, None)
    assert result.verdict is Verdict.FORGED
    assert "n2's" in result.why


def test_an_edited_claim_no_longer_verifies() -> None:
    body, sig = encode(claim(measurement="b" * 64), KEY).split(".")
    good_body = encode(claim(), KEY).split(".")[0]
    assert verify(f"{good_body}.{sig}", "n1", ENROLLED, NOW, None).verdict is Verdict.FORGED
    assert verify(f"{body}.{sig}", "n1", ENROLLED, NOW, None).verdict is Verdict.FAILED


def test_an_older_claim_published_again_is_a_replay_and_keeps_the_newest_seen() -> None:
    seen = Seen(9, NOW - 5)
    result = verify(encode(claim(3), KEY), "n1", ENROLLED, NOW, seen)
    assert result.verdict is Verdict.REPLAYED
    assert result.seen == seen


def test_a_node_that_stopped_attesting_goes_stale() -> None:
    result = verify(encode(claim(issued=NOW - 200), KEY), "n1", ENROLLED, NOW, None)
    assert result.verdict is Verdict.STALE


def test_an_expired_identity_and_an_unenrolled_measurement_count_against_the_node() -> None:
    expired = verify(encode(claim(not_after=NOW - 10), KEY), "n1", ENROLLED, NOW, None)
    failed = verify(encode(claim(measurement="f" * 64), KEY), "n1", ENROLLED, NOW, None)
    assert (expired.verdict, failed.verdict) == (Verdict.EXPIRED, Verdict.FAILED)
    assert expired.verdict.against
    assert failed.verdict.against


def test_missing_unreadable_and_unenrolled() -> None:
    assert verify(None, "n1", ENROLLED, NOW, None).verdict is Verdict.MISSING
    for junk in ("", "a.b.c", "!!!.???", 42, "x" * 5000):
        assert verify(junk, "n1", ENROLLED, NOW, None).verdict is Verdict.MISSING
    unknown = verify(encode(claim(), KEY), "n1", None, NOW, None)
    assert unknown.verdict is Verdict.UNKNOWN
    assert not unknown.verdict.against


def test_a_wrong_typed_claim_field_is_named() -> None:
    body = json.dumps({"node": "n1", "counter": True, "issuedAt": 1, "notAfter": 2, "measurement": GOOD,
                       "nonce": "x"}).encode()
    value = base64.urlsafe_b64encode(body).decode() + "." + base64.urlsafe_b64encode(KEY.sign(body)).decode()
    with pytest.raises(ValueError, match="'counter'"):
        decode(value)


def test_enrolments_come_from_the_configmaps_keys_and_measurement_lines() -> None:
    out = enrolments({"n1.pub": pem(KEY), "measurements": f"{GOOD}\n\n  {'c' * 64}  \n", "README": "x"})
    assert set(out) == {"n1"}
    assert out["n1"].measurements == frozenset({GOOD, "c" * 64})
