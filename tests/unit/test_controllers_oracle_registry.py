"""The oracle's sizing rule, the registry, and every controller on the default scenario."""

from __future__ import annotations

import pytest

from kubeagora.controllers.oracle import predicted_tail_ms, replicas_for_slo
from kubeagora.controllers.registry import CONTROLLER_NAMES, make_controller
from kubeagora.sim.run import RunResult, simulate
from kubeagora.sim.scenario import DEFAULT_SCENARIO, compile_scenario, load_scenario

WEB = {"service_ms": 25.0, "cv": 0.8, "concurrency": 4, "network_ms": 15.0}


def test_oracle_needs_more_replicas_for_more_load() -> None:
    light = replicas_for_slo(50.0, slo_p95_ms=150, slo_p99_ms=250, max_replicas=50, **WEB)
    heavy = replicas_for_slo(1000.0, slo_p95_ms=150, slo_p99_ms=250, max_replicas=50, **WEB)
    assert light == 1
    # a web replica serves 160 req/s flat out: 1000 req/s needs at least 7, and the tail asks for a bit more
    assert 7 <= heavy <= 10
    p95, p99 = predicted_tail_ms(1000.0, heavy, **WEB)
    assert p95 <= 150
    assert p99 <= 250


def test_oracle_gives_up_at_max_when_the_slo_is_out_of_reach() -> None:
    assert (
        replicas_for_slo(
            100.0, 25.0, 0.8, 4, network_ms=500.0, slo_p95_ms=150, slo_p99_ms=250, max_replicas=5
        )
        == 5
    )


def test_registry_knows_every_baseline_and_rejects_others() -> None:
    assert set(CONTROLLER_NAMES) == {"static", "heuristic", "hpa", "keda", "rayserve", "knative", "mpc", "oracle"}
    model, source = load_scenario(DEFAULT_SCENARIO)
    with pytest.raises(ValueError, match="known: static, heuristic"):
        make_controller("vpa", compile_scenario(model, source))


@pytest.fixture(scope="module")
def default_runs() -> dict[str, RunResult]:
    model, source = load_scenario(DEFAULT_SCENARIO)
    scenario = compile_scenario(model, source, duration_s=300)
    return {name: simulate(scenario, make_controller(name, scenario)) for name in CONTROLLER_NAMES}


@pytest.mark.parametrize("name", CONTROLLER_NAMES)
def test_every_controller_completes_the_default_scenario(
    default_runs: dict[str, RunResult], name: str
) -> None:
    metrics = default_runs[name].metrics
    assert default_runs[name].controller == name
    assert metrics["throughput_rps"] is not None
    assert metrics["throughput_rps"] > 0
    assert 0.0 <= metrics["slo_violation_pct"] <= 100.0
    assert not any(d["kind"] == "Refused" for d in default_runs[name].decisions)


def test_autoscalers_add_replicas_that_static_does_not(default_runs: dict[str, RunResult]) -> None:
    static_pods = default_runs["static"].timeseries["pods"][-1]
    for name in ("hpa", "keda", "knative", "rayserve", "heuristic", "oracle"):
        assert default_runs[name].timeseries["pods"][-1] > static_pods, name


def test_oracle_violates_less_than_static_and_hpa(default_runs: dict[str, RunResult]) -> None:
    oracle = default_runs["oracle"].metrics["slo_violation_pct"]
    assert oracle < default_runs["static"].metrics["slo_violation_pct"]
    assert oracle < default_runs["hpa"].metrics["slo_violation_pct"]
