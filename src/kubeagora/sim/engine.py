"""The time-stepped simulation engine: numpy arrays, one `step()` per simulated second.

State is arrays over services, nodes and replica slots. Each step: faults fire, the control plane
notices missing heartbeats, pods start and stop, the ReplicaSet logic reconciles replica counts,
arrivals are drawn and routed to Ready endpoints, fluid queues advance, and the latency strata of
every service go to the recorder (`kubeagora.sim.recorder`). `fork()` copies the dynamic state so
the digital twin can run "what if" from any moment.

The engine runs the scenario's true world (`CompiledScenario.world`: the declared service times, cold
starts, interference and node speeds × the scenario's model error), while `observe()` reports only what
a cluster reports: counters, latency percentiles, CPU, and capacity by the declared specs
(`kubeagora.model.ready_capacity_rps`, the operator's adapter uses it too).

Kubernetes behaviour is modelled where it shapes the results (all in `PlatformDefaults`): a node is
NotReady `node_monitor_grace_s` after its last heartbeat and its endpoints leave the Services then;
its pods are evicted `pod_eviction_s` later and only then recreated elsewhere; the scheduler retries
unschedulable pods with a back-off; a deleted pod leaves its endpoints at once and drains.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from kubeagora.controllers.placement import ClusterCapacity, PlacementRequest, choose_node
from kubeagora.model import (
    NODE_CLASSES,
    Action,
    BoolArray,
    FloatArray,
    IntArray,
    LiftQuarantine,
    Migrate,
    NodeClass,
    Observation,
    Place,
    QuarantineNode,
    Scale,
    SetConcurrency,
    ShedLoad,
    WorldParameters,
    ready_capacity_rps,
)
from kubeagora.sim import kernels
from kubeagora.sim import latency as lat
from kubeagora.sim.flow import serve_compiled, serve_numpy
from kubeagora.sim.recorder import Recorder
from kubeagora.sim.scenario import CompiledScenario, FaultEvent

FREE, STARTING, READY, TERMINATING = 0, 1, 2, 3
# trust.attestation.Verdict's codes (that module needs the cryptography package; the engine does not)
VERIFIED_CODE, REPLAYED_CODE, STALE_CODE, EXPIRED_CODE, FAILED_CODE = 1, 4, 5, 6, 7

INTERFERENCE = lat.INTERFERENCE  # re-exported: the coefficients live with the latency model


@dataclass(frozen=True, slots=True)
class PlatformDefaults:
    node_monitor_grace_s: float = 50.0
    """kube-controller-manager --node-monitor-grace-period (50 s since v1.32)."""
    pod_eviction_s: float = 300.0
    """DefaultTolerationSeconds for not-ready/unreachable taints (300 s)."""
    scheduler_retry_s: float = 10.0
    """Upper bound of the scheduler's unschedulable-pod back-off (podMaxBackoffSeconds 10 s)."""
    termination_grace_s: float = 30.0
    """terminationGracePeriodSeconds: a deleted pod drains its queue this long, then the rest is lost."""
    idle_cpu_fraction: float = 0.05
    """CPU an idle replica burns, as a share of its request."""
    buffer_timeout_s: float = 30.0
    """Requests held while a service has no endpoint (activator/ingress) time out after this."""
    control_plane_region: int = 0


@dataclass
class Counters:
    arrived: FloatArray
    served: FloatArray
    dropped: FloatArray
    lost: FloatArray
    busy_core_s: FloatArray


@dataclass
class Replicas:
    """Pod slots. A slot is FREE or holds one pod of one service bound to one node."""

    service: np.ndarray
    node: np.ndarray
    state: np.ndarray
    ready_at: FloatArray
    created_at: FloatArray
    backlog: FloatArray
    stop_at: FloatArray
    replaces: np.ndarray
    doomed: np.ndarray
    base_ms: FloatArray
    """Service time on this pod's node class at reference speed (1e9 for a free slot)."""
    net_ms: FloatArray
    """Network delay from the service's users to this pod's node."""
    accelerators: FloatArray
    """Accelerators the pod holds (0 on a CPU node)."""
    cpu_request: FloatArray
    """CPU the pod requests (0 for a free slot)."""

    @classmethod
    def empty(cls, capacity: int) -> Replicas:
        return cls(np.zeros(capacity, np.int64), np.zeros(capacity, np.int64), np.zeros(capacity, np.int8),
                   np.zeros(capacity), np.zeros(capacity), np.zeros(capacity), np.full(capacity, np.inf),
                   np.full(capacity, -1, np.int64), np.zeros(capacity, bool), np.full(capacity, 1e9),
                   np.zeros(capacity), np.zeros(capacity), np.zeros(capacity))

    def grow(self) -> None:
        n = self.state.shape[0]
        bigger = Replicas.empty(2 * n)
        for name in self.__dataclass_fields__:
            getattr(bigger, name)[:n] = getattr(self, name)
        self.__dict__.update(bigger.__dict__)


