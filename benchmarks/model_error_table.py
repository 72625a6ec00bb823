"""Every controller in the declared world and in a world that strays from its specs, side by side.

    kubeagora bench --controllers heuristic,hpa,keda,rayserve,knative,mpc,mas,clairvoyant --seeds 5 \
        --jobs 2 --json out/sigma0.json
    kubeagora bench --controllers heuristic,hpa,keda,rayserve,knative,mpc,mas,clairvoyant --seeds 5 \
        --jobs 2 --model-error 0.3 --json out/sigma03.json
    python benchmarks/model_error_table.py out/sigma0.json out/sigma03.json

Several documents per world (e.g. one bench run per scenario) are given as
`--exact A.json B.json --erring C.json D.json`.

Prints markdown: per controller, the SLO violations and replica-seconds (means over scenarios of the
means over seeds) in both worlds, and how much worse the erring world is: the ratio of the means over
every (scenario, seed) pair with its 95 % paired bootstrap interval (a pair is the same arrivals, services
and faults; only the world differs), and the median over scenarios of the per-scenario ratios. Then, per
scenario, each controller's violations and replica-seconds in both worlds with their 95 % intervals over
seeds and the seeds' range, and mas's lead over every other controller in both worlds: mas's violations
over the other's, paired by seed, so "how much of mas's lead survives" is read off one row.
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from kubeagora.bench.stats import Interval, mean_interval, median_ratio_interval, paired_ratio_interval

METRICS = ("slo_violation_pct", "replica_seconds")
Runs = dict[tuple[str, str, int], dict[str, Any]]


def load(paths: list[Path]) -> tuple[Runs, float]:
    """The runs of one world, from one or several bench documents, and that world's model error."""
    runs: Runs = {}
    errors: set[float] = set()
    for path in paths:
        document = json.loads(path.read_text())
        errors |= {round(float(s.get("model_error", 0.0)), 6) for s in document["scenarios"].values()}
        for r in document["runs"]:
            key = (r["scenario"], r["controller"], int(r["seed"]))
            if key in runs:
                raise SystemExit(f"{path}: run {key} appears in more than one document")
            runs[key] = r["metrics"]
    if len(errors) != 1:
        raise SystemExit(f"{', '.join(map(str, paths))}: the scenarios ran at different model errors "
                         f"({sorted(errors)})")
    return runs, errors.pop()


def interval_text(interval: Interval, digits: int = 2) -> str:
    return f"{fmt(interval.estimate, digits)} [{fmt(interval.low, digits)}, {fmt(interval.high, digits)}]"


