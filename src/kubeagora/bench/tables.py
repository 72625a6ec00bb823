"""Terminal tables of a bench document: one per scenario, and the comparison at equal replica-seconds.

Per scenario, a row per controller, the key metrics as columns (means over seeds) and the 95 %
interval of the SLO violations. The best value of each column is highlighted, with two exceptions:
the clairvoyant planner knows the future (a reference, not a contender: dimmed, never best), and a
controller that dropped or lost more than 1 % of its requests is never best on a latency column
(its percentiles only count the requests it served). A scenario whose demand exceeds what its
cluster can serve says so in the caption.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from rich import box
from rich.table import Table
from rich.text import Text

from kubeagora.bench.document import BenchDocument, ControllerSummary, Metrics, trace_note
from kubeagora.controllers.registry import CLAIRVOYANT, CLAIRVOYANT_NOTE, CLAIRVOYANT_TITLE
from kubeagora.controllers.tuning import KNOBS, parse_label
from kubeagora.controllers.tuning import format_value as format_knob

DROPPED_LIMIT_PER_MILLION = 10_000.0
"""1 % of requests dropped or lost: beyond it, a controller's latency percentiles hide its failures."""


@dataclass(frozen=True, slots=True)
class Column:
    metric: str
    name: str
    unit: str
    higher_is_better: bool = False
    latency: bool = False
    """Percentiles of served requests only: no "best" for a controller that dropped many."""

    @property
    def header(self) -> str:
        return f"{self.name} {self.unit}"


KEY_COLUMNS = (
    Column("p95_ms", "p95", "ms", latency=True),
    Column("p99_ms", "p99", "ms", latency=True),
    Column("slo_violation_pct", "SLO", "viol%"),
    Column("throughput_rps", "served", "req/s", higher_is_better=True),
    Column("replica_seconds", "pods", "×s"),
    Column("energy_j_per_req", "energy", "J/req"),
    Column("lost_per_million", "lost", "/10⁶"),
    Column("time_to_scale_s", "scale", "s"),
    Column("mttr_s", "MTTR", "s"),
    Column("overhead_us_per_req", "ovhd", "µs/req"),
)
"""Short names, units on a second header line."""


def format_value(value: float | None) -> str:
    """At most ~6 characters, so a row of ten metrics fits a terminal."""
    if value is None:
        return "–"
    magnitude = abs(value)
    if magnitude >= 1_000_000:
        return f"{value / 1e6:.2f}M"
    if magnitude >= 100_000:
        return f"{value / 1000:,.0f}k"
    if magnitude >= 10_000:
        return f"{value / 1000:.1f}k"
    if magnitude >= 100:
        return f"{value:.0f}"
    if magnitude >= 10:
        return f"{value:.1f}"
    if magnitude >= 0.01 or magnitude == 0:
        return f"{value:.2f}"
    return f"{value:.2g}"


def format_interval(interval: list[float] | None) -> str:
    if interval is None:
        return "–"
    return f"{format_value(interval[0])}–{format_value(interval[1])}"


def display_name(label: str) -> str:
    """How a controller label reads in a table: shipped defaults and the clairvoyant planner say what they are."""
    parsed = parse_label(label)
    if parsed.family == CLAIRVOYANT:
        return f"{CLAIRVOYANT_TITLE} ({CLAIRVOYANT_NOTE})"
    knob = KNOBS.get(parsed.family)
    if knob is not None and parsed.is_default:
        return f"{parsed.family} (shipped default, target {format_knob(knob.default)})"
    return label


def dropped_too_many(mean: Metrics) -> bool:
    lost = mean.get("lost_per_million")
    return lost is not None and lost > DROPPED_LIMIT_PER_MILLION


def best_controllers(by_controller: Mapping[str, ControllerSummary], column: Column) -> set[str]:
    """Controllers holding the column's best mean (ties share it); the clairvoyant planner is left out, and
    so, on a latency column, is every controller that dropped or lost more than 1 % of its requests."""
    contenders = {
        c: v
        for c, s in by_controller.items()
        if c != CLAIRVOYANT
        and (v := s["mean"][column.metric]) is not None
        and not (column.latency and dropped_too_many(s["mean"]))
    }
    if not contenders:
        return set()
    best = max(contenders.values()) if column.higher_is_better else min(contenders.values())
    return {c for c, v in contenders.items() if v == best}


def scenario_caption(document: BenchDocument, scenario: str) -> list[str]:
    """The notes under a scenario's table: what the numbers are, and what is unusual about them."""
    by_controller = document["summary"][scenario]
    info = document.get("scenarios", {}).get(scenario)
    seeds = info["seeds"] if info else []
    notes = [
        f"mean over {len(seeds)} seed{'s' if len(seeds) != 1 else ''}, 95 % bootstrap interval of the "
        "violations; best of each column in green"
    ]
    if CLAIRVOYANT in by_controller:
        notes.append(f"the {CLAIRVOYANT_TITLE} (dimmed) {CLAIRVOYANT_NOTE}")
    dropping = [c for c, s in by_controller.items() if dropped_too_many(s["mean"])]
    if dropping:
        notes.append(f"no 'best' latency for {', '.join(dropping)}: dropped or lost > 1 % of requests")
    warning = info.get("capacity_warning") if info else None
    if warning:
        notes.append(f"WARNING: {warning}")
    return notes


