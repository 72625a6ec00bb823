"""Short-horizon model predictive control of replica counts: one cvxpy problem, built once, re-solved.

`make_mpc(n_services, n_pools, settings)` builds a linear program in cvxpy's disciplined parametrized
programming (DPP) form — every input that changes between ticks is a `cp.Parameter`, so a re-solve
only writes new parameter values and cvxpy reuses the compiled problem instead of canonicalizing it
again (cvxpy docs, "Disciplined Parametrized Programming" and "Parameters": "re-solving a DPP problem
is faster than solving it from scratch"). The factory shape follows python-control's
`control.optimal` (`create_mpc_iosystem`): build once, check shapes eagerly with a clear ValueError.

The model, per service s and horizon step h (one step = the controller interval):

    r[s,h] = ready[s] + pending[s] + Σ_{k≤h} up[s,k] − Σ_{k≤h} down[s,k]          replica set-point
    e[s,h] = ready[s] + pending_ready[s,h] + Σ_d onehot[s,d] · Σ_{k≤h−d} up[s,k] − Σ_{k≤h} down[s,k]
                                       Ready replicas: a replica started at step k serves from k + d_s
    safe_capacity[s] · e[s,h] + shortfall[s,h] ≥ demand[s,h]                     (req/s)
    min[s] ≤ r[s,h] ≤ max[s]
    usage[p,h] = Σ_s pool_usage[p,s] · r[s,h] ≤ pool_capacity[p] + overflow[p,h]   (cores, accelerators)

    minimise  Σ_h step_h · ( price · usage[:,h] + energy_cost · r[:,h]
                             + shortfall_penalty · priority · shortfall[:,h] + overflow_penalty · Σ overflow )
              + Σ change_cost · (up + down)

`up`, `down`, `shortfall` and `overflow` are non-negative. Removals count at once (a deleted pod leaves
its endpoints immediately); additions only after the cold start, given as a one-hot row per service
(DPP needs the delay to enter linearly). The overflow slack keeps the problem feasible when a pool
shrinks under the replicas already running (a node dies); its penalty is far above any price.

The dual values of the pool constraints are the shadow prices of the pools — what one more core or
accelerator would save per step — which the coordination layer uses as market prices.

A learned policy may refine the set-points: `bound_residual` clamps its output to ±k replicas of the
MPC's answer and to the services' bounds.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import cvxpy
import numpy as np

from kubeagora.model import BoolArray, FloatArray, IntArray, Observation

cp: Any = cvxpy
"""cvxpy's atoms reach its namespace through star re-exports that mypy cannot follow: use it untyped."""

SECONDS_PER_HOUR = 3600.0
PARAMETER_BLOCK = 256
"""Services per block of the Parameters that multiply variables (see `Mpc.__init__`)."""



@dataclass(frozen=True, slots=True)
class MpcSettings:
    horizon_steps: int = 8
    """Steps planned ahead (8 × 15 s = 2 minutes: longer than any cold start)."""
    step_s: float = 15.0
    """Length of one step: the controller interval."""
    shortfall_penalty_per_rps_hour: float = 5.0
    """Cost of one req/s of demand above safe capacity for an hour, at priority 1. Far above what the
    capacity to serve it costs (a CPU replica serving ~100 req/s costs ~0.02 per hour), so capacity is
    bought whenever a pool has room."""
    overflow_penalty_per_unit_hour: float = 1e6
    """Cost of booking one core or accelerator beyond a pool's capacity for an hour: above any shortfall a
    unit could cover (an accelerator serves some hundred req/s), so a pool overflows only when forced."""
    solver: str = "SCIPY"
    """An LP solver that reports duals. SCIPY is HiGHS through `scipy.optimize.linprog`: as fast as cvxpy's
    own HIGHS interface without its banner on stdout, and 4× faster than CLARABEL at 100 services."""

    def __post_init__(self) -> None:
        if self.horizon_steps < 1:
            raise ValueError(f"MpcSettings.horizon_steps must be ≥ 1, got {self.horizon_steps}")
        if self.step_s <= 0:
            raise ValueError(f"MpcSettings.step_s must be > 0, got {self.step_s}")


