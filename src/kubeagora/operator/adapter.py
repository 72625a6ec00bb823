"""Cluster objects and Prometheus signals → the ``Observation`` the agents read (pure).

The agents never know which world they run in: this module gives them the same frozen snapshot
the simulator's engine gives them. What the cluster cannot tell directly is derived, and said so:

- counters (arrived, served, dropped, busy core-seconds) integrate the Prometheus rates over the
  loop's ticks (``Counters``), since the agents take rates over windows of their own; the CPU counter
  is derived from the requests served × the declared service time (no CPU series is read yet), so on
  a cluster the online calibration learns the pods' cold starts (from their timestamps) but keeps the
  declared service times;
- capacity is Ready replicas × concurrency / declared service time at the node's speed × throttle
  (`kubeagora.model.ready_capacity_rps`, the simulator's engine fills it with the same function); the
  queue length is Little's law over the p95 latency above the service time;
- the RTT from users to nodes is a static estimate by tier and region (no probes run on the
  devcluster), with the midpoints of the simulator's topology generator;
- a Deployment's replicas are its Ready pods and at most spec.replicas − Ready others
  (``replicas_of``: a rolling update's surge pod is not a replica starting), and a service whose request
  rate Prometheus has not answered yet waits for it, one rate window at most (``awaiting_first_load``):
  an unread rate is not a load of 0 req/s.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence, Set
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np

from kubeagora.kubeapi.quantity import quantity
from kubeagora.kubeapi.selectors import matches
from kubeagora.model import (
    NODE_CLASSES,
    Node,
    NodeClass,
    Observation,
    Service,
    Tier,
    class_service_time_ms,
    ready_capacity_rps,
)
from kubeagora.model.intent import DEFAULT_TENANT, MetricsSource, OrchestrationPolicy
from kubeagora.operator.metrics_source import NodeSignals, ServiceSignals
from kubeagora.operator.view import Obj
from kubeagora.sim.engine import PlatformDefaults
from kubeagora.sim.topology import NODE_SHAPES

LABEL_TIER = "kubeagora.io/tier"
LABEL_CLASS = "kubeagora.io/node-class"
LABEL_REGION = "topology.kubernetes.io/region"
LABEL_ZONE = "topology.kubernetes.io/zone"
ANNOTATION_SPEED = "kubeagora.io/speed-factor"
ANNOTATION_THROTTLE = "kubeagora.io/gpu-throttle-factor"
TAINT_QUARANTINE = "kubeagora.io/quarantined"
ACCELERATORS = ("nvidia.com/gpu", "google.com/tpu")
ACCESS_RTT_MS = 20.0
TIER_RTT_MS: Mapping[Tier, float] = {Tier.EDGE: 0.0, Tier.FOG: 5.0, Tier.CLOUD: 15.0}
INTER_REGION_RTT_MS = 80.0
IDLE_CPU_FRACTION = PlatformDefaults().idle_cpu_fraction
"""CPU an idle pod burns, as a share of its request (the simulator's figure)."""
CARBON_G_PER_KWH = 300.0
"""No carbon feed on the devcluster: every region gets this grid average."""


@dataclass(frozen=True, slots=True)
class Binding:
    """One managed service: the intent, its Deployment, and the simulator's view of it."""

    namespace: str
    intent: str
    deployment: str
    service: Service
    """``service.name`` is "namespace/deployment" (``service_key``): a workload is named within its
    namespace, so a same-named Deployment of another namespace is another service."""
    autonomy: str = "auto"
    policy_note: str = ""
    """What the OrchestrationPolicy changed in the intent (a capped priority), for its status."""
    metrics: MetricsSource = field(default_factory=MetricsSource)
    """Where its load and latency are read (the intent's ``spec.metrics``)."""


@dataclass(frozen=True, slots=True)
class Counters:
    """Integrated counters per service name, and the time they were last advanced."""

    at_s: float | None = None
    arrived: Mapping[str, float] = field(default_factory=dict)
    served: Mapping[str, float] = field(default_factory=dict)
    dropped: Mapping[str, float] = field(default_factory=dict)
    busy: Mapping[str, float] = field(default_factory=dict)


# ---------------------------------------------------------------------------------------------- quantities
MAX_COUNT = 1_000_000
"""A count of accelerators above this is not a count a node can have: it is read as this."""


def _finite(q: object) -> float:
    """A quantity as a finite number ≥ 0; anything else (a wrong type, NaN, ±Inf, negative) is 0.
    Objects come from tenants and nodes: one odd value must not stop the loop for everyone."""
    if not isinstance(q, str | int | float) or isinstance(q, bool):
        return 0.0
    value = quantity(q)
    return value if math.isfinite(value) and value > 0 else 0.0


def cpu_cores(q: object) -> float:
    """A CPU quantity ("500m", "2", "250000n") in cores."""
    return _finite(q)


def memory_gib(q: object) -> float:
    return _finite(q) / 2**30


def whole_count(q: object) -> int:
    """An extended-resource quantity as a count: the API server stores ``1000`` as ``"1k"``."""
    return int(min(_finite(q), MAX_COUNT))


# ---------------------------------------------------------------------------------------------- nodes
def node_from_object(obj: Obj) -> Node:
    meta, status = obj.get("metadata") or {}, obj.get("status") or {}
    labels, annotations = meta.get("labels") or {}, meta.get("annotations") or {}
    alloc = status.get("allocatable") or status.get("capacity") or {}
    # any node is in the view: a value outside kubeagora's vocabulary reads as the default, so one
    # foreign label cannot stop every tick
    tier = next((t for t in Tier if t.value == labels.get(LABEL_TIER)), Tier.CLOUD)
    cls = next((c for c in NodeClass if c.value == labels.get(LABEL_CLASS)), NodeClass.CPU)
    shape = NODE_SHAPES.get((tier, cls))
    idle_w, peak_w = (shape[3], shape[4]) if shape else (60.0, 200.0)
    accelerators = sum(whole_count(alloc.get(r)) for r in ACCELERATORS)
    return Node(str(meta.get("name")), tier, str(labels.get(LABEL_REGION, "region-0")),
                str(labels.get(LABEL_ZONE, "")), cls, cpu_cores(alloc.get("cpu")), memory_gib(alloc.get("memory")),
                accelerators, _positive(annotations.get(ANNOTATION_SPEED)), idle_w, peak_w)


def _positive(raw: object) -> float:
    """A speed-like annotation: its value when it is a positive number, else 1."""
    try:
        value = float(str(raw))
    except ValueError:
        return 1.0
    return value if math.isfinite(value) and value > 0 else 1.0


def node_ready(obj: Obj) -> bool:
    for c in (obj.get("status") or {}).get("conditions") or ():
        if c.get("type") == "Ready":
            return bool(c.get("status") == "True")
    return False


def node_quarantined(obj: Obj) -> bool:
    return any(t.get("key") == TAINT_QUARANTINE for t in (obj.get("spec") or {}).get("taints") or ())


def throttle(obj: Obj) -> float:
    raw = ((obj.get("metadata") or {}).get("annotations") or {}).get(ANNOTATION_THROTTLE)
    try:
        return float(raw) if raw else 1.0
    except ValueError:
        return 1.0


def ingress_rtt_ms(regions: Sequence[str], nodes: Sequence[Node]) -> np.ndarray:
    rtt = np.zeros((len(regions), len(nodes)))
    for r, region in enumerate(regions):
        for j, n in enumerate(nodes):
            rtt[r, j] = ACCESS_RTT_MS + TIER_RTT_MS[n.tier] + (0.0 if n.region == region else INTER_REGION_RTT_MS)
    return rtt


# ---------------------------------------------------------------------------------------------- pods
def pod_ready(pod: Obj) -> bool:
    for c in (pod.get("status") or {}).get("conditions") or ():
        if c.get("type") == "Ready":
            return bool(c.get("status") == "True")
    return False


def pod_live(pod: Obj) -> bool:
    meta, status = pod.get("metadata") or {}, pod.get("status") or {}
    return not meta.get("deletionTimestamp") and status.get("phase") not in ("Succeeded", "Failed")


def pod_requests(pod: Obj) -> tuple[float, float, int]:
    cpu = mem = 0.0
    acc = 0
    for c in (pod.get("spec") or {}).get("containers") or ():
        req = (c.get("resources") or {}).get("requests") or {}
        cpu += cpu_cores(req.get("cpu"))
        mem += memory_gib(req.get("memory"))
        acc += sum(whole_count(req.get(r)) for r in ACCELERATORS)
    return cpu, mem, acc


def timestamp_s(raw: object) -> float:
    """An RFC 3339 timestamp ("2024-05-01T12:00:03Z") as epoch seconds; NaN when absent or malformed."""
    if not isinstance(raw, str) or not raw:
        return math.nan
    try:
        return datetime.fromisoformat(raw.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return math.nan


def pod_times_s(pod: Obj) -> tuple[float, float]:
    """(creationTimestamp, the Ready condition's lastTransitionTime while Ready, else NaN) as epoch seconds."""
    created = timestamp_s((pod.get("metadata") or {}).get("creationTimestamp"))
    for c in (pod.get("status") or {}).get("conditions") or ():
        if c.get("type") == "Ready" and c.get("status") == "True":
            return created, timestamp_s(c.get("lastTransitionTime"))
    return created, math.nan


def pods_of(deployment: Obj, pods: Sequence[Obj]) -> list[Obj]:
    """The live pods in the Deployment's namespace its selector (matchLabels and matchExpressions) picks."""
    ns = (deployment.get("metadata") or {}).get("namespace")
    sel = (deployment.get("spec") or {}).get("selector") or {}
    if not sel.get("matchLabels") and not sel.get("matchExpressions"):
        return []  # an empty selector would pick every pod; the API server refuses it for a Deployment
    return [p for p in pods if (p.get("metadata") or {}).get("namespace") == ns
            and matches(sel, (p.get("metadata") or {}).get("labels") or {}) and pod_live(p)]


def replicas_of(deployment: Obj, pods: Sequence[Obj], node_index: Mapping[str, int], desired: int) -> list[Obj]:
    """The Deployment's pods that are its replicas: every Ready one, and of the others at most
    ``desired`` − Ready, the oldest first. A rolling update (the operator's own residency patch of the
    pod template starts one) runs a surge pod beside the Ready ones until it replaces one of them: it is
    not a replica starting, and counted as one the agents would keep it (2 Ready + 1 surge → 3)."""
    mine = pods_of(deployment, pods)

    def is_ready(p: Obj) -> bool:
        return pod_ready(p) and str((p.get("spec") or {}).get("nodeName") or "") in node_index

    ready = [p for p in mine if is_ready(p)]
    others = sorted((p for p in mine if not is_ready(p)),
                    key=lambda p: str((p.get("metadata") or {}).get("creationTimestamp") or ""))
    return ready + others[:max(desired - len(ready), 0)]


# ---------------------------------------------------------------------------------------------- counters
def _signal(signals: Mapping[str, ServiceSignals], name: str) -> ServiceSignals:
    return signals.get(name) or ServiceSignals(name, 0.0, 0.0, 0.0, math.nan, math.nan)


def advance_counters(counters: Counters, now_s: float, signals: Mapping[str, ServiceSignals],
                     services: Sequence[Service], ready_pods: Mapping[str, int] | None = None) -> Counters:
    """Integrate each service's rates over the time since the last tick; ``ready_pods`` by service
    name (from the watch: ``ready_pods_of``)."""
    dt = 0.0 if counters.at_s is None else max(0.0, now_s - counters.at_s)
    arrived, served, dropped, busy = (dict(counters.arrived), dict(counters.served), dict(counters.dropped),
                                      dict(counters.busy))
    for s in services:
        sig = _signal(signals, s.name)
        service_s = min(s.service_time_ms.values()) / 1000.0 if s.service_time_ms else 0.0
        arrived[s.name] = arrived.get(s.name, 0.0) + sig.offered_rps * dt
        served[s.name] = served.get(s.name, 0.0) + sig.served_rps * dt
        dropped[s.name] = dropped.get(s.name, 0.0) + sig.dropped_rps * dt
        # a replica's slots share its CPU request (busy slots / concurrency of it) on top of what an idle pod
        # burns, as in the engine
        busy_slots = sig.served_rps * service_s / max(s.concurrency, 1)
        ready = (ready_pods or {}).get(s.name, 0)
        cpu = s.cpu_request * (IDLE_CPU_FRACTION * ready + (1.0 - IDLE_CPU_FRACTION) * busy_slots)
        busy[s.name] = busy.get(s.name, 0.0) + cpu * dt
    return Counters(now_s, arrived, served, dropped, busy)


def ready_pods_of(bindings: Sequence[Binding], deployments: Mapping[str, Obj], pods: Sequence[Obj]) -> dict[str, int]:
    """Ready pods of each managed service's Deployment, by service name (0 where its objects cannot be
    read: ``observe`` finds that tenant and sets it aside, and one tenant's objects stop no other)."""
    out = {}
    for b in bindings:
        dep = deployments.get(f"{b.namespace}/{b.deployment}")
        try:
            out[b.service.name] = 0 if dep is None else sum(1 for p in pods_of(dep, pods) if pod_ready(p))
        except Exception:
            out[b.service.name] = 0
    return out


# ---------------------------------------------------------------------------------------------- the snapshot
def observe(now_s: float, node_objs: Sequence[Obj], pod_objs: Sequence[Obj], deployments: Mapping[str, Obj],
            bindings: Sequence[Binding], signals: Mapping[str, ServiceSignals],
            node_signals: Mapping[str, NodeSignals], counters: Counters,
            epoch_at_zero_s: float | None = None) -> Observation:
    """``deployments`` by "namespace/name"; ``counters`` already advanced to ``now_s``; ``epoch_at_zero_s``
    the wall clock at loop time 0, to put the pods' timestamps on the loop's clock (None: not reported)."""
    node_objs = sorted(node_objs, key=lambda o: str((o.get("metadata") or {}).get("name")))
    nodes = tuple(node_from_object(o) for o in node_objs)
    services = tuple(b.service for b in bindings)
    node_index = {n.name: j for j, n in enumerate(nodes)}
    n_s, n_n = len(services), len(nodes)

    cpu_alloc, mem_alloc = np.zeros(n_n), np.zeros(n_n)
    acc_alloc = np.zeros(n_n, dtype=np.int64)
    for pod in pod_objs:
        j = node_index.get(str((pod.get("spec") or {}).get("nodeName") or ""))
        if j is None or not pod_live(pod):
            continue
        cpu, mem, acc = pod_requests(pod)
        cpu_alloc[j] += cpu
        mem_alloc[j] += mem
        acc_alloc[j] += acc

    rep_service: list[int] = []
    rep_node: list[int] = []
    rep_ready: list[bool] = []
    rep_started: list[float] = []
    rep_ready_at: list[float] = []
    desired = np.zeros(n_s, dtype=np.int64)
    ready = np.zeros(n_s, dtype=np.int64)
    pending = np.zeros(n_s, dtype=np.int64)
    speeds = np.array([n.speed_factor * throttle(o) for n, o in zip(nodes, node_objs, strict=True)])
    for i, b in enumerate(bindings):
        dep = deployments.get(f"{b.namespace}/{b.deployment}")
        if dep is None:
            continue
        desired[i] = int((dep.get("spec") or {}).get("replicas", 1))
        for pod in replicas_of(dep, pod_objs, node_index, int(desired[i])):
            j = node_index.get(str((pod.get("spec") or {}).get("nodeName") or ""))
            is_ready = pod_ready(pod) and j is not None
            if j is not None:
                rep_service.append(i)
                rep_node.append(j)
                rep_ready.append(is_ready)
                started, ready_at = pod_times_s(pod)
                rep_started.append(started)
                rep_ready_at.append(ready_at)
            if is_ready and j is not None:
                ready[i] += 1
            else:
                pending[i] += 1

    def per_service(attr: str) -> np.ndarray:
        return np.array([getattr(_signal(signals, s.name), attr) for s in services], dtype=float)

    concurrency = np.array([s.concurrency for s in services], dtype=np.int64)
    replica_service = np.array(rep_service, dtype=np.int64)
    replica_node = np.array(rep_node, dtype=np.int64)
    replica_ready = np.array(rep_ready, dtype=bool)
    capacity = ready_capacity_rps(class_service_time_ms(services, NODE_CLASSES),
                                  np.array([NODE_CLASSES.index(n.node_class) for n in nodes], dtype=np.int64),
                                  speeds, concurrency.astype(float), concurrency.astype(float), replica_service,
                                  replica_node, replica_ready)
    offered = per_service("offered_rps")
    # Little's law over the part of the latency above the bare service time: the waiting requests
    p95 = per_service("p95_ms")
    service_ms = np.array([min(s.service_time_ms.values()) if s.service_time_ms else 0.0 for s in services])
    waiting_ms = np.where(np.isfinite(p95), np.maximum(np.nan_to_num(p95) - service_ms - ACCESS_RTT_MS, 0.0), 0.0)
    queue = per_service("served_rps") * waiting_ms / 1000.0
    regions = tuple(sorted({n.region for n in nodes} | {s.origin_region for s in services}))
    node_sig = [node_signals.get(n.name) for n in nodes]
    heard = np.array([node_ready(o) for o in node_objs], dtype=bool)
    return Observation(
        time_s=now_s, nodes=nodes, services=services,
        arrived_total=np.array([counters.arrived.get(s.name, 0.0) for s in services]),
        served_total=np.array([counters.served.get(s.name, 0.0) for s in services]),
        dropped_total=np.array([counters.dropped.get(s.name, 0.0) for s in services]),
        busy_core_seconds_total=np.array([counters.busy.get(s.name, 0.0) for s in services]),
        arrival_rps=offered, queue_length=queue,
        desired_replicas=desired, ready_replicas=ready, pending_replicas=pending,
        concurrency=concurrency,
        p95_ms=per_service("p95_ms"), p99_ms=per_service("p99_ms"),
        capacity_rps=capacity, shed_fraction=np.zeros(n_s),
        node_ready=heard,
        node_heartbeat_age_s=np.where(heard, 0.0, 60.0),
        node_quarantined=np.array([node_quarantined(o) for o in node_objs], dtype=bool),
        node_cpu_allocated=cpu_alloc, node_memory_allocated_gib=mem_alloc,
        node_accelerators_allocated=acc_alloc,
        node_utilization=np.array([s.utilization if s and math.isfinite(s.utilization) else 0.0 for s in node_sig]),
        node_power_w=np.array([s.power_w if s and math.isfinite(s.power_w) else n.idle_power_w
                               for s, n in zip(node_sig, nodes, strict=True)]),
        node_speed=speeds,
        region_carbon_g_per_kwh=dict.fromkeys(regions, CARBON_G_PER_KWH),
        regions=regions, ingress_rtt_ms=ingress_rtt_ms(regions, nodes),
        replica_service=replica_service, replica_node=replica_node, replica_ready=replica_ready,
        replica_started_s=None if epoch_at_zero_s is None else np.array(rep_started) - epoch_at_zero_s,
        replica_ready_s=None if epoch_at_zero_s is None else np.array(rep_ready_at) - epoch_at_zero_s,
    )


# ---------------------------------------------------------------------------------------------- intents
ANNOTATION_TEMPLATE = "kubeagora.io/template"
DEFAULT_TEMPLATE = "web"


@dataclass(frozen=True, slots=True)
class Unbound:
    """An intent the agents cannot manage right now, and why (shown in its status)."""

    key: str
    why: str
    target_found: bool = False
    degraded: bool = False
    """Something in the intent or its Deployment is wrong (not merely absent yet): the intent's
    ``Degraded`` condition says what, while every other intent is managed as usual."""
    reason: str = "NotManaged"
    """The Ready condition's reason (``SignatureRejected`` where the policy's signing rule refused it)."""


def service_key(namespace: str, workload: str) -> str:
    """The name of a managed service everywhere in the operator: its workload within its namespace
    (as the Prometheus series are labelled: by namespace and workload)."""
    return f"{namespace}/{workload}"


def template_requests(deployment: Obj) -> tuple[float, float, int]:
    return pod_requests((deployment.get("spec") or {}).get("template") or {})


def bind(intent_objs: Sequence[Obj], deployments: Mapping[str, Obj], regions: Sequence[str],
         policy: OrchestrationPolicy | None = None) -> tuple[list[Binding], list[Unbound]]:
    """Each intent with its Deployment → a ``Binding`` (the simulator's ``Service`` with the intent's
    SLOs, bounds and placement, the template's profile and the pod template's real requests).

    Each intent is bound on its own: whatever goes wrong with one (a malformed spec, an odd
    quantity, a failure nobody foresaw) makes that one ``Unbound`` and ``degraded``, never the rest.

    ``policy`` (the OrchestrationPolicy in force) is applied at runtime too, whatever admission let in
    earlier: a tenant named from a namespace the policy does not allow, or unknown to a policy that
    weighs tenants, is not managed; a priority above the tenant's cap is capped; and the tenant's
    weight multiplies the priority each service has in the market and the MPC."""
    bound: list[Binding] = []
    unbound: list[Unbound] = []
    names: set[str] = set()
    for obj in sorted(intent_objs, key=lambda o: (str((o.get("metadata") or {}).get("namespace")),
                                                   str((o.get("metadata") or {}).get("name")))):
        meta = obj.get("metadata") or {}
        key = f"{meta.get('namespace')}/{meta.get('name')}"
        try:
            out = _bind_one(key, obj, deployments, regions, names, policy)
        except Exception as e:  # one tenant's objects must not stop the loop for every tenant
            out = Unbound(key, f"cannot be managed: {type(e).__name__}: {str(e)[:300]}", True, degraded=True)
        if isinstance(out, Unbound):
            unbound.append(out)
            continue
        names.add(out.service.name)
        bound.append(out)
    return bound, unbound


def awaiting_first_load(bindings: Sequence[Binding], signals: Mapping[str, ServiceSignals],
                        first_bound_s: Mapping[str, float], load_seen: Set[str], now_s: float,
                        rate_window_s: float) -> tuple[list[Binding], list[Unbound]]:
    """(the bindings to manage now, those waiting for their first request-rate reading).

    Prometheus has a rate only once a series has two scrapes in the window: a Deployment created with
    its intent reads 0 req/s for its first seconds without having been measured. Handed to the agents,
    that 0 is the forecaster's first sample and the real load a step up from it, which its upper band
    carries for minutes (on the devcluster it planned 3-4× the load and scaled 2 → 5-20 replicas at
    0.75 pods' worth of it). So a service whose load has not been read yet (``load_seen``: read since it
    was bound) waits one rate window from when it was first bound (``first_bound_s``); after that, no
    series means no requests, and it is managed at 0 req/s."""
    kept: list[Binding] = []
    waiting: list[Unbound] = []
    for b in bindings:
        name = b.service.name
        sig = signals.get(name)
        read = name in load_seen or (sig is not None and sig.load_read)
        if read or now_s - first_bound_s.get(name, now_s) >= rate_window_s:
            kept.append(b)
            continue
        waiting.append(Unbound(f"{b.namespace}/{b.intent}", f"deployment {b.deployment}: waiting for the first reading "
                               f"of its request rate (Prometheus has none yet; managed at 0 req/s after "
                               f"{rate_window_s:g} s without one)", True, reason="AwaitingMetrics"))
    return kept, waiting


def unplaceable(bindings: Sequence[Binding], nodes: Sequence[Node]) -> tuple[list[Binding], list[Unbound]]:
    """(the bindings a node could run a replica of, the others as degraded): a pod template asking
    for more CPU, memory or accelerators than the largest node has never runs a replica, and its
    demand would only distort the market's prices for every other tenant. No nodes: all kept."""
    if not nodes:
        return list(bindings), []
    most_cpu, most_memory = max(n.cpu_cores for n in nodes), max(n.memory_gib for n in nodes)
    most_accelerators = max(n.accelerators for n in nodes)
    kept: list[Binding] = []
    out: list[Unbound] = []
    for b in bindings:
        s = b.service
        asks = [(what, want, have) for what, want, have in (
            ("cpu cores", s.cpu_request, most_cpu), ("GiB of memory", s.memory_request_gib, most_memory),
            ("accelerators", float(s.accelerator_request), float(most_accelerators))) if want > have]
        if not asks:
            kept.append(b)
            continue
        what, want, have = asks[0]
        out.append(Unbound(f"{b.namespace}/{b.intent}", f"deployment {b.deployment}: a replica requests {want:g} "
                           f"{what}, the largest node has {have:g}: no replica can run", True, degraded=True))
    return kept, out


def _bind_one(key: str, obj: Obj, deployments: Mapping[str, Obj], regions: Sequence[str],
              names: set[str], policy: OrchestrationPolicy | None) -> Binding | Unbound:
    from dataclasses import replace

    from kubeagora.model.intent import IntentError, parse_intent, service_from_intent
    from kubeagora.sim.catalog import template_service

    try:
        intent = parse_intent(obj)
    except IntentError as e:
        return Unbound(key, str(e), degraded=True)
    priority, note = intent.priority, ""
    if policy is not None:
        refused = tenant_refusal(intent.namespace, intent.tenant, policy)
        if refused:
            return Unbound(key, refused, degraded=True)
        cap = policy.priority_cap(intent.tenant)
        if cap is not None and priority > cap:
            priority, note = cap, (f"spec.priority {intent.priority:g} capped at {cap:g} for tenant {intent.tenant!r} "
                                   f"(OrchestrationPolicy {policy.name})")
        priority *= policy.tenant_weight(intent.tenant)
    dep = deployments.get(f"{intent.namespace}/{intent.target.name}")
    if dep is None:
        return Unbound(key, f"deployment {intent.namespace}/{intent.target.name} not found")
    name = service_key(intent.namespace, intent.target.name)
    if name in names:
        return Unbound(key, f"deployment {name} is managed by another intent already", True, degraded=True)
    template_meta = (((dep.get("spec") or {}).get("template") or {}).get("metadata") or {})
    template = intent.template or (template_meta.get("annotations") or {}).get(ANNOTATION_TEMPLATE) \
        or DEFAULT_TEMPLATE
    origin = (intent.placement.regions or tuple(regions) or ("region-0",))[0]
    try:
        base = template_service(template, name, origin)
        service = service_from_intent(intent, name, base)
    except (ValueError, IntentError) as e:
        return Unbound(key, str(e), True, degraded=True)
    cpu, mem, acc = template_requests(dep)
    service = replace(service, cpu_request=cpu or service.cpu_request,
                      memory_request_gib=mem or service.memory_request_gib,
                      accelerator_request=acc or service.accelerator_request, priority_weight=priority)
    return Binding(intent.namespace, intent.name, intent.target.name, service, str(intent.autonomy), note,
                   intent.metrics)


def tenant_refusal(namespace: str, tenant: str, policy: OrchestrationPolicy) -> str:
    """Why an intent in ``namespace`` may not name ``tenant`` under the policy ("" when it may)."""
    if not policy.may_claim(namespace, tenant):
        allowed = ", ".join(policy.tenant_namespaces.get(tenant, ()))
        return (f"spec.tenant: tenant {tenant!r} may be named only in namespaces {allowed} "
                f"(OrchestrationPolicy {policy.name} tenantNamespaces)")
    if policy.tenant_weights and tenant != DEFAULT_TENANT and tenant not in policy.tenant_weights:
        return f"spec.tenant: tenant {tenant!r} has no weight in OrchestrationPolicy {policy.name}"
    return ""
