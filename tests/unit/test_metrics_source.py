"""The operator's Prometheus reader: PromQL, and parsing of recorded query results into signals."""

from __future__ import annotations

import copy
import json
import math
from pathlib import Path
from typing import Any

import pytest

from kubeagora.devcluster.cluster import free_ports
from kubeagora.operator.metrics_source import (
    MetricsUnavailable,
    PrometheusSignals,
    Windows,
    node_queries,
    parse_nodes,
    parse_services,
    service_queries,
)

RECORDED: dict[str, Any] = json.loads((Path(__file__).parent / "data" / "prometheus_responses.json").read_text())


def recorded(case: str, group: str) -> dict[str, Any]:
    return copy.deepcopy(RECORDED[case][group])


def test_the_recorded_queries_are_the_ones_the_reader_sends() -> None:
    assert RECORDED["queries"] == {**service_queries(), **node_queries()}


def test_steady_traffic_reads_as_rates_percentiles_and_ready_pods() -> None:
    services = parse_services(recorded("steady", "services"))
    assert set(services) == {"default/checkout", "default/idle"}
    checkout = services["default/checkout"]
    assert checkout.offered_rps == 120.0  # the offered-load gauge, exported by the mock kubelet
    assert checkout.served_rps == pytest.approx(120.14, abs=0.01)
    assert checkout.dropped_rps == 0.0
    assert checkout.p95_ms == pytest.approx(91.02, abs=0.01)  # seconds in Prometheus, ms here
    assert checkout.p99_ms == pytest.approx(142.05, abs=0.01)
    assert checkout.ready_pods == 3


def test_no_traffic_yet_is_zero_rps_and_nan_percentiles() -> None:
    idle = parse_services(recorded("steady", "services"))["default/idle"]
    assert (idle.offered_rps, idle.served_rps, idle.dropped_rps, idle.ready_pods) == (0.0, 0.0, 0.0, 1)
    assert math.isnan(idle.p95_ms)
    assert math.isnan(idle.p99_ms)


def test_overload_shows_drops_and_a_long_tail() -> None:
    flood = parse_services(recorded("overload", "services"))["default/flood"]
    assert flood.offered_rps == 4000.0
    assert flood.dropped_rps > 10 * flood.served_rps > 0
    assert 1000 < flood.p95_ms < flood.p99_ms


def test_without_the_offered_gauge_offered_is_served_plus_dropped() -> None:
    results = recorded("overload", "services")
    del results["offered"]
    flood = parse_services(results)["default/flood"]
    assert flood.offered_rps == pytest.approx(flood.served_rps + flood.dropped_rps)
    assert flood.offered_rps == pytest.approx(3980.3, abs=0.1)


def test_absent_series_read_as_zero_rps_nan_percentiles_and_no_pods() -> None:
    assert parse_services({}) == {}
    only_ready = {"ready": [{"metric": {"namespace": "default", "workload": "new"}, "value": [1.0, "2"]}]}
    new = parse_services(only_ready)["default/new"]
    assert (new.offered_rps, new.served_rps, new.dropped_rps, new.ready_pods) == (0.0, 0.0, 0.0, 2)
    assert math.isnan(new.p95_ms)
    only_served = {"served": [{"metric": {"namespace": "default", "workload": "web"}, "value": [1.0, "7.5"]}]}
    assert parse_services(only_served)["default/web"].ready_pods == 0
    assert parse_services(only_served)["default/web"].offered_rps == 7.5


def test_nan_rates_and_series_without_a_namespace_or_workload_are_ignored() -> None:
    results = {"served": [{"metric": {"namespace": "default", "workload": "web"}, "value": [1.0, "NaN"]},
                          {"metric": {}, "value": [1.0, "99"]},
                          {"metric": {"workload": "web"}, "value": [1.0, "99"]}]}
    assert parse_services(results)["default/web"].served_rps == 0.0
    assert set(parse_services(results)) == {"default/web"}


def test_nodes_carry_their_labels_power_and_heartbeat() -> None:
    nodes = parse_nodes(recorded("steady", "nodes"))
    assert len(nodes) == 4
    assert {n.tier for n in nodes.values()} == {"edge", "fog", "cloud"}
    assert all(n.heartbeat and n.power_w >= 20.0 and 0 <= n.utilization < 1 for n in nodes.values())
    cloud = nodes["n-cloud-cpu-0-0"]
    assert (cloud.node_class, cloud.region, cloud.zone) == ("cpu", "region-0", "region-0-cloud")
    assert cloud.power_w == pytest.approx(120.06, abs=0.01)


def test_a_node_whose_lease_lapsed_or_whose_series_vanished() -> None:
    results = recorded("steady", "nodes")
    results["heartbeat"][0]["value"][1] = "0"
    lapsed = results["heartbeat"][0]["metric"]["node"]
    gone = results["power"].pop()["metric"]["node"]
    nodes = parse_nodes(results)
    assert not nodes[lapsed].heartbeat
    assert math.isnan(nodes[gone].power_w)
    assert nodes[gone].tier  # still known from the utilisation series
    assert parse_nodes({}) == {}


def test_a_malformed_sample_is_a_metrics_error() -> None:
    with pytest.raises(MetricsUnavailable, match="sample"):
        parse_services({"served": [{"metric": {"namespace": "default", "workload": "web"}, "value": "12"}]})
    with pytest.raises(MetricsUnavailable, match="sample value"):
        parse_services({"served": [{"metric": {"namespace": "default", "workload": "web"}, "value": [1.0, "lots"]}]})


def test_windows_render_into_the_promql() -> None:
    queries = service_queries(Windows(rate_s=60, quantile_s=7.5))
    assert "rate(kubeagora_requests_total[60s])" in queries["served"]
    assert "[7500ms]" in queries["p99"]
    assert queries["p95"].startswith("histogram_quantile(0.95, sum by (namespace, workload, le) (rate(")
    with pytest.raises(ValueError, match="positive"):
        Windows(rate_s=0)


class FakeClient:
    def __init__(self, results: dict[str, Any], error: Exception | None = None) -> None:
        self.by_query = {service_queries()[name]: value for name, value in results.items()}
        self.asked: list[str] = []
        self.error = error

    def custom_query(self, query: str, params: dict[str, Any] | None = None, timeout: int | None = None) -> Any:
        self.asked.append(query)
        if self.error is not None:
            raise self.error
        return self.by_query.get(query, [])


def test_the_reader_sends_each_query_once_and_parses_the_answers() -> None:
    client = FakeClient(recorded("steady", "services"))
    services = PrometheusSignals("http://prometheus:9090", client=client).services()
    assert sorted(client.asked) == sorted(service_queries().values())
    # (idle's NaN percentiles make whole-dict equality fail)
    assert set(services) == {"default/checkout", "default/idle"}
    assert services["default/checkout"] == parse_services(recorded("steady", "services"))["default/checkout"]


def test_client_failures_become_one_error_naming_the_url() -> None:
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
