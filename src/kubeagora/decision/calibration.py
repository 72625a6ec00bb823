"""Online calibration: what the world is really like, estimated from what a cluster reports.

The declared specs (a service's service time and cold start per node class, the platform's
interference coefficients β) are a model, and the world strays from them (`kubeagora.model.world`).
This module estimates, per service and node class, from the Observation alone:

- **service time and interference.** Over each interval between updates, the CPU a service burnt
  (`busy_core_seconds_total`, less the idle share of its pods) per request served is its mean service
  time at native parallelism. With even routing over its Ready replicas, that mean is

      m = Σ_c θ_c · x_c + φ_c · y_c,   x_c = mean over replicas on class c of t_c / speed,
                                       y_c = the same × β_c · u²  (u: the node's utilisation),

  where t_c is the declared service time, θ_c = true / declared service time (the nodes' true speed
  folded in) and φ_c = θ_c × the class's true / declared β. That is linear in (θ, φ), so each service
  keeps a Gaussian belief over its 2 × classes coefficients and updates it by a Kalman (recursive least
  squares) step on the normalised measurement m / (Σ x + y): prior N(1, σ₀²) per coefficient, a
  measurement noise of `measurement_noise` plus the sampling noise of a mean over n requests, and a
  small random-walk drift so the belief keeps following a world that changes. A class's interference
  factor is the precision-weighted mean of φ/θ over the services that run on it, shrunk to 1 by its prior.
- **node speed.** A node's CPU (or accelerator) utilisation is what its pods burn: each pod its idle
  share, each Ready one also its share of its service's offered load (even routing) × its service time ×
  the node's slowness v = declared / true speed. Given the service-time belief, that is a monotone
  function of v alone (a replica's busy share saturates at 1), solved for v by bisection and folded into
  a per-node normal belief; a node whose replicas are all saturated only says v is at least that much.
  The service-time terms above are taken at the estimated node speeds, so θ is the service's own part.
- **cold start.** Every pod that turned Ready since the last update is one sample of its service's
  start on its node class (Ready time − creation time: a Pod's Ready condition's lastTransitionTime
  minus its creationTimestamp on a cluster); the log of true / declared is a conjugate normal update.

Every estimate carries its standard deviation, so a controller can plan on an upper quantile and the
risk score can take a pessimistic view of a service the calibration knows little about. Pure functions
over a frozen state: `initial_state(obs)`, `observe(state, obs) -> state`, then the readings.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from kubeagora.controllers.latency_prediction import IDLE_CPU_FRACTION
from kubeagora.controllers.policy_parts import busy_slots
from kubeagora.model import NODE_CLASSES, FloatArray, IntArray, NodeClass, Observation, WorldParameters
from kubeagora.model.observation import class_service_time_ms
from kubeagora.model.spec_tables import per_specs, spec_column
from kubeagora.sim.latency import INTERFERENCE

N_CLASSES = len(NODE_CLASSES)
NOMINAL_BETA: FloatArray = np.array([INTERFERENCE[c] for c in NODE_CLASSES])
FACTOR_BOUNDS = (0.2, 5.0)
"""Estimates are kept within these multiples of the declared values."""


@dataclass(frozen=True, slots=True)
class CalibrationSettings:
    prior_sd: float = 0.4
    """Prior standard deviation of θ and φ around 1 (the declared values): a declared service time is
    trusted to within about ±40 % until measured."""
    measurement_noise: float = 0.04
    """Relative error of one interval's CPU per request beyond sampling noise (uneven routing, pods
    starting or draining, the utilisation moving within the interval)."""
    drift_sd: float = 0.01
    """Random-walk step of θ and φ per update: the floor the uncertainty settles at, so a changed world
    (replicas moved to other nodes) is followed within tens of updates."""
    min_served: float = 30.0
    """An interval with fewer requests served than this says too little about the service time."""
    max_innovation_sds: float = 3.0
    """A measurement further than this many standard deviations from the prediction is clipped there
    (a pod crash or a burst of starts must not throw the belief)."""
    idle_cpu_fraction: float = IDLE_CPU_FRACTION
    """CPU an idle pod burns, as a share of its request (the platform's baseline, the simulator's
    `PlatformDefaults.idle_cpu_fraction`; measure it once per platform on a cluster)."""
    node_measurement_noise: float = 0.1
    """Standard deviation of one reading of a node's slowness (its utilisation is a one-second gauge)."""
    min_node_busy_share: float = 0.005
    """A node whose pods' predicted busy CPU (or accelerators) is below this share of it says too little."""
    cold_start_prior_log_sd: float = 0.4
    cold_start_sample_log_sd: float = 0.1
    """How much one pod's start varies around its service's and class's typical start (log scale)."""
    max_cold_start_log_ratio: float = 1.6
    """A sample more than e^1.6 ≈ 5× off the declared start is clipped (a restarted container keeps its
    pod's creation time, so its 'start' looks as long as the pod's life)."""


