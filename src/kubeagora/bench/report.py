"""A small HTML report of a bench document: `index.html`, the PNGs beside it, and `results.json`.

No scripts, no external styles or fonts: the directory opens from disk, a CI artifact or a
static file server the same way.
"""

from __future__ import annotations

from html import escape
from pathlib import Path

from kubeagora.bench.document import ORACLE, VS_ORACLE_KEYS, BenchDocument, write_document
from kubeagora.bench.plots import plot_scenario
from kubeagora.bench.tables import KEY_COLUMNS, best_controllers, format_value

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
tr.oracle td { color: #777; font-style: italic; }
img { max-width: 100%; display: block; margin: 0.6rem 0 1.2rem; border: 1px solid #eee; }
p.note { color: #555; font-size: 0.85rem; }
"""


def _table_html(document: BenchDocument, scenario: str) -> str:
    by_controller = document["summary"][scenario]
    has_oracle = ORACLE in by_controller
    head = "".join(f"<th>{escape(c.header)}</th>" for c in KEY_COLUMNS)
    if has_oracle:
        headers = {c.metric: c.header for c in KEY_COLUMNS}
        head += "".join(f"<th>{escape(headers[k])} ÷ oracle</th>" for k in VS_ORACLE_KEYS)
    best = {c.metric: best_controllers(by_controller, c) for c in KEY_COLUMNS}
    rows = []
    for controller, entry in by_controller.items():
        cells = [f"<td>{escape(controller)}</td>"]
        for column in KEY_COLUMNS:
            css = ' class="best"' if controller in best[column.metric] else ""
            cells.append(f"<td{css}>{format_value(entry['mean'][column.metric])}</td>")
        if has_oracle:
            ratios = entry.get("vs_oracle", {})
            cells.extend(f"<td>{format_value(ratios.get(k))}</td>" for k in VS_ORACLE_KEYS)
        css = ' class="oracle"' if controller == ORACLE else ""
        rows.append(f"<tr{css}>{''.join(cells)}</tr>")
    return f"<table><thead><tr><th>controller</th>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


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
<p class="note">Tables: mean over seeds; best of each column highlighted. The oracle knows the future load:
it is a bound to compare against, shown in grey and never marked best. Every run, with its time series,
is in <a href="{RESULTS_NAME}">{RESULTS_NAME}</a>. Metric definitions: docs/benchmarks.md.</p>
{"".join(sections)}
</body></html>
"""
    index = directory / "index.html"
    index.write_text(page)
    return index
