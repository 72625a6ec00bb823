"""Traffic through the mock nodes: Poisson load over each service's Ready pods, latencies from the
simulator's latency model (``sim.latency``), per-node utilisation and power. One numpy tick per
second for all pods; no per-request work.

Per tick, for each Ready pod on a serving node: arrivals ~ Poisson(rate / Ready pods of its
service); its service time is the service's mean on the node's class, over the node's speed
(and GPU throttle); its queue is the model's M/G/c wait at that load plus a fluid backlog when
arrivals outrun it (requests beyond ``queue_limit × concurrency`` are dropped); network is the
RTT from the service's users' region to the node. Each pod's requests are split over the latency
strata (no-wait and wait, ``STRATA``) by one multinomial draw and counted into Prometheus-style
buckets, so ``histogram_quantile`` over the exported buckets follows the model's distribution.

CPU is Burstable (``cpu_share``): a running pod uses ``request × (idle + (1 − idle) × busy)``
cores, busy being the work it serves over its nominal capacity; offered more than that capacity it
wants more cores, gets them up to its CPU limit or its fair share of the node's cores, and serves
faster in proportion. Its cores are counted into its cumulative ``cpu_seconds`` (and its node's):
the resource metrics API (``resource_metrics``) reports their rates, which is what the real HPA
reads on the devcluster, above 100 % of the request under overload as on a real cluster.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

import numpy as np
import numpy.typing as npt

from kubeagora.kubelet import cpu_share
from kubeagora.model import NODE_CLASSES, FloatArray, Node, NodeClass, Service
from kubeagora.sim import latency as lat
from kubeagora.sim.catalog import TEMPLATES

BUCKETS_S: tuple[float, ...] = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5, 0.75,
                                1.0, 1.5, 2.0, 3.0, 5.0, 10.0, 30.0)
"""Upper bounds of the latency histogram (seconds); +Inf is implied."""
IDLE_CPU_FRACTION = 0.05
"""A running pod uses this share of its CPU request while idle (the engine's default)."""
DEFAULT_TEMPLATE = "web"
CLASS_INDEX = {c: i for i, c in enumerate(NODE_CLASSES)}
IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True, slots=True)
class ServiceProfile:
    """How one service's requests are served: what the model needs, and its load."""

    name: str
    rps: float
    service_time_ms: Mapping[NodeClass, float]
    cv: float = 0.6
    concurrency: int = 4
    queue_limit: int = 256
    origin_region: int = 0

    def base_ms(self, node_class: NodeClass) -> float:
        """Mean service time on a reference node of the class; a class the service does not list
        (the scheduler put it there anyway) gets its slowest listed time."""
        return float(self.service_time_ms.get(node_class, max(self.service_time_ms.values())))


def profile_from_service(service: Service, rps: float, regions: Sequence[str]) -> ServiceProfile:
    origin = regions.index(service.origin_region) if service.origin_region in regions else 0
    return ServiceProfile(service.name, rps, dict(service.service_time_ms), service.service_time_cv,
                          service.concurrency, service.queue_limit, origin)


def profile_from_template(name: str, template: str, rps: float, origin_region: int = 0) -> ServiceProfile:
    if template not in TEMPLATES:
        raise ValueError(f"unknown service template {template!r} (known: {', '.join(TEMPLATES)})")
    t = TEMPLATES[template]
    return ServiceProfile(name, rps, dict(t["service_time_ms"]), float(t.get("service_time_cv", 0.6)),
                          int(t.get("concurrency", 4)), int(t.get("queue_limit", 256)), origin_region)


