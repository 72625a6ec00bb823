"""The Grafana dashboard embedded in manifests/grafana-dashboard.yaml names only series the code exports.

The exported series are read from the source, not hard-coded: every call in ``src/kubeagora`` that
builds a Prometheus metric (``Counter``, ``Gauge``, ``Histogram``, ``…MetricFamily``) from a literal
``kubeagora_*`` name, with the label names it declares. Renaming a metric or a label in the code
without updating the dashboard fails here.
"""

from __future__ import annotations

import ast
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CONFIGMAP = ROOT / "manifests" / "grafana-dashboard.yaml"
SOURCE = ROOT / "src" / "kubeagora"

METRIC_NAME = re.compile(r"\bkubeagora_[a-z0-9_]+\b")
AGGREGATION_LABELS = re.compile(r"\b(?:by|without)\s*\(([^)]*)\)")
SELECTOR = re.compile(r"\{([^{}]*)\}")
SELECTOR_LABEL = re.compile(r"([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)")
LEGEND_LABEL = re.compile(r"\{\{\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*\}\}")

SUFFIXES = {
    "Counter": ("_total",),
    "CounterMetricFamily": ("_total",),
    "Gauge": ("",),
    "GaugeMetricFamily": ("",),
    "Histogram": ("_bucket", "_sum", "_count"),
    "HistogramMetricFamily": ("_bucket", "_sum", "_count"),
    "Summary": ("_sum", "_count"),
    "SummaryMetricFamily": ("_sum", "_count"),
}
"""The series names prometheus_client exposes for each kind of metric it is given a name for."""

REQUIRED = (
    "kubeagora_operator_intent_slo_target_seconds",
    "kubeagora_node_utilization_ratio",
    "kubeagora_node_power_watts",
    "kubeagora_operator_decision_seconds_bucket",
    "kubeagora_operator_actions_total",
    "kubeagora_operator_rollouts",
    "kubeagora_extender_request_duration_seconds_bucket",
)
"""What the dashboard is for: latency vs SLO, load, drops, pods, nodes, the operator, the extender."""


@dataclass(frozen=True)
class Exported:
    labels: frozenset[str]
    where: str


def _strings(node: ast.expr | None, names: dict[str, list[str]]) -> list[str] | None:
    """A literal list or tuple of strings, or a name assigned one in the same file."""
    if isinstance(node, ast.Name):
        return names.get(node.id)
    if isinstance(node, ast.List | ast.Tuple) and all(
        isinstance(e, ast.Constant) and isinstance(e.value, str) for e in node.elts
    ):
        return [e.value for e in node.elts]  # type: ignore[attr-defined]
    return None


def _string_lists(tree: ast.AST) -> dict[str, list[str]]:
    names: dict[str, list[str]] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            value = _strings(node.value, {})
            if value is not None:
                names[node.targets[0].id] = value
    return names


def exported_series(root: Path = SOURCE) -> dict[str, Exported]:
    """Series name → its label names, for every metric the code under ``root`` defines."""
    series: dict[str, Exported] = {}
    for path in sorted(root.rglob("*.py")):
        tree = ast.parse(path.read_text(), str(path))
        names = _string_lists(tree)
        for node in ast.walk(tree):
            if not (isinstance(node, ast.Call) and node.args):
                continue
            kind = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
            first = node.args[0]
            if kind not in SUFFIXES or not (isinstance(first, ast.Constant) and isinstance(first.value, str)):
                continue
            if not METRIC_NAME.fullmatch(first.value):
                continue
            keywords = {k.arg: k.value for k in node.keywords}
            declared = _strings(keywords.get("labels") or keywords.get("labelnames"), names)
            if declared is None and len(node.args) >= 3:
                declared = _strings(node.args[2], names)
            base = first.value.removesuffix("_total") if kind.startswith("Counter") else first.value
            for suffix in SUFFIXES[kind]:
                labels = set(declared or ()) | ({"le"} if suffix == "_bucket" else set())
                series[base + suffix] = Exported(frozenset(labels), f"{path.name}:{node.lineno}")
    return series


def dashboard() -> dict[str, Any]:
    configmap = yaml.safe_load(CONFIGMAP.read_text())
    assert configmap["kind"] == "ConfigMap"
    assert configmap["metadata"]["labels"]["grafana_dashboard"] == "1"
    (text,) = configmap["data"].values()
    parsed: dict[str, Any] = json.loads(text)
    return parsed


