"""The operator's ControlLoop over a recording fake of the API and a fake Prometheus (no cluster).

What the thin loop must get right on its own: hold (and say so) without metrics, scale a burst
through the scale subresource and record it, report an intent's status, finish an earlier run's
canary on its first tick.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

import pytest
from tests.unit.operator_objects import checkout_cluster as world_of
from tests.unit.operator_objects import intent, node_signals, signals

from kubeagora.kubeapi.client import ApiError
from kubeagora.operator import adapter, records
from kubeagora.operator.loop import ControlLoop, LoopSettings
from kubeagora.operator.metric_presets import PRESETS
from kubeagora.operator.metrics_source import MetricsUnavailable, NodeSignals, Reading, ServiceSignals, Source
from kubeagora.operator.resource_usage import NODE_METRICS_PATH
from kubeagora.operator.signing import RecordSigner
from kubeagora.operator.telemetry import Telemetry
from kubeagora.operator.view import ClusterView

CHECKOUT = adapter.service_key("default", "checkout")
SIGNER = RecordSigner(b"unit-test-key-of-32-bytes-length")


class FakeApi:
    """Records every write; lists what ``listed`` holds; keeps what was created or replaced (with a
    resourceVersion that a replace must match) and gets it back."""

    def __init__(self, listed: list[dict[str, Any]] | None = None,
                 node_metrics: list[dict[str, Any]] | None = None) -> None:
        self.calls: list[tuple[str, str, Any]] = []
        self.listed = listed or []
        self.stored: dict[str, dict[str, Any]] = {}
        self.version = 0
        self.node_metrics = node_metrics
        """``metrics.k8s.io`` NodeMetrics items; None: the API is not there (404)."""

    async def list_all(self, path: str, params: Mapping[str, str]) -> tuple[list[Any], str]:
        return self.listed, "1"

    async def get(self, path: str, params: Mapping[str, str] | None = None) -> Any:
        if path == NODE_METRICS_PATH and self.node_metrics is not None:
            return {"kind": "NodeMetricsList", "items": self.node_metrics}
        if path not in self.stored:
            raise ApiError("GET", path, 404, b'{"message": "not found"}')
        return self.stored[path]

    def _keep(self, path: str, body: Mapping[str, Any]) -> dict[str, Any]:
        self.version += 1
        name = (body.get("metadata") or {}).get("name")
        obj = {**body, "metadata": {**body["metadata"], "uid": f"uid-{name}", "resourceVersion": str(self.version)}}
        self.stored[path] = obj
        return obj

    async def create(self, path: str, body: Mapping[str, Any], want: bool = False,
                     ok: tuple[int, ...] = ()) -> tuple[int, Any]:
        self.calls.append(("POST", path, body))
        target = f"{path}/{(body.get('metadata') or {}).get('name')}"
        if target in self.stored:
            if 409 in ok:
                return 409, None
            raise ApiError("POST", path, 409, b'{"message": "already exists"}')
        obj = self._keep(target, body)
        return 201, (obj if want else None)

    async def replace(self, path: str, body: Mapping[str, Any], want: bool = False) -> tuple[int, Any]:
        self.calls.append(("PUT", path, body))
        current = self.stored.get(path)
        if current is None or current["metadata"]["resourceVersion"] != body["metadata"].get("resourceVersion"):
            raise ApiError("PUT", path, 409 if current else 404, b'{"message": "conflict"}')
        obj = self._keep(path, body)
        return 200, (obj if want else None)

    async def merge_patch(self, path: str, body: Mapping[str, Any], ok: tuple[int, ...] = (),
                          bounded: bool = True) -> int:
        self.calls.append(("PATCH", path, body))
        return 200

    async def json_patch(self, path: str, ops: list[dict[str, Any]], ok: tuple[int, ...] = ()) -> int:
        self.calls.append(("PATCH", path, ops))
        return 200

    async def delete(self, path: str, body: Mapping[str, Any] | None = None, ok: tuple[int, ...] = ()) -> int:
        self.calls.append(("DELETE", path, body))
        return 200

    def to(self, method: str, fragment: str) -> list[Any]:
        return [body for m, path, body in self.calls if m == method and fragment in path]


class FakeSignals:
    def __init__(self, services: dict[str, ServiceSignals] | None, nodes: dict[str, NodeSignals] | None = None,
                 errors: dict[str, str] | None = None):
        self._services, self._nodes, self._errors = services, nodes or {}, errors or {}
        self.sources: Mapping[str, Source] = {}

    def source(self, preset: str | None, queries: Mapping[str, str] | None = None) -> Source:
        return Source(PRESETS[preset or "otel"], dict(queries or {}))

    def services(self, sources: Mapping[str, Source]) -> Reading:
        self.sources = sources
        if self._services is None:
            raise MetricsUnavailable("Prometheus at http://prom:9090 did not answer: connection refused")
        return Reading(self._services, self._errors)

    def nodes(self) -> dict[str, NodeSignals]:
        return self._nodes


def loop_over(world: dict[str, Any], sig: FakeSignals, api: FakeApi | None = None,
              settings: LoopSettings | None = None, **intent_spec: Any) -> tuple[ControlLoop, FakeApi]:
    view = ClusterView()
    for n in world["nodes"]:
        view.apply("nodes", None, n)
    for p in world["pods"]:
        view.apply("pods", None, p)
    for d in world["deployments"].values():
        view.apply("deployments", None, d)
    view.apply("intents", None, intent("checkout", **intent_spec))
    api = api or FakeApi()
    loop = ControlLoop(view, api, settings or LoopSettings(run="run2"), Telemetry(),
                       signals=sig, signer=SIGNER)  # type: ignore[arg-type]
    return loop, api


def signed(obj: dict[str, Any]) -> dict[str, Any]:
    """An AgentAction as this operator (its key) left it."""
    obj["status"]["signature"] = SIGNER.sign(records.payload_of(obj))
    return obj


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
    burst = FakeSignals({CHECKOUT: signals(CHECKOUT, offered_rps=2000.0, p95_ms=900.0, p99_ms=2000.0)},
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
    left = signed({"apiVersion": "kubeagora.io/v1alpha1", "kind": "AgentAction",
            "metadata": {"name": "checkout-run1-r7", "namespace": "default",
                         "labels": {"kubeagora.io/operator-run": "run1", "kubeagora.io/intent": "checkout"}},
            "spec": {"intentRef": {"name": "checkout"}, "agent": "scaling",
                     "action": {"type": "Scale", "service": CHECKOUT, "replicas": 1}},
            "status": {"state": "Canary", "transitions": [],
                       "rollback": [{"type": "Scale", "service": CHECKOUT, "replicas": 3}]}})
    loop, api = loop_over(world_of(replicas=2), FakeSignals({CHECKOUT: signals(CHECKOUT, 50.0, p95_ms=60.0,
                                                                                   p99_ms=90.0)}),
                          FakeApi([left]))
    asyncio.run(loop.tick())
    assert {"spec": {"replicas": 3}} in api.to("PATCH", "/deployments/checkout/scale")
    (patch,) = api.to("PATCH", "/agentactions/checkout-run1-r7/status")
    assert patch["status"]["state"] == "RolledBack"
    assert "restarted" in patch["status"]["message"]


def test_a_recovery_waits_until_the_watches_have_delivered_the_deployment_it_undoes() -> None:
    left = signed({"apiVersion": "kubeagora.io/v1alpha1", "kind": "AgentAction",
            "metadata": {"name": "checkout-run1-r9", "namespace": "default",
                         "labels": {"kubeagora.io/operator-run": "run1", "kubeagora.io/intent": "checkout"}},
            "spec": {"intentRef": {"name": "checkout"}, "agent": "scaling",
                     "action": {"type": "Scale", "service": CHECKOUT, "replicas": 1}},
            "status": {"state": "Canary", "transitions": [],
                       "rollback": [{"type": "Scale", "service": CHECKOUT, "replicas": 3}]}})
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


def test_an_undo_is_resolved_only_in_its_records_namespace_and_intent() -> None:
    """A signed record of namespace attacker whose undo names a service that lives in default:
    nothing in default is touched (the undo has no target in the record's own namespace)."""
    left = signed({"apiVersion": "kubeagora.io/v1alpha1", "kind": "AgentAction",
                   "metadata": {"name": "evil-run1-r3", "namespace": "attacker",
                                "labels": {"kubeagora.io/operator-run": "run1", "kubeagora.io/intent": "evil"}},
                   "spec": {"intentRef": {"name": "evil"}, "agent": "scaling",
                            "action": {"type": "Scale", "service": CHECKOUT, "replicas": 1}},
                   "status": {"state": "Canary", "transitions": [],
                              "rollback": [{"type": "Scale", "service": CHECKOUT, "replicas": 0}]}})
    loop, api = loop_over(world_of(replicas=2), FakeSignals(None), FakeApi([left]))
    loop.t0 -= 120.0  # past the recovery's patience: it says what it could not undo
    asyncio.run(loop.tick())
    assert not api.to("PATCH", "/scale")
    (patch,) = api.to("PATCH", "/namespaces/attacker/agentactions/evil-run1-r3/status")
    assert f"not undone: service {CHECKOUT} has no intent" in patch["status"]["message"]


def test_a_new_intent_neither_reuses_rollout_ids_nor_forgets_rollouts_in_flight() -> None:
    """A rollout id used twice in one run made the second rollout's status overwrite the first one's
    AgentAction (a checkout record came to carry an undo for another service)."""
    world = world_of(replicas=2)
    cart = adapter.service_key("default", "cart")
    burst = FakeSignals({CHECKOUT: signals(CHECKOUT, offered_rps=2000.0, p95_ms=900.0, p99_ms=2000.0),
                         cart: signals(cart, offered_rps=2000.0, p95_ms=900.0, p99_ms=2000.0)},
                        {n["metadata"]["name"]: node_signals(n["metadata"]["name"], 0.9) for n in world["nodes"]})
    loop, api = loop_over(world, burst)
    for _ in range(2):
        asyncio.run(loop.tick())
    assert loop.state.mas is not None
    before = loop.state.mas
    from tests.unit.operator_objects import deployment, pod

    loop.view.apply("deployments", None, deployment("cart", replicas=1))
    loop.view.apply("pods", None, pod("cart-0", "cart", world["nodes"][0]["metadata"]["name"]))
    loop.view.apply("intents", None, intent("cart"))
    asyncio.run(loop.tick())
    after = loop.state.mas
    assert after is not None
    assert after.next_id >= before.next_id
    assert {r.id for r in before.active} <= {r.id for r in (*after.active, *after.finished)}
    names = [b["metadata"]["name"] for b in api.to("POST", "/agentactions")]
    assert len(names) == len(set(names))
    actions: dict[str, set[str]] = {}
    for path, body in [(p, b) for m, p, b in api.calls if m == "PATCH" and p.endswith("/status")
                       and "/agentactions/" in p]:
        created = next(b for b in api.to("POST", "/agentactions") if path.split("/")[-2] == b["metadata"]["name"])
        actions.setdefault(path, set()).add(created["spec"]["action"]["type"])
        assert body["status"]["signature"] == SIGNER.sign(records.payload(
            created["metadata"]["namespace"], created["metadata"]["name"], created["spec"]["intentRef"]["name"],
            created["spec"]["action"], body["status"].get("rollback") or ()))


CUSTOM = {"preset": "istio", "queries": {"p99Seconds": 'max(my_latency_p99{app="checkout"})'}}


def degraded(api: FakeApi) -> dict[str, Any]:
    status = api.to("PATCH", "/orchestrationintents/checkout/status")[-1]
    return dict(next(c for c in status["status"]["conditions"] if c["type"] == "Degraded"))


def test_an_intents_spec_metrics_is_where_its_signals_come_from_and_a_failed_query_degrades_it() -> None:
    world = world_of(replicas=2)
    fine = signals(CHECKOUT, 100.0, p95_ms=50.0, p99_ms=80.0)
    sig = FakeSignals({CHECKOUT: fine}, errors={CHECKOUT: "custom query returned 3 series, not one"})
    loop, api = loop_over(world, sig, metrics=CUSTOM)
    asyncio.run(loop.tick())
    assert sig.sources[CHECKOUT] == Source(PRESETS["istio"], CUSTOM["queries"])
    condition = degraded(api)
    assert condition["status"] == "True"
    assert "returned 3 series" in condition["message"]
    # the same intent without the error is healthy
    loop, api = loop_over(world, FakeSignals({CHECKOUT: fine}), metrics=CUSTOM)
    asyncio.run(loop.tick())
    assert degraded(api)["status"] == "False"


def test_an_operator_without_custom_queries_reads_the_preset_and_says_so() -> None:
    world = world_of(replicas=2)
    sig = FakeSignals({CHECKOUT: signals(CHECKOUT, 100.0, p95_ms=50.0, p99_ms=80.0)})
    loop, api = loop_over(world, sig, settings=LoopSettings(run="run2", custom_queries=False), metrics=CUSTOM)
    asyncio.run(loop.tick())
    assert sig.sources[CHECKOUT] == Source(PRESETS["istio"], {})
    assert "--no-custom-queries" in degraded(api)["message"]


def test_node_utilisation_comes_from_the_resource_metrics_api(monkeypatch: pytest.MonkeyPatch) -> None:
    world = world_of(replicas=2)
    names = [n["metadata"]["name"] for n in world["nodes"]]
    usage = [{"metadata": {"name": names[0]}, "usage": {"cpu": "1500m", "memory": "1Gi"}}]
    loop, _ = loop_over(world, FakeSignals({CHECKOUT: signals(CHECKOUT, 10.0)}), FakeApi(node_metrics=usage))
    seen: list[Any] = []
    observe = adapter.observe

    def spy(*args: Any, **kwargs: Any) -> Any:
        seen.append(args[6])  # the node signals
        return observe(*args, **kwargs)

    monkeypatch.setattr(adapter, "observe", spy)
    asyncio.run(loop.tick())
    cores = float(world["nodes"][0]["status"]["allocatable"]["cpu"])
    assert seen[0][names[0]].utilization == pytest.approx(1.5 / cores)
    assert names[1] not in seen[0]


def test_each_managed_intent_exports_its_own_slo_targets() -> None:
    world = world_of(replicas=2)
    sig = FakeSignals({CHECKOUT: signals(CHECKOUT, 10.0)})
    loop, _ = loop_over(world, sig, slo={"p95Ms": 120, "p99Ms": 300})
    asyncio.run(loop.tick())
    text = loop.telemetry.exposition().decode()
    for quantile, seconds in (("0.95", 0.12), ("0.99", 0.3)):
        assert (f'kubeagora_operator_intent_slo_target_seconds{{deployment="checkout",intent="checkout",'
                f'namespace="default",quantile="{quantile}"}} {seconds}') in text
    loop.view.apply("intents", "DELETED", loop.view.get("intents", "default/checkout") or {})
    asyncio.run(loop.tick())
    assert "kubeagora_operator_intent_slo_target_seconds{" not in loop.telemetry.exposition().decode()
