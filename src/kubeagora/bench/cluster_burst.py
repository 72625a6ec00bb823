"""The seed paper's Table 2 on a real control plane: one burst, the real HPA and kubeagora side by side.

Two identical Deployments of the same service template run in one cluster at the same time, each
with its own name (so each has its own traffic in the mock kubelet): ``<app>-hpa`` under the real
HorizontalPodAutoscaler of kube-controller-manager (autoscaling/v2, CPU utilisation target 80 %,
fed by the mock kubelet's metrics.k8s.io API), ``<app>-mas`` under an OrchestrationIntent managed by
the operator. Both get the same base load, then the same burst (``POST /load`` factor) at the same
moment. Once a second the driver reads the mock kubelet's ``/metrics`` (cumulative request and
latency histogram counters per service) and both Deployments' replicas; the figures come from that
timeline by the bench's own definitions (docs/benchmarks.md):

- time to scale: from the start of the burst until Ready capacity (Ready pods × the template's
  per-pod capacity) ≥ the offered load; None if it never got there;
- cold-start p99 delta: p99 of the requests of the 10-second windows in the burst in which a pod was
  starting (desired > Ready), minus the p99 of the steady windows before the burst;
- SLO violations in the burst: requests of 10-second windows whose p95 or p99 broke the target, plus
  dropped requests, over all requests of the burst.
"""

from __future__ import annotations

import itertools
import json
import math
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
ARMS = ("hpa", "mas")


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
    hpa_target_pct: int = 80
    slo_p95_ms: float = 150.0
    slo_p99_ms: float = 250.0

    def service(self, arm: str) -> str:
        return f"{self.app}-{arm}"

    @property
    def pod_capacity_rps(self) -> float:
        t = TEMPLATES[self.template]
        ms = min(t["service_time_ms"].values())
        return float(t.get("concurrency", 4)) * 1000.0 / float(ms)


# ---------------------------------------------------------------------------------------------- the workloads
def deployment(plan: BurstPlan, arm: str) -> dict[str, Any]:
    name = plan.service(arm)
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
                                         "resources": {"requests": {"cpu": plan.cpu_request, "memory": "256Mi"}}}]},
            },
        },
    }


def hpa(plan: BurstPlan) -> dict[str, Any]:
    name = plan.service("hpa")
    return {
        "apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": name, "namespace": plan.namespace},
        "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name},
                 "minReplicas": plan.replicas, "maxReplicas": plan.max_replicas,
                 "metrics": [{"type": "Resource", "resource": {"name": "cpu", "target": {
                     "type": "Utilization", "averageUtilization": plan.hpa_target_pct}}}]},
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
    return [{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": plan.namespace}},
            deployment(plan, "hpa"), hpa(plan), deployment(plan, "mas"), intent(plan)]


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


@dataclass(frozen=True)
class Timeline:
    bounds_s: tuple[float, ...]
    samples: Mapping[str, tuple[Sample, ...]]
    """By arm."""


def read_exposition(text: str, services: Sequence[str], namespace: str,
                    ) -> tuple[tuple[float, ...], dict[str, dict[str, Any]]]:
    """The mock kubelet's ``/metrics`` → (bucket bounds, per service: requests, dropped, buckets, offered);
    ``services`` are workloads of ``namespace``."""
    out: dict[str, dict[str, Any]] = {s: {"requests": 0.0, "dropped": 0.0, "buckets": {}, "offered": 0.0}
                                      for s in services}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            svc = sample.labels.get("workload")
            if svc not in out or sample.labels.get("namespace") != namespace:
                continue
            if sample.name == "kubeagora_requests_total":
                out[svc]["requests"] = sample.value
            elif sample.name == "kubeagora_requests_dropped_total":
                out[svc]["dropped"] = sample.value
            elif sample.name == "kubeagora_request_duration_seconds_bucket":
                out[svc]["buckets"][float(sample.labels["le"])] = sample.value
            elif sample.name == "kubeagora_service_offered_rps":
                out[svc]["offered"] = sample.value
    bounds: set[float] = set()
    for v in out.values():
        bounds |= set(v["buckets"])
    return tuple(sorted(bounds)), out


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
                     max((s.desired for s in burst), default=0), rs, sum(w.dropped for w in during))


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
        names = [self.plan.service(a) for a in ARMS]
        bounds, per = read_exposition(text, names, self.plan.namespace)
        self.bounds = bounds or self.bounds
        reps = self.replicas()
        for arm, name in zip(ARMS, names, strict=True):
            v = per[name]
            buckets = tuple(v["buckets"].get(b, 0.0) for b in self.bounds)
            desired, ready = reps.get(name, (0, 0))
            self.samples.setdefault(arm, []).append(Sample(t, v["requests"], v["dropped"], buckets, v["offered"],
                                                           desired, ready))

    def run(self) -> Timeline:
        plan = self.plan
        t_burst = time.monotonic() + plan.warm_s
        end = t_burst + plan.burst_s
        burst_on = False
        while True:
            now = time.monotonic()
            if not burst_on and now >= t_burst:
                for arm in ARMS:
                    self.set_load(plan.service(arm), plan.factor)
                burst_on = True
            if now >= end:
                break
            t = now - t_burst
            self.sample(t)
            phase = "warm-up" if t < 0 else f"burst ×{plan.factor:g}"
            self.progress(phase, (now - (t_burst - plan.warm_s)) / (plan.warm_s + plan.burst_s))
            time.sleep(max(0.0, 1.0 - (time.monotonic() - now)))
        for arm in ARMS:
            self.set_load(plan.service(arm), 1.0)
        return Timeline(self.bounds, {a: tuple(s) for a, s in self.samples.items()})


