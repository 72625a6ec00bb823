"""What zero trust costs in CPU: signing and verifying intents, signing and verifying node attestation claims.

- intent signing (``kubeagora intent sign``, once per edit, on the tenant's machine);
- the webhook's check of a signed intent (``intent_signing.check``: canonical payload + ed25519 verify),
  once per create or update: the CPU it adds to an intent's admission;
- the operator's policy enforcement point (``intent_signing.gate``) over N signed intents every tick: the
  first tick canonicalises and verifies each ("cold"), later ticks find an unchanged intent's payload and
  verdict memoised (by a digest of its namespace, name and spec, and by payload and signature);
- a node's attestation claim: signing it (the node, every 30 s) and the operator's verdict on it.

CPU time (``time.process_time``), median over repeats; one thread. Usage:

    python benchmarks/zero_trust_cost.py
    python benchmarks/zero_trust_cost.py --intents 1000 --repeats 5
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from kubeagora.model.intent import parse_orchestration_policy
from kubeagora.trust import attestation
from kubeagora.trust import intent_signing as signing

ROOT = Path(__file__).resolve().parent.parent


def per_call_us(fn: Callable[[], Any], calls: int, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.process_time()  # CPU time: what it costs, whatever else the machine runs
        for _ in range(calls):
            fn()
        times.append((time.process_time() - t0) / calls * 1e6)
    return statistics.median(times)


def _public_pem(key: Ed25519PrivateKey) -> str:
    return key.public_key().public_bytes(serialization.Encoding.PEM,
                                         serialization.PublicFormat.SubjectPublicKeyInfo).decode()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--intents", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    private_pem, public_pem = signing.generate_keypair()
    key = signing.load_private_key(private_pem, "bench")
    policy = parse_orchestration_policy({
        "apiVersion": "kubeagora.io/v1alpha1", "kind": "OrchestrationPolicy", "metadata": {"name": "default"},
        "spec": {"intentSigning": {"tenants": {"default": {"publicKeys": [public_pem.decode()], "required": True}}}}})
    base = next(d for d in yaml.safe_load_all((ROOT / "examples" / "intent.yaml").read_text())
                if d and d.get("kind") == "OrchestrationIntent")

    def intent(i: int) -> dict[str, Any]:
        obj = copy.deepcopy(base)
        obj["metadata"]["name"] = f"svc-{i}"
        return obj

    rows: list[tuple[str, float]] = []
    one = intent(0)
    rows.append(("sign an intent", per_call_us(lambda: signing.signed(one, key), 200, args.repeats)))
    signed_one = signing.signed(one, key)

    def admit_fresh() -> None:
        signing._verifies.cache_clear()
        assert signing.check(signed_one, policy) is None

    rows.append(("webhook check of a signed intent (verify)", per_call_us(admit_fresh, 200, args.repeats)))
    rows.append(("webhook check, policy without signing", per_call_us(lambda: signing.check(one, None), 2000,
                                                                      args.repeats)))
    fleet = [signing.signed(intent(i), key) for i in range(args.intents)]

    def gate_cold() -> None:
        signing._verifies.cache_clear()
        signing._PAYLOADS.clear()
        admitted, refused = signing.gate(fleet, policy)
        assert len(admitted) == len(fleet), refused

    cold = per_call_us(gate_cold, 1, args.repeats) / len(fleet)
    signing.gate(fleet, policy)
    warm = per_call_us(lambda: signing.gate(fleet, policy), 1, args.repeats) / len(fleet)
    rows.append((f"operator gate per intent per tick, first tick ({len(fleet)} intents)", cold))
    rows.append((f"operator gate per intent per tick, later ticks ({len(fleet)} intents)", warm))

    node_key = Ed25519PrivateKey.generate()
    measurement = "a" * 64
    enrol = attestation.Enrolment(_public_pem(node_key), frozenset({measurement}))
    now = time.time()
    counter = iter(range(10**9))

    def claim() -> str:
        return attestation.encode(attestation.Claim("n1", next(counter), now, now + 3600, measurement), node_key)

    rows.append(("node signs an attestation claim", per_call_us(claim, 500, args.repeats)))
    value = claim()
    seen = attestation.Seen(0, now - 30)
    rows.append(("operator verifies an attestation claim",
                 per_call_us(lambda: attestation.verify(value, "n1", enrol, now, seen), 500, args.repeats)))
    print("| operation | CPU µs |")
    print("| --- | --- |")
    for what, us in rows:
        print(f"| {what} | {us:.1f} |")


if __name__ == "__main__":
    main()
