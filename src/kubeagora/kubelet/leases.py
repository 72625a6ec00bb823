"""Node Leases and when to renew them (pure).

As a kubelet does, each node holds one Lease in ``kube-node-lease`` and renews it every
leaseDuration/4 (40 s lease, 10 s renew). The renewals of N nodes are spread evenly over the
interval, so the API server sees a steady N/10 writes per second rather than one burst. The same
staggered schedule, with a 5-minute interval, drives the (rare) node status reports.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import numpy as np
import numpy.typing as npt

LEASE_NAMESPACE = "kube-node-lease"
LEASE_DURATION_S = 40
RENEW_INTERVAL_S = LEASE_DURATION_S / 4
STATUS_REPORT_INTERVAL_S = 300.0
"""kubelet's nodeStatusReportFrequency: status is re-posted this often, or when it changes."""


def micro_time(t: datetime) -> str:
    """A Kubernetes MicroTime (RFC 3339 with microseconds, UTC)."""
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def rfc3339(t: datetime) -> str:
    """A Kubernetes Time (RFC 3339, whole seconds, UTC)."""
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def lease_manifest(node_name: str, node_uid: str | None, now: datetime) -> dict[str, Any]:
    """The Lease a kubelet holds for its node (owned by the Node, so it goes when the Node goes)."""
    meta: dict[str, Any] = {"name": node_name, "namespace": LEASE_NAMESPACE}
    if node_uid:
        meta["ownerReferences"] = [{"apiVersion": "v1", "kind": "Node", "name": node_name, "uid": node_uid}]
    return {
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": meta,
        "spec": {"holderIdentity": node_name, "leaseDurationSeconds": LEASE_DURATION_S,
                 "renewTime": micro_time(now)},
    }


def renew_patch(now: datetime) -> dict[str, Any]:
    """A merge patch that renews a Lease."""
    return {"spec": {"renewTime": micro_time(now)}}


def stagger(n: int, interval_s: float) -> npt.NDArray[np.float64]:
    """Offsets spreading ``n`` periodic jobs evenly over one interval."""
    return np.arange(n, dtype=np.float64) * (interval_s / max(n, 1))


def due(offsets: npt.NDArray[np.float64], interval_s: float, t_prev: float, t_now: float) -> npt.NDArray[np.intp]:
    """Indices of the jobs with a tick in ``(t_prev, t_now]``, ticks at ``offset + k·interval``."""
    if t_now <= t_prev:
        return np.zeros(0, dtype=np.intp)
    before = np.floor((t_prev - offsets) / interval_s)
    after = np.floor((t_now - offsets) / interval_s)
    return np.flatnonzero(after > before)
