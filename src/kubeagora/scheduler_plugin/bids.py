"""The watch cache as a Contract-Net ledger and a pod as the task the nodes bid on (pure).

The extender does not score nodes with a model of its own: it asks the placement agent's market
(``coordination.contract_net``) what each node would bid to host the pod — interference with the
work already there, energy × carbon, the users' RTT, slowness, residency, trust — and that bid is
the node's price. What the cluster does not say directly is read as follows:

- utilisation: what the node has committed, the larger of its CPU and accelerator shares requested
  by its bound pods (the extender sees no live load; a request is what a pod may use), and the new
  pod is priced as busy as it asked to be;
- co-located work: the bound pods' mean service time on the node (their catalog template's, over
  the node's speed);
- power: the simulator's wall power for the node's tier and class (``sim.topology.NODE_SHAPES``);
- carbon: the setting for the node's region, else the simulator's grid for a ``region-K`` name, else
  ``default_carbon_g_per_kwh``; or the node's ``kubeagora.io/carbon-g-per-kwh`` annotation where it is
  higher (a node's claim about itself only counts against it: ``kubeapi.node_reports``);
- the users' region: the pod's ``kubeagora.io/origin-region`` annotation, else the first region of its
  intent's placement (no network term when neither says).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from kubeagora.coordination.contract_net import BidWeights, NodeLedger, PlacementTask
from kubeagora.kubeapi.node_reports import believed_carbon_g_per_kwh
from kubeagora.model import NodeClass
from kubeagora.scheduler_plugin.cache import ClusterCache
from kubeagora.scheduler_plugin.network import LinkLatencies, ingress_rtt_ms
from kubeagora.scheduler_plugin.placement import ANNOTATION_ORIGIN_REGION, Placement
from kubeagora.scheduler_plugin.workload import PodDemand, model_service
from kubeagora.sim.recorder import CARBON_BASE_G_PER_KWH

SIMULATOR_REGION = re.compile(r"region-(\d+)$")


@dataclass(frozen=True, slots=True)
class BidSettings:
    weights: BidWeights = field(default_factory=BidWeights)
    """How a node turns its marginal effects into one bid (the placement agent's defaults)."""
    links: LinkLatencies = field(default_factory=LinkLatencies)
    region_carbon_g_per_kwh: Mapping[str, float] = field(default_factory=dict)
    default_carbon_g_per_kwh: float = 300.0
    """A grid of unknown intensity is priced as an average one (~300 g/kWh)."""


def region_carbon(region: str | None, settings: BidSettings) -> float:
    if region is None:
        return settings.default_carbon_g_per_kwh
    if region in settings.region_carbon_g_per_kwh:
        return float(settings.region_carbon_g_per_kwh[region])
    m = SIMULATOR_REGION.match(region)
    if m:
        return CARBON_BASE_G_PER_KWH[int(m.group(1)) % len(CARBON_BASE_G_PER_KWH)]
    return settings.default_carbon_g_per_kwh


def origin_region(pod_annotations: Mapping[str, str], placement: Placement) -> str | None:
    return pod_annotations.get(ANNOTATION_ORIGIN_REGION) or placement.first_region


def ledger_for(cache: ClusterCache, slots: Sequence[int], origin: str | None, settings: BidSettings) -> NodeLedger:
    """The bidders' view of the nodes in ``slots``: one row of ``ingress_rtt_ms``, the users' region's."""
    idx = np.asarray(slots, dtype=np.int64)
    classes = tuple(cache.node_class[s] or NodeClass.CPU for s in slots)
    regions = [cache.region[s] for s in slots]
    cores = cache.cpu_cores[idx]
    accelerators = cache.gpus[idx] + cache.tpus[idx]
    acc_allocated = cache.gpus_allocated[idx] + cache.tpus_allocated[idx]
    utilisation = np.maximum(cache.cpu_allocated[idx] / np.maximum(cores, 1e-9),
                             acc_allocated / np.maximum(accelerators, 1.0))
    carbon_of: dict[str | None, float] = {}
    carbon = np.empty(len(slots))
    for j, s in enumerate(slots):
        r = regions[j]
        if r not in carbon_of:
            carbon_of[r] = region_carbon(r, settings)
        carbon[j] = believed_carbon_g_per_kwh(cache.carbon_claim[s], carbon_of[r])
    speed = cache.speed[idx]
    rtt = ingress_rtt_ms(origin, regions, [cache.zone[s] for s in slots], [cache.tier[s] for s in slots],
                         cache.user_zone, settings.links)
    return NodeLedger(
        names=tuple(cache.slot_names[s] for s in slots),
        node_classes=classes,
        regions=tuple(r or "" for r in regions),
        cpu_cores=cores,
        cpu_free=cores - cache.cpu_allocated[idx],
        memory_free_gib=cache.memory_gib[idx] - cache.memory_allocated_gib[idx],
        accelerators=accelerators,
        accelerators_free=accelerators - acc_allocated,
        schedulable=cache.schedulable[idx],
        utilisation=np.clip(utilisation, 0.0, 1.0),
        speed=speed,
        beta=cache.beta[idx],
        dynamic_power_w=cache.dynamic_power_w[idx],
        carbon_g_per_kwh=carbon,
        ingress_rtt_ms=rtt[None, :],
        colocated_service_ms=cache.colocated_service_ms[idx] / np.maximum(speed, 1e-9),
        trust=cache.trust[idx],
    )


def task_for(demand: PodDemand, placement: Placement, origin: str | None) -> PlacementTask:
    """Start one replica of the pod's service, as busy as its requests allow."""
    allowed = tuple(sorted(placement.regions)) if placement.regions is not None else None
    service = model_service(demand, origin or "", allowed)
    return PlacementTask(0, service, 0, replica_busy_fraction=1.0)
