"""Control at scale (the seed paper's Table 3): p99, SLO violations and controller overhead per request
at 100 / 500 / 1,000 services on about 200 nodes, side by side for the controllers named.

Overhead twice: µs of controller CPU per request served, and the CPU cores the controller needs to
keep up at real time (its CPU seconds per simulated second), scaled to 1,000 services. µs per
request hides the second: a controller serving a busy cluster looks cheap per request and still
needs a sizeable part of a core.

    python benchmarks/scale_services.py                         # hpa and mas, 15 simulated minutes each
    python benchmarks/scale_services.py --services 100,1000 --controllers hpa,mpc,mas --minutes 10
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from kubeagora.controllers.registry import make_controller
from kubeagora.sim.run import simulate
from kubeagora.sim.scenario import compile_scenario

sys.path.insert(0, str(Path(__file__).parent))
from speed import scenario  # the same 200-node, diurnal service mix as the speed benchmark


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--services", default="100,500,1000")
    ap.add_argument("--controllers", default="hpa,mas")
    ap.add_argument("--minutes", type=float, default=15.0)
    args = ap.parse_args()
    print("| services | controller | p99 ms | SLO violations % | overhead µs/req | cores at real time | "
          "cores per 1,000 services | replica-s | wall s |")
    print("|---:|---|---:|---:|---:|---:|---:|---:|---:|")
    for n in (int(x) for x in args.services.split(",")):
        compiled = compile_scenario(scenario(n, max(1, n // 1000), args.minutes / 60.0), "scale")
        for name in args.controllers.split(","):
            r = simulate(compiled, make_controller(name, compiled))
            m = r.metrics
            cores = r.extras["controller_cores"]
            print(f"| {n} | {name} | {m['p99_ms']:.0f} | {m['slo_violation_pct']:.2f} | "
                  f"{m['overhead_us_per_req']:.2f} | {cores:.3f} | {cores * 1000 / n:.3f} | "
                  f"{m['replica_seconds']:.0f} | {r.wall_s:.0f} |", flush=True)


if __name__ == "__main__":
    main()
