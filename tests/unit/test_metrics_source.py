"""The operator's Prometheus reader: the presets' PromQL, and parsing query results into signals.

Parsing is checked on responses a real Prometheus gave (``data/prometheus_responses.json``, scraping
the mock kubelet's OpenTelemetry and Istio series) and on small hand-made vectors for the edge cases.
"""

from __future__ import annotations

import copy
import json
import math
from pathlib import Path
from typing import Any

import pytest

from kubeagora.devcluster.cluster import free_ports
from kubeagora.operator.metric_presets import ISTIO, LINKERD, OTEL, PRESETS, preset
from kubeagora.operator.metrics_source import (
    MetricsUnavailable,
    PrometheusSignals,
    Source,
    Windows,
    custom_signal,
    node_queries,
    parse_nodes,
    parse_services,
    service_queries,
    signals_of,
    with_custom,
    with_utilization,
)

RECORDED: dict[str, Any] = json.loads((Path(__file__).parent / "data" / "prometheus_responses.json").read_text())
WINDOWS = Windows(rate_s=8.0, quantile_s=8.0)
"""The recording's windows: four of its 2 s scrapes."""


def recorded(case: str, group: str) -> dict[str, Any]:
    return copy.deepcopy(RECORDED[case][group])


def sample(value: float | str, preset_: Any = OTEL, namespace: str = "shop", workload: str = "web",
           **labels: str) -> dict[str, Any]:
    return {"metric": {preset_.namespace_label: namespace, preset_.workload_label: workload, **labels},
            "value": [1.7e9, str(value)]}


# --- PromQL ------------------------------------------------------------------------------------------


def test_the_recorded_queries_are_the_ones_the_reader_sends() -> None:
    assert RECORDED["queries"] == {name: {**service_queries(PRESETS[name], WINDOWS)} for name in ("otel", "istio")}
    assert RECORDED["node_queries"] == node_queries()


def test_the_default_preset_reads_opentelemetry_http_histograms_by_namespace_and_deployment() -> None:
    q = service_queries(OTEL, Windows.for_scrape_interval(15))
    assert q["offered"] == ("sum by (k8s_namespace_name, k8s_deployment_name) "
                            "(rate(http_server_request_duration_seconds_count[60s]))")
    assert q["offered_now"] == q["offered"].replace("(rate(", "(irate(")
    assert q["dropped"] == ("sum by (k8s_namespace_name, k8s_deployment_name) "
                            '(rate(http_server_request_duration_seconds_count{http_response_status_code=~"5.."}[60s]))')
    assert q["p99"] == ("histogram_quantile(0.99, sum by (k8s_namespace_name, k8s_deployment_name, le) "
                        '(rate(http_server_request_duration_seconds_bucket{http_response_status_code!~"5.."}[60s])))')


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_every_query_of_every_preset_keeps_namespaces_apart(name: str) -> None:
    p = PRESETS[name]
    for promql in service_queries(p).values():
        assert f"by ({p.namespace_label}, {p.workload_label}" in promql
        assert p.matchers in promql


def test_millisecond_histograms_are_turned_into_seconds() -> None:
    assert service_queries(ISTIO)["p95"].endswith(") * 0.001")
    assert 'reporter="destination", response_code!~"5.."' in service_queries(ISTIO)["p95"]
    assert not service_queries(OTEL)["p95"].endswith("0.001")
    assert 'direction="inbound", classification="failure"' in service_queries(LINKERD)["dropped"]


def test_windows_span_four_scrapes_and_render_into_the_promql() -> None:
    assert Windows.for_scrape_interval(30) == Windows(120.0, 120.0)
    queries = service_queries(OTEL, Windows(rate_s=60, quantile_s=7.5))
    assert "[60s]" in queries["offered"]
    assert "[7500ms]" in queries["p99"]
    for bad in (0.0, -15.0):
        with pytest.raises(ValueError, match="positive"):
            Windows.for_scrape_interval(bad)
    with pytest.raises(ValueError, match="positive"):
        Windows(rate_s=0)


def test_relabelled_presets_aggregate_by_the_labels_given() -> None:
    mine = OTEL.with_labels("namespace", "app")
    assert "sum by (namespace, app)" in service_queries(mine)["offered"]
    assert OTEL.namespace_label == "k8s_namespace_name"  # the preset itself is unchanged
    with pytest.raises(ValueError, match="known: otel, istio, linkerd, ingress-nginx"):
        preset("prometheus")


