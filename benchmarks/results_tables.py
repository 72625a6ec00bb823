"""Markdown tables for docs/benchmarks.md from one or more `kubeagora bench --json` files.

    kubeagora bench --scenarios steady-drift --controllers heuristic,hpa,keda,rayserve,knative,mpc,mas,clairvoyant \\
        --sweep standard --seeds 5 --json out/t1-steady-drift.json          # one file per scenario, say
    python benchmarks/results_tables.py out/t1-*.json --json out/table1.json --report out/table1

The files' runs are merged (each scenario, controller and seed once) and the summary, intervals
and comparisons at equal replica-seconds are computed again over all of them. Printed: per
scenario the shipped defaults, mpc, mas and the clairvoyant planner with 95 % intervals; each
baseline's frontier; mas (and mpc) against each tuned baseline at equal replica-seconds, paired
by seed; with `--chosen` (what `trace_split.py --choose --write` wrote), mas against each baseline at
the setting chosen on train and validation; mas against the clairvoyant planner; the faults table;
the issue's targets, met or not.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any, NoReturn

from kubeagora.bench.document import BenchDocument, merge_documents, read_document, write_document
from kubeagora.bench.stats import (
    Interval,
    median_ratio_interval,
    paired_difference_interval,
    paired_ratio_interval,
)
from kubeagora.bench.tables import COMPARISON_HEADERS, comparison_cells, display_name, format_ratio
from kubeagora.controllers.registry import CLAIRVOYANT
from kubeagora.controllers.tuning import KNOBS, checked_label, parse_label

FAULTS = ("node-zone-failure", "region-partition", "gpu-throttle")
CONTENDERS = ("mpc", "mas")
TARGET_RATIO = 0.5
"""mas ≤ 0.5 × each tuned baseline at equal replica-seconds (median over scenarios)."""
CLAIRVOYANT_TARGET = 2.0
"""mas ≤ 2 × the clairvoyant planner's violations (on the test traces)."""


def fail(message: str) -> NoReturn:
    """Bad input: one line naming what was wrong, exit status 2."""
    print(f"error: {message}", file=sys.stderr)
    raise SystemExit(2)


def fmt(value: float | None, digits: int = 1) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return f"{value:,.{digits}f}"


def with_ci(entry: dict[str, Any], metric: str, digits: int) -> str:
    mean = entry["mean"].get(metric)
    ci = entry.get("ci95", {}).get(metric)
    if mean is None:
        return "–"
    if ci is None or len(entry["seeds"]) < 2:
        return fmt(mean, digits)
    return f"{fmt(mean, digits)} ({fmt(ci[0], digits)}–{fmt(ci[1], digits)})"


def extra_mean(document: BenchDocument, scenario: str, controller: str, key: str) -> float | None:
    values = [
        float(r["extras"][key])
        for r in document["runs"]
        if r["scenario"] == scenario and r["controller"] == controller and key in r.get("extras", {})
    ]
    return sum(values) / len(values) if values else None


def cores_per_1k(document: BenchDocument, scenario: str, controller: str) -> float | None:
    cores = extra_mean(document, scenario, controller, "controller_cores")
    services = extra_mean(document, scenario, controller, "services")
    return None if cores is None or not services else cores * 1000.0 / services


def seed_values(document: BenchDocument, scenario: str, controller: str, metric: str) -> dict[int, float]:
    return {
        int(r["seed"]): float(r["metrics"][metric])
        for r in document["runs"]
        if r["scenario"] == scenario and r["controller"] == controller and r["metrics"].get(metric) is not None
    }


def per_seed(document: BenchDocument, scenario: str, controller: str) -> str:
    """The violations of each seed in seed order: the spread the interval summarises."""
    values = seed_values(document, scenario, controller, "slo_violation_pct")
    return " / ".join(fmt(values[seed], 2) for seed in sorted(values)) or "–"


def scenario_tables(document: BenchDocument) -> None:
    print("### Per scenario: shipped defaults, mpc, mas and the clairvoyant planner\n")
    print("Means over seeds with the 95 % bootstrap interval in brackets.\n")
    for scenario, by_controller in document["summary"].items():
        info = document["scenarios"].get(scenario, {})
        print(f"**{scenario}** ({len(info.get('seeds', []))} seeds)\n")
        if info.get("capacity_warning"):
            print(f"> Warning: {info['capacity_warning']}.\n")
        print(
            "| controller | SLO viol. % | viol. % per seed | replica-s | p95 ms | p99 ms | lost per 10⁶ | "
            "overhead µs/req | cores per 1,000 services |"
        )
        print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
        for controller, entry in by_controller.items():
            if not parse_label(controller).is_default:
                continue
            name = display_name(controller)
            cells = [
                with_ci(entry, "slo_violation_pct", 2),
                per_seed(document, scenario, controller),
                with_ci(entry, "replica_seconds", 0),
                fmt(entry["mean"]["p95_ms"], 0),
                fmt(entry["mean"]["p99_ms"], 0),
                fmt(entry["mean"]["lost_per_million"], 0),
                fmt(entry["mean"]["overhead_us_per_req"], 2),
                fmt(cores_per_1k(document, scenario, controller), 3),
            ]
            print(f"| {name} | " + " | ".join(cells) + " |")
        print()