@dataclass(frozen=True, slots=True)
class MpcInputs:
    """What changes between ticks (each becomes a Parameter's value). S services, P pools, H steps."""

    demand_rps: FloatArray
    """[S, H] arrivals to provision for in each step (an upper forecast)."""
    ready_replicas: FloatArray
    """[S] Ready replicas now."""
    pending_replicas: FloatArray
    """[S] replicas created but not Ready yet (on nodes that are up)."""
    pending_ready_replicas: FloatArray
    """[S, H] how many of the pending replicas are expected Ready by each step."""
    safe_capacity_rps: FloatArray
    """[S] req/s one replica serves while meeting its SLO (see `decision.capacity`)."""
    cold_start_steps: IntArray
    """[S] steps from creating a replica until it is Ready (≥ horizon: not within the horizon)."""
    min_replicas: FloatArray
    """[S]"""
    max_replicas: FloatArray
    """[S]"""
    priority_weight: FloatArray
    """[S] scales the shortfall penalty."""
    change_cost: FloatArray
    """[S] cost of starting or stopping one replica (smoothness: a scale-down must save more than this)."""
    energy_cost_per_replica_hour: FloatArray
    """[S] energy (and carbon) cost of one running replica for an hour."""
    pool_usage: FloatArray
    """[P, S] units of each pool one replica of each service takes (its share in the pool's region ×
    its cores or accelerators)."""
    pool_capacity: FloatArray
    """[P] units each pool can give (schedulable allocatable cores / accelerators)."""
    price_per_unit_hour: FloatArray
    """[P] the price of one unit of each pool for an hour."""


@dataclass(frozen=True, slots=True)
class MpcPlan:
    setpoints: IntArray
    """[S] replicas to ask for now (the first step, rounded up)."""
    replicas: FloatArray
    """[S, H] the planned (continuous) replica set-points."""
    ready_replicas: FloatArray
    """[S, H] the Ready replicas the plan expects."""
    shortfall_rps: FloatArray
    """[S, H] demand the plan cannot cover safely."""
    pool_prices: FloatArray
    """[P, H] duals of the pool capacity constraints: cost saved per extra unit of the pool in each step."""
    pool_usage: FloatArray
    """[P, H] units of each pool the plan books."""
    status: str
    solve_s: float


