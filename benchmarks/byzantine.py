"""Byzantine nodes and agents: each attack with the MAS's zero-trust checks off and on, same seeds.

One small world (12 nodes in 2 regions, 4 services, 600 req/s); each attack starts at 60 s on the node
``cloud-cpu-0-0`` (which hosts replicas of api-0 and web-2) or on the service api-0. Prints, per attack
and arm, the share of time with an SLO violated, replica-seconds, requests the attacked node served,
when it was quarantined, the attacked party's trust at the end, and the controller's CPU per decision
(what the checks cost). Mean and range over the seeds. Usage:

    python benchmarks/byzantine.py
    python benchmarks/byzantine.py --seeds 7,8,9 --duration 900
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import numpy as np

from kubeagora.controllers.mas import MasController, MasSettings
from kubeagora.model import QuarantineNode
from kubeagora.sim.engine import Engine
from kubeagora.sim.scenario import ScenarioModel, compile_scenario

NODE = "cloud-cpu-0-0"
TOPOLOGY = {"kind": "hub-and-spoke", "regions": 2, "zones_per_region": 1, "edge_nodes_per_zone": 2,
            "mcu_nodes_per_zone": 0, "fog_nodes_per_region": 1, "cloud_nodes_per_region": 2,
            "cloud_gpu_per_region": 1}
ATTACKS: dict[str, tuple[list[dict[str, Any]], bool, str]] = {
    "none": ([], False, NODE),
    "node at 50 % speed reporting 100 %": (
        [{"at_s": 60, "kind": "falsified-metrics", "target": NODE, "factor": 0.5}], False, NODE),
    "node at 25 % speed reporting 100 %": (
        [{"at_s": 60, "kind": "falsified-metrics", "target": NODE, "factor": 0.25}], False, NODE),
    "api-0 claiming 5x its demand": (
        [{"at_s": 60, "kind": "inflated-demand", "target": "api-0", "factor": 5}], False, "bidder:api-0"),
    "every attestation failing": (
        [{"at_s": 60, "kind": "attestation-failure", "target": NODE, "factor": 1.0}], True, NODE),
    "1 attestation in 50 failing": (
        [{"at_s": 60, "kind": "attestation-failure", "target": NODE, "factor": 0.02}], True, NODE),
    "replayed attestation claims": (
        [{"at_s": 60, "kind": "replayed-claims", "target": NODE}], True, NODE),
}


def run(faults: list[dict[str, Any]], attestation: bool, who: str, zero_trust: bool, seed: int,
        duration_s: float) -> dict[str, float]:
    model = ScenarioModel.model_validate({
        "name": "byzantine", "seed": seed, "duration_s": duration_s, "topology": TOPOLOGY,
        "services": {"count": 4, "mix": {"web": 1, "api": 1}}, "workload": {"total_rps": 600},
        "faults": faults, "attestation": attestation})
    sc = compile_scenario(model, "byzantine")
    engine = Engine(sc)
    mas = MasController(settings=MasSettings(zero_trust=zero_trust))
    state = mas.initial_state(engine.observe())
    every = round(mas.interval_s / sc.step_s)
    quarantined_at, cpu_s, decisions = float("nan"), 0.0, 0
    for i in range(round(sc.duration_s / sc.step_s)):
        if i and i % every == 0:
            t0 = time.process_time()
            actions, state = mas.decide(engine.observe(), state)
            cpu_s += time.process_time() - t0
            decisions += 1
            engine.apply(actions)
            if any(isinstance(a, QuarantineNode) and a.node == NODE for a in actions) and np.isnan(quarantined_at):
                quarantined_at = engine.state.t
        engine.step()
    metrics = engine.recorder.metrics(sc.duration_s, cpu_s, None)
    names = [n.name for n in sc.nodes]
    return {"violated_pct": float(metrics["slo_violation_pct"] or 0.0),
            "replica_s": float(metrics["replica_seconds"] or 0.0),
            "served_on_node_k": float(engine.state.node_served[names.index(NODE)]) / 1000,
            "quarantined_at_s": quarantined_at, "trust": float(state.trust.get(who, 1.0)),
            "ms_per_decision": 1000 * cpu_s / max(decisions, 1)}


def spread(values: list[float], digits: int = 1) -> str:
    finite = [v for v in values if np.isfinite(v)]
    if not finite:
        return "—"
    mean = f"{np.mean(finite):.{digits}f}"
    if len(values) == 1:
        return mean
    missing = f", {len(values) - len(finite)} never" if len(finite) < len(values) else ""
    return f"{mean} ({min(finite):.{digits}f}–{max(finite):.{digits}f}{missing})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="7,8,9")
    parser.add_argument("--duration", type=float, default=900.0)
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    started = time.perf_counter()
    print("| attack | checks | SLO violated % | replica-s | node's requests (k) | quarantined at s | "
          "trust at end | controller ms/decision |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for name, (faults, attestation, who) in ATTACKS.items():
        for zero_trust in (False, True):
            rows = [run(faults, attestation, who, zero_trust, seed, args.duration) for seed in seeds]
            col = {k: [r[k] for r in rows] for k in rows[0]}
            print(f"| {name} | {'on' if zero_trust else 'off'} | {spread(col['violated_pct'])} | "
                  f"{spread(col['replica_s'], 0)} | {spread(col['served_on_node_k'])} | "
                  f"{spread(col['quarantined_at_s'], 0)} | {spread(col['trust'], 2)} | "
                  f"{spread(col['ms_per_decision'])} |", flush=True)
    print(f"\n{len(seeds)} seeds, {args.duration:.0f} s each; took {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
