"""What a scaling agent sees of a drafted MPC step, and what its action does to the set-points.

One agent per service. Its observation is a compact sketch of its service (the design's list): the
last window's latency quantiles against the SLO, the load against the calibrated safe capacity, the
MPC's set-point and forecast, the calibration's uncertainty, the contention on the nodes it runs on,
pending starts and backlog. Every feature is a ratio or a log of one, clipped to ±`FEATURE_CLIP`, so a
policy trained on one cluster size reads another the same way.

An action is a level in −2…2: the set-point moves by level × max(1, 10 % of the plan), which the
MPC controller then bounds again (`MpcController.max_residual`) and the shield filters like every
other proposal. numpy only: training, the bench and the operator share this module.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from kubeagora.controllers.mpc import MpcDraft
from kubeagora.model import FloatArray, IntArray, Observation

FEATURES = (
    "p95_over_slo", "p99_over_slo", "load_over_ready_capacity", "peak_forecast_over_planned_capacity",
    "forecast_trend", "log_plan_over_ready", "pending_share", "service_time_uncertainty",
    "backlog_s", "node_contention", "shed_fraction", "forecast_spread", "shortfall_share",
    "log_plan", "cold_start_share_of_horizon",
)
N_FEATURES = len(FEATURES)
LEVELS = np.arange(-2, 3)
"""The actions: how many steps (of `step_replicas`) to move the plan's set-point."""
N_ACTIONS = len(LEVELS)
STEP_SHARE = 0.1
"""One level moves the set-point by this share of the plan (at least one replica)."""
FEATURE_CLIP = 10.0
Features = npt.NDArray[np.float32]
"""[service, feature] or [feature]: what the agents see (float32, as the networks take it)."""


def step_replicas(planned: IntArray) -> IntArray:
    """Per service: the replicas one action level moves."""
    return np.maximum(1, np.rint(STEP_SHARE * np.asarray(planned, dtype=np.float64))).astype(np.int64)


def apply_levels(planned: IntArray, levels: IntArray) -> IntArray:
    """The set-points the agents ask for: the plan moved by level × step (bounded later by the controller)."""
    level = np.clip(np.asarray(levels, dtype=np.int64), LEVELS[0], LEVELS[-1])
    return np.asarray(planned, dtype=np.int64) + level * step_replicas(planned)


def level_towards(planned: IntArray, wanted_replicas: IntArray) -> IntArray:
    """The action index (0…N_ACTIONS−1) whose set-point comes nearest `wanted_replicas`."""
    delta = np.asarray(wanted_replicas, dtype=np.float64) - np.asarray(planned, dtype=np.float64)
    level = np.clip(np.rint(delta / step_replicas(planned)), LEVELS[0], LEVELS[-1]).astype(np.int64)
    index: IntArray = level - LEVELS[0]
    return index


def _ratio(num: npt.ArrayLike, den: npt.ArrayLike) -> FloatArray:
    ratio: FloatArray = np.asarray(num, dtype=np.float64) / np.maximum(np.asarray(den, dtype=np.float64), 1e-9)
    return ratio


def node_contention(observation: Observation) -> FloatArray:
    """Per service: the mean utilisation of the nodes its live replicas run on (0 without replicas)."""
    n = len(observation.services)
    util = np.asarray(observation.node_utilization, dtype=np.float64)[observation.replica_node]
    total = np.bincount(observation.replica_service, util, minlength=n)
    count = np.bincount(observation.replica_service, minlength=n)
    mean: FloatArray = np.where(count > 0, total / np.maximum(count, 1), 0.0)
    return mean


def agent_features(draft: MpcDraft) -> Features:
    """[service, feature] float32: every agent's observation of this drafted step (see `FEATURES`)."""
    obs, inputs, plan, forecast = draft.observation, draft.inputs, draft.plan, draft.forecast
    slo95 = np.array([s.slo_p95_ms for s in obs.services])
    slo99 = np.array([s.slo_p99_ms for s in obs.services])
    ready = np.asarray(obs.ready_replicas, dtype=np.float64)
    planned = np.asarray(plan.setpoints, dtype=np.float64)
    safe = np.asarray(inputs.safe_capacity_rps, dtype=np.float64)
    rate = np.asarray(draft.rate_rps, dtype=np.float64)
    horizon = forecast.upper_rps.shape[1]
    columns = [
        np.nan_to_num(_ratio(obs.p95_ms, slo95)),
        np.nan_to_num(_ratio(obs.p99_ms, slo99)),
        _ratio(rate, safe * np.maximum(ready, 1.0)),
        _ratio(forecast.upper_rps.max(axis=1), safe * np.maximum(planned, 1.0)),
        _ratio(forecast.mean_rps[:, -1], np.maximum(rate, 1.0)) - 1.0,
        np.log((planned + 1.0) / (ready + 1.0)),
        _ratio(obs.pending_replicas, np.maximum(obs.desired_replicas, 1)),
        np.asarray(draft.uncertainty, dtype=np.float64),
        _ratio(obs.queue_length, np.maximum(rate, 1.0)),
        node_contention(obs),
        np.asarray(obs.shed_fraction, dtype=np.float64),
        _ratio(forecast.sigma_rps, np.maximum(rate, 1.0)),
        _ratio(plan.shortfall_rps[:, 0], np.maximum(inputs.demand_rps[:, 0], 1.0)),
        np.log1p(planned) / 4.0,
        np.minimum(np.asarray(inputs.cold_start_steps, dtype=np.float64) / horizon, 1.0),
    ]
    table = np.nan_to_num(np.stack(columns, axis=1), nan=0.0, posinf=FEATURE_CLIP, neginf=-FEATURE_CLIP)
    clipped: Features = np.clip(table, -FEATURE_CLIP, FEATURE_CLIP).astype(np.float32)
    return clipped


def critic_inputs(features: Features, progress: float) -> Features:
    """[service, 3F + 1]: each agent's features with the whole cluster's (mean and max over services) and
    the episode's progress: the centralised critic sees everyone, the actors only themselves."""
    n = features.shape[0]
    pooled = np.concatenate([features.mean(axis=0), features.max(axis=0), [progress]]).astype(np.float32)
    joined: Features = np.concatenate([features, np.repeat(pooled[None, :], n, axis=0)], axis=1)
    return joined
