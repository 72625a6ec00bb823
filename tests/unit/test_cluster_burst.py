"""The Table-2 burst bench's pure parts: quantiles as Prometheus computes them, the mock kubelet's
exposition read back, 10-second windows over a timeline, the figures of synthetic bursts with known
answers, the two workloads, and the outputs (JSON, markdown)."""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pytest
from typer.testing import CliRunner

from kubeagora.bench import cluster_burst as cb
from kubeagora.cli import app
from kubeagora.kubelet import nodes as nodes_mod
from kubeagora.kubelet.metrics import exposition, make_registry
from kubeagora.kubelet.traffic import BUCKETS_S, PodTable, TrafficModel, profile_from_template
from kubeagora.model import NodeClass
from kubeagora.model.intent import parse_intent, validate_intent
from kubeagora.sim.catalog import TEMPLATES
from kubeagora.sim.topology import build_topology

INF = math.inf


# quantile_ms ------------------------------------------------------------------------------------


def prometheus_quantile_s(q: float, bounds: Sequence[float], counts: Sequence[float]) -> float:
    """promql's bucketQuantile written from its definition over cumulative counts: the first finite
    bucket whose cumulative count reaches rank = q × total, linear inside it from the previous bound
    (0 for the first); a rank only the +Inf bucket reaches gives the last finite bound."""
    cum = np.cumsum(np.asarray(counts, dtype=float))
    if cum[-1] <= 0:
        return math.nan
    rank = q * cum[-1]
    b = int(np.searchsorted(cum[:-1], rank, side="left"))
    if b == len(bounds) - 1:
        return bounds[-2]
    lower, before = (0.0, 0.0) if b == 0 else (bounds[b - 1], float(cum[b - 1]))
    return lower + (bounds[b] - lower) * (rank - before) / (float(cum[b]) - before)


# Prometheus' own test histogram (promql testdata, "testhistogram_bucket{start=positive}"): cumulative
# 50, 70, 110, 120 at le 0.1, 0.2, 1, +Inf; its tests expect 0.048, 0.15, 0.72 and 1 for these q.
PROM_BOUNDS = (0.1, 0.2, 1.0, INF)
PROM_COUNTS = (50.0, 20.0, 40.0, 10.0)


@pytest.mark.parametrize(("q", "expected_ms"), [(0.2, 48.0), (0.5, 150.0), (0.8, 720.0), (1.0, 1000.0),
                                                (0.0, 0.0)])
def test_quantile_matches_prometheus_test_histogram(q: float, expected_ms: float) -> None:
    assert cb.quantile_ms(PROM_BOUNDS, PROM_COUNTS, q) == pytest.approx(expected_ms)


def test_quantile_first_bucket_starts_at_zero_and_interpolates_linearly() -> None:
    bounds = (0.1, 0.2, INF)
    assert cb.quantile_ms(bounds, (10, 0, 0), 0.5) == pytest.approx(50.0)
    assert cb.quantile_ms(bounds, (10, 0, 0), 0.99) == pytest.approx(99.0)
    # half the requests in (0.1, 0.2]: the 75th percentile is halfway through it
    assert cb.quantile_ms(bounds, (5, 5, 0), 0.75) == pytest.approx(150.0)


def test_quantile_in_the_inf_bucket_is_the_last_finite_bound() -> None:
    bounds = (0.1, 0.2, 0.5, INF)
    assert cb.quantile_ms(bounds, (1, 0, 0, 99), 0.5) == pytest.approx(500.0)
    assert cb.quantile_ms(bounds, (0, 0, 0, 7), 0.99) == pytest.approx(500.0)
    # empty buckets before the +Inf one do not move the answer off the last finite bound
    assert cb.quantile_ms(bounds, (90, 0, 0, 10), 0.95) == pytest.approx(500.0)


def test_quantile_of_nothing_is_nan() -> None:
    assert math.isnan(cb.quantile_ms((0.1, INF), (0, 0), 0.99))
    assert math.isnan(cb.quantile_ms((), (), 0.5))