class Mpc:
    """The compiled problem and its Parameters. Build with `make_mpc`; call `solve(inputs)` each tick."""

    def __init__(self, n_services: int, n_pools: int, settings: MpcSettings,
                 parameter_block: int = PARAMETER_BLOCK) -> None:
        if n_services < 1 or n_pools < 0:
            raise ValueError(f"need at least one service and no negative pool count, got {n_services}, {n_pools}")
        self.n_services, self.n_pools, self.settings = n_services, n_pools, settings
        n_s, n_p, h = n_services, n_pools, settings.horizon_steps
        step_h = settings.step_s / SECONDS_PER_HOUR

        self.demand_rps = cp.Parameter((n_s, h), nonneg=True, name="demand_rps")
        self.ready_replicas = cp.Parameter(n_s, nonneg=True, name="ready_replicas")
        self.pending_replicas = cp.Parameter(n_s, nonneg=True, name="pending_replicas")
        self.pending_ready_replicas = cp.Parameter((n_s, h), nonneg=True, name="pending_ready_replicas")
        # the two Parameters that multiply variables come in blocks of services: cvxpy's canonicalization of
        # a Parameter × variable product builds an index array of (Parameter size) × (rows of the product),
        # which for one Parameter over all services grows with the square of the services (47.7 GiB at
        # 10,000); per block it grows linearly. The compiled problem is the same linear program.
        self.blocks = [(start, min(start + parameter_block, n_s)) for start in range(0, n_s, parameter_block)]
        self.safe_capacity_rps = [cp.Parameter(stop - start, nonneg=True, name=f"safe_capacity_rps_{start}")
                                  for start, stop in self.blocks]
        self.cold_start_onehot = [cp.Parameter((stop - start, h), nonneg=True, name=f"cold_start_onehot_{start}")
                                  for start, stop in self.blocks]
        self.min_replicas = cp.Parameter(n_s, nonneg=True, name="min_replicas")
        self.max_replicas = cp.Parameter(n_s, nonneg=True, name="max_replicas")
        self.priority_weight = cp.Parameter(n_s, nonneg=True, name="priority_weight")
        self.change_cost = cp.Parameter(n_s, nonneg=True, name="change_cost")
        self.energy_cost = cp.Parameter(n_s, nonneg=True, name="energy_cost_per_replica_hour")
        self.pool_usage_per_replica = cp.Parameter((max(n_p, 1), n_s), nonneg=True, name="pool_usage")
        self.pool_capacity = cp.Parameter(max(n_p, 1), nonneg=True, name="pool_capacity")
        self.price = cp.Parameter(max(n_p, 1), nonneg=True, name="price_per_unit_hour")

        self.up = cp.Variable((n_s, h), nonneg=True, name="replicas_started")
        self.down = cp.Variable((n_s, h), nonneg=True, name="replicas_stopped")
        self.shortfall = cp.Variable((n_s, h), nonneg=True, name="shortfall_rps")
        self.overflow = cp.Variable((max(n_p, 1), h), nonneg=True, name="pool_overflow")
        self.usage = cp.Variable((max(n_p, 1), h), name="pool_usage")

        to_horizon = np.ones((1, h))
        cumulative = np.triu(np.ones((h, h)))  # (x @ cumulative)[:, j] = Σ_{k≤j} x[:, k]
        started = self.up @ cumulative
        stopped = self.down @ cumulative
        now = self.ready_replicas + self.pending_replicas
        # set-points and Ready replicas are variables tied to their definitions: products of a Parameter
        # with an expression that holds Parameters would not be DPP
        self.replicas = cp.Variable((n_s, h), name="replicas")
        self.ready = cp.Variable((n_s, h), name="ready_replicas")
        replicas_definition = cp.reshape(now, (n_s, 1), order="F") @ to_horizon + started - stopped
        # started replicas become Ready d steps later: shift the cumulative starts right by d
        ready_started_blocks = []
        for (start, stop), onehot in zip(self.blocks, self.cold_start_onehot, strict=True):
            block_started = started[start:stop, :]
            ready_started_block = 0
            for d in range(h):
                shift = np.eye(h, k=d)  # (x @ shift)[:, j] = x[:, j − d]
                weight = cp.reshape(onehot[:, d], (stop - start, 1), order="F") @ to_horizon
                ready_started_block = ready_started_block + cp.multiply(weight, block_started @ shift)
            ready_started_blocks.append(ready_started_block)
        ready_started = _stack_rows(ready_started_blocks)
        ready_definition = (cp.reshape(self.ready_replicas, (n_s, 1), order="F") @ to_horizon
                            + self.pending_ready_replicas + ready_started - stopped)
        capacity_blocks = [
            cp.multiply(cp.reshape(capacity, (stop - start, 1), order="F") @ to_horizon, self.ready[start:stop, :])
            for (start, stop), capacity in zip(self.blocks, self.safe_capacity_rps, strict=True)]
        capacity = _stack_rows(capacity_blocks)

        self.capacity_constraint = capacity + self.shortfall >= self.demand_rps
        self.pool_constraint = self.usage <= cp.reshape(self.pool_capacity, (max(n_p, 1), 1), order="F") @ to_horizon \
            + self.overflow
        constraints = [
            self.replicas == replicas_definition,
            self.ready == ready_definition,
            self.capacity_constraint,
            self.replicas >= cp.reshape(self.min_replicas, (n_s, 1), order="F") @ to_horizon,
            self.replicas <= cp.reshape(self.max_replicas, (n_s, 1), order="F") @ to_horizon,
            self.usage == self.pool_usage_per_replica @ self.replicas,
            self.pool_constraint,
        ]
        running_cost = step_h * (cp.sum(self.price @ self.usage) + cp.sum(self.energy_cost @ self.replicas))
        shortfall_cost = step_h * settings.shortfall_penalty_per_rps_hour * cp.sum(
            self.priority_weight @ self.shortfall)
        overflow_cost = step_h * settings.overflow_penalty_per_unit_hour * cp.sum(self.overflow)
        change_cost = cp.sum(self.change_cost @ (self.up + self.down))
        self.problem = cp.Problem(cp.Minimize(running_cost + shortfall_cost + overflow_cost + change_cost),
                                  constraints)
        if not self.problem.is_dcp(dpp=True):
            raise AssertionError("the MPC problem must be DPP so that re-solves skip canonicalization")

    # ------------------------------------------------------------------ inputs
    def _check(self, inputs: MpcInputs) -> None:
        n_s, n_p, h = self.n_services, self.n_pools, self.settings.horizon_steps
        expected = {
            "demand_rps": (n_s, h), "ready_replicas": (n_s,), "pending_replicas": (n_s,),
            "pending_ready_replicas": (n_s, h), "safe_capacity_rps": (n_s,), "cold_start_steps": (n_s,),
            "min_replicas": (n_s,), "max_replicas": (n_s,), "priority_weight": (n_s,), "change_cost": (n_s,),
            "energy_cost_per_replica_hour": (n_s,), "pool_usage": (n_p, n_s), "pool_capacity": (n_p,),
            "price_per_unit_hour": (n_p,),
        }
        for name, shape in expected.items():
            value = np.asarray(getattr(inputs, name))
            if value.shape != shape:
                raise ValueError(f"MpcInputs.{name} must have shape {shape} "
                                 f"({n_s} services, {n_p} pools, horizon {h}), got {value.shape}")
            if not np.all(np.isfinite(value)) or np.any(value < 0):
                raise ValueError(f"MpcInputs.{name} must be finite and non-negative")
        if np.any(np.asarray(inputs.min_replicas) > np.asarray(inputs.max_replicas)):
            raise ValueError("MpcInputs.min_replicas must not exceed max_replicas")

    def _set(self, inputs: MpcInputs) -> None:
        self._check(inputs)
        n_p, h = self.n_pools, self.settings.horizon_steps
        self.demand_rps.value = np.asarray(inputs.demand_rps, dtype=np.float64)
        self.ready_replicas.value = np.asarray(inputs.ready_replicas, dtype=np.float64)
        self.pending_replicas.value = np.asarray(inputs.pending_replicas, dtype=np.float64)
        self.pending_ready_replicas.value = np.minimum(
            np.asarray(inputs.pending_ready_replicas, dtype=np.float64),
            np.asarray(inputs.pending_replicas, dtype=np.float64)[:, None])
        safe_capacity = np.asarray(inputs.safe_capacity_rps, dtype=np.float64)
        onehot = cold_start_onehot(np.asarray(inputs.cold_start_steps), h)
        for (start, stop), capacity, delays in zip(self.blocks, self.safe_capacity_rps, self.cold_start_onehot,
                                                   strict=True):
            capacity.value = safe_capacity[start:stop]
            delays.value = onehot[start:stop]
        self.min_replicas.value = np.asarray(inputs.min_replicas, dtype=np.float64)
        self.max_replicas.value = np.asarray(inputs.max_replicas, dtype=np.float64)
        self.priority_weight.value = np.asarray(inputs.priority_weight, dtype=np.float64)
        self.change_cost.value = np.asarray(inputs.change_cost, dtype=np.float64)
        self.energy_cost.value = np.asarray(inputs.energy_cost_per_replica_hour, dtype=np.float64)
        if n_p:
            self.pool_usage_per_replica.value = np.asarray(inputs.pool_usage, dtype=np.float64)
            self.pool_capacity.value = np.asarray(inputs.pool_capacity, dtype=np.float64)
            self.price.value = np.asarray(inputs.price_per_unit_hour, dtype=np.float64)
        else:  # no pools: one pool nobody uses
            self.pool_usage_per_replica.value = np.zeros((1, self.n_services))
            self.pool_capacity.value = np.zeros(1)
            self.price.value = np.zeros(1)

    # ------------------------------------------------------------------ solve
    def solve(self, inputs: MpcInputs) -> MpcPlan:
        """Write the inputs into the Parameters and re-solve the compiled problem."""
        self._set(inputs)
        started = time.perf_counter()
        self.problem.solve(solver=self.settings.solver)
        solve_s = time.perf_counter() - started
        status = str(self.problem.status)
        n_s, n_p, h = self.n_services, self.n_pools, self.settings.horizon_steps
        if self.up.value is None or status not in (cp.OPTIMAL, cp.OPTIMAL_INACCURATE):
            # keep what runs: no change is always a safe answer
            now = np.asarray(inputs.ready_replicas) + np.asarray(inputs.pending_replicas)
            held = np.clip(now, inputs.min_replicas, inputs.max_replicas)
            return MpcPlan(np.rint(held).astype(np.int64), np.repeat(held[:, None], h, axis=1),
                           np.repeat(np.asarray(inputs.ready_replicas, dtype=np.float64)[:, None], h, axis=1),
                           np.zeros((n_s, h)), np.zeros((n_p, h)), np.zeros((n_p, h)), status, solve_s)
        replicas = np.asarray(self.replicas.value, dtype=np.float64)
        # the LP is a relaxation: round up, but not for solver noise (1e-6) or slivers of a replica
        first = np.ceil(replicas[:, 0] - 0.05)
        setpoints = np.clip(first, inputs.min_replicas, inputs.max_replicas).astype(np.int64)
        duals = self.pool_constraint.dual_value
        prices = np.zeros((n_p, h)) if duals is None or not n_p else np.asarray(duals, dtype=np.float64)[:n_p]
        usage = np.asarray(self.usage.value, dtype=np.float64)[:n_p]
        return MpcPlan(setpoints, replicas, np.asarray(self.ready.value, dtype=np.float64),
                       np.maximum(np.asarray(self.shortfall.value, dtype=np.float64), 0.0),
                       np.maximum(prices, 0.0), usage, status, solve_s)


