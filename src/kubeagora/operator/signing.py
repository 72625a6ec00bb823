"""The operator's signature on its own AgentActions (HMAC-SHA256; the key lives in a Secret).

AgentActions sit in tenants' namespaces, where tenants may write them; after a restart the operator
carries out what a record says (a canary's undo actions). So every record it writes carries a
signature over what it would act on (its namespace, name, intent, action and undo actions), and a
new operator process acts only on records whose signature holds: a forged record, or a genuine one
whose undo actions were edited, is ignored. The key is 32 random bytes in the Secret
``kubeagora-record-key`` of the operator's namespace, filled by the first operator that needs it (every
replica reads the same one); only the operator's ServiceAccount may read it. The manifests create the
Secret empty, so the operator's Role names it and grants no ``create``; where nobody created it (a
local cluster, admin credentials), the operator creates it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
from collections.abc import Mapping
from typing import Any, Protocol

from kubeagora.kubeapi.stored_numbers import whole_numbers

KEY_SECRET = "kubeagora-record-key"
KEY_FIELD = "hmac-sha256"
KEY_BYTES = 32


class RecordSigner:
    """Signs and verifies JSON payloads with one key."""

    def __init__(self, key: bytes) -> None:
        if len(key) < 16:
            raise ValueError("a record key must have at least 16 bytes")
        self._key = key

    def sign(self, payload: Mapping[str, Any]) -> str:
        return hmac.new(self._key, canonical(payload), hashlib.sha256).hexdigest()

    def verify(self, payload: Mapping[str, Any], signature: object) -> bool:
        return isinstance(signature, str) and hmac.compare_digest(self.sign(payload), signature)


def canonical(payload: Mapping[str, Any]) -> bytes:
    """One byte string per payload: sorted keys, no spaces, and a whole float written as an integer
    (the API server stores ``4.0`` in an integer field as ``4``: the payload read back must sign the same)."""
    return json.dumps(whole_numbers(payload), sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()




class SecretApi(Protocol):
    async def get(self, path: str, params: Mapping[str, str] | None = None) -> Any: ...

    async def create(self, path: str, body: Mapping[str, Any], want: bool = False,
                     ok: tuple[int, ...] = ()) -> tuple[int, Any]: ...

    async def merge_patch(self, path: str, body: Mapping[str, Any], ok: tuple[int, ...] = (),
                          bounded: bool = True) -> int: ...


def secret_path(namespace: str, name: str | None = None) -> str:
    base = f"/api/v1/namespaces/{namespace}/secrets"
    return base if name is None else f"{base}/{name}"


async def load_or_create_signer(api: SecretApi, namespace: str) -> RecordSigner:
    """The key from the Secret, made first when there is none or it is empty (two replicas racing: the
    second write is refused with 409, as it names the resourceVersion it read, and both read the one
    that won)."""
    from kubeagora.kubeapi.client import ApiError

    path = secret_path(namespace, KEY_SECRET)
    data = {KEY_FIELD: base64.b64encode(secrets.token_bytes(KEY_BYTES)).decode()}
    try:
        secret = await api.get(path)
    except ApiError as e:
        if e.status != 404:
            raise
        body = {"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
                "metadata": {"name": KEY_SECRET, "namespace": namespace,
                             "labels": {"app.kubernetes.io/part-of": "kubeagora",
                                        "app.kubernetes.io/component": "operator"}},
                "data": data}
        await api.create(secret_path(namespace), body, ok=(409,))
        return _signer(await api.get(path))
    if (secret.get("data") or {}).get(KEY_FIELD):
        return _signer(secret)
    rv = (secret.get("metadata") or {}).get("resourceVersion")
    await api.merge_patch(path, {"metadata": {"resourceVersion": rv}, "data": data}, ok=(409,))
    return _signer(await api.get(path))


def _signer(secret: Mapping[str, Any]) -> RecordSigner:
    raw = (secret.get("data") or {}).get(KEY_FIELD)
    if not isinstance(raw, str):
        raise ValueError(f"Secret {KEY_SECRET} has no {KEY_FIELD} key")
    return RecordSigner(base64.b64decode(raw))
