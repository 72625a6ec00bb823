"""What every agent shares: the Proposal it makes and the Agent protocol.

An agent is a pure policy, `decide(observation, state, context) -> (proposals, state)`, exactly like a
controller (STYLE.md: Ray Serve's policy shape), so the same agent runs in the simulator, the twin,
the operator and the tests. Agents never act: they propose. The MAS controller coordinates the
proposals (bus, market), filters them (shield), tests them (twin) and rolls them out.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any, Protocol

from kubeagora.model import Action, Observation


class Lane(IntEnum):
    """Priority lanes of the bus: incidents before SLO alerts before routine work."""

    ROUTINE = 0
    SLO = 1
    INCIDENT = 2


@dataclass(frozen=True, slots=True)
class Proposal:
    """One action an agent wants, with everything a person needs to judge it."""

    agent: str
    action: Action
    reason: str
    """Why, in one sentence a person can check."""
    inputs: Mapping[str, float] = field(default_factory=dict)
    """The figures the agent decided on (e.g. forecast_rps, p99_ms, price_per_core)."""
    predicted_effect: Mapping[str, float] = field(default_factory=dict)
    """What it expects to change (e.g. {"p99_ms": -40.0, "replicas": 2.0})."""
    risk: float = 0.0
    """0 (harmless) … 1 (could take a service down): the share of capacity the action touches."""
    lane: Lane = Lane.ROUTINE


@dataclass(frozen=True, slots=True)
class AgentContext:
    """Shared, read-only inputs computed once per tick for all agents (forecasts, prices, trust)."""

    forecast_rps: Any = None
    """[service, horizon step] expected arrivals per second."""
    prices: Mapping[str, float] = field(default_factory=dict)
    """Market price per resource pool (the Lagrange multiplier of its capacity)."""
    trust: Mapping[str, float] = field(default_factory=dict)
    """Trust score per node and per agent name, 0..1."""
    extras: Mapping[str, Any] = field(default_factory=dict)


class Agent(Protocol):
    @property
    def name(self) -> str: ...

    def initial_state(self, observation: Observation) -> Any: ...

    def decide(self, observation: Observation, state: Any,
               context: AgentContext) -> tuple[Sequence[Proposal], Any]: ...
