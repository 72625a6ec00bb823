"""A small HTML report of a bench document: `index.html`, the PNGs beside it, and `results.json`.

No scripts, no external styles or fonts: the directory opens from disk, a CI artifact or a
static file server the same way.
"""

from __future__ import annotations

from html import escape
from pathlib import Path

from kubeagora.bench.document import VS_CLAIRVOYANT_KEYS, BenchDocument, write_document
from kubeagora.bench.plots import plot_scenario
from kubeagora.bench.tables import (
    COMPARISON_HEADERS,
    KEY_COLUMNS,
    best_controllers,
    comparison_cells,
    display_name,
    format_interval,
    format_value,
    median_cells,
    scenario_caption,
)
from kubeagora.controllers.registry import CLAIRVOYANT, CLAIRVOYANT_NOTE, CLAIRVOYANT_TITLE

RESULTS_NAME = "results.json"

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 1100px; padding: 0 1rem;
       color: #222; }
code, pre { background: #f4f4f4; padding: 0.1rem 0.3rem; border-radius: 3px; }
pre { padding: 0.6rem; overflow-x: auto; }
table { border-collapse: collapse; margin: 0.8rem 0; font-size: 0.9rem; }
th, td { padding: 0.25rem 0.6rem; border-bottom: 1px solid #ddd; text-align: right; }
th:first-child, td:first-child { text-align: left; }
td.best { color: #176b2c; font-weight: bold; background: #e8f5e9; }
tr.clairvoyant td { color: #777; font-style: italic; }
span.ci { display: block; color: #777; font-size: 0.75rem; }
p.warning { background: #fff4e5; border-left: 4px solid #e67e22; padding: 0.4rem 0.6rem; }
img { max-width: 100%; display: block; margin: 0.6rem 0 1.2rem; border: 1px solid #eee; }
p.note { color: #555; font-size: 0.85rem; }
"""


def _table_html(document: BenchDocument, scenario: str) -> str:
    by_controller = document["summary"][scenario]
    has_clairvoyant = CLAIRVOYANT in by_controller
    head = "".join(f"<th>{escape(c.header)}</th>" for c in KEY_COLUMNS)
    if has_clairvoyant:
        headers = {c.metric: c.header for c in KEY_COLUMNS}
        head += "".join(f"<th>{escape(headers[k])} ÷ clairvoyant</th>" for k in VS_CLAIRVOYANT_KEYS)
    best = {c.metric: best_controllers(by_controller, c) for c in KEY_COLUMNS}
    rows = []
    for controller, entry in by_controller.items():
        cells = [f"<td>{escape(display_name(controller))}</td>"]
        for column in KEY_COLUMNS:
            css = ' class="best"' if controller in best[column.metric] else ""
            interval = entry.get("ci95", {}).get(column.metric)
            ci = f'<span class="ci">{escape(format_interval(interval))}</span>' if interval else ""
            cells.append(f"<td{css}>{format_value(entry['mean'][column.metric])}{ci}</td>")
        if has_clairvoyant:
            ratios = entry.get("vs_clairvoyant", {})
            cells.extend(f"<td>{format_value(ratios.get(k))}</td>" for k in VS_CLAIRVOYANT_KEYS)
        css = ' class="clairvoyant"' if controller == CLAIRVOYANT else ""
        rows.append(f"<tr{css}>{''.join(cells)}</tr>")
    notes = "".join(
        f'<p class="{"warning" if note.startswith("WARNING") else "note"}">{escape(note)}</p>'
        for note in scenario_caption(document, scenario)
    )
    table = f"<table><thead><tr><th>controller</th>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"
    return table + notes


def _equal_cost_html(document: BenchDocument) -> str:
    rows = document.get("equal_cost", [])
    if not rows:
        return ""
    header = "<tr>" + "".join(f"<th>{escape(h)}</th>" for h in COMPARISON_HEADERS) + "</tr>"
    body = "".join("<tr>" + "".join(f"<td>{escape(c)}</td>" for c in comparison_cells(r)) + "</tr>" for r in rows)
    medians = "".join(
        "<tr>" + "".join(f"<td><b>{escape(c)}</b></td>" for c in cells) + "</tr>" for cells in median_cells(document)
    )
    return f"""<section><h2>At equal replica-seconds</h2>
<p>Per seed, each tuned baseline's settings form a frontier of violations vs replica-seconds; its violations
are read off the frontier at the replica-seconds the contender spent on the same seed (linear between
neighbouring frontier points). Differences are contender − baseline, in percentage points, with their
paired 95 % bootstrap interval: the contender beats a baseline only where the whole interval is below zero.
A straight line between two settings overstates the baseline across a cliff (a frontier is convex), so the
generous reading gives the baseline its dearer neighbouring setting's violations at the contender's cost;
"beats on the line only" says the claim does not survive that reading.
† marks a comparison where on some seed the contender spent more than the baseline's dearest setting
(the baseline's dearest point is then used, which favours the contender: widen the sweep); ‡ one where on
some seed it spent less than the baseline's cheapest setting (the baseline's cheapest point is used: no
setting swept got the baseline that cheap, and with fewer replicas it would violate at least as much).</p>
<table><thead>{header}</thead><tbody>{body}{medians}</tbody></table></section>"""


def _scenario_html(document: BenchDocument, scenario: str, images: list[Path]) -> str:
    info = document["scenarios"].get(scenario)
    about = ""
    if info is not None:
        seeds = ", ".join(map(str, info["seeds"]))
        about = (
            f"<p>{escape(info['description'])}</p>"
            f'<p class="note">source: <code>{escape(info["source"])}</code> · '
            f"{info['duration_s']:g} s simulated · seeds {escape(seeds)}</p>"
        )
    figures = "".join(f'<img src="{escape(p.name)}" alt="{escape(p.stem)}">' for p in images)
    return f"<section><h2>{escape(scenario)}</h2>{about}{_table_html(document, scenario)}{figures}</section>"


def write_report(document: BenchDocument, directory: Path) -> Path:
    """Write index.html, the PNGs and results.json into `directory` (created); returns index.html."""
    directory.mkdir(parents=True, exist_ok=True)
    write_document(document, directory / RESULTS_NAME)
    sections = [
        _scenario_html(document, s, plot_scenario(document, s, directory)) for s in document["summary"]
    ]
    trace = document.get("trace")
    trace_note = (
        (
            f"<p>Arrivals replaced by the trace <code>{escape(str(trace['path']))}</code> "
            f"({escape(str(trace['format']))}, × {trace['scale']:g}).</p>"
        )
        if trace
        else ""
    )
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>kubeagora bench</title><style>{_STYLE}</style></head>
<body>
<h1>kubeagora bench</h1>
<p>Produced by:</p>
<pre>{escape(document["command"])}</pre>
{trace_note}
<p class="note">Tables: mean over seeds, with the 95 % bootstrap interval over seeds under each value; best
of each column highlighted. A baseline's shipped default is its own labelled row; its other rows are the
settings of its swept knob (FAMILY@target=VALUE). The {CLAIRVOYANT_TITLE} {CLAIRVOYANT_NOTE}: shown
in grey and never marked best. A controller that dropped or lost more than 1 % of its requests is never
marked best on a latency column. Every run, with its time series, is in
<a href="{RESULTS_NAME}">{RESULTS_NAME}</a>. Metric definitions: docs/benchmarks.md.</p>
{_equal_cost_html(document)}
{"".join(sections)}
</body></html>
"""
    index = directory / "index.html"
    index.write_text(page)
    return index
