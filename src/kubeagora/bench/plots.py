"""PNG figures of a bench document, three per scenario, one colour per controller family throughout.

- `<scenario>-latency.png`: p95 and p99 over time (log scale), per controller;
- `<scenario>-capacity.png`: ready replicas, and demand vs served requests, over time;
- `<scenario>-frontier.png`: SLO violations against replica-seconds, one point per controller and
  setting (means over seeds): each swept baseline's settings joined along its Pareto frontier, its
  shipped default ringed, mas and mpc with their 95 % intervals on both axes, the clairvoyant
  planner as a black cross.

Time series come from each controller's run on the scenario's first seed (percentiles do not
average across seeds), for the shipped defaults and the contenders only (a sweep would bury them).
Faults are marked as vertical lines.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only, never a window; must precede pyplot

import matplotlib.pyplot as plt

from kubeagora.bench.document import BenchDocument, RunRecord, trace_note
from kubeagora.bench.equal_cost import mean_frontier
from kubeagora.controllers.registry import CLAIRVOYANT, CLAIRVOYANT_TITLE
from kubeagora.controllers.tuning import parse_label

CONTROLLER_COLOURS = {
    "static": "#7f7f7f",
    "heuristic": "#8c564b",
    "hpa": "#1f77b4",
    "keda": "#ff7f0e",
    "rayserve": "#2ca02c",
    "knative": "#9467bd",
    CLAIRVOYANT: "#000000",
    "mpc": "#d62728",
    "mas": "#e377c2",
}
_SPARE_COLOURS = ("#17becf", "#bcbd22", "#aec7e8", "#ffbb78", "#98df8a")
DEFAULT_SLO_MS = {"p95_ms": 150.0, "p99_ms": 250.0}
"""The seed paper's SLO, kept by web, API, ML-inference and IoT services (LLM ones have looser SLOs)."""
DPI = 110
FAULT_COLOUR = "#d62728"


def controller_colour(controller: str, order: list[str]) -> str:
    family = parse_label(controller).family
    if family in CONTROLLER_COLOURS:
        return CONTROLLER_COLOURS[family]
    unknown = [c for c in order if parse_label(c).family not in CONTROLLER_COLOURS]
    return _SPARE_COLOURS[unknown.index(controller) % len(_SPARE_COLOURS)]


def first_seed_runs(document: BenchDocument, scenario: str) -> dict[str, RunRecord]:
    """Per controller at its shipped setting, its run on the scenario's first seed (swept settings left out)."""
    runs: dict[str, RunRecord] = {}
    for run in document["runs"]:
        if run["scenario"] == scenario and parse_label(run["controller"]).is_default:
            current = runs.get(run["controller"])
            if current is None or run["seed"] < current["seed"]:
                runs[run["controller"]] = run
    return runs


def _minutes(run: RunRecord) -> list[float]:
    return [(t or 0.0) / 60.0 for t in run["timeseries"]["t_s"]]


def _line_style(controller: str) -> dict[str, Any]:
    return {"linestyle": "--", "linewidth": 1.4} if controller == CLAIRVOYANT else {"linewidth": 1.6}


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
                label=_legend(controller),
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
            label=_legend(controller),
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


def _legend(controller: str) -> str:
    return CLAIRVOYANT_TITLE if controller == CLAIRVOYANT else controller


def _interval(entry: Any, metric: str) -> tuple[float, float]:
    """(distance below, distance above) the mean of the metric's 95 % interval, for error bars."""
    mean = entry["mean"][metric]
    ci = entry.get("ci95", {}).get(metric)
    if mean is None or ci is None:
        return 0.0, 0.0
    return max(mean - ci[0], 0.0), max(ci[1] - mean, 0.0)


