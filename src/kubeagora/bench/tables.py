"""Tables of a bench document: one per scenario, a row per controller, the key metrics as columns.

The best value of each column is highlighted. The oracle knows the future load, so it is a bound
to compare against, not a contender: it is shown dimmed and never marked best.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from rich import box
from rich.table import Table
from rich.text import Text

from kubeagora.bench.document import ORACLE, BenchDocument, ControllerSummary, Metrics, trace_note


@dataclass(frozen=True, slots=True)
class Column:
    metric: str
    name: str
    unit: str
    higher_is_better: bool = False

    @property
    def header(self) -> str:
        return f"{self.name} {self.unit}"


KEY_COLUMNS = (
    Column("p95_ms", "p95", "ms"),
    Column("p99_ms", "p99", "ms"),
    Column("slo_violation_pct", "SLO", "viol%"),
    Column("throughput_rps", "served", "req/s", higher_is_better=True),
    Column("replica_seconds", "pods", "×s"),
    Column("energy_j_per_req", "energy", "J/req"),
    Column("lost_per_million", "lost", "/10⁶"),
    Column("time_to_scale_s", "scale", "s"),
    Column("mttr_s", "MTTR", "s"),
    Column("overhead_us_per_req", "ovhd", "µs/req"),
)
"""Short names, units on a second header line: ten metrics and a controller fit 80 columns."""


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


def best_controllers(by_controller: Mapping[str, ControllerSummary], column: Column) -> set[str]:
    """Controllers holding the column's best mean (ties share it); the oracle is left out."""
    contenders = {
        c: v for c, s in by_controller.items() if c != ORACLE and (v := s["mean"][column.metric]) is not None
    }
    if not contenders:
        return set()
    best = max(contenders.values()) if column.higher_is_better else min(contenders.values())
    return {c for c, v in contenders.items() if v == best}


def scenario_table(document: BenchDocument, scenario: str) -> Table:
    by_controller = document["summary"][scenario]
    seeds = document["scenarios"][scenario]["seeds"] if scenario in document["scenarios"] else []
    caption = f"mean over {len(seeds)} seed{'s' if len(seeds) != 1 else ''}; best of each column in green"
    if ORACLE in by_controller:
        caption += "; the oracle (dimmed) knows the future and is a bound, not a contender"
    table = Table(
        title=f"[bold]{scenario}[/]{trace_note(document)}",
        caption=caption,
        header_style="bold",
        box=box.SIMPLE_HEAD,
        padding=(0, 0, 0, 1),
        show_edge=False,
        pad_edge=False,
    )
    table.add_column("controller", no_wrap=True)
    for column in KEY_COLUMNS:
        table.add_column(f"{column.name}\n{column.unit}", justify="right", no_wrap=True)
    best = {column.metric: best_controllers(by_controller, column) for column in KEY_COLUMNS}
    for controller, entry in by_controller.items():
        table.add_row(*_row(controller, entry["mean"], best), style="dim" if controller == ORACLE else None)
    return table


def _row(controller: str, mean: Metrics, best: Mapping[str, set[str]]) -> list[Text]:
    cells = [Text(controller)]
    for column in KEY_COLUMNS:
        text = format_value(mean[column.metric])
        cells.append(Text(text, style="bold green") if controller in best[column.metric] else Text(text))
    return cells


def run_table(metrics: Metrics, title: str) -> Table:
    """Every metric of a single run, one per row (what `kubeagora simulate` prints)."""
    table = Table(title=title, header_style="bold")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key, value in metrics.items():
        table.add_row(key, format_value(value))
    return table