def test_quantile_agrees_with_prometheus_on_random_histograms() -> None:
    rng = np.random.default_rng(7)
    bounds = (*BUCKETS_S, INF)
    for _ in range(300):
        counts = rng.integers(0, 50, len(bounds)) * (rng.random(len(bounds)) < 0.4)
        if counts.sum() == 0:
            continue
        for q in (0.5, 0.9, 0.95, 0.99, 1.0):
            expected = 1000.0 * prometheus_quantile_s(q, bounds, counts.tolist())
            assert cb.quantile_ms(bounds, counts.tolist(), q) == pytest.approx(expected, rel=1e-9), (counts, q)


# read_exposition --------------------------------------------------------------------------------


def _serving_model() -> TrafficModel:
    """Two services of the burst (2 Ready pods at 100 rps, 1 Ready pod overloaded at 300 rps, its CPU
    limited to its request), 5 ticks."""
    topo = build_topology(nodes_mod.topology_for_nodes(20), np.random.default_rng(3))
    model = TrafficModel(topo.nodes, topo.ingress_rtt_ms, seed=4)
    model.set_profile(profile_from_template("burst/shop-hpa", "web", 100.0))
    model.set_profile(profile_from_template("burst/shop-mas", "web", 300.0))
    table = PodTable(capacity=2)
    cpu = [j for j, n in enumerate(topo.nodes) if n.node_class == NodeClass.CPU]
    for key, svc, node in (("a0", 0, cpu[0]), ("a1", 0, cpu[1]), ("b0", 1, cpu[2])):
        table.add(f"burst/{key}", svc, node, cpu=0.5, cpu_limit=0.5)
        table.set_ready(f"burst/{key}", True)
    n = len(model.nodes)
    for _ in range(5):
        model.tick(1.0, table, np.ones(n, dtype=bool), np.ones(n))
    return model


def test_read_exposition_of_the_mock_kubelets_metrics() -> None:
    model = _serving_model()
    n = len(model.nodes)
    text = exposition(make_registry(model, [f"n{j}" for j in range(n)], lambda: np.ones(n, dtype=bool))).decode()
    bounds, per = cb.read_exposition(text, ["shop-hpa", "shop-mas", "absent"], "burst")
    assert bounds == (*BUCKETS_S, INF)
    for s, name in enumerate(("shop-hpa", "shop-mas")):
        got = per[name]
        assert got["requests"] == model.requests[s] > 0
        assert got["dropped"] == model.dropped[s]
        assert [got["buckets"][b] for b in bounds] == pytest.approx(np.cumsum(model.bucket_counts[s]).tolist())
        assert got["buckets"][INF] == got["requests"]
        per_bucket = np.diff([0.0, *(got["buckets"][b] for b in bounds)]).tolist()
        assert cb.quantile_ms(bounds, per_bucket, 0.99) == pytest.approx(
            cb.quantile_ms(bounds, model.bucket_counts[s].tolist(), 0.99))
    # the overloaded service's tail is slower than the one with spare capacity
    assert (cb.quantile_ms(bounds, model.bucket_counts[1].tolist(), 0.99)
            > cb.quantile_ms(bounds, model.bucket_counts[0].tolist(), 0.99))
    assert per["absent"] == {"requests": 0.0, "dropped": 0.0, "buckets": {}}


def test_read_exposition_ignores_other_services_namespaces_codes_and_metrics() -> None:
    def line(suffix: str, value: float, ns: str = "burst", svc: str = "a", code: str = "200", le: str = "") -> str:
        bound = f',le="{le}"' if le else ""
        return (f'http_server_request_duration_seconds_{suffix}{{http_response_status_code="{code}",'
                f'k8s_deployment_name="{svc}",k8s_namespace_name="{ns}"{bound}}} {value}')

    text = "\n".join([
        "# TYPE http_server_request_duration_seconds histogram",
        line("bucket", 10, le="0.1"), line("bucket", 12, le="+Inf"), line("count", 12), line("sum", 0.9),
        line("bucket", 5, code="503", le="0.005"), line("bucket", 5, code="503", le="+Inf"),
        line("count", 5, code="503"), line("sum", 0, code="503"),
        line("bucket", 3, svc="b", le="0.05"), line("count", 99, svc="b"),
        line("bucket", 3, ns="other", le="0.02"), line("count", 77, ns="other"),
        "# TYPE kubeagora_node_power_watts gauge",
        'kubeagora_node_power_watts{k8s_deployment_name="a",k8s_namespace_name="burst",node="n0"} 250',
        "",
    ])
    bounds, per = cb.read_exposition(text, ["a"], "burst")
    assert bounds == (0.1, INF)  # b's bound 0.05 is not a's, nor other/a's 0.02, nor the 503s' 0.005
    assert per == {"a": {"requests": 12.0, "dropped": 5.0, "buckets": {0.1: 10.0, INF: 12.0}}}