def fmt(value: float, digits: int = 2) -> str:
    return f"{value:,.{digits}f}" if np.isfinite(value) else "–"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("documents", type=Path, nargs="*",
                        help="two bench JSONs: without model error, then the same runs with --model-error")
    parser.add_argument("--exact", type=Path, nargs="+", default=[], help="bench JSONs without model error")
    parser.add_argument("--erring", type=Path, nargs="+", default=[],
                        help="bench JSONs of the same runs with --model-error")
    args = parser.parse_args()
    by_option = bool(args.exact or args.erring)
    if args.documents and (by_option or len(args.documents) != 2):
        parser.error("give two documents (without and with model error), or --exact FILE... --erring FILE...")
    if not args.documents and not (args.exact and args.erring):
        parser.error("give two documents (without and with model error), or --exact FILE... --erring FILE...")
    exact, sigma0 = load([args.documents[0]] if args.documents else args.exact)
    erring, sigma = load([args.documents[1]] if args.documents else args.erring)
    pairs = sorted(set(exact) & set(erring))
    if not pairs:
        raise SystemExit("the two documents share no (scenario, controller, seed) run")
    scenarios = sorted({s for s, _, _ in pairs})
    controllers = list(dict.fromkeys(c for _, c, _ in sorted(pairs, key=lambda p: p[1])))
    order = ["heuristic", "hpa", "keda", "rayserve", "knative", "mpc", "mas", "clairvoyant"]
    controllers = [c for c in order if c in controllers] + [c for c in controllers if c not in order]

    def values(runs: dict[tuple[str, str, int], dict[str, Any]], c: str, s: str, metric: str) -> list[float]:
        return [float(runs[p][metric] or 0.0) for p in pairs if p[1] == c and p[0] == s]

    seeds_per = min(len({p[2] for p in pairs if p[0] == s and p[1] == c}) for s in scenarios for c in controllers)
    print(f"**σ {sigma0:g} vs σ {sigma:g}**, {len(scenarios)} scenarios × {seeds_per} seeds each "
          "(means over scenarios of the means over seeds)\n")
    print(f"| controller | viol. % σ {sigma0:g} | viol. % σ {sigma:g} | ratio [95 % CI] | median ratio over "
          f"scenarios [95 % CI] | replica-s σ {sigma0:g} | replica-s σ {sigma:g} |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for c in controllers:
        by_scenario = {m: {s: (values(exact, c, s, m), values(erring, c, s, m)) for s in scenarios} for m in METRICS}
        means = {m: tuple(float(np.mean([np.mean(v[k]) for v in by_scenario[m].values()])) for k in (0, 1))
                 for m in METRICS}
        v = by_scenario["slo_violation_pct"]
        flat_exact = [x for s in scenarios for x in v[s][0]]
        flat_erring = [x for s in scenarios for x in v[s][1]]
        ratio = paired_ratio_interval(flat_erring, flat_exact)
        try:
            median = median_ratio_interval([(v[s][1], v[s][0]) for s in scenarios])
            median_text = f"{median.estimate:.2f} [{median.low:.2f}, {median.high:.2f}]"
        except ValueError:
            median_text = "–"
        print(f"| {c} | {fmt(means['slo_violation_pct'][0])} | {fmt(means['slo_violation_pct'][1])} | "
              f"{ratio.estimate:.2f} [{ratio.low:.2f}, {ratio.high:.2f}] | {median_text} | "
              f"{fmt(means['replica_seconds'][0], 0)} | {fmt(means['replica_seconds'][1], 0)} |")

    print(f"\n**SLO violations % per scenario, σ {sigma0:g} → σ {sigma:g}** (mean over seeds)\n")
    print("| controller | " + " | ".join(scenarios) + " |")
    print("|---|" + "---:|" * len(scenarios))
    table: dict[str, list[str]] = defaultdict(list)
    for c in controllers:
        for s in scenarios:
            a = float(np.mean(values(exact, c, s, "slo_violation_pct")))
            b = float(np.mean(values(erring, c, s, "slo_violation_pct")))
            table[c].append(f"{a:.2f} → {b:.2f}")
        print(f"| {c} | " + " | ".join(table[c]) + " |")

    for s in scenarios:
        n_seeds = len({p[2] for p in pairs if p[0] == s})
        print(f"\n**{s}**, {n_seeds} seeds: mean [95 % interval over seeds]; replica-seconds in thousands\n")
        print(f"| controller | viol. % σ {sigma0:g} | viol. % σ {sigma:g} | replica-s σ {sigma0:g} | "
              f"replica-s σ {sigma:g} |")
        print("|---|---:|---:|---:|---:|")
        for c in controllers:
            cells = []
            for metric, scale, digits in (("slo_violation_pct", 1.0, 2), ("replica_seconds", 1e-3, 0)):
                for runs in (exact, erring):
                    cells.append(interval_text(mean_interval([scale * x for x in values(runs, c, s, metric)]),
                                               digits))
            print(f"| {c} | " + " | ".join(cells) + " |")

    if "mas" in controllers:
        others = [c for c in controllers if c != "mas"]
        print(f"\n**mas's lead, σ {sigma0:g} → σ {sigma:g}**: mas's violations / the other's, paired by seed "
              "[95 % interval] (below 1: mas violates less; 1 = no lead left)\n")
        print("| against | " + " | ".join(scenarios) + " | all pairs | median over scenarios |")
        print("|---|" + "---:|" * (len(scenarios) + 2))
        for c in others:
            cells = []
            for s in scenarios:
                parts = [paired_ratio_interval(values(runs, "mas", s, "slo_violation_pct"),
                                               values(runs, c, s, "slo_violation_pct")) for runs in (exact, erring)]
                cells.append(" → ".join(interval_text(i) for i in parts))
            flat = [paired_ratio_interval([x for s in scenarios for x in values(runs, "mas", s, "slo_violation_pct")],
                                          [x for s in scenarios for x in values(runs, c, s, "slo_violation_pct")])
                    for runs in (exact, erring)]
            cells.append(" → ".join(interval_text(i) for i in flat))
            medians = []
            for runs in (exact, erring):
                try:
                    medians.append(interval_text(median_ratio_interval(
                        [(values(runs, "mas", s, "slo_violation_pct"), values(runs, c, s, "slo_violation_pct"))
                         for s in scenarios])))
                except ValueError:
                    medians.append("–")
            cells.append(" → ".join(medians))
            print(f"| {c} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
