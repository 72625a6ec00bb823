"""What a scenario's fault schedule means for placement, read ahead of time (the clairvoyant planner's view).

`FaultOutlook` answers, for a window of simulated time: which nodes will be dead, which nodes a
region partition will separate from a service's users or from the control plane, how slow a
power-capped node will be, and how much of a region's traffic a packet-loss burst will drop.
Pure: built once from the compiled scenario, queried with times.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from kubeagora.model import BoolArray, FloatArray
from kubeagora.sim.scenario import CompiledScenario, FaultEvent

NODE_DEATHS = ("node-termination", "zone-outage")


def _overlaps(start_s: float, end_s: float, window_start_s: float, window_end_s: float) -> bool:
    return start_s <= window_end_s and end_s > window_start_s


def _end_s(fault: FaultEvent) -> float:
    return np.inf if fault.duration_s is None else fault.at_s + fault.duration_s


@dataclass(frozen=True, slots=True)
class FaultOutlook:
    faults: tuple[FaultEvent, ...]
    node_region: np.ndarray
    """Region index of every node."""
    control_plane_region: int = 0

    @classmethod
    def from_scenario(cls, scenario: CompiledScenario, control_plane_region: int = 0) -> FaultOutlook:
        regions = {r: i for i, r in enumerate(scenario.topology.regions)}
        return cls(
            scenario.faults,
            np.array([regions[n.region] for n in scenario.nodes], dtype=np.int64),
            control_plane_region,
        )

    def dead_nodes(self, start_s: float, end_s: float) -> BoolArray:
        """Nodes that are down at some moment of [start, end]."""
        dead = np.zeros(self.node_region.shape[0], dtype=bool)
        for f in self.faults:
            if f.kind in NODE_DEATHS and _overlaps(f.at_s, _end_s(f), start_s, end_s):
                dead[list(f.nodes)] = True
        return dead

    def cut_off_nodes(self, origin_region: int, start_s: float, end_s: float) -> BoolArray:
        """Nodes a region partition in [start, end] separates from users in `origin_region`, or from
        the control plane (which then drops them from the endpoints: their capacity is gone)."""
        cut = np.zeros(self.node_region.shape[0], dtype=bool)
        for f in self.faults:
            if f.kind != "region-partition" or not _overlaps(f.at_s, _end_s(f), start_s, end_s):
                continue
            isolated = f.regions[0]
            node_isolated = self.node_region == isolated
            cut |= node_isolated != (origin_region == isolated)
            if isolated != self.control_plane_region:
                cut |= node_isolated
        return cut

    def speed_factor(self, start_s: float, end_s: float) -> FloatArray:
        """Per node: the lowest share of nominal speed it will run at during [start, end]."""
        factor = np.ones(self.node_region.shape[0])
        for f in self.faults:
            if f.kind == "gpu-throttle" and _overlaps(f.at_s, _end_s(f), start_s, end_s):
                hit = np.asarray(f.nodes, dtype=np.int64)
                factor[hit] = np.minimum(factor[hit], f.factor)
        return factor

    def forced_loss(self, region: int, start_s: float, end_s: float) -> float:
        """The highest forced packet-loss rate on the region's access network during [start, end]."""
        loss = 0.0
        for f in self.faults:
            if f.kind == "packet-loss" and region in f.regions and _overlaps(f.at_s, _end_s(f), start_s, end_s):
                loss = max(loss, f.factor)
        return loss

    def nodes_dying_for_good(self, start_s: float, end_s: float, run_end_s: float) -> BoolArray:
        """Nodes that die in [start, end] and do not come back before the run ends."""
        dying = np.zeros(self.node_region.shape[0], dtype=bool)
        for f in self.faults:
            if f.kind in NODE_DEATHS and start_s <= f.at_s <= end_s and _end_s(f) >= run_end_s:
                dying[list(f.nodes)] = True
        return dying
