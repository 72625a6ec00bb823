"""Nodes no live kubelet plays: one finding for all of them, not an incident per node (pure).

A node whose Ready condition is ``Unknown`` (or absent) has no kubelet posting its status: the node
lifecycle controller says so once its Lease went unrenewed for the grace period. When such a node runs
no pod of a managed service, there is nothing on it for the agents to protect or move: it is left over
(a mock kubelet stopped, an old topology's nodes after a restart, a machine gone for good). The
reliability playbook is for nodes that *hold* replicas; handing it twenty empty, long-dead nodes made
twenty quarantine requests, each waiting for a person. So the operator keeps these nodes out of the
agents' observation and reports them as one finding: an ``OrphanedNodes`` condition on each managed
intent and one Warning Event when the set changes. The scheduler already keeps new pods off them
(the lifecycle controller's ``node.kubernetes.io/unreachable`` taint).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from kubeagora.operator.view import Obj

CONDITION = "OrphanedNodes"
SHOWN = 5


def no_live_kubelet(node: Obj) -> bool:
    """Whether no kubelet posts this node's status (Ready ``Unknown``, or never posted)."""
    ready = next((c for c in (node.get("status") or {}).get("conditions") or () if c.get("type") == "Ready"), None)
    return ready is None or ready.get("status") == "Unknown"


def split(node_objs: Sequence[Obj], managed_pods: Iterable[Obj]) -> tuple[list[Obj], list[str]]:
    """(the nodes the agents see, the names of the orphaned ones): a node is orphaned when no live
    kubelet plays it and no live pod of a managed service is bound to it."""
    hosting = {str((p.get("spec") or {}).get("nodeName") or "") for p in managed_pods
               if not (p.get("metadata") or {}).get("deletionTimestamp")}
    kept: list[Obj] = []
    orphaned: list[str] = []
    for n in node_objs:
        name = str((n.get("metadata") or {}).get("name"))
        if no_live_kubelet(n) and name not in hosting:
            orphaned.append(name)
        else:
            kept.append(n)
    return kept, sorted(orphaned)


@dataclass(frozen=True, slots=True)
class Finding:
    present: bool
    reason: str
    message: str


def finding(orphaned: Sequence[str]) -> Finding:
    if not orphaned:
        return Finding(False, "NoneFound", "every node has a live kubelet or runs a managed pod")
    shown = ", ".join(orphaned[:SHOWN]) + (f" and {len(orphaned) - SHOWN} more" if len(orphaned) > SHOWN else "")
    return Finding(True, "NoLiveKubelet",
                   f"{len(orphaned)} node(s) have no live kubelet and run no managed pod: {shown}. The agents leave "
                   f"them alone; delete them (kubectl delete node NAME) or start their kubelet")