@dataclass
class EngineState:
    """Everything that changes during a run (what `fork()` copies)."""

    t: float
    rng: np.random.Generator
    replicas: Replicas
    desired: np.ndarray
    unscheduled: np.ndarray
    concurrency: np.ndarray
    shed: FloatArray
    buffer: FloatArray
    buffer_age_s: FloatArray
    node_alive: np.ndarray
    node_quarantined: np.ndarray
    node_last_heard: FloatArray
    node_speed: FloatArray
    node_peak_w: FloatArray
    node_util: FloatArray
    node_cpu_alloc: FloatArray
    node_mem_alloc: FloatArray
    node_acc_alloc: np.ndarray
    region_reachable: np.ndarray
    region_loss_bad: np.ndarray
    region_forced_loss: FloatArray
    downstream_pending: FloatArray
    counters: Counters
    node_attest_fail_p: FloatArray
    """Share of each node's attestations that fail (an attestation-failure fault; 0 where none)."""
    node_identity_expired: BoolArray
    node_replaying: BoolArray
    node_falsify: FloatArray
    """Falsified metrics: the node runs at this share of its speed and reports that share of its
    utilisation and its nominal speed (1 where honest)."""
    demand_claim: FloatArray
    """Inflated demand: the service's reported arrivals are this multiple of the real ones (1 where honest)."""
    claimed_extra: FloatArray
    """Arrivals reported beyond the real ones so far (what an inflated-demand fault adds to the counter)."""
    node_served: FloatArray
    """Requests served on each node so far (for the benchmarks: what a compromised node handled)."""
    node_service_ms: FloatArray
    """Traffic-weighted mean service time of the requests each node served in the last step, as the
    callers' side measures it (NaN where it served none)."""
    next_fault: int = 0
    pending_restores: list[tuple[float, FaultEvent]] = field(default_factory=list)
    next_schedule_retry: float = 0.0
    rates_block: FloatArray | None = None
    rates_block_t0: float = -1.0
    last_arrivals: FloatArray | None = None
    capacity_rps: FloatArray | None = None


def poisson_counts(rng: np.random.Generator, mean: FloatArray) -> FloatArray:
    """Poisson draws; above a mean of 25 the normal approximation (it ignores the skew of 1/√mean,
    ≤ 0.2) costs a fifth of numpy's exact sampler, which matters at thousands of services per step."""
    large = mean > 25.0
    if not large.any():
        return rng.poisson(mean).astype(float)
    out = np.rint(np.maximum(mean + np.sqrt(mean) * rng.standard_normal(mean.shape[0]), 0.0))
    small = ~large
    if small.any():
        out[small] = rng.poisson(mean[small])
    return out