class PodTable:
    """The pods the mock nodes run, as columns (one slot per pod, slots reused)."""

    def __init__(self, capacity: int = 1024) -> None:
        self.service = np.zeros(capacity, dtype=np.int64)
        self.node = np.zeros(capacity, dtype=np.int64)
        self.ready = np.zeros(capacity, dtype=bool)
        self.live = np.zeros(capacity, dtype=bool)
        self.cpu = np.zeros(capacity)
        """CPU request (cores)."""
        self.cpu_limit = np.full(capacity, np.inf)
        """CPU limit (cores; inf for none)."""
        self.accelerators = np.zeros(capacity)
        self.backlog = np.zeros(capacity)
        self.cpu_seconds = np.zeros(capacity)
        """Core-seconds the pod has used since it was added (what cAdvisor's usage counter counts)."""
        self._slot: dict[str, int] = {}
        self._free: list[int] = list(range(capacity - 1, -1, -1))

    def __len__(self) -> int:
        return len(self._slot)

    def __contains__(self, key: object) -> bool:
        return key in self._slot

    def _grow(self) -> None:
        old = self.service.shape[0]
        for name in ("service", "node", "ready", "live", "cpu", "cpu_limit", "accelerators", "backlog", "cpu_seconds"):
            a = getattr(self, name)
            setattr(self, name, np.concatenate([a, np.zeros_like(a)]))
        self._free.extend(range(2 * old - 1, old - 1, -1))

    def add(self, key: str, service: int, node: int, cpu: float = 0.0, accelerators: float = 0.0,
            cpu_limit: float = np.inf) -> int:
        if key in self._slot:
            self.remove(key)
        if not self._free:
            self._grow()
        k = self._free.pop()
        self._slot[key] = k
        self.service[k], self.node[k], self.cpu[k], self.accelerators[k] = service, node, cpu, accelerators
        self.cpu_limit[k] = cpu_limit
        self.ready[k], self.live[k], self.backlog[k], self.cpu_seconds[k] = False, True, 0.0, 0.0
        return k

    def remove(self, key: str) -> None:
        k = self._slot.pop(key, None)
        if k is not None:
            self.live[k] = self.ready[k] = False
            self.backlog[k] = 0.0
            self._free.append(k)

    def used_cpu_seconds(self, key: str) -> float | None:
        """The pod's cumulative core-seconds; None for a pod not in the table."""
        k = self._slot.get(key)
        return None if k is None else float(self.cpu_seconds[k])

    def set_ready(self, key: str, ready: bool) -> None:
        k = self._slot.get(key)
        if k is not None:
            self.ready[k] = ready
            if not ready:
                self.backlog[k] = 0.0


