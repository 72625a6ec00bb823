"""Scaling: replica set-points become `Scale` proposals, and concurrency set-points `SetConcurrency`.

The set-points come from the MPC when the MAS has one (`handoff.REPLICA_SETPOINTS`: the plan's
first step, or a function of the observation that returns it). Without it the agent computes a
forecast-driven target itself:

    demand  = max(upper forecast over the horizon, arrivals now) + queued requests / backlog_drain_s
    target  = ceil(demand / (measured capacity of one Ready replica × safe_utilisation))

clipped to the service's [min, max]. Scale-ups go out at once — in `Lane.SLO` when the service's
SLO is at risk — and scale-downs only when every target of the last `scale_down_window_s` was
below the current count (the HPA's stabilisation window), never while the SLO is at risk.

Concurrency: explicit set-points (`handoff.CONCURRENCY_SETPOINTS`) are passed through. Without them,
the fallback bridges a cold start: a service over its Ready capacity, with replicas still to come and
room on its nodes, gets `concurrency_boost_factor` × its configured slots per replica until the load
fits the configured concurrency again.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from kubeagora.agents.base import AgentContext, Lane, Proposal
from kubeagora.agents.handoff import concurrency_setpoints, replica_setpoints
from kubeagora.agents.signals import (
    latency_ratio,
    load_ratio,
    load_ratios,
    per_replica_capacity_rps,
    slo_at_risk_all,
)
from kubeagora.controllers.policy_parts import TimedRecords, replica_bounds
from kubeagora.model import FloatArray, IntArray, Observation, Scale, SetConcurrency
from kubeagora.model.spec_tables import per_specs, spec_column


@dataclass(frozen=True, slots=True)
class ScalingSettings:
    safe_utilisation: float = 0.7
    """Share of a replica's measured capacity the fallback plans to use (default 70 %): M/G/c waiting
    grows steeply beyond ~0.8, and the rest absorbs a forecast miss until the next tick."""
    backlog_drain_s: float = 30.0
    """Queued requests are planned to be served within this long (default 30 s), on top of arrivals."""
    scale_down_window_s: float = 120.0
    """A scale-down waits until every target of this window was lower (default 120 s: shorter than
    the HPA's 300 s because the targets come from a forecast, not a lagging CPU metric)."""
    slo_risk_latency_share: float = 0.9
    """SLO at risk above this share of the p95/p99 target (default 90 %): scale-ups go in Lane.SLO,
    scale-downs wait."""
    slo_risk_load_share: float = 0.9
    """…or with arrivals above this share of Ready capacity (default 90 %)."""
    concurrency_boost_factor: float = 1.0
    """Fallback: slots per replica during a cold start, as a multiple of the configured concurrency
    (default 1×, off). Extra slots help an I/O-bound service; a CPU-bound one only time-shares its
    cores (the engine models that: throughput stays, every request takes longer), so the boost is off
    unless a service is known to wait on I/O."""
    concurrency_boost_max_node_utilisation: float = 0.7
    """…only while every node hosting the service is below this utilisation (default 70 %): extra
    slots on a saturated node only add contention."""


@dataclass(frozen=True, slots=True)
class ScalingState:
    targets: TimedRecords
    """Recent per-service targets (the scale-down stabilisation window)."""


class ScalingAgent:
    name = "scaling"

    def __init__(self, settings: ScalingSettings | None = None) -> None:
        self.settings = settings or ScalingSettings()

    def initial_state(self, observation: Observation) -> ScalingState:
        # the current count is the first target, so nothing scales down before a full window has passed
        return ScalingState(TimedRecords().add(observation.time_s, observation.desired_replicas,
                                               self.settings.scale_down_window_s))

    def decide(self, observation: Observation, state: ScalingState,
               context: AgentContext) -> tuple[Sequence[Proposal], ScalingState]:
        cfg, obs, now = self.settings, observation, observation.time_s
        low, high = replica_bounds(obs)
        planned = replica_setpoints(obs, context)
        demand = self.demand_rps(obs, context)
        raw = planned if planned is not None else self.fallback_targets(obs, demand)
        raw = np.clip(raw, low, high).astype(np.int64)
        targets = state.targets.add(now, raw, cfg.scale_down_window_s)
        highest_recent = targets.max_within(now, cfg.scale_down_window_s, raw)
        proposals: list[Proposal] = []
        desired = obs.desired_replicas.astype(np.int64)
        at_risk = slo_at_risk_all(obs, cfg.slo_risk_latency_share, cfg.slo_risk_load_share)
        target = np.where(raw >= desired, raw, np.minimum(desired, np.trunc(highest_recent).astype(np.int64)))
        held = (target < desired) & at_risk  # no scale-down, nor a concurrency change, while the SLO is at risk
        scale = (target != desired) & ~held
        # a concurrency proposal is possible only where `_concurrency` can return one: an explicit set-point,
        # a boost for an overloaded service with replicas to come, or slots above the configured ones
        current = obs.concurrency.astype(np.int64)
        named = concurrency_setpoints(context)
        explicit = np.array([s.name in named for s in obs.services] if named else [False] * len(obs.services),
                            dtype=np.bool_)
        overloaded = (load_ratios(obs) > 1.0) & (target > obs.ready_replicas.astype(np.int64))
        configured = spec_column(obs.services, "concurrency", np.int64)
        maybe_concurrency = ~held & (explicit | (overloaded & (current < self._boosted(obs)))
                                     | (current > configured))
        for s in np.flatnonzero(scale | maybe_concurrency).tolist():
            if scale[s]:
                proposals.append(self._scale(obs, s, int(desired[s]), int(target[s]), float(demand[s]),
                                             planned is not None, bool(at_risk[s])))
            if maybe_concurrency[s]:
                concurrency = self._concurrency(obs, s, int(target[s]), context)
                if concurrency is not None:
                    proposals.append(concurrency)
        return proposals, ScalingState(targets)

    def _boosted(self, obs: Observation) -> IntArray:
        """[service] slots per replica during a cold start (`concurrency_boost_factor` × the configured ones)."""
        factor = self.settings.concurrency_boost_factor
        return per_specs(f"scaling.boosted.{factor!r}", (obs.services,), lambda: np.array(
            [max(round(s.concurrency * factor), s.concurrency) for s in obs.services],
            dtype=np.int64).reshape(len(obs.services)))

    def demand_rps(self, obs: Observation, context: AgentContext) -> FloatArray:
        """Per service: req/s to provision for (upper forecast or arrivals now, plus the backlog)."""
        arrivals = np.asarray(obs.arrival_rps, dtype=np.float64)
        forecast = arrivals
        if context.forecast_rps is not None:
            given = np.asarray(context.forecast_rps, dtype=np.float64)
            if given.shape[0] != len(obs.services):
                raise ValueError(f"forecast_rps has {given.shape[0]} rows, expected {len(obs.services)} services")
            forecast = given.max(axis=1) if given.ndim == 2 else given
        backlog = np.maximum(obs.queue_length, 0.0) / self.settings.backlog_drain_s
        return np.asarray(np.maximum(forecast, arrivals) + backlog, dtype=np.float64)

    def fallback_targets(self, obs: Observation, demand_rps: FloatArray) -> IntArray:
        safe = np.array([per_replica_capacity_rps(obs, s) for s in range(len(obs.services))])
        safe = safe * self.settings.safe_utilisation
        return np.ceil(demand_rps / np.maximum(safe, 1e-9) - 1e-9).astype(np.int64)

    def _scale(self, obs: Observation, s: int, desired: int, target: int, demand_rps: float, from_mpc: bool,
               at_risk: bool) -> Proposal:
        cfg, service = self.settings, obs.services[s]
        per_replica = per_replica_capacity_rps(obs, s)
        source = "MPC set-point" if from_mpc else (
            f"{demand_rps:.0f} req/s to serve at {per_replica * cfg.safe_utilisation:.0f} req/s per replica "
            f"({100 * cfg.safe_utilisation:.0f} % of {per_replica:.0f})")
        p99 = float(obs.p99_ms[s])
        reason = (f"{service.name}: {desired} → {target} replicas; {source}; p99 "
                  f"{'n/a' if math.isnan(p99) else f'{p99:.0f} ms'} of {service.slo_p99_ms:.0f} ms")
        up = target > desired
        return Proposal(
            self.name, Scale(service.name, target, reason), reason,
            inputs={"demand_rps": demand_rps, "per_replica_capacity_rps": per_replica,
                    "safe_utilisation": cfg.safe_utilisation, "load_ratio": load_ratio(obs, s),
                    "latency_ratio": latency_ratio(obs, s), "from_mpc": float(from_mpc)},
            predicted_effect={"replicas": float(target - desired),
                              "capacity_rps": float(target - desired) * per_replica},
            risk=0.05 if up else 0.5 * (desired - target) / max(desired, 1),
            lane=Lane.SLO if up and at_risk else Lane.ROUTINE)

    def _concurrency(self, obs: Observation, s: int, target: int, context: AgentContext) -> Proposal | None:
        cfg, service = self.settings, obs.services[s]
        current = int(obs.concurrency[s])
        explicit = concurrency_setpoints(context).get(service.name)
        if explicit is not None:
            wanted, why = int(explicit), f"planned set-point {int(explicit)}"
        else:
            boosted = max(round(service.concurrency * cfg.concurrency_boost_factor), service.concurrency)
            hosts = np.unique(obs.replica_node[obs.replica_ready & (obs.replica_service == s)])
            node_room = hosts.size > 0 and bool(
                np.all(obs.node_utilization[hosts] < cfg.concurrency_boost_max_node_utilisation))
            overloaded = load_ratio(obs, s) > 1.0 and target > int(obs.ready_replicas[s])
            # capacity at the configured slots: what the Ready replicas serve once the boost is taken back
            configured_capacity = float(obs.capacity_rps[s]) * service.concurrency / max(current, 1)
            if overloaded and node_room and current < boosted:
                wanted, why = boosted, (f"{float(obs.arrival_rps[s]):.0f} req/s over {float(obs.capacity_rps[s]):.0f} "
                                        f"Ready capacity while replicas start: {current} → {boosted} slots per replica")
            elif (current > service.concurrency
                  and float(obs.arrival_rps[s]) <= configured_capacity * cfg.safe_utilisation):
                wanted, why = service.concurrency, "load fits the configured slots again"
            else:
                return None
        if wanted == current:
            return None
        reason = f"{service.name}: concurrency {current} → {wanted} ({why})"
        return Proposal(
            self.name, SetConcurrency(service.name, wanted, reason), reason,
            inputs={"concurrency": float(current), "load_ratio": load_ratio(obs, s),
                    "arrival_rps": float(obs.arrival_rps[s]), "capacity_rps": float(obs.capacity_rps[s])},
            predicted_effect={"capacity_rps": float(obs.capacity_rps[s]) * (wanted / max(current, 1) - 1.0)},
            risk=0.1, lane=Lane.SLO if wanted > current else Lane.ROUTINE)