def test_the_offered_rate_comes_from_the_load_endpoint() -> None:
    load = {"services": {"burst/a": {"rps": 960.0, "base_rps": 120.0, "factor": 8.0},
                         "other/a": {"rps": 5.0, "base_rps": 5.0, "factor": 1.0}}}
    assert cb.offered_rps(load, ["a", "b"], "burst") == {"a": 960.0, "b": 0.0}


# synthetic timelines ----------------------------------------------------------------------------

BOUNDS = (0.1, 0.2, 0.5, 1.0, INF)
FAST, P95_MISS, SLOW = 0, 1, 3
"""Bucket indices: (0, 100 ms] meets the SLO (p95 95, p99 99 ms); (100, 200 ms] breaks p95 < 150 but not
p99 < 250 (p95 195, p99 199 ms); (500 ms, 1 s] breaks both (p99 995 ms)."""
CAP = cb.BurstPlan().pod_capacity_rps
PLAN = cb.BurstPlan(base_rps=120.0, factor=8.0, warm_s=30.0, burst_s=60.0)


class State(NamedTuple):
    offered: float
    served: float
    dropped: float
    bucket: int
    desired: int
    ready: int


def record(ts: Sequence[float], state: Callable[[float], State]) -> list[cb.Sample]:
    """Samples at ``ts`` of a service whose counters grow, between two samples, at the rates (and into
    the latency bucket) of its state at the earlier one."""
    requests = dropped = 0.0
    per_bucket = [0.0] * len(BOUNDS)
    out = []
    for prev, t in itertools.pairwise([None, *ts]):
        if prev is not None:
            was, dt = state(prev), t - prev
            requests += was.served * dt
            dropped += was.dropped * dt
            per_bucket[was.bucket] += was.served * dt
        now = state(t)
        out.append(cb.Sample(t, requests, dropped, tuple(itertools.accumulate(per_bucket)), now.offered,
                             now.desired, now.ready))
    return out


def burst(ready_at: float | None, desired_at: float = 3.0, need: int = 6) -> Callable[[float], State]:
    """Base 120 rps on 2 pods; at t = 0 the load goes to 960 rps (6 pods' worth). The autoscaler asks for
    ``need`` pods at ``desired_at``, Ready at ``ready_at`` (never if None); until then 2 pods serve
    320 rps slowly and the rest is dropped."""
    def state(t: float) -> State:
        if t < 0:
            return State(120.0, 120.0, 0.0, FAST, 2, 2)
        if ready_at is not None and t >= ready_at:
            return State(960.0, 960.0, 0.0, FAST, need, need)
        return State(960.0, 2 * CAP, 960.0 - 2 * CAP, SLOW, need if t >= desired_at else 2, 2)
    return state


SECONDS = [float(t) for t in range(-30, 61)]


def test_windows_are_aligned_on_the_burst_and_tile_the_timeline() -> None:
    ts = [k - 25.3 for k in range(40)]  # one sample a second, not on whole seconds: -25.3 … 13.7
    samples = record(ts, burst(ready_at=8.0))
    ws = cb.windows(samples, CAP)
    assert [w.start for w in ws] == [-30.0, -20.0, -10.0, 0.0, 10.0]
    assert sum(w.served for w in ws) == pytest.approx(samples[-1].requests - samples[0].requests)
    assert sum(w.dropped for w in ws) == pytest.approx(samples[-1].dropped - samples[0].dropped)
    for w in ws:
        assert sum(w.counts) == pytest.approx(w.served)


def test_window_counts_come_from_cumulative_buckets() -> None:
    ws = {w.start: w for w in cb.windows(record(SECONDS, burst(ready_at=20.0)), CAP)}
    assert ws[-20.0].counts == pytest.approx((1200.0, 0.0, 0.0, 0.0, 0.0))  # 10 s × 120 rps, fast
    assert ws[0.0].counts == pytest.approx((0.0, 0.0, 0.0, 3200.0, 0.0))  # 10 s × 320 rps, slow
    assert ws[0.0].dropped == pytest.approx(6400.0)
    assert ws[20.0].counts == pytest.approx((9600.0, 0.0, 0.0, 0.0, 0.0))
    assert ws[20.0].served == pytest.approx(9600.0)


