"""The mock kubelet's resource metrics API and load control, pure parts: label selectors, usage
rates, PodMetrics / NodeMetrics JSON, registration manifests, ``/load`` bodies."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from kubeagora.cli import app
from kubeagora.kubelet import resource_metrics as rm
from kubeagora.kubelet.load import LoadChange, check_bound, load_doc, parse_load_change
from kubeagora.kubelet.selectors import Requirement, matches, parse_selector
from kubeagora.kubelet.traffic import IDLE_CPU_FRACTION, PodTable, TrafficModel, profile_from_template
from kubeagora.model import Node, NodeClass, Tier

# --- label selectors ------------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "labels", "expected"), [
    ("app=web", {"app": "web"}, True),
    ("app==web", {"app": "web", "x": "y"}, True),
    ("app=web", {"app": "api"}, False),
    ("app=web", {}, False),
    ("app!=web", {"app": "api"}, True),
    ("app!=web", {}, True),
    ("app!=web", {"app": "web"}, False),
    ("app in (web, api)", {"app": "api"}, True),
    ("app in (web,api)", {"app": "db"}, False),
    ("app notin (web,api)", {"app": "db"}, True),
    ("app notin (web,api)", {}, True),
    ("app notin (web)", {"app": "web"}, False),
    ("app", {"app": ""}, True),
    ("app", {"other": "x"}, False),
    ("!app", {"other": "x"}, True),
    ("!app", {"app": "x"}, False),
    ("app=web,kubeagora.io/service=web", {"app": "web", "kubeagora.io/service": "web"}, True),
    ("app=web,kubeagora.io/service=web", {"app": "web", "kubeagora.io/service": "api"}, False),
    ("app in (web,api), tier!=edge", {"app": "web", "tier": "cloud"}, True),
    ("app in (web,api), tier!=edge", {"app": "web", "tier": "edge"}, False),
    ("", {"anything": "x"}, True),
])
def test_label_selector_matches_as_kubernetes_does(text: str, labels: dict[str, str], expected: bool) -> None:
    assert matches(parse_selector(text), labels) is expected


def test_label_selector_parses_into_requirements() -> None:
    assert parse_selector("a=1,b in (x, y),!c") == (
        Requirement("a", "=", frozenset({"1"})),
        Requirement("b", "in", frozenset({"x", "y"})),
        Requirement("c", "!exists"),
    )
    assert parse_selector(None) == ()


@pytest.mark.parametrize("text", ["app=web,", "app in (web", "app in web)", "app in ()", "a b=c",
                                  "app=we b", "-app=web", "app=" + "x" * 64])
def test_malformed_label_selectors_are_errors_that_quote_them(text: str) -> None:
    with pytest.raises(ValueError, match="label selector"):
        parse_selector(text)


# --- usage rates ----------------------------------------------------------------------------------


def test_usage_is_the_rate_over_the_window() -> None:
    h = rm.UsageHistory(window_s=15.0)
    assert h.usage("p") is None
    for t in range(0, 31):
        h.record(1000.0 + t, {"p": 0.25 * t} if t < 20 else {"p": 5.0 + 0.75 * (t - 20)})
    u = h.usage("p")
    assert u is not None
    assert u.end == 1030.0
    assert u.window_s == pytest.approx(15.0)
    # t 15..20 at 0.25 cores, 20..30 at 0.75 cores
    assert u.cores == pytest.approx((5 * 0.25 + 10 * 0.75) / 15)


def test_a_new_key_reports_after_two_samples_over_the_span_it_has() -> None:
    h = rm.UsageHistory(window_s=15.0)
    for t in range(10):
        h.record(float(t), {"old": float(t)})
    h.record(10.0, {"old": 10.0, "new": 0.0})
    assert h.usage("new") is None
    h.record(11.0, {"old": 11.0, "new": 0.5})
    h.record(12.0, {"old": 12.0, "new": 1.0})
    u = h.usage("new")
    assert u is not None
    assert u.window_s == pytest.approx(2.0)
    assert u.cores == pytest.approx(0.5)
    assert h.usage("gone") is None


def test_history_keeps_only_about_one_window() -> None:
    h = rm.UsageHistory(window_s=5.0)
    for t in range(100):
        h.record(float(t), {"p": float(t)})
    assert len(h._samples) <= 7


def test_usage_window_must_be_positive() -> None:
    with pytest.raises(ValueError, match="window"):
        rm.UsageHistory(0.0)


def test_pod_cpu_counters_follow_the_served_load() -> None:
    """A pod's cumulative CPU grows by request × (idle + busy share) per second: more with more load."""
    node = Node("n0", Tier.CLOUD, "r0", "r0-z", NodeClass.CPU, cpu_cores=16, memory_gib=64)
    model = TrafficModel([node], np.zeros((1, 1)), seed=1)
    pods = PodTable(8)
    s = model.set_profile(profile_from_template("web", "web", 20.0))
    pods.add("ns/a", s, 0, cpu=0.1)
    pods.set_ready("ns/a", True)
    serving, throttle = np.ones(1, dtype=bool), np.ones(1)
    for _ in range(30):
        model.tick(1.0, pods, serving, throttle)
    low = pods.used_cpu_seconds("ns/a")
    assert low is not None
    assert 30 * 0.1 * IDLE_CPU_FRACTION < low < 30 * 0.1
    model.set_rps(s, 120.0)
    assert model.profiles[s].rps == 120.0
    for _ in range(30):
        model.tick(1.0, pods, serving, throttle)
    high = pods.used_cpu_seconds("ns/a")
    assert high is not None
    assert high - low > 3 * low
    assert model.node_cpu_seconds[0] == pytest.approx(high)
    assert pods.used_cpu_seconds("ns/missing") is None


