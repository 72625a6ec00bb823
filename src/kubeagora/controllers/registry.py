"""Controllers by name: what `kubeagora simulate --controller NAME` and the bench matrix accept."""

from __future__ import annotations

from collections.abc import Callable

from kubeagora.controllers.base import Controller, StaticController
from kubeagora.controllers.heuristic import HeuristicController
from kubeagora.controllers.hpa import HpaController
from kubeagora.controllers.keda import KedaController
from kubeagora.controllers.knative import KnativeController
from kubeagora.controllers.mas import MasController
from kubeagora.controllers.mpc import MpcController
from kubeagora.controllers.oracle import OracleController
from kubeagora.controllers.rayserve import RayServeController
from kubeagora.sim.scenario import CompiledScenario

_FACTORIES: dict[str, Callable[[CompiledScenario], Controller]] = {
    "static": lambda scenario: StaticController(),
    "heuristic": lambda scenario: HeuristicController(),
    "hpa": lambda scenario: HpaController(),
    "keda": lambda scenario: KedaController(),
    "rayserve": lambda scenario: RayServeController(),
    "knative": lambda scenario: KnativeController(),
    "mpc": lambda scenario: MpcController(),
    "mas": lambda scenario: MasController(),
    "oracle": OracleController,
}

CONTROLLER_NAMES: tuple[str, ...] = tuple(_FACTORIES)


def make_controller(name: str, scenario: CompiledScenario) -> Controller:
    """A fresh controller for `scenario`; the oracle is the only one that reads the scenario's future."""
    factory = _FACTORIES.get(name)
    if factory is None:
        raise ValueError(f"unknown controller {name!r} (known: {', '.join(CONTROLLER_NAMES)})")
    return factory(scenario)
