"""Leader election over a Lease, on a fake API that keeps resourceVersions, with fake clocks: one
holder at a time, takeover only after the Lease went unrenewed, a holder that cannot renew stops
acting before anyone may take over, and two candidates racing cannot both win."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from tests.unit.test_operator_control_loop import FakeApi

from kubeagora.operator.leader import LeaderElector, LeaseSettings, lease_path


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def elector(api: FakeApi, name: str, clock: Clock) -> LeaderElector:
    return LeaderElector(api, LeaseSettings("ops", name), monotonic=clock, wall=lambda: 1.75e9 + clock.t)  # type: ignore[arg-type]


def round_of(*electors: LeaderElector) -> list[bool]:
    return [asyncio.run(e.try_acquire_or_renew()) for e in electors]


def holder(api: FakeApi) -> Any:
    return api.stored[lease_path("ops", "kubeagora-operator")]["spec"]["holderIdentity"]


def test_one_holder_at_a_time_and_a_takeover_only_after_the_lease_went_unrenewed() -> None:
    api, clock = FakeApi(), Clock()
    a, b = elector(api, "a", clock), elector(api, "b", clock)
    assert round_of(a, b) == [True, False]
    for _ in range(10):  # a renews every 2 s: b never takes over
        clock.t += 2.0
        assert round_of(a, b) == [True, False]
    assert holder(api) == "a"
    # a dies after its last renewal, which b saw change the Lease in the same round
    clock.t += 2.0
    assert round_of(b) == [False]
    assert a.is_leader
    clock.t += 8.1
    assert not a.is_leader  # 10.1 s after its last renewal a acts no more, whoever else does
    clock.t += 4.8  # 14.9 s without a change: not expired yet
    assert round_of(b) == [False]
    clock.t += 0.2
    assert round_of(b) == [True]
    assert holder(api) == "b"
    assert api.stored[lease_path("ops", "kubeagora-operator")]["spec"]["leaseTransitions"] == 1
    # a comes back: it sees b's Lease fresh and stays out
    assert round_of(a) == [False]


def test_two_candidates_racing_for_an_expired_lease_cannot_both_win() -> None:
    api, clock = FakeApi(), Clock()
    old, a, b = elector(api, "old", clock), elector(api, "a", clock), elector(api, "b", clock)
    round_of(old, a, b)
    clock.t += 20.0
    stale = api.stored[lease_path("ops", "kubeagora-operator")]

    async def get_stale(path: str, params: Any = None) -> Any:
        return stale  # both read the same version before either writes

    api.get = get_stale  # type: ignore[method-assign]
    assert sorted(round_of(a, b)) == [False, True]


def test_a_released_lease_is_taken_at_the_next_round() -> None:
    api, clock = FakeApi(), Clock()
    a, b = elector(api, "a", clock), elector(api, "b", clock)
    assert round_of(a, b) == [True, False]
    asyncio.run(a.release())
    assert not a.is_leader
    clock.t += 2.0
    assert round_of(b) == [True]


def test_the_settings_keep_the_renew_deadline_inside_the_lease() -> None:
    with pytest.raises(ValueError, match="renew deadline"):
        LeaseSettings("ops", "a", lease_duration_s=10.0, renew_deadline_s=10.0)
