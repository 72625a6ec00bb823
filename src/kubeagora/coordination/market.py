"""Clearing shared capacity as a market: one price per resource pool, set until supply meets demand.

The problem is network utility maximisation over replicas (Kelly, Maulloo & Tan 1998):

    maximise   Σ_i U_i(x_i)                     x_i: replicas of service i (continuous)
    subject to Σ_i a_ip · x_i ≤ c_p  for every pool p       (CPU cores of a region, its accelerators)
               min_i ≤ x_i ≤ max_i

with the concave utility U_i(x) = w_i · n_i · log(1 + x / n_i): w_i is what the first replica is
worth (the service's priority weight), n_i the replicas it needs to meet its SLO. A replica's
marginal SLO value, U_i'(x) = w_i / (1 + x / n_i), is w_i for the first one, w_i / 2 when the need is
met, and keeps falling beyond it.

Dual decomposition (Palomar & Chiang, "A Tutorial on Decomposition Methods for Network Utility
Maximization", IEEE JSAC 24(8), 2006): relax the capacity constraints with prices λ_p ≥ 0, the
Lagrange multipliers. Given prices, each service's best response is one-dimensional and closed
form — buy replicas until the marginal value equals the bundle's price q_i = Σ_p a_ip λ_p:

    x_i(λ) = clip(n_i · (w_i / q_i − 1), min_i, max_i)

and the prices move with excess demand: Walras's tâtonnement, which minimises the dual function
g(λ) = Σ_i max_x [U_i(x) − q_i x] + λ·c (its gradient is minus the excess demand, so prices rise
where demand exceeds supply). We run it Gauss–Seidel style, as dual coordinate descent
(Bertsekas & Tsitsiklis, "Parallel and Distributed Computation: Numerical Methods", 1989): in
each sweep every pool in turn sets the price that clears it while the other prices stand still.
Excess demand falls with the pool's own price, so that price is bracketed and found by
safeguarded Newton steps on the demand slope (bisection where a step would leave the bracket, as
at the kinks where a service hits its min or max). Scaled gradient steps on all pools at once
(Jacobi) cycled at those kinks on random instances; one pool at a time does not. The market
stops when every pool's excess demand is within `tolerance` of its capacity (and a pool with
spare capacity has price 0), or after `max_sweeps`. Warm-started from the last
tick's prices it clears in a few sweeps.

At the clearing prices the allocation is the centralised optimum and the prices are the optimal
duals (strong duality holds: concave objective, linear constraints). `tests/unit/test_market.py`
checks both against cvxpy.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from kubeagora.model import FloatArray, NodeClass, Observation, Service

ACCELERATOR_CLASSES = frozenset({NodeClass.GPU, NodeClass.TPU})


@dataclass(frozen=True, slots=True)
class ResourcePools:
    """What is for sale: each pool's name (e.g. "cpu:region-0") and capacity in its own unit."""

    names: tuple[str, ...]
    capacity: FloatArray
    """Cores for a CPU pool, devices for an accelerator pool."""


@dataclass(frozen=True, slots=True)
class ReplicaDemands:
    """The buyers: one row per service, arrays indexed like `services`."""

    services: tuple[str, ...]
    value_per_replica: FloatArray
    """w_i: the marginal SLO value of the first replica (priority weight × value unit)."""
    needed_replicas: FloatArray
    """n_i > 0: replicas the service needs for its SLO at the forecast load."""
    min_replicas: FloatArray
    max_replicas: FloatArray
    usage_per_replica: FloatArray
    """[service, pool]: units of each pool one replica takes (cores, accelerators)."""

    def __post_init__(self) -> None:
        n = len(self.services)
        shapes = {"value_per_replica": self.value_per_replica, "needed_replicas": self.needed_replicas,
                  "min_replicas": self.min_replicas, "max_replicas": self.max_replicas}
        for name, values in shapes.items():
            if values.shape != (n,):
                raise ValueError(f"{name} has shape {values.shape}, expected ({n},) — one per service")
        if self.usage_per_replica.ndim != 2 or self.usage_per_replica.shape[0] != n:
            raise ValueError(f"usage_per_replica has shape {self.usage_per_replica.shape}, expected ({n}, pools)")
        if (self.needed_replicas <= 0).any() or (self.value_per_replica <= 0).any():
            raise ValueError("needed_replicas and value_per_replica must be positive")
        if (self.min_replicas > self.max_replicas).any() or (self.min_replicas < 0).any():
            raise ValueError("replica bounds must satisfy 0 ≤ min_replicas ≤ max_replicas")
        if (self.usage_per_replica < 0).any():
            raise ValueError("usage_per_replica must be ≥ 0")