# --- parsing: recorded from a real Prometheus ------------------------------------------------------


@pytest.mark.parametrize("name", ["otel", "istio"])
def test_steady_traffic_reads_as_rates_and_percentiles(name: str) -> None:
    services = parse_services(recorded("steady", name), PRESETS[name])
    assert set(services) == {"shop/checkout", "shop/idle"}
    checkout = services["shop/checkout"]
    assert checkout.offered_rps == pytest.approx(120.0, rel=0.1)
    assert checkout.dropped_rps == 0.0
    assert checkout.served_rps == checkout.offered_rps
    assert 20.0 < checkout.p95_ms < checkout.p99_ms < 500.0  # tens of ms of network plus 25 ms of service


def test_both_presets_read_the_same_service_alike() -> None:
    otel = parse_services(recorded("steady", "otel"), OTEL)["shop/checkout"]
    istio = parse_services(recorded("steady", "istio"), ISTIO)["shop/checkout"]
    assert otel.offered_rps == pytest.approx(istio.offered_rps)
    assert otel.p99_ms == pytest.approx(istio.p99_ms)


def test_no_traffic_yet_is_zero_rps_and_nan_percentiles() -> None:
    idle = parse_services(recorded("steady", "otel"), OTEL)["shop/idle"]
    assert (idle.offered_rps, idle.served_rps, idle.dropped_rps) == (0.0, 0.0, 0.0)
    assert math.isnan(idle.p95_ms)
    assert math.isnan(idle.p99_ms)


def test_overload_shows_drops_and_a_long_tail() -> None:
    flood = parse_services(recorded("overload", "otel"), OTEL)["shop/flood"]
    assert flood.offered_rps == pytest.approx(4000.0, rel=0.1)
    assert flood.dropped_rps > 10 * flood.served_rps > 0
    assert flood.served_rps + flood.dropped_rps == pytest.approx(flood.offered_rps)
    assert 1000 < flood.p95_ms < flood.p99_ms


def test_node_power_is_read_per_node() -> None:
    nodes = parse_nodes(recorded("steady", "nodes"))
    assert len(nodes) == 4
    assert all(n.power_w >= 20.0 and math.isnan(n.utilization) for n in nodes.values())
    assert parse_nodes({}) == {}


# --- parsing: edge cases ---------------------------------------------------------------------------


def test_a_burst_counts_from_the_last_scrape_a_lull_from_the_whole_window() -> None:
    burst = parse_services({"offered": [sample(100)], "offered_now": [sample(800)]}, OTEL)["shop/web"]
    assert burst.offered_rps == 800.0
    lull = parse_services({"offered": [sample(500)], "offered_now": [sample(100)]}, OTEL)["shop/web"]
    assert lull.offered_rps == 500.0


def test_absent_series_read_as_zero_rps_and_nan_percentiles() -> None:
    assert parse_services({}, OTEL) == {}
    only_p99 = parse_services({"p99": [sample(0.08)]}, OTEL)["shop/web"]
    assert (only_p99.offered_rps, only_p99.served_rps, only_p99.dropped_rps) == (0.0, 0.0, 0.0)
    assert math.isnan(only_p99.p95_ms)
    assert only_p99.p99_ms == 80.0


def test_nan_rates_and_series_without_namespace_or_workload_are_ignored() -> None:
    results = {"offered": [sample("NaN"), {"metric": {}, "value": [1.0, "99"]},
                           {"metric": {"k8s_deployment_name": "web"}, "value": [1.0, "99"]}]}
    services = parse_services(results, OTEL)
    assert set(services) == {"shop/web"}  # NaN equals nothing: compare the fields
    assert services["shop/web"].offered_rps == 0.0


def test_same_named_workloads_of_two_namespaces_stay_two_services() -> None:
    results = {"offered": [sample(10, namespace="a"), sample(900, namespace="b")]}
    services = parse_services(results, OTEL)
    assert (services["a/web"].offered_rps, services["b/web"].offered_rps) == (10.0, 900.0)


def test_a_malformed_sample_is_a_metrics_error() -> None:
    with pytest.raises(MetricsUnavailable, match="sample"):
        parse_services({"offered": [{"metric": sample(1)["metric"], "value": "12"}]}, OTEL)
    with pytest.raises(MetricsUnavailable, match="sample value"):
        parse_services({"offered": [sample("lots")]}, OTEL)