def test_window_flags_starting_and_overloaded() -> None:
    ws = {w.start: w for w in cb.windows(record(SECONDS, burst(ready_at=20.0, desired_at=3.0)), CAP)}
    assert not ws[-20.0].starting
    assert not ws[-20.0].overloaded
    assert ws[0.0].starting
    assert ws[0.0].overloaded
    assert ws[10.0].starting
    assert ws[10.0].overloaded
    assert not ws[20.0].starting
    assert not ws[20.0].overloaded


def test_windows_need_two_samples() -> None:
    assert cb.windows(record([0.5], burst(None)), CAP) == []
    assert cb.windows([], CAP) == []


def test_summarize_a_burst_met_after_20_seconds() -> None:
    r = cb.summarize("mas", record(SECONDS, burst(ready_at=20.0, desired_at=3.0)), PLAN, BOUNDS)
    assert r.arm == "mas"
    assert r.time_to_scale_s == 20.0
    assert r.baseline_p99_ms == pytest.approx(99.0)
    assert r.cold_start_p99_delta_ms == pytest.approx(995.0 - 99.0)
    # in the burst: 20 s × (320 slow + 640 dropped) rps, then 40 s × 960 fast rps
    served, dropped = 20 * 320.0 + 40 * 960.0, 20 * 640.0
    assert r.slo_violation_pct == pytest.approx(100.0 * (20 * 320.0 + dropped) / (served + dropped))
    assert r.dropped == pytest.approx(dropped)
    rank = 0.99 * served
    assert r.burst_p99_ms == pytest.approx(500.0 + 500.0 * (rank - 40 * 960.0) / (20 * 320.0))
    assert r.max_replicas == 6
    assert r.replica_seconds == pytest.approx(3 * 2 + 57 * 6)


def test_summarize_a_burst_never_met() -> None:
    r = cb.summarize("hpa", record(SECONDS, burst(ready_at=None, desired_at=5.0, need=4)), PLAN, BOUNDS)
    assert r.time_to_scale_s is None
    assert r.cold_start_p99_delta_ms == pytest.approx(995.0 - 99.0)
    assert r.slo_violation_pct == pytest.approx(100.0)
    assert r.dropped == pytest.approx(60 * 640.0)
    assert r.max_replicas == 4


def test_summarize_a_burst_within_capacity() -> None:
    def state(t: float) -> State:
        return State(120.0 if t < 0 else 240.0, 120.0 if t < 0 else 240.0, 0.0, FAST, 2, 2)

    r = cb.summarize("hpa", record(SECONDS, state), PLAN, BOUNDS)
    assert r.time_to_scale_s == 0.0
    assert r.cold_start_p99_delta_ms is None  # no pod started
    assert r.slo_violation_pct == 0.0
    assert r.dropped == 0.0
    assert r.max_replicas == 2


@pytest.mark.parametrize(("bucket", "violating"), [(FAST, False), (P95_MISS, True), (SLOW, True)])
def test_a_window_breaking_p95_or_p99_counts_all_its_requests(bucket: int, violating: bool) -> None:
    def state(t: float) -> State:
        if 20 <= t < 30:
            return State(240.0, 240.0, 0.0, bucket, 2, 2)
        return State(120.0, 120.0, 0.0, FAST, 2, 2)

    r = cb.summarize("hpa", record(SECONDS, state), PLAN, BOUNDS)
    in_burst = 50 * 120.0 + 10 * 240.0
    assert r.slo_violation_pct == pytest.approx(100.0 * 2400.0 / in_burst if violating else 0.0)


def test_the_baseline_leaves_out_windows_with_a_pod_starting() -> None:
    base = burst(ready_at=20.0)

    def state(t: float) -> State:  # a pod restarting in the warm-up, slow meanwhile
        return State(120.0, 120.0, 0.0, SLOW, 3, 2) if -20 <= t < -10 else base(t)

    r = cb.summarize("mas", record([float(t) for t in range(-40, 61)], state), PLAN, BOUNDS)
    assert r.baseline_p99_ms == pytest.approx(99.0)


