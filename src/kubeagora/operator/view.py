"""The operator's watch cache: the last state of every object the watches delivered.

kopf runs the watches; its event handlers call ``ClusterView.apply`` with each event, so the
control loop reads a consistent, in-memory picture without listing anything per tick.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

KINDS = ("nodes", "pods", "deployments", "intents", "policies", "agentactions", "hpas", "scaledobjects")

Obj = Mapping[str, Any]


def key_of(obj: Obj) -> str:
    meta = obj.get("metadata") or {}
    ns = meta.get("namespace")
    return f"{ns}/{meta.get('name')}" if ns else str(meta.get("name"))


@dataclass
class ClusterView:
    objects: dict[str, dict[str, Obj]] = field(default_factory=lambda: {k: {} for k in KINDS})
    events: int = 0

    def apply(self, kind: str, event_type: str | None, obj: Obj) -> None:
        """One watch event; ``None`` (kopf's initial listing) counts as ADDED."""
        if kind not in self.objects:
            raise KeyError(f"unknown kind {kind!r} (known: {', '.join(KINDS)})")
        self.events += 1
        table = self.objects[kind]
        if event_type == "DELETED":
            table.pop(key_of(obj), None)
        else:
            table[key_of(obj)] = obj

    def all(self, kind: str) -> list[Obj]:
        return list(self.objects[kind].values())

    def get(self, kind: str, key: str) -> Obj | None:
        return self.objects[kind].get(key)
