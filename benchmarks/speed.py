"""Engine speed: simulated seconds per wall second, at 100 / 1,000 / 5,000 services.

The issue's target: 1,000 services on 200 nodes for 24 simulated hours at 1 s steps in under 60 s
of wall time on a 2-core machine (≥ 1,440× real time). Usage:

    python benchmarks/speed.py                      # the 24 h run at 1,000 services, then the scaling table
    python benchmarks/speed.py --hours 1 --services 100,1000,5000
    python benchmarks/speed.py --services 10000 --steady 300   # CPU per step after 300 warm-up steps, and the setup

`cpu s` is the process's CPU time: on a shared machine it moves less with the other jobs than the wall
time does (compare two engines by alternating their runs). `--steady` times the engine's steps alone (no
controller), for extrapolating a long run: setup + steps × CPU per step. With numba installed (the `fast`
extra) the engine runs its compiled step; `KUBEAGORA_NUMBA=0` runs the numpy path.
"""

from __future__ import annotations

import argparse
import time

from kubeagora.controllers.registry import make_controller
from kubeagora.sim.engine import Engine
from kubeagora.sim.run import simulate
from kubeagora.sim.scenario import ScenarioModel, compile_scenario


def scenario(services: int, nodes_scale: int, hours: float) -> ScenarioModel:
    """~200 nodes per `nodes_scale`: 4 regions × (2 edge zones of 12 + fog 6 + cloud 18 + 2 GPU), each
    count times `nodes_scale` (5,000 services get ~1,000 nodes)."""
    return ScenarioModel.model_validate({
        "name": f"speed-{services}",
        "duration_s": hours * 3600,
        "topology": {"kind": "hub-and-spoke", "regions": 4, "zones_per_region": 2,
                     "edge_nodes_per_zone": 10 * nodes_scale, "mcu_nodes_per_zone": 2 * nodes_scale,
                     "fog_nodes_per_region": 6 * nodes_scale, "cloud_nodes_per_region": 18 * nodes_scale,
                     "cloud_gpu_per_region": 2 * nodes_scale},
        "services": {"count": services, "mix": {"web": 5, "api": 4, "iot-ingest": 1}, "zipf_s": 0.6},
        "workload": {"total_rps": 60.0 * services, "diurnal_amplitude": 0.5},
    })


def run(services: int, hours: float, controller: str) -> tuple[int, float, float]:
    scale = max(1, services // 1000)
    compiled = compile_scenario(scenario(services, scale, hours), "speed")
    result = simulate(compiled, make_controller(controller, compiled))
    return len(compiled.nodes), result.wall_s, compiled.duration_s


def steady(services: int, steps: int, warmup: int = 300) -> tuple[int, float, float]:
    """(nodes, CPU s to build the scenario and the engine and take `warmup` steps, CPU ms per step after them)."""
    c0 = time.process_time()
    compiled = compile_scenario(scenario(services, max(1, services // 1000), 24.0), "speed")
    engine = Engine(compiled)
    for _ in range(warmup):
        engine.step()
    c1 = time.process_time()
    for _ in range(steps):
        engine.step()
    return len(compiled.nodes), c1 - c0, (time.process_time() - c1) / steps * 1e3


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--hours", type=float, default=24.0)
    ap.add_argument("--services", default="1000")
    ap.add_argument("--controller", default="hpa")
    ap.add_argument("--steady", type=int, default=0, metavar="STEPS",
                    help="time STEPS engine steps after 300 warm-up steps instead of a whole run")
    args = ap.parse_args()
    if args.steady:
        print(f"{'services':>8} {'nodes':>6} {'setup cpu s':>12} {'cpu ms/step':>12} {'24 h extrapolated s':>20}")
        for n in (int(x) for x in args.services.split(",")):
            nodes, setup_s, step_ms = steady(n, args.steady)
            print(f"{n:>8} {nodes:>6} {setup_s:>12.1f} {step_ms:>12.3f} {setup_s + 86_400 * step_ms / 1e3:>20.0f}")
        return
    print(f"{'services':>8} {'nodes':>6} {'sim h':>6} {'wall s':>8} {'cpu s':>8} {'x real time':>12} "
          f"{'us/service-step':>16}")
    for n in (int(x) for x in args.services.split(",")):
        t0, c0 = time.perf_counter(), time.process_time()
        nodes, wall, dur = run(n, args.hours, args.controller)
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        print(f"{n:>8} {nodes:>6} {dur / 3600:>6.2f} {wall:>8.1f} {cpu:>8.1f} {dur / wall:>12.0f} "
              f"{wall / dur / n * 1e6:>16.3f}")


if __name__ == "__main__":
    main()