def frontier_tables(document: BenchDocument) -> None:
    families = [f for f in KNOBS if any(parse_label(r["controller"]).family == f for r in document["runs"])]
    scenarios = list(document["summary"])
    print("### Each baseline's settings (violations % / thousands of replica-seconds, means over seeds)\n")
    for family in families:
        labels = sorted(
            {c for s in scenarios for c in document["summary"][s] if parse_label(c).family == family},
            key=lambda c: parse_label(c).target_value() or 0.0,
        )
        if len(labels) < 2:
            continue
        print(f"**{family}**: target = {KNOBS[family].meaning}; shipped default {KNOBS[family].default:g} (*)\n")
        print("| target | " + " | ".join(scenarios) + " |")
        print("|---:|" + "---:|" * len(scenarios))
        for label in labels:
            value = parse_label(label).target_value()
            star = " (*)" if parse_label(label).is_default else ""
            cells = []
            for s in scenarios:
                entry = document["summary"][s].get(label)
                if entry is None:
                    cells.append("–")
                    continue
                v, rs = entry["mean"]["slo_violation_pct"], entry["mean"]["replica_seconds"]
                cells.append(f"{fmt(v, 2)} / {fmt((rs or 0) / 1000, 0)}k")
            print(f"| {value:g}{star} | " + " | ".join(cells) + " |")
        print()


def equal_cost_tables(document: BenchDocument) -> list[tuple[str, bool, str]]:
    """Print the comparisons; return the targets as (name, met, measured)."""
    rows = document.get("equal_cost", [])
    targets: list[tuple[str, bool, str]] = []
    if not rows:
        return targets
    print("### At equal replica-seconds, paired by seed\n")
    print("| " + " | ".join(COMPARISON_HEADERS) + " |")
    print("|---|---|---:|---:|---:|---:|---:|---|")
    for row in rows:
        cells = comparison_cells(row)
        print("| " + " | ".join(cells) + " |")
    print()
    print(
        "| contender vs baseline | median ratio over scenarios (95 % CI) | the same, generous reading | "
        "scenarios beaten | of them robust | lost | no difference shown |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|")
    generous = document.get("equal_cost_median_generous", {})
    for contender, by_baseline in document.get("equal_cost_median", {}).items():
        for baseline, interval in by_baseline.items():
            mine = [r for r in rows if r["contender"] == contender and r["baseline"] == baseline]
            beaten = sum(r["beats"] for r in mine)
            robust = sum(r["beats"] and r.get("robust", False) for r in mine)
            lost = sum(r["loses"] for r in mine)
            kind = generous.get(contender, {}).get(baseline)
            print(
                f"| {contender} vs {baseline} | {format_ratio(interval)} | {format_ratio(kind)} | "
                f"{beaten} of {len(mine)} | {robust} | {lost} | {len(mine) - beaten - lost} |"
            )
            if contender == "mas" and interval is not None and interval[0] is not None:
                # with one seed in a scenario its bootstrap is a point, not an interval: nothing is shown
                one_seed = any(len(r["seeds"]) < 2 for r in mine)
                met = not one_seed and interval[0] <= TARGET_RATIO and interval[2] is not None and interval[2] < 1.0
                measured = f"{format_ratio(interval)}; generous reading {format_ratio(kind)}"
                targets.append(
                    (
                        f"mas ≤ {TARGET_RATIO} × tuned {baseline} at equal replica-seconds (median, interval < 1)",
                        met,
                        measured + ("; one seed in a scenario: no interval" if one_seed else ""),
                    )
                )
    print()
    return targets


def versus_clairvoyant(document: BenchDocument) -> list[tuple[str, bool, str]]:
    scenarios = [s for s, by in document["summary"].items() if CLAIRVOYANT in by and "mas" in by]
    if not scenarios:
        return []
    print("### mas against the clairvoyant planner (ratio of violations, paired by seed)\n")
    print("| scenario | mas viol. % | clairvoyant viol. % | ratio (95 % CI) |")
    print("|---|---:|---:|---:|")
    groups = []
    for scenario in scenarios:
        pairs = paired_values(document, scenario, "mas", CLAIRVOYANT)
        mine, theirs = [a for a, _ in pairs], [b for _, b in pairs]
        groups.append((mine, theirs))
        ratio = paired_ratio_interval(mine, theirs)
        print(
            f"| {scenario} | {fmt(sum(mine) / len(mine), 2)} | {fmt(sum(theirs) / len(theirs), 2)} | "
            f"{ratio_text(ratio)} |"
        )
    try:
        median = median_ratio_interval(groups)
    except ValueError:
        print()
        return []
    print(f"| **median of scenarios** | | | **{ratio_text(median)}** |\n")
    met = median.estimate <= CLAIRVOYANT_TARGET
    name = f"mas ≤ {CLAIRVOYANT_TARGET:g} × the clairvoyant planner (median over scenarios)"
    return [(name, met, ratio_text(median))]


