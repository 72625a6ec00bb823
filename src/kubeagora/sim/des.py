"""Exact per-request discrete-event simulation: the reference the fast engine is checked against.

For small scenarios (tens of services, up to about a million requests) every request is simulated:

- arrivals: Poisson, non-homogeneous with the workload's rate held constant within each second
  (the same `Workload.rates` the engine draws its per-second counts from);
- routing: kube-proxy style, each request picks one Ready endpoint of its service uniformly at random
  (what the engine's equal split assumes on average);
- each replica has `concurrency` servers, FCFS, and sheds a request that finds
  `queue_limit × concurrency` requests already waiting (the engine's fluid overflow threshold);
- service time: lognormal with the service's mean and cv on the node's class, divided by the node's
  speed and multiplied by the interference slowdown 1 + β·u², where u is the node's utilisation in
  the previous second, computed as the engine does (CPU: requests × (idle share + busy share), and
  accelerator busy share; the larger of the two), from the replicas' actual busy server-seconds;
- network: the round trip `engine.net_ms[service, node]`; a request that meets a lost packet (the
  same per-region Gilbert–Elliott loss process, one state per second) waits one 200 ms retransmission
  timeout more.

Everything that is not per request is taken from an `Engine` built on the same scenario (or handed
in, placed as the caller wants): topology, service parameters, rates and the replica placement at
t = 0. The replica plan is fixed (the services' `min_replicas`, see `with_replica_plan`), so there is
no pod lifecycle; faults and service-to-service calls are not modelled here and are refused.

What is exogenous to the queues can be replayed from an engine run (`Exogenous`): the arrival count
of each service in each second and the packet-loss state of each region in each second. Compared
with the engine on the same draws, the two differ only in what they model (the queues and the
latency), not in the weather: a loss burst is rare and decides a window on its own.

A request's latency is recorded when it completes, in the 10-second window of its completion, as
the engine's recorder does, into the recorder's log-binned histograms; the window's p95/p99 verdicts
and the run's percentiles use the recorder's estimator (log-linear inside a bin), so both sides
measure the same thing. Exact order statistics are kept beside them. Same seed, same result.
"""

from __future__ import annotations

import dataclasses
import heapq
import time
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from kubeagora.model import Action, FloatArray, Observation, Scale, Service
from kubeagora.sim import latency as lat
from kubeagora.sim.engine import READY, Engine, PlatformDefaults
from kubeagora.sim.recorder import METRIC_KEYS, WINDOW_S, window_shares_above
from kubeagora.sim.scenario import CompiledScenario

# event kinds, in the order they are handled when they fall on the same instant
_SECOND, _DEPARTURE, _ARRIVAL = 0, 1, 2


def with_replica_plan(scenario: CompiledScenario, replicas: Mapping[str, int]) -> CompiledScenario:
    """The scenario with each named service's `min_replicas` set to its planned count.

    The engine places `min_replicas` pods of every service at t = 0, Ready at once (no warm start), so
    both the engine and the DES start from the same placement and `StaticController`/`FixedPlanController` hold it.
    """
    def planned(s: Service) -> Service:
        count = int(replicas[s.name])
        return dataclasses.replace(s, min_replicas=count, max_replicas=max(s.max_replicas, count))

    services = tuple(planned(s) if s.name in replicas else s for s in scenario.services)
    return dataclasses.replace(scenario, services=services, warm_start=False)


class FixedPlanController:
    """Holds a fixed replica count per service: scales back to the plan if anything moved it."""

    name = "fixed-plan"
    interval_s = 15.0

    def __init__(self, replicas: Mapping[str, int]) -> None:
        self.replicas = dict(replicas)

    def initial_state(self, observation: Observation) -> None:
        return None

    def decide(self, observation: Observation, state: None) -> tuple[Sequence[Action], None]:
        actions: list[Action] = []
        for i, s in enumerate(observation.services):
            want = self.replicas.get(s.name)
            if want is not None and int(observation.desired_replicas[i]) != want:
                actions.append(Scale(s.name, want, reason="fixed replica plan"))
        return actions, None


@dataclass(frozen=True)
class Exogenous:
    """What is outside the queues, per second: replayed so that two simulations see the same draws."""

    arrivals: FloatArray
    """[second, service] requests arriving (whole numbers)."""
    loss_bad: np.ndarray
    """[second, region] True while the region's access network is in its lossy state."""


