"""The `mpc` controller: forecast arrivals, plan replicas with the MPC, scale; the scheduler places.

Every 15 s (the HPA's sync period, so the two are compared at the same cadence):

1. the arrival rate of each service over the last interval, from the `arrived_total` counters
   (calls from upstream services included), goes into the forecaster (`decision.forecast`);
2. the demand to provision for is the forecaster's upper quantile (mean + k·σ) over the horizon, never
   below the rate just measured (over the interval, and in the last second), plus the backlog in the
   queues drained over `backlog_drain_s`;
3. each service's safe capacity per replica comes from the latency model at the speed, interference
   and network its replicas see now (`decision.capacity`), with the service time its online calibration
   estimates (`decision.calibration`, planned at the estimate + `planning_upper_sds` standard deviations);
4. the MPC (`decision.mpc`) chooses replica set-points over the horizon, knowing that new replicas
   serve only after their cold start and that the CPU and accelerator pools of each region are finite;
5. the first step's set-points (optionally corrected by a bounded learned residual) become `Scale`
   actions; kube-scheduler's default placement puts the pods.

A step is drafted, then committed (`draft`, `commit`): the draft is everything the MPC knew and chose
before any learned correction (`MpcDraft`), which is what a learned residual reads (`kubeagora.learn`);
`decide` is the two with the residual between them.

Only the Observation is read: no scenario, no future, no true world. The controller starts from the
declared specs (service times and cold starts per node class, the platform's interference coefficients
β, `sim.latency.INTERFERENCE`) and calibrates them from the CPU, requests and pod starts it observes.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from kubeagora.controllers.policy_parts import (
    SampleHistory,
    TimedRecords,
    mean_service_time_s,
    replica_bounds,
    scale_actions,
    service_time_matrix_ms,
)
from kubeagora.decision import calibration as cal
from kubeagora.decision import forecast as fc
from kubeagora.decision.capacity import SafeCapacitySettings, safe_replica_capacity_rps
from kubeagora.decision.mpc import (
    SECONDS_PER_HOUR,
    Mpc,
    MpcInputs,
    MpcPlan,
    MpcSettings,
    ResourcePools,
    bound_residual,
    make_mpc,
    pending_ready_by_step,
    resource_pools,
)
from kubeagora.model import Action, FloatArray, IntArray, Observation
from kubeagora.model.spec_tables import per_specs, spec_column
from kubeagora.sim.latency import INTERFERENCE, interference_slowdown


@dataclass(frozen=True, slots=True)
class MpcControllerSettings:
    interval_s: float = 15.0
    horizon_steps: int = 8
    forecast: fc.ForecastSettings = field(default_factory=lambda: fc.ForecastSettings(
        ewma_alpha=0.6, level_alpha=0.6, trend_beta=0.2, trend_damping_phi=0.8, history_steps=1024,
        redetect_every_steps=40, residual_window_steps=20, upper_k=2.0))
    """At 15-second samples: a ring of 4¼ hours, seasons re-detected every 10 minutes; the trend is
    damped hard (φ = 0.8, it fades within a minute or two) so a burst's ramp is not extrapolated."""
    capacity: SafeCapacitySettings = field(default_factory=SafeCapacitySettings)
    backlog_drain_s: float = 30.0
    """Queued requests are planned to be served within this long, on top of the arrivals."""
    price_per_core_hour: float = 0.04
    """Typical on-demand cloud price of a vCPU-hour (USD)."""
    price_per_accelerator_hour: float = 2.5
    """Typical on-demand price of a datacenter GPU-hour (USD)."""
    electricity_per_kwh: float = 0.15
    carbon_price_per_tonne: float = 80.0
    """Carbon price (USD per tonne CO₂) applied to the region's grid intensity."""
    change_cost_steps: float = 4.0
    """Starting or stopping a replica costs as much as running it for this many steps: a scale-down has
    to pay for itself within a minute, which keeps noise from flapping the replica count."""
    shortfall_penalty_per_rps_hour: float = 5.0
    capacity_recovery: float = 0.2
    """A service's safe capacity estimate falls at once but recovers by this share per tick: when a new
    replica lands on a slow or distant node the estimate drops, and it should not bounce back the moment
    the ReplicaSet removes that replica again (that flapped one replica every tick)."""
    scale_down_stabilization_s: float = 60.0
    """Scale down only to the highest set-point of this window (Kubernetes' scale-down stabilization,
    far shorter than the HPA's 300 s: the forecast's upper quantile already carries the noise; one
    minute covers a load that jumps every minute without holding a burst's replicas for long)."""
    max_residual_replicas: int = 2
    """A learned residual may move each set-point by at most this many replicas, or by
    `max_residual_share` of the plan where that is more."""
    max_residual_share: float = 0.2
    """...so that a residual still means something for a service the plan gives 50 replicas."""
    calibration: cal.CalibrationSettings | None = field(default_factory=cal.CalibrationSettings)
    """Online calibration of service times, interference and cold starts; None = plan with the declared specs."""
    slowest_replica_utilisation: float = 0.9
    """With even routing every replica takes the same share, so the plan keeps the slowest Ready replica
    (as calibrated) below this utilisation too: one replica on a slow node saturates first."""
    planning_upper_sds: float = 1.0
    """Plan each service at its estimated service time + this many standard deviations of the estimate:
    a service the calibration knows little about gets headroom until it has been measured."""