@dataclass(frozen=True, slots=True)
class CalibrationState:
    time_s: float
    arrived_total: FloatArray
    served_total: FloatArray
    busy_core_seconds_total: FloatArray
    mean: FloatArray
    """[service, 2 × classes]: θ per class, then φ per class."""
    cov: FloatArray
    """[service, 2 × classes, 2 × classes]."""
    service_updates: IntArray
    """[service] intervals that went into the service-time belief."""
    node_slowness: FloatArray
    """[node] mean of v = declared / true speed (1 = as declared, 1.5 = a third slower)."""
    node_slowness_var: FloatArray
    node_updates: IntArray
    cold_log_mean: FloatArray
    """[service, class] mean of log(true / declared cold start)."""
    cold_log_var: FloatArray
    cold_samples: IntArray
    """[service, class] pods whose start was measured."""
    cold_counted: frozenset[tuple[int, int, float]] = frozenset()
    """(service, node, creation time) of the Ready pods already measured, so each counts once."""


@dataclass(frozen=True, slots=True)
class Regressors:
    """Per service, the terms of the service-time model at the current placement (see the module doc)."""

    x: FloatArray
    """[service, class] mean over Ready replicas of declared service time / speed (ms), by class."""
    y: FloatArray
    """[service, class] the same × β · u²."""
    has_ready: np.ndarray
    """[service] whether it has a Ready replica."""

    def design(self) -> FloatArray:
        return np.asarray(np.concatenate([self.x, self.y], axis=1), dtype=np.float64)


def initial_state(obs: Observation, settings: CalibrationSettings | None = None) -> CalibrationState:
    cfg = settings or CalibrationSettings()
    n_s, n_n, d = len(obs.services), len(obs.nodes), 2 * N_CLASSES
    return CalibrationState(
        obs.time_s, obs.arrived_total.copy(), obs.served_total.copy(), obs.busy_core_seconds_total.copy(),
        np.ones((n_s, d)), np.broadcast_to(np.eye(d) * cfg.prior_sd**2, (n_s, d, d)).copy(),
        np.zeros(n_s, dtype=np.int64), np.ones(n_n), np.full(n_n, cfg.prior_sd**2), np.zeros(n_n, dtype=np.int64),
        np.zeros((n_s, N_CLASSES)),
        np.full((n_s, N_CLASSES), cfg.cold_start_prior_log_sd**2), np.zeros((n_s, N_CLASSES), dtype=np.int64))


def _node_class_index(obs: Observation) -> IntArray:
    return per_specs("calibration.node_class_index", (obs.nodes,), lambda: np.array(
        [NODE_CLASSES.index(n.node_class) for n in obs.nodes], dtype=np.int64))


def regressors(obs: Observation, node_slowness: FloatArray, utilisation_sq: FloatArray | None = None,
               ) -> Regressors:
    """The model's terms at the observed placement and the believed node slowness; `utilisation_sq[node]`
    defaults to the current u²."""
    n_s = len(obs.services)
    cls = _node_class_index(obs)
    declared = class_service_time_ms(obs.services, NODE_CLASSES)
    u_sq = np.clip(obs.node_utilization, 0.0, 1.0) ** 2 if utilisation_sq is None else utilisation_sq
    ready = obs.replica_ready
    svc, node = obs.replica_service[ready], obs.replica_node[ready]
    count = np.bincount(svc, minlength=n_s).astype(np.float64)
    per_replica = np.nan_to_num(declared[svc, cls[node]]) * node_slowness[node] / np.maximum(obs.node_speed[node],
                                                                                              1e-9)
    share = per_replica / np.maximum(count[svc], 1.0)
    x = np.zeros((n_s, N_CLASSES))
    y = np.zeros((n_s, N_CLASSES))
    np.add.at(x, (svc, cls[node]), share)
    np.add.at(y, (svc, cls[node]), share * NOMINAL_BETA[cls[node]] * u_sq[node])
    return Regressors(x, y, count > 0)


