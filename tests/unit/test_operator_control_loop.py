"""The operator's ControlLoop over a recording fake of the API and a fake Prometheus (no cluster).

What the thin loop must get right on its own: hold (and say so) without metrics, scale a burst
through the scale subresource and record it, report an intent's status, finish an earlier run's
canary on its first tick.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

from tests.unit.operator_objects import checkout_cluster as world_of
from tests.unit.operator_objects import intent, node_signals, signals

from kubeagora.operator import adapter
from kubeagora.operator.loop import ControlLoop, LoopSettings
from kubeagora.operator.metrics_source import MetricsUnavailable, NodeSignals, ServiceSignals
from kubeagora.operator.telemetry import Telemetry
from kubeagora.operator.view import ClusterView

CHECKOUT = adapter.service_key("default", "checkout")


class FakeApi:
    """Records every write; lists what ``listed`` holds."""

    def __init__(self, listed: list[dict[str, Any]] | None = None) -> None:
        self.calls: list[tuple[str, str, Any]] = []
        self.listed = listed or []

    async def list_all(self, path: str, params: Mapping[str, str]) -> tuple[list[Any], str]:
        return self.listed, "1"

    async def create(self, path: str, body: Mapping[str, Any], want: bool = False,
                     ok: tuple[int, ...] = ()) -> tuple[int, Any]:
        self.calls.append(("POST", path, body))
        return 201, None

    async def merge_patch(self, path: str, body: Mapping[str, Any], ok: tuple[int, ...] = (),
                          bounded: bool = True) -> int:
        self.calls.append(("PATCH", path, body))
        return 200

    async def delete(self, path: str, body: Mapping[str, Any] | None = None, ok: tuple[int, ...] = ()) -> int:
        self.calls.append(("DELETE", path, body))
        return 200

    def to(self, method: str, fragment: str) -> list[Any]:
        return [body for m, path, body in self.calls if m == method and fragment in path]


class FakeSignals:
    def __init__(self, services: dict[str, ServiceSignals] | None, nodes: dict[str, NodeSignals] | None = None):
        self._services, self._nodes = services, nodes or {}

    def services(self) -> dict[str, ServiceSignals]:
        if self._services is None:
            raise MetricsUnavailable("Prometheus at http://prom:9090 did not answer: connection refused")
        return self._services

    def nodes(self) -> dict[str, NodeSignals]:
        return self._nodes


def loop_over(world: dict[str, Any], sig: FakeSignals, api: FakeApi | None = None) -> tuple[ControlLoop, FakeApi]:
    view = ClusterView()
    for n in world["nodes"]:
        view.apply("nodes", None, n)
    for p in world["pods"]:
        view.apply("pods", None, p)
    for d in world["deployments"].values():
        view.apply("deployments", None, d)
    view.apply("intents", None, intent("checkout"))
    api = api or FakeApi()
    loop = ControlLoop(view, api, LoopSettings(run="run2"), Telemetry(), signals=sig)  # type: ignore[arg-type]
    return loop, api


def test_without_prometheus_the_loop_holds_and_says_so_in_the_intent() -> None:
    loop, api = loop_over(world_of(), FakeSignals(None))
    assert asyncio.run(loop.tick()) == "held"
    assert not api.to("PATCH", "/scale")
    (status,) = api.to("PATCH", "/orchestrationintents/checkout/status")
    degraded = next(c for c in status["status"]["conditions"] if c["type"] == "Degraded")
    assert degraded["status"] == "True"
    assert degraded["reason"] == "MetricsUnavailable"
    assert "connection refused" in degraded["message"]


def test_a_burst_is_scaled_through_the_scale_subresource_and_recorded() -> None:
    world = world_of(replicas=2)
    burst = FakeSignals({CHECKOUT: signals(CHECKOUT, offered_rps=2000.0, p95_ms=900.0, p99_ms=2000.0,
                                             ready_pods=2)},
                        {n["metadata"]["name"]: node_signals(n["metadata"]["name"], 0.9) for n in world["nodes"]})
    loop, api = loop_over(world, burst)
    results = [asyncio.run(loop.tick()) for _ in range(3)]
    assert results[-1] == "decided"
    scales = api.to("PATCH", "/deployments/checkout/scale")
    assert scales, api.calls
    assert max(b["spec"]["replicas"] for b in scales) > 2
    created = [b for b in api.to("POST", "/agentactions") if b["kind"] == "AgentAction"]
    assert created
    assert all(b["metadata"]["labels"]["kubeagora.io/operator-run"] == "run2" for b in created)
    events = api.to("POST", "/events")
    assert any(e["reason"] == "Enacted" and e["involvedObject"]["name"] == "checkout" for e in events)
    status = api.to("PATCH", "/orchestrationintents/checkout/status")[-1]["status"]
    assert status["observed"]["p99Ms"] == 2000.0
    assert next(c for c in status["conditions"] if c["type"] == "SLOMet")["status"] == "False"


def test_on_its_first_tick_a_new_run_rolls_back_an_earlier_runs_canary() -> None:
    left = {"apiVersion": "kubeagora.io/v1alpha1", "kind": "AgentAction",
            "metadata": {"name": "checkout-run1-r7", "namespace": "default",
                         "labels": {"kubeagora.io/operator-run": "run1", "kubeagora.io/intent": "checkout"}},
            "spec": {"intentRef": {"name": "checkout"}, "agent": "scaling",
                     "action": {"type": "Scale", "service": CHECKOUT, "replicas": 1}},
            "status": {"state": "Canary", "transitions": [],
                       "rollback": [{"type": "Scale", "service": CHECKOUT, "replicas": 3}]}}
    loop, api = loop_over(world_of(replicas=2), FakeSignals({CHECKOUT: signals(CHECKOUT, 50.0, p95_ms=60.0,
                                                                                   p99_ms=90.0)}),
                          FakeApi([left]))
    asyncio.run(loop.tick())
    assert {"spec": {"replicas": 3}} in api.to("PATCH", "/deployments/checkout/scale")
    (patch,) = api.to("PATCH", "/agentactions/checkout-run1-r7/status")
    assert patch["status"]["state"] == "RolledBack"
    assert "restarted" in patch["status"]["message"]


def test_a_recovery_waits_until_the_watches_have_delivered_the_deployment_it_undoes() -> None:
    left = {"apiVersion": "kubeagora.io/v1alpha1", "kind": "AgentAction",
            "metadata": {"name": "checkout-run1-r9", "namespace": "default",
                         "labels": {"kubeagora.io/operator-run": "run1", "kubeagora.io/intent": "checkout"}},
            "spec": {"intentRef": {"name": "checkout"}, "agent": "scaling",
                     "action": {"type": "Scale", "service": CHECKOUT, "replicas": 1}},
            "status": {"state": "Canary", "transitions": [],
                       "rollback": [{"type": "Scale", "service": CHECKOUT, "replicas": 3}]}}
    world = world_of(replicas=2)
    deployments = world["deployments"]
    world["deployments"] = {}  # the Deployment watch has not delivered it yet
    loop, api = loop_over(world, FakeSignals(None), FakeApi([left]))
    asyncio.run(loop.tick())
    assert not api.to("PATCH", "/agentactions/checkout-run1-r9/status")  # not marked rolled back before the undo
    for d in deployments.values():
        loop.view.apply("deployments", None, d)
    asyncio.run(loop.tick())
    assert {"spec": {"replicas": 3}} in api.to("PATCH", "/deployments/checkout/scale")
    (patch,) = api.to("PATCH", "/agentactions/checkout-run1-r9/status")
    assert patch["status"]["state"] == "RolledBack"


def test_an_hpa_created_on_the_managed_deployment_shows_as_a_conflict_in_the_intent() -> None:
    world = world_of()
    loop, api = loop_over(world, FakeSignals(None))
    asyncio.run(loop.tick())
    before = api.to("PATCH", "/orchestrationintents/checkout/status")[-1]["status"]
    assert next(c for c in before["conditions"] if c["type"] == "AutoscalerConflict")["status"] == "False"
    namespace = "default"  # the intent's and its Deployment's (operator_objects)
    loop.view.apply("hpas", "ADDED", {
        "metadata": {"name": "checkout-hpa", "namespace": namespace},
        "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "checkout"}}})
    asyncio.run(loop.tick())
    after = api.to("PATCH", "/orchestrationintents/checkout/status")[-1]["status"]
    conflict = next(c for c in after["conditions"] if c["type"] == "AutoscalerConflict")
    assert (conflict["status"], conflict["reason"]) == ("True", "HorizontalPodAutoscaler")
    assert f"HorizontalPodAutoscaler {namespace}/checkout-hpa" in conflict["message"]
