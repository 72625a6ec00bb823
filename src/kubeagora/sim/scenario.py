"""Scenario manifests (YAML): topology, services, workload and a fault schedule, with a seed.

`load_scenario(name_or_path)` reads a built-in scenario by name or a YAML file; `compile_scenario`
turns it into the concrete nodes, services, rates and faults the engine runs. Every problem is a
`ScenarioError` whose message names the file and the field.

A run is bounded before anything is allocated for it: at most `MAX_DURATION_S` simulated seconds
(a file's `duration_s` and a `--duration` override alike), steps of at least `MIN_STEP_S` (the
recorder keeps a 10 s window of per-step histograms, so its memory grows as 1 / `step_s`) and at
most `MAX_STEPS` of them.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from kubeagora.model import Node, NodeClass, Service, WorldParameters
from kubeagora.sim.catalog import TEMPLATES
from kubeagora.sim.topology import Topology, TopologySpec, build_topology
from kubeagora.sim.trace import TraceError, load_trace, moving_average
from kubeagora.sim.workload import Burst, Workload

BUILTIN_PACKAGE = "kubeagora.sim.scenarios"
DEFAULT_SCENARIO = "steady-drift"
MAX_DURATION_S = 30 * 86_400
"""The longest run: 30 simulated days."""
MIN_STEP_S = 0.1
"""The finest engine step; at 0.1 s the recorder's window for 20,000 services is ~350 MB."""
MAX_STEPS = 30 * 86_400
"""The most engine steps in one run (30 days of 1-second steps)."""
FAULT_KINDS = ("node-termination", "zone-outage", "region-partition", "gpu-throttle", "packet-loss", "pod-crash",
               "attestation-failure", "identity-expired", "replayed-claims", "falsified-metrics", "inflated-demand")
NODE_TARGET_KINDS = ("node-termination", "attestation-failure", "identity-expired", "replayed-claims",
                     "falsified-metrics")
"""Faults on one node (by name, or `random`: a non-MCU node drawn from the seed)."""
SERVICE_TARGET_KINDS = ("pod-crash", "inflated-demand")
ATTESTATION_KINDS = ("attestation-failure", "identity-expired", "replayed-claims")
FaultKind = Literal["node-termination", "zone-outage", "region-partition", "gpu-throttle", "packet-loss", "pod-crash",
                    "attestation-failure", "identity-expired", "replayed-claims", "falsified-metrics",
                    "inflated-demand"]