def test_summarize_timeline_per_arm() -> None:
    timeline = cb.Timeline(BOUNDS, {"hpa": tuple(record(SECONDS, burst(ready_at=40.0))),
                                    "mas": tuple(record(SECONDS, burst(ready_at=15.0)))})
    results = cb.summarize_timeline(timeline, PLAN)
    assert results["hpa"].replicas_at_burst == 2
    assert results["hpa"].time_to_scale_s == 40.0
    assert results["mas"].time_to_scale_s == 15.0
    assert results["mas"].slo_violation_pct < results["hpa"].slo_violation_pct


# workloads --------------------------------------------------------------------------------------


def test_workloads_identical_deployments_one_hpa_per_target_and_one_intent() -> None:
    plan = cb.BurstPlan(app="shop", namespace="burst", replicas=3, max_replicas=12, hpa_targets_pct=(50, 80))
    assert plan.arms == ("hpa-50", "hpa-80", "mas")
    ns, dep_50, hpa_50, dep_80, hpa_80, dep_mas, intent = cb.workloads(plan)
    assert ns == {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "burst"}}
    deps = {"shop-hpa-50": dep_50, "shop-hpa-80": dep_80, "shop-mas": dep_mas}
    for obj in (*deps.values(), hpa_50, hpa_80, intent):
        assert obj["metadata"]["namespace"] == "burst"
    assert [d["metadata"]["name"] for d in deps.values()] == list(deps)
    # identical but for their names
    assert len({json.dumps(d).replace(name, "NAME") for name, d in deps.items()}) == 1
    for dep in deps.values():
        assert dep["apiVersion"] == "apps/v1"
        assert dep["kind"] == "Deployment"
        spec = dep["spec"]
        assert spec["replicas"] == 3
        selector = spec["selector"]["matchLabels"]
        assert selector.items() <= spec["template"]["metadata"]["labels"].items()
        annotations = spec["template"]["metadata"]["annotations"]
        assert annotations["kubeagora.io/template"] == "web"
        assert float(annotations["kubeagora.io/rps"]) == plan.base_rps
        assert float(annotations["kubeagora.io/cold-start-s"]) == plan.cold_start_s
        (container,) = spec["template"]["spec"]["containers"]
        assert container["resources"]["requests"]["cpu"] == plan.cpu_request  # the HPA's utilisation needs it
        assert "limits" not in container["resources"]  # Burstable: may use more than the request
    # each selector picks its own pods only
    for (a, one), (b, other) in itertools.permutations(deps.items(), 2):
        assert not one["spec"]["selector"]["matchLabels"].items() <= other["spec"]["template"]["metadata"][
            "labels"].items(), (a, b)

    for hpa, target in ((hpa_50, 50), (hpa_80, 80)):
        assert (hpa["apiVersion"], hpa["kind"]) == ("autoscaling/v2", "HorizontalPodAutoscaler")
        assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment",
                                                 "name": f"shop-hpa-{target}"}
        assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (3, 12)
        (metric,) = hpa["spec"]["metrics"]
        assert metric["resource"]["name"] == "cpu"
        assert metric["resource"]["target"] == {"type": "Utilization", "averageUtilization": target}

    assert (intent["apiVersion"], intent["kind"]) == ("kubeagora.io/v1alpha1", "OrchestrationIntent")
    parsed = parse_intent(intent)
    assert parsed.target.name == "shop-mas"
    assert validate_intent(parsed, None, None, known_templates=TEMPLATES) == []
    assert parsed.replicas is not None
    assert (parsed.replicas.min_replicas, parsed.replicas.max_replicas) == (3, 12)
    assert (parsed.slo.p95_ms, parsed.slo.p99_ms) == (plan.slo_p95_ms, plan.slo_p99_ms)
    assert parsed.template == "web"


def test_a_cpu_limit_when_asked_for() -> None:
    plan = cb.BurstPlan(cpu_limit="1", hpa_targets_pct=(70,))
    for obj in cb.workloads(plan):
        if obj["kind"] == "Deployment":
            (container,) = obj["spec"]["template"]["spec"]["containers"]
            assert container["resources"]["limits"] == {"cpu": "1"}