def test_custom_queries_replace_the_presets_signals() -> None:
    base = signals_of("shop/web", 100.0, 0.0, 0.05, 0.08)
    mine = with_custom(base, {"requestsPerSecond": 400.0, "errorsPerSecond": 40.0, "p99Seconds": 0.3})
    assert (mine.offered_rps, mine.served_rps, mine.dropped_rps) == (400.0, 360.0, 40.0)
    assert (mine.p95_ms, mine.p99_ms) == (50.0, 300.0)  # p95 from the preset
    assert with_custom(base, {}) == base


def test_a_custom_query_must_give_one_sample() -> None:
    assert custom_signal("shop/web", [sample(3.5)], "q") == 3.5
    assert math.isnan(custom_signal("shop/web", [], "q"))
    with pytest.raises(MetricsUnavailable, match=r"returned 2 series, not one \(aggregate it"):
        custom_signal("shop/web", [sample(1), sample(2, workload="other")], "q")


def test_utilisation_joins_the_power_series() -> None:
    nodes = with_utilization(parse_nodes({"power": [{"metric": {"node": "n0"}, "value": [1, "80"]}]}),
                             {"n0": 0.5, "n1": 0.25})
    assert (nodes["n0"].utilization, nodes["n0"].power_w) == (0.5, 80.0)
    assert nodes["n1"].utilization == 0.25
    assert math.isnan(nodes["n1"].power_w)


# --- the reader -------------------------------------------------------------------------------------


class FakeClient:
    def __init__(self, by_query: dict[str, Any], error: Exception | None = None) -> None:
        self.by_query = by_query
        self.asked: list[str] = []
        self.error = error

    def custom_query(self, query: str, params: dict[str, Any] | None = None, timeout: int | None = None) -> Any:
        self.asked.append(query)
        if self.error is not None:
            raise self.error
        answer = self.by_query.get(query, [])
        if isinstance(answer, Exception):
            raise answer
        return answer


def answers(name: str, results: dict[str, Any]) -> dict[str, Any]:
    queries = service_queries(PRESETS[name], WINDOWS)
    return {queries[k]: v for k, v in results.items()}


def test_the_reader_sends_each_presets_queries_once_and_each_custom_query_for_its_service() -> None:
    pytest.importorskip("prometheus_api_client")
    from prometheus_api_client.exceptions import PrometheusApiClientException

    custom = 'sum(rate(my_requests_total{app="cart"}[1m]))'
    broken = "histogram_quantile(0.99"
    client = FakeClient({**answers("otel", recorded("steady", "otel")), **answers("istio", recorded("steady", "istio")),
                         custom: [{"metric": {}, "value": [1, "42"]}],
                         broken: PrometheusApiClientException("HTTP 400: parse error")})
    reader = PrometheusSignals("http://prometheus:9090", WINDOWS, client=client)
    sources = {"shop/checkout": reader.source(None), "shop/idle": reader.source("istio"),
               "shop/cart": reader.source(None, {"requestsPerSecond": custom}),
               "shop/bad": reader.source(None, {"p99Seconds": broken})}
    reading = reader.services(sources)
    assert sorted(client.asked) == sorted([*service_queries(OTEL, WINDOWS).values(),
                                           *service_queries(ISTIO, WINDOWS).values(), custom, broken])
    assert reading.services["shop/checkout"] == parse_services(recorded("steady", "otel"), OTEL)["shop/checkout"]
    assert reading.services["shop/cart"].offered_rps == 42.0
    assert set(reading.errors) == {"shop/bad"}  # one intent's bad query is its own problem
    assert "parse error" in reading.errors["shop/bad"]
    assert sources["shop/idle"] == Source(ISTIO)


def test_a_failing_prometheus_is_metrics_unavailable_naming_the_url() -> None:
    pytest.importorskip("prometheus_api_client")
    import requests

    client = FakeClient({}, error=requests.ConnectionError("Connection refused"))
    with pytest.raises(MetricsUnavailable, match=r"http://prometheus:9090 did not answer .*Connection refused"):
        PrometheusSignals("http://prometheus:9090/", client=client).nodes()


def test_an_unreachable_prometheus_raises_metrics_unavailable() -> None:
    pytest.importorskip("prometheus_api_client")
    (port,) = free_ports(1)  # nothing listens there
    url = f"http://127.0.0.1:{port}"
    with pytest.raises(MetricsUnavailable, match=url):
        PrometheusSignals(url, timeout_s=2).services()