def scenario_table(document: BenchDocument, scenario: str) -> Table:
    by_controller = document["summary"][scenario]
    table = Table(
        title=f"[bold]{scenario}[/]{trace_note(document)}",
        caption="\n".join(scenario_caption(document, scenario)),
        header_style="bold",
        box=box.SIMPLE_HEAD,
        padding=(0, 0, 0, 1),
        show_edge=False,
        pad_edge=False,
    )
    table.add_column("controller", no_wrap=True)
    for column in KEY_COLUMNS:
        table.add_column(f"{column.name}\n{column.unit}", justify="right", no_wrap=True)
        if column.metric == "slo_violation_pct":
            table.add_column("viol%\n95% CI", justify="right", no_wrap=True)
    best = {column.metric: best_controllers(by_controller, column) for column in KEY_COLUMNS}
    for controller, entry in by_controller.items():
        style = "dim" if controller == CLAIRVOYANT else None
        table.add_row(*_row(controller, entry, best), style=style)
    return table


def _row(controller: str, entry: ControllerSummary, best: Mapping[str, set[str]]) -> list[Text]:
    mean = entry["mean"]
    name = CLAIRVOYANT_TITLE if controller == CLAIRVOYANT else display_name(controller)
    cells = [Text(name)]
    for column in KEY_COLUMNS:
        text = format_value(mean[column.metric])
        cells.append(Text(text, style="bold green") if controller in best[column.metric] else Text(text))
        if column.metric == "slo_violation_pct":
            cells.append(Text(format_interval(entry.get("ci95", {}).get(column.metric))))
    return cells


COMPARISON_HEADERS = (
    "scenario",
    "contender vs baseline",
    "contender viol%",
    "baseline viol% at equal cost",
    "difference pp (95% CI)",
    "ratio (95% CI)",
    "ratio, generous reading",
    "verdict",
)
VERDICT_NONE = "no difference shown"


def equal_cost_table(document: BenchDocument) -> Table | None:
    """Each contender against each tuned baseline at equal replica-seconds, per scenario (None if no sweep ran)."""
    rows: list[dict[str, Any]] = document.get("equal_cost", [])
    if not rows:
        return None
    table = Table(
        title="[bold]At equal replica-seconds[/]: each contender vs each tuned baseline's frontier, paired by seed",
        caption="difference = contender − baseline, percentage points of violations, paired 95 % interval; "
        "'beats' only where the whole interval is below zero, 'on the line only' where it does not hold against "
        "the generous reading (the baseline's dearer neighbouring setting at the contender's cost). "
        "† on some seed the contender spent more than "
        "the baseline's dearest setting (favours the contender: widen the sweep); ‡ on some seed less than its "
        "cheapest (its cheapest point is used: it could not get that cheap).",
        header_style="bold",
        box=box.SIMPLE_HEAD,
    )
    for name in COMPARISON_HEADERS:
        table.add_column(name, justify="left" if name in ("scenario", "contender vs baseline", "verdict") else "right")
    for row in rows:
        table.add_row(*comparison_cells(row))
    for cells in median_cells(document):
        table.add_row(*cells, style="bold")
    return table


def median_cells(document: BenchDocument) -> list[list[str]]:
    """One row per contender and baseline: the median ratio over scenarios, on both readings of the frontier."""
    generous = document.get("equal_cost_median_generous", {})
    return [
        [
            "median of scenarios",
            f"{contender} vs {baseline}",
            "",
            "",
            "",
            format_ratio(interval),
            format_ratio(generous.get(contender, {}).get(baseline)),
            "",
        ]
        for contender, by_baseline in document.get("equal_cost_median", {}).items()
        for baseline, interval in by_baseline.items()
    ]


def format_ratio(interval: Sequence[float | None] | None) -> str:
    if interval is None or interval[0] is None:
        return "–"
    estimate, low, high = interval
    return f"{estimate:.2f} ({_two(low)}–{_two(high)})"


def _two(value: float | None) -> str:
    return "–" if value is None else f"{value:.2f}"


def comparison_cells(row: Mapping[str, Any]) -> list[str]:
    """The cells of one equal-cost comparison (shared by the terminal table, the report and the docs)."""
    mine, theirs = row["contender_violation_pct"], row["baseline_violation_pct_at_equal_cost"]
    estimate, low, high = row["difference_pp"]
    if len(mine) < 2:
        verdict = "one seed: no interval"
    elif row["beats"]:
        verdict = "beats" if row.get("robust") else "beats on the line only"
    else:
        verdict = "loses" if row["loses"] else VERDICT_NONE
    dagger = (" †" if "dearer" in row["positions"] else "") + (" ‡" if "cheaper" in row["positions"] else "")
    return [
        row["scenario"],
        f"{row['contender']} vs {row['baseline']}{dagger}",
        format_value(sum(mine) / len(mine)),
        format_value(sum(theirs) / len(theirs)),
        f"{estimate:+.2f} ({low:+.2f} to {high:+.2f})",
        format_ratio(row["ratio"]),
        format_ratio(row.get("generous_ratio")),
        verdict,
    ]


def run_table(metrics: Metrics, title: str) -> Table:
    """Every metric of a single run, one per row (what `kubeagora simulate` prints)."""
    table = Table(title=title, header_style="bold")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key, value in metrics.items():
        table.add_row(key, format_value(value))
    return table
