"""The seed paper's Table 2 on a real control plane: one burst, the real HPA and kubeagora side by side.

Identical Deployments of the same service template run in one cluster at the same time, each with
its own name (so each has its own traffic in the mock kubelet): ``<app>-hpa-<T>`` under the real
HorizontalPodAutoscaler of kube-controller-manager (autoscaling/v2, CPU utilisation target T %, one
arm per target of ``BurstPlan.hpa_targets_pct``, fed by the mock kubelet's metrics.k8s.io API),
``<app>-mas`` under an OrchestrationIntent managed by the operator. Their pods request CPU and (by
default) set no limit, so they are Burstable: overloaded, they use more than the request (up to
their share of the node) and the HPA reads utilisations above 100 %, as on a real cluster. Each
side reads its own kind of signal (``SIGNALS``). All get the same base load, then the same burst
(``POST /load`` factor) at the same moment. Once a second the driver reads the mock kubelet's
``/metrics`` (its OpenTelemetry HTTP latency histogram per service, 200s served and 503s dropped), its
``/load`` (the offered rate), every Deployment's replicas and the machine's load average; the figures
come from that timeline by the bench's own definitions (docs/benchmarks.md):

- time to scale: from the start of the burst until Ready capacity (Ready pods × the template's
  per-pod capacity at the pod's CPU request) ≥ the offered load; None if it never got there;
- cold-start p99 delta: p99 of the requests of the 10-second windows in the burst in which a pod was
  starting (desired > Ready), minus the p99 of the steady windows before the burst;
- SLO violations in the burst: requests of 10-second windows whose p95 or p99 broke the target, plus
  dropped requests, over all requests of the burst.
"""

from __future__ import annotations

import itertools
import json
import math
import os
import time
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from prometheus_client.parser import text_string_to_metric_families

from kubeagora.sim.catalog import TEMPLATES

WINDOW_S = 10.0
BEST_HPA_TARGET_PCT = 50
"""The real HPA's best-tuned CPU target of 50/70/80 % in the Table 2 runs (docs/benchmarks.md: the
fastest to capacity, by less than the run-to-run spread, at the most replica-seconds): the one
``kubeagora demo`` runs."""
SIGNALS = {
    "hpa": "CPU utilisation of the request, from metrics.k8s.io (15 s window, 15 s sync)",
    "mas": "request rate and latency histograms, from Prometheus (the operator's 5 s tick)",
}
"""What each side scales on."""
SIGNALS_SHORT = {"hpa": "CPU % of request (metrics.k8s.io)", "mas": "rate and latency (Prometheus)"}
"""The same, short enough for a terminal's table (``kubeagora demo``)."""


@dataclass(frozen=True)
class BurstPlan:
    app: str = "shop"
    namespace: str = "burst"
    template: str = "web"
    base_rps: float = 120.0
    factor: float = 8.0
    warm_s: float = 60.0
    burst_s: float = 150.0
    cold_start_s: float = 15.0
    replicas: int = 2
    max_replicas: int = 20
    cpu_request: str = "500m"
    cpu_limit: str | None = None
    """None: Burstable pods without a CPU limit (they may use what the node has)."""
    hpa_targets_pct: tuple[int, ...] = (50, 70, 80)
    """One arm under the real HPA per CPU utilisation target."""
    slo_p95_ms: float = 150.0
    slo_p99_ms: float = 250.0

    def service(self, arm: str) -> str:
        return f"{self.app}-{arm}"

    @property
    def arms(self) -> tuple[str, ...]:
        """``hpa-<target>`` per HPA target, then ``mas``."""
        return (*(f"hpa-{t}" for t in self.hpa_targets_pct), "mas")

    @property
    def pod_capacity_rps(self) -> float:
        t = TEMPLATES[self.template]
        ms = min(t["service_time_ms"].values())
        return float(t.get("concurrency", 4)) * 1000.0 / float(ms)