class ScenarioError(ValueError):
    """A scenario that cannot be run; the message names the file and the field."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TopologyModel(_Strict):
    kind: Literal["hub-and-spoke", "fat-tree", "grid"] = "hub-and-spoke"
    regions: Annotated[int, Field(ge=1, le=16)] = 2
    zones_per_region: Annotated[int, Field(ge=1, le=16)] = 2
    edge_nodes_per_zone: Annotated[int, Field(ge=0, le=1000)] = 3
    mcu_nodes_per_zone: Annotated[int, Field(ge=0, le=1000)] = 1
    edge_gpu_per_zone: Annotated[int, Field(ge=0, le=1000)] = 0
    fog_nodes_per_region: Annotated[int, Field(ge=0, le=1000)] = 2
    fog_gpu_per_region: Annotated[int, Field(ge=0, le=1000)] = 0
    cloud_nodes_per_region: Annotated[int, Field(ge=0, le=5000)] = 4
    cloud_gpu_per_region: Annotated[int, Field(ge=0, le=1000)] = 1
    cloud_tpu_per_region: Annotated[int, Field(ge=0, le=1000)] = 0
    speed_jitter: Annotated[float, Field(ge=0.0, lt=0.9)] = 0.1


class ServiceModel(_Strict):
    """An explicit service; fields not given come from its template."""

    name: str
    template: str = "web"
    slo_p95_ms: Annotated[float, Field(gt=0)] | None = None
    slo_p99_ms: Annotated[float, Field(gt=0)] | None = None
    traffic_weight: Annotated[float, Field(gt=0)] = 1.0
    origin_region: str | None = None
    allowed_regions: tuple[str, ...] | None = None
    min_replicas: Annotated[int, Field(ge=0)] | None = None
    max_replicas: Annotated[int, Field(ge=1)] | None = None
    tenant: str | None = None
    downstream: tuple[str, ...] = ()


class ServicesModel(_Strict):
    count: Annotated[int, Field(ge=0, le=20_000)] = 0
    mix: dict[str, Annotated[float, Field(ge=0)]] = Field(default_factory=lambda: {"web": 1.0})
    tenants: Annotated[int, Field(ge=1)] = 3
    zipf_s: Annotated[float, Field(ge=0)] = 0.8
    """Traffic weights follow a Zipf law over services (0 = all equal)."""
    explicit: tuple[ServiceModel, ...] = ()


class BurstModel(_Strict):
    at_s: Annotated[float, Field(ge=0)]
    duration_s: Annotated[float, Field(gt=0)]
    factor: Annotated[float, Field(ge=1.0, le=100.0)] = 8.0
    hotspots: Annotated[int, Field(ge=1)] = 1
    """How many services take the burst (chosen by the seed, busiest first)."""
    ramp_s: Annotated[float, Field(ge=0)] = 10.0


class TraceModel(_Strict):
    path: str
    format: Literal["counts", "timestamps"] = "counts"
    scale: Annotated[float, Field(gt=0)] = 1.0
    offset_s: Annotated[int, Field(ge=0)] = 0
    smoothing_s: Annotated[int, Field(ge=1, le=3600)] = 60
    """The trace's per-second counts are one sample of the users' rate; the replay uses their moving
    average over this window, so that scaling a trace up (more users with the same pattern) does not
    scale its per-second sampling noise with it. The engine draws Poisson arrivals around that rate."""


class WorkloadModel(_Strict):
    total_rps: Annotated[float, Field(gt=0)] = 2000.0
    diurnal_amplitude: Annotated[float, Field(ge=0, le=1)] = 0.0
    diurnal_period_s: Annotated[float, Field(gt=0)] = 86_400.0
    diurnal_phase_s: float = 0.0
    drift_per_hour: float = 0.0
    heavy_tail_alpha: Annotated[float, Field(gt=1.0)] | None = None
    bursts: tuple[BurstModel, ...] = ()
    trace: TraceModel | None = None


class FaultModel(_Strict):
    at_s: Annotated[float, Field(ge=0)]
    kind: FaultKind
    target: str = "random"
    """A node, zone, region or service name, or `random` (drawn from the seed)."""
    duration_s: Annotated[float, Field(gt=0)] | None = None
    """None = permanent (a terminated node does not come back)."""
    factor: Annotated[float, Field(gt=0, le=100)] = 0.5
    """GPU throttling: speed multiplier under the power cap; packet loss: loss rate while bursting;
    attestation-failure: share of the node's attestations that fail (1: all; below 1: intermittently);
    falsified-metrics: the node is secretly that much slower and reports its utilisation × factor (and its
    nominal speed); inflated-demand: the service's agent claims factor × its real demand (> 1). All but
    inflated-demand are at most 1."""

    @model_validator(mode="after")
    def _factor_fits_the_kind(self) -> FaultModel:
        if self.kind == "inflated-demand" and self.factor <= 1:
            raise ValueError(f"inflated-demand needs a factor above 1 (the claimed multiple), got {self.factor:g}")
        if self.kind != "inflated-demand" and self.factor > 1:
            raise ValueError(f"{self.kind}: factor must be at most 1, got {self.factor:g}")
        return self


class ScenarioModel(_Strict):
    name: str
    description: str = ""
    seed: int = 1
    duration_s: Annotated[float, Field(gt=0, le=MAX_DURATION_S)] = 1800.0
    step_s: Annotated[float, Field(ge=MIN_STEP_S, le=10)] = 1.0
    topology: TopologyModel = TopologyModel()
    services: ServicesModel = ServicesModel(count=12)
    workload: WorkloadModel = WorkloadModel()
    faults: tuple[FaultModel, ...] = ()
    model_error: Annotated[float, Field(ge=0.0, le=1.0)] = 0.0
    """How far the world strays from its nominal specs: each service's service time and cold start per
    node class, each node class's interference coefficient and each node's speed is the declared value
    × a lognormal factor of median 1 and log-sd `model_error` (drawn from the seed). The controllers
    see only the declared values. 0 = the world is exactly as declared."""
    attestation: bool = False
    """The nodes are enrolled for attestation: each reports a verdict on its signed claims every tick
    (``Observation.node_attestation``), verified unless an attestation fault says otherwise."""
    warm_start: bool = True
    """Start every service with the replicas its initial load needs (as a cluster that has been running
    would), instead of `min_replicas`; all controllers then start from the same sensible state and
    the first minute measures control, not a cold start from one pod."""


@dataclass(frozen=True, slots=True)
class FaultEvent:
    at_s: float
    kind: str
    nodes: tuple[int, ...]
    """Node indices the fault hits (empty for pod crashes)."""
    services: tuple[int, ...]
    regions: tuple[int, ...]
    duration_s: float | None
    factor: float
    label: str


@dataclass(frozen=True, slots=True)
class CompiledScenario:
    name: str
    source: str
    seed: int
    duration_s: float
    step_s: float
    topology: Topology
    services: tuple[Service, ...]
    workload: Workload
    faults: tuple[FaultEvent, ...]
    downstream: tuple[tuple[int, int], ...]
    """(caller, callee) service index pairs."""
    warm_start: bool = False
    attestation: bool = False
    """The nodes are enrolled for attestation (see `ScenarioModel.attestation`)."""
    model_error: float = 0.0
    """The log-sd σ the world was drawn with (see `ScenarioModel.model_error`)."""
    world: WorldParameters | None = None
    """The true parameters the engine runs (None = exactly the declared ones). Only the engine and
    the clairvoyant planner read it."""

    @property
    def nodes(self) -> tuple[Node, ...]:
        return self.topology.nodes


def builtin_names() -> list[str]:
    files = resources.files(BUILTIN_PACKAGE)
    return sorted(p.name.removesuffix(".yaml") for p in files.iterdir() if p.name.endswith(".yaml"))


def load_scenario(name_or_path: str) -> tuple[ScenarioModel, str]:
    """Parse a built-in scenario by name or a YAML file; returns the model and where it came from."""
    path = Path(name_or_path)
    if name_or_path in builtin_names():
        source = f"scenario {name_or_path!r}"
        text = resources.files(BUILTIN_PACKAGE).joinpath(f"{name_or_path}.yaml").read_text()
    elif path.suffix in (".yaml", ".yml") or path.exists():
        if not path.is_file():
            raise ScenarioError(f"{path}: scenario file not found")
        source, text = str(path), path.read_text()
    else:
        raise ScenarioError(f"unknown scenario {name_or_path!r} (built-in: {', '.join(builtin_names())}; "
                            "or give a path to a YAML file)")
    return parse_scenario(text, source), source


def parse_scenario(text: str, source: str) -> ScenarioModel:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f", line {mark.line + 1}" if mark is not None else ""
        raise ScenarioError(f"{source}{where}: malformed YAML ({getattr(e, 'problem', None) or e})") from None
    if not isinstance(data, dict):
        raise ScenarioError(f"{source}: expected a mapping at the top level, got {type(data).__name__}")
    try:
        return ScenarioModel.model_validate(data)
    except ValidationError as e:
        err = e.errors()[0]
        field = ".".join(str(p) for p in err["loc"]) or "(top level)"
        more = f" (and {len(e.errors()) - 1} more problems)" if len(e.errors()) > 1 else ""
        raise ScenarioError(f"{source}: field {field!r}: {err['msg']}{more}") from None


def compile_scenario(model: ScenarioModel, source: str = "", seed: int | None = None,
                     duration_s: float | None = None, trace: TraceModel | None = None,
                     model_error: float | None = None) -> CompiledScenario:
    """Concrete nodes, services, rates, faults and the true world. `seed`, `duration_s`, `trace` and
    `model_error` override the file."""
    seed = model.seed if seed is None else seed
    sigma = model.model_error if model_error is None else model_error
    if not (np.isfinite(sigma) and 0.0 <= sigma <= 1.0):
        raise ScenarioError(f"{source}: model error must be between 0 and 1 (got {sigma:g})")
    duration = model.duration_s if duration_s is None else duration_s
    check_run_length(duration, model.step_s, source, "duration_s" if duration_s is None else "--duration")
    rng = np.random.default_rng(seed)
    topo = build_topology(TopologySpec(**model.topology.model_dump()), rng)
    services, downstream = _services(model, topo, rng, source)
    _check_slos_feasible(services, topo, source)
    workload = _workload(model.workload if trace is None else model.workload.model_copy(update={"trace": trace}),
                         services, rng, source, duration, seed)
    faults = tuple(_fault(f, i, topo, services, rng, source, model.attestation) for i, f in enumerate(model.faults))
    world = WorldParameters.draw(len(services), len(topo.nodes), sigma, seed) if sigma > 0 else None
    return CompiledScenario(model.name, source, seed, duration, model.step_s, topo, services, workload,
                            tuple(sorted(faults, key=lambda f: f.at_s)), downstream, model.warm_start,
                            model.attestation, sigma, world)


def check_run_length(duration_s: float, step_s: float, source: str, what: str = "duration_s") -> None:
    """ScenarioError naming the limit when a run would be too long or have too many steps."""
    if not 0 < duration_s <= MAX_DURATION_S:
        raise ScenarioError(f"{source}: {what} {duration_s:g} s is outside the limit (0, {MAX_DURATION_S:,}] s "
                            f"({MAX_DURATION_S // 86_400} days)")
    steps = duration_s / step_s
    if steps > MAX_STEPS:
        raise ScenarioError(f"{source}: {what} {duration_s:g} s / step_s {step_s:g} s = {steps:,.0f} steps, "
                            f"more than the limit of {MAX_STEPS:,}")


def _from_template(template: str, where: str, **overrides: Any) -> Service:
    if template not in TEMPLATES:
        raise ScenarioError(f"{where}: unknown service template {template!r} (known: {', '.join(TEMPLATES)})")
    fields = dict(TEMPLATES[template])
    resident = fields.pop("resident", False)
    traffic_share = fields.pop("traffic_share", 1.0)
    if "traffic_weight" in overrides and overrides.get("generated"):
        overrides["traffic_weight"] *= traffic_share
    overrides.pop("generated", None)
    fields.update({k: v for k, v in overrides.items() if v is not None})
    if resident and fields.get("allowed_regions") is None:
        fields["allowed_regions"] = (fields["origin_region"],)
    return Service(**fields)


def _services(model: ScenarioModel, topo: Topology, rng: np.random.Generator,
              source: str) -> tuple[tuple[Service, ...], tuple[tuple[int, int], ...]]:
    spec = model.services
    regions = topo.regions
    out: list[Service] = []
    mix = {k: v for k, v in spec.mix.items() if v > 0}
    for k in mix:
        if k not in TEMPLATES:
            raise ScenarioError(f"{source}: field 'services.mix.{k}': unknown service template "
                                f"(known: {', '.join(TEMPLATES)})")
    if spec.count:
        names = list(mix)
        p = np.array([mix[k] for k in names]) / sum(mix.values())
        # largest-remainder allocation, so a mix is honoured exactly even for few services
        quota = p * spec.count
        counts = np.floor(quota).astype(int)
        for i in np.argsort(-(quota - counts))[: spec.count - counts.sum()]:
            counts[i] += 1
        kinds = [k for k, c in zip(names, counts, strict=True) for _ in range(c)]
        order = rng.permutation(len(kinds))
        ranks = np.arange(1, spec.count + 1, dtype=float)
        weights = 1.0 / ranks**spec.zipf_s
        for i, j in enumerate(order):
            kind = kinds[j]
            out.append(_from_template(kind, source, name=f"{kind}-{i}", traffic_weight=float(weights[i]),
                                      generated=True,
                                      origin_region=regions[i % len(regions)], tenant=f"tenant-{i % spec.tenants}"))
    for position, svc in enumerate(spec.explicit):
        where = f"{source}: field 'services.explicit.{position}'"
        for r in (svc.origin_region, *(svc.allowed_regions or ())):
            if r is not None and r not in regions:
                raise ScenarioError(f"{where}: unknown region {r!r} (topology has {', '.join(regions)})")
        out.append(_from_template(svc.template, where, name=svc.name, traffic_weight=svc.traffic_weight,
                                  origin_region=svc.origin_region or regions[0], allowed_regions=svc.allowed_regions,
                                  slo_p95_ms=svc.slo_p95_ms, slo_p99_ms=svc.slo_p99_ms, tenant=svc.tenant,
                                  min_replicas=svc.min_replicas, max_replicas=svc.max_replicas,
                                  downstream=svc.downstream))
    if not out:
        raise ScenarioError(f"{source}: field 'services': the scenario has no services")
    index = {s.name: i for i, s in enumerate(out)}
    if len(index) != len(out):
        raise ScenarioError(f"{source}: field 'services.explicit': service names must be unique")
    edges = []
    for i, s in enumerate(out):
        for callee in s.downstream:
            if callee not in index:
                raise ScenarioError(f"{source}: field 'services.explicit': {s.name} calls unknown service {callee!r}")
            edges.append((i, index[callee]))
    return tuple(out), tuple(edges)


def _check_slos_feasible(services: tuple[Service, ...], topo: Topology, source: str) -> None:
    """Refuse an SLO that no node could meet even idle: network + the service time's own p99."""
    region_idx = {r: i for i, r in enumerate(topo.regions)}
    for s in services:
        best = np.inf
        for j, nd in enumerate(topo.nodes):
            if not s.can_run_on(nd.node_class):
                continue
            if s.allowed_regions is not None and nd.region not in s.allowed_regions:
                continue
            sigma = np.sqrt(np.log1p(s.service_time_cv**2))
            p99_factor = np.exp(-sigma**2 / 2 + 2.326 * sigma)
            service_p99_ms = s.service_time_ms[nd.node_class] / nd.speed_factor * p99_factor
            t = topo.ingress_rtt_ms[region_idx[s.origin_region], j] + service_p99_ms
            best = min(best, t)
        if not np.isfinite(best):
            raise ScenarioError(f"{source}: service {s.name!r}: no node in the topology can run it "
                                f"(classes {', '.join(map(str, s.service_time_ms))}, "
                                f"regions {s.allowed_regions or 'any'})")
        if best > s.slo_p99_ms:
            raise ScenarioError(f"{source}: service {s.name!r}: field 'slo_p99_ms' = {s.slo_p99_ms:g} ms cannot be met "
                                f"by any node class (best idle p99 is {best:.0f} ms)")


