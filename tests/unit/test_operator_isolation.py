"""Per-intent fault isolation in the operator (no cluster): one tenant's odd objects degrade that
tenant's intent, with the reason in its ``Degraded`` condition; the others are managed as usual, and
``/healthz`` fails once the loop fails tick after tick."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from tests.unit.operator_objects import by_key, deployment, intent, node, pod, signals
from tests.unit.test_operator_control_loop import SIGNER, FakeApi, FakeSignals

from kubeagora.operator import adapter
from kubeagora.operator.loop import ControlLoop, LoopSettings
from kubeagora.operator.telemetry import UNHEALTHY_AFTER_FAILED_TICKS, Telemetry
from kubeagora.operator.view import ClusterView


@pytest.mark.parametrize(("raw", "count"), [("1k", 1000), (1000, 1000), ("2", 2), ("500m", 0), ("inf", 0),
                                            ("nan", 0), ("-3", 0), (None, 0), ([1], 0), (True, 0), ("1e30", 1_000_000)])
def test_an_extended_resource_quantity_reads_as_a_bounded_whole_count(raw: Any, count: int) -> None:
    assert adapter.whole_count(raw) == count


def test_a_thousand_gpus_stored_as_1k_bind_as_a_thousand() -> None:
    dep = deployment("big")
    dep["spec"]["template"]["spec"]["containers"][0]["resources"]["requests"]["nvidia.com/gpu"] = "1k"
    (binding,), unbound = adapter.bind([intent("big")], by_key([dep]), ["region-0"])
    assert not unbound
    assert binding.service.accelerator_request == 1000


def test_an_intent_whose_binding_raises_is_degraded_and_the_others_bind(monkeypatch: pytest.MonkeyPatch) -> None:
    """Whatever goes wrong binding one intent (here a failure nobody foresaw) stays with that intent."""
    real = adapter.template_requests

    def explode(dep: Any) -> tuple[float, float, int]:
        if dep["metadata"]["name"] == "bad":
            raise OverflowError("cannot convert float infinity to integer")
        return real(dep)

    monkeypatch.setattr(adapter, "template_requests", explode)
    bindings, unbound = adapter.bind([intent("bad"), intent("good")], by_key([deployment("bad"), deployment("good")]),
                                     ["region-0"])
    assert [b.intent for b in bindings] == ["good"]
    (u,) = unbound
    assert u.key == "default/bad"
    assert u.degraded
    assert "OverflowError" in u.why


def _loop(objs: dict[str, list[dict[str, Any]]], sig: FakeSignals) -> tuple[ControlLoop, FakeApi]:
    view = ClusterView()
    for kind, items in objs.items():
        for o in items:
            view.apply(kind, None, o)
    api = FakeApi()
    return ControlLoop(view, api, LoopSettings(run="iso"), Telemetry(), signals=sig,  # type: ignore[arg-type]
                       signer=SIGNER), api


def test_a_pod_that_breaks_the_snapshot_degrades_its_own_intent_only(monkeypatch: pytest.MonkeyPatch) -> None:
    nodes = [node("cloud-cpu-0")]
    pods = [pod("good-0", "good", "cloud-cpu-0"), pod("bad-0", "bad", "cloud-cpu-0")]
    real = adapter.pod_ready

    def breaks_on_bad(p: Any) -> bool:
        if p["metadata"]["name"].startswith("bad"):
            raise TypeError("a field nobody expected")
        return real(p)

    monkeypatch.setattr(adapter, "pod_ready", breaks_on_bad)
    loop, api = _loop({"nodes": nodes, "pods": pods, "deployments": [deployment("good", replicas=1),
                                                                      deployment("bad", replicas=1)],
                       "intents": [intent("good"), intent("bad")]},
                      FakeSignals({name: signals(name, 10.0, p95_ms=50.0, p99_ms=80.0)
                                   for name in ("default/good", "default/bad")}))
    assert asyncio.run(loop.tick()) == "decided"
    (bad,) = api.to("PATCH", "/orchestrationintents/bad/status")
    degraded = next(c for c in bad["status"]["conditions"] if c["type"] == "Degraded")
    assert degraded["status"] == "True"
    assert degraded["reason"] == "InvalidTarget"
    assert "TypeError" in degraded["message"]
    (good,) = api.to("PATCH", "/orchestrationintents/good/status")
    assert next(c for c in good["status"]["conditions"] if c["type"] == "Ready")["status"] == "True"


def test_healthz_fails_after_consecutive_failed_ticks_and_recovers_with_a_good_one() -> None:
    async def scenario() -> list[int]:
        telemetry = Telemetry()
        codes = []
        async with TestClient(TestServer(telemetry.app(lambda: True))) as client:
            for failed in [True] * UNHEALTHY_AFTER_FAILED_TICKS + [False]:
                codes.append((await client.get("/healthz")).status)
                telemetry.ticked(failed=failed)
            codes.append((await client.get("/healthz")).status)
            metrics = await (await client.get("/metrics")).text()
            assert "kubeagora_operator_failed_ticks_in_a_row 0.0" in metrics
        return codes

    assert asyncio.run(scenario()) == [200] * UNHEALTHY_AFTER_FAILED_TICKS + [503, 200]


def test_a_replica_no_node_can_hold_degrades_its_intent_and_names_the_shortfall() -> None:
    big = deployment("big")
    big["spec"]["template"]["spec"]["containers"][0]["resources"]["requests"]["nvidia.com/gpu"] = "1k"
    bindings, unbound = adapter.bind([intent("big"), intent("small")], by_key([big, deployment("small")]),
                                     ["region-0"])
    assert not unbound
    nodes = [adapter.node_from_object(node("cloud-cpu-0"))]
    kept, out = adapter.unplaceable(bindings, nodes)
    assert [b.intent for b in kept] == ["small"]
    (u,) = out
    assert u.degraded
    assert "requests 1000 accelerators, the largest node has 0" in u.why
    assert adapter.unplaceable(bindings, []) == (bindings, [])