def test_arm_names_and_labels() -> None:
    assert cb.hpa_target("hpa-70") == 70
    assert cb.hpa_target("mas") is None
    assert cb.hpa_target("hpa") is None
    assert cb.kind_of("hpa-70") == "hpa"
    assert cb.kind_of("mas") == "mas"
    assert cb.arm_label("hpa-70") == "Kubernetes HPA, 70 % CPU target"
    assert cb.arm_label("mas") == "kubeagora operator"
    assert set(cb.SIGNALS) == set(cb.SIGNALS_SHORT) == {"hpa", "mas"}
    assert cb.BEST_HPA_TARGET_PCT in cb.BurstPlan().hpa_targets_pct


def test_pod_capacity_is_the_templates_concurrency_over_its_service_time() -> None:
    t = TEMPLATES["web"]
    assert cb.BurstPlan(template="web").pod_capacity_rps == pytest.approx(
        t["concurrency"] * 1000.0 / t["service_time_ms"][NodeClass.CPU])


# outputs ----------------------------------------------------------------------------------------


def _strict_json(text: str) -> Any:
    def refuse(name: str) -> None:
        raise ValueError(f"not JSON: {name}")

    return json.loads(text, parse_constant=refuse)


def test_result_document_is_strict_json(tmp_path: Path) -> None:
    timeline = cb.Timeline(BOUNDS, {"hpa-50": tuple(record(SECONDS, burst(ready_at=None))),
                                    "mas": tuple(record(SECONDS, burst(ready_at=15.0)))})
    results = cb.summarize_timeline(timeline, PLAN)
    cb.write_json(tmp_path / "run.json", cb.result_document(PLAN, results, timeline))
    doc = _strict_json((tmp_path / "run.json").read_text())
    assert doc["bounds_s"] == [0.1, 0.2, 0.5, 1.0, "+Inf"]
    assert doc["results"]["hpa-50"]["time_to_scale_s"] is None
    assert doc["signals"]["hpa-50"] == cb.SIGNALS["hpa"]
    assert doc["signals"]["mas"] == cb.SIGNALS["mas"]
    assert doc["conditions"]["max_sample_gap_s"] == pytest.approx(1.0)
    assert doc["conditions"]["load_1m"] is None  # the synthetic samples carry no load average
    assert doc["results"]["mas"]["time_to_scale_s"] == 15.0
    assert len(doc["timeline"]["mas"]) == len(SECONDS)
    assert doc["plan"]["factor"] == PLAN.factor


def test_over_runs() -> None:
    assert cb.over_runs([20.0]) == "20.0"
    assert cb.over_runs([20.0, 30.0, 40.0]) == "30.0 (20.0–40.0)"
    assert cb.over_runs([20.0, None], "never") == "20.0, never in 1 of 2"
    assert cb.over_runs([None, None], "never") == "never"
    assert cb.over_runs([5, 7], digits=0) == "6 (5–7)"


def test_markdown_table_one_run_and_several() -> None:
    one = cb.summarize_timeline(cb.Timeline(BOUNDS, {"hpa-80": tuple(record(SECONDS, burst(ready_at=None))),
                                                      "mas": tuple(record(SECONDS, burst(ready_at=20.0)))}), PLAN)
    table = cb.markdown_table(one).splitlines()
    assert len(table) == 4
    assert all(row.count("|") == table[0].count("|") for row in table)
    hpa_row, mas_row = table[2], table[3]
    assert "Kubernetes HPA, 80 % CPU target" in hpa_row
    assert cb.SIGNALS["hpa"] in hpa_row
    assert cb.SIGNALS["mas"] in mas_row
    assert "| never |" in hpa_row
    assert "45 / +85" in hpa_row
    assert "kubeagora" in mas_row
    assert "| 20.0 |" in mas_row
    assert "18 / +30" in mas_row

    runs = [cb.summarize("mas", record(SECONDS, burst(ready_at=float(r))), PLAN, BOUNDS) for r in (10, 20, 30)]
    several = cb.markdown_table({"mas": runs, "other": runs[:1]}).splitlines()
    assert "| 3 | 20.0 (10.0–30.0) |" in several[2]
    assert several[3].startswith("| other | – | 1 | 10.0 |")
    assert several[3].endswith("| – |")


# the demo's bad input ---------------------------------------------------------------------------


@pytest.mark.parametrize(("args", "names"), [(["--burst-factor", "0"], "--burst-factor"),
                                             (["--nodes", "2"], "--nodes"),
                                             (["--burst-seconds", "-5"], "--burst-seconds")])