@dataclass(frozen=True, slots=True)
class MarketSettings:
    tolerance: float = 1e-4
    """Largest excess demand accepted at clearing, as a share of the pool's capacity."""
    max_sweeps: int = 200
    """Rounds over all pools (each pool cleared in turn) before giving up."""


@dataclass(frozen=True, slots=True)
class MarketClearing:
    """The outcome: prices, who gets what, and how well the market cleared."""

    pool_names: tuple[str, ...]
    price_per_unit: FloatArray
    """λ_p: value per core (or per accelerator) at the margin — the capacity constraint's multiplier."""
    demanded_replicas: FloatArray
    """Each service's best response to the final prices (may exceed capacity by the tolerance)."""
    replicas: FloatArray
    """The allocation, scaled back where needed so that no pool is over its capacity."""
    utility: float
    """Σ U_i(replicas)."""
    sweeps: int
    """Rounds over the pools it took (1 when the starting prices already cleared)."""
    converged: bool
    max_excess_fraction: float
    """Largest (demand − capacity) / capacity over the pools at the final prices."""

    def prices(self) -> dict[str, float]:
        """Price per pool name (what `AgentContext.prices` carries)."""
        return dict(zip(self.pool_names, (float(p) for p in self.price_per_unit), strict=True))


def utility(demands: ReplicaDemands, replicas: FloatArray) -> FloatArray:
    """U_i(x) = w_i · n_i · log(1 + x / n_i), per service."""
    n = demands.needed_replicas
    return np.asarray(demands.value_per_replica * n * np.log1p(replicas / n), dtype=np.float64)


def marginal_value(demands: ReplicaDemands, replicas: FloatArray) -> FloatArray:
    """U_i'(x) = w_i / (1 + x / n_i): what one more replica is worth."""
    return np.asarray(demands.value_per_replica / (1.0 + replicas / demands.needed_replicas), dtype=np.float64)


def bundle_price(demands: ReplicaDemands, price_per_unit: FloatArray) -> FloatArray:
    """q_i = Σ_p a_ip λ_p: what one replica of each service costs at these prices."""
    return np.asarray(demands.usage_per_replica @ price_per_unit, dtype=np.float64)


def best_response(demands: ReplicaDemands, price_per_unit: FloatArray) -> FloatArray:
    """Each service's replicas that maximise U_i(x) − q_i·x within its bounds: U_i'(x) = q_i."""
    q = bundle_price(demands, price_per_unit)
    with np.errstate(divide="ignore"):
        unconstrained = np.where(q > 0, demands.needed_replicas * (demands.value_per_replica / q - 1.0), np.inf)
    return np.asarray(np.clip(unconstrained, demands.min_replicas, demands.max_replicas), dtype=np.float64)


def dual_value(demands: ReplicaDemands, pools: ResourcePools, price_per_unit: FloatArray) -> float:
    """g(λ) = Σ_i max_x [U_i(x) − q_i x] + λ·c: an upper bound on the optimum, equal to it at clearing prices."""
    x = best_response(demands, price_per_unit)
    q = bundle_price(demands, price_per_unit)
    return float(np.sum(utility(demands, x) - q * x) + price_per_unit @ pools.capacity)


