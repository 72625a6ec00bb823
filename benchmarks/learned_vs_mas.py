"""mas with the learned residual against mas without it (and the clairvoyant planner), from a bench JSON.

Reads the runs of `kubeagora bench --controllers mas,mas-learned,... --json FILE` and prints, per
scenario and over every (scenario, seed) pair, the paired difference of SLO violations (percentage
points, 95 % bootstrap interval: mas-learned beats mas only where the interval is below zero) and the
ratios of violations and replica-seconds, plus mas-learned against the clairvoyant planner where it
ran (and every other controller in the files, e.g. a tuned baseline). Usage:

    python benchmarks/learned_vs_mas.py out/learned.json [out/others.json ...]
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path

from kubeagora.bench.stats import paired_difference_interval, paired_ratio_interval

Metrics = dict[tuple[str, str, int], tuple[float, float]]


def load(paths: list[Path]) -> Metrics:
    """The runs of every file (runs of the same scenario, controller and seed are the same run: the bench is
    deterministic, so the controllers may come from separate bench runs)."""
    runs: Metrics = {}
    for path in paths:
        for run in json.loads(path.read_text())["runs"]:
            m = run["metrics"]
            runs[(run["scenario"], run["controller"], run["seed"])] = (m["slo_violation_pct"], m["replica_seconds"])
    return runs


def pairs(runs: Metrics, a: str, b: str, scenario: str | None) -> list[tuple[tuple[float, float], tuple[float, float]]]:
    return [(runs[(s, a, seed)], runs[(s, b, seed)]) for (s, c, seed) in sorted(runs)
            if c == a and (scenario is None or s == scenario) and (s, b, seed) in runs]


def row(label: str, matched: list[tuple[tuple[float, float], tuple[float, float]]]) -> str:
    va, vb = [p[0][0] for p in matched], [p[1][0] for p in matched]
    ra, rb = [p[0][1] for p in matched], [p[1][1] for p in matched]
    diff = paired_difference_interval(va, vb)
    ratio = paired_ratio_interval(va, vb)
    cost = paired_ratio_interval(ra, rb)
    verdict = "fewer" if diff.high < 0 else "more" if diff.low > 0 else "no difference"
    return (f"| {label} | {len(matched)} | {sum(va) / len(va):.2f} | {sum(vb) / len(vb):.2f} | "
            f"{diff.estimate:+.2f} [{diff.low:+.2f}, {diff.high:+.2f}] | {ratio.estimate:.2f} | "
            f"{cost.estimate:.3f} [{cost.low:.3f}, {cost.high:.3f}] | {verdict} |")


def table(runs: Metrics, a: str, b: str) -> None:
    scenarios = sorted({s for (s, c, _) in runs if c == a})
    print(f"\n{a} vs {b}\n")
    print(f"| scenario | pairs | {a} viol. % | {b} viol. % | difference (pp) [95 %] | viol. ratio | "
          "replica-s ratio [95 %] | violations |")
    print("|---|---:|---:|---:|---:|---:|---:|---|")
    for scenario in scenarios:
        matched = pairs(runs, a, b, scenario)
        if matched:
            print(row(scenario, matched))
    everything = pairs(runs, a, b, None)
    if everything:
        print(row("**all (scenario, seed) pairs**", everything))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("bench_json", type=Path, nargs="+")
    args = ap.parse_args()
    runs = load(args.bench_json)
    controllers: dict[str, int] = defaultdict(int)
    for (_, c, _) in runs:
        controllers[c] += 1
    table(runs, "mas-learned", "mas")
    for other in sorted(controllers):
        if other not in ("mas-learned", "mas"):
            table(runs, "mas-learned", other)


if __name__ == "__main__":
    main()
