"""The operator holds its replicas at a steady base load (replayed from a devcluster run).

A Table 2 run (``benchmarks/burst_table2.py``) applies a 2-replica Deployment of the ``web`` template
and its intent together and offers 120 req/s (0.75 of a pod's 160 at its request). The operator used
to scale it to 5-20 replicas before the burst came. Two readings of the cluster caused it, and both
are replayed here from what the operator read in one such run:

- its first tick came before Prometheus had a rate for the new Deployment: the adapter read 0 req/s,
  the forecaster took that as its first sample and the real 120 req/s as a jump, and planned on an
  upper band of 270-470 req/s for minutes;
- the operator's own residency patch of the pod template starts a rolling update, whose surge pod
  (not Ready) was counted as a replica starting, so the plan kept 3.
"""

from __future__ import annotations

import asyncio
import math
from typing import Any

from tests.unit.operator_objects import deployment, intent, node, pod, signals
from tests.unit.test_operator_control_loop import FakeApi, FakeSignals

from kubeagora.model import NodeClass, Tier
from kubeagora.operator import adapter
from kubeagora.operator.loop import ControlLoop, LoopSettings
from kubeagora.operator.metrics_source import ServiceSignals, signals_of
from kubeagora.operator.signing import RecordSigner
from kubeagora.operator.telemetry import Telemetry
from kubeagora.operator.view import ClusterView

SHOP = adapter.service_key("burst", "shop-mas")
SCRAPE_S = 2.0
"""The bench's Prometheus scrape interval: the operator's rate window is four of them (8 s)."""

RECORDED: list[tuple[float, float | None, float, float, float]] = [
    # loop time (s), offered req/s (None: Prometheus had no rate yet), dropped req/s, p95 ms, p99 ms
    (1, None, 0.0, math.nan, math.nan),
    (6, 117.5, 55.4, math.nan, math.nan), (11, 123.8, 117.1, math.nan, math.nan),
    (16, 121.5, 121.5, math.nan, math.nan), (21, 119.7, 59.0, 95.9, 143.1), (26, 114.5, 0.0, 90.4, 143.6),
    (31, 124.0, 0.0, 92.6, 135.2), (36, 124.0, 0.0, 94.7, 137.7), (41, 123.0, 0.0, 102.4, 154.7),
    (46, 124.5, 0.0, 96.7, 141.7), (51, 114.5, 0.0, 97.6, 144.4), (56, 139.7, 0.0, 94.8, 140.5),
    (61, 127.1, 0.0, 104.0, 146.0), (66, 116.2, 0.0, 98.2, 146.4), (71, 117.7, 0.0, 99.9, 146.1),
    (76, 118.3, 0.0, 107.4, 145.8),
]
"""What the operator read for the Deployment each tick of one run (2026-12-07, before the fix): pods
Ready from 16 s; the residency patch's surge pod started at 6 s and was replaced by 51 s."""


def shop_pod(name: str, node_name: str, created: str, ready: bool) -> dict[str, Any]:
    p = pod(name, "shop-mas", node_name, namespace="burst", ready=ready, labels={"app": "shop-mas"})
    p["metadata"]["creationTimestamp"] = created
    return p


def pods_at(t: float, *, surge: bool) -> list[dict[str, Any]]:
    ready = t >= 16
    pods = [shop_pod("shop-mas-a", "cloud-cpu-0", "2026-12-07T08:43:57Z", ready),
            shop_pod("shop-mas-b", "fog-cpu-0", "2026-12-07T08:43:57Z", ready)]
    if surge and 6 <= t < 51:
        pods.append(shop_pod("shop-mas-c", "cloud-cpu-0", "2026-12-07T08:44:03Z", False))
    return pods


class Replay(FakeSignals):
    """The recorded reading at the loop's current time."""

    def __init__(self, loop_time: list[float]) -> None:
        super().__init__({})
        self.loop_time = loop_time

    def services(self, sources: Any) -> Any:
        t = self.loop_time[0]
        _, offered, dropped, p95, p99 = next(r for r in reversed(RECORDED) if r[0] <= t)
        reading: ServiceSignals = signals_of(SHOP) if offered is None else signals(
            SHOP, offered, offered - dropped, dropped, p95, p99)
        self._services = {SHOP: reading}
        return super().services(sources)