class TrafficModel:
    """Counters and gauges of the traffic the mock nodes serve; ``tick`` advances them."""

    def __init__(self, nodes: Sequence[Node], ingress_rtt_ms: FloatArray, seed: int = 0) -> None:
        self.nodes = tuple(nodes)
        self.rng = np.random.default_rng(seed)
        self.ingress_rtt_ms = np.asarray(ingress_rtt_ms, dtype=np.float64)
        self.node_class = np.array([CLASS_INDEX[n.node_class] for n in nodes], dtype=np.int64)
        self.node_speed = np.array([n.speed_factor for n in nodes])
        self.node_cores = np.array([n.cpu_cores for n in nodes])
        self.node_acc = np.array([max(n.accelerators, 1) for n in nodes], dtype=np.float64)
        self.node_idle_w = np.array([n.idle_power_w for n in nodes])
        self.node_peak_w = np.array([n.peak_power_w for n in nodes])
        self.node_utilization = np.zeros(len(nodes))
        self.node_power_w = self.node_idle_w.copy()
        self.node_cpu_seconds = np.zeros(len(nodes))
        """Core-seconds the node's pods have used (cumulative)."""
        self.bounds_ms = np.array(BUCKETS_S) * 1000.0
        self.profiles: list[ServiceProfile] = []
        self.index: dict[str, int] = {}
        self.requests = np.zeros(0)
        self.dropped = np.zeros(0)
        self.latency_sum_s = np.zeros(0)
        self.bucket_counts = np.zeros((0, len(BUCKETS_S) + 1))
        """[service, bucket] requests per bucket (not cumulative; the last one is +Inf)."""
        self.ready_pods = np.zeros(0, dtype=np.int64)
        self._arrays_for = -1

    # services ---------------------------------------------------------------------------------

    def set_profile(self, profile: ServiceProfile) -> int:
        """Add or replace a service's profile; returns its index (stable for the process)."""
        s = self.index.get(profile.name)
        if s is None:
            s = len(self.profiles)
            self.index[profile.name] = s
            self.profiles.append(profile)
            self.requests = np.append(self.requests, 0.0)
            self.dropped = np.append(self.dropped, 0.0)
            self.latency_sum_s = np.append(self.latency_sum_s, 0.0)
            self.bucket_counts = np.vstack([self.bucket_counts, np.zeros((1, len(BUCKETS_S) + 1))])
            self.ready_pods = np.append(self.ready_pods, 0)
        else:
            self.profiles[s] = profile
        self._arrays_for = -1
        return s

    def set_rps(self, s: int, rps: float) -> None:
        """Offer ``rps`` to service ``s`` from the next tick on."""
        self.profiles[s] = replace(self.profiles[s], rps=rps)
        self._arrays_for = -1

    def _service_arrays(self) -> None:
        if self._arrays_for == len(self.profiles):
            return
        ps = self.profiles
        self.svc_rps = np.array([p.rps for p in ps], dtype=np.float64)
        self.svc_base_ms = np.array([[p.base_ms(c) for c in NODE_CLASSES] for p in ps], dtype=np.float64)
        self.svc_cv = np.array([p.cv for p in ps], dtype=np.float64)
        self.svc_conc = np.array([p.concurrency for p in ps], dtype=np.float64)
        self.svc_qlimit = np.array([p.queue_limit for p in ps], dtype=np.float64)
        self.svc_origin = np.array([min(p.origin_region, self.ingress_rtt_ms.shape[0] - 1) for p in ps],
                                   dtype=np.int64)
        tables = [lat.service_time_table(round(p.cv, 3)) for p in ps]
        self.svc_z = np.array([t[0] for t in tables]).reshape(len(ps), -1)
        self.svc_zw = np.array([t[1] for t in tables]).reshape(len(ps), len(lat.RATIO_GRID), -1)
        self._arrays_for = len(ps)

    # one tick ---------------------------------------------------------------------------------

    def tick(self, dt: float, pods: PodTable, serving: npt.NDArray[np.bool_], throttle: FloatArray) -> None:
        """Serve ``dt`` seconds of traffic; ``serving``/``throttle`` per node (from the faults)."""
        n_svc = len(self.profiles)
        running = pods.live & serving[pods.node]
        ready = running & pods.ready
        if n_svc:
            self._service_arrays()
            self.ready_pods = np.bincount(pods.service[ready], minlength=n_svc)
            # a service without a Ready pod loses its arrivals (no endpoints)
            lost = self.rng.poisson(np.where(self.ready_pods == 0, self.svc_rps * dt, 0.0))
            self.dropped += lost
        idx = np.flatnonzero(ready) if n_svc else np.zeros(0, dtype=np.intp)
        arrivals, svc_ms = self._arrivals(dt, pods, idx, throttle)
        slots = pods.live.shape[0]
        load_ratio = np.zeros(slots)
        if idx.size:
            load_ratio[idx] = (pods.backlog[idx] + arrivals) * svc_ms / 1000.0 / (self.svc_conc[pods.service[idx]] * dt)
        wanted = np.where(running, cpu_share.wanted_cores(pods.cpu, pods.cpu_limit, load_ratio, IDLE_CPU_FRACTION),
                          0.0)
        granted = cpu_share.share_node(wanted, cpu_share.cfs_weight(pods.cpu), pods.node, self.node_cores)
        ceiling = cpu_share.ceiling_cores(wanted, granted, pods.cpu_limit, pods.node, self.node_cores)
        ratio = cpu_share.capacity_ratio(pods.cpu[idx], wanted[idx], granted[idx], ceiling[idx], IDLE_CPU_FRACTION)
        busy_share = np.zeros(slots)
        if idx.size:
            busy_share[idx] = self._serve(dt, pods, idx, arrivals, svc_ms, ratio)
        cpu_used = np.where(running, cpu_share.cores_for_load(pods.cpu, busy_share, IDLE_CPU_FRACTION), 0.0)
        pods.cpu_seconds += cpu_used * dt
        n = len(self.nodes)
        node_cores_used = np.bincount(pods.node[running], cpu_used[running], minlength=n)
        self.node_cpu_seconds += node_cores_used * dt
        node_cpu = node_cores_used / self.node_cores
        acc_used = pods.accelerators * np.minimum(busy_share, 1.0)
        node_acc = np.bincount(pods.node[running], acc_used[running], minlength=n) / self.node_acc
        self.node_utilization = np.clip(np.maximum(node_cpu, node_acc), 0.0, 1.0)
        self.node_power_w = np.where(serving, self.node_idle_w + (self.node_peak_w - self.node_idle_w)
                                     * self.node_utilization, 0.0)

    def _arrivals(self, dt: float, pods: PodTable, idx: npt.NDArray[np.intp], throttle: FloatArray
                  ) -> tuple[FloatArray, FloatArray]:
        """This tick's arrivals at each Ready pod ``idx`` and its nominal service time (ms)."""
        if not idx.size:
            return np.zeros(0), np.zeros(0)
        svc, node = pods.service[idx], pods.node[idx]
        lam = self.svc_rps[svc] / np.maximum(self.ready_pods[svc], 1)
        arrivals = self.rng.poisson(lam * dt).astype(np.float64)
        svc_ms = self.svc_base_ms[svc, self.node_class[node]] / (self.node_speed[node] * throttle[node])
        return arrivals, svc_ms

    def _serve(self, dt: float, pods: PodTable, idx: npt.NDArray[np.intp], arrivals: FloatArray,
               svc_ms: FloatArray, capacity_ratio: FloatArray) -> FloatArray:
        """Serve the Ready pods ``idx``, each with ``capacity_ratio`` × its concurrency in parallel
        (``cpu_share``); returns the work served over the nominal capacity (above 1 for a pod
        bursting past its request)."""
        svc, node = pods.service[idx], pods.node[idx]
        lam = self.svc_rps[svc] / np.maximum(self.ready_pods[svc], 1)
        conc = self.svc_conc[svc]
        servers = conc * capacity_ratio
        mu = servers * 1000.0 / svc_ms
        q0 = pods.backlog[idx]
        total = q0 + arrivals
        served = np.minimum(total, mu * dt)
        q1 = total - served
        overflow = np.ceil(np.maximum(q1 - self.svc_qlimit[svc] * conc, 0.0))
        q1 = np.maximum(q1 - overflow, 0.0)
        pods.backlog[idx] = q1
        dropped = np.minimum(overflow, arrivals)
        accepted = (arrivals - dropped).astype(np.int64)
        self.dropped += np.bincount(svc, dropped, minlength=len(self.profiles))

        pwait, wait_ms, fluid_ms = lat.queueing(lam, mu, servers, svc_ms, self.svc_cv[svc], (q0 + q1) / 2.0)
        offset = self.ingress_rtt_ms[self.svc_origin[svc], node] + fluid_ms
        ridx = lat.ratio_index(wait_ms / svc_ms).astype(np.int64)
        no_wait = offset[:, None] + svc_ms[:, None] * self.svc_z[svc]
        waited = offset[:, None] + svc_ms[:, None] * self.svc_zw[svc, ridx]
        lat_ms = np.concatenate([no_wait, waited], axis=1)
        probs = np.concatenate([(1.0 - pwait)[:, None] * lat.STRATUM_MASS, pwait[:, None] * lat.STRATUM_MASS], axis=1)
        probs /= probs.sum(axis=1, keepdims=True)
        some = accepted > 0
        if some.any():
            counts = self.rng.multinomial(accepted[some], probs[some]).astype(np.float64)
            lat_some = lat_ms[some]
            s_some = svc[some]
            nb = len(BUCKETS_S) + 1
            bucket = np.searchsorted(self.bounds_ms, lat_some, side="left")
            flat = (s_some[:, None] * nb + bucket).ravel()
            self.bucket_counts += np.bincount(flat, counts.ravel(), minlength=len(self.profiles) * nb).reshape(-1, nb)
            self.requests += np.bincount(s_some, accepted[some], minlength=len(self.profiles))
            self.latency_sum_s += np.bincount(s_some, (counts * lat_some).sum(axis=1) / 1000.0,
                                              minlength=len(self.profiles))
        busy: FloatArray = served * svc_ms / 1000.0 / (conc * dt)
        return busy


