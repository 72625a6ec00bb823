"""Baseline knobs: controller labels, the registry building them, and `--sweep` specs."""

from __future__ import annotations

import pytest
from tests.unit.observations import advance, observation, web_service

from kubeagora.bench.sweep import expand_sweeps, parse_sweep
from kubeagora.controllers.hpa import HpaController
from kubeagora.controllers.rayserve import RayServeController
from kubeagora.controllers.registry import controller_label, make_controller
from kubeagora.controllers.tuning import KNOBS, ControllerLabel
from kubeagora.model import Scale
from kubeagora.sim.run import simulate
from kubeagora.sim.scenario import DEFAULT_SCENARIO, compile_scenario, load_scenario


def _scenario(duration_s: float = 120.0):  # type: ignore[no-untyped-def]
    model, source = load_scenario(DEFAULT_SCENARIO)
    return compile_scenario(model, source, duration_s=duration_s)


def test_labels_are_canonical_the_default_is_the_bare_family_and_oracle_is_the_clairvoyant_planner() -> None:
    assert controller_label("hpa@target=0.60") == ControllerLabel("hpa", 0.6)
    assert controller_label("hpa@target=0.6").text == "hpa@target=0.6"
    assert controller_label("hpa@target=0.8").text == "hpa"  # autoscaling/v1's 80 % is the default
    assert controller_label("oracle").text == "clairvoyant"
    assert controller_label(" mas ").text == "mas"


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("vpa", "unknown controller 'vpa'"),
        ("mas@target=0.5", "'mas' has no knob"),
        ("hpa@cpu=0.5", "hpa@target=VALUE"),
        ("hpa@target=high", "'high' is not a number"),
        ("hpa@target=1.5", r"must lie in \[0.1, 1\]"),
        ("rayserve@target=0", r"must lie in \[0.05, 4\]"),
    ],
)
def test_bad_labels_name_what_is_wrong(name: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        controller_label(name)


def test_the_registry_builds_each_baseline_at_the_setting_asked() -> None:
    scenario = _scenario()
    hpa = make_controller("hpa@target=0.55", scenario)
    assert isinstance(hpa, HpaController)
    assert hpa.settings.target_cpu_utilization == 0.55
    shipped = make_controller("hpa", scenario)
    assert isinstance(shipped, HpaController)
    assert shipped.settings.target_cpu_utilization == KNOBS["hpa"].default == 0.8
    heuristic = make_controller("heuristic@target=0.6", scenario)
    assert heuristic.settings.scale_out_utilization == 0.6  # type: ignore[attr-defined]
    assert heuristic.settings.scale_in_utilization == pytest.approx(0.2)  # type: ignore[attr-defined]
    assert make_controller("keda@target=0.5", scenario).settings.target_fraction_of_replica_capacity == 0.5  # type: ignore[attr-defined]
    assert make_controller("knative@target=0.9", scenario).settings.target_utilization == 0.9  # type: ignore[attr-defined]


def test_a_lower_target_buys_more_replicas() -> None:
    scenario = _scenario(600.0)
    tight = simulate(scenario, make_controller("hpa@target=0.5", scenario)).metrics["replica_seconds"]
    loose = simulate(scenario, make_controller("hpa@target=0.9", scenario)).metrics["replica_seconds"]
    assert tight is not None
    assert loose is not None
    assert tight > 1.2 * loose


@pytest.mark.parametrize(("slots", "wanted"), [(4, 16), (16, 4)])
def test_rayserve_targets_ongoing_requests_per_slot(slots: int, wanted: int) -> None:
    """32 requests in flight over 2 replicas: at 0.5 per slot a 4-slot replica's target is 2 (Ray's
    default), so 16 replicas; a 16-slot LLM replica's is 8, so 4 — not 16 as a flat 2 per replica gave."""
    ray = RayServeController()
    obs = observation(services=(web_service("svc", concurrency=slots),), ready=2, queue_length=32.0)
    state = ray.initial_state(obs)
    scaled: list[int] = []
    for _ in range(40):
        obs = advance(obs, 1.0)
        actions, state = ray.decide(obs, state)
        scaled += [a.replicas for a in actions if isinstance(a, Scale)]
    assert scaled[0] == wanted


def test_standard_sweep_covers_the_documented_grid_of_each_baseline_present() -> None:
    swept = parse_sweep("standard", ["hpa", "mas", "rayserve"])
    assert list(swept) == ["hpa", "rayserve"]
    assert swept["hpa"] == ["hpa", "hpa@target=0.5", "hpa@target=0.6", "hpa@target=0.7", "hpa@target=0.9"]
    assert swept["rayserve"][0] == "rayserve"
    assert len(swept["rayserve"]) == 1 + len(KNOBS["rayserve"].standard) - (0.5 in KNOBS["rayserve"].standard)


def test_ranges_and_lists_expand_after_the_given_controllers_without_repeats() -> None:
    assert expand_sweeps(["mas", "hpa"], ["hpa.target=0.5:0.7:0.1", "knative.target=0.6,0.8"]) == [
        "mas",
        "hpa",
        "hpa@target=0.5",
        "hpa@target=0.6",
        "hpa@target=0.7",
        "knative",
        "knative@target=0.6",
        "knative@target=0.8",
    ]


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("hpa=0.5:0.9:0.1", "write FAMILY.target"),
        ("vpa.target=0.5", "'vpa' has no knob"),
        ("hpa.cpu=0.5", "hpa's knob is 'target'"),
        ("hpa.target=0.9:0.5:0.1", "STOP ≥ START"),
        ("hpa.target=0.5:0.9", "START:STOP:STEP"),
        ("hpa.target=0.1:0.9:0.001", "at most 50"),
        ("hpa.target=0.5,x", "'x' is not a number"),
        ("hpa.target=0.5,2", r"must lie in \[0.1, 1\]"),
        ("hpa.target=", "no values"),
    ],
)
def test_bad_sweeps_name_what_is_wrong(spec: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_sweep(spec, ["hpa"])


def test_standard_without_a_tunable_controller_is_an_error() -> None:
    with pytest.raises(ValueError, match="none of the controllers has a knob"):
        parse_sweep("standard", ["mas", "clairvoyant"])
