"""PNG figures of a bench document, three per scenario, one colour per controller throughout.

- `<scenario>-latency.png`: p95 and p99 over time (log scale), per controller;
- `<scenario>-capacity.png`: ready replicas, and demand vs served requests, over time;
- `<scenario>-tradeoff.png`: SLO violations next to the replica-seconds paid for them.

Time series come from each controller's run on the scenario's first seed (percentiles do not
average across seeds); the bars are means over all seeds. Faults are marked as vertical lines.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only, never a window; must precede pyplot

import matplotlib.pyplot as plt

from kubeagora.bench.document import ORACLE, BenchDocument, RunRecord, trace_note

CONTROLLER_COLOURS = {
    "static": "#7f7f7f",
    "heuristic": "#8c564b",
    "hpa": "#1f77b4",
    "keda": "#ff7f0e",
    "rayserve": "#2ca02c",
    "knative": "#9467bd",
    "oracle": "#000000",
    "mpc": "#d62728",
    "mas": "#e377c2",
}
_SPARE_COLOURS = ("#17becf", "#bcbd22", "#aec7e8", "#ffbb78", "#98df8a")
DEFAULT_SLO_MS = {"p95_ms": 150.0, "p99_ms": 250.0}
"""The seed paper's SLO, kept by web, API, ML-inference and IoT services (LLM ones have looser SLOs)."""
DPI = 110
FAULT_COLOUR = "#d62728"


def controller_colour(controller: str, order: list[str]) -> str:
    if controller in CONTROLLER_COLOURS:
        return CONTROLLER_COLOURS[controller]
    unknown = [c for c in order if c not in CONTROLLER_COLOURS]
    return _SPARE_COLOURS[unknown.index(controller) % len(_SPARE_COLOURS)]


def first_seed_runs(document: BenchDocument, scenario: str) -> dict[str, RunRecord]:
    """Per controller, its run on the scenario's first seed."""
    runs: dict[str, RunRecord] = {}
    for run in document["runs"]:
        if run["scenario"] == scenario:
            current = runs.get(run["controller"])
            if current is None or run["seed"] < current["seed"]:
                runs[run["controller"]] = run
    return runs


def _minutes(run: RunRecord) -> list[float]:
    return [(t or 0.0) / 60.0 for t in run["timeseries"]["t_s"]]


def _line_style(controller: str) -> dict[str, Any]:
    return {"linestyle": "--", "linewidth": 1.4} if controller == ORACLE else {"linewidth": 1.6}


def _mark_faults(axes: Any, run: RunRecord) -> None:
    """A dotted line per fault on every panel, named on a top axis where it hides no data."""
    faults = run["faults"]
    if not faults:
        return
    for ax in axes:
        for t_s, _ in faults:
            ax.axvline(t_s / 60.0, color=FAULT_COLOUR, alpha=0.6, linewidth=1.0, linestyle=":")
    top = axes[0].secondary_xaxis("top")
    top.set_xticks(
        [t_s / 60.0 for t_s, _ in faults],
        labels=[what for _, what in faults],
        fontsize=7,
        color=FAULT_COLOUR,
        rotation=12,
        ha="left",
    )
    top.tick_params(axis="x", colors=FAULT_COLOUR, length=3)


def _finish(fig: Any, axes: Any, path: Path, title: str, extra_handles: list[Any] | None = None) -> None:
    handles, labels = axes[0].get_legend_handles_labels()
    for handle in extra_handles or []:
        handles.append(handle)
        labels.append(handle.get_label())
    fig.suptitle(title, fontsize=12, fontweight="bold")
    fig.legend(handles, labels, loc="outside right center", fontsize=9, frameon=False)
    fig.savefig(path, dpi=DPI)
    plt.close(fig)


