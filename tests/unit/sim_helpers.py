"""Small scenarios for engine tests, built in code so each test says what it runs."""

from __future__ import annotations

from typing import Any

import numpy as np

from kubeagora.model import NODE_CLASSES, WorldParameters
from kubeagora.sim.scenario import CompiledScenario, ScenarioModel, compile_scenario

SMALL_TOPOLOGY: dict[str, Any] = {
    "kind": "hub-and-spoke", "regions": 2, "zones_per_region": 1, "edge_nodes_per_zone": 2,
    "mcu_nodes_per_zone": 0, "fog_nodes_per_region": 1, "cloud_nodes_per_region": 2, "cloud_gpu_per_region": 1,
}


def small_scenario(*, duration_s: float = 120, total_rps: float = 300, services: int = 4,
                   mix: dict[str, float] | None = None, faults: list[dict[str, Any]] | None = None,
                   seed: int = 7, warm_start: bool = False, **workload: Any) -> CompiledScenario:
    model = ScenarioModel.model_validate({
        "name": "small", "seed": seed, "duration_s": duration_s, "topology": SMALL_TOPOLOGY,
        "services": {"count": services, "mix": mix or {"web": 1, "api": 1}},
        "workload": {"total_rps": total_rps, **workload}, "faults": faults or [], "warm_start": warm_start,
    })
    return compile_scenario(model, "small")


def uniform_world(scenario: CompiledScenario, *, service_time: float = 1.0, cold_start: float = 1.0,
                  interference: float = 1.0, node_speed: float | np.ndarray = 1.0) -> WorldParameters:
    """A true world for `scenario` that strays from its specs by these factors everywhere (node speeds
    may be given per node)."""
    n_s, n_n, n_c = len(scenario.services), len(scenario.nodes), len(NODE_CLASSES)
    return WorldParameters(np.full((n_s, n_c), service_time), np.full((n_s, n_c), cold_start),
                           np.full(n_c, interference), np.broadcast_to(np.asarray(node_speed, float), (n_n,)).copy())
