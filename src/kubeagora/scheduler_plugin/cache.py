"""The extender's watch cache: Nodes, bound Pods, Deployments and OrchestrationIntents (pure updates).

`ClusterCache.apply(kind, event, obj)` folds one watch event into the cache and `replace(kind, items)`
a fresh list; nothing here does I/O, so every update is unit-tested without a cluster (the watch
loops in ``watch`` only feed it). Per node the cache keeps what the filter and the bids read —
labels (tier, class, region, zone), allocatable, readiness, speed (what a node says of itself only as
far as ``kubeapi.node_reports`` believes it), the operator's published trust — and, folded in as pods
come and go, what the node's bound pods request (CPU, memory, GPUs, TPUs) and the ms of their
requests' mean service time (the co-located work an extra replica's contention slows).

Node figures live in numpy arrays indexed by a per-node slot, so a bid over a thousand nodes gathers
its ledger with one fancy index instead of a thousand dict reads. A pod bound to a node the cache
has not seen yet gets the node's slot at once (its load waits there for the Node).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from kubeagora.kubeapi.node_reports import (
    ANNOTATION_SPEED,
    ANNOTATION_TRUST,
    MIN_SPEED_FACTOR,
    believed_speed_factor,
    published_trust,
)
from kubeagora.kubeapi.quantity import quantity
from kubeagora.kubelet.nodes import ANNOTATION_THROTTLE, LABEL_CLASS, LABEL_REGION, LABEL_TIER, LABEL_ZONE
from kubeagora.model import BoolArray, FloatArray, Node, NodeClass, Tier
from kubeagora.scheduler_plugin.placement import Intent, parse_intent
from kubeagora.scheduler_plugin.workload import GIB, GPU_RESOURCE, TPU_RESOURCE, pod_demand
from kubeagora.sim.latency import INTERFERENCE
from kubeagora.sim.topology import NODE_SHAPES

NODES, PODS, DEPLOYMENTS, INTENTS = "nodes", "pods", "deployments", "intents"
KINDS = (NODES, PODS, DEPLOYMENTS, INTENTS)
ANNOTATION_CARBON = "kubeagora.io/carbon-g-per-kwh"
"""Node annotation: the grid carbon intensity where it runs, believed only above its region's figure."""
_REFERENCE_NODE = Node("reference", Tier.CLOUD, "", "", NodeClass.CPU, 1.0, 1.0)
DEFAULT_POWER_W = (_REFERENCE_NODE.idle_power_w, _REFERENCE_NODE.peak_power_w)
"""Idle and peak watts of a node whose tier and class the simulator has no shape for (its defaults)."""


@dataclass(frozen=True, slots=True)
class NodeInfo:
    name: str
    tier: str | None
    node_class: NodeClass | None
    region: str | None
    zone: str | None
    cpu_cores: float
    memory_gib: float
    gpus: float
    tpus: float
    ready: bool
    unschedulable: bool
    speed: float
    """Speed factor against the class's reference machine (never above 1 on the node's own word), times a
    GPU throttle if one is set."""
    carbon_g_per_kwh: float | None
    """What the node claims of its grid (None: no claim); ``bids`` believes it only above the region's."""
    dynamic_power_w: float
    """Peak − idle wall power of the node's shape (tier, class) in the simulator's topology."""
    trust: float = 1.0
    """The operator's published trust in the node (``kubeapi.node_reports``); 1 where it published none."""


def _float(text: Any, default: float) -> float:
    try:
        value = float(text)
    except (TypeError, ValueError):
        return default
    return value if math.isfinite(value) else default


def node_info(obj: Mapping[str, Any]) -> NodeInfo:
    meta = obj.get("metadata") or {}
    labels = meta.get("labels") or {}
    annotations = meta.get("annotations") or {}
    status = obj.get("status") or {}
    alloc = status.get("allocatable") or status.get("capacity") or {}
    ready = any(c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or ())
    raw_class = str(labels.get(LABEL_CLASS) or "")
    node_class = NodeClass(raw_class) if raw_class in NodeClass._value2member_map_ else None
    tier = labels.get(LABEL_TIER)
    idle_w, peak_w = DEFAULT_POWER_W
    if tier is not None and tier in Tier._value2member_map_ and node_class is not None:
        shape = NODE_SHAPES.get((Tier(str(tier)), node_class))
        if shape is not None:
            idle_w, peak_w = shape[3], shape[4]
    # the node writes these annotations itself: see kubeapi.node_reports for what is believed
    speed = believed_speed_factor(annotations.get(ANNOTATION_SPEED))
    throttle = annotations.get(ANNOTATION_THROTTLE)
    if throttle is not None:
        speed *= min(max(_float(throttle, 1.0), MIN_SPEED_FACTOR), 1.0)
    carbon = _float(annotations.get(ANNOTATION_CARBON), math.nan)
    trust = published_trust(annotations.get(ANNOTATION_TRUST))
    return NodeInfo(
        name=str(meta.get("name") or ""),
        tier=tier,
        node_class=node_class,
        region=labels.get(LABEL_REGION),
        zone=labels.get(LABEL_ZONE),
        cpu_cores=quantity(alloc.get("cpu")),
        memory_gib=quantity(alloc.get("memory")) / GIB,
        gpus=quantity(alloc.get(GPU_RESOURCE)),
        tpus=quantity(alloc.get(TPU_RESOURCE)),
        ready=ready,
        unschedulable=bool((obj.get("spec") or {}).get("unschedulable")),
        speed=speed,
        carbon_g_per_kwh=carbon if math.isfinite(carbon) else None,
        dynamic_power_w=peak_w - idle_w,
        trust=1.0 if trust is None else trust,
    )


