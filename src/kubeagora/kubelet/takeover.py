"""A starting mock kubelet and the Nodes already in the cluster (thin: the decision is
``nodes.reconcile``).

Its own nodes (``nodes.LABEL_OWNER``) that fit the new topology are adopted; those that cannot become
the new topology's in place (the API server refuses to change a node's pod CIDR: the 422 an earlier
run's nodes caused) are deleted with their Leases and registered anew; those the new topology lacks
(an earlier run's) are deleted. A node of the new topology's names that another kubelet registered
stops the start, with the command that resolves it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from typing import Any

from kubeagora.kubeapi.client import Api
from kubeagora.kubelet import leases
from kubeagora.kubelet import nodes as nodes_mod
from kubeagora.kubelet.errors import KubeletError

SHOWN = 5


def _listed(names: list[str]) -> str:
    return ", ".join(names[:SHOWN]) + (f" and {len(names) - SHOWN} more" if len(names) > SHOWN else "")


async def take_over(api: Api, wanted: Mapping[str, Mapping[str, Any]], owner: str,
                    log: Callable[[str], None]) -> nodes_mod.Takeover:
    """``wanted``: node name → the manifest this run registers. Returns what was done."""
    existing, _ = await api.list_all("/api/v1/nodes", {})
    plan = nodes_mod.reconcile(existing, wanted, owner)
    if plan.foreign:
        listed = "; ".join(f"{name} (registered by {whose})" for name, whose in plan.foreign[:SHOWN])
        more = f" and {len(plan.foreign) - SHOWN} more" if len(plan.foreign) > SHOWN else ""
        raise KubeletError(f"{len(plan.foreign)} node(s) of this topology exist already and are not this mock "
                           f"kubelet's: {listed}{more}. Start it with another --name-prefix, or delete them "
                           f"(kubectl delete node {plan.foreign[0][0]} ...)")
    for name, why in plan.recreate:
        log(f"node {name}, registered by an earlier run, conflicts with this topology ({why}): recreating it")
    if plan.remove:
        log(f"removing {len(plan.remove)} node(s) of an earlier topology this kubelet registered: "
            f"{_listed(list(plan.remove))}")
    if plan.adopt:
        log(f"adopting {len(plan.adopt)} node(s) an earlier run registered")
    gone = [*plan.remove, *(name for name, _ in plan.recreate)]
    lease_path = f"/apis/coordination.k8s.io/v1/namespaces/{leases.LEASE_NAMESPACE}/leases"
    await asyncio.gather(*(api.delete(f"/api/v1/nodes/{name}") for name in gone))
    await asyncio.gather(*(api.delete(f"{lease_path}/{name}") for name in gone))
    return plan
