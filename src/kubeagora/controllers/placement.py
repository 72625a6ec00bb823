"""Default placement that behaves like kube-scheduler's default profile.

Filter (NodeResourcesFit, NodeUnschedulable, TaintToleration for not-ready nodes, and the
nodeAffinity that data residency and accelerator requests imply), then score:
- NodeResourcesFit LeastAllocated: mean over cpu and memory of free/allocatable;
- NodeResourcesBalancedAllocation: 1 − |cpu fraction − memory fraction|;
- PodTopologySpread's default constraint (spread a Deployment over hostnames, `ScheduleAnyway`):
  fewer pods of the same service on the node scores higher;
- NodeAffinity (plugin weight 2) for a `preferredDuringSchedulingIgnoredDuringExecution` term on
  `topology.kubernetes.io/region` = the users' region: what an operator of a multi-region cluster
  writes for a latency-sensitive Deployment, so the baselines do not pay 40–120 ms of inter-region
  RTT on every other request.
Ties go to the lowest node index (kube-scheduler samples ties at random; a fixed choice keeps runs
reproducible). Source: kubernetes/pkg/scheduler/framework/plugins (noderesources, podtopologyspread).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from kubeagora.model import BoolArray, FloatArray, IntArray

NODE_AFFINITY_WEIGHT = 2.0
"""kube-scheduler's default weight of the NodeAffinity score plugin."""


@dataclass(frozen=True, slots=True)
class PlacementRequest:
    cpu: float
    memory_gib: float
    accelerators: int | IntArray
    """Accelerators the pod takes, or per node (a GPU pod asks for one only where there is a GPU)."""
    feasible_nodes: BoolArray
    """Nodes whose class can run the service and whose region the residency rules allow."""
    preferred_nodes: BoolArray | None = None
    """Nodes the pod's preferred node affinity matches (its users' region)."""


@dataclass(frozen=True, slots=True)
class ClusterCapacity:
    cpu_free: FloatArray
    memory_free: FloatArray
    accelerators_free: IntArray
    cpu_total: FloatArray
    memory_total: FloatArray
    schedulable: BoolArray
    """Ready, not cordoned or quarantined."""


def fits(req: PlacementRequest, cap: ClusterCapacity) -> BoolArray:
    return (req.feasible_nodes & cap.schedulable & (cap.cpu_free >= req.cpu - 1e-9)
            & (cap.memory_free >= req.memory_gib - 1e-9) & (cap.accelerators_free >= req.accelerators))


def default_scores(req: PlacementRequest, cap: ClusterCapacity, same_service_pods: FloatArray) -> FloatArray:
    cpu_after = (cap.cpu_total - cap.cpu_free + req.cpu) / cap.cpu_total
    mem_after = (cap.memory_total - cap.memory_free + req.memory_gib) / cap.memory_total
    least_allocated = 100.0 * ((1 - cpu_after) + (1 - mem_after)) / 2
    balanced = 100.0 * (1 - np.abs(cpu_after - mem_after))
    spread = 100.0 / (1.0 + same_service_pods)
    affinity = 0.0 if req.preferred_nodes is None else NODE_AFFINITY_WEIGHT * 100.0 * req.preferred_nodes
    return least_allocated + balanced + spread + affinity


def choose_node(req: PlacementRequest, cap: ClusterCapacity, same_service_pods: FloatArray) -> int | None:
    """The node kube-scheduler's default profile would bind the pod to, or None if it is unschedulable."""
    ok = fits(req, cap)
    if not ok.any():
        return None
    scores = np.where(ok, default_scores(req, cap, same_service_pods), -np.inf)
    return int(np.argmax(scores))
