"""The Controller protocol: a policy is a pure function of what it observes and its own state.

`decide(observation, state) -> (actions, state)`: state goes in and comes out, nothing hides on
`self`, so the same controller runs in the simulator, the twin, the operator and the tests.
The engine calls `decide` every `interval_s` simulated seconds.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from kubeagora.model import Action, Observation


class Controller(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def interval_s(self) -> float:
        """How often the engine calls `decide` (its sync period)."""
        ...

    def initial_state(self, observation: Observation) -> Any: ...

    def decide(self, observation: Observation, state: Any) -> tuple[Sequence[Action], Any]: ...


class StaticController:
    """Never acts: replicas stay at each service's `min_replicas`. The fidelity checks use it."""

    name = "static"
    interval_s = 60.0

    def initial_state(self, observation: Observation) -> None:
        return None

    def decide(self, observation: Observation, state: None) -> tuple[Sequence[Action], None]:
        return (), None