# ---------------------------------------------------------------------------------------------- the workloads
def kind_of(arm: str) -> str:
    """"hpa" for an ``hpa-<target>`` arm, else the arm."""
    return arm.split("-", 1)[0]


def hpa_target(arm: str) -> int | None:
    """The CPU target of an ``hpa-<target>`` arm (None for another arm)."""
    kind, _, target = arm.partition("-")
    return int(target) if kind == "hpa" and target.isdigit() else None


def arm_label(arm: str) -> str:
    target = hpa_target(arm)
    if target is not None:
        return f"Kubernetes HPA, {target} % CPU target"
    return {"mas": "kubeagora operator"}.get(arm, arm)


def deployment(plan: BurstPlan, arm: str) -> dict[str, Any]:
    name = plan.service(arm)
    resources: dict[str, Any] = {"requests": {"cpu": plan.cpu_request, "memory": "256Mi"}}
    if plan.cpu_limit is not None:
        resources["limits"] = {"cpu": plan.cpu_limit}
    return {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "namespace": plan.namespace},
        "spec": {
            "replicas": plan.replicas, "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name},
                             "annotations": {"kubeagora.io/rps": f"{plan.base_rps:g}",
                                             "kubeagora.io/template": plan.template,
                                             "kubeagora.io/cold-start-s": f"{plan.cold_start_s:g}"}},
                "spec": {"nodeSelector": {"kubeagora.io/node-class": "cpu"}, "terminationGracePeriodSeconds": 5,
                         "containers": [{"name": "app", "image": "registry.k8s.io/pause:3.10",
                                         "resources": resources}]},
            },
        },
    }


def hpa(plan: BurstPlan, target_pct: int) -> dict[str, Any]:
    name = plan.service(f"hpa-{target_pct}")
    return {
        "apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": name, "namespace": plan.namespace},
        "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name},
                 "minReplicas": plan.replicas, "maxReplicas": plan.max_replicas,
                 "metrics": [{"type": "Resource", "resource": {"name": "cpu", "target": {
                     "type": "Utilization", "averageUtilization": target_pct}}}]},
    }


def intent(plan: BurstPlan) -> dict[str, Any]:
    name = plan.service("mas")
    return {
        "apiVersion": "kubeagora.io/v1alpha1", "kind": "OrchestrationIntent",
        "metadata": {"name": name, "namespace": plan.namespace},
        "spec": {"targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name},
                 "slo": {"p95Ms": plan.slo_p95_ms, "p99Ms": plan.slo_p99_ms},
                 "replicas": {"min": plan.replicas, "max": plan.max_replicas},
                 "placement": {"nodeClasses": ["cpu"]}, "autonomy": "auto",
                 "workload": {"template": plan.template}},
    }