def queries(board: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(where, PromQL, legend) for every panel target and every query variable."""
    out = [
        (f"panel {panel['title']!r}", target["expr"], target.get("legendFormat", ""))
        for panel in board["panels"]
        for target in panel.get("targets", [])
    ]
    for variable in board["templating"]["list"]:
        if variable["type"] == "query":
            query = variable["query"]
            expr = query["query"] if isinstance(query, dict) else query
            found = re.fullmatch(r"label_values\((\w+),\s*(\w+)\)", expr)
            assert found, f"variable {variable['name']}: {expr}"
            out.append((f"variable {variable['name']}", f"{found[1]}{{{found[2]}!=''}}", ""))
    return out


def labels_used(expr: str, legend: str) -> set[str]:
    used = {label.strip() for group in AGGREGATION_LABELS.findall(expr) for label in group.split(",") if label.strip()}
    used |= {label for selector in SELECTOR.findall(expr) for label in SELECTOR_LABEL.findall(selector)}
    return used | set(LEGEND_LABEL.findall(legend))


@pytest.fixture(scope="module")
def series() -> dict[str, Exported]:
    return exported_series()


def test_the_source_scan_finds_the_metrics_and_their_labels(tmp_path: Path) -> None:
    (tmp_path / "m.py").write_text(
        "from prometheus_client import Counter, Histogram\n"
        "import prometheus_client.core as core\n"
        "A = Counter('kubeagora_a_total', 'doc', ['x'])\n"
        "B = Histogram('kubeagora_b_seconds', 'doc', labelnames=('y',))\n"
        "KEYS = ['z']\n"
        "C = core.GaugeMetricFamily('kubeagora_c', 'doc', labels=KEYS)\n"
        "D = Counter('not_ours', 'doc')\n"
        "E = 'kubeagora_mentioned_only'\n"
    )
    found = exported_series(tmp_path)
    assert {name: set(e.labels) for name, e in found.items()} == {
        "kubeagora_a_total": {"x"},
        "kubeagora_b_seconds_bucket": {"y", "le"},
        "kubeagora_b_seconds_sum": {"y"},
        "kubeagora_b_seconds_count": {"y"},
        "kubeagora_c": {"z"},
    }


def test_the_promql_scan_reads_aggregations_selectors_and_legends() -> None:
    expr = 'histogram_quantile(0.9, sum by (service, le) (rate(m_bucket{tier="edge", zone=~"a.*"}[1m])))'
    assert labels_used(expr, "{{service}} {{ node }}") == {"service", "le", "tier", "zone", "node"}


def test_the_dashboard_parses_and_is_well_formed() -> None:
    board = dashboard()
    assert board["uid"] == "kubeagora"
    ids = [panel["id"] for panel in board["panels"]]
    assert len(ids) == len(set(ids))
    for panel in board["panels"]:
        pos = panel["gridPos"]
        assert pos["x"] >= 0, panel["title"]
        assert pos["x"] + pos["w"] <= 24, panel["title"]
        if panel["type"] != "row":
            assert panel["targets"], panel["title"]
            assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
    variables = {v["name"] for v in board["templating"]["list"]}
    used = {m for _, expr, _ in queries(board) for m in re.findall(r"\$(\w+)", expr)} - {"__rate_interval"}
    assert used <= variables, f"undefined dashboard variables: {used - variables}"


def test_every_series_the_dashboard_queries_is_exported_by_the_code(series: dict[str, Exported]) -> None:
    problems = []
    for where, expr, legend in queries(dashboard()):
        names = set(METRIC_NAME.findall(expr))
        missing = names - series.keys()
        problems += [f"{where}: {name} is not exported by src/kubeagora" for name in sorted(missing)]
        if missing or not names:
            continue
        known = set().union(*(series[name].labels for name in names))
        unknown = labels_used(expr, legend) - known
        problems += [f"{where}: label {label!r} is not on {', '.join(sorted(names))}" for label in sorted(unknown)]
    assert not problems, "\n".join(problems)


def test_the_dashboard_covers_services_nodes_operator_and_extender() -> None:
    queried = {name for _, expr, _ in queries(dashboard()) for name in METRIC_NAME.findall(expr)}
    assert set(REQUIRED) <= queried, f"no panel shows {sorted(set(REQUIRED) - queried)}"


def test_service_panels_read_the_default_presets_series_as_the_operator_does() -> None:
    from kubeagora.operator.metric_presets import OTEL

    histogram = OTEL.latency_buckets.removesuffix("_bucket")
    service_queries = [(where, expr, legend) for where, expr, legend in queries(dashboard()) if histogram in expr]
    assert len(service_queries) >= 5  # p95, p99, offered, served, failed; and the variables
    for where, expr, legend in service_queries:
        assert labels_used(expr, legend) <= {OTEL.namespace_label, OTEL.workload_label, "le",
                                             "http_response_status_code"}, where
        if "histogram_quantile" in expr:
            assert OTEL.succeeded in expr, where  # failed requests do not count in latency, as in the operator


def test_every_service_latency_panel_draws_each_intents_own_target() -> None:
    checked = 0
    for panel in dashboard()["panels"]:
        exprs = [t["expr"] for t in panel.get("targets", [])]
        quantiles = {q for e in exprs if "http_server_request_duration_seconds_bucket" in e
                     for q in re.findall(r"histogram_quantile\((0\.\d+),", e)}
        for q in quantiles:
            target = f'kubeagora_operator_intent_slo_target_seconds{{quantile="{q}"'
            assert any(target in e for e in exprs), panel["title"]
            checked += 1
    assert checked == 2  # p95 and p99
