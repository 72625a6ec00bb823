"""Fidelity of the fast engine against the exact per-request simulation.

Each case is a small variant of a built-in scenario (see `kubeagora.sim.fidelity.CASES`) run with a
fixed replica plan sized for a target utilisation; the table gives the tail latency over all
requests from both and the engine's relative error. docs/benchmarks.md cites its output. Usage:

    python benchmarks/fidelity.py                 # every case, each scenario's own seed
    python benchmarks/fidelity.py --seeds 1,2,3   # the spread over seeds
"""

from __future__ import annotations

import argparse

from kubeagora.sim.fidelity import CASES, TOLERANCE, compare


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", default="", help="comma-separated seeds (default: each scenario's own)")
    args = ap.parse_args()
    seeds: list[int | None] = [int(s) for s in args.seeds.split(",")] if args.seeds else [None]
    print(f"| {'scenario':<20} | seed | requests | util mean/max | engine p95 / p99 ms | DES p95 / p99 ms "
          f"| p95 err | p99 err | engine s | DES s |")
    print("|" + "|".join("-" * w for w in (22, 6, 10, 15, 21, 18, 9, 9, 10, 7)) + "|")
    worst = 0.0
    for case in CASES:
        for seed in seeds:
            c = compare(case, seed)
            e, d = c.engine.metrics, c.des.metrics
            err95, err99 = c.error("p95_ms"), c.error("p99_ms")
            worst = max(worst, abs(err95), abs(err99))
            print(f"| {case.name:<20} | {c.seed:>4} | {c.requests:>8} | {c.mean_utilisation:>5.2f} / "
                  f"{c.max_utilisation:.2f} | {e['p95_ms']:>8.1f} / {e['p99_ms']:>8.1f} | "
                  f"{d['p95_ms']:>7.1f} / {d['p99_ms']:>7.1f} | "
                  f"{100 * err95:>+6.1f} % | {100 * err99:>+6.1f} % | "
                  f"{c.engine.wall_s:>8.2f} | {c.des.wall_s:>5.2f} |")
    verdict = "within" if worst <= TOLERANCE else "OUTSIDE"
    print(f"\nlargest |error| {100 * worst:.1f} % ({verdict} the {100 * TOLERANCE:.0f} % target)")


if __name__ == "__main__":
    main()