def _workload(w: WorkloadModel, services: tuple[Service, ...], rng: np.random.Generator, source: str,
              duration_s: float, seed: int) -> Workload:
    weights = np.array([s.traffic_weight for s in services])
    base = w.total_rps * weights / weights.sum()
    busiest = np.argsort(-weights, kind="stable")
    bursts = []
    for b in w.bursts:
        hot = tuple(int(i) for i in busiest[: min(b.hotspots, len(services))])
        bursts.append(Burst(b.at_s, b.duration_s, b.factor, hot, b.ramp_s))
    trace = None
    if w.trace is not None:
        try:
            counts = load_trace(Path(w.trace.path), w.trace.format)
        except TraceError as e:
            raise ScenarioError(str(e)) from None
        trace = counts[w.trace.offset_s:]
        if trace.size == 0:
            raise ScenarioError(f"{source}: field 'workload.trace.offset_s': past the end of {w.trace.path}")
        # a run replays at most duration_s of the trace (it wraps around if the trace is shorter)
        trace = moving_average(trace[: int(duration_s) + w.trace.smoothing_s], w.trace.smoothing_s)
    workload = Workload(base, w.diurnal_amplitude, w.diurnal_period_s, w.diurnal_phase_s, w.drift_per_hour,
                        tuple(bursts), w.heavy_tail_alpha, seed, trace, w.trace.scale if w.trace else 1.0)
    return workload.with_heavy_tail(duration_s)


