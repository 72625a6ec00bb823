"""What an existing devcluster's state holds, said when ``devcluster up`` reuses it.

etcd's data survives ``down`` and ``up``: the nodes, namespaces and workloads of an earlier session are
still there (an earlier mock kubelet's nodes among them, NotReady until a kubelet plays them again).
``up`` says so, and how to start clean, instead of reusing them silently.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

SYSTEM_NAMESPACES = frozenset({"default", "kube-system", "kube-public", "kube-node-lease"})
SHOWN = 8


@dataclass(frozen=True)
class Contents:
    nodes: int
    ready_nodes: int
    namespaces: tuple[str, ...]

    def describe(self) -> str:
        own = [n for n in self.namespaces if n not in SYSTEM_NAMESPACES]
        listed = ", ".join(own[:SHOWN]) + (f" and {len(own) - SHOWN} more" if len(own) > SHOWN else "")
        return (f"{self.nodes} node(s), {self.ready_nodes} Ready; namespaces: "
                f"{listed + ' (and the system ones)' if own else 'only the system ones'}")


def _ready(node: Mapping[str, Any]) -> bool:
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in (node.get("status") or {}).get("conditions") or ())


def contents(items: Sequence[Mapping[str, Any]]) -> Contents:
    """From a ``kubectl get nodes,namespaces -o json`` list's items."""
    nodes = [i for i in items if i.get("kind") == "Node"]
    namespaces = sorted(str((i.get("metadata") or {}).get("name")) for i in items if i.get("kind") == "Namespace")
    return Contents(len(nodes), sum(1 for n in nodes if _ready(n)), tuple(namespaces))


def parse(kubectl_stdout: str) -> Contents:
    return contents(json.loads(kubectl_stdout).get("items") or ())
