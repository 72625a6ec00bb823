"""Stalling the scheduler extender with large bodies (finding 4 of the security review).

On today's main bodies up to 64 MiB were accepted and parsed and scored on the event loop: a 3.9 MB
prioritize stalled ``/healthz`` 2.5 s (longer than the scheduler's 2 s ``httpTimeout``); with
``ignorable: true`` the scheduler then skips the extender and residency is not applied. Now: a body
over the limit (sized from the largest real request) is a 413; the verbs run in a child process, so
the probes answer while the costliest bodies under the limit are worked on; a full queue answers
503 at once and a request that waited longer than the scheduler does is dropped unworked.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from aiohttp.test_utils import TestClient, TestServer
from tests.security.extender_process import checkout_pod, costly_bodies, extender_process, synthetic_cache

from kubeagora.scheduler_plugin.server import (
    API_SERVER_MAX_REQUEST_BYTES,
    MAX_BODY_BYTES,
    MAX_CLUSTER_NODES,
    MAX_QUEUED_REQUESTS,
    make_app,
)

STALL_S = 0.1


def post(body: bytes, verb: str = "filter") -> tuple[int, Any]:
    cache, _ = synthetic_cache(20)

    async def main() -> tuple[int, Any]:
        async with TestClient(TestServer(make_app(cache))) as client:
            resp = await client.post(f"/{verb}", data=body)
            return resp.status, await resp.json()

    return asyncio.run(main())


def largest_real_request() -> bytes:
    """A Pod as large as the API server accepts (its JSON at 3 MiB: an environment variable takes the
    room) offered with 5,000 node names of the longest legal length (253 characters)."""
    names = [f"{i:05d}-" + "n" * 247 for i in range(MAX_CLUSTER_NODES)]
    pod = checkout_pod()
    pod["spec"]["containers"][0]["env"] = [{"name": "FILLER", "value": ""}]
    room = API_SERVER_MAX_REQUEST_BYTES - len(json.dumps(pod))
    pod["spec"]["containers"][0]["env"][0]["value"] = "x" * room
    assert len(json.dumps(pod)) == API_SERVER_MAX_REQUEST_BYTES
    return json.dumps({"Pod": pod, "NodeNames": names}).encode()


def test_the_limit_holds_the_largest_request_a_real_scheduler_sends() -> None:
    body = largest_real_request()
    assert len(body) <= MAX_BODY_BYTES
    status, answer = post(body)
    assert status == 200
    assert len(answer["NodeNames"]) == MAX_CLUSTER_NODES


def test_a_body_over_the_limit_is_refused_with_413_naming_it() -> None:
    body = json.dumps({"Pod": checkout_pod(), "NodeNames": []}).encode()
    status, answer = post(body + b" " * (MAX_BODY_BYTES - len(body)))
    assert status == 200
    status, answer = post(body + b" " * (MAX_BODY_BYTES - len(body) + 1))
    assert status == 413
    assert f"{MAX_BODY_BYTES:,} bytes" in answer["error"]


def test_healthz_answers_within_100_ms_while_the_costliest_bodies_are_worked_on() -> None:
    _, names = synthetic_cache(1000)
    bodies = costly_bodies(names, MAX_BODY_BYTES)
    with extender_process(1000) as extender:
        probes_s: list[float] = []
        stop = threading.Event()

        def probe() -> None:
            conn = extender.connection()
            while not stop.is_set():
                t0 = time.perf_counter()
                conn.request("GET", "/healthz")
                resp = conn.getresponse()
                resp.read()
                probes_s.append(time.perf_counter() - t0)
                assert resp.status == 200
                time.sleep(0.02)

        prober = threading.Thread(target=probe)
        prober.start()
        try:
            worked_s = []
            for body in bodies.values():
                for verb in ("filter", "prioritize"):
                    t0 = time.perf_counter()
                    status, answer = extender.post(f"/{verb}", body)
                    worked_s.append(time.perf_counter() - t0)
                    assert status == 200, answer[:300]
        finally:
            stop.set()
            prober.join()
    probes_s.sort()
    p99_s = probes_s[int(0.99 * len(probes_s))]
    summary = (f"{len(probes_s)} probes over {sum(worked_s):.1f} s of work: median "
               f"{statistics.median(probes_s) * 1e3:.1f} ms, p99 {p99_s * 1e3:.1f} ms, max {probes_s[-1] * 1e3:.0f} ms")
    print(summary)
    # the probes compete for the CPU with the worker on a shared machine: 1 in 100 may wait for a core
    assert p99_s < STALL_S, summary
    assert probes_s[-1] < 10 * STALL_S, summary
    # the bodies were costly: the costliest, worked on the event loop as on the old main, would have held the
    # probes several times past the stall limit (0.98 s on a quiet 2-core machine, more under load)
    assert max(worked_s) > 3 * STALL_S, summary


def test_a_flood_is_bounded_by_the_queue_and_by_staleness() -> None:
    _, names = synthetic_cache(1000)
    body = costly_bodies(names, MAX_BODY_BYTES)["containers"]
    with extender_process(1000, verbs={"stale_after_s": 0.5}) as extender, \
            ThreadPoolExecutor(max_workers=3 * MAX_QUEUED_REQUESTS) as flood:
        answers = list(flood.map(lambda _: extender.post("/filter", body), range(3 * MAX_QUEUED_REQUESTS)))
        assert extender.post("/filter", json.dumps({"Pod": checkout_pod(), "NodeNames": names}).encode())[0] == 200
    statuses = [status for status, _ in answers]
    errors = [json.loads(text)["error"] for status, text in answers if status != 200]
    assert set(statuses) <= {200, 503}, statuses
    assert any(f"the limit is {MAX_QUEUED_REQUESTS}" in e for e in errors), errors
    assert any("longer than the scheduler waits" in e for e in errors), errors