@dataclass(frozen=True, slots=True)
class TrafficSpec:
    """One service's load from a traffic file: requests per second and (optionally) its template."""

    rps: float
    template: str | None = None


def parse_traffic(data: object, source: str) -> dict[str, TrafficSpec]:
    """A traffic file's content: ``services: {NAME: RPS | {rps: RPS, template: TEMPLATE}}``."""
    if not isinstance(data, dict) or not isinstance(data.get("services"), dict):
        raise ValueError(f"{source}: expected a mapping with a 'services' mapping (service name → rps)")
    out: dict[str, TrafficSpec] = {}
    for name, value in data["services"].items():
        where = f"{source}: field 'services.{name}'"
        if isinstance(value, dict):
            unknown = set(value) - {"rps", "template"}
            if unknown:
                raise ValueError(f"{where}: unknown field(s) {', '.join(sorted(map(str, unknown)))}")
            rps, template = value.get("rps"), value.get("template")
        else:
            rps, template = value, None
        if isinstance(rps, bool) or not isinstance(rps, int | float) or rps < 0:
            raise ValueError(f"{where}: rps must be a number ≥ 0 (got {rps!r})")
        if template is not None and template not in TEMPLATES:
            raise ValueError(f"{where}: unknown template {template!r} (known: {', '.join(TEMPLATES)})")
        out[str(name)] = TrafficSpec(float(rps), template)
    return out