def feasible_allocation(demands: ReplicaDemands, pools: ResourcePools, replicas: FloatArray) -> FloatArray:
    """Scale each service's replicas above its minimum back by its tightest pool's overshoot.

    The best response at prices that cleared to within the tolerance may overshoot a pool by that
    tolerance; this takes the overshoot back proportionally, so the allocation is one a cluster can
    hold (if the minimums themselves fit).
    """
    a = demands.usage_per_replica
    above_min = replicas - demands.min_replicas
    room = pools.capacity - demands.min_replicas @ a
    wanted = above_min @ a
    with np.errstate(divide="ignore", invalid="ignore"):
        share = np.where(wanted > room, np.clip(room / wanted, 0.0, 1.0), 1.0)
    per_service = np.min(np.where(a > 0, share[None, :], 1.0), axis=1, initial=1.0)
    return np.asarray(demands.min_replicas + above_min * per_service, dtype=np.float64)


def _clear_one_pool(demands: ReplicaDemands, price_per_unit: FloatArray, pool: int, capacity: float,
                    tolerance: float, max_steps: int = 100) -> float:
    """The price of `pool` that clears it while the other pools' prices stand still.

    The pool's excess demand falls as its price rises (each user's best response falls with its
    bundle price), so a bracket [price with excess demand, price without] always holds the answer;
    Newton steps on the demand slope find it fast, bisection takes over when a step would leave the
    bracket (at a bound the slope is flat on one side).
    """
    users = np.flatnonzero(demands.usage_per_replica[:, pool] > 0)
    if users.size == 0:
        return 0.0
    a = demands.usage_per_replica[users, pool]
    w = demands.value_per_replica[users]
    n = demands.needed_replicas[users]
    low_bound, high_bound = demands.min_replicas[users], demands.max_replicas[users]
    others = demands.usage_per_replica[users] @ price_per_unit - a * price_per_unit[pool]

    def excess_and_slope(price: float) -> tuple[float, float]:
        q = others + a * price
        with np.errstate(divide="ignore"):
            want = np.where(q > 0, n * (w / q - 1.0), np.inf)
        x = np.clip(want, low_bound, high_bound)
        interior = (want > low_bound) & (want < high_bound)
        slope = float(np.sum(np.where(interior, a * a * n * w / np.where(q > 0, q, 1.0) ** 2, 0.0)))
        return float(a @ x) - capacity, slope

    excess, slope = excess_and_slope(0.0)
    if excess <= 0:
        return 0.0  # spare capacity at price 0: complementary slackness
    # every user at its minimum from this price up: excess demand cannot fall further
    high = max(float(np.max((w / (1.0 + low_bound / n) - others) / a)), 0.0)
    high_excess, _ = excess_and_slope(high)
    if high_excess > 0:
        return high  # the minimums alone overfill the pool; a higher price changes nothing
    low = 0.0
    price = float(np.clip(price_per_unit[pool], low, high))
    for _ in range(max_steps):
        excess, slope = excess_and_slope(price)
        if abs(excess) <= tolerance * capacity:
            return price
        if excess > 0:
            low = price
        else:
            high = price
        newton = price + excess / slope if slope > 0 else np.nan
        price = newton if low < newton < high else (low + high) / 2.0
        if high - low <= 1e-15 * max(high, 1.0):
            break
    return price


def clear_market(demands: ReplicaDemands, pools: ResourcePools, settings: MarketSettings | None = None,
                 initial_prices: FloatArray | None = None) -> MarketClearing:
    """Prices and allocation by tâtonnement; warm-start with last tick's prices to clear in a few sweeps."""
    cfg = settings or MarketSettings()
    a = demands.usage_per_replica
    if a.shape[1] != len(pools.names):
        raise ValueError(f"usage_per_replica has {a.shape[1]} pools, the pools are {len(pools.names)}")
    capacity = np.maximum(np.asarray(pools.capacity, dtype=np.float64), 1e-12)
    prices = (np.zeros(len(pools.names)) if initial_prices is None
              else np.maximum(np.asarray(initial_prices, dtype=np.float64), 0.0))
    sweeps, converged = 0, False
    while sweeps < cfg.max_sweeps:
        sweeps += 1
        x = best_response(demands, prices)
        relative = (x @ a - capacity) / capacity
        cleared = (relative <= cfg.tolerance) & ((prices <= 0) | (relative >= -cfg.tolerance))
        if cleared.all():
            converged = True
            break
        for pool in range(len(pools.names)):
            prices[pool] = _clear_one_pool(demands, prices, pool, float(capacity[pool]), cfg.tolerance / 4)
    x = best_response(demands, prices)
    allocation = feasible_allocation(demands, pools, x)
    return MarketClearing(
        pool_names=pools.names,
        price_per_unit=prices,
        demanded_replicas=x,
        replicas=allocation,
        utility=float(np.sum(utility(demands, allocation))),
        sweeps=sweeps,
        converged=converged,
        max_excess_fraction=float(np.max((x @ a - capacity) / capacity, initial=-np.inf)),
    )


