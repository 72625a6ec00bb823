"""The extender's wire format and HTTP service: Go field names, 400 for malformed bodies, metrics."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from tests.unit.extender_objects import cache_of, deployment, intent, node, pod

from kubeagora.scheduler_plugin.cache import ClusterCache
from kubeagora.scheduler_plugin.protocol import MalformedRequest, filter_result, parse_extender_args
from kubeagora.scheduler_plugin.server import make_app


def test_node_names_or_full_nodes_are_read_and_answered_in_kind() -> None:
    by_name = parse_extender_args(json.dumps({"Pod": pod("p"), "NodeNames": ["a", "b"]}).encode())
    assert by_name.node_names == ("a", "b")
    assert by_name.nodes is None
    assert filter_result(by_name, ["b"], {"a": "why"}, {}) == {
        "NodeNames": ["b"], "Nodes": None, "FailedNodes": {"a": "why"}, "FailedAndUnresolvableNodes": {},
        "Error": ""}
    full = parse_extender_args(json.dumps({"Pod": pod("p"), "Nodes": {"items": [node("a"), node("b")]},
                                           "NodeNames": None}).encode())
    assert full.node_names == ("a", "b")
    assert full.nodes is not None
    answer = filter_result(full, ["b"], {}, {"a": "why"})
    assert answer["NodeNames"] is None
    assert [n["metadata"]["name"] for n in answer["Nodes"]["items"]] == ["b"]


@pytest.mark.parametrize(("body", "reason"), [
    (b"{not json", "not JSON"),
    (b"[]", "JSON object"),
    (b'{"NodeNames": ["a"]}', "field Pod"),
    (json.dumps({"Pod": pod("p")}).encode(), "one of NodeNames or Nodes"),
    (json.dumps({"Pod": pod("p"), "NodeNames": "a"}).encode(), "list of strings"),
    (json.dumps({"Pod": pod("p"), "Nodes": {"items": [{"metadata": {}}]}}).encode(), "metadata.name"),
    (json.dumps({"Pod": pod("p"), "Nodes": [1]}).encode(), "NodeList"),
])
def test_a_malformed_body_says_what_is_wrong(body: bytes, reason: str) -> None:
    with pytest.raises(MalformedRequest, match=reason):
        parse_extender_args(body)


def serve(cache: ClusterCache, check: Callable[[TestClient[Any, Any]], Awaitable[None]]) -> None:
    async def main() -> None:
        async with TestClient(TestServer(make_app(cache))) as client:
            await check(client)

    asyncio.run(main())


def cluster() -> ClusterCache:
    return cache_of([node("r0", region="region-0"), node("r1", region="region-1"),
                     node("g1", region="region-1", node_class="gpu", gpus=4)],
                    deployments=[deployment("checkout")],
                    intents=[intent("checkout", "checkout", regions=["region-1"])])


def test_filter_and_prioritize_over_http() -> None:
    checkout = pod("checkout-1", labels={"app": "checkout"}, template="web")

    async def check(client: TestClient[Any, Any]) -> None:
        resp = await client.post("/filter", data=json.dumps({"Pod": checkout, "NodeNames": ["r0", "r1", "g1"]}))
        assert resp.status == 200
        body = await resp.json()
        assert body["NodeNames"] == ["r1", "g1"]
        assert list(body["FailedAndUnresolvableNodes"]) == ["r0"]
        resp = await client.post("/prioritize", data=json.dumps({"Pod": checkout, "NodeNames": ["r0", "r1", "g1"]}))
        ranking = {h["Host"]: h["Score"] for h in await resp.json()}
        assert ranking["r1"] == 10
        assert ranking["r0"] == 0
        assert ranking["g1"] == 0

    serve(cluster(), check)


def test_a_malformed_request_gets_400_and_the_service_goes_on() -> None:
    async def check(client: TestClient[Any, Any]) -> None:
        for verb in ("filter", "prioritize"):
            resp = await client.post(f"/{verb}", data=b"\x00garbage")
            assert resp.status == 400
            assert "not JSON" in (await resp.json())["error"]
        resp = await client.post("/filter", data=json.dumps({"Pod": pod("plain"), "NodeNames": ["r0"]}))
        assert (await resp.json())["NodeNames"] == ["r0"]  # a pod it knows nothing about passes
        assert (await client.get("/healthz")).status == 200
        metrics = await (await client.get("/metrics")).text()
        assert 'kubeagora_extender_requests_total{outcome="bad_request",verb="filter"} 1.0' in metrics
        assert 'kubeagora_extender_requests_total{outcome="ok",verb="filter"} 1.0' in metrics
        assert 'kubeagora_extender_request_duration_seconds_count{verb="prioritize"} 1.0' in metrics
        assert 'kubeagora_extender_cache_objects{kind="nodes"} 3.0' in metrics

    serve(cluster(), check)


def test_healthz_waits_for_the_first_lists() -> None:
    async def check(client: TestClient[Any, Any]) -> None:
        resp = await client.get("/healthz")
        assert resp.status == 503
        assert await resp.text() == "syncing"

    serve(ClusterCache(), check)
