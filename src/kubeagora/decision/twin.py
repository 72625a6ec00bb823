"""Twin rollouts: the simulator engine seeded from an Observation, stepped under a forecast.

Because the twin starts from the `Observation` (not from a running engine), the same code checks a
move on a live cluster and in a simulation. `twin_from_observation` builds the scenario from what was
observed (nodes, services, the measured ingress RTTs) with a workload that follows the forecast, and
starts the engine from the observed pods. `evaluate` runs the candidate actions and the do-nothing
alternative side by side over a few seeds with common random numbers (both arms of a seed draw the
same arrivals), and rejects a candidate that raises a service's predicted p99, the predicted SLO
violations, or whose blast radius is past the policy's threshold.

The twin is a model, not the world: it knows the declared specs and, where the caller passes one, the
world its calibration estimated (`kubeagora.decision.calibration`), never the simulator's true one.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from kubeagora.decision.risk import blast_radius
from kubeagora.model import Action, FloatArray, Observation, WorldParameters
from kubeagora.sim import latency as lat
from kubeagora.sim.engine import Engine, PlatformDefaults
from kubeagora.sim.scenario import CompiledScenario
from kubeagora.sim.topology import Topology
from kubeagora.sim.workload import Workload

UNMEASURED_BANDWIDTH_MBPS = 1e6
"""The observation carries measured RTTs, not bandwidths: the transmission time of a request is taken
as part of the RTT the probes measured."""


@dataclass(frozen=True, slots=True)
class ForecastWorkload(Workload):
    """Arrival rates that follow a forecast [service, horizon step]; past its end the last value holds."""

    forecast_rps: FloatArray | None = None
    forecast_step_s: float = 1.0

    def rates(self, t0_s: float, n_steps: int, step_s: float = 1.0) -> FloatArray:
        assert self.forecast_rps is not None
        t = t0_s + step_s * np.arange(n_steps)
        column = np.clip(np.floor(t / self.forecast_step_s + 1e-9).astype(np.int64), 0,
                         self.forecast_rps.shape[1] - 1)
        return np.ascontiguousarray(self.forecast_rps[:, column].T, dtype=np.float64)


def scenario_from_observation(observation: Observation, forecast_rps: FloatArray, step_s: float = 1.0,
                              horizon_s: float | None = None, seed: int = 0,
                              world: WorldParameters | None = None) -> CompiledScenario:
    """The observed cluster as a scenario. The forecast is of each service's total arrivals (what
    `arrival_rps` measures, calls from upstream services included), so the call graph is not replayed.
    `world` is what the twin believes of the true parameters (its calibration's estimate); None = the
    declared specs."""
    forecast = np.asarray(forecast_rps, dtype=np.float64)
    n_s, n_n = len(observation.services), len(observation.nodes)
    if forecast.ndim != 2 or forecast.shape[0] != n_s or forecast.shape[1] == 0:
        raise ValueError(f"forecast_rps must have shape (services={n_s}, horizon ≥ 1), got {forecast.shape}")
    rtt = np.asarray(observation.ingress_rtt_ms, dtype=np.float64)
    if rtt.shape != (len(observation.regions), n_n):
        raise ValueError(f"ingress_rtt_ms must have shape (regions, nodes), got {rtt.shape}")
    topology = Topology(observation.nodes, observation.regions, rtt, np.zeros((n_n, n_n)),
                        np.full(rtt.shape, UNMEASURED_BANDWIDTH_MBPS))
    workload = ForecastWorkload(base_rps=forecast[:, 0].copy(), forecast_rps=forecast, forecast_step_s=step_s)
    duration = horizon_s if horizon_s is not None else forecast.shape[1] * step_s
    return CompiledScenario("twin", "observation", seed, duration, step_s, topology, observation.services,
                            workload, (), (), world=world)


def twin_from_observation(observation: Observation, forecast_rps: FloatArray, step_s: float = 1.0,
                          seed: int = 0, platform: PlatformDefaults | None = None,
                          world: WorldParameters | None = None) -> Engine:
    """An engine at the observed moment (its time 0) whose arrivals follow `forecast_rps[service, step]`,
    running the world the twin believes in (`world`, None = the declared specs)."""
    scenario = scenario_from_observation(observation, forecast_rps, step_s, seed=seed, world=world)
    return Engine.from_observation(scenario, observation, seed=seed, platform=platform)


@dataclass(frozen=True, slots=True)
class TwinPolicy:
    seeds: tuple[int, ...] = (0, 1, 2)
    """Seeds per arm; both arms of a seed see the same arrivals (common random numbers)."""
    step_s: float = 2.0
    """Twin time step (s): 2 s halves the cost of 1 s; cold starts (≥ 6 s) and the 10 s latency windows
    are still resolved."""
    max_p99_rise_slo_share: float = 0.10
    """Reject if any service's predicted p99 rises by more than this share of its p99 target."""
    max_violation_rise_pct: float = 0.5
    """Reject if the predicted SLO-violating share of requests rises by more than this (percentage points)."""
    max_blast_radius: float = 0.5
    """Reject an action set that touches more than this share of a service's (or the cluster's) capacity."""


@dataclass(frozen=True, slots=True)
class ArmOutcome:
    """What one arm (do nothing, or the candidate) is predicted to do over the horizon, mean over seeds."""

    p99_ms: tuple[float, ...]
    """Per service, over the horizon (NaN where nothing is served)."""
    worst_p99_slo_ratio: float
    """max over services of p99 / target."""
    slo_violation_pct: float
    """Share of arrivals served in a violating window or dropped/lost, as in the bench metric."""
    lost_requests: float
    arrived_requests: float


@dataclass(frozen=True, slots=True)
class TwinVerdict:
    accepted: bool
    reasons: tuple[str, ...]
    """Why it was rejected (empty when accepted)."""
    baseline: ArmOutcome
    candidate: ArmOutcome
    blast_radius: float
    horizon_s: float
    seeds: tuple[int, ...]
    refused_in_twin: tuple[str, ...] = ()
    """Actions the twin's engine could not enact (unknown target, does not fit)."""

    @property
    def improves(self) -> bool:
        return self.candidate.slo_violation_pct < self.baseline.slo_violation_pct


ArmRun = tuple[FloatArray, float, float, float]
"""(per-service latency histogram over the horizon, violating served, dropped + lost, arrived)."""


def _run_arm(twin: Engine, steps: int) -> ArmRun:
    """Step the twin; returns (per-service latency histogram, violating served, lost, arrived)."""
    rec = twin.recorder
    hist = np.zeros((twin.n_services, lat.BINS))
    for _ in range(steps):
        twin.step()
        if rec.pending_steps == 0:
            hist += rec.last_window_hist
    if rec.pending_steps:
        rec.close_window(twin.state.t)
        hist += rec.last_window_hist
    c = twin.state.counters
    return hist, rec.violating_served, float(c.dropped.sum() + c.lost.sum()), float(c.arrived.sum())


def _outcome(runs: list[ArmRun], slo_p99_ms: FloatArray) -> ArmOutcome:
    hist = sum((r[0] for r in runs), np.zeros_like(runs[0][0]))
    p99 = lat.percentiles(hist, (0.99,))[:, 0]
    ratio = p99 / slo_p99_ms
    violating = float(np.mean([r[1] for r in runs]))
    lost = float(np.mean([r[2] for r in runs]))
    arrived = float(np.mean([r[3] for r in runs]))
    worst = float(np.nanmax(ratio)) if np.isfinite(ratio).any() else 0.0
    return ArmOutcome(tuple(float(v) for v in p99), worst, 100.0 * (violating + lost) / max(arrived, 1.0), lost,
                      arrived)


class SharedBaseline:
    """The twin of one moment and its do-nothing arm, kept for every candidate screened from that moment.

    The do-nothing arm depends only on the observation, the forecast, the horizon, the policy, the
    platform and the world; with the same ones (the same objects), every candidate of a tick compares
    with the same baseline, so it is run once. Pass one to `evaluate` per tick (a new tick, a new one)."""

    def __init__(self) -> None:
        self._inputs: tuple[object, ...] = ()
        """The observation, forecast, platform and world (compared by identity)."""
        self._settings: tuple[float, TwinPolicy] | None = None
        """The horizon and the policy (compared by value)."""
        self._base: Engine | None = None
        self._runs: list[ArmRun] = []

    def get(self, inputs: tuple[object, ...], settings: tuple[float, TwinPolicy]) -> tuple[Engine, list[ArmRun]] | None:
        same = (self._base is not None and settings == self._settings and len(inputs) == len(self._inputs)
                and all(a is b for a, b in zip(inputs, self._inputs, strict=True)))
        return (self._base, self._runs) if same and self._base is not None else None

    def keep(self, inputs: tuple[object, ...], settings: tuple[float, TwinPolicy], base: Engine,
             runs: list[ArmRun]) -> None:
        self._inputs, self._settings, self._base, self._runs = inputs, settings, base, runs


def evaluate(observation: Observation, candidate_actions: Sequence[Action], forecast_rps: FloatArray,
             horizon_s: float, policy: TwinPolicy | None = None,
             platform: PlatformDefaults | None = None, world: WorldParameters | None = None,
             shared: SharedBaseline | None = None) -> TwinVerdict:
    """Run the candidate set and doing nothing over the horizon; accept the candidate unless it makes
    the tail worse or touches too much. `world`: the calibrated parameters (None = the declared specs).
    `shared`: where the twin and its do-nothing arm are kept for the next candidate of the same moment
    (the same verdicts, without running the baseline again)."""
    policy = policy or TwinPolicy()
    inputs, settings = (observation, forecast_rps, platform, world), (float(horizon_s), policy)
    kept = shared.get(inputs, settings) if shared is not None else None
    forecast = np.asarray(forecast_rps, dtype=np.float64)
    steps = max(1, round(horizon_s / policy.step_s))
    if kept is None:
        base = twin_from_observation(observation, forecast, policy.step_s, seed=policy.seeds[0], platform=platform,
                                     world=world)
        baseline_runs: list[ArmRun] = []
        for seed in policy.seeds:
            twin = base.fork()
            twin.state.rng = np.random.default_rng(seed)
            baseline_runs.append(_run_arm(twin, steps))
        if shared is not None:
            shared.keep(inputs, settings, base, baseline_runs)
    else:
        base, baseline_runs = kept
    candidate_runs: list[ArmRun] = []
    refused: list[str] = []
    for seed in policy.seeds:
        twin = base.fork()
        twin.state.rng = np.random.default_rng(seed)
        if candidate_actions:
            why = twin.apply(candidate_actions)
            if seed == policy.seeds[0]:
                refused.extend(why)
        candidate_runs.append(_run_arm(twin, steps))
    slo_p99 = np.array([s.slo_p99_ms for s in observation.services])
    baseline, candidate = _outcome(baseline_runs, slo_p99), _outcome(candidate_runs, slo_p99)
    blast = max((blast_radius(observation, a) for a in candidate_actions), default=0.0)

    reasons: list[str] = []
    for s, svc in enumerate(observation.services):
        before, after = baseline.p99_ms[s], candidate.p99_ms[s]
        if math.isnan(after):
            continue
        rise = after - (before if not math.isnan(before) else 0.0)
        if rise > policy.max_p99_rise_slo_share * svc.slo_p99_ms:
            reasons.append(f"{svc.name}: predicted p99 rises {before:.0f} → {after:.0f} ms "
                           f"(limit +{policy.max_p99_rise_slo_share * svc.slo_p99_ms:.0f} ms)")
    rise_pct = candidate.slo_violation_pct - baseline.slo_violation_pct
    if rise_pct > policy.max_violation_rise_pct:
        reasons.append(f"predicted SLO violations rise {baseline.slo_violation_pct:.2f} → "
                       f"{candidate.slo_violation_pct:.2f} % (limit +{policy.max_violation_rise_pct:g} points)")
    if blast > policy.max_blast_radius:
        reasons.append(f"blast radius {blast:.0%} is over {policy.max_blast_radius:.0%}")
    return TwinVerdict(not reasons, tuple(reasons), baseline, candidate, blast, horizon_s, policy.seeds,
                       tuple(refused))
