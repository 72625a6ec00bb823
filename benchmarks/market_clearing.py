"""Market clearing time at 100 / 1,000 / 10,000 services, against cvxpy solving the same problem centrally.

Services spread over 4 regions, each a CPU pool and an accelerator pool; a fifth of the services
also take accelerators; capacity covers the minimums plus half of what the services need beyond
them, so every pool is contested. "cold" starts from zero prices; "warm" starts from the previous
tick's prices after every service's need moved by up to ±10 % (what the controller does each tick).
Usage:

    python benchmarks/market_clearing.py
    python benchmarks/market_clearing.py --services 100,1000 --repeats 20
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace

import cvxpy as cp
import numpy as np

from kubeagora.coordination.market import ReplicaDemands, ResourcePools, clear_market, utility


def instance(services: int, regions: int, rng: np.random.Generator) -> tuple[ReplicaDemands, ResourcePools]:
    region = rng.integers(0, regions, services)
    on_accelerators = rng.random(services) < 0.2
    usage = np.zeros((services, 2 * regions))
    usage[np.arange(services), 2 * region] = rng.choice([0.25, 0.5, 1.0, 2.0, 4.0], services)
    usage[on_accelerators, 2 * region[on_accelerators] + 1] = rng.choice([1.0, 2.0], int(on_accelerators.sum()))
    min_replicas = rng.integers(0, 3, services).astype(np.float64)
    needed = rng.uniform(1.0, 20.0, services)
    demands = ReplicaDemands(tuple(f"svc-{i}" for i in range(services)), rng.uniform(0.5, 5.0, services), needed,
                             min_replicas, min_replicas + rng.uniform(5.0, 60.0, services), usage)
    capacity = min_replicas @ usage + 0.5 * (needed @ usage)
    names = tuple(f"{kind}:region-{r}" for r in range(regions) for kind in ("cpu", "accelerators"))
    return demands, ResourcePools(names, capacity)


def centralised_utility(demands: ReplicaDemands, pools: ResourcePools) -> tuple[float, float]:
    x = cp.Variable(len(demands.services))
    n, w = demands.needed_replicas, demands.value_per_replica
    problem = cp.Problem(cp.Maximize(cp.sum(cp.multiply(w * n, cp.log(n + x)))),
                         [demands.usage_per_replica.T @ x <= pools.capacity,
                          x >= demands.min_replicas, x <= demands.max_replicas])
    start = time.perf_counter()
    problem.solve(solver=cp.CLARABEL)
    wall_s = time.perf_counter() - start
    allocation = np.clip(np.asarray(x.value), demands.min_replicas, demands.max_replicas)
    return float(np.sum(utility(demands, allocation))), wall_s


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--services", default="100,1000,10000")
    parser.add_argument("--regions", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    print(f"{'services':>9} {'cold ms':>9} {'sweeps':>7} {'warm ms':>9} {'sweeps':>7} "
          f"{'cvxpy ms':>9} {'utility vs cvxpy':>17}")
    for services in (int(s) for s in args.services.split(",")):
        demands, pools = instance(services, args.regions, rng)
        cold_s, warm_s, warm_sweeps = [], [], []
        for _ in range(args.repeats):
            start = time.perf_counter()
            cold = clear_market(demands, pools)
            cold_s.append(time.perf_counter() - start)
            moved = replace(demands, needed_replicas=demands.needed_replicas * rng.uniform(0.9, 1.1, services))
            start = time.perf_counter()
            warm = clear_market(moved, pools, initial_prices=cold.price_per_unit)
            warm_s.append(time.perf_counter() - start)
            warm_sweeps.append(warm.sweeps)
        optimum, cvxpy_s = centralised_utility(demands, pools)
        gap_pct = 100.0 * (cold.utility - optimum) / optimum
        print(f"{services:>9} {1e3 * np.median(cold_s):>9.2f} {cold.sweeps:>7} {1e3 * np.median(warm_s):>9.2f} "
              f"{int(np.median(warm_sweeps)):>7} {1e3 * cvxpy_s:>9.1f} {gap_pct:>+16.4f}%")


if __name__ == "__main__":
    main()
