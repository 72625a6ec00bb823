"""The prioritize verb: the Contract-Net bids of the offered nodes, mapped to extender scores (pure).

A node's score is ``MAX_EXTENDER_PRIORITY × (best + 1 ms) / (bid + 1 ms)``, rounded: the cheapest
bid scores 10, a bid twice as dear about 5, and a node that cannot host the pod (or that the cache
does not know) 0. A ratio rather than a min–max stretch keeps one far-away node from squeezing the
near ones into the same score. A pod the extender knows nothing about — no intent, no catalog
template, no accelerator — gets 0 everywhere: the extender adds nothing to the scheduler's ranking.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from kubeagora.coordination.contract_net import NodeBid, announce
from kubeagora.scheduler_plugin.bids import BidSettings, ledger_for, origin_region, task_for
from kubeagora.scheduler_plugin.cache import ClusterCache
from kubeagora.scheduler_plugin.placement import combined, intents_of
from kubeagora.scheduler_plugin.protocol import MAX_EXTENDER_PRIORITY
from kubeagora.scheduler_plugin.workload import PodDemand

SCORE_FLOOR_MS = 1.0
"""Added to every bid before the ratio, so a zero-cost node does not make every other one score 0."""


def bids_for(cache: ClusterCache, demand: PodDemand, annotations: Mapping[str, str], names: Sequence[str],
             settings: BidSettings) -> tuple[NodeBid, ...] | None:
    """Every known offered node's bid for the pod; None when the extender knows nothing of the pod."""
    intents = intents_of(demand, cache.intents.values(), cache.selectors)
    if not intents and demand.template is None and demand.accelerators <= 0:
        return None
    placement = combined(i.placement for i in intents)
    origin = origin_region(annotations, placement)
    slots = cache.slots_of(names)
    if not slots:
        return ()
    return announce(task_for(demand, placement, origin), ledger_for(cache, slots, origin, settings), settings.weights)


def scores_from_bids(bids: Sequence[NodeBid]) -> dict[str, int]:
    feasible = [b.cost_ms for b in bids if b.feasible]
    if not feasible:
        return {b.node: 0 for b in bids}
    best = min(feasible) + SCORE_FLOOR_MS
    return {b.node: round(MAX_EXTENDER_PRIORITY * best / (b.cost_ms + SCORE_FLOOR_MS)) if b.feasible else 0
            for b in bids}


def prioritize_pod(cache: ClusterCache, demand: PodDemand, annotations: Mapping[str, str], names: Sequence[str],
                   settings: BidSettings) -> dict[str, int]:
    """A score 0..MAX_EXTENDER_PRIORITY for every offered node, in the order offered."""
    bids = bids_for(cache, demand, annotations, names, settings)
    scored = scores_from_bids(bids) if bids else {}
    return {name: scored.get(name, 0) for name in names}