def observe(state: CalibrationState, obs: Observation, settings: CalibrationSettings | None = None,
            ) -> CalibrationState:
    """Fold in what happened since the last update: one service-time measurement per service that served
    enough, and one cold-start sample per pod that turned Ready."""
    cfg = settings or CalibrationSettings()
    dt = obs.time_s - state.time_s
    if dt <= 0:
        return state
    # the utilisation gauge is the latest second's: it reflects the end of the interval, as the rates over
    # the interval do where the load moves slowly
    u_sq = np.clip(obs.node_utilization, 0, 1) ** 2
    slowness, slowness_var, node_updates = _update_node_slowness(state, obs, dt, u_sq, cfg)
    mean, cov, updates = _update_service_times(state, obs, dt, slowness, u_sq, cfg)
    cold_mean, cold_var, cold_n, counted = _update_cold_starts(state, obs, cfg)
    return CalibrationState(obs.time_s, obs.arrived_total.copy(), obs.served_total.copy(),
                            obs.busy_core_seconds_total.copy(), mean, cov, updates,
                            slowness, slowness_var, node_updates, cold_mean, cold_var, cold_n, counted)


def _replica_work_ms(state: CalibrationState, obs: Observation, u_sq: FloatArray,
                     rows: np.ndarray) -> FloatArray:
    """Per listed replica row: its service time (ms) at the believed θ and φ, before the node's slowness."""
    cls = _node_class_index(obs)
    svc, node = obs.replica_service[rows], obs.replica_node[rows]
    c = cls[node]
    declared = np.nan_to_num(class_service_time_ms(obs.services, NODE_CLASSES)[svc, c])
    terms = state.mean[svc, c] + state.mean[svc, N_CLASSES + c] * NOMINAL_BETA[c] * u_sq[node]
    return np.asarray(declared / np.maximum(obs.node_speed[node], 1e-9) * terms, dtype=np.float64)


def _update_node_slowness(state: CalibrationState, obs: Observation, dt: float, u_sq: FloatArray,
                          cfg: CalibrationSettings) -> tuple[FloatArray, FloatArray, IntArray]:
    services, nodes = obs.services, obs.nodes
    n_s, n_n = len(services), len(nodes)
    v, var, updates = state.node_slowness.copy(), state.node_slowness_var.copy(), state.node_updates.copy()
    if v.shape[0] != n_n:
        return v, var, updates
    offered = np.maximum(obs.arrived_total - state.arrived_total, 0.0) / dt * (1.0 - obs.shed_fraction)
    ready = obs.replica_ready & obs.node_ready[obs.replica_node]
    rows = np.flatnonzero(ready)
    svc, node = obs.replica_service[rows], obs.replica_node[rows]
    count = np.bincount(svc, minlength=n_s).astype(np.float64)
    slots = np.minimum(obs.concurrency.astype(np.float64), [float(s.concurrency) for s in services])
    # busy share per unit of slowness: the replica's share of its service's load × its service time
    per_v = offered[svc] / np.maximum(count[svc], 1.0) * _replica_work_ms(state, obs, u_sq, rows) / (
        1000.0 * slots[svc])
    cpu_request = np.array([s.cpu_request for s in services])
    cores = np.array([n.cpu_cores for n in nodes])
    is_acc = np.array([n.node_class in (NodeClass.GPU, NodeClass.TPU) and n.accelerators > 0 for n in nodes])
    acc_total = np.maximum(np.array([float(n.accelerators) for n in nodes]), 1.0)
    acc_of = np.array([float(s.accelerator_request) for s in services])[svc] * is_acc[node]
    live_up = obs.node_ready[obs.replica_node]
    idle_share = np.bincount(obs.replica_node[live_up], cpu_request[obs.replica_service[live_up]],
                             minlength=n_n) * cfg.idle_cpu_fraction / cores
    cpu_weight = cpu_request[svc] * (1.0 - cfg.idle_cpu_fraction) / cores[node]
    acc_weight = acc_of / acc_total[node]

    def share(weight: FloatArray, slowness: FloatArray) -> FloatArray:
        return np.asarray(np.bincount(node, weight * np.minimum(per_v * slowness[node], 1.0), minlength=n_n),
                          dtype=np.float64)

    cpu_now, acc_now = idle_share + share(cpu_weight, v), share(acc_weight, v)
    use_acc = acc_now > cpu_now
    weight = np.where(use_acc[node], acc_weight, cpu_weight)
    floor = np.where(use_acc, 0.0, idle_share)
    observed = np.clip(obs.node_utilization, 0, 1) - floor
    low, high = np.full(n_n, FACTOR_BOUNDS[0]), np.full(n_n, FACTOR_BOUNDS[1])
    top = share(weight, high)
    signal = share(weight, np.ones(n_n))
    usable = obs.node_ready & (signal >= cfg.min_node_busy_share) & (observed > 0)
    for _ in range(30):  # f(v) is monotone in v: bisect every node at once
        mid = (low + high) / 2.0
        below = share(weight, mid) < observed
        low, high = np.where(below, mid, low), np.where(below, high, mid)
    solved = (low + high) / 2.0
    # every replica on the node saturated: the reading only says "at least this slow"
    saturated = observed >= top - 1e-6
    plateau = np.full(n_n, FACTOR_BOUNDS[0])
    np.maximum.at(plateau, node, 1.0 / np.maximum(per_v, 1e-12))
    z = np.where(saturated, np.minimum(plateau, FACTOR_BOUNDS[1]), solved)
    usable &= ~saturated | (z > v)
    if not usable.any():
        return v, var, updates
    var = np.where(usable, var + cfg.drift_sd**2, var)
    noise = (cfg.node_measurement_noise * np.maximum(z, v)) ** 2
    gain = var / (var + noise)
    v = np.where(usable, np.clip(v + gain * (z - v), *FACTOR_BOUNDS), v)
    var = np.where(usable, (1.0 - gain) * var, var)
    updates[usable] += 1
    return v, var, updates