def workloads(plan: BurstPlan) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = [{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": plan.namespace}}]
    for target in plan.hpa_targets_pct:
        out += [deployment(plan, f"hpa-{target}"), hpa(plan, target)]
    return [*out, deployment(plan, "mas"), intent(plan)]


# ---------------------------------------------------------------------------------------------- the timeline
@dataclass(frozen=True)
class Sample:
    t: float
    """Seconds since the burst started (negative before)."""
    requests: float
    dropped: float
    buckets: tuple[float, ...]
    """Cumulative counts per upper bound (``bounds``), +Inf last."""
    offered_rps: float
    desired: int
    ready: int
    load_1m: float | None = None
    """The machine's 1-minute load average when sampled (a shared machine can distort a run)."""


@dataclass(frozen=True)
class Timeline:
    bounds_s: tuple[float, ...]
    samples: Mapping[str, tuple[Sample, ...]]
    """By arm."""


OTEL_HISTOGRAM = "http_server_request_duration_seconds"


def read_exposition(text: str, services: Sequence[str], namespace: str,
                    ) -> tuple[tuple[float, ...], dict[str, dict[str, Any]]]:
    """The mock kubelet's ``/metrics`` (its OpenTelemetry HTTP histogram) → (bucket bounds, per service:
    requests served, dropped (the 503s), the served requests' buckets); ``services`` are Deployments
    of ``namespace``."""
    out: dict[str, dict[str, Any]] = {s: {"requests": 0.0, "dropped": 0.0, "buckets": {}} for s in services}
    for family in text_string_to_metric_families(text):
        if family.name != OTEL_HISTOGRAM:
            continue
        for sample in family.samples:
            svc = sample.labels.get("k8s_deployment_name")
            if svc not in out or sample.labels.get("k8s_namespace_name") != namespace:
                continue
            served = sample.labels.get("http_response_status_code") == "200"
            if sample.name == f"{OTEL_HISTOGRAM}_count":
                out[svc]["requests" if served else "dropped"] = sample.value
            elif sample.name == f"{OTEL_HISTOGRAM}_bucket" and served:
                out[svc]["buckets"][float(sample.labels["le"])] = sample.value
    bounds: set[float] = set()
    for v in out.values():
        bounds |= set(v["buckets"])
    return tuple(sorted(bounds)), out


def offered_rps(load: Mapping[str, Any], services: Sequence[str], namespace: str) -> dict[str, float]:
    """The mock kubelet's ``GET /load`` → the rate offered to each Deployment of ``namespace`` (0 if unknown)."""
    rates = load.get("services") or {}
    return {s: float((rates.get(f"{namespace}/{s}") or {}).get("rps", 0.0)) for s in services}


def quantile_ms(bounds_s: Sequence[float], counts: Sequence[float], q: float) -> float:
    """Prometheus' ``histogram_quantile`` over per-bucket (not cumulative) counts, in ms."""
    total = float(sum(counts))
    if total <= 0:
        return math.nan
    rank = q * total
    cum = 0.0
    lower = 0.0
    for bound, c in zip(bounds_s, counts, strict=True):
        if cum + c >= rank and c > 0:
            if math.isinf(bound):
                return 1000.0 * lower
            return 1000.0 * (lower + (bound - lower) * (rank - cum) / c)
        cum += c
        lower = bound if not math.isinf(bound) else lower
    return 1000.0 * lower


@dataclass(frozen=True)
class Window:
    start: float
    served: float
    dropped: float
    counts: tuple[float, ...]
    starting: bool
    """A pod was starting (desired > Ready) at some point in the window."""
    overloaded: bool
    """Offered load above Ready capacity at some point."""


def windows(samples: Sequence[Sample], capacity_per_pod: float, width_s: float = WINDOW_S) -> list[Window]:
    """Consecutive windows of ``width_s`` aligned on t = 0 (the burst's start).

    A window's counts run from the last sample at or before its start (the first sample inside it
    when there is none) to its last sample, so the windows tile the timeline: no request falls
    between two of them.
    """
    if len(samples) < 2:
        return []
    out = []
    first = math.floor(samples[0].t / width_s) * width_s
    start = first
    while start < samples[-1].t:
        inside = [s for s in samples if start <= s.t <= start + width_s]
        before = [s for s in samples if s.t <= start]
        a = before[-1] if before else inside[0] if inside else None
        if a is not None and inside[-1] is not a:
            b = inside[-1]
            counts = tuple(max(0.0, y - x) for x, y in zip(_per_bucket(a.buckets), _per_bucket(b.buckets),
                                                              strict=True))
            out.append(Window(start, max(0.0, b.requests - a.requests), max(0.0, b.dropped - a.dropped), counts,
                              any(s.desired > s.ready for s in inside),
                              any(s.offered_rps > s.ready * capacity_per_pod for s in inside)))
        start += width_s
    return out


def _per_bucket(cumulative: Sequence[float]) -> tuple[float, ...]:
    return tuple(np.diff(np.asarray(cumulative, dtype=float), prepend=0.0).tolist())


@dataclass(frozen=True)
class ArmResult:
    arm: str
    time_to_scale_s: float | None
    cold_start_p99_delta_ms: float | None
    slo_violation_pct: float
    baseline_p99_ms: float | None
    burst_p99_ms: float | None
    max_replicas: int
    replica_seconds: float
    dropped: float
    replicas_at_burst: int | None = None
    """Ready replicas when the burst began (an autoscaler that scaled up before it starts ahead)."""


def summarize(arm: str, samples: Sequence[Sample], plan: BurstPlan, bounds_s: Sequence[float]) -> ArmResult:
    cap = plan.pod_capacity_rps
    burst = [s for s in samples if 0.0 <= s.t <= plan.burst_s]
    tts = next((s.t for s in burst if s.ready * cap >= s.offered_rps), None)
    ws = windows(samples, cap)
    before = [w for w in ws if w.start + WINDOW_S <= 0 and not w.starting and not w.overloaded]
    during = [w for w in ws if 0 <= w.start < plan.burst_s]
    starting = [w for w in during if w.starting]

    def p99(group: Sequence[Window]) -> float | None:
        if not group:
            return None
        merged = np.sum([w.counts for w in group], axis=0)
        v = quantile_ms(bounds_s, merged.tolist(), 0.99)
        return v if math.isfinite(v) else None

    base, cold = p99(before), p99(starting)
    violating = 0.0
    total = 0.0
    for w in during:
        total += w.served + w.dropped
        p95w, p99w = quantile_ms(bounds_s, w.counts, 0.95), quantile_ms(bounds_s, w.counts, 0.99)
        broke = (math.isfinite(p95w) and p95w > plan.slo_p95_ms) or (math.isfinite(p99w) and p99w > plan.slo_p99_ms)
        violating += (w.served if broke else 0.0) + w.dropped
    rs = 0.0
    for a, b in itertools.pairwise(burst):
        rs += a.desired * (b.t - a.t)
    return ArmResult(arm, tts, (cold - base) if cold is not None and base is not None else None,
                     100.0 * violating / total if total > 0 else 0.0, base, p99(during),
                     max((s.desired for s in burst), default=0), rs, sum(w.dropped for w in during),
                     burst[0].ready if burst else None)


def summarize_timeline(timeline: Timeline, plan: BurstPlan) -> dict[str, ArmResult]:
    return {arm: summarize(arm, s, plan, timeline.bounds_s) for arm, s in timeline.samples.items()}


# ---------------------------------------------------------------------------------------------- the run
@dataclass
class Driver:
    """Runs the burst against a running stack and records the timeline (one sample a second)."""

    metrics_url: str
    replicas: Callable[[], dict[str, tuple[int, int]]]
    """Deployment name → (spec.replicas, status.readyReplicas)."""
    set_load: Callable[[str, float], Any]
    plan: BurstPlan
    progress: Callable[[str, float], None] = lambda _what, _frac: None
    samples: dict[str, list[Sample]] = field(default_factory=dict)
    bounds: tuple[float, ...] = ()

    def sample(self, t: float) -> None:
        with urllib.request.urlopen(self.metrics_url, timeout=5) as resp:
            text = resp.read().decode()
        with urllib.request.urlopen(self.metrics_url.rsplit("/", 1)[0] + "/load", timeout=5) as resp:
            load = json.loads(resp.read())
        arms = self.plan.arms
        names = [self.plan.service(a) for a in arms]
        bounds, per = read_exposition(text, names, self.plan.namespace)
        offered = offered_rps(load, names, self.plan.namespace)
        self.bounds = bounds or self.bounds
        reps = self.replicas()
        load_1m = os.getloadavg()[0]
        for arm, name in zip(arms, names, strict=True):
            v = per[name]
            buckets = tuple(v["buckets"].get(b, 0.0) for b in self.bounds)
            desired, ready = reps.get(name, (0, 0))
            self.samples.setdefault(arm, []).append(Sample(t, v["requests"], v["dropped"], buckets, offered[name],
                                                           desired, ready, load_1m))

    def run(self) -> Timeline:
        plan = self.plan
        t_burst = time.monotonic() + plan.warm_s
        end = t_burst + plan.burst_s
        burst_on = False
        while True:
            now = time.monotonic()
            if not burst_on and now >= t_burst:
                for arm in plan.arms:
                    self.set_load(plan.service(arm), plan.factor)
                burst_on = True
            if now >= end:
                break
            t = now - t_burst
            self.sample(t)
            phase = "warm-up" if t < 0 else f"burst ×{plan.factor:g}"
            self.progress(phase, (now - (t_burst - plan.warm_s)) / (plan.warm_s + plan.burst_s))
            time.sleep(max(0.0, 1.0 - (time.monotonic() - now)))
        for arm in plan.arms:
            self.set_load(plan.service(arm), 1.0)
        return Timeline(self.bounds, {a: tuple(s) for a, s in self.samples.items()})


# ---------------------------------------------------------------------------------------------- outputs
PAPER = {"hpa": (45.0, 85.0), "mas": (18.0, 30.0)}
"""Seed paper, Table 2: time to scale (s) and cold-start p99 delta (ms)."""
TARGET_RATIO = 0.5
"""Issue target: the operator's time to scale and violations in the burst ≤ this × the best-tuned HPA's."""


def run_conditions(timeline: Timeline) -> dict[str, Any]:
    """How loaded the machine was during the run: its 1-minute load average over the samples (per
    CPU too) and the longest gap between two samples (1 s when the driver kept time)."""
    ss = next(iter(timeline.samples.values()), ())
    loads = [s.load_1m for s in ss if s.load_1m is not None]
    gaps = [b.t - a.t for a, b in itertools.pairwise(ss)]
    cpus = os.cpu_count() or 1
    return {"cpus": cpus,
            "load_1m": ({"min": min(loads), "mean": sum(loads) / len(loads), "max": max(loads),
                         "mean_per_cpu": sum(loads) / len(loads) / cpus} if loads else None),
            "max_sample_gap_s": max(gaps, default=None)}


def result_document(plan: BurstPlan, results: Mapping[str, ArmResult], timeline: Timeline) -> dict[str, Any]:
    return {"plan": asdict(plan), "signals": {a: SIGNALS[kind_of(a)] for a in plan.arms if kind_of(a) in SIGNALS},
            "conditions": run_conditions(timeline), "results": {a: asdict(r) for a, r in results.items()},
            "timeline": {a: [asdict(s) for s in ss] for a, ss in timeline.samples.items()},
            "bounds_s": [b if math.isfinite(b) else "+Inf" for b in timeline.bounds_s]}


def write_json(path: Path, doc: Mapping[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=1, default=lambda x: None if isinstance(x, float) else str(x)))


def _color(arm: str) -> str:
    target = hpa_target(arm)
    if target is None:
        return "tab:blue"
    return {50: "tab:red", 60: "tab:brown", 70: "tab:orange", 80: "goldenrod", 90: "tab:olive"}.get(target, "tab:gray")


def plot(path: Path, timeline: Timeline, plan: BurstPlan) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(9, 7), sharex=True)
    cap = plan.pod_capacity_rps
    for arm, ss in timeline.samples.items():
        t = [s.t for s in ss]
        ax1.step(t, [s.ready for s in ss], where="post", color=_color(arm), label=f"{arm_label(arm)}: Ready")
        ax1.step(t, [s.desired for s in ss], where="post", color=_color(arm), linestyle=":", alpha=0.7)
        ws = windows(ss, cap)
        ax2.plot([w.start + WINDOW_S / 2 for w in ws], [quantile_ms(timeline.bounds_s, w.counts, 0.99) for w in ws],
                 marker="o", ms=3, color=_color(arm), label=arm_label(arm))
    first = next(iter(timeline.samples.values()), ())
    if first:
        ax1.plot([s.t for s in first], [s.offered_rps / cap for s in first], color="grey", linestyle="--",
                 label="pods the offered load needs (at their request)")
    for ax in (ax1, ax2):
        ax.axvspan(0, plan.burst_s, color="red", alpha=0.06)
    ax2.axhline(plan.slo_p99_ms, color="red", linestyle="--", linewidth=1, label=f"p99 SLO {plan.slo_p99_ms:g} ms")
    ax1.set_ylabel("replicas (solid Ready, dotted desired)")
    ax2.set_ylabel("p99 per 10 s window (ms)")
    limit = f"CPU limit {plan.cpu_limit}" if plan.cpu_limit else "no CPU limit (Burstable)"
    ax2.set_xlabel(f"seconds from the burst (×{plan.factor:g} at t = 0); pods request {plan.cpu_request} CPU, {limit}")
    ax2.set_yscale("log")
    ax1.legend(fontsize=7, loc="upper left")
    ax2.legend(fontsize=7, loc="upper left")
    fig.suptitle("One burst, the real HPA at several targets and the operator, one real control plane")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def over_runs(values: Sequence[float | None], none: str = "n/a", digits: int = 1) -> str:
    """One figure over runs: the value of one run, or mean (min–max); runs without it (None) are
    counted apart ("never in 1 of 3")."""
    got = [v for v in values if v is not None]
    if not got:
        return none
    mean = sum(got) / len(got)
    text = f"{mean:.{digits}f}"
    if len(got) > 1:
        text += f" ({min(got):.{digits}f}–{max(got):.{digits}f})"
    if len(got) < len(values):
        text += f", {none} in {len(values) - len(got)} of {len(values)}"
    return text


def _runs(given: ArmResult | Sequence[ArmResult]) -> list[ArmResult]:
    return [given] if isinstance(given, ArmResult) else list(given)


def markdown_table(results: Mapping[str, ArmResult | Sequence[ArmResult]]) -> str:
    """Table 2 as markdown, the paper's figures beside ours. Each arm maps to one run's result or to
    every run's; over several runs a figure reads mean (min–max)."""
    rows = ["| autoscaler | scales on | runs | time to scale (s) | cold-start p99 delta (ms) | "
            "SLO violations in the burst (%) | p99 before / in burst (ms) | Ready at the burst / max replicas | "
            "replica-s in burst | paper (TTS s / Δp99 ms) |",
            "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for arm, given in results.items():
        rs = _runs(given)
        paper = PAPER.get(kind_of(arm))
        rows.append(f"| {arm_label(arm)} | {SIGNALS.get(kind_of(arm), '–')} | {len(rs)} | "
                    f"{over_runs([r.time_to_scale_s for r in rs], 'never')} | "
                    f"{over_runs([r.cold_start_p99_delta_ms for r in rs])} | "
                    f"{over_runs([r.slo_violation_pct for r in rs])} | "
                    f"{over_runs([r.baseline_p99_ms for r in rs])} / {over_runs([r.burst_p99_ms for r in rs])} | "
                    f"{over_runs([r.replicas_at_burst for r in rs], digits=0)} / "
                    f"{over_runs([r.max_replicas for r in rs], digits=0)} | "
                    f"{over_runs([r.replica_seconds for r in rs], digits=0)} | "
                    f"{f'{paper[0]:g} / +{paper[1]:g}' if paper else '–'} |")
    return "\n".join(rows)


@dataclass(frozen=True)
class Verdict:
    """The operator against the best HPA target on one figure (lower is better)."""

    figure: str
    operator: float
    best_arm: str
    best: float
    ratio: float | None
    """operator / best; None when both are 0 (nothing to compare)."""
    met: bool
    censored: bool
    """A run that never scaled counts as the whole burst: the HPA's figure is then a lower bound."""
    head_start: tuple[float, float] | None = None
    """(operator, best HPA target): mean Ready replicas at the burst's start, where the operator's were
    more: it had bought capacity before the burst, so the figure is no reaction to it and the target
    does not count as met."""


def mean_figure(rs: Sequence[ArmResult], figure: str, never: float) -> tuple[float, bool]:
    """Mean over runs; a run without the figure (never scaled) counts as ``never``; (mean, censored)."""
    values = [getattr(r, figure) for r in rs]
    return sum(never if v is None else float(v) for v in values) / len(values), any(v is None for v in values)


def verdicts(results: Mapping[str, Sequence[ArmResult]], burst_s: float) -> list[Verdict]:
    """Time to scale and violations in the burst: the operator's mean over runs against the best mean
    of the HPA targets (the best-tuned HPA on that figure), and whether the ratio meets ``TARGET_RATIO``."""
    hpas = {a: rs for a, rs in results.items() if hpa_target(a) is not None and rs}
    mas = results.get("mas")
    if not hpas or not mas:
        return []
    out = []
    for figure in ("time_to_scale_s", "slo_violation_pct"):
        op, _ = mean_figure(mas, figure, burst_s)
        means = {a: mean_figure(rs, figure, burst_s) for a, rs in hpas.items()}
        best_arm = min(means, key=lambda a: means[a][0])
        best, censored = means[best_arm]
        ratio = None if best == 0 and op == 0 else (math.inf if best == 0 else op / best)
        ahead = _ready_at_burst(mas), _ready_at_burst(hpas[best_arm])
        head_start = ahead if ahead[0] > ahead[1] else None
        met = (ratio is None or ratio <= TARGET_RATIO) and head_start is None
        out.append(Verdict(figure, op, best_arm, best, ratio, met, censored, head_start))
    return out


def _ready_at_burst(rs: Sequence[ArmResult]) -> float:
    got = [r.replicas_at_burst for r in rs if r.replicas_at_burst is not None]
    return sum(got) / len(got) if got else 0.0


def verdicts_markdown(vs: Sequence[Verdict]) -> str:
    names = {"time_to_scale_s": ("time to scale", "s"), "slo_violation_pct": ("SLO violations in the burst", "%")}
    rows = [f"| figure (mean over runs) | operator | best HPA target | its figure | ratio | "
            f"target ≤ {TARGET_RATIO:g}× |",
            "| --- | --- | --- | --- | --- | --- |"]
    for v in vs:
        name, unit = names.get(v.figure, (v.figure, ""))
        ratio = "– (both 0)" if v.ratio is None else f"{v.ratio:.2f}"
        bound = " (≥: a run never scaled)" if v.censored else ""
        verdict = "met" if v.met else "missed"
        if v.ratio is None:
            verdict = "met only trivially: both 0, the burst separates nobody"
        if v.head_start is not None:
            verdict = (f"not comparable: the operator began the burst with {v.head_start[0]:.1f} Ready replicas "
                       f"vs {v.head_start[1]:.1f} (it scaled up before the burst)")
        rows.append(f"| {name} ({unit}) | {v.operator:.1f} | {arm_label(v.best_arm)} | {v.best:.1f}{bound} | "
                    f"{ratio} | {verdict} |")
    return "\n".join(rows)


# ---------------------------------------------------------------------------------------------- on a stack
def run_on_stack(stack: Any, plan: BurstPlan, progress: Callable[[str, float], None]) -> Timeline:
    """Apply both workloads to a running ``devcluster.stack.Stack``, wait until each has its replicas
    Ready (and the operator and the HPA see them), run the burst; returns the timeline."""
    from kubeagora.devcluster.stack import wait_until

    stack.apply(*workloads(plan))
    names = [plan.service(a) for a in plan.arms]

    def replicas() -> dict[str, tuple[int, int]]:
        doc = stack.kubectl_json("get", "deployments", "-n", plan.namespace)
        return {d["metadata"]["name"]: (int(d["spec"].get("replicas", 0)), int(d["status"].get("readyReplicas", 0)))
                for d in doc.get("items", ())}

    def settled() -> bool:
        reps = replicas()
        return all(reps.get(n, (0, -1))[1] >= plan.replicas for n in names)

    progress("pods starting", 0.0)
    wait_until("both Deployments' pods to be Ready", settled, 180)
    metrics_url = stack.children["mock-kubelet"].url + "/metrics"
    driver = Driver(metrics_url, replicas, stack.set_load, plan, progress)
    return driver.run()