def plot_frontier(document: BenchDocument, scenario: str, path: Path) -> None:
    """SLO violations vs replica-seconds: every controller and setting, each swept baseline's frontier."""
    by_controller = document["summary"][scenario]
    runs = [r for r in document["runs"] if r["scenario"] == scenario]
    order = list(by_controller)
    families = list(dict.fromkeys(parse_label(c).family for c in order))
    fig, ax = plt.subplots(figsize=(10, 6), layout="constrained")
    for family in families:
        labels = [c for c in order if parse_label(c).family == family]
        colour = controller_colour(labels[0], order)
        if len(labels) > 1:  # a swept baseline: its settings, and the Pareto frontier through them
            means, frontier = mean_frontier(runs, scenario, family)
            ax.scatter(
                [p.replica_seconds for p in means],
                [p.violation_pct for p in means],
                color=colour,
                s=22,
                alpha=0.55,
                zorder=2,
            )
            for point in means:
                target = parse_label(point.label).target_value()
                ax.annotate(
                    f"{target:g}",
                    (point.replica_seconds, point.violation_pct),
                    xytext=(3, 3),
                    textcoords="offset points",
                    fontsize=7,
                    color=colour,
                )
            ax.plot(
                [p.replica_seconds for p in frontier],
                [p.violation_pct for p in frontier],
                color=colour,
                linewidth=1.6,
                label=f"{family} frontier (knob values marked)",
                zorder=2,
            )
        default = family if family in by_controller else None
        if default is None:
            continue
        entry = by_controller[default]
        x, y = entry["mean"]["replica_seconds"], entry["mean"]["slo_violation_pct"]
        if x is None or y is None:
            continue
        if family == CLAIRVOYANT:
            ax.scatter([x], [y], marker="x", s=90, color="#000000", label=CLAIRVOYANT_TITLE, zorder=4)
        elif family in ("mas", "mpc"):
            xerr, yerr = _interval(entry, "replica_seconds"), _interval(entry, "slo_violation_pct")
            ax.errorbar(
                [x],
                [y],
                xerr=[[xerr[0]], [xerr[1]]],
                yerr=[[yerr[0]], [yerr[1]]],
                fmt="*",
                markersize=14,
                color=colour,
                capsize=3,
                label=f"{family} (95 % intervals)",
                zorder=5,
            )
        else:
            shipped = "shipped default" if len(labels) > 1 else "default"
            ax.scatter(
                [x],
                [y],
                s=90,
                facecolors="none",
                edgecolors=colour,
                linewidths=2.0,
                label=f"{family} {shipped}",
                zorder=3,
            )
    ax.set_xlabel("replica-seconds (mean over seeds)")
    ax.set_ylabel("SLO violations, % of requests (mean over seeds; linear below 1 %, log above)")
    # the settings that matter sit below a few percent, the collapsed ones at tens: both must be readable
    ax.set_yscale("symlog", linthresh=1.0, linscale=0.6)
    ax.set_yticks([0, 0.5, 1, 2, 5, 10, 20, 50, 100], labels=["0", "0.5", "1", "2", "5", "10", "20", "50", "100"])
    ax.set_ylim(0, 100)
    ax.grid(True, alpha=0.3)
    info = document.get("scenarios", {}).get(scenario)
    title = f"{scenario}{trace_note(document)}: violations vs replica-seconds (lower left is better)"
    if info and info.get("capacity_warning"):
        title += "\ndemand exceeds the cluster's capacity: no controller can avoid some violations"
    fig.suptitle(title, fontsize=11, fontweight="bold")
    fig.legend(loc="outside right center", fontsize=8, frameon=False)
    fig.savefig(path, dpi=DPI)
    plt.close(fig)


def _seed(runs: dict[str, RunRecord]) -> str:
    return str(next(iter(runs.values()))["seed"]) if runs else "–"


def plot_scenario(document: BenchDocument, scenario: str, directory: Path) -> list[Path]:
    """Write the scenario's three PNGs into `directory`; returns their paths (the frontier first)."""
    paths = [directory / f"{scenario}-{kind}.png" for kind in ("frontier", "latency", "capacity")]
    plot_frontier(document, scenario, paths[0])
    plot_latency(document, scenario, paths[1])
    plot_capacity(document, scenario, paths[2])
    return paths
