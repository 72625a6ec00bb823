"""Attacks on the mock kubelet's admin endpoints (``POST /faults``, ``POST /load``), served in-process.

Every bad body gets a 400 naming what is wrong (never a 500), durations are bounded, and faults
added by hand do not pile up: per-request work stays flat over thousands of POSTs.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from kubeagora.kubelet.faults import MAX_FAULT_DURATION_S, MAX_MANUAL_FAULTS
from kubeagora.kubelet.main import MockKubelet, Options
from kubeagora.kubelet.plan import make_plan

Client = TestClient[Any, Any]


def mock_kubelet() -> MockKubelet:
    """A mock kubelet that has not started (no API server): only its admin endpoints are exercised."""
    return MockKubelet(make_plan(None, 6, seed=1), Options(kubeconfig=Path("unused-kubeconfig")))


def serve(kubelet: MockKubelet, check: Callable[[Client], Awaitable[None]]) -> None:
    async def main() -> None:
        async with TestClient(TestServer(kubelet.web_app())) as client:
            await check(client)

    asyncio.run(main())


NODE = mock_kubelet().names[0]
DEEP = b"[" * 30_000 + b"]" * 30_000  # under the body limit, 30 times past the depth limit
BAD_FAULTS: list[tuple[bytes, str]] = [
    (DEEP, "not JSON"),
    (b'{"a":' * 5_000 + b"1" + b"}" * 5_000, "not JSON"),
    (json.dumps({"kind": "node-termination", "node": NODE, "duration_s": {}}).encode(), "duration_s"),
    (json.dumps({"kind": "node-termination", "node": NODE, "duration_s": []}).encode(), "duration_s"),
    (json.dumps({"kind": "node-termination", "node": NODE, "duration_s": "inf"}).encode(), "duration_s"),
    (json.dumps({"kind": "node-termination", "node": NODE, "duration_s": 1e300}).encode(), "duration_s"),
    (b'{"kind": "node-termination", "node": "' + NODE.encode() + b'", "duration_s": 1e999}', "not JSON"),
    (b'{"kind": "node-termination", "node": "' + NODE.encode() + b'", "duration_s": NaN}', "not JSON"),
    (json.dumps({"kind": "node-termination", "node": NODE, "duration_s": -1}).encode(), "duration_s"),
    (json.dumps({"kind": "node-termination", "node": NODE, "duration_s": True}).encode(), "duration_s"),
    (json.dumps({"kind": "gpu-throttle", "node": NODE, "factor": None}).encode(), "factor"),
    (json.dumps({"kind": "node-termination", "node": NODE, "duration_s": None}).encode(), "duration_s"),
    (json.dumps({"kind": "gpu-throttle", "node": NODE, "factor": "inf"}).encode(), "factor"),
    (json.dumps({"kind": "gpu-throttle", "node": NODE, "factor": [0.5]}).encode(), "factor"),
    (json.dumps({"kind": "gpu-throttle", "node": NODE, "factor": 2}).encode(), "factor"),
    (json.dumps({"kind": {"a": 1}, "node": NODE}).encode(), "kind"),
    (json.dumps({"kind": "node-termination", "node": [NODE]}).encode(), "node"),
    (json.dumps({"kind": "zone-outage", "zone": {"z": 1}}).encode(), "zone"),
    (json.dumps({"kind": "pod-crash", "service": ["web"]}).encode(), "service"),
    (json.dumps({"kind": "node-termination", "node": NODE, "zone": "z"}).encode(), "exactly one"),
    (json.dumps({"kind": "node-termination", "node": NODE, "extra": 1}).encode(), "unknown field"),
    (json.dumps([{"kind": "node-termination"}]).encode(), "JSON object"),
    (b"\xff\xfe", "not JSON"),
]
BAD_LOADS: list[tuple[bytes, str]] = [
    (DEEP, "not JSON"),
    (json.dumps({"service": "web", "factor": None}).encode(), "factor"),
    (json.dumps({"service": "web", "factor": "inf"}).encode(), "factor"),
    (json.dumps({"service": "web", "rps": {}}).encode(), "rps"),
    (json.dumps({"service": {"a": 1}, "rps": 1}).encode(), "service"),
    (b'{"service": "web", "rps": 1e999}', "not JSON"),
]


@pytest.mark.parametrize(("body", "reason"), BAD_FAULTS, ids=[f"faults-{i}" for i in range(len(BAD_FAULTS))])
def test_a_bad_fault_body_gets_400_naming_what_is_wrong(body: bytes, reason: str) -> None:
    kubelet = mock_kubelet()

    async def check(client: Client) -> None:
        resp = await client.post("/faults", data=body)
        text = await resp.text()
        assert resp.status == 400, text[:300]
        assert reason in json.loads(text)["error"]

    serve(kubelet, check)
    assert not kubelet.manual


@pytest.mark.parametrize(("body", "reason"), BAD_LOADS, ids=[f"load-{i}" for i in range(len(BAD_LOADS))])
def test_a_bad_load_body_gets_400(body: bytes, reason: str) -> None:
    async def check(client: Client) -> None:
        resp = await client.post("/load", data=body)
        text = await resp.text()
        assert resp.status == 400, text[:300]
        assert reason in json.loads(text)["error"]

    serve(mock_kubelet(), check)


def test_an_oversized_body_is_refused_before_it_is_parsed() -> None:
    async def check(client: Client) -> None:
        for path in ("/faults", "/load"):
            resp = await client.post(path, data=b" " * (2 * 2**20) + b"{}")
            assert resp.status == 413

    serve(mock_kubelet(), check)


def test_durations_are_bounded() -> None:
    kubelet = mock_kubelet()

    async def check(client: Client) -> None:
        too_long = await client.post("/faults", json={"kind": "node-termination", "node": NODE,
                                                      "duration_s": MAX_FAULT_DURATION_S * 2})
        assert too_long.status == 400
        assert f"{MAX_FAULT_DURATION_S:g}" in (await too_long.json())["error"]
        ok = await client.post("/faults", json={"kind": "node-termination", "node": NODE,
                                                "duration_s": MAX_FAULT_DURATION_S})
        assert ok.status == 200

    serve(kubelet, check)
    assert [e.duration_s for e in kubelet.manual] == [MAX_FAULT_DURATION_S]


def test_3000_fault_posts_neither_pile_up_nor_slow_down() -> None:
    """Short faults expire and are dropped; lasting ones stop at the limit with a 400 naming it."""
    kubelet = mock_kubelet()
    latencies_s: list[float] = []

    async def check(client: Client) -> None:
        for i in range(3000):
            body = {"kind": "gpu-throttle", "node": kubelet.names[i % len(kubelet.names)], "factor": 0.5}
            if i % 2:
                body["duration_s"] = 1e-6  # over before the next request
            t0 = time.perf_counter()
            resp = await client.post("/faults", json=body)
            latencies_s.append(time.perf_counter() - t0)
            if resp.status == 400:
                assert f"limit is {MAX_MANUAL_FAULTS}" in (await resp.json())["error"]
            else:
                assert resp.status == 200
            assert len(kubelet.manual) <= MAX_MANUAL_FAULTS
        cleared = await client.delete("/faults")
        assert (await cleared.json())["cleared"] <= MAX_MANUAL_FAULTS
        again = await client.post("/faults", json={"kind": "node-termination", "node": kubelet.names[0]})
        assert again.status == 200

    serve(kubelet, check)
    first, last = statistics.median(latencies_s[100:400]), statistics.median(latencies_s[-300:])
    assert last < 3 * first + 0.002, f"median latency {first * 1e3:.2f} ms → {last * 1e3:.2f} ms"
