"""How well the online calibration knows a world that strays from its specs, against the specs themselves.

    python benchmarks/calibration_accuracy.py --model-error 0.3 --seeds 1,2,3

Runs the `mpc` controller (whose state carries the calibration) on every built-in scenario at the given
model error and, at the end of each run, compares three guesses of each Ready replica's mean service
time where it runs (node speed and interference at the current utilisation included) with the engine's
true one: the declared specs, and the calibration's estimate. Likewise each service's cold start on the
node classes it started pods on. Prints the median and 90th percentile of |log(guess / truth)| (0.10 ≈
10 % off) over replicas and over (service, class) pairs, pooled over scenarios and seeds.
"""

from __future__ import annotations

import argparse

import numpy as np

from kubeagora.controllers.mpc import MpcController, MpcControllerState
from kubeagora.decision import calibration as cal
from kubeagora.model import NODE_CLASSES
from kubeagora.model.observation import class_service_time_ms
from kubeagora.sim.engine import READY, STARTING, Engine
from kubeagora.sim.scenario import builtin_names, compile_scenario, load_scenario


def run(name: str, seed: int, sigma: float) -> tuple[list[float], list[float], list[float], list[float]]:
    model, source = load_scenario(name)
    scenario = compile_scenario(model, source, seed=seed, model_error=sigma)
    engine = Engine(scenario)
    controller = MpcController()
    state = controller.initial_state(engine.observe())
    every = round(controller.interval_s / scenario.step_s)
    for step in range(round(scenario.duration_s / scenario.step_s)):
        if step % every == 0 and step > 0:
            actions, state = controller.decide(engine.observe(), state)
            engine.apply(actions)
        engine.step()
    assert isinstance(state, MpcControllerState)
    assert state.calibration is not None
    belief = state.calibration
    obs = engine.observe()
    r, st = engine.state.replicas, engine.state
    live = (r.state == READY) | (r.state == STARTING)
    util = st.node_util[r.node[live]]
    true_ms = r.base_ms[live] / st.node_speed[r.node[live]] * (1.0 + engine.node_beta[r.node[live]] * util**2)
    cls = engine.node_class[obs.replica_node]
    declared = class_service_time_ms(obs.services, NODE_CLASSES)[obs.replica_service, cls]
    declared_ms = declared / obs.node_speed[obs.replica_node] * (1.0 + cal.NOMINAL_BETA[cls] * util**2)
    ready = obs.replica_ready
    estimated_ms = cal.replica_service_ms(belief, obs)
    service_spec = np.abs(np.log(declared_ms[ready] / true_ms[ready])).tolist()
    service_cal = np.abs(np.log(estimated_ms[ready] / true_ms[ready])).tolist()
    measured = belief.cold_samples > 0
    true_factor = scenario.world.cold_start_factor if scenario.world is not None else np.ones_like(belief.cold_log_mean)
    cold_spec = np.abs(np.log(true_factor[measured])).tolist()
    cold_cal = np.abs(np.log(cal.cold_start_factor(belief)[measured] / true_factor[measured])).tolist()
    return service_spec, service_cal, cold_spec, cold_cal


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model-error", type=float, default=0.3)
    parser.add_argument("--seeds", default="1")
    parser.add_argument("--scenarios", default=",".join(builtin_names()))
    args = parser.parse_args()
    pooled: list[list[float]] = [[], [], [], []]
    for name in args.scenarios.split(","):
        for seed in (int(s) for s in args.seeds.split(",")):
            for bucket, values in zip(pooled, run(name, seed, args.model_error), strict=True):
                bucket.extend(values)
    print(f"model error σ {args.model_error:g}, |log(guess / truth)|: median (p90)\n")
    print("| what | n | declared specs | calibration |")
    print("|---|---:|---:|---:|")
    for label, spec, calibrated in (("service time per Ready replica", pooled[0], pooled[1]),
                                    ("cold start per (service, class) started", pooled[2], pooled[3])):
        print(f"| {label} | {len(spec)} | {np.median(spec):.3f} ({np.quantile(spec, 0.9):.3f}) | "
              f"{np.median(calibrated):.3f} ({np.quantile(calibrated, 0.9):.3f}) |")


if __name__ == "__main__":
    main()