def _update_service_times(state: CalibrationState, obs: Observation, dt: float, node_slowness: FloatArray,
                          u_sq: FloatArray, cfg: CalibrationSettings) -> tuple[FloatArray, FloatArray, IntArray]:
    services = obs.services
    served = obs.served_total - state.served_total
    cpu_s = obs.busy_core_seconds_total - state.busy_core_seconds_total
    # requests in service × the interval = request-seconds of service (terminating pods are not listed:
    # their idle share is a small bias)
    busy_slot_s = busy_slots(obs, cpu_s / dt, cfg.idle_cpu_fraction) * dt
    measured_ms = busy_slot_s * 1000.0 / np.maximum(served, 1e-9)

    reg = regressors(obs, node_slowness, u_sq)
    h = reg.design()
    scale = h.sum(axis=1)
    # no CPU above the pods' idle share: nothing was measured (a source without a CPU counter)
    usable = (served >= cfg.min_served) & reg.has_ready & (scale > 0) & (busy_slot_s > 0) & np.isfinite(measured_ms)
    mean, cov = state.mean.copy(), state.cov.copy()
    if not usable.any():
        return mean, cov, state.service_updates
    idx = np.flatnonzero(usable)
    hn = h[idx] / scale[idx, None]
    z = measured_ms[idx] / scale[idx]
    cv = np.array([services[i].service_time_cv for i in idx])
    noise_var = cfg.measurement_noise**2 + cv**2 / served[idx]
    active = hn > 0
    m, p = mean[idx], cov[idx]
    p = p + np.einsum("si,ij->sij", active * cfg.drift_sd**2, np.eye(hn.shape[1]))
    predicted = np.einsum("si,si->s", hn, m)
    ph = np.einsum("sij,sj->si", p, hn)
    innovation_var = np.einsum("si,si->s", hn, ph) + noise_var
    bound = cfg.max_innovation_sds * np.sqrt(innovation_var)
    innovation = np.clip(z - predicted, -bound, bound)
    gain = ph / innovation_var[:, None]
    m = np.clip(m + gain * innovation[:, None], *FACTOR_BOUNDS)
    p = p - np.einsum("si,sj->sij", gain, ph)
    mean[idx], cov[idx] = m, (p + np.transpose(p, (0, 2, 1))) / 2.0
    updates = state.service_updates.copy()
    updates[idx] += 1
    return mean, cov, updates


