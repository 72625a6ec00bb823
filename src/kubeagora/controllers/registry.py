"""Controllers by name: what `kubeagora simulate --controller NAME` and the bench matrix accept.

A name is a family (`hpa`) or a family with its knob set (`hpa@target=0.6`, see `tuning`). The
clairvoyant planner is `clairvoyant`; `oracle`, its old name, is accepted as an alias. Controllers
are imported when built, not when this module is: mpc and mas pull in cvxpy, which takes seconds.

`mas-learned` is mas with a learned residual on its MPC's set-points (`kubeagora.learn`): the policy
file given (`--policy FILE`) or the checkpoint shipped in the package. It is not in the default list.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from kubeagora.controllers.tuning import KNOBS, ControllerLabel, parse_label

if TYPE_CHECKING:
    from kubeagora.controllers.base import Controller
    from kubeagora.sim.scenario import CompiledScenario

CLAIRVOYANT = "clairvoyant"
CLAIRVOYANT_TITLE = "clairvoyant planner"
CLAIRVOYANT_NOTE = "knows the future and the true world; a reference, not a bound"
ALIASES = {"oracle": CLAIRVOYANT}


def _static(scenario: CompiledScenario, target: float | None) -> Controller:
    from kubeagora.controllers.base import StaticController

    return StaticController()


def _heuristic(scenario: CompiledScenario, target: float | None) -> Controller:
    from kubeagora.controllers.heuristic import HeuristicController, HeuristicSettings

    if target is None:
        return HeuristicController()
    shipped = HeuristicSettings()
    gap = shipped.scale_out_utilization - shipped.scale_in_utilization
    return HeuristicController(
        HeuristicSettings(scale_out_utilization=target, scale_in_utilization=max(target - gap, 0.0))
    )


def _hpa(scenario: CompiledScenario, target: float | None) -> Controller:
    from kubeagora.controllers.hpa import HpaController, HpaSettings

    return HpaController(None if target is None else HpaSettings(target_cpu_utilization=target))


def _keda(scenario: CompiledScenario, target: float | None) -> Controller:
    from kubeagora.controllers.keda import KedaController, KedaSettings

    return KedaController(None if target is None else KedaSettings(target_fraction_of_replica_capacity=target))


def _rayserve(scenario: CompiledScenario, target: float | None) -> Controller:
    from kubeagora.controllers.rayserve import RayServeController, RayServeSettings

    return RayServeController(None if target is None else RayServeSettings(target_ongoing_requests_per_slot=target))


def _knative(scenario: CompiledScenario, target: float | None) -> Controller:
    from kubeagora.controllers.knative import KnativeController, KnativeSettings

    return KnativeController(None if target is None else KnativeSettings(target_utilization=target))


def _mpc(scenario: CompiledScenario, target: float | None) -> Controller:
    from kubeagora.controllers.mpc import MpcController

    return MpcController()


def _mas(scenario: CompiledScenario, target: float | None) -> Controller:
    from kubeagora.controllers.mas import MasController

    return MasController()


def _clairvoyant(scenario: CompiledScenario, target: float | None) -> Controller:
    from kubeagora.controllers.clairvoyant import ClairvoyantPlanner

    return ClairvoyantPlanner(scenario)


def _mas_learned(scenario: CompiledScenario, target: float | None, policy: Path | None = None) -> Controller:
    from kubeagora.controllers.mas import MasController
    from kubeagora.learn.policy import SHIPPED_POLICY, LearnedResidual

    controller = MasController(residual=LearnedResidual.from_file(policy or SHIPPED_POLICY))
    controller.name = LEARNED
    return controller


LEARNED = "mas-learned"

_FACTORIES: dict[str, Callable[[CompiledScenario, float | None], Controller]] = {
    "static": _static,
    "heuristic": _heuristic,
    "hpa": _hpa,
    "keda": _keda,
    "rayserve": _rayserve,
    "knative": _knative,
    "mpc": _mpc,
    "mas": _mas,
    CLAIRVOYANT: _clairvoyant,
    LEARNED: _mas_learned,
}
assert set(KNOBS) <= set(_FACTORIES), "every tunable family is a controller"

CONTROLLER_NAMES: tuple[str, ...] = tuple(name for name in _FACTORIES if name != LEARNED)
"""What the bench runs by default (mas-learned only when asked for)."""


def controller_label(name: str) -> ControllerLabel:
    """The canonical label of a controller name (alias resolved, default setting written bare).

    Raises ValueError naming what was wrong: an unknown family, a knob it lacks, a value out of range.
    """
    label = parse_label(name, ALIASES)
    if label.family not in _FACTORIES:
        known = ", ".join(_FACTORIES)
        raise ValueError(f"unknown controller {name.strip()!r} (known: {known}; `oracle` = {CLAIRVOYANT})")
    return label


def make_controller(name: str, scenario: CompiledScenario, policy: Path | None = None) -> Controller:
    """A fresh controller for `scenario`; the clairvoyant planner is the only one that reads the scenario: its
    future and its true world. Every other one sees only Observations. `policy`: the file mas-learned runs."""
    label = controller_label(name)
    if label.family == LEARNED:
        return _mas_learned(scenario, label.target, policy)
    return _FACTORIES[label.family](scenario, label.target)
