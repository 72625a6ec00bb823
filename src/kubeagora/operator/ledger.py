"""The shield's rate limits counted in the API server: a ConfigMap of the disruptive and privileged
actions it let through, written with the resourceVersion it was read at.

The shield counts migrations, scale-downs and quarantines over sliding windows (``ShieldState``);
in memory, a restarted operator (or a second replica, or a change to the set of intents, which
resets the agents' state) would start counting from zero. So the loop merges the ledger into the
shield's history before it decides, and records what it let through before it enacts anything: a
write refused because someone else wrote first (409 Conflict) means the tick enacts nothing and
decides again from the merged history. Times are stored as wall-clock epoch seconds.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from kubeagora.decision.shield import DisruptionEvent

LEDGER = "kubeagora-action-ledger"
FIELD = "events.json"
MAX_EVENTS = 5000
"""A bound on what the ConfigMap holds (far above any window's limit; the oldest go first)."""


class LedgerConflict(Exception):
    """Someone else wrote the ledger since it was read: nothing was recorded."""


class LedgerApi(Protocol):
    async def get(self, path: str, params: Mapping[str, str] | None = None) -> Any: ...

    async def create(self, path: str, body: Mapping[str, Any], want: bool = False,
                     ok: tuple[int, ...] = ()) -> tuple[int, Any]: ...

    async def replace(self, path: str, body: Mapping[str, Any], want: bool = False) -> tuple[int, Any]: ...


@dataclass(frozen=True, slots=True)
class Ledger:
    events: tuple[DisruptionEvent, ...]
    """``at_s`` in epoch seconds."""
    resource_version: str = ""
    """"" when the ConfigMap does not exist yet."""


def path(namespace: str, name: str | None = LEDGER) -> str:
    base = f"/api/v1/namespaces/{namespace}/configmaps"
    return base if name is None else f"{base}/{name}"


def decode(obj: Mapping[str, Any]) -> Ledger:
    raw = (obj.get("data") or {}).get(FIELD) or "[]"
    events = []
    for e in json.loads(raw):
        events.append(DisruptionEvent(float(e["at"]), str(e["kind"]), tuple(str(s) for s in e.get("services") or ())))
    return Ledger(tuple(events), str((obj.get("metadata") or {}).get("resourceVersion", "")))


def encode(events: Sequence[DisruptionEvent]) -> str:
    return json.dumps([{"at": round(e.at_s, 3), "kind": e.kind, "services": list(e.services)}
                       for e in events[-MAX_EVENTS:]], separators=(",", ":"))


async def read(api: LedgerApi, namespace: str) -> Ledger:
    from kubeagora.kubeapi.client import ApiError

    try:
        return decode(await api.get(path(namespace)))
    except ApiError as e:
        if e.status == 404:
            return Ledger(())
        raise


async def append(api: LedgerApi, namespace: str, ledger: Ledger, new: Sequence[DisruptionEvent],
                 since_epoch_s: float) -> Ledger:
    """The ledger with ``new`` added and events before ``since_epoch_s`` dropped, written only if nobody
    wrote it since it was read (``LedgerConflict`` otherwise)."""
    from kubeagora.kubeapi.client import ApiError

    events = tuple(e for e in (*ledger.events, *new) if e.at_s >= since_epoch_s)
    body: dict[str, Any] = {"apiVersion": "v1", "kind": "ConfigMap",
                            "metadata": {"name": LEDGER, "namespace": namespace,
                                         "labels": {"app.kubernetes.io/part-of": "kubeagora",
                                                    "app.kubernetes.io/component": "operator"}},
                            "data": {FIELD: encode(events)}}
    try:
        if ledger.resource_version:
            body["metadata"]["resourceVersion"] = ledger.resource_version
            _, stored = await api.replace(path(namespace), body, want=True)
        else:
            _, stored = await api.create(path(namespace, None), body, want=True)
    except ApiError as e:
        if e.status in (409, 404):  # written (or deleted) by someone else since it was read
            raise LedgerConflict(str(e)) from None
        raise
    return decode(stored)
