"""Markdown tables from a bench JSON file: the seed paper's Table 1 (per scenario and overall) and
Table 4 (fault scenarios), means over seeds, with the targets of the multi-agent issue checked.

    kubeagora bench --seeds 5 --json out/table1.json
    python benchmarks/results_tables.py out/table1.json
"""

from __future__ import annotations

import json
import sys
from collections import defaultdict
from statistics import mean
from typing import Any

ORDER = ("static", "heuristic", "hpa", "keda", "rayserve", "knative", "mpc", "mas", "oracle")
FAULTS = ("node-zone-failure", "region-partition", "gpu-throttle")


def means(runs: list[dict[str, Any]]) -> dict[tuple[str, str], dict[str, float | None]]:
    values: dict[tuple[str, str], dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for r in runs:
        for k, v in r["metrics"].items():
            if v is not None:
                values[(r["scenario"], r["controller"])][k].append(float(v))
    return {key: {k: mean(v) for k, v in per.items()} for key, per in values.items()}


def fmt(v: float | None, digits: int = 1) -> str:
    if v is None:
        return "–"
    return f"{v:,.{digits}f}"


def main(path: str) -> None:
    with open(path) as f:
        runs = json.load(f)["runs"]
    m = means(runs)
    scenarios = sorted({s for s, _ in m})
    controllers = [c for c in ORDER if any((s, c) in m for s in scenarios)]
    per_pair = len(runs) / max(len(m), 1)
    print(f"Means over {per_pair:g} seeds per scenario and controller ({len(runs)} runs).\n")
    cols = [("slo_violation_pct", "SLO viol. %", 2), ("p95_ms", "p95 ms", 0), ("p99_ms", "p99 ms", 0),
            ("throughput_rps", "req/s", 0), ("overhead_us_per_req", "overhead µs/req", 2),
            ("energy_j_per_req", "J/req", 3), ("replica_seconds", "replica-s", 0)]
    print("**All six scenarios** (mean of the per-scenario means)\n")
    print("| controller | " + " | ".join(c[1] for c in cols) + " |")
    print("|---|" + "---:|" * len(cols))
    overall: dict[str, dict[str, float]] = {}
    for c in controllers:
        overall[c] = {k: mean(m[(s, c)].get(k, float("nan")) for s in scenarios if (s, c) in m) for k, _, _ in cols}
        print(f"| {c} | " + " | ".join(fmt(overall[c][k], d) for k, _, d in cols) + " |")
    for s in scenarios:
        print(f"\n**{s}**\n")
        print("| controller | " + " | ".join(c[1] for c in cols) + " |")
        print("|---|" + "---:|" * len(cols))
        for c in controllers:
            if (s, c) in m:
                print(f"| {c} | " + " | ".join(fmt(m[(s, c)].get(k), d) for k, _, d in cols) + " |")
    print("\n**Faults** (Table 4): MTTR, lost or dropped requests per million, rollbacks\n")
    print("| scenario | controller | MTTR s | lost per 10⁶ | rollback % |")
    print("|---|---|---:|---:|---:|")
    for s in FAULTS:
        for c in controllers:
            if (s, c) in m:
                x = m[(s, c)]
                print(f"| {s} | {c} | {fmt(x.get('mttr_s'), 0)} | {fmt(x.get('lost_per_million'), 0)} | "
                      f"{fmt(x.get('rollback_pct'))} |")
    if "mas" in overall:
        a = overall["mas"]
        print("\n**Targets of the multi-agent issue, on the means over all scenarios**\n")
        checks = []
        for base in ("hpa", "heuristic"):
            if base in overall:
                checks.append((f"violations ≤ 0.5 × {base}", a["slo_violation_pct"],
                               0.5 * overall[base]["slo_violation_pct"]))
        if "heuristic" in overall:
            checks.append(("p99 ≤ 0.75 × heuristic", a["p99_ms"], 0.75 * overall["heuristic"]["p99_ms"]))
            checks.append(("energy/req ≤ heuristic", a["energy_j_per_req"], overall["heuristic"]["energy_j_per_req"]))
        if "hpa" in overall:
            checks.append(("replica-s ≤ 1.1 × hpa", a["replica_seconds"], 1.1 * overall["hpa"]["replica_seconds"]))
        if "oracle" in overall:
            checks.append(("violations ≤ 1.5 × oracle", a["slo_violation_pct"],
                           1.5 * overall["oracle"]["slo_violation_pct"]))
        checks.append(("overhead < 25 µs/req", a["overhead_us_per_req"], 25.0))
        print("| target | mas | bound | met |")
        print("|---|---:|---:|---|")
        for name, value, bound in checks:
            print(f"| {name} | {value:,.3g} | {bound:,.3g} | {'yes' if value <= bound else '**no**'} |")


if __name__ == "__main__":
    main(sys.argv[1])