# ---------------------------------------------------------------------------------------------- outputs
PAPER = {"hpa": (45.0, 85.0), "mas": (18.0, 30.0)}
"""Seed paper, Table 2: time to scale (s) and cold-start p99 delta (ms)."""


def result_document(plan: BurstPlan, results: Mapping[str, ArmResult], timeline: Timeline) -> dict[str, Any]:
    return {"plan": asdict(plan), "results": {a: asdict(r) for a, r in results.items()},
            "timeline": {a: [asdict(s) for s in ss] for a, ss in timeline.samples.items()},
            "bounds_s": [b if math.isfinite(b) else "+Inf" for b in timeline.bounds_s]}


def write_json(path: Path, doc: Mapping[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=1, default=lambda x: None if isinstance(x, float) else str(x)))


def plot(path: Path, timeline: Timeline, plan: BurstPlan) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(9, 6.5), sharex=True)
    colors = {"hpa": "tab:orange", "mas": "tab:blue"}
    labels = {"hpa": "Kubernetes HPA (real, 80 % CPU)", "mas": "kubeagora operator"}
    cap = plan.pod_capacity_rps
    for arm, ss in timeline.samples.items():
        t = [s.t for s in ss]
        ax1.step(t, [s.ready for s in ss], where="post", color=colors[arm], label=f"{labels[arm]}: Ready")
        ax1.step(t, [s.desired for s in ss], where="post", color=colors[arm], linestyle=":", alpha=0.7)
        ws = windows(ss, cap)
        ax2.plot([w.start + WINDOW_S / 2 for w in ws], [quantile_ms(timeline.bounds_s, w.counts, 0.99) for w in ws],
                 marker="o", ms=3, color=colors[arm], label=labels[arm])
    need = [s.offered_rps / cap for s in timeline.samples.get("mas", ())]
    if need:
        ax1.plot([s.t for s in timeline.samples["mas"]], need, color="grey", linestyle="--",
                 label="pods the offered load needs (at 100 %)")
    for ax in (ax1, ax2):
        ax.axvspan(0, plan.burst_s, color="red", alpha=0.06)
    ax2.axhline(plan.slo_p99_ms, color="red", linestyle="--", linewidth=1, label=f"p99 SLO {plan.slo_p99_ms:g} ms")
    ax1.set_ylabel("replicas (solid Ready, dotted desired)")
    ax2.set_ylabel("p99 per 10 s window (ms)")
    ax2.set_xlabel(f"seconds from the burst (×{plan.factor:g} at t = 0)")
    ax2.set_yscale("log")
    ax1.legend(fontsize=8, loc="upper left")
    ax2.legend(fontsize=8, loc="upper left")
    fig.suptitle("One burst, two autoscalers, one real control plane")
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


def markdown_table(results: Mapping[str, ArmResult | Sequence[ArmResult]]) -> str:
    """Table 2 as markdown, the paper's figures beside ours. Each arm maps to one run's result or to
    every run's; over several runs a figure reads mean (min–max)."""
    rows = ["| autoscaler | runs | time to scale (s) | cold-start p99 delta (ms) | SLO violations in the burst (%) | "
            "p99 before / in burst (ms) | max replicas | replica-s in burst | paper (TTS s / Δp99 ms) |",
            "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    names = {"hpa": "Kubernetes HPA (kube-controller-manager)", "mas": "kubeagora (operator, MAS)"}
    for arm, given in results.items():
        rs = [given] if isinstance(given, ArmResult) else list(given)
        paper = PAPER.get(arm)
        rows.append(f"| {names.get(arm, arm)} | {len(rs)} | "
                    f"{over_runs([r.time_to_scale_s for r in rs], 'never')} | "
                    f"{over_runs([r.cold_start_p99_delta_ms for r in rs])} | "
                    f"{over_runs([r.slo_violation_pct for r in rs])} | "
                    f"{over_runs([r.baseline_p99_ms for r in rs])} / {over_runs([r.burst_p99_ms for r in rs])} | "
                    f"{over_runs([r.max_replicas for r in rs], digits=0)} | "
                    f"{over_runs([r.replica_seconds for r in rs], digits=0)} | "
                    f"{f'{paper[0]:g} / +{paper[1]:g}' if paper else '–'} |")
    return "\n".join(rows)


# ---------------------------------------------------------------------------------------------- on a stack
def run_on_stack(stack: Any, plan: BurstPlan, progress: Callable[[str, float], None]) -> Timeline:
    """Apply both workloads to a running ``devcluster.stack.Stack``, wait until each has its replicas
    Ready (and the operator and the HPA see them), run the burst; returns the timeline."""
    from kubeagora.devcluster.stack import wait_until

    stack.apply(*workloads(plan))
    names = [plan.service(a) for a in ARMS]

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
