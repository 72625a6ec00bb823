"""Fuzzing the scheduler extender's filter and prioritize verbs with hypothesis: zero 500s.

Bodies are Kubernetes-shaped ExtenderArgs whose fields may hold the wrong type, extreme numbers or
strings that are almost quantities (``fuzz_bodies``). In-process, a body either is refused as
malformed (HTTP 400) or is answered; over HTTP, no status is ever 500.
"""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
from aiohttp.test_utils import TestClient, TestServer
from hypothesis import HealthCheck, given, settings
from tests.security.fuzz_bodies import extender_args, extreme_args
from tests.unit.extender_objects import cache_of, deployment, intent, node, pod

from kubeagora.scheduler_plugin.bids import BidSettings
from kubeagora.scheduler_plugin.cache import ClusterCache
from kubeagora.scheduler_plugin.protocol import MalformedRequest, parse_extender_args
from kubeagora.scheduler_plugin.server import make_app
from kubeagora.scheduler_plugin.verbs import answer_filter, answer_prioritize


def fuzz_cache() -> ClusterCache:
    nodes = [node("r0"), node("r1", region="region-1", tier="edge"), node("g0", node_class="gpu", gpus=4),
             node("t0", node_class="tpu", tpus=4), node("m0", node_class="mcu", tier="edge", cpu="1", memory="1Gi")]
    pods = [pod("bg-0", node_name="g0", gpus=1, template="llm"), pod("bg-1", node_name="r0", template="web")]
    return cache_of(nodes, pods, deployments=[deployment("checkout"), deployment("llm")],
                    intents=[intent("checkout", "checkout", regions=["region-1"]),
                             intent("llm", "llm", tiers=["cloud"], nodeClasses=["gpu"])])


CACHE = fuzz_cache()


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(extender_args)
def test_every_body_is_answered_or_refused_as_malformed(body: Any) -> None:
    raw = orjson.dumps(body)
    try:
        args = parse_extender_args(raw)
    except MalformedRequest:
        return
    orjson.dumps(answer_filter(CACHE, args))
    orjson.dumps(answer_prioritize(CACHE, args, BidSettings()))


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(extreme_args)
def test_extreme_but_valid_quantities_are_answered(body: Any) -> None:
    args = parse_extender_args(orjson.dumps(body))
    orjson.dumps(answer_filter(CACHE, args))
    scores = answer_prioritize(CACHE, args, BidSettings())
    assert all(0 <= host["Score"] <= 10 for host in scores)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(extender_args)
def test_no_body_gets_a_500_over_http(body: Any) -> None:
    raw = orjson.dumps(body)

    async def main() -> None:
        async with TestClient(TestServer(make_app(CACHE))) as client:
            for verb in ("filter", "prioritize"):
                resp = await client.post(f"/{verb}", data=raw)
                assert resp.status in (200, 400), (resp.status, await resp.text())

    asyncio.run(main())