def _stack_rows(blocks: list[Any]) -> Any:
    """The blocks of services' rows as one expression (one block as it is: the program of a single block is
    compiled exactly as before blocks existed)."""
    return cp.vstack(blocks) if len(blocks) > 1 else blocks[0]


def make_mpc(n_services: int, n_pools: int, settings: MpcSettings | None = None) -> Mpc:
    """Build the replica MPC once for `n_services` services and `n_pools` resource pools."""
    return Mpc(n_services, n_pools, settings or MpcSettings())


def cold_start_onehot(cold_start_steps: IntArray, horizon_steps: int) -> FloatArray:
    """[S, H] row s has a 1 at column d_s (none when d_s ≥ H: the replica is not Ready within the horizon)."""
    steps = np.asarray(cold_start_steps, dtype=np.int64)
    out = np.zeros((steps.shape[0], horizon_steps))
    inside = (steps >= 0) & (steps < horizon_steps)
    out[np.flatnonzero(inside), steps[inside]] = 1.0
    return out


def pending_ready_by_step(pending_replicas: FloatArray, cold_start_steps: IntArray, horizon_steps: int) -> FloatArray:
    """[S, H] pending replicas expected Ready by each step: they have run half their cold start on average,
    so they count from step ⌈d/2⌉."""
    remaining = np.ceil(np.asarray(cold_start_steps, dtype=np.float64) / 2.0)
    ready_by = np.arange(horizon_steps)[None, :] >= remaining[:, None]
    return np.asarray(np.where(ready_by, np.asarray(pending_replicas, dtype=np.float64)[:, None], 0.0))