def _update_cold_starts(state: CalibrationState, obs: Observation, cfg: CalibrationSettings,
                        ) -> tuple[FloatArray, FloatArray, IntArray, frozenset[tuple[int, int, float]]]:
    mean, var, n = state.cold_log_mean.copy(), state.cold_log_var.copy(), state.cold_samples.copy()
    if obs.replica_started_s is None or obs.replica_ready_s is None:
        return mean, var, n, state.cold_counted
    started, ready_at = obs.replica_started_s, obs.replica_ready_s
    # a pod Ready at its creation (a warm start, or one the twin adopted) measured no start
    started_up = obs.replica_ready & np.isfinite(ready_at) & (ready_at > started)
    keys = {int(k): (int(obs.replica_service[k]), int(obs.replica_node[k]), float(started[k]))
            for k in np.flatnonzero(started_up)}
    cls = _node_class_index(obs)
    tau2 = cfg.cold_start_sample_log_sd**2
    for k, key in keys.items():
        if key in state.cold_counted:
            continue
        s, c = key[0], int(cls[key[1]])
        declared = obs.services[s].cold_start_on(NODE_CLASSES[c])
        if declared <= 0:
            continue
        sample = float(np.clip(np.log((ready_at[k] - started[k]) / declared),
                               -cfg.max_cold_start_log_ratio, cfg.max_cold_start_log_ratio))
        precision = 1.0 / var[s, c] + 1.0 / tau2
        mean[s, c] = (mean[s, c] / var[s, c] + sample / tau2) / precision
        var[s, c] = 1.0 / precision
        n[s, c] += 1
    return mean, var, n, frozenset(keys.values())


# ---------------------------------------------------------------------------------------------- readings
def service_time_factor(state: CalibrationState) -> FloatArray:
    """[service, class] estimated true / declared service time (θ)."""
    return np.asarray(state.mean[:, :N_CLASSES], dtype=np.float64)


def service_time_factor_sd(state: CalibrationState) -> FloatArray:
    return np.sqrt(np.diagonal(state.cov, axis1=1, axis2=2)[:, :N_CLASSES])


def interference_factor(state: CalibrationState, settings: CalibrationSettings | None = None) -> FloatArray:
    """[class] estimated true / declared β: φ/θ pooled over the services, weighted by how well each is
    known (delta method), together with the prior (1 ± prior_sd)."""
    cfg = settings or CalibrationSettings()
    theta, phi = state.mean[:, :N_CLASSES], state.mean[:, N_CLASSES:]
    var_theta = np.diagonal(state.cov, axis1=1, axis2=2)[:, :N_CLASSES]
    var_phi = np.diagonal(state.cov, axis1=1, axis2=2)[:, N_CLASSES:]
    cov_tp = np.diagonal(state.cov[:, :N_CLASSES, N_CLASSES:], axis1=1, axis2=2).reshape(theta.shape)
    ratio = phi / theta
    var_ratio = np.maximum((var_phi - 2 * ratio * cov_tp + ratio**2 * var_theta) / theta**2, 1e-9)
    # a coefficient its service never measured is the prior itself: it would count the prior twice
    measured = var_phi < cfg.prior_sd**2 * 0.999
    weight = np.where(measured, 1.0 / var_ratio, 0.0)
    prior_weight = 1.0 / cfg.prior_sd**2
    pooled = (weight * ratio).sum(axis=0) + prior_weight
    return np.asarray(np.clip(pooled / (weight.sum(axis=0) + prior_weight), *FACTOR_BOUNDS), dtype=np.float64)


def cold_start_factor(state: CalibrationState) -> FloatArray:
    """[service, class] estimated true / declared cold start (the posterior median)."""
    return np.asarray(np.exp(state.cold_log_mean), dtype=np.float64)


def node_speed_factor(state: CalibrationState) -> FloatArray:
    """[node] estimated true / declared speed."""
    return np.asarray(1.0 / state.node_slowness, dtype=np.float64)


def world(state: CalibrationState, settings: CalibrationSettings | None = None) -> WorldParameters:
    """The world the calibration believes in, for the twin (run it from the raw observation: the node
    speeds it reports are the declared ones, which this world corrects)."""
    return WorldParameters(service_time_factor(state).copy(), cold_start_factor(state).copy(),
                           interference_factor(state, settings), node_speed_factor(state))


def replica_service_ms(state: CalibrationState, obs: Observation) -> FloatArray:
    """Per replica row of the observation: its estimated mean service time (ms) where it runs now, node
    slowness and interference at the current utilisation included."""
    rows = np.arange(obs.replica_service.shape[0])
    u_sq = np.clip(obs.node_utilization, 0.0, 1.0) ** 2
    return np.asarray(_replica_work_ms(state, obs, u_sq, rows) * state.node_slowness[obs.replica_node],
                      dtype=np.float64)