def replay(*, surge: bool) -> list[int]:
    """Every replica count the operator asked of the Deployment's scale subresource over the replay."""
    nodes = [node("edge-cpu-0", Tier.EDGE, NodeClass.CPU, index=0), node("fog-cpu-0", Tier.FOG, NodeClass.CPU, index=1),
             node("cloud-cpu-0", Tier.CLOUD, NodeClass.CPU, index=2)]
    view = ClusterView()
    for n in nodes:
        view.apply("nodes", None, n)
    view.apply("deployments", None, deployment("shop-mas", namespace="burst", replicas=2))
    view.apply("intents", None, intent("shop-mas", namespace="burst", slo={"p95Ms": 150, "p99Ms": 250},
                                       replicas={"min": 2, "max": 20}, placement={"nodeClasses": ["cpu"]},
                                       metrics=None, budget=None, tenant=None, rollout=None))
    now = [0.0]
    api = FakeApi()
    loop = ControlLoop(view, api, LoopSettings(run="replay", scrape_interval_s=SCRAPE_S), Telemetry(),
                       signals=Replay(now), signer=RecordSigner(b"unit-test-key-of-32-bytes-length"))  # type: ignore[arg-type]
    loop.now = lambda: now[0]  # type: ignore[method-assign]
    shown: list[str] = []
    for t, *_ in RECORDED:
        now[0] = t
        for p in shown:
            view.apply("pods", "DELETED", {"metadata": {"namespace": "burst", "name": p}})
        current = pods_at(t, surge=surge)
        for p in current:
            view.apply("pods", None, p)
        shown = [p["metadata"]["name"] for p in current]
        asyncio.run(loop.tick())
    return [int(b["spec"]["replicas"]) for b in api.to("PATCH", "/deployments/shop-mas/scale")]


def test_the_recorded_base_load_keeps_two_replicas() -> None:
    assert replay(surge=True) == []


def test_a_first_tick_without_a_rate_is_not_a_load_of_zero() -> None:
    # without the surge pod: what the missing first reading alone did (2 → 4 or more before the fix)
    assert replay(surge=False) == []


def test_an_intent_waits_for_its_first_rate_for_one_window_only() -> None:
    dep = deployment("shop-mas", namespace="burst")
    (binding,), _ = adapter.bind([intent("shop-mas", namespace="burst")], {"burst/shop-mas": dep}, ["region-0"])
    unread = {SHOP: signals_of(SHOP)}
    kept, waiting = adapter.awaiting_first_load([binding], unread, {SHOP: 0.0}, set(), 5.0, 8.0)
    assert kept == []
    assert waiting[0].reason == "AwaitingMetrics"
    assert not waiting[0].degraded
    # a rate arrives: managed at once
    kept, _ = adapter.awaiting_first_load([binding], {SHOP: signals(SHOP, 120.0)}, {SHOP: 0.0}, set(), 5.0, 8.0)
    assert kept == [binding]
    # a window without a series: nobody sends it requests, and it is managed at 0 req/s
    kept, _ = adapter.awaiting_first_load([binding], unread, {SHOP: 0.0}, set(), 8.0, 8.0)
    assert kept == [binding]
    # read once: a later gap in the series does not put it back to waiting
    kept, _ = adapter.awaiting_first_load([binding], unread, {SHOP: 0.0}, {SHOP}, 5.0, 8.0)
    assert kept == [binding]


def test_a_rolling_updates_surge_pod_is_not_a_replica_starting() -> None:
    nodes = [node("fog-cpu-0", Tier.FOG, NodeClass.CPU, index=1),
             node("cloud-cpu-0", Tier.CLOUD, NodeClass.CPU, index=2)]
    dep = deployment("shop-mas", namespace="burst", replicas=2)
    (binding,), _ = adapter.bind([intent("shop-mas", namespace="burst")], {"burst/shop-mas": dep}, ["region-0"])
    pods = pods_at(20, surge=True)
    obs = adapter.observe(20.0, nodes, pods, {"burst/shop-mas": dep}, [binding], {}, {}, adapter.Counters())
    assert (int(obs.ready_replicas[0]), int(obs.pending_replicas[0]), obs.replica_ready.size) == (2, 0, 2)
    # scaling up to 4: the surge pod and one more are starting (the oldest first)
    dep4 = deployment("shop-mas", namespace="burst", replicas=4)
    obs = adapter.observe(20.0, nodes, pods, {"burst/shop-mas": dep4}, [binding], {}, {}, adapter.Counters())
    assert (int(obs.ready_replicas[0]), int(obs.pending_replicas[0])) == (2, 1)


def test_an_absent_request_series_is_said_to_be_unread() -> None:
    assert not signals_of(SHOP).load_read
    assert signals_of(SHOP, offered=0.0).load_read  # a series at 0 req/s is a reading
    assert signals_of(SHOP, offered_now=3.0).load_read