# ---------------------------------------------------------------------------------------------------- pools


@dataclass(frozen=True, slots=True)
class ResourcePools:
    """Resource pools derived from the nodes: CPU cores and accelerators per region.

    A region's CPU pool holds the cores of its CPU and MCU nodes; its accelerator pool the GPUs and TPUs
    (a replica of an accelerated service books one accelerator per `accelerator_request`; the cores it
    also asks for on a GPU node, 8 per accelerator there, are not what runs out first)."""

    names: tuple[str, ...]
    """e.g. `region-0/cpu`, `region-0/accelerators`."""
    region: IntArray
    """[P] index into the observation's regions."""
    is_accelerator: BoolArray
    """[P] accelerators (True) or CPU cores (False)."""
    capacity: FloatArray
    """[P] schedulable allocatable units (nodes Ready and not quarantined)."""

    def usage_per_replica(self, observation: Observation, region_share: FloatArray) -> FloatArray:
        """[P, S] units one replica of each service books in each pool, given where its replicas go
        (`region_share[s, region]`, rows summing to 1)."""
        accelerators = np.array([float(s.accelerator_request) for s in observation.services])
        cpu = np.array([s.cpu_request for s in observation.services])
        cpu_only = np.where(accelerators > 0, 0.0, cpu)
        per_unit = np.where(self.is_accelerator[:, None], accelerators[None, :], cpu_only[None, :])
        return np.asarray(region_share.T[self.region] * per_unit, dtype=np.float64)