@dataclass(frozen=True, slots=True)
class MpcControllerState:
    arrivals: SampleHistory
    forecaster: fc.ForecasterState
    safe_capacity_rps: FloatArray | None = None
    """The smoothed safe capacity per replica (see `capacity_recovery`)."""
    recommendations: TimedRecords = field(default_factory=TimedRecords)
    """Recent set-points, for the scale-down stabilization."""
    last_plan: MpcPlan | None = None
    pool_names: tuple[str, ...] = ()
    calibration: cal.CalibrationState | None = None
    """What the controller has learnt of the true service times, interference and cold starts."""
    setpoints: IntArray | None = None
    """The set-points of the last step, after the residual and before the scale-down stabilisation."""
    residual: IntArray | None = None
    """What the learned residual changed in the last step (set-points − the plan's), zeros without one."""


@dataclass(frozen=True, slots=True)
class MpcDraft:
    """One MPC step before the learned residual: what it observed, forecast, estimated and planned."""

    observation: Observation
    previous: MpcControllerState
    """The state the step started from."""
    state: MpcControllerState
    """The state after this step's observation (arrivals, forecaster, calibration); `commit` finishes it."""
    forecast: fc.Forecast
    rate_rps: FloatArray
    """Arrivals per service over the last interval (the forecaster's newest sample)."""
    inputs: MpcInputs
    plan: MpcPlan
    pools: ResourcePools
    min_replicas: IntArray
    max_replicas: IntArray
    stranded: FloatArray
    """Pods on NotReady nodes, which the ReplicaSet still counts until they are evicted."""
    uncertainty: FloatArray
    """Per service: the calibration's relative standard deviation of its service time (0 without one)."""


ResidualPolicy = Callable[[MpcDraft], IntArray]
"""A learned correction: a drafted step -> adjusted set-points (clamped by `bound_residual`)."""


