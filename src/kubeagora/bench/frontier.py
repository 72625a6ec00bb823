"""A baseline's trade-off curve: SLO violations against the replica-seconds paid, over its knob's settings.

Each setting of a baseline's knob is a point (replica-seconds, violation %). The frontier is the
Pareto set: the points no other setting beats on both (sorted by cost, each one violating strictly
less than every cheaper one). Between two neighbouring frontier points the baseline's violations at
a cost in between are read off the straight line joining them (alternating the two settings over
time would cost and violate about that much).

The straight line is a guess between settings that were run. A frontier falls steeply and then
flattens (convex), and a chord of a convex curve lies above it: across a cliff (HPA at 0.8 vs 0.7)
the line overstates the baseline's violations. So a second reading, `generous`, gives the baseline
the violations of the next dearer setting at the lower cost, as if it had a setting just past the
cliff at no extra cost: the most any unswept setting in between could do (the least it could do is
the cheaper neighbour's violations). A claim that holds against both readings does not depend on
the line.

Outside the swept range there is nothing to interpolate, and which way the error goes matters:
- cheaper than the cheapest setting: the baseline's violations there would be at least the cheapest
  point's, so using that point favours the baseline (a claim against it stays safe);
- dearer than the dearest setting: with more replicas the baseline might violate less than its
  dearest point, so using that point favours the contender; such a comparison is flagged and the
  sweep should be widened. (Dearer than the frontier's last point but within the swept costs is
  inside: the dearer settings were run and bought nothing.)
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum


@dataclass(frozen=True, slots=True)
class CostPoint:
    replica_seconds: float
    violation_pct: float
    label: str = ""


class Position(StrEnum):
    INSIDE = "inside"
    CHEAPER = "cheaper"
    """Below the cheapest setting's cost: the value read favours the baseline."""
    DEARER = "dearer"
    """Above the dearest setting's cost: the value read favours the contender."""


def pareto_frontier(points: Iterable[CostPoint]) -> list[CostPoint]:
    """The non-dominated points, cheapest first; of two equally cheap points, the one violating less."""
    frontier: list[CostPoint] = []
    for point in sorted(points, key=lambda p: (p.replica_seconds, p.violation_pct)):
        # sorted by cost, then violations: a point is on the frontier iff it violates less than every cheaper one
        if not frontier or point.violation_pct < frontier[-1].violation_pct:
            frontier.append(point)
    return frontier


def violations_at(
    points: Sequence[CostPoint], replica_seconds: float, generous: bool = False
) -> tuple[float, Position]:
    """The baseline's violation % at this cost, read off the frontier of `points` (every setting run),
    and where the cost fell against the settings' costs. `generous`: the dearer neighbour's violations
    instead of the straight line (see the module docstring).

    Past the frontier's dearest point but within the swept costs, the frontier is flat: the settings
    that cost more bought no fewer violations.
    """
    frontier = pareto_frontier(points)
    if not frontier:
        raise ValueError("no points, no frontier to read")
    first, last = frontier[0], frontier[-1]
    dearest = max(p.replica_seconds for p in points)
    if replica_seconds < first.replica_seconds:
        return first.violation_pct, Position.CHEAPER
    if replica_seconds >= last.replica_seconds:
        return last.violation_pct, Position.DEARER if replica_seconds > dearest else Position.INSIDE
    for left, right in itertools.pairwise(frontier):
        if left.replica_seconds <= replica_seconds <= right.replica_seconds:
            span = right.replica_seconds - left.replica_seconds
            if generous and replica_seconds > left.replica_seconds:
                return right.violation_pct, Position.INSIDE
            share = (replica_seconds - left.replica_seconds) / span if span > 0 else 0.0
            return left.violation_pct + share * (right.violation_pct - left.violation_pct), Position.INSIDE
    raise AssertionError("unreachable: the cost lies between the frontier's ends")