def resource_pools(observation: Observation) -> ResourcePools:
    """A CPU pool and, where there are accelerators, an accelerator pool per region."""
    region_of = {name: i for i, name in enumerate(observation.regions)}
    node_region = np.array([region_of[n.region] for n in observation.nodes], dtype=np.int64)
    usable = observation.node_ready & ~observation.node_quarantined
    accelerated = np.array([n.accelerators > 0 for n in observation.nodes], dtype=bool)
    cores = np.array([n.cpu_cores for n in observation.nodes])
    accelerators = np.array([float(n.accelerators) for n in observation.nodes])
    names: list[str] = []
    regions: list[int] = []
    is_accelerator: list[bool] = []
    capacity: list[float] = []
    for r, region in enumerate(observation.regions):
        in_region = node_region == r
        names.append(f"{region}/cpu")
        regions.append(r)
        is_accelerator.append(False)
        capacity.append(float(cores[in_region & usable & ~accelerated].sum()))
        if accelerators[in_region].sum() > 0:
            names.append(f"{region}/accelerators")
            regions.append(r)
            is_accelerator.append(True)
            capacity.append(float(accelerators[in_region & usable].sum()))
    return ResourcePools(tuple(names), np.array(regions, dtype=np.int64), np.array(is_accelerator, dtype=bool),
                         np.array(capacity))


# ---------------------------------------------------------------------------------------------------- residual


def bound_residual(setpoints: IntArray, adjusted: IntArray, max_change_replicas: int | IntArray,
                   min_replicas: IntArray, max_replicas: IntArray) -> IntArray:
    """The MPC's set-points as corrected by a learned residual, clamped to ±`max_change_replicas` of the
    MPC's answer and to the services' bounds (the residual may refine, never override)."""
    adjusted = np.asarray(adjusted)
    if adjusted.shape != setpoints.shape:
        raise ValueError(f"the residual must return shape {setpoints.shape}, got {adjusted.shape}")
    bounded = np.clip(np.rint(adjusted).astype(np.int64), setpoints - max_change_replicas,
                      setpoints + max_change_replicas)
    return np.clip(bounded, min_replicas, max_replicas).astype(np.int64)
