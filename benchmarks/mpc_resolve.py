"""Re-solving the compiled (DPP) replica MPC against building and solving it from scratch.

For each service count: the time to build the problem and solve it the first time (cvxpy canonicalizes
it then), and the median time of later solves that only write new Parameter values. Inputs are
random but realistic (web-like services, demand 50–800 req/s, four pools). Usage:

    python benchmarks/mpc_resolve.py                   # 12 and 100 services
    python benchmarks/mpc_resolve.py --services 12,100,500 --repeats 20
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

from kubeagora.decision.mpc import MpcInputs, MpcSettings, make_mpc


def random_inputs(n_services: int, n_pools: int, horizon: int, rng: np.random.Generator) -> MpcInputs:
    s, p, h = n_services, n_pools, horizon
    ready = rng.integers(1, 8, s).astype(float)
    return MpcInputs(
        demand_rps=rng.uniform(50.0, 800.0, (s, 1)) * rng.uniform(0.9, 1.2, (s, h)),
        ready_replicas=ready, pending_replicas=np.zeros(s), pending_ready_replicas=np.zeros((s, h)),
        safe_capacity_rps=rng.uniform(60.0, 130.0, s), cold_start_steps=rng.integers(1, 4, s),
        min_replicas=np.ones(s), max_replicas=np.full(s, 50.0), priority_weight=rng.choice([1.0, 2.0], s),
        change_cost=np.full(s, 0.0002), energy_cost_per_replica_hour=np.full(s, 0.002),
        pool_usage=np.where(rng.random((p, s)) < 1.0 / p, 0.5, 0.0), pool_capacity=np.full(p, 3.0 * s / p),
        price_per_unit_hour=np.full(p, 0.04),
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--services", default="12,100", help="comma-separated service counts")
    ap.add_argument("--repeats", type=int, default=10, help="re-solves timed per size")
    ap.add_argument("--solver", default=MpcSettings().solver)
    args = ap.parse_args()
    settings = MpcSettings(solver=args.solver)
    print("| services | build + first solve ms | re-solve ms (median) | of which solver ms | speed-up |")
    print("|---|---|---|---|---|")
    for n_services in (int(x) for x in args.services.split(",")):
        rng = np.random.default_rng(n_services)
        cases = [random_inputs(n_services, 4, settings.horizon_steps, rng) for _ in range(args.repeats + 1)]
        started = time.perf_counter()
        mpc = make_mpc(n_services, 4, settings)
        mpc.solve(cases[0])
        rebuild_ms = 1000.0 * (time.perf_counter() - started)
        resolve_ms, solver_ms = [], []
        for case in cases[1:]:
            started = time.perf_counter()
            mpc.solve(case)
            resolve_ms.append(1000.0 * (time.perf_counter() - started))
            if mpc.problem.solver_stats.solve_time is not None:
                solver_ms.append(1000.0 * float(mpc.problem.solver_stats.solve_time))
        median = statistics.median(resolve_ms)
        solver = f"{statistics.median(solver_ms):.1f}" if solver_ms else "not reported"
        print(f"| {n_services} | {rebuild_ms:.0f} | {median:.1f} | {solver} | {rebuild_ms / median:.1f}× |")


if __name__ == "__main__":
    main()