class MpcController:
    """Forecast + MPC + default placement. `residual` is the hook for a learned correction
    (`kubeagora.learn.policy.LearnedResidual`): `draft -> adjusted set-points`, clamped to ±k replicas."""

    name = "mpc"

    def __init__(self, settings: MpcControllerSettings | None = None, residual: ResidualPolicy | None = None) -> None:
        self.settings = settings or MpcControllerSettings()
        self.residual = residual
        self._mpc: Mpc | None = None
        self._shape: tuple[int, int] = (0, 0)

    @property
    def interval_s(self) -> float:
        return self.settings.interval_s

    def _problem(self, n_services: int, n_pools: int) -> Mpc:
        """The compiled MPC for this many services and pools (built once; rebuilt only if they change)."""
        if self._mpc is None or self._shape != (n_services, n_pools):
            cfg = self.settings
            self._mpc = make_mpc(n_services, n_pools, MpcSettings(
                horizon_steps=cfg.horizon_steps, step_s=cfg.interval_s,
                shortfall_penalty_per_rps_hour=cfg.shortfall_penalty_per_rps_hour))
            self._shape = (n_services, n_pools)
        return self._mpc

    def initial_state(self, observation: Observation) -> MpcControllerState:
        cfg = self.settings
        n = len(observation.services)
        return MpcControllerState(
            SampleHistory(cfg.interval_s + 1.0).record(observation.time_s, observation.arrived_total),
            fc.initial_state(n, cfg.interval_s, cfg.forecast),
            calibration=None if cfg.calibration is None else cal.initial_state(observation, cfg.calibration),
        )

    def decide(self, observation: Observation, state: MpcControllerState) -> tuple[Sequence[Action],
                                                                                     MpcControllerState]:
        step = self.draft(observation, state)
        adjusted = None if self.residual is None else self.residual(step)
        return self.commit(step, adjusted)

    def max_residual(self, planned: IntArray) -> IntArray:
        """Per service: how far a learned residual may move the plan's set-points (replicas)."""
        cfg = self.settings
        share = np.ceil(cfg.max_residual_share * np.asarray(planned, dtype=np.float64)).astype(np.int64)
        return np.maximum(cfg.max_residual_replicas, share)

    def draft(self, observation: Observation, state: MpcControllerState) -> MpcDraft:
        """Observe, forecast, calibrate and plan: everything up to the set-points, nothing enacted."""
        cfg, now = self.settings, observation.time_s
        arrivals = state.arrivals.record(now, observation.arrived_total)
        measured = arrivals.rate(now - cfg.interval_s, now)
        rate_rps = observation.arrival_rps if measured is None else measured
        forecaster = fc.observe(state.forecaster, rate_rps)
        forecast = fc.predict(forecaster, cfg.horizon_steps)
        calibration = state.calibration
        if calibration is not None and cfg.calibration is not None:
            calibration = cal.observe(calibration, observation, cfg.calibration)

        inputs, pools, details = self.plan_inputs(observation, forecast, rate_rps, state.safe_capacity_rps,
                                                  calibration)
        plan = self._problem(len(observation.services), len(pools.names)).solve(inputs)
        lo, hi = replica_bounds(observation)
        uncertainty = (np.zeros(len(observation.services)) if calibration is None
                       else cal.relative_uncertainty(calibration, observation))
        observed = replace(state, arrivals=arrivals, forecaster=forecaster, calibration=calibration)
        return MpcDraft(observation, state, observed, forecast, np.asarray(rate_rps, dtype=np.float64), inputs,
                        plan, pools, lo, hi, details["stranded"], uncertainty)

    def commit(self, step: MpcDraft, adjusted: IntArray | None = None) -> tuple[Sequence[Action], MpcControllerState]:
        """The drafted plan's set-points, corrected by `adjusted` (a residual's answer, clamped to ±k replicas
        of the plan and to the bounds), held by the scale-down stabilisation, as `Scale` actions."""
        cfg, observation, now = self.settings, step.observation, step.observation.time_s
        planned = step.plan.setpoints
        setpoints = planned if adjusted is None else bound_residual(
            planned, adjusted, self.max_residual(planned), step.min_replicas, step.max_replicas)
        recommendations = step.state.recommendations.add(now, setpoints, cfg.scale_down_stabilization_s)
        held = recommendations.max_within(now, cfg.scale_down_stabilization_s, setpoints)
        # pods on NotReady nodes still count for the ReplicaSet until they are evicted
        desired = held + step.stranded.astype(np.int64)
        reasons = self.reasons(observation, step.forecast, step.inputs, step.plan, held)
        new_state = replace(step.state, safe_capacity_rps=step.inputs.safe_capacity_rps,
                            recommendations=recommendations, last_plan=step.plan, pool_names=step.pools.names,
                            setpoints=setpoints, residual=(setpoints - planned).astype(np.int64))
        return scale_actions(observation, desired, reasons), new_state

    # ------------------------------------------------------------------ inputs of the MPC
    def plan_inputs(self, observation: Observation, forecast: fc.Forecast, rate_rps: FloatArray,
                    previous_capacity_rps: FloatArray | None = None,
                    calibration: cal.CalibrationState | None = None,
                    ) -> tuple[MpcInputs, ResourcePools, dict[str, FloatArray]]:
        cfg = self.settings
        services, nodes = observation.services, observation.nodes
        n_s, h = len(services), cfg.horizon_steps
        step_h = cfg.interval_s / SECONDS_PER_HOUR

        node_up = observation.node_ready & ~observation.node_quarantined
        live_on_up = node_up[observation.replica_node]
        pending = np.bincount(observation.replica_service[~observation.replica_ready & live_on_up], minlength=n_s)
        stranded = np.bincount(observation.replica_service[~observation.replica_ready & ~live_on_up], minlength=n_s)
        # unscheduled pods are pending too (the Observation counts them), but have no row in the replica list
        listed_pending = np.bincount(observation.replica_service[~observation.replica_ready], minlength=n_s)
        pending = pending + np.maximum(observation.pending_replicas - listed_pending, 0)

        # demand: upper forecast, not below what was just measured, plus the queues drained
        backlog_rps = np.maximum(observation.queue_length, 0.0) / cfg.backlog_drain_s
        # the freshest measurement: the interval's mean lags a jump that happened within the interval
        latest_rps = np.maximum(np.asarray(rate_rps, dtype=np.float64), observation.arrival_rps)
        demand = np.maximum(forecast.upper_rps, latest_rps[:, None])
        drain_steps = max(1, math.ceil(cfg.backlog_drain_s / cfg.interval_s))
        demand[:, :drain_steps] += backlog_rps[:, None]

        service_ms, network_ms = self.replica_conditions(observation, calibration)
        safe_capacity = safe_replica_capacity_rps(
            service_ms, network_ms, spec_column(services, "concurrency"),
            spec_column(services, "service_time_cv"), spec_column(services, "slo_p95_ms"),
            spec_column(services, "slo_p99_ms"), cfg.capacity)
        if calibration is not None:
            slowest_ms = cal.slowest_replica_ms(calibration, observation)
            slots = np.minimum(observation.concurrency.astype(np.float64), spec_column(services, "concurrency"))
            even_share_cap = cfg.slowest_replica_utilisation * slots * 1000.0 / slowest_ms
            safe_capacity = np.where(np.isfinite(even_share_cap), np.minimum(safe_capacity, even_share_cap),
                                     safe_capacity)
        if previous_capacity_rps is not None:
            recovered = previous_capacity_rps + cfg.capacity_recovery * (safe_capacity - previous_capacity_rps)
            safe_capacity = np.minimum(safe_capacity, recovered)

        cold_start_s = self.cold_start_s(observation, calibration)
        cold_steps = np.ceil(cold_start_s / cfg.interval_s).astype(np.int64)
        lo, hi = replica_bounds(observation)

        pools = resource_pools(observation)
        pool_usage = pools.usage_per_replica(observation, self.region_share(observation))
        price = np.where(pools.is_accelerator, cfg.price_per_accelerator_hour, cfg.price_per_core_hour)
        cpu = spec_column(services, "cpu_request")
        accelerators = spec_column(services, "accelerator_request")
        replica_price_hour = cpu * cfg.price_per_core_hour + accelerators * cfg.price_per_accelerator_hour
        energy = self.energy_cost_per_replica_hour(observation)
        change_cost = (replica_price_hour + energy) * step_h * cfg.change_cost_steps

        inputs = MpcInputs(
            demand_rps=demand, ready_replicas=observation.ready_replicas.astype(np.float64),
            pending_replicas=pending.astype(np.float64),
            pending_ready_replicas=pending_ready_by_step(pending.astype(np.float64), cold_steps, h),
            safe_capacity_rps=safe_capacity, cold_start_steps=cold_steps,
            min_replicas=lo.astype(np.float64), max_replicas=hi.astype(np.float64),
            priority_weight=spec_column(services, "priority_weight"), change_cost=change_cost,
            energy_cost_per_replica_hour=energy, pool_usage=pool_usage, pool_capacity=pools.capacity,
            price_per_unit_hour=price,
        )
        del nodes
        return inputs, pools, {"stranded": stranded.astype(np.float64), "service_ms": service_ms}

    def replica_conditions(self, observation: Observation, calibration: cal.CalibrationState | None = None,
                           ) -> tuple[FloatArray, FloatArray]:
        """Per service: mean service time (ms) of its Ready replicas at their nodes' current speed and
        interference (as calibrated, at its upper planning quantile, when a calibration is given), and the
        network delay (ms) from its users to the nearest node that can run it.

        The network term is where replicas *should* run, not the mean over where they are: with even
        routing, a replica the scheduler put in a far region raises everyone's tail, and sizing for that
        would ask for more replicas, which land far too — a runaway that more replicas cannot fix
        (placement can)."""
        n_s = len(observation.services)
        nominal_ms = service_time_matrix_ms(observation)
        region_of = {name: i for i, name in enumerate(observation.regions)}
        origin = np.array([region_of.get(s.origin_region, 0) for s in observation.services])
        rtt = observation.ingress_rtt_ms[origin]  # [service, node]
        beta = np.array([INTERFERENCE[n.node_class] for n in observation.nodes])
        slowdown = interference_slowdown(beta, observation.node_utilization)
        speed_ms = mean_service_time_s(observation, nominal_ms) * 1000.0  # current speeds, no interference
        ready = observation.replica_ready
        svc, node = observation.replica_service[ready], observation.replica_node[ready]
        count = np.bincount(svc, minlength=n_s)
        mean_slowdown = np.bincount(svc, slowdown[node], minlength=n_s) / np.maximum(count, 1)
        node_up = observation.node_ready & ~observation.node_quarantined
        allowed = per_specs("mpc.allowed_nodes", (observation.services, observation.nodes), lambda: np.array(
            [[s.allowed_regions is None or n.region in s.allowed_regions for n in observation.nodes]
             for s in observation.services], dtype=bool).reshape(n_s, len(observation.nodes)))
        usable = ~np.isnan(nominal_ms) & allowed & node_up[None, :]
        nearest_rtt = np.min(np.where(usable, rtt, np.inf), axis=1)
        if calibration is None:
            service_ms = speed_ms * np.where(count > 0, mean_slowdown, 1.0)
        else:
            service_ms, _ = cal.service_time_ms(calibration, observation, self.settings.planning_upper_sds)
        network_ms = np.where(np.isfinite(nearest_rtt), nearest_rtt, 0.0)
        return np.asarray(service_ms, dtype=np.float64), np.asarray(network_ms, dtype=np.float64)

    @staticmethod
    def cold_start_s(observation: Observation, calibration: cal.CalibrationState | None = None) -> FloatArray:
        """Per service: the cold start on the node class its replicas run on (the fastest class it can run on
        in this cluster when it has none), declared or as calibrated, plus a second for scheduling."""
        services, nodes = observation.services, observation.nodes
        if calibration is None:
            per_node = per_specs("mpc.cold_start_per_node", (services, nodes), lambda: np.array(
                [[s.cold_start_on(n.node_class) for n in nodes] for s in services],
                dtype=np.float64).reshape(len(services), -1))
        else:
            per_node = cal.cold_start_s(calibration, observation)
        # a service with replicas: the slowest start among its replicas' nodes
        hosted = np.full(len(services), -np.inf)
        np.maximum.at(hosted, observation.replica_service, per_node[observation.replica_service,
                                                                    observation.replica_node])
        has_replicas = np.bincount(observation.replica_service, minlength=len(services)) > 0
        # one without: the fastest start among the nodes of classes it can run on (0 where there are none)
        runnable = ~np.isnan(service_time_matrix_ms(observation))
        fastest = np.min(np.where(runnable, per_node, np.inf), axis=1, initial=np.inf)
        fastest = np.where(runnable.any(axis=1), fastest, 0.0)
        return np.asarray(np.where(has_replicas, hosted, fastest), dtype=np.float64) + 1.0

    @staticmethod
    def region_share(observation: Observation) -> FloatArray:
        """[service, region] where its replicas run on nodes that are up; with none there, its users'
        region if that region has a node up that can run it, else the first such region."""
        region_of = {name: i for i, name in enumerate(observation.regions)}
        node_region = np.array([region_of[n.region] for n in observation.nodes], dtype=np.int64)
        node_up = observation.node_ready & ~observation.node_quarantined
        n_s, n_r = len(observation.services), len(observation.regions)
        share = np.zeros((n_s, n_r))
        on_up = node_up[observation.replica_node]
        np.add.at(share, (observation.replica_service[on_up], node_region[observation.replica_node[on_up]]), 1.0)
        for i, service in enumerate(observation.services):
            if share[i].sum() > 0:
                continue
            hosts = {node_region[k] for k, n in enumerate(observation.nodes)
                     if node_up[k] and service.can_run_on(n.node_class)
                     and (service.allowed_regions is None or n.region in service.allowed_regions)}
            origin = region_of.get(service.origin_region, 0)
            share[i, origin if origin in hosts or not hosts else min(hosts)] = 1.0
        return np.asarray(share / share.sum(axis=1, keepdims=True), dtype=np.float64)

    def energy_cost_per_replica_hour(self, observation: Observation) -> FloatArray:
        """Per service: the dynamic power of one busy replica × (electricity + carbon) per hour.

        A replica's share of a node's dynamic power (peak − idle) is its share of the node's cores, or of
        its accelerators on a GPU/TPU node, taken on the node class it runs on (its best class otherwise)."""
        cfg = self.settings
        services, nodes = observation.services, observation.nodes

        def fastest_nodes() -> tuple[IntArray, FloatArray]:
            # the node it runs fastest on: the smallest service time / speed, the first node in order on a tie;
            # and the kW its busy replica draws there (0 where it runs nowhere)
            times = service_time_matrix_ms(observation)
            runnable = ~np.isnan(times)
            node = np.argmin(np.where(runnable, times, np.inf), axis=1) if len(nodes) else np.zeros(
                len(services), dtype=np.int64)
            kw = np.zeros(len(services))
            for i, service in enumerate(services):
                if not runnable[i].any():
                    continue
                n = nodes[int(node[i])]
                share = (service.accelerator_request / n.accelerators if n.accelerators and
                         service.accelerator_request else service.cpu_request / n.cpu_cores)
                kw[i] = (n.peak_power_w - n.idle_power_w) * min(share, 1.0) / 1000.0
            return np.asarray(node, dtype=np.int64), kw

        node, kw = per_specs("mpc.energy_fastest_nodes", (services, nodes), fastest_nodes)
        carbon = observation.region_carbon_g_per_kwh
        regions = tuple(dict.fromkeys(n.region for n in nodes))
        price_per_kwh = np.array([cfg.electricity_per_kwh + cfg.carbon_price_per_tonne * carbon.get(r, 0.0) / 1e6
                                  for r in regions], dtype=np.float64)
        region_code = per_specs("mpc.node_region_code", (nodes,), lambda: np.array(
            [regions.index(n.region) for n in nodes], dtype=np.int64))
        return np.asarray(kw * price_per_kwh[region_code[node]] if len(nodes) else kw, dtype=np.float64)

    # ------------------------------------------------------------------ explanations
    def reasons(self, observation: Observation, forecast: fc.Forecast, inputs: MpcInputs, plan: MpcPlan,
                setpoints: IntArray) -> list[str]:
        h_s = self.settings.horizon_steps * self.settings.interval_s
        out = []
        for i in range(len(observation.services)):
            peak = float(inputs.demand_rps[i].max())
            held = (f" (plan {int(plan.setpoints[i])}, held by the {self.settings.scale_down_stabilization_s:.0f} s "
                    f"scale-down window)" if setpoints[i] > plan.setpoints[i] else "")
            out.append(
                f"mpc: forecast {forecast.mean_rps[i, 0]:.0f} req/s (plan for {peak:.0f} req/s, upper "
                f"quantile, over {h_s:.0f} s); safe capacity {inputs.safe_capacity_rps[i]:.0f} req/s per replica; "
                f"{int(inputs.ready_replicas[i])} ready + {int(inputs.pending_replicas[i])} starting -> "
                f"{int(setpoints[i])}{held}; shortfall {plan.shortfall_rps[i].max():.0f} req/s")
        return out