def _pick(candidates: list[int], target: str, rng: np.random.Generator) -> int:
    return candidates[int(rng.integers(len(candidates)))]


def _fault(f: FaultModel, i: int, topo: Topology, services: tuple[Service, ...], rng: np.random.Generator,
           source: str, attestation: bool = False) -> FaultEvent:
    where = f"{source}: field 'faults.{i}.target'"
    nodes = topo.nodes
    regions = topo.regions
    if f.kind in ATTESTATION_KINDS and not attestation:
        raise ScenarioError(f"{source}: field 'faults.{i}.kind': {f.kind} needs `attestation: true` (enrolled nodes)")
    if f.kind in NODE_TARGET_KINDS:
        cands = [j for j, n in enumerate(nodes) if f.target in ("random", n.name)]
        if f.target == "random":
            cands = [j for j, n in enumerate(nodes) if n.node_class != NodeClass.MCU]
            picked: tuple[int, ...] = (_pick(cands, f.target, rng),)
        elif not cands:
            raise ScenarioError(f"{where}: no node named {f.target!r}")
        else:
            picked = tuple(cands)
        return FaultEvent(f.at_s, f.kind, picked, (), (), f.duration_s, f.factor, f"{f.kind} {nodes[picked[0]].name}")
    if f.kind in ("zone-outage",):
        zones = sorted({n.zone for n in nodes})
        zone = zones[int(rng.integers(len(zones)))] if f.target == "random" else f.target
        if zone not in zones:
            raise ScenarioError(f"{where}: no zone named {zone!r} (zones: {', '.join(zones)})")
        return FaultEvent(f.at_s, f.kind, tuple(j for j, n in enumerate(nodes) if n.zone == zone), (), (),
                          f.duration_s, f.factor, f"{f.kind} {zone}")
    if f.kind in ("region-partition", "packet-loss", "gpu-throttle"):
        # region 0 hosts the control plane: a partition cuts off another region by default
        choices = list(regions[1:] or regions) if f.kind == "region-partition" else list(regions)
        region = choices[int(rng.integers(len(choices)))] if f.target == "random" else f.target
        if region not in regions:
            raise ScenarioError(f"{where}: no region named {region!r} (regions: {', '.join(regions)})")
        r = regions.index(region)
        hit = [j for j, n in enumerate(nodes) if n.region == region]
        if f.kind == "gpu-throttle":
            hit = [j for j in hit if nodes[j].node_class in (NodeClass.GPU, NodeClass.TPU)]
        return FaultEvent(f.at_s, f.kind, tuple(hit), (), (r,), f.duration_s, f.factor, f"{f.kind} {region}")
    # pod-crash, inflated-demand
    names = [s.name for s in services]
    if f.target == "random":
        svc = int(rng.integers(len(services)))
    elif f.target in names:
        svc = names.index(f.target)
    else:
        raise ScenarioError(f"{where}: no service named {f.target!r}")
    return FaultEvent(f.at_s, f.kind, (), (svc,), (), f.duration_s, f.factor, f"{f.kind} {names[svc]}")