def plot_latency(document: BenchDocument, scenario: str, path: Path) -> None:
    runs = first_seed_runs(document, scenario)
    order = list(runs)
    fig, axes = plt.subplots(2, 1, figsize=(10, 6.2), sharex=True, layout="constrained")
    for ax, (key, name) in zip(axes, (("p95_ms", "p95"), ("p99_ms", "p99")), strict=True):
        for controller, run in runs.items():
            values = [v if v is not None else float("nan") for v in run["timeseries"][key]]
            ax.plot(
                _minutes(run),
                values,
                label=controller,
                color=controller_colour(controller, order),
                **_line_style(controller),
            )
        ax.axhline(DEFAULT_SLO_MS[key], color="#444444", linewidth=0.8, linestyle="-.")
        ax.annotate(
            f"{name} SLO {DEFAULT_SLO_MS[key]:g} ms",
            (0.0, DEFAULT_SLO_MS[key]),
            xycoords=("axes fraction", "data"),
            xytext=(4, 3),
            textcoords="offset points",
            fontsize=8,
        )
        ax.set_yscale("log")
        ax.set_ylabel(f"{name} latency, ms (log)")
        ax.grid(True, which="major", alpha=0.3)
    if runs:
        _mark_faults(axes, next(iter(runs.values())))
    axes[-1].set_xlabel("time, min (10-second windows, all services)")
    _finish(fig, axes, path, f"{scenario}{trace_note(document)}: tail latency over time (seed {_seed(runs)})")


def plot_capacity(document: BenchDocument, scenario: str, path: Path) -> None:
    runs = first_seed_runs(document, scenario)
    order = list(runs)
    fig, axes = plt.subplots(2, 1, figsize=(10, 6.2), sharex=True, layout="constrained")
    for controller, run in runs.items():
        colour = controller_colour(controller, order)
        axes[0].plot(
            _minutes(run),
            run["timeseries"]["ready_replicas"],
            label=controller,
            color=colour,
            **_line_style(controller),
        )
        axes[1].plot(_minutes(run), run["timeseries"]["served_rps"], color=colour, **_line_style(controller))
    demand: list[Any] = []
    if runs:
        reference = next(iter(runs.values()))
        demand = axes[1].plot(
            _minutes(reference),
            reference["timeseries"]["demand_rps"],
            color="#000000",
            linewidth=4.0,
            alpha=0.2,
            label="demand\n(lower panel;\nlines: served)",
        )
        _mark_faults(axes, reference)
    axes[0].set_ylabel("ready replicas")
    axes[1].set_ylabel("requests/s")
    for ax in axes:
        ax.grid(True, alpha=0.3)
        ax.set_ylim(bottom=0)
    axes[-1].set_xlabel("time, min")
    title = f"{scenario}{trace_note(document)}: capacity and load over time (seed {_seed(runs)})"
    _finish(fig, axes, path, title, extra_handles=demand)


def plot_tradeoff(document: BenchDocument, scenario: str, path: Path) -> None:
    by_controller = document["summary"][scenario]
    controllers = list(by_controller)
    colours = [controller_colour(c, controllers) for c in controllers]
    fig, axes = plt.subplots(1, 2, figsize=(10, 4.2), layout="constrained")
    panels = (("slo_violation_pct", "SLO violations, % of requests"), ("replica_seconds", "replica-seconds"))
    for ax, (key, label) in zip(axes, panels, strict=True):
        values = [by_controller[c]["mean"][key] for c in controllers]
        heights = [v if v is not None else 0.0 for v in values]
        bars = ax.bar(controllers, heights, color=colours)
        for bar, controller in zip(bars, controllers, strict=True):
            if controller == ORACLE:
                bar.set_hatch("//")
                bar.set_facecolor("white")
                bar.set_edgecolor("#000000")
        ax.bar_label(bars, labels=[_short(v) for v in values], fontsize=8, padding=2)
        ax.set_title(label, fontsize=10)
        ax.tick_params(axis="x", labelrotation=30, labelsize=9)
        ax.margins(y=0.15)
        ax.grid(True, axis="y", alpha=0.3)
    fig.suptitle(
        f"{scenario}: SLO violations vs the replica-seconds they cost (mean over seeds)",
        fontsize=12,
        fontweight="bold",
    )
    fig.savefig(path, dpi=DPI)
    plt.close(fig)


def _short(value: float | None) -> str:
    if value is None:
        return "–"
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.1f}" if abs(value) >= 10 else f"{value:.2f}"


def _seed(runs: dict[str, RunRecord]) -> str:
    return str(next(iter(runs.values()))["seed"]) if runs else "–"


def plot_scenario(document: BenchDocument, scenario: str, directory: Path) -> list[Path]:
    """Write the scenario's three PNGs into `directory`; returns their paths."""
    paths = [directory / f"{scenario}-{kind}.png" for kind in ("latency", "capacity", "tradeoff")]
    plot_latency(document, scenario, paths[0])
    plot_capacity(document, scenario, paths[1])
    plot_tradeoff(document, scenario, paths[2])
    return paths
