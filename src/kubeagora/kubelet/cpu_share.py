"""How many cores each mock pod gets: Burstable pods sharing a node as Linux's CFS shares it (pure).

On a real node a container's CPU request is a weight, not a cap (``cpu.weight`` ∝ the request); only
a CPU limit caps it (a CFS quota). So a pod with a request and no limit (Burstable QoS) that has more
work than its request serves uses the node's idle cores, and one with a limit uses up to the limit.
When the busy pods of a node want more than its cores, CFS splits them in proportion to the weights,
and what a pod does not want goes to the others: a weighted max-min fair share (``share_node``).
Since the scheduler places pods by their requests (Σ requests ≤ allocatable), every pod gets at
least its request whenever it wants it.

The traffic model's calibration, kept: a pod at its request serves its nominal capacity
(concurrency / service time at the node's speed) and at that load uses its request; idle, it uses
``idle_fraction`` of it; in between and beyond, in proportion to the work it does
(``cores_for_load``). Each request keeps its service time (most of it is not CPU: the request's CPU
time is request / concurrency × service time); what more CPU buys is parallelism: a pod that can
get ``k`` times the cores its nominal capacity needs serves ``k`` times as many requests at once
(``capacity_ratio``). What it can get (``ceiling_cores``) is what it uses plus the node's idle cores,
up to its limit: CFS runs a runnable thread on an idle core at once. So on a node with room a burst
is served without queueing at the request's capacity, and the CPU used shows the whole burst; on a
full node, or at the limit, the pod saturates there and queues. Only a pod starved below what it
wants of its own request (a node oversubscribed by pods without requests) serves less than nominal.

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
MIN_CAPACITY_RATIO = 0.01
"""A pod starved to nothing still crawls (keeps its service rate above zero)."""


def cores_for_load(request: FloatArray, load_ratio: FloatArray, idle_fraction: float) -> FloatArray:
    """Cores a pod uses to serve ``load_ratio`` × its nominal capacity: ``idle_fraction`` of its
    request when idle, the whole request at 1, and on in proportion above it."""
    out: FloatArray = request * (idle_fraction + (1.0 - idle_fraction) * load_ratio)
    return out


def load_ratio_served(request: FloatArray, cores: FloatArray, idle_fraction: float) -> FloatArray:
    """The inverse of ``cores_for_load``: the load ratio ``cores`` can serve (0 for a pod without a
    request: such a pod is outside the model and keeps its nominal capacity, see ``capacity_ratio``)."""
    busy = np.maximum(cores - request * idle_fraction, 0.0)
    scale = request * (1.0 - idle_fraction)
    out: FloatArray = np.divide(busy, scale, out=np.zeros_like(busy), where=scale > 0)
    return out


def wanted_cores(request: FloatArray, limit: FloatArray, load_ratio: FloatArray, idle_fraction: float
                 ) -> FloatArray:
    """The cores each pod's work needs (``load_ratio`` × its nominal capacity), at most its CPU limit
    (``inf`` for none)."""
    out: FloatArray = np.minimum(cores_for_load(request, load_ratio, idle_fraction), limit)
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


def ceiling_cores(wanted: FloatArray, granted: FloatArray, limit: FloatArray, node: IntArray,
                  node_cores: FloatArray) -> FloatArray:
    """What each pod could use this tick: a pod that got what it wanted could also take its node's idle
    cores, up to its limit; a pod held to its fair share has no more to take."""
    idle = np.maximum(node_cores - np.bincount(node, granted, minlength=node_cores.shape[0]), 0.0)
    satisfied = granted >= wanted - 1e-9
    out: FloatArray = np.where(satisfied, np.minimum(granted + idle[node], limit), granted)
    return out


def capacity_ratio(request: FloatArray, wanted: FloatArray, granted: FloatArray, ceiling: FloatArray,
                   idle_fraction: float) -> FloatArray:
    """The pod's capacity over its nominal capacity: the load its ceiling cores can serve, never below
    nominal, except for a pod starved of its own request (then what its granted cores serve). A pod
    without a request keeps its nominal capacity."""
    starved = granted < np.minimum(wanted, request) - 1e-9
    could = np.maximum(load_ratio_served(request, ceiling, idle_fraction), 1.0)
    got = np.maximum(load_ratio_served(request, granted, idle_fraction), MIN_CAPACITY_RATIO)
    out: FloatArray = np.where(request <= 0, 1.0, np.where(starved, got, could))
    return out