# ---------------------------------------------------------------------------- from an Observation
def home_region(service: Service) -> str:
    """Where the market buys a service's replicas: its users' region if residency allows, else its first allowed."""
    allowed = service.allowed_regions
    if allowed is None or service.origin_region in allowed:
        return service.origin_region
    return allowed[0]


def uses_accelerators(service: Service) -> bool:
    """Its replicas take accelerators: it asks for them and runs only on (or is pinned to) GPU/TPU nodes."""
    if service.accelerator_request <= 0:
        return False
    pinned = service.accelerator_affinity in ACCELERATOR_CLASSES
    return pinned or all(c in ACCELERATOR_CLASSES for c in service.service_time_ms)


def pools_from_observation(observation: Observation) -> ResourcePools:
    """CPU cores and accelerators per region, counting nodes that are Ready and not quarantined."""
    obs = observation
    usable = obs.node_ready & ~obs.node_quarantined
    names: list[str] = []
    capacity: list[float] = []
    for region in obs.regions:
        in_region = usable & np.array([n.region == region for n in obs.nodes], dtype=np.bool_)
        names.append(f"cpu:{region}")
        capacity.append(float(sum(n.cpu_cores for n, ok in zip(obs.nodes, in_region, strict=True) if ok)))
        names.append(f"accelerators:{region}")
        capacity.append(float(sum(n.accelerators for n, ok in zip(obs.nodes, in_region, strict=True) if ok)))
    return ResourcePools(tuple(names), np.array(capacity, dtype=np.float64))


MIN_BIDDER_WEIGHT = 0.05
"""A distrusted bidder's value is scaled by its trust, never below this share (values must stay positive)."""


def demands_from_observation(observation: Observation, needed_replicas: Sequence[float] | FloatArray,
                             pools: ResourcePools, value_unit: float = 1.0,
                             bidder_trust: Sequence[float] | None = None) -> ReplicaDemands:
    """Each service bids for its home region's cores (and accelerators), valued by its priority weight
    (times its bidder's trust, when given: one per service, 1 = fully trusted).

    `needed_replicas` comes from the scaling agent (forecast load over per-replica capacity at the SLO).
    """
    obs = observation
    pool_index = {name: j for j, name in enumerate(pools.names)}
    usage = np.zeros((len(obs.services), len(pools.names)))
    for i, s in enumerate(obs.services):
        region = home_region(s)
        usage[i, pool_index[f"cpu:{region}"]] = s.cpu_request
        if uses_accelerators(s):
            usage[i, pool_index[f"accelerators:{region}"]] = s.accelerator_request
    return ReplicaDemands(
        services=tuple(s.name for s in obs.services),
        value_per_replica=np.array([value_unit * s.priority_weight for s in obs.services], dtype=np.float64)
        * (1.0 if bidder_trust is None else np.clip(np.asarray(bidder_trust, dtype=np.float64), MIN_BIDDER_WEIGHT,
                                                    1.0)),
        needed_replicas=np.maximum(np.asarray(needed_replicas, dtype=np.float64), 1e-3),
        min_replicas=np.array([s.min_replicas for s in obs.services], dtype=np.float64),
        max_replicas=np.array([s.max_replicas for s in obs.services], dtype=np.float64),
        usage_per_replica=usage,
    )
