"""Learned-residual inference per MPC tick at 1,000 services: numpy (what the operator runs) vs torch.

The issue's target: ≤ 1 ms per tick at 1,000 services on CPU. A tick's inference is the features of
every service (`learn.features.agent_features`, from the MPC's drafted step) and the shared actor on
all of them. The draft comes from a real MPC step on the 1,000-service scenario of `speed.py`.
Usage (torch only for the comparison; the numpy path needs no extra):

    python benchmarks/policy_inference.py                       # the shipped policy
    python benchmarks/policy_inference.py --policy out/train/policy.npz --repeats 2000
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from speed import scenario

from kubeagora.controllers.mpc import MpcController
from kubeagora.learn.features import agent_features
from kubeagora.learn.policy import SHIPPED_POLICY, load_actor
from kubeagora.sim.engine import Engine
from kubeagora.sim.scenario import compile_scenario


def median_us(call: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        call()
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1e6


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--policy", type=Path, default=SHIPPED_POLICY)
    ap.add_argument("--services", type=int, default=1000)
    ap.add_argument("--repeats", type=int, default=1000)
    args = ap.parse_args()
    compiled = compile_scenario(scenario(args.services, max(1, args.services // 1000), 0.1), "speed")
    engine = Engine(compiled)
    controller = MpcController()
    state = controller.initial_state(engine.observe())
    for _ in range(16):
        engine.step()
    draft = controller.draft(engine.observe(), state)
    actor = load_actor(args.policy)
    features = agent_features(draft)
    rows = [("features (numpy)", median_us(lambda: agent_features(draft), args.repeats)),
            ("actor (numpy)", median_us(lambda: actor.act(features), args.repeats))]
    try:
        import torch
    except ImportError:
        print("torch is not installed: numpy only")
    else:
        torch.set_num_threads(1)
        layers = []
        for k, (w, b) in enumerate(actor.layers):
            linear = torch.nn.Linear(w.shape[0], w.shape[1])
            with torch.no_grad():
                linear.weight.copy_(torch.from_numpy(w.T.copy()))
                linear.bias.copy_(torch.from_numpy(b))
            layers.append(linear)
            if k < len(actor.layers) - 1:
                layers.append(torch.nn.Tanh())
        net = torch.nn.Sequential(*layers)
        x = torch.from_numpy(features)

        def torch_act() -> object:
            with torch.no_grad():
                return net(x).argmax(dim=1)

        assert np.array_equal(torch_act().numpy(), actor.act(features)), "numpy and torch disagree"  # type: ignore[attr-defined]
        rows.append(("actor (torch, 1 thread)", median_us(torch_act, args.repeats)))
    print(f"{args.services} services, {len(compiled.nodes)} nodes; median of {args.repeats} calls")
    for name, us in rows:
        print(f"  {name:<26} {us:>9.1f} µs")
    print(f"  {'tick (features + numpy)':<26} {rows[0][1] + rows[1][1]:>9.1f} µs")


if __name__ == "__main__":
    main()
