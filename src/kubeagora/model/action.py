"""What a controller may ask of the cluster. Every action carries the reason it was taken."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Scale:
    """Set the desired replica count of a service (the Deployment's spec.replicas)."""

    service: str
    replicas: int
    reason: str = ""


@dataclass(frozen=True, slots=True)
class Place:
    """Start one more replica of a service on a named node (bypasses default placement)."""

    service: str
    node: str
    reason: str = ""


@dataclass(frozen=True, slots=True)
class Migrate:
    """Move one replica: start it on `to_node`, stop the one on `from_node` once the new one is Ready."""

    service: str
    from_node: str
    to_node: str
    reason: str = ""


@dataclass(frozen=True, slots=True)
class SetConcurrency:
    """Change how many requests each replica of a service serves at once."""

    service: str
    concurrency: int
    reason: str = ""


@dataclass(frozen=True, slots=True)
class ShedLoad:
    """Reject this fraction of a service's arrivals at the ingress (graceful degradation)."""

    service: str
    fraction: float
    reason: str = ""


@dataclass(frozen=True, slots=True)
class QuarantineNode:
    """Take a node out of routing and placement (cordon + remove its endpoints)."""

    node: str
    reason: str = ""


@dataclass(frozen=True, slots=True)
class LiftQuarantine:
    """Put a quarantined node back into routing and placement (its trust has recovered)."""

    node: str
    reason: str = ""


Action = Scale | Place | Migrate | SetConcurrency | ShedLoad | QuarantineNode | LiftQuarantine
NodeAction = QuarantineNode | LiftQuarantine
"""Actions on a node rather than a service (every tenant on it is touched)."""
