"""Fidelity of the fast engine against the exact per-request simulation.

Each case is a small variant of a built-in scenario (see `kubeagora.sim.fidelity.CASES`) run with a
fixed replica plan; the per-request simulation replays the engine's arrival counts and packet-loss
states. Per case, over the seeds: the SLO violation share, the tail latency over all requests and
the engine's relative error; window by window, the share of (service, window) verdicts that agree and
the mean absolute relative error of the windows' p95/p99. docs/benchmarks.md cites its output. Usage:

    python benchmarks/fidelity.py                       # every case (and the unit tests' case), seeds 1–3
    python benchmarks/fidelity.py --seeds 1,2,3,4,5 --cases utilisation-0.90,near-far
    python benchmarks/fidelity.py --ablate scatter      # the engine judging its expected histogram instead
    python benchmarks/fidelity.py --ablate groups       # a service's replicas merged into one group
    python benchmarks/fidelity.py --second-draw         # + a second per-request draw against the first

The ablations switch one part of the engine's model off for the run (they exist to show what each
part contributes; the engine itself has no such switch).
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np

from kubeagora.model import FloatArray
from kubeagora.sim import latency, verdict
from kubeagora.sim.fidelity import CASES, CI_CASE, TOLERANCE, TOLERANCE_POINTS, summarise


def _expected_histogram_verdict(share95: FloatArray, variance95: FloatArray, share99: FloatArray,
                                variance99: FloatArray) -> FloatArray:
    """The window violates iff its expected histogram does (no scatter)."""
    return np.asarray((share95 > verdict.P95_LEVEL) | (share99 > verdict.P99_LEVEL), dtype=np.float64)


ABLATIONS = {
    "scatter": lambda: setattr(verdict, "violation_probability", _expected_histogram_verdict),
    "groups": lambda: setattr(latency, "FAR_LATENCY_FACTOR", 1e12),
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", default="1,2,3", help="comma-separated seeds")
    ap.add_argument("--cases", default="", help="comma-separated case names (default: all)")
    ap.add_argument("--ablate", choices=sorted(ABLATIONS), help="switch one part of the engine's model off")
    ap.add_argument("--second-draw", action="store_true",
                    help="a second per-request run per seed: how far one draw of the truth is from another")
    args = ap.parse_args()
    if args.ablate:
        ABLATIONS[args.ablate]()
    seeds: tuple[int | None, ...] = tuple(int(s) for s in args.seeds.split(","))
    cases = (*CASES, CI_CASE)
    names = [c.name for c in cases]
    wanted = args.cases.split(",") if args.cases else names
    unknown = [w for w in wanted if w not in names]
    if unknown:
        print(f"unknown case(s) {', '.join(unknown)} (known: {', '.join(names)})", file=sys.stderr)
        raise SystemExit(2)
    started = time.perf_counter()
    extra = " DES 2nd draw: SLO viol. % (largest seed diff) · window p95 / p99 MAE vs 1st |" if args.second_draw else ""
    print("| case | util mean / max | SLO viol. % engine / DES | p95 ms engine / DES | p99 ms engine / DES "
          f"| verdicts agree | window p95 / p99 MAE | engine s / DES s |{extra}")
    print("|---|---|---|---|---|---:|---|---|" + ("---|" if extra else ""))
    # each cell: the means over the seeds (their relative error), then the seeds' own errors, lowest to
    # highest (in points where a seed's per-request violation share is under 5 %), and how many seeds
    # are outside the tolerance on their own
    misses: list[str] = []
    seed_misses: list[str] = []
    for case in cases:
        if case.name not in wanted:
            continue
        c = summarise(case, seeds, args.second_draw)
        e, d = c.engine, c.des
        cells = []
        for key, digits in (("slo_violation_pct", 2), ("p95_ms", 1), ("p99_ms", 1)):
            mark = "" if c.agrees(key) else " ✗"
            errs, in_points = c.seed_errors(key)
            spread = (f"{min(errs):+.2f}…{max(errs):+.2f} pt" if in_points
                      else f"{100 * min(errs):+.0f}…{100 * max(errs):+.0f} %") if len(errs) > 1 else ""
            outside = c.seeds_outside(key)
            spread += f", {outside} seed{'s' if outside != 1 else ''} out" if outside else ""
            if outside:
                seed_misses.append(f"{case.name} {key} ({outside}/{len(seeds)})")
            cells.append(f"{e[key]:.{digits}f} / {d[key]:.{digits}f} ({100 * c.error(key):+.0f} %{mark}"
                         f"{'; ' + spread if spread else ''})")
            if mark:
                misses.append(f"{case.name} {key}")
        mae = f"{100 * c.window_p95_error:.0f} / {100 * c.window_p99_error:.0f} %"
        again = ""
        if c.second_draw is not None:
            slo2, worst, w95, w99 = c.second_draw
            again = f" {slo2:.2f} (±{100 * worst:.0f} %) · {100 * w95:.0f} / {100 * w99:.0f} % |"
        print(f"| {case.name} | {c.utilisation[0]:.2f} / {c.utilisation[1]:.2f} | {' | '.join(cells)} "
              f"| {100 * c.verdict_agreement:.0f} % | {mae} | {c.engine_s:.1f} / {c.des_s:.1f} |{again}", flush=True)
    ablated = f"; ablation: {args.ablate}" if args.ablate else ""
    print(f"\nseeds {','.join(str(s) for s in seeds)}{ablated}; tolerance ±{100 * TOLERANCE:.0f} % "
          f"(±{TOLERANCE_POINTS:.0f} point where the per-request SLO violation share is under 5 %); "
          f"{time.perf_counter() - started:.0f} s")
    print("outside (means over the seeds): " + (", ".join(misses) if misses else "none"))
    print("outside (single seeds): " + (", ".join(seed_misses) if seed_misses else "none"))


if __name__ == "__main__":
    main()