class Engine:
    RATE_BLOCK = 256

    def __init__(self, scenario: CompiledScenario, seed: int | None = None,
                 platform: PlatformDefaults | None = None) -> None:
        self.scenario = scenario
        self.platform = platform or PlatformDefaults()
        self.dt = scenario.step_s
        sv, nodes, topo = scenario.services, scenario.nodes, scenario.topology
        n_s, n_n = len(sv), len(nodes)
        self.n_services, self.n_nodes = n_s, n_n
        cls_idx = {c: i for i, c in enumerate(NODE_CLASSES)}
        self.node_class = np.array([cls_idx[n.node_class] for n in nodes], dtype=np.int64)
        self.node_cores = np.array([n.cpu_cores for n in nodes])
        self.node_mem = np.array([n.memory_gib for n in nodes])
        self.node_acc = np.array([n.accelerators for n in nodes], dtype=np.int64)
        # the true world: the declared specs × the scenario's model error (the controllers see only the specs)
        world = scenario.world or WorldParameters.nominal(n_s, n_n)
        if (world.n_services, world.n_nodes) != (n_s, n_n):
            raise ValueError(f"the world's parameters are for {world.n_services} services and {world.n_nodes} "
                             f"nodes, the scenario has {n_s} and {n_n}")
        self.world = world
        self.node_speed_nominal = np.array([n.speed_factor for n in nodes])
        self.node_speed0 = self.node_speed_nominal * world.node_speed_factor
        self.node_idle_w = np.array([n.idle_power_w for n in nodes])
        self.node_peak_w0 = np.array([n.peak_power_w for n in nodes])
        region_idx = {r: i for i, r in enumerate(topo.regions)}
        self.node_region = np.array([region_idx[n.region] for n in nodes], dtype=np.int64)
        self.node_beta = np.array([INTERFERENCE[n.node_class] * world.interference_factor[self.node_class[j]]
                                   for j, n in enumerate(nodes)])
        self.node_is_acc = np.array([n.node_class in (NodeClass.GPU, NodeClass.TPU) for n in nodes])

        self.svc_time_ms = np.full((n_s, len(NODE_CLASSES)), np.nan)
        self.svc_cold_s = np.zeros((n_s, len(NODE_CLASSES)))
        for i, s in enumerate(sv):
            for c, k in cls_idx.items():
                if s.can_run_on(c):
                    self.svc_time_ms[i, k] = s.service_time_ms[c]
                self.svc_cold_s[i, k] = s.cold_start_on(c)
        self.svc_class_time_ms_nominal = self.svc_time_ms.copy()
        self.svc_time_ms = self.svc_time_ms * world.service_time_factor
        self.svc_cold_s = self.svc_cold_s * world.cold_start_factor
        self.svc_cpu = np.array([s.cpu_request for s in sv])
        self.svc_mem = np.array([s.memory_request_gib for s in sv])
        self.svc_acc = np.array([s.accelerator_request for s in sv], dtype=np.int64)
        self.svc_cv = np.array([s.service_time_cv for s in sv])
        self.svc_queue_limit = np.array([s.queue_limit for s in sv], dtype=float)
        self.svc_max = np.array([s.max_replicas for s in sv], dtype=np.int64)
        self.svc_concurrency = np.array([s.concurrency for s in sv], dtype=float)
        self.svc_origin = np.array([region_idx[s.origin_region] for s in sv])
        self.index_of_service = {s.name: i for i, s in enumerate(sv)}
        self.index_of_node = {n.name: i for i, n in enumerate(nodes)}
        # where each service may run: by node class and by region, then spread over the nodes (a services ×
        # nodes loop in Python took a minute at 10,000 services × 2,000 nodes, in every twin's engine)
        runs_on_class = ~np.isnan(self.svc_class_time_ms_nominal)  # a service time declared for the class
        allowed_in_region = np.array([[s.allowed_regions is None or r in s.allowed_regions for r in topo.regions]
                                      for s in sv], dtype=bool).reshape(n_s, -1)
        self.svc_feasible = runs_on_class[:, self.node_class] & allowed_in_region[:, self.node_region]
        # network delay (ms) from each service's users to each node, incl. a 1 KiB request's transmission
        self.net_ms = topo.ingress_rtt_ms[self.svc_origin] + 8.0 / topo.access_bandwidth_mbps[self.svc_origin]
        # latency knot tables (`lat.mixture_knot_table`), one per distinct cv, stacked; a service's rows start at
        # svc_knot_base
        cvs = sorted({round(float(cv), 3) for cv in self.svc_cv})
        self.knot_table = np.concatenate([lat.mixture_knot_table(cv) for cv in cvs]).astype(np.float32)
        self.svc_knot_base = np.array([cvs.index(round(float(cv), 3)) * lat.KNOT_TABLE_ROWS for cv in self.svc_cv],
                                      dtype=np.int64)
        self.svc_arange = np.arange(n_s)
        self.callers = np.array([a for a, _ in scenario.downstream], dtype=np.int64)
        self.callees = np.array([b for _, b in scenario.downstream], dtype=np.int64)

        rng = np.random.default_rng(scenario.seed if seed is None else seed)
        initial = np.array([max(s.min_replicas, 1) for s in sv], dtype=np.int64)
        if scenario.warm_start:
            initial = np.maximum(initial, self.warm_replicas(scenario.workload.rate_at(0.0)))
        self.state = EngineState(
            t=0.0, rng=rng, replicas=Replicas.empty(max(64, int(2 * initial.sum()))),
            desired=initial.copy(), unscheduled=np.zeros(n_s, np.int64),
            concurrency=np.array([s.concurrency for s in sv], dtype=np.int64), shed=np.zeros(n_s),
            buffer=np.zeros(n_s), buffer_age_s=np.zeros(n_s),
            node_alive=np.ones(n_n, bool), node_quarantined=np.zeros(n_n, bool), node_last_heard=np.zeros(n_n),
            node_speed=self.node_speed0.copy(), node_peak_w=self.node_peak_w0.copy(), node_util=np.zeros(n_n),
            node_cpu_alloc=np.zeros(n_n), node_mem_alloc=np.zeros(n_n), node_acc_alloc=np.zeros(n_n, np.int64),
            region_reachable=np.ones((len(topo.regions), len(topo.regions)), bool),
            region_loss_bad=np.zeros(len(topo.regions), bool), region_forced_loss=np.zeros(len(topo.regions)),
            downstream_pending=np.zeros(n_s),
            counters=Counters(*(np.zeros(n_s) for _ in range(5))),
            node_attest_fail_p=np.zeros(n_n), node_identity_expired=np.zeros(n_n, bool),
            node_replaying=np.zeros(n_n, bool), node_falsify=np.ones(n_n), demand_claim=np.ones(n_s),
            claimed_extra=np.zeros(n_s), node_served=np.zeros(n_n), node_service_ms=np.full(n_n, np.nan),
        )
        self.attestation_rng = np.random.default_rng((scenario.seed if seed is None else seed) + 7919)
        """Draws which intermittent attestations fail; apart from the main stream, so that enrolling the
        nodes does not change a run's arrivals."""
        self.zeros_s = np.zeros(n_s)
        self.network_whole = True
        """All nodes alive and all regions reachable: the common case skips per-pod reachability."""
        self.pods_changed = True
        self.compiled = kernels.ENABLED
        """The step's slot loops compiled (`kubeagora.sim.kernels`, numba installed) or in numpy: the same floats."""
        self.recorder = Recorder(self)
        self._reconcile(initial_ready=True)

    WARM_UTILISATION = 0.6

    def warm_replicas(self, rate_rps: FloatArray) -> IntArray:
        """Replicas that serve `rate_rps` at 60 % utilisation on the fastest class each service runs on:
        what a cluster that has been running would have when a scenario starts."""
        fastest_ms = np.nanmin(self.svc_time_ms, axis=1)
        per_replica_rps = self.svc_concurrency * 1000.0 / fastest_ms
        need = np.ceil(rate_rps / (self.WARM_UTILISATION * per_replica_rps))
        return np.asarray(np.clip(need, 1, self.svc_max), dtype=np.int64)

    # ------------------------------------------------------------------ forking (the twin)
    def fork(self) -> Engine:
        """A copy whose future is independent: static arrays shared, dynamic state copied."""
        twin = copy.copy(self)
        twin.state = copy.deepcopy(self.state)
        twin.recorder = self.recorder.fork(twin)
        return twin

    @classmethod
    def from_observation(cls, scenario: CompiledScenario, observation: Observation, seed: int | None = None,
                         platform: PlatformDefaults | None = None) -> Engine:
        """An engine whose time 0 is the observed moment: the observed pods on their nodes (Ready ones
        ready, the others starting with a full cold start ahead), desired replicas, concurrency, shedding,
        queues and node readiness, quarantine and speed. The scenario must list the observation's nodes
        and services in the same order (the twin builds it so)."""
        engine = cls(scenario, seed, platform)
        engine._adopt_observed_state(observation)
        return engine

    def _adopt_observed_state(self, obs: Observation) -> None:
        st, r = self.state, self.state.replicas
        for k in np.flatnonzero(r.state != FREE):
            self._release(int(k))
        st.node_alive = np.asarray(obs.node_ready, dtype=bool).copy()
        st.node_last_heard = -np.asarray(obs.node_heartbeat_age_s, dtype=float)
        st.node_quarantined = np.asarray(obs.node_quarantined, dtype=bool).copy()
        # the observation reports declared speed × throttle; this engine's world may know the machine better
        st.node_speed = np.asarray(obs.node_speed, dtype=float) * self.node_speed0 / self.node_speed_nominal
        self.network_whole = bool(st.node_alive.all())
        for s, n, ready in zip(obs.replica_service.tolist(), obs.replica_node.tolist(), obs.replica_ready.tolist(),
                               strict=True):
            self._bind(int(s), int(n), ready_now=bool(ready))
        r = st.replicas
        ready_pods = r.state == READY
        per_pod = obs.queue_length / np.maximum(np.bincount(r.service[ready_pods], minlength=self.n_services), 1)
        r.backlog[ready_pods] = per_pod[r.service[ready_pods]]
        st.desired = np.asarray(obs.desired_replicas, dtype=np.int64).copy()
        live = np.bincount(r.service[(r.state == STARTING) | ready_pods], minlength=self.n_services)
        st.unscheduled = np.maximum(st.desired - live, 0)
        st.concurrency = np.asarray(obs.concurrency, dtype=np.int64).copy()
        st.shed = np.asarray(obs.shed_fraction, dtype=float).copy()
        self._reconcile()

    # ------------------------------------------------------------------ placement and pods
    def node_schedulable(self) -> BoolArray:
        st = self.state
        schedulable: BoolArray = (st.t - st.node_last_heard < self.platform.node_monitor_grace_s) & ~st.node_quarantined
        return schedulable

    def _capacity(self) -> ClusterCapacity:
        st = self.state
        return ClusterCapacity(self.node_cores - st.node_cpu_alloc, self.node_mem - st.node_mem_alloc,
                               self.node_acc - st.node_acc_alloc, self.node_cores, self.node_mem,
                               self.node_schedulable())

    def _request(self, s: int) -> PlacementRequest:
        acc = np.where(self.node_is_acc, self.svc_acc[s], 0)
        return PlacementRequest(float(self.svc_cpu[s]), float(self.svc_mem[s]), acc, self.svc_feasible[s],
                                self.node_region == self.svc_origin[s])

    def _same_service_pods(self, s: int) -> FloatArray:
        r = self.state.replicas
        mine = (r.state != FREE) & (r.service == s)
        return np.bincount(r.node[mine], minlength=self.n_nodes).astype(float)

    def _bind(self, s: int, node: int, ready_now: bool = False) -> int:
        st, r = self.state, self.state.replicas
        free = np.flatnonzero(r.state == FREE)
        if free.size == 0:
            r.grow()
            free = np.flatnonzero(r.state == FREE)
        k = int(free[0])
        cold = self.svc_cold_s[s, self.node_class[node]]
        r.service[k], r.node[k], r.created_at[k], r.backlog[k] = s, node, st.t, 0.0
        r.state[k] = READY if ready_now else STARTING
        r.ready_at[k] = st.t if ready_now else st.t + cold
        r.stop_at[k], r.replaces[k], r.doomed[k] = np.inf, -1, False
        r.base_ms[k] = self.svc_time_ms[s, self.node_class[node]]
        r.net_ms[k] = self.net_ms[s, node]
        r.accelerators[k] = self.svc_acc[s] if self.node_is_acc[node] else 0
        r.cpu_request[k] = self.svc_cpu[s]
        self.pods_changed = True
        acc = int(self.svc_acc[s]) if self.node_is_acc[node] else 0
        st.node_cpu_alloc[node] += self.svc_cpu[s]
        st.node_mem_alloc[node] += self.svc_mem[s]
        st.node_acc_alloc[node] += acc
        return k

    def _release(self, k: int) -> None:
        st, r = self.state, self.state.replicas
        node, s = int(r.node[k]), int(r.service[k])
        st.node_cpu_alloc[node] -= self.svc_cpu[s]
        st.node_mem_alloc[node] -= self.svc_mem[s]
        st.node_acc_alloc[node] -= int(self.svc_acc[s]) if self.node_is_acc[node] else 0
        r.state[k] = FREE
        r.backlog[k] = 0.0
        r.base_ms[k] = 1e9
        r.accelerators[k] = 0.0
        r.cpu_request[k] = 0.0
        self._cancel_migration(k)
        # a migration whose source pod vanished first has nothing left to replace
        r.replaces[r.replaces == k] = -1
        r.doomed[k] = False
        self.pods_changed = True

    def _cancel_migration(self, k: int) -> None:
        """Pod k was the target of a migration and is going away: its source pod stays and counts again."""
        r = self.state.replicas
        if r.replaces[k] >= 0:
            r.doomed[r.replaces[k]] = False
            r.replaces[k] = -1

    def _terminate(self, k: int) -> None:
        r = self.state.replicas
        if r.state[k] in (FREE, TERMINATING):
            return
        self._cancel_migration(k)
        r.state[k] = TERMINATING
        r.stop_at[k] = self.state.t + self.platform.termination_grace_s
        self.pods_changed = True

    def _place(self, s: int, node: int | None = None, ready_now: bool = False) -> int | None:
        if node is None:
            node = choose_node(self._request(s), self._capacity(), self._same_service_pods(s))
            if node is None:
                return None
        return self._bind(s, node, ready_now)

    def _reconcile(self, initial_ready: bool = False) -> None:
        """The ReplicaSet controller: make the number of live pods of each service equal desired."""
        st, r = self.state, self.state.replicas
        self.pods_changed = False
        live = (r.state == STARTING) | (r.state == READY)
        counted = live & ~r.doomed
        have = np.bincount(r.service[counted], minlength=self.n_services) + st.unscheduled
        for s in np.flatnonzero(have != st.desired):
            diff = int(st.desired[s] - have[s])
            if diff > 0:
                for _ in range(diff):
                    if self._place(int(s), ready_now=initial_ready) is None:
                        st.unscheduled[s] += diff
                        break
                    diff -= 1
            else:
                remove = -diff
                take = min(remove, int(st.unscheduled[s]))
                st.unscheduled[s] -= take
                remove -= take
                if remove:
                    # recomputed: placing pods above may have grown the slot arrays
                    mine = np.flatnonzero(((r.state == STARTING) | (r.state == READY)) & ~r.doomed & (r.service == s))
                    # ReplicaSet ranking: not-ready before ready, then the newest first
                    order = np.lexsort((-r.created_at[mine], r.state[mine] == READY))
                    for k in mine[order[:remove]]:
                        self._terminate(int(k))

    def _retry_unscheduled(self) -> None:
        st = self.state
        for s in np.flatnonzero(st.unscheduled > 0):
            while st.unscheduled[s] > 0 and self._place(int(s)) is not None:
                st.unscheduled[s] -= 1

    # ------------------------------------------------------------------ actions
    def apply(self, actions: Sequence[Action]) -> list[str]:
        """Enact actions; returns why any action was refused (unknown names, impossible moves)."""
        st, refused = self.state, []
        for a in actions:
            if isinstance(a, LiftQuarantine):
                n = self.index_of_node.get(a.node)
                if n is None:
                    refused.append(f"{a}: unknown node")
                else:
                    st.node_quarantined[n] = False
                continue
            if isinstance(a, QuarantineNode):
                n = self.index_of_node.get(a.node)
                if n is None:
                    refused.append(f"{a}: unknown node")
                    continue
                if not st.node_quarantined[n]:
                    st.node_quarantined[n] = True
                    r = st.replicas
                    for k in np.flatnonzero((r.node == n) & ((r.state == READY) | (r.state == STARTING))):
                        self._terminate(int(k))
                continue
            s = self.index_of_service.get(a.service)
            if s is None:
                refused.append(f"{a}: unknown service")
                continue
            if isinstance(a, Scale):
                st.desired[s] = int(np.clip(a.replicas, 0, self.svc_max[s]))
            elif isinstance(a, SetConcurrency):
                st.concurrency[s] = max(1, int(a.concurrency))
            elif isinstance(a, ShedLoad):
                st.shed[s] = float(np.clip(a.fraction, 0.0, 1.0))
            elif isinstance(a, Place):
                n = self.index_of_node.get(a.node)
                if n is None or not self._fits(s, n):
                    refused.append(f"{a}: node unknown or the pod does not fit")
                    continue
                self._bind(s, n)
                st.desired[s] += 1
            elif isinstance(a, Migrate):
                src, dst = self.index_of_node.get(a.from_node), self.index_of_node.get(a.to_node)
                r = st.replicas
                cands = np.flatnonzero((r.service == s) & (r.node == src) & (r.state == READY) & ~r.doomed) \
                    if src is not None else np.array([], dtype=np.int64)
                if dst is None or cands.size == 0 or not self._fits(s, dst):
                    refused.append(f"{a}: no Ready replica on the source or the target does not fit")
                    continue
                k_new = self._bind(s, dst)
                r.replaces[k_new] = int(cands[0])
                r.doomed[int(cands[0])] = True
        self._reconcile()
        self.pods_changed = True  # a Scale that the loop above could not satisfy is retried next step
        return refused

    def _fits(self, s: int, n: int) -> bool:
        cap = self._capacity()
        req = self._request(s)
        return bool(req.feasible_nodes[n] and cap.schedulable[n] and cap.cpu_free[n] >= req.cpu - 1e-9
                    and cap.memory_free[n] >= req.memory_gib - 1e-9
                    and cap.accelerators_free[n] >= np.asarray(req.accelerators)[n])

    # ------------------------------------------------------------------ faults
    def _fire_faults(self) -> None:
        st = self.state
        faults = self.scenario.faults
        while st.next_fault < len(faults) and faults[st.next_fault].at_s <= st.t:
            f = faults[st.next_fault]
            st.next_fault += 1
            self._apply_fault(f, restore=False)
            self.recorder.fault_fired(f)
            if f.duration_s is not None:
                st.pending_restores.append((f.at_s + f.duration_s, f))
        due = [(t, f) for t, f in st.pending_restores if t <= st.t]
        if due:
            st.pending_restores = [(t, f) for t, f in st.pending_restores if t > st.t]
            for _, f in due:
                self._apply_fault(f, restore=True)

    def _apply_fault(self, f: FaultEvent, restore: bool) -> None:
        self._apply_fault_effect(f, restore)
        st = self.state
        self.network_whole = bool(st.node_alive.all() and st.region_reachable.all())
        self.pods_changed = True

    def _apply_fault_effect(self, f: FaultEvent, restore: bool) -> None:
        st, r = self.state, self.state.replicas
        nodes = np.asarray(f.nodes, dtype=np.int64)
        if f.kind in ("node-termination", "zone-outage"):
            st.node_alive[nodes] = restore
            if not restore:
                hit = np.isin(r.node, nodes) & (r.state != FREE)
                st.counters.lost += np.bincount(r.service[hit], r.backlog[hit], minlength=self.n_services)
                r.backlog[hit] = 0.0
        elif f.kind == "region-partition":
            reg = f.regions[0]
            others = np.arange(st.region_reachable.shape[0]) != reg
            st.region_reachable[reg, others] = restore
            st.region_reachable[others, reg] = restore
        elif f.kind == "gpu-throttle":
            if restore:
                st.node_speed[nodes] = self.node_speed0[nodes]
                st.node_peak_w[nodes] = self.node_peak_w0[nodes]
            else:
                st.node_speed[nodes] = self.node_speed0[nodes] * f.factor
                idle = self.node_idle_w[nodes]
                st.node_peak_w[nodes] = idle + (self.node_peak_w0[nodes] - idle) * f.factor
        elif f.kind == "packet-loss":
            st.region_forced_loss[list(f.regions)] = 0.0 if restore else f.factor
        elif f.kind == "attestation-failure":
            st.node_attest_fail_p[nodes] = 0.0 if restore else f.factor
        elif f.kind == "identity-expired":
            st.node_identity_expired[nodes] = not restore
        elif f.kind == "replayed-claims":
            st.node_replaying[nodes] = not restore
        elif f.kind == "falsified-metrics":
            factor = 1.0 if restore else f.factor
            st.node_speed[nodes] = st.node_speed[nodes] / st.node_falsify[nodes] * factor
            st.node_falsify[nodes] = factor
        elif f.kind == "inflated-demand":
            st.demand_claim[list(f.services)] = 1.0 if restore else f.factor
        elif f.kind == "pod-crash" and not restore:
            for s in f.services:
                for k in np.flatnonzero((r.service == s) & (r.state == READY)):
                    st.counters.lost[s] += r.backlog[k]
                    r.backlog[k] = 0.0
                    r.state[k] = STARTING
                    r.ready_at[k] = st.t + self.svc_cold_s[s, self.node_class[r.node[k]]]

    # ------------------------------------------------------------------ one step
    def _rates(self) -> FloatArray:
        st = self.state
        block_end = st.rates_block_t0 + self.RATE_BLOCK * self.dt - 1e-9
        if st.rates_block is None or not st.rates_block_t0 <= st.t < block_end:
            st.rates_block = self.scenario.workload.rates(st.t, self.RATE_BLOCK, self.dt)
            st.rates_block_t0 = st.t
        return np.asarray(st.rates_block[round((st.t - st.rates_block_t0) / self.dt)], dtype=np.float64)

    def step(self) -> None:
        st, r, p, dt = self.state, self.state.replicas, self.platform, self.dt
        c = st.counters
        self._fire_faults()

        # heartbeats: a node is heard while alive and reachable from the control plane's region
        heard = st.node_alive & st.region_reachable[p.control_plane_region, self.node_region]
        st.node_last_heard[heard] = st.t
        silence = st.t - st.node_last_heard
        if (silence >= p.node_monitor_grace_s + p.pod_eviction_s).any():
            evict = (r.state != FREE) & (silence[r.node] >= p.node_monitor_grace_s + p.pod_eviction_s)
            for k in np.flatnonzero(evict):
                c.lost[r.service[k]] += r.backlog[k]
                self._release(int(k))

        # pod lifecycle: Ready after the cold start (on a live node), drained pods go away
        starting_done = (r.state == STARTING) & (r.ready_at <= st.t) & st.node_alive[r.node]
        if starting_done.any():
            r.state[starting_done] = READY
            for k in np.flatnonzero(starting_done & (r.replaces >= 0)):
                self._terminate(int(r.replaces[k]))
                r.replaces[k] = -1
        terminating = r.state == TERMINATING
        if terminating.any():
            gone = terminating & ((r.backlog <= 1e-9) | (r.stop_at <= st.t))
            c.lost += np.bincount(r.service[gone], r.backlog[gone], minlength=self.n_services)
            for k in np.flatnonzero(gone):
                self._release(int(k))
        if self.pods_changed:
            self._reconcile()
        if st.t >= st.next_schedule_retry and st.unscheduled.any():
            self._retry_unscheduled()
            st.next_schedule_retry = st.t + p.scheduler_retry_s

        # arrivals (Poisson around the workload's rate, plus calls from upstream services)
        rate = self._rates()
        arrivals = poisson_counts(st.rng, rate * dt) + st.downstream_pending
        c.arrived += arrivals
        st.claimed_extra += arrivals * (st.demand_claim - 1.0)
        # what the ingress sees offered, shed or not: a controller that read the load after its own
        # shedding would under-provision and keep shedding
        st.last_arrivals = arrivals
        shed = arrivals * st.shed
        c.dropped += shed
        arrivals = arrivals - shed

        # routing: endpoints are Ready pods on nodes the control plane still thinks Ready
        svc, node = r.service, r.node
        if self.compiled:
            listed, ep_count = kernels.endpoints(r.state, svc, node, silence, p.node_monitor_grace_s,
                                                 st.node_quarantined, self.n_services)
        else:
            listed = (r.state == READY) & (silence[node] < p.node_monitor_grace_s) & ~st.node_quarantined[node]
            ep_count = np.bincount(svc[listed], minlength=self.n_services)
        has_ep = ep_count > 0
        if st.buffer.any() or not has_ep.all():
            released, released_wait_s, to_route = self._buffer(arrivals, has_ep)
        else:
            released = released_wait_s = self.zeros_s
            to_route = arrivals

        # service: fluid queues per replica, their CPU use and latency per replica group (`kubeagora.sim.flow`)
        expected_s = (rate + st.downstream_pending / dt) * (1.0 - st.shed)
        flow = (serve_compiled if self.compiled else serve_numpy)(self, listed, ep_count, to_route, expected_s)
        if flow.lost_s is not None:
            c.lost += flow.lost_s
        r.backlog = flow.backlog
        served_s = flow.served_s
        c.served += served_s
        served_n = flow.served_n
        st.node_served += served_n
        st.node_service_ms = np.where(served_n > 0, flow.served_x_ms_n / np.maximum(served_n, 1e-12), np.nan)
        if flow.overflow_s is not None:
            c.dropped += flow.overflow_s
        c.busy_core_s += flow.busy_core_s
        node_cpu = flow.cpu_n / self.node_cores
        node_accu = flow.accelerators_n / np.maximum(self.node_acc, 1)
        st.node_util = np.clip(np.maximum(node_cpu, node_accu), 0.0, 1.0)
        power_w = self.node_power_w()

        # packet loss (Gilbert–Elliott per region access network)
        topo = self.scenario.topology
        flip = st.rng.random(st.region_loss_bad.shape[0])
        st.region_loss_bad = np.where(st.region_loss_bad, flip >= topo.p_bad_to_good, flip < topo.p_good_to_bad)
        loss = np.maximum(np.where(st.region_loss_bad, topo.loss_bad, topo.loss_good), st.region_forced_loss)
        loss_s = loss[self.svc_origin]

        self.recorder.record_step(
            groups=flow.groups, served_s=served_s, loss=loss_s,
            released=released, released_wait_s=released_wait_s, arrivals=arrivals, rate=rate,
            power_w=power_w, slowdown_weighted=flow.slowdown_weighted,
        )

        # service-to-service calls arrive at the callees next step
        st.downstream_pending = np.zeros(self.n_services)
        if self.callers.size:
            np.add.at(st.downstream_pending, self.callees, served_s[self.callers])
        st.capacity_rps = flow.capacity_rps
        st.t += dt

    def _buffer(self, arrivals: FloatArray, has_ep: np.ndarray) -> tuple[FloatArray, FloatArray, FloatArray]:
        """Requests held while a service has no endpoint (an ingress or activator holds them), released
        when one appears, dropped on timeout. Returns (released, their mean wait s, requests to route)."""
        st, dt = self.state, self.dt
        st.buffer_age_s = np.where(st.buffer > 0, st.buffer_age_s + dt, 0.0)
        timeout = st.buffer_age_s > self.platform.buffer_timeout_s
        st.counters.dropped += np.where(timeout, st.buffer, 0.0)
        st.buffer[timeout] = 0.0
        new_buffer = np.where(has_ep, 0.0, arrivals)
        st.buffer_age_s = np.where(st.buffer + new_buffer > 0,
                                   st.buffer_age_s * st.buffer / np.maximum(st.buffer + new_buffer, 1e-12), 0.0)
        released = np.where(has_ep, st.buffer, 0.0)
        released_wait_s = np.where(has_ep, st.buffer_age_s, 0.0)
        st.buffer = np.where(has_ep, 0.0, st.buffer + new_buffer)
        return released, released_wait_s, np.where(has_ep, arrivals + released, 0.0)

    # ------------------------------------------------------------------ what a controller sees
    def observe(self) -> Observation:
        st, r, c, p = self.state, self.state.replicas, self.state.counters, self.platform
        sc = self.scenario
        live = (r.state == STARTING) | (r.state == READY)
        silence = st.t - st.node_last_heard
        node_ready = silence < p.node_monitor_grace_s
        ready = (r.state == READY) & node_ready[r.node]
        n_s = self.n_services
        carbon = self.recorder.carbon_g_per_kwh(st.t)
        p95, p99 = self.recorder.last_window_percentiles()
        # what a cluster reports of a node's speed: its declared speed under a known throttle (a GPU power cap);
        # a node falsifying its metrics hides its slowdown and most of its load
        observed_speed = self.node_speed_nominal * st.node_speed / self.node_speed0 / st.node_falsify
        claimed_rps = (st.last_arrivals if st.last_arrivals is not None else np.zeros(n_s)) * st.demand_claim / self.dt
        return Observation(
            time_s=st.t, nodes=sc.nodes, services=sc.services,
            arrived_total=c.arrived + st.claimed_extra, served_total=c.served.copy(),
            dropped_total=(c.dropped + c.lost).copy(), busy_core_seconds_total=c.busy_core_s.copy(),
            arrival_rps=claimed_rps,
            queue_length=np.bincount(r.service[live], r.backlog[live], minlength=n_s) + st.buffer,
            desired_replicas=st.desired.copy(),
            ready_replicas=np.bincount(r.service[ready], minlength=n_s),
            pending_replicas=np.bincount(r.service[live & ~ready], minlength=n_s) + st.unscheduled,
            concurrency=st.concurrency.copy(),
            p95_ms=p95.copy(), p99_ms=p99.copy(),
            capacity_rps=ready_capacity_rps(self.svc_class_time_ms_nominal, self.node_class, observed_speed,
                                            self.svc_concurrency, st.concurrency.astype(float), r.service[live],
                                            r.node[live], ready[live]),
            shed_fraction=st.shed.copy(),
            node_ready=node_ready, node_heartbeat_age_s=silence.copy(), node_quarantined=st.node_quarantined.copy(),
            node_cpu_allocated=st.node_cpu_alloc.copy(), node_memory_allocated_gib=st.node_mem_alloc.copy(),
            node_accelerators_allocated=st.node_acc_alloc.copy(),
            node_utilization=st.node_util * st.node_falsify,
            node_power_w=self.node_power_w(),
            node_speed=observed_speed,
            region_carbon_g_per_kwh={reg: float(carbon[i]) for i, reg in enumerate(sc.topology.regions)},
            regions=sc.topology.regions, ingress_rtt_ms=sc.topology.ingress_rtt_ms,
            replica_service=r.service[live].copy(), replica_node=r.node[live].copy(), replica_ready=ready[live].copy(),
            replica_started_s=r.created_at[live].copy(),
            replica_ready_s=np.where(r.state[live] == READY, r.ready_at[live], np.nan),
            node_attestation=self._attestation_verdicts(),
            node_service_ms=st.node_service_ms.copy(),
        )

    def _attestation_verdicts(self) -> IntArray | None:
        """Each node's attestation verdict now (``trust.attestation.Verdict`` codes); None when the scenario
        enrolls no node. The engine models the outcomes, not the cryptography."""
        if not self.scenario.attestation:
            return None
        st = self.state
        verdicts = np.full(self.n_nodes, VERIFIED_CODE, dtype=np.int64)
        verdicts[st.node_identity_expired] = EXPIRED_CODE
        verdicts[st.node_replaying] = REPLAYED_CODE
        failing = st.node_attest_fail_p > 0
        if failing.any():
            fails = failing & (self.attestation_rng.random(self.n_nodes) < st.node_attest_fail_p)
            verdicts[fails] = FAILED_CODE
        # a node the control plane does not hear publishes nothing new
        verdicts[st.t - st.node_last_heard >= self.platform.node_monitor_grace_s] = STALE_CODE
        return verdicts

    # ------------------------------------------------------------------ bookkeeping
    def node_power_w(self) -> FloatArray:
        """Wall power of each node now: idle + (peak − idle) × utilisation; a dead node draws nothing."""
        st = self.state
        return np.where(st.node_alive, self.node_idle_w + (st.node_peak_w - self.node_idle_w) * st.node_util, 0.0)

    def queued(self) -> FloatArray:
        r = self.state.replicas
        held = r.state != FREE
        return np.bincount(r.service[held], r.backlog[held], minlength=self.n_services) + self.state.buffer

    def pods(self) -> tuple[np.ndarray, np.ndarray]:
        """(all pods incl. pending, Ready pods) per service."""
        r = self.state.replicas
        live = (r.state == STARTING) | (r.state == READY)
        return (np.bincount(r.service[live], minlength=self.n_services) + self.state.unscheduled,
                np.bincount(r.service[r.state == READY], minlength=self.n_services))
