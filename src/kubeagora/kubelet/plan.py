"""What the mock kubelet will play, from its options: nodes, service profiles, faults (pure).

Nodes come from a scenario's topology (``--scenario``) or a generated hub-and-spoke topology of
about ``--nodes N``. A service's load, first match wins: the ``--traffic`` file, the pods'
``kubeagora.io/rps`` annotation (set it on the Deployment's pod template), the scenario's base rate
for a service of that name, ``--default-rps``. Its service times: the scenario's service of that
name, else the template from the traffic file or the pods' ``kubeagora.io/template`` annotation,
else ``web``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import yaml

from kubeagora.kubelet.errors import KubeletError
from kubeagora.kubelet.faults import PodCrash, pod_crashes
from kubeagora.kubelet.nodes import topology_for_nodes
from kubeagora.kubelet.pods import ANNOTATION_RPS, ANNOTATION_TEMPLATE
from kubeagora.kubelet.traffic import (
    DEFAULT_TEMPLATE,
    ServiceProfile,
    TrafficSpec,
    parse_traffic,
    profile_from_service,
    profile_from_template,
)
from kubeagora.model import Service
from kubeagora.sim.scenario import FaultEvent, ScenarioError, compile_scenario, load_scenario
from kubeagora.sim.topology import Topology, build_topology


@dataclass(frozen=True)
class Plan:
    topology: Topology
    names: tuple[str, ...]
    """The Node name of each topology node (the topology's own, after ``name_prefix``)."""
    scenario_services: Mapping[str, Service] = field(default_factory=dict)
    scenario_rps: Mapping[str, float] = field(default_factory=dict)
    traffic: Mapping[str, TrafficSpec] = field(default_factory=dict)
    faults: tuple[FaultEvent, ...] = ()
    crashes: tuple[PodCrash, ...] = ()
    default_rps: float = 10.0
    source: str = ""

    def profile(self, service: str, annotations: Mapping[str, str] | None) -> ServiceProfile:
        """The profile of a service first seen on a pod with these annotations."""
        ann = annotations or {}
        spec = self.traffic.get(service)
        rps: float | None = spec.rps if spec else None
        if rps is None and ANNOTATION_RPS in ann:
            try:
                rps = max(float(ann[ANNOTATION_RPS]), 0.0)
            except ValueError:
                rps = None
        if rps is None:
            rps = self.scenario_rps.get(service, self.default_rps)
        known = self.scenario_services.get(service)
        if known is not None:
            return profile_from_service(known, rps, self.topology.regions)
        template = (spec.template if spec else None) or ann.get(ANNOTATION_TEMPLATE) or DEFAULT_TEMPLATE
        try:
            return profile_from_template(service, template, rps)
        except ValueError:
            return profile_from_template(service, DEFAULT_TEMPLATE, rps)


def make_plan(scenario: str | None, nodes: int | None, seed: int | None = None, traffic: Path | None = None,
              default_rps: float = 10.0, name_prefix: str = "", faults: bool = True) -> Plan:
    """Raises KubeletError (one line, naming the option or file) for bad input."""
    if (scenario is None) == (nodes is None):
        raise KubeletError("give exactly one of --scenario NAME|FILE and --nodes N")
    if default_rps < 0:
        raise KubeletError(f"--default-rps must be ≥ 0 (got {default_rps:g})")
    if name_prefix and not _dns_label_prefix(name_prefix):
        raise KubeletError(f"--name-prefix {name_prefix!r}: use lower-case letters, digits and '-'")
    spec_traffic = _load_traffic(traffic) if traffic is not None else {}
    if nodes is not None:
        try:
            topo = build_topology(topology_for_nodes(nodes), np.random.default_rng(1 if seed is None else seed))
        except ValueError as e:
            raise KubeletError(str(e)) from None
        return Plan(topo, tuple(name_prefix + n.name for n in topo.nodes), traffic=spec_traffic,
                    default_rps=default_rps, source=f"--nodes {nodes}")
    assert scenario is not None
    try:
        model, source = load_scenario(scenario)
        compiled = compile_scenario(model, source, seed=seed)
    except ScenarioError as e:
        raise KubeletError(str(e)) from None
    base = compiled.workload.rates(0.0, 1, 1.0)[0]
    services = {s.name: s for s in compiled.services}
    events = compiled.faults if faults else ()
    return Plan(compiled.topology, tuple(name_prefix + n.name for n in compiled.nodes), services,
                {s.name: float(base[i]) for i, s in enumerate(compiled.services)}, spec_traffic, events,
                tuple(pod_crashes(events, [s.name for s in compiled.services])), default_rps, source)


def _dns_label_prefix(prefix: str) -> bool:
    return len(prefix) < 40 and prefix[0].isalnum() and all(c.islower() or c.isdigit() or c == "-" for c in prefix)


def _load_traffic(path: Path) -> dict[str, TrafficSpec]:
    try:
        data = yaml.safe_load(path.read_text())
    except OSError as e:
        raise KubeletError(f"--traffic {path}: cannot read it ({e.strerror})") from None
    except yaml.YAMLError as e:
        raise KubeletError(f"--traffic {path}: malformed YAML ({e})") from None
    try:
        return parse_traffic(data, str(path))
    except ValueError as e:
        raise KubeletError(str(e)) from None