@dataclass(frozen=True, slots=True)
class PodUsage:
    """What a bound pod takes from its node, as the cache folded it in (and will take back out)."""

    node: str
    cpu: float
    memory_gib: float
    gpus: float
    tpus: float
    service_ms: float
    """Its requests' mean service time on a reference node of its node's class."""


def _pod_key(obj: Mapping[str, Any]) -> str:
    meta = obj.get("metadata") or {}
    return f"{meta.get('namespace') or 'default'}/{meta.get('name') or ''}"


def _object_key(obj: Mapping[str, Any]) -> tuple[str, str]:
    meta = obj.get("metadata") or {}
    return str(meta.get("namespace") or "default"), str(meta.get("name") or "")


class ClusterCache:
    def __init__(self, capacity: int = 256) -> None:
        self.nodes: dict[str, NodeInfo] = {}
        self.pods: dict[str, PodUsage] = {}
        self.selectors: dict[tuple[str, str], Mapping[str, Any]] = {}
        """(namespace, Deployment name) → its spec.selector."""
        self.intents: dict[tuple[str, str], Intent] = {}
        self.user_zone: dict[str, str] = {}
        """region → the zone its users enter at: its first edge zone by name (the topology's convention)."""
        self.synced: set[str] = set()
        """The kinds listed at least once (the extender is healthy once nodes and pods are)."""
        self.slot: dict[str, int] = {}
        self.slot_names: list[str] = []
        self.node_class: list[NodeClass | None] = []
        self.region: list[str | None] = []
        self.zone: list[str | None] = []
        self.tier: list[str | None] = []
        self.carbon_claim: list[float | None] = []
        self._static_names = ("present", "schedulable", "cpu_cores", "memory_gib", "gpus", "tpus", "speed",
                              "trust", "beta", "dynamic_power_w")
        self._load_names = ("cpu_allocated", "memory_allocated_gib", "gpus_allocated", "tpus_allocated",
                            "colocated_service_ms")
        self.present: BoolArray = np.zeros(capacity, dtype=np.bool_)
        self.schedulable: BoolArray = np.zeros(capacity, dtype=np.bool_)
        self.cpu_cores: FloatArray = np.zeros(capacity)
        self.memory_gib: FloatArray = np.zeros(capacity)
        self.gpus: FloatArray = np.zeros(capacity)
        self.tpus: FloatArray = np.zeros(capacity)
        self.speed: FloatArray = np.ones(capacity)
        self.trust: FloatArray = np.ones(capacity)
        """How far the operator trusts each node, [0, 1], as it published it (the annotation only it may write);
        1 where it published none."""
        self.beta: FloatArray = np.zeros(capacity)
        self.dynamic_power_w: FloatArray = np.zeros(capacity)
        self.cpu_allocated: FloatArray = np.zeros(capacity)
        self.memory_allocated_gib: FloatArray = np.zeros(capacity)
        self.gpus_allocated: FloatArray = np.zeros(capacity)
        self.tpus_allocated: FloatArray = np.zeros(capacity)
        self.colocated_service_ms: FloatArray = np.zeros(capacity)

    # slots ----------------------------------------------------------------------------------------

    def _slot_of(self, name: str) -> int:
        s = self.slot.get(name)
        if s is not None:
            return s
        s = len(self.slot_names)
        if s >= self.present.shape[0]:
            for attr in (*self._static_names, *self._load_names):
                a = getattr(self, attr)
                grown = np.ones_like(a) if attr in ("speed", "trust") else np.zeros_like(a)
                setattr(self, attr, np.concatenate([a, grown]))
        self.slot[name] = s
        self.slot_names.append(name)
        for column in (self.node_class, self.region, self.zone, self.tier, self.carbon_claim):
            column.append(None)
        return s

    # updates --------------------------------------------------------------------------------------

    def apply(self, kind: str, event: str, obj: Mapping[str, Any]) -> None:
        """Fold one watch event (ADDED, MODIFIED, DELETED; others are ignored) into the cache."""
        if event not in ("ADDED", "MODIFIED", "DELETED"):
            return
        deleted = event == "DELETED"
        if kind == NODES:
            self._node(obj, deleted)
        elif kind == PODS:
            self._pod(obj, deleted)
        elif kind == DEPLOYMENTS:
            key = _object_key(obj)
            selector = (obj.get("spec") or {}).get("selector")
            if deleted or not isinstance(selector, dict):
                self.selectors.pop(key, None)
            else:
                self.selectors[key] = selector
        elif kind == INTENTS:
            key = _object_key(obj)
            intent = None if deleted else parse_intent(obj)
            if intent is None:
                self.intents.pop(key, None)
            else:
                self.intents[key] = intent
        else:
            raise ValueError(f"unknown kind {kind!r} (known: {', '.join(KINDS)})")

    def replace(self, kind: str, items: Iterable[Mapping[str, Any]]) -> None:
        """A fresh list of ``kind``: objects not in it are gone, the rest are applied as ADDED."""
        items = list(items)
        if kind == NODES:
            keep = {str((o.get("metadata") or {}).get("name") or "") for o in items}
            for name in [n for n in self.nodes if n not in keep]:
                self._node({"metadata": {"name": name}}, deleted=True)
        elif kind == PODS:
            keep = {_pod_key(o) for o in items}
            for key in [k for k in self.pods if k not in keep]:
                self._unbind(key)
        elif kind == DEPLOYMENTS:
            self.selectors.clear()
        elif kind == INTENTS:
            self.intents.clear()
        for obj in items:
            self.apply(kind, "ADDED", obj)
        self.synced.add(kind)

    def _node(self, obj: Mapping[str, Any], deleted: bool) -> None:
        name = str((obj.get("metadata") or {}).get("name") or "")
        if deleted:
            self.nodes.pop(name, None)
            s = self.slot.get(name)
            if s is not None:
                self.present[s] = self.schedulable[s] = False
            return
        info = node_info(obj)
        self.nodes[name] = info
        s = self._slot_of(name)
        self.present[s] = True
        self.schedulable[s] = info.ready and not info.unschedulable
        self.cpu_cores[s], self.memory_gib[s] = info.cpu_cores, info.memory_gib
        self.gpus[s], self.tpus[s] = info.gpus, info.tpus
        self.speed[s] = info.speed
        self.trust[s] = info.trust
        self.beta[s] = INTERFERENCE.get(info.node_class, 0.0) if info.node_class else 0.0
        self.dynamic_power_w[s] = info.dynamic_power_w
        self.node_class[s], self.region[s], self.zone[s], self.tier[s] = (info.node_class, info.region, info.zone,
                                                                          info.tier)
        self.carbon_claim[s] = info.carbon_g_per_kwh
        if info.tier == Tier.EDGE and info.region and info.zone:
            first = self.user_zone.get(info.region)
            self.user_zone[info.region] = info.zone if first is None else min(first, info.zone)

    def _pod(self, obj: Mapping[str, Any], deleted: bool) -> None:
        key = _pod_key(obj)
        node = str((obj.get("spec") or {}).get("nodeName") or "")
        phase = (obj.get("status") or {}).get("phase")
        self._unbind(key)
        if deleted or not node or phase in ("Succeeded", "Failed"):
            return
        demand = pod_demand(obj)
        s = self._slot_of(node)
        usage = PodUsage(node, demand.cpu, demand.memory_gib, demand.gpus, demand.tpus,
                         demand.service_ms_on(self.node_class[s]))
        self.pods[key] = usage
        self._add_load(s, usage, +1.0)

    def _unbind(self, key: str) -> None:
        usage = self.pods.pop(key, None)
        if usage is not None:
            self._add_load(self.slot[usage.node], usage, -1.0)

    def _add_load(self, s: int, usage: PodUsage, sign: float) -> None:
        self.cpu_allocated[s] += sign * usage.cpu
        self.memory_allocated_gib[s] += sign * usage.memory_gib
        self.gpus_allocated[s] += sign * usage.gpus
        self.tpus_allocated[s] += sign * usage.tpus
        self.colocated_service_ms[s] += sign * usage.service_ms

    # reads ----------------------------------------------------------------------------------------

    def slots_of(self, names: Iterable[str]) -> list[int]:
        """The slots of the named nodes the cache knows (present); unknown names are left out."""
        slot, present = self.slot, self.present
        out = []
        for name in names:
            s = slot.get(name)
            if s is not None and present[s]:
                out.append(s)
        return out

    def intent_snapshot(self) -> tuple[Intent, ...]:
        """The intents as of now. The verbs read the cache from the server's worker thread while the watch
        loops update it on the event loop: copying the values is one C-level step (atomic under the GIL),
        where iterating the live dict could meet an update half-way."""
        return tuple(self.intents.values())

    def healthy(self) -> bool:
        return NODES in self.synced and PODS in self.synced
