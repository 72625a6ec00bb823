"""The prioritize verb: the Contract-Net bids of the offered nodes, mapped to extender scores (pure).

A node's score is ``MAX_EXTENDER_PRIORITY × (best + 1 ms) / (bid + 1 ms)``, rounded: the cheapest
bid scores 10, a bid twice as dear about 5, and a node that cannot host the pod (or that the cache
does not know) 0. A ratio rather than a min–max stretch keeps one far-away node from squeezing the
near ones into the same score. A pod the extender knows nothing about — no intent, no catalog
template, no accelerator — gets 0 everywhere: the extender adds nothing to the scheduler's ranking.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from kubeagora.coordination.contract_net import BidColumns, bid_columns
from kubeagora.model import FloatArray
from kubeagora.scheduler_plugin.bids import BidSettings, ledger_for, origin_region, task_for
from kubeagora.scheduler_plugin.cache import ClusterCache
from kubeagora.scheduler_plugin.placement import combined, intents_of
from kubeagora.scheduler_plugin.protocol import MAX_EXTENDER_PRIORITY
from kubeagora.scheduler_plugin.workload import PodDemand

SCORE_FLOOR_MS = 1.0
"""Added to every bid before the ratio, so a zero-cost node does not make every other one score 0."""


@dataclass(frozen=True, slots=True)
class OfferedBids:
    nodes: tuple[str, ...]
    """The offered nodes the cache knows, in the order offered."""
    bids: BidColumns
    """Their bids (``coordination.contract_net.bid_columns``), indexed like ``nodes``."""


def bids_for(cache: ClusterCache, demand: PodDemand, annotations: Mapping[str, str], names: Sequence[str],
             settings: BidSettings) -> OfferedBids | None:
    """Every known offered node's bid for the pod; None when the extender knows nothing of the pod."""
    intents = intents_of(demand, cache.intent_snapshot(), cache.selectors)
    if not intents and demand.template is None and demand.accelerators <= 0:
        return None
    placement = combined(i.placement for i in intents)
    origin = origin_region(annotations, placement)
    slots = cache.slots_of(names)
    ledger = ledger_for(cache, slots, origin, settings)
    return OfferedBids(ledger.names, bid_columns(task_for(demand, placement, origin), ledger, settings.weights))


def scores_from_costs(nodes: Sequence[str], cost_ms: FloatArray) -> dict[str, int]:
    """MAX × (best + floor) / (cost + floor), rounded; 0 where the cost is infinite (cannot host)."""
    feasible = np.isfinite(cost_ms)
    if not feasible.any():
        return dict.fromkeys(nodes, 0)
    best = float(cost_ms[feasible].min()) + SCORE_FLOOR_MS
    scaled = np.where(feasible, MAX_EXTENDER_PRIORITY * best / (np.where(feasible, cost_ms, 0.0) + SCORE_FLOOR_MS),
                      0.0)
    return dict(zip(nodes, np.rint(scaled).astype(np.int64).tolist(), strict=True))


def prioritize_pod(cache: ClusterCache, demand: PodDemand, annotations: Mapping[str, str], names: Sequence[str],
                   settings: BidSettings) -> dict[str, int]:
    """A score 0..MAX_EXTENDER_PRIORITY for every offered node, in the order offered."""
    offered = bids_for(cache, demand, annotations, names, settings)
    scored = scores_from_costs(offered.nodes, offered.bids.cost_ms) if offered else {}
    return {name: scored.get(name, 0) for name in names}
