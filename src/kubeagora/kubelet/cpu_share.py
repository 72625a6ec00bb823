"""How many cores each mock pod gets: Burstable pods sharing a node as Linux's CFS shares it (pure).

On a real node a container's CPU request is a weight, not a cap (``cpu.weight`` ∝ the request); only
a CPU limit caps it (a CFS quota). So a pod with a request and no limit (Burstable QoS) that is
offered more work than its request serves uses the node's idle cores, and one with a limit uses up
to the limit. When the busy pods of a node want more than its cores, CFS splits them in proportion
to the weights, and what a pod does not want goes to the others: a weighted max-min fair share
(``share_node``). Since the scheduler places pods by their requests (Σ requests ≤ allocatable), every
pod gets at least its request whenever it wants it.

The traffic model's calibration, kept: a pod granted its request serves its nominal capacity
(concurrency / service time at the node's speed) and at that load uses its request; idle, it uses
``idle_fraction`` of it; in between, in proportion to the work it does (``cores_for_load``). A pod
offered ``load_ratio`` times its nominal capacity (arrivals plus backlog over the tick) therefore
*wants* ``cores_for_load(load_ratio)`` cores. Its in-flight requests share what it is granted
(processor sharing), so granted more than its request they run faster, in proportion
(``load_ratio_served``), with at most one core per in-flight request: a pod never wants more than
``concurrency`` busy cores. Below its request a pod keeps the nominal service time (the figure the
simulator's engine and the operator's model share); only a pod starved below what it wants of its
request (a node oversubscribed by pods without requests) runs slower than nominal.

The resource metrics API reports the cores used, so under overload the real HPA sees utilisation
above 100 % of the request, as on a cluster of Burstable pods.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from kubeagora.model import FloatArray

IntArray = npt.NDArray[np.int64]
MIN_WEIGHT_CORES = 0.002
"""The weight of a pod without a CPU request: CFS's minimum of 2 shares (= 2 millicores)."""
MIN_SPEEDUP = 0.01
"""A pod starved to nothing still crawls (keeps the service time finite)."""


def cores_for_load(request: FloatArray, load_ratio: FloatArray, idle_fraction: float) -> FloatArray:
    """Cores a pod uses to serve ``load_ratio`` × its nominal capacity: ``idle_fraction`` of its
    request when idle, the whole request at 1, and on in proportion above it."""
    out: FloatArray = request * (idle_fraction + (1.0 - idle_fraction) * load_ratio)
    return out


def load_ratio_served(request: FloatArray, cores: FloatArray, idle_fraction: float) -> FloatArray:
    """The inverse of ``cores_for_load``: the load ratio ``cores`` can serve (0 for a pod without a
    request: such a pod is outside the model and keeps its nominal speed, see ``speedup``)."""
    busy = np.maximum(cores - request * idle_fraction, 0.0)
    scale = request * (1.0 - idle_fraction)
    out: FloatArray = np.divide(busy, scale, out=np.zeros_like(busy), where=scale > 0)
    return out


def wanted_cores(request: FloatArray, limit: FloatArray, concurrency: FloatArray, load_ratio: FloatArray,
                 idle_fraction: float) -> FloatArray:
    """What each pod would use if the node had the cores: the cores its offered load needs, at most
    one busy core per in-flight request (``concurrency``, never below the request) and at most its
    CPU limit (``inf`` for none)."""
    most = np.maximum(concurrency, request)
    ratio = np.minimum(load_ratio, np.divide(most, request, out=np.full_like(most, np.inf), where=request > 0))
    out: FloatArray = np.minimum(cores_for_load(request, ratio, idle_fraction), limit)
    return out


def share_node(wanted: FloatArray, weight: FloatArray, node: IntArray, node_cores: FloatArray) -> FloatArray:
    """Weighted max-min fair shares of each node's cores (progressive filling, as CFS converges to):
    a pod gets what it wants if that is no more than its weight's share of what the pods not yet
    satisfied leave; the rest split what remains in proportion to their weights.

    ``wanted`` and ``weight`` (> 0) per pod, ``node`` its node's index; ``node_cores`` per node.
    """
    n = node_cores.shape[0]
    granted = np.zeros_like(wanted)
    active = wanted > 0
    remaining = node_cores.astype(np.float64, copy=True)
    for _ in range(wanted.shape[0] + 1):  # each round satisfies at least one pod, or ends
        if not active.any():
            break
        weights = np.bincount(node[active], weight[active], minlength=n)
        level = np.divide(np.maximum(remaining, 0.0), weights, out=np.zeros(n), where=weights > 0)
        offer = level[node] * weight
        done = active & (wanted <= offer)
        if not done.any():
            granted[active] = offer[active]
            break
        granted[done] = wanted[done]
        remaining -= np.bincount(node[done], wanted[done], minlength=n)
        active &= ~done
    return granted


def cfs_weight(request: FloatArray) -> FloatArray:
    """The pods' CFS weights, as the kubelet sets them: proportional to the CPU request."""
    out: FloatArray = np.maximum(request, MIN_WEIGHT_CORES)
    return out


def speedup(request: FloatArray, wanted: FloatArray, granted: FloatArray, idle_fraction: float) -> FloatArray:
    """How much faster than nominal a pod's requests run with ``granted`` cores: the load ratio the
    cores serve when that is above 1; 1 when the pod got what it wanted of its request; below 1 only
    when it was starved of its own request. A pod without a request keeps its nominal speed."""
    served = load_ratio_served(request, granted, idle_fraction)
    starved = granted < np.minimum(wanted, request) - 1e-9
    out: FloatArray = np.where(request <= 0, 1.0,
                               np.where(starved, np.maximum(served, MIN_SPEEDUP), np.maximum(served, 1.0)))
    return out
