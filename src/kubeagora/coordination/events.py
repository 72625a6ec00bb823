"""The events agents publish on the bus: each says its lane and what it may be coalesced with.

`lane` is a class attribute (or a property where it depends on the content) and `coalescing_key`
a property; the bus reads both (`bus.py`). An event type without a coalescing key is never merged.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import ClassVar

from kubeagora.agents.base import Lane, Proposal


@dataclass(frozen=True, slots=True)
class ServiceMetrics:
    """The newest figures of one service; only the newest per service matters."""

    lane: ClassVar[Lane] = Lane.ROUTINE
    service: str
    time_s: float
    arrival_rps: float
    p95_ms: float
    p99_ms: float
    ready_replicas: int

    @property
    def coalescing_key(self) -> str:
        return self.service


@dataclass(frozen=True, slots=True)
class SloAlert:
    """A service is over (or about to be over) its latency target."""

    lane: ClassVar[Lane] = Lane.SLO
    service: str
    time_s: float
    p99_ms: float
    slo_p99_ms: float

    @property
    def coalescing_key(self) -> str:
        return self.service


@dataclass(frozen=True, slots=True)
class Incident:
    """Something broke (node lost, partition, accelerator throttled); never coalesced, never dropped."""

    lane: ClassVar[Lane] = Lane.INCIDENT
    kind: str
    """What happened, e.g. "node_not_ready", "region_partition", "gpu_throttled"."""
    subject: str
    """The node, region or service it happened to."""
    time_s: float
    detail: str = ""


@dataclass(frozen=True, slots=True)
class PricesPosted:
    """The market's newest prices per resource pool; only the newest matters."""

    lane: ClassVar[Lane] = Lane.ROUTINE
    coalescing_key: ClassVar[str] = "prices"
    time_s: float
    price_per_unit: Mapping[str, float]


@dataclass(frozen=True, slots=True)
class ProposalPublished:
    """An agent's proposal, travelling in the lane the agent chose for it."""

    proposal: Proposal

    @property
    def lane(self) -> Lane:
        return self.proposal.lane
