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

Faults added by hand (``POST /faults``) are bounded: a duration is at most ``MAX_FAULT_DURATION_S``
(without one a fault holds until ``DELETE /faults``), expired ones are dropped when the next is
added, and at most ``MAX_MANUAL_FAULTS`` hold at once, so each request's work stays flat however
many are posted.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from kubeagora.model import BoolArray, FloatArray
from kubeagora.sim.scenario import FaultEvent

NODE_DOWN = ("node-termination", "zone-outage")
UNHEARD = (*NODE_DOWN, "region-partition")
NODE_FAULT_KINDS = (*UNHEARD, "gpu-throttle")
MAX_FAULT_DURATION_S = 86_400.0
"""The longest fault ``POST /faults`` takes with a duration (a day); longer ones hold until cleared."""
MAX_MANUAL_FAULTS = 256
"""Faults added by hand that may hold at once; more are refused until some expire or are cleared."""


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


def still_held(events: Iterable[FaultEvent], t: float) -> list[FaultEvent]:
    """The events that have not ended by ``t`` (those still to start included)."""
    return [e for e in events if e.duration_s is None or t < e.at_s + e.duration_s]


@dataclass(frozen=True, slots=True)
class FaultRequest:
    """A ``POST /faults`` body: a node fault on ``node`` or every node of ``zone``, or a pod crash."""

    kind: str
    node: str | None = None
    zone: str | None = None
    service: str | None = None
    duration_s: float | None = None
    factor: float = 0.5


def _text(body: Mapping[str, object], field: str) -> str | None:
    """The field's string, None when absent (a field given as null is wrong, not absent)."""
    if field not in body:
        return None
    value = body[field]
    if not isinstance(value, str) or not value:
        raise ValueError(f"field '{field}' must be a non-empty string (got {type(value).__name__})")
    return value


def _number(body: Mapping[str, object], field: str) -> float | None:
    if field not in body:
        return None
    value = body[field]
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"field '{field}' must be a finite number (got {type(value).__name__})")
    return float(value)


def parse_fault_request(body: Mapping[str, object]) -> FaultRequest:
    """A ``POST /faults`` body; ValueError naming the field that is wrong."""
    unknown = set(body) - {"kind", "node", "zone", "service", "duration_s", "factor"}
    if unknown:
        raise ValueError(f"unknown field(s) {', '.join(sorted(map(str, unknown)))}; "
                         "expected kind, node or zone (service for a pod-crash), duration_s, factor")
    kind = _text(body, "kind")
    if kind == "pod-crash":
        service = _text(body, "service")
        if service is None:
            raise ValueError("a pod-crash needs field 'service'")
        return FaultRequest(kind, service=service)
    if kind not in NODE_FAULT_KINDS:
        raise ValueError(f"field 'kind' must be one of {', '.join((*NODE_FAULT_KINDS, 'pod-crash'))} (got {kind!r})")
    node, zone = _text(body, "node"), _text(body, "zone")
    if (node is None) == (zone is None):
        raise ValueError("give exactly one of 'node' and 'zone'")
    duration_s = _number(body, "duration_s")
    if duration_s is not None and not 0 < duration_s <= MAX_FAULT_DURATION_S:
        raise ValueError(f"field 'duration_s' must be in (0, {MAX_FAULT_DURATION_S:g}] seconds (got {duration_s:g}); "
                         "leave it out for a fault that holds until DELETE /faults")
    factor = _number(body, "factor")
    if factor is not None and not 0 < factor <= 1:
        raise ValueError(f"field 'factor' must be in (0, 1] (got {factor:g})")
    return FaultRequest(kind, node=node, zone=zone, duration_s=duration_s,
                        factor=0.5 if factor is None else factor)


def manual_fault(kind: str, nodes: Sequence[int], at_s: float, duration_s: float | None,
                 factor: float = 0.5, label: str = "") -> FaultEvent:
    """A fault added by hand (the admin endpoint), in the schedule's own terms."""
    if kind not in NODE_FAULT_KINDS:
        raise ValueError(f"fault kind {kind!r}: a node fault is one of "
                         f"{', '.join(NODE_FAULT_KINDS)} (pod-crash takes a service)")
    if duration_s is not None and not 0 < duration_s <= MAX_FAULT_DURATION_S:
        raise ValueError(f"fault duration must be in (0, {MAX_FAULT_DURATION_S:g}] s (got {duration_s:g})")
    if not 0 < factor <= 1:
        raise ValueError(f"fault factor must be in (0, 1] (got {factor:g})")
    return FaultEvent(at_s, kind, tuple(nodes), (), (), duration_s, factor, label or kind)
