"""CPU time of one mas tick at scale: the speed benchmark's cluster and service mix, mas deciding every 5 s.

The engine steps between ticks are not counted; only `MasController.decide`. The first tick is shown
apart (it compiles the MPC's cvxpy problem once per run). The MPC re-plans every third tick, so the
mean over ticks is given with and without those. `--profile FILE` writes a cProfile (CPU time) of the
ticks after the first. To compare with another version of the code in the same session, run this file with that
version first on PYTHONPATH:

    python benchmarks/mas_tick.py --services 1000 --ticks 12
    PYTHONPATH=../kubeagora-old/src python benchmarks/mas_tick.py --services 1000 --ticks 12

`--json FILE` also writes the measurements (CPU s of each tick, the cluster's size) for
`benchmarks/mas_tick_growth.py`.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import statistics
import sys
import time
from pathlib import Path

from kubeagora.controllers.registry import make_controller
from kubeagora.sim.engine import Engine
from kubeagora.sim.scenario import compile_scenario

sys.path.insert(0, str(Path(__file__).parent))
from speed import scenario  # the same 200-node, diurnal service mix as the speed benchmark


def count_twin_screens() -> list[int]:
    """Count the moves mas screens in its twin (a whole-cluster engine run each): the ticks that screen
    one cost far more than the others, so a short benchmark's mean depends on how many came up."""
    import kubeagora.controllers.mas as mas

    count = [0]
    screen = mas.evaluate

    def counted(*args: object, **kwargs: object) -> object:
        count[0] += 1
        return screen(*args, **kwargs)

    mas.evaluate = counted
    return count


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--services", type=int, default=1000)
    ap.add_argument("--ticks", type=int, default=12)
    ap.add_argument("--profile", type=Path, default=None)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    screens = count_twin_screens()
    compiled = compile_scenario(scenario(args.services, max(1, args.services // 1000), 1.0), "mas-tick")
    controller = make_controller("mas", compiled)
    engine = Engine(compiled)
    state = controller.initial_state(engine.observe())
    every = round(controller.interval_s / compiled.step_s)
    profile = cProfile.Profile(time.process_time) if args.profile else None
    cpu_s: list[float] = []
    screened: list[int] = []
    for tick in range(args.ticks):
        for _ in range(every):
            engine.step()
        observation = engine.observe()
        t0 = time.process_time()
        if profile is not None and tick > 0:
            profile.enable()
        before = screens[0]
        actions, state = controller.decide(observation, state)
        if profile is not None and tick > 0:
            profile.disable()
        cpu_s.append(time.process_time() - t0)
        screened.append(screens[0] - before)
        if actions:
            engine.apply(actions)
    mpc_every = 3  # MasSettings.mpc_every_ticks
    rest = cpu_s[1:]
    planning = [c for k, c in enumerate(cpu_s) if k > 0 and k % mpc_every == 0]
    between = [c for k, c in enumerate(cpu_s) if k > 0 and k % mpc_every != 0]
    print(f"services {args.services}  ticks {args.ticks}  first tick {cpu_s[0]:.3f} s CPU")
    print(f"mean CPU per tick after the first {statistics.fmean(rest):.3f} s "
          f"(MPC ticks {statistics.fmean(planning) if planning else float('nan'):.3f} s, "
          f"others {statistics.fmean(between) if between else float('nan'):.3f} s); "
          f"× real time at {controller.interval_s:g} s a tick: {controller.interval_s / statistics.fmean(rest):.1f}")
    print(f"moves screened in the twin, tick by tick: {screened}")
    if profile is not None:
        profile.dump_stats(args.profile)
    if args.json is not None:
        args.json.write_text(json.dumps({
            "services": args.services, "nodes": len(compiled.nodes), "interval_s": controller.interval_s,
            "mpc_every_ticks": mpc_every, "tick_cpu_s": cpu_s, "twin_screens": screened}))


if __name__ == "__main__":
    main()