# --- API objects ----------------------------------------------------------------------------------


def test_quantities_and_durations() -> None:
    assert rm.cpu_quantity(0.25) == "250000000n"
    assert rm.cpu_quantity(-1.0) == "0n"
    assert rm.memory_quantity(64 * 2**20) == "65536Ki"
    assert rm.duration(15.0) == "15s"
    assert rm.duration(14.5) == "14.5s"
    assert rm.timestamp(0.0) == "1970-01-01T00:00:00Z"


def test_container_requests_and_split_by_cpu_request() -> None:
    pod = {"spec": {"containers": [
        {"name": "app", "resources": {"requests": {"cpu": "300m", "memory": "100Mi"}}},
        {"name": "sidecar", "resources": {"limits": {"cpu": "100m"}}},
    ]}}
    reqs = rm.container_requests(pod)
    assert reqs == [rm.ContainerRequest("app", pytest.approx(0.3), 100 * 2**20),  # type: ignore[arg-type]
                    rm.ContainerRequest("sidecar", pytest.approx(0.1), 0.0)]  # type: ignore[arg-type]
    used = rm.split_usage(0.2, reqs)
    assert [u.cpu_cores for u in used] == [pytest.approx(0.15), pytest.approx(0.05)]
    assert used[0].memory_bytes == pytest.approx(100 * 2**20 * rm.MEMORY_REQUEST_FRACTION)
    assert used[1].memory_bytes == rm.DEFAULT_MEMORY_BYTES
    even = rm.split_usage(0.2, [rm.ContainerRequest("a", 0, 0), rm.ContainerRequest("b", 0, 0)])
    assert [u.cpu_cores for u in even] == [pytest.approx(0.1), pytest.approx(0.1)]


def snapshot(ns: str, name: str, app: str, cores: float) -> rm.PodSnapshot:
    return rm.PodSnapshot(ns, name, {"app": app}, rm.Usage(cores, 100.0, 115.0),
                          (rm.ContainerRequest("app", 0.1, 64 * 2**20),))