@dataclass(frozen=True)
class DesResult:
    metrics: dict[str, Any]
    """The engine's metric keys; those the DES does not model (energy, recovery, ...) are None.
    Percentiles and SLO verdicts by the recorder's histogram estimator."""
    service_p95_ms: FloatArray
    service_p99_ms: FloatArray
    """Over the whole run, per service (NaN where nothing was served), by the histogram estimator."""
    window_hist: FloatArray
    """[service, window, bin] latency histogram of the requests completed in each 10-second window."""
    window_violated: np.ndarray
    """[service, window] the window's p95 or p99 above target (histogram estimator)."""
    window_violated_exact: np.ndarray
    """[service, window] the same verdict from exact order statistics (numpy's linear interpolation)."""
    exact_metrics: dict[str, float]
    """p50/p95/p99 and slo_violation_pct from exact order statistics."""
    latency_ms: FloatArray
    """Every completed request's latency, in completion order of its arrival index."""
    arrived: int
    served: int
    dropped: int
    replica_utilisation: FloatArray
    """Mean busy share of each replica's servers over the run."""
    wall_s: float


class RequestSimulator:
    """One run of the per-request simulation of a compiled scenario with a fixed replica plan."""

    def __init__(self, scenario: CompiledScenario, seed: int | None = None,
                 platform: PlatformDefaults | None = None, exogenous: Exogenous | None = None,
                 engine: Engine | None = None) -> None:
        """`engine`: a fresh engine of this scenario whose t = 0 placement to use (default: built here)."""
        if scenario.faults:
            raise ValueError(f"{scenario.name}: the per-request simulation does not model faults")
        if scenario.downstream:
            raise ValueError(f"{scenario.name}: the per-request simulation does not model "
                             "service-to-service calls")
        self.scenario = scenario
        self.seed = scenario.seed if seed is None else seed
        eng = engine if engine is not None else Engine(scenario, seed=self.seed, platform=platform)
        self.engine = eng
        self.exogenous = exogenous
        r = eng.state.replicas
        placed = np.flatnonzero(r.state == READY)
        order = np.lexsort((placed, r.service[placed]))
        placed = placed[order]
        self.replica_service = r.service[placed].astype(np.int64)
        self.replica_node = r.node[placed].astype(np.int64)
        self.n_replicas = int(placed.size)
        self.n_seconds = int(np.ceil(scenario.duration_s))
        self.duration_s = float(scenario.duration_s)
        n_s = eng.n_services
        self.replicas_per_service = np.bincount(self.replica_service, minlength=n_s)
        self.first_replica = np.concatenate([[0], np.cumsum(self.replicas_per_service)[:-1]]).astype(np.int64)
        conc = eng.state.concurrency[self.replica_service].astype(np.int64)
        self.replica_servers = conc
        self.replica_queue_limit = (eng.svc_queue_limit[self.replica_service] * conc).astype(np.int64)
        cls = eng.node_class[self.replica_node]
        self.replica_mean_ms = eng.svc_time_ms[self.replica_service, cls] / eng.node_speed0[self.replica_node]
        self.replica_net_ms = eng.net_ms[self.replica_service, self.replica_node]

    # ------------------------------------------------------------------ setup (vectorised)
    def _draw_arrivals(self, rng: np.random.Generator) -> None:
        eng = self.engine
        dt = self.scenario.step_s
        steps = round(self.duration_s / dt)
        if self.exogenous is not None:
            counts = np.rint(self.exogenous.arrivals[:steps]).astype(np.int64)
        else:
            counts = rng.poisson(self.scenario.workload.rates(0.0, steps, dt) * dt)
        counts[:, self.replicas_per_service == 0] = 0  # nowhere to go: held and timed out in the engine
        step_of = np.repeat(np.arange(steps), counts.sum(axis=1))
        service = np.concatenate([np.repeat(np.arange(eng.n_services), row) for row in counts]) \
            if counts.size else np.zeros(0, np.int64)
        arrival_s = (step_of + rng.random(step_of.size)) * dt
        order = np.argsort(arrival_s, kind="stable")
        arrival_s, service = arrival_s[order], service[order].astype(np.int64)
        pick = np.floor(rng.random(arrival_s.size) * self.replicas_per_service[service]).astype(np.int64)
        replica = self.first_replica[service] + pick
        sigma = np.sqrt(np.log1p(eng.svc_cv[service] ** 2))
        size = rng.lognormal(-sigma * sigma / 2.0, sigma)
        loss = self._loss_probability(rng)[np.minimum(arrival_s.astype(np.int64), self.n_seconds - 1),
                                           eng.svc_origin[service]]
        lost_packet = rng.random(arrival_s.size) < loss
        self.arrival_s = arrival_s
        self.request_service = service
        # the hot loop reads Python lists (indexing numpy scalars one by one is several times slower)
        self._arrival_s: list[float] = arrival_s.tolist()
        self._replica: list[int] = replica.tolist()
        self._size: list[float] = size.tolist()
        self._extra_ms: list[float] = (self.replica_net_ms[replica] + lat.RTO_MS * lost_packet).tolist()

    def _loss_probability(self, rng: np.random.Generator) -> FloatArray:
        """[second, region] packet-loss probability: the engine's Gilbert–Elliott chain per region."""
        topo = self.scenario.topology
        n_regions = len(topo.regions)
        if self.exogenous is not None:
            return np.where(self.exogenous.loss_bad[: self.n_seconds], topo.loss_bad, topo.loss_good)
        flips = rng.random((self.n_seconds, n_regions))
        bad = np.zeros(n_regions, bool)
        out = np.empty((self.n_seconds, n_regions))
        for k in range(self.n_seconds):
            bad = np.where(bad, flips[k] >= topo.p_bad_to_good, flips[k] < topo.p_good_to_bad)
            out[k] = np.where(bad, topo.loss_bad, topo.loss_good)
        return out

    # ------------------------------------------------------------------ the run
    def run(self) -> DesResult:
        started = time.perf_counter()
        rng = np.random.default_rng([self.seed, 0x0DE5])
        self._draw_arrivals(rng)
        n_req, n_rep = len(self._arrival_s), self.n_replicas
        self._latency_ms = [float("nan")] * n_req
        self._done_s = [float("nan")] * n_req
        self._busy_servers = [0] * n_rep
        self._waiting: list[deque[int]] = [deque() for _ in range(n_rep)]
        self._servers: list[int] = self.replica_servers.tolist()
        self._queue_limit: list[int] = self.replica_queue_limit.tolist()
        self._mean_ms: list[float] = self.replica_mean_ms.tolist()
        self._rep_node: list[int] = self.replica_node.tolist()
        self._slowdown: list[float] = [1.0] * self.engine.n_nodes
        # busy server-seconds of replica k in second s at [s * n_rep + k] (two spare seconds at the end)
        self._busy_s = [0.0] * ((self.n_seconds + 2) * n_rep)
        self._dropped = 0
        self._events: list[tuple[float, int, int, int, int]] = []
        self._seq = 0
        self._push(0.0, _SECOND, 0, 0)
        if n_req:
            self._push(self._arrival_s[0], _ARRIVAL, 0, 0)
        while self._events:
            t, kind, _, a, b = heapq.heappop(self._events)
            if t >= self.duration_s:
                break
            if kind == _ARRIVAL:
                self._on_arrival(t, a)
            elif kind == _DEPARTURE:
                self._on_departure(t, a, b)
            else:
                self._on_second(a)
        return self._result(time.perf_counter() - started)

    def _push(self, t: float, kind: int, a: int, b: int) -> None:
        self._seq += 1
        heapq.heappush(self._events, (t, kind, self._seq, a, b))

    # ------------------------------------------------------------------ events
    def _on_second(self, second: int) -> None:
        """Second boundary: interference for the coming second from the utilisation of the last one."""
        if second > 0:
            n_rep = self.n_replicas
            busy = np.array(self._busy_s[(second - 1) * n_rep: second * n_rep])
            self._slowdown = self._node_slowdown(busy).tolist()
        if second + 1 < self.n_seconds:
            self._push(float(second + 1), _SECOND, second + 1, 0)

    def _on_arrival(self, t: float, request: int) -> None:
        if request + 1 < len(self._arrival_s):
            self._push(self._arrival_s[request + 1], _ARRIVAL, request + 1, 0)
        replica = self._replica[request]
        if self._busy_servers[replica] < self._servers[replica]:
            self._start_service(t, replica, request)
        elif len(self._waiting[replica]) >= self._queue_limit[replica]:
            self._dropped += 1
        else:
            self._waiting[replica].append(request)

    def _on_departure(self, t: float, replica: int, request: int) -> None:
        self._latency_ms[request] = (t - self._arrival_s[request]) * 1000.0 + self._extra_ms[request]
        self._done_s[request] = t
        self._busy_servers[replica] -= 1
        if self._waiting[replica]:
            self._start_service(t, replica, self._waiting[replica].popleft())

    def _start_service(self, t: float, replica: int, request: int) -> None:
        node = self._rep_node[replica]
        service_s = self._mean_ms[replica] * self._slowdown[node] * self._size[request] / 1000.0
        self._busy_servers[replica] += 1
        end = t + service_s
        self._push(end, _DEPARTURE, replica, request)
        # busy server-seconds per second (the utilisation that drives interference)
        n_rep, busy = self.n_replicas, self._busy_s
        second = int(t)
        last = min(int(end), self.n_seconds + 1)
        while second < last:
            busy[second * n_rep + replica] += second + 1 - t
            t = float(second + 1)
            second += 1
        if second <= self.n_seconds + 1:
            busy[second * n_rep + replica] += end - t

    def _node_slowdown(self, busy_server_s: FloatArray) -> FloatArray:
        """1 + β·u² per node, u as the engine computes it from the replicas' busy share."""
        eng, p = self.engine, self.engine.platform
        svc, node = self.replica_service, self.replica_node
        servers = self.replica_servers
        busy_share = np.minimum(busy_server_s / self.scenario.step_s, servers) / servers
        cpu_used = eng.svc_cpu[svc] * (p.idle_cpu_fraction + (1 - p.idle_cpu_fraction) * busy_share)
        node_cpu = np.bincount(node, cpu_used, minlength=eng.n_nodes) / eng.node_cores
        acc_used = np.where(eng.node_is_acc[node], eng.svc_acc[svc] * busy_share, 0.0)
        node_acc = np.bincount(node, acc_used, minlength=eng.n_nodes) / np.maximum(eng.node_acc, 1)
        util = np.clip(np.maximum(node_cpu, node_acc), 0.0, 1.0)
        return lat.interference_slowdown(eng.node_beta, util)

    # ------------------------------------------------------------------ metrics
    def _result(self, wall_s: float) -> DesResult:
        eng = self.engine
        n_s = eng.n_services
        latency = np.array(self._latency_ms)
        done_s = np.array(self._done_s)
        served_mask = np.isfinite(latency)
        lat_ms, svc, done = latency[served_mask], self.request_service[served_mask], done_s[served_mask]
        arrived, served, dropped = len(self._arrival_s), int(served_mask.sum()), self._dropped
        window = np.floor(done / WINDOW_S + 1e-9).astype(np.int64)
        n_w = int(np.ceil(self.duration_s / WINDOW_S - 1e-9))
        window = np.minimum(window, n_w - 1)
        slo95 = np.array([s.slo_p95_ms for s in eng.scenario.services])
        slo99 = np.array([s.slo_p99_ms for s in eng.scenario.services])
        cell = svc * n_w + window
        bins = lat.bin_index(lat_ms).astype(np.int64)
        window_hist = np.bincount(cell * lat.BINS + bins, minlength=n_s * n_w * lat.BINS).astype(np.float64)
        window_hist = window_hist.reshape(n_s, n_w, lat.BINS)
        in_window = window_hist.sum(axis=2)
        share95, share99 = window_shares_above(window_hist, lat.mass_below_weights(slo95),
                                               lat.mass_below_weights(slo99))
        violated = (in_window > 0) & ((share95 > 0.05) | (share99 > 0.01))
        violated_exact = np.zeros((n_s, n_w), bool)
        order = np.argsort(cell, kind="stable")
        bounds = np.flatnonzero(np.diff(cell[order])) + 1
        for group in np.split(order, bounds):
            if group.size:
                s, w = divmod(int(cell[group[0]]), n_w)
                p95, p99 = np.percentile(lat_ms[group], (95.0, 99.0))
                violated_exact[s, w] = p95 > slo95[s] or p99 > slo99[s]
        service_hist = window_hist.sum(axis=1)
        pct = lat.percentiles(service_hist, (0.95, 0.99))
        p95_s, p99_s = pct[:, 0], pct[:, 1]
        metrics: dict[str, Any] = dict.fromkeys(METRIC_KEYS)
        exact: dict[str, float] = {}
        if served:
            p50, p95, p99 = lat.percentiles(service_hist.sum(axis=0), (0.5, 0.95, 0.99))
            metrics.update(p50_ms=round(float(p50), 4), p95_ms=round(float(p95), 4), p99_ms=round(float(p99), 4))
            e50, e95, e99 = np.percentile(lat_ms, (50.0, 95.0, 99.0))
            exact.update(p50_ms=float(e50), p95_ms=float(e95), p99_ms=float(e99))
        violating = float(in_window[violated].sum())
        metrics["slo_violation_pct"] = round(100.0 * (violating + dropped) / max(arrived, 1), 4)
        exact["slo_violation_pct"] = 100.0 * (float(in_window[violated_exact].sum()) + dropped) / max(arrived, 1)
        metrics["throughput_rps"] = round(served / self.duration_s, 3)
        metrics["lost_per_million"] = round(1e6 * dropped / max(arrived, 1), 2)
        n_sec, n_rep = self.n_seconds, self.n_replicas
        busy = np.array(self._busy_s[: n_sec * n_rep]).reshape(n_sec, n_rep)
        utilisation = busy.sum(axis=0) / (self.duration_s * self.replica_servers)
        return DesResult(metrics, p95_s, p99_s, window_hist, violated, violated_exact, exact, latency, arrived,
                         served, dropped, utilisation, wall_s)


def simulate_requests(scenario: CompiledScenario, seed: int | None = None,
                      platform: PlatformDefaults | None = None, exogenous: Exogenous | None = None,
                      engine: Engine | None = None) -> DesResult:
    """Run the per-request simulation of `scenario` (its services' `min_replicas` is the replica plan)."""
    return RequestSimulator(scenario, seed, platform, exogenous, engine).run()