def slowest_replica_ms(state: CalibrationState, obs: Observation) -> FloatArray:
    """Per service: the estimated service time of its slowest Ready replica (NaN without one). With even
    routing every replica gets the same share, so the slowest one saturates first."""
    out = np.full(len(obs.services), np.nan)
    ready = np.flatnonzero(obs.replica_ready)
    if ready.size:
        per_replica = replica_service_ms(state, obs)[ready]
        out_valid = np.full(len(obs.services), -np.inf)
        np.maximum.at(out_valid, obs.replica_service[ready], per_replica)
        out = np.where(np.isfinite(out_valid), out_valid, np.nan)
    return out


def service_time_ms(state: CalibrationState, obs: Observation, upper_sds: float = 0.0) -> tuple[FloatArray, FloatArray]:
    """Per service: (mean service time over its Ready replicas where they run now, at the calibrated θ and
    φ, + `upper_sds` × its standard deviation; that standard deviation) in ms. A service without a Ready
    replica gets its fastest runnable class at its own speed, without interference."""
    reg = regressors(obs, state.node_slowness)
    h = reg.design()
    mean_ms = np.einsum("si,si->s", h, state.mean)
    # before a service is measured, the slowness of the nodes it runs on is as uncertain as its own terms;
    # once it is, its measurement (taken on those nodes) has fixed their product, and its own terms carry it
    ready = obs.replica_ready
    svc, node = obs.replica_service[ready], obs.replica_node[ready]
    count = np.maximum(np.bincount(svc, minlength=len(obs.services)), 1)
    node_rel_var = np.bincount(svc, state.node_slowness_var[node] / state.node_slowness[node] ** 2,
                               minlength=len(obs.services)) / count
    node_rel_var = np.where(state.service_updates > 0, 0.0, node_rel_var)
    sd_ms = np.sqrt(np.maximum(np.einsum("si,sij,sj->s", h, state.cov, h), 0.0) + mean_ms**2 * node_rel_var)
    declared = class_service_time_ms(obs.services, NODE_CLASSES)
    estimated = np.where(np.isnan(declared), np.inf, declared * service_time_factor(state))
    best = np.argmin(estimated, axis=1)
    rows = np.arange(len(obs.services))
    fallback = estimated[rows, best]
    fallback_sd = declared[rows, best] * service_time_factor_sd(state)[rows, best]
    mean_ms = np.where(reg.has_ready, mean_ms, fallback)
    sd_ms = np.where(reg.has_ready, sd_ms, np.nan_to_num(fallback_sd))
    return np.asarray(mean_ms + upper_sds * sd_ms, dtype=np.float64), np.asarray(sd_ms, dtype=np.float64)


def relative_uncertainty(state: CalibrationState, obs: Observation) -> FloatArray:
    """Per service: the standard deviation of its estimated service time over its mean (0.4 = a service
    known to ±40 %)."""
    mean_ms, sd_ms = service_time_ms(state, obs)
    return np.asarray(np.where(np.isfinite(mean_ms) & (mean_ms > 0), sd_ms / np.maximum(mean_ms, 1e-9), 0.0),
                      dtype=np.float64)


def cold_start_s(state: CalibrationState, obs: Observation) -> FloatArray:
    """[service, node] estimated cold start of a new pod of the service on that node."""
    cls = _node_class_index(obs)
    declared = per_specs("calibration.declared_cold_start_s", (obs.services,), lambda: np.array(
        [[s.cold_start_on(NODE_CLASSES[c]) for c in range(N_CLASSES)] for s in obs.services]))
    return np.asarray((declared * cold_start_factor(state))[:, cls], dtype=np.float64)


def calibrated_observation(obs: Observation, state: CalibrationState) -> Observation:
    """The observation as the calibration believes the world to be: `capacity_rps` summed over the Ready
    replicas at their estimated service times (node speed and interference included) and `node_speed` the
    estimated true speeds. A controller's belief, not a reading: hand it to the agents, not to the twin."""
    native = spec_column(obs.services, "concurrency")
    slots = np.minimum(obs.concurrency.astype(np.float64), native)
    ready = np.flatnonzero(obs.replica_ready)
    svc = obs.replica_service[ready]
    per_replica_rps = slots[svc] * 1000.0 / np.maximum(replica_service_ms(state, obs)[ready], 1e-9)
    capacity = np.bincount(svc, per_replica_rps, minlength=len(obs.services))
    return replace(obs, capacity_rps=np.asarray(capacity, dtype=np.float64),
                   node_speed=np.asarray(obs.node_speed / state.node_slowness, dtype=np.float64))