def test_pod_metrics_json_is_what_the_hpa_reads() -> None:
    body = snapshot("shop", "web-1", "web", 0.05).metrics()
    assert body["kind"] == "PodMetrics"
    assert body["apiVersion"] == "metrics.k8s.io/v1beta1"
    assert body["metadata"] == {"name": "web-1", "namespace": "shop", "labels": {"app": "web"},
                                "creationTimestamp": "1970-01-01T00:01:55Z"}
    assert body["timestamp"] == "1970-01-01T00:01:55Z"
    assert body["window"] == "15s"
    assert body["containers"] == [{"name": "app", "usage": {"cpu": "50000000n", "memory": "39322Ki"}}]


def test_pod_metrics_list_filters_by_namespace_and_selector() -> None:
    pods = [snapshot("shop", "web-2", "web", 0.1), snapshot("shop", "api-1", "api", 0.1),
            snapshot("other", "web-9", "web", 0.1), snapshot("shop", "web-1", "web", 0.1)]
    body = rm.list_pod_metrics(pods, "shop", parse_selector("app=web"))
    assert body["kind"] == "PodMetricsList"
    assert [i["metadata"]["name"] for i in body["items"]] == ["web-1", "web-2"]
    everywhere = rm.list_pod_metrics(pods, None, parse_selector("app in (web)"))
    assert [(i["metadata"]["namespace"], i["metadata"]["name"]) for i in everywhere["items"]] == [
        ("other", "web-9"), ("shop", "web-1"), ("shop", "web-2")]


def test_node_metrics_and_list() -> None:
    nodes = [rm.NodeSnapshot("b", {"tier": "edge"}, rm.Usage(1.5, 0.0, 15.0), 2**30),
             rm.NodeSnapshot("a", {"tier": "cloud"}, rm.Usage(0.5, 0.0, 15.0), 0.0)]
    body = rm.list_node_metrics(nodes, parse_selector("tier=edge"))
    assert [i["metadata"]["name"] for i in body["items"]] == ["b"]
    assert body["items"][0]["usage"] == {"cpu": "1500000000n", "memory": "1048576Ki"}
    assert [i["metadata"]["name"] for i in rm.list_node_metrics(nodes, ())["items"]] == ["a", "b"]


def test_discovery_lists_pods_and_nodes() -> None:
    doc = rm.discovery()
    assert doc["kind"] == "APIResourceList"
    assert doc["groupVersion"] == "metrics.k8s.io/v1beta1"
    by_name = {r["name"]: r for r in doc["resources"]}
    assert by_name["pods"]["kind"] == "PodMetrics"
    assert by_name["pods"]["namespaced"] is True
    assert by_name["nodes"]["kind"] == "NodeMetrics"
    assert by_name["nodes"]["namespaced"] is False
    assert rm.api_group()["preferredVersion"]["groupVersion"] == "metrics.k8s.io/v1beta1"
    assert rm.not_found("pods", "x")["code"] == 404


# --- registration manifests -----------------------------------------------------------------------


def test_registration_manifests_point_the_apiservice_at_this_process() -> None:
    mapi = pytest.importorskip("kubeagora.kubelet.metrics_api")
    svc = mapi.service_manifest(9443)
    assert "selector" not in svc["spec"]
    (port,) = svc["spec"]["ports"]
    eps = mapi.endpoint_slice_manifest("192.0.2.7", 9443)
    assert eps["metadata"]["labels"]["kubernetes.io/service-name"] == svc["metadata"]["name"]
    assert eps["addressType"] == "IPv4"
    assert eps["ports"] == [{"name": port["name"], "port": 9443, "protocol": "TCP"}]
    assert mapi.endpoint_slice_manifest("fd00::2", 1)["addressType"] == "IPv6"
    api = mapi.api_service_manifest()
    assert api["metadata"]["name"] == "v1beta1.metrics.k8s.io"
    assert api["spec"]["insecureSkipTLSVerify"] is True
    assert api["spec"]["service"] == {"namespace": svc["metadata"]["namespace"], "name": svc["metadata"]["name"],
                                      "port": port["port"]}
    assert mapi.points_at(eps, "192.0.2.7", 9443)
    assert not mapi.points_at(eps, "192.0.2.7", 9444)
    assert not mapi.points_at(None, "192.0.2.7", 9443)


