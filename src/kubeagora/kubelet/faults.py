"""A fault schedule → what each mock node does at a time (pure).

The schedule is the engine's own: ``FaultEvent``s from ``compile_scenario`` (times relative to the
mock kubelet's start, node indices into its topology), plus any added by hand through the admin
endpoint. What the mock kubelet does about each kind:

- ``node-termination``, ``zone-outage``: the nodes stop renewing their Leases and status and their
  pods stop serving; the real node-lifecycle controller marks them unreachable and evicts.
- ``region-partition``: the region's kubelets cannot reach the control plane (region 0's), so
  their Leases lapse too, but their pods keep serving the region's users.
- ``gpu-throttle``: GPU/TPU nodes run at ``factor`` speed; their status shows a condition and an
  annotation.
- ``pod-crash``: every container of the service's pods restarts once (restartCount + 1, not Ready
  for the cold start).
- ``packet-loss`` is the engine's business (the mock serves no real network) and is ignored.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from kubeagora.model import BoolArray, FloatArray
from kubeagora.sim.scenario import FaultEvent

NODE_DOWN = ("node-termination", "zone-outage")
UNHEARD = (*NODE_DOWN, "region-partition")


def active(event: FaultEvent, t: float) -> bool:
    """Whether the fault holds at ``t`` (from ``at_s`` for ``duration_s``; None = for ever)."""
    end = math.inf if event.duration_s is None else event.at_s + event.duration_s
    return event.at_s <= t < end


@dataclass(frozen=True, slots=True)
class NodeFaults:
    heard: BoolArray
    """The node's Lease and status are renewed (the control plane hears its kubelet)."""
    serving: BoolArray
    """Its pods serve traffic."""
    throttle: FloatArray
    """Speed multiplier under a GPU power cap; 1.0 where not throttled."""

    def throttle_factor(self, node: int) -> float | None:
        f = float(self.throttle[node])
        return None if f >= 1.0 else f


def node_faults(events: Iterable[FaultEvent], n_nodes: int, t: float) -> NodeFaults:
    heard = np.ones(n_nodes, dtype=bool)
    serving = np.ones(n_nodes, dtype=bool)
    throttle = np.ones(n_nodes)
    for e in events:
        if not e.nodes or not active(e, t):
            continue
        idx = np.asarray(e.nodes, dtype=np.intp)
        if e.kind in UNHEARD:
            heard[idx] = False
        if e.kind in NODE_DOWN:
            serving[idx] = False
        if e.kind == "gpu-throttle":
            throttle[idx] = np.minimum(throttle[idx], e.factor)
    return NodeFaults(heard, serving, throttle)


@dataclass(frozen=True, slots=True)
class PodCrash:
    at_s: float
    service: str


def pod_crashes(events: Iterable[FaultEvent], service_names: Sequence[str]) -> list[PodCrash]:
    """The schedule's pod crashes, by service name (``FaultEvent.services`` index ``service_names``)."""
    return [PodCrash(e.at_s, service_names[s]) for e in events if e.kind == "pod-crash" for s in e.services]


def crashes_between(crashes: Iterable[PodCrash], t_prev: float, t_now: float) -> list[str]:
    """Services whose crash time falls in ``(t_prev, t_now]``."""
    return [c.service for c in crashes if t_prev < c.at_s <= t_now]


def manual_fault(kind: str, nodes: Sequence[int], at_s: float, duration_s: float | None,
                 factor: float = 0.5, label: str = "") -> FaultEvent:
    """A fault added by hand (the admin endpoint), in the schedule's own terms."""
    if kind not in (*UNHEARD, "gpu-throttle"):
        raise ValueError(f"fault kind {kind!r}: a node fault is one of "
                         f"{', '.join((*UNHEARD, 'gpu-throttle'))} (pod-crash takes a service)")
    if duration_s is not None and not duration_s > 0:
        raise ValueError(f"fault duration must be positive (got {duration_s:g})")
    if not 0 < factor <= 1:
        raise ValueError(f"fault factor must be in (0, 1] (got {factor:g})")
    return FaultEvent(at_s, kind, tuple(nodes), (), (), duration_s, factor, label or kind)