def paired_values(
    document: BenchDocument, scenario: str, a: str, b: str, metric: str = "slo_violation_pct"
) -> list[tuple[float, float]]:
    left, right = seed_values(document, scenario, a, metric), seed_values(document, scenario, b, metric)
    return [(left[s], right[s]) for s in sorted(set(left) & set(right))]


def at_chosen_settings(document: BenchDocument, chosen: dict[str, float]) -> None:
    """mas against each baseline at the one setting chosen on train and validation, paired by seed."""
    print("### At the settings chosen on train and validation (ratio mas / baseline, paired by seed)\n")
    print("| scenario | baseline (chosen target) | baseline viol. % | mas viol. % | violations ratio (95 % CI) | "
          "replica-s ratio (95 % CI) | beats |")
    print("|---|---|---:|---:|---:|---:|---|")
    groups: dict[str, list[tuple[list[float], list[float]]]] = {}
    for scenario, by_controller in document["summary"].items():
        if "mas" not in by_controller:
            continue
        for family, target in chosen.items():
            label = checked_label(family, target, where=f"chosen setting of {family}").text
            pairs = paired_values(document, scenario, "mas", label)
            if not pairs:
                continue
            mine, theirs = [a for a, _ in pairs], [b for _, b in pairs]
            groups.setdefault(family, []).append((mine, theirs))
            cost = paired_values(document, scenario, "mas", label, "replica_seconds")
            difference = paired_difference_interval(mine, theirs)
            if len(pairs) < 2:
                verdict = "one seed: no interval"
            elif difference.high < 0:
                verdict = "yes"
            else:
                verdict = "**loses**" if difference.low > 0 else "no difference shown"
            print(
                f"| {scenario} | {family} ({target:g}) | {fmt(sum(theirs) / len(theirs), 2)} | "
                f"{fmt(sum(mine) / len(mine), 2)} | {ratio_text(paired_ratio_interval(mine, theirs))} | "
                f"{ratio_text(paired_ratio_interval([a for a, _ in cost], [b for _, b in cost]))} | {verdict} |"
            )
    print()
    for family, family_groups in groups.items():
        try:
            median = median_ratio_interval(family_groups)
        except ValueError:
            continue
        print(f"- mas / {family} at target {chosen[family]:g}, median over scenarios: {ratio_text(median)}")
    print()


def ratio_text(interval: Interval) -> str:
    if math.isnan(interval.estimate):
        return "–"
    return f"{interval.estimate:.2f} ({interval.low:.2f}–{interval.high:.2f})"


def faults_table(document: BenchDocument) -> None:
    scenarios = [s for s in FAULTS if s in document["summary"]]
    if not scenarios:
        return
    print("### Faults (Table 4): MTTR, lost or dropped requests per million, rollbacks (shipped defaults)\n")
    print("| scenario | controller | MTTR s | lost per 10⁶ | rollback % |")
    print("|---|---|---:|---:|---:|")
    for s in scenarios:
        for controller, entry in document["summary"][s].items():
            if parse_label(controller).is_default:
                print(
                    f"| {s} | {display_name(controller)} | {with_ci(entry, 'mttr_s', 0)} | "
                    f"{with_ci(entry, 'lost_per_million', 0)} | {fmt(entry['mean']['rollback_pct'])} |"
                )
    print()


def read_chosen(path: Path) -> dict[str, float]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        fail(f"--chosen {path}: {error}")
    if not isinstance(data, dict) or not all(
        k in KNOBS and isinstance(v, int | float) and not isinstance(v, bool) for k, v in data.items()
    ):
        fail(f"--chosen {path}: expected {{baseline: target}} with baselines among {', '.join(KNOBS)}")
    return {k: float(v) for k, v in data.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("files", nargs="+", type=Path)
    ap.add_argument("--json", type=Path, help="write the merged document here")
    ap.add_argument(
        "--chosen", type=Path, help="JSON of each baseline's chosen target (trace_split.py --choose --write)"
    )
    ap.add_argument("--report", type=Path, help="write the HTML report of the merged document into this directory")
    args = ap.parse_args()
    chosen = read_chosen(args.chosen) if args.chosen else None
    documents = [read_document(p) for p in args.files]
    command = " ; ".join(d["command"] for d in documents)
    document = merge_documents(documents, command)
    runs = len(document["runs"])
    print(f"{runs} runs from {len(documents)} file(s).\n")
    scenario_tables(document)
    frontier_tables(document)
    targets = equal_cost_tables(document)
    if chosen:
        at_chosen_settings(document, chosen)
    targets += versus_clairvoyant(document)
    faults_table(document)
    if targets:
        print("### Targets\n")
        print("| target | measured | met |")
        print("|---|---:|---|")
        for name, met, measured in targets:
            print(f"| {name} | {measured} | {'yes' if met else '**no**'} |")
    if args.json:
        write_document(document, args.json)
        print(f"\nwrote {args.json}", file=sys.stderr)
    if args.report:
        from kubeagora.bench.report import write_report

        print(f"wrote {write_report(document, args.report)}", file=sys.stderr)


if __name__ == "__main__":
    main()