def test_demo_bad_input_is_one_line_exit_2_and_starts_nothing(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path, args: list[str], names: str) -> None:
    from kubeagora.devcluster import stack

    started: list[Any] = []

    class NoStack:
        def __init__(self, *a: Any, **kw: Any) -> None:
            started.append(a)
            raise AssertionError("a stack was started for bad input")

    monkeypatch.setattr(stack, "Stack", NoStack)
    result = CliRunner().invoke(app, ["demo", "--out", str(tmp_path / "out"), *args])
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error:")
    assert names in lines[0]
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert started == []
    assert not (tmp_path / "out").exists()


# the operator against the best-tuned HPA ---------------------------------------------------------


def _result(arm: str, tts: float | None, viol: float, ready_at_burst: int = 2) -> cb.ArmResult:
    return cb.ArmResult(arm, tts, None, viol, None, None, 6, 500.0, 0.0, ready_at_burst)


def test_verdicts_compare_the_operator_with_the_best_target_on_each_figure() -> None:
    results = {"hpa-50": [_result("hpa-50", 40.0, 10.0), _result("hpa-50", 50.0, 12.0)],
               "hpa-80": [_result("hpa-80", 30.0, 30.0), _result("hpa-80", None, 40.0)],
               "mas": [_result("mas", 20.0, 4.0), _result("mas", 24.0, 6.0)]}
    tts, viol = cb.verdicts(results, burst_s=150.0)
    # time to scale: hpa-80's never counts as the whole burst (90 s), so hpa-50 (45 s) is the best
    assert (tts.best_arm, tts.best, tts.operator) == ("hpa-50", pytest.approx(45.0), pytest.approx(22.0))
    assert tts.ratio == pytest.approx(22.0 / 45.0)
    assert tts.met
    assert not tts.censored
    assert (viol.best_arm, viol.best, viol.ratio) == ("hpa-50", pytest.approx(11.0), pytest.approx(5.0 / 11.0))
    assert viol.met
    table = cb.verdicts_markdown([tts, viol]).splitlines()
    assert len(table) == 4
    assert "| 0.49 | met |" in table[2]


def test_verdicts_missed_censored_and_both_zero() -> None:
    results = {"hpa-70": [_result("hpa-70", None, 0.0)], "mas": [_result("mas", 100.0, 0.0)]}
    tts, viol = cb.verdicts(results, burst_s=150.0)
    assert tts.censored
    assert tts.best == 150.0
    assert tts.ratio == pytest.approx(100 / 150)
    assert not tts.met
    assert viol.ratio is None
    assert viol.met
    assert "(≥: a run never scaled)" in cb.verdicts_markdown([tts])
    assert "– (both 0)" in cb.verdicts_markdown([viol])
    assert "met only trivially: both 0" in cb.verdicts_markdown([viol])
    assert cb.verdicts({"mas": [_result("mas", 1.0, 0.0)]}, 150.0) == []
    worse = cb.verdicts({"hpa-50": [_result("hpa-50", 10.0, 0.0)], "mas": [_result("mas", 5.0, 1.0)]}, 150.0)
    assert worse[1].ratio == math.inf
    assert not worse[1].met


def test_an_operator_that_scaled_up_before_the_burst_meets_no_target() -> None:
    """Capacity bought during the warm-up makes a time to scale of ~0 s that is no reaction to the burst."""
    results = {"hpa-50": [_result("hpa-50", 44.0, 0.0), _result("hpa-50", 45.0, 0.0)],
               "mas": [_result("mas", 0.7, 0.0, ready_at_burst=10), _result("mas", 0.9, 0.0, ready_at_burst=20)]}
    tts, viol = cb.verdicts(results, burst_s=150.0)
    assert tts.ratio == pytest.approx(0.8 / 44.5)
    assert tts.head_start == (pytest.approx(15.0), pytest.approx(2.0))
    assert not tts.met
    assert not viol.met
    assert "not comparable: the operator began the burst with 15.0 Ready replicas vs 2.0" in cb.verdicts_markdown([tts])
    even = cb.verdicts({"hpa-50": [_result("hpa-50", 44.0, 0.0, 3)], "mas": [_result("mas", 20.0, 0.0, 3)]}, 150.0)
    assert even[0].head_start is None
    assert even[0].met