@pytest.mark.parametrize("address", ["127.0.0.1", "::1", "169.254.1.1", "0.0.0.0", "not-an-ip"])
def test_endpoint_addresses_the_api_server_rejects_are_refused(address: str) -> None:
    mapi = pytest.importorskip("kubeagora.kubelet.metrics_api")
    with pytest.raises(ValueError, match="address"):
        mapi.usable_endpoint_address(address)
    assert mapi.usable_endpoint_address("192.0.2.2") == "192.0.2.2"


def test_available_reads_the_apiservice_condition() -> None:
    mapi = pytest.importorskip("kubeagora.kubelet.metrics_api")
    ok = {"status": {"conditions": [{"type": "Available", "status": "True", "reason": "Passed"}]}}
    bad = {"status": {"conditions": [{"type": "Available", "status": "False", "reason": "MissingEndpoints",
                                      "message": "no addresses"}]}}
    assert mapi.available(ok) == (True, "Passed")
    assert mapi.available(bad) == (False, "MissingEndpoints: no addresses")
    assert mapi.available({}) == (False, "no Available condition yet")


# --- /load ----------------------------------------------------------------------------------------


def test_load_bodies() -> None:
    assert parse_load_change({"service": "web", "rps": 300}) == LoadChange("web", rps=300.0)
    change = parse_load_change({"service": "web", "factor": 6})
    assert change == LoadChange("web", factor=6.0)
    assert change.new_rps(50.0) == 300.0
    assert parse_load_change({"service": "web", "factor": 1}).new_rps(50.0) == 50.0
    assert parse_load_change({"service": "web", "rps": 0}).new_rps(50.0) == 0.0


@pytest.mark.parametrize(("body", "what"), [
    ([1, 2], "JSON object"),
    ({"rps": 3}, "service"),
    ({"service": "", "rps": 3}, "service"),
    ({"service": "web"}, "exactly one"),
    ({"service": "web", "rps": 1, "factor": 2}, "exactly one"),
    ({"service": "web", "rps": -1}, "rps"),
    ({"service": "web", "rps": True}, "rps"),
    ({"service": "web", "factor": "6"}, "factor"),
    ({"service": "web", "factor": float("nan")}, "factor"),
    ({"service": "web", "rps": 1e9}, "at most"),
    ({"service": "web", "rps": 1, "burst": 2}, "unknown field"),
])
def test_bad_load_bodies_say_what_is_wrong(body: object, what: str) -> None:
    with pytest.raises(ValueError, match=what):
        parse_load_change(body)


def test_a_factor_past_the_bound_is_refused() -> None:
    with pytest.raises(ValueError, match="exceeds"):
        check_bound(LoadChange("web", factor=1e6), 100.0)
    assert check_bound(LoadChange("web", factor=2), 100.0) == 200.0


def test_load_doc() -> None:
    assert load_doc({"web": 300.0, "idle": 0.0}, {"web": 50.0, "idle": 0.0}) == {"services": {
        "web": {"rps": 300.0, "base_rps": 50.0, "factor": 6.0},
        "idle": {"rps": 0.0, "base_rps": 0.0, "factor": None}}}


@pytest.mark.parametrize(("args", "what"), [
    (["--metrics-api-port", "70000"], "--metrics-api-port 70000"),
    (["--metrics-api-port", "9443", "--metrics-api-address", "127.0.0.1"], "--metrics-api-address 127.0.0.1"),
    (["--metrics-api-port", "9443", "--metrics-api-address", "nowhere"], "not an IP address"),
])
def test_cli_bad_metrics_api_options_are_one_line_exit_2(tmp_path: Path, args: list[str], what: str) -> None:
    pytest.importorskip("aiohttp")
    kc = tmp_path / "kubeconfig"
    kc.write_text("apiVersion: v1\n")
    result = CliRunner().invoke(app, ["mock-kubelet", "--kubeconfig", str(kc), "--nodes", "5", *args])
    assert result.exit_code == 2
    assert what in result.output
    assert len(result.output.strip().splitlines()) == 1
