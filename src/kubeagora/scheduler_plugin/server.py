"""The extender's HTTP face (aiohttp): the scheduler's verbs and the usual probes.

    POST /filter       ExtenderArgs → ExtenderFilterResult (``filtering.filter_pod``)
    POST /prioritize   ExtenderArgs → HostPriorityList (``scoring.prioritize_pod``)
    GET  /healthz      "ok" once nodes and pods are listed (and the verbs' worker runs), else 503
    GET  /metrics      Prometheus exposition (``metrics``)

The server only moves bytes: a verb's body is parsed, checked and answered by ``verbs`` (a child
process in production), so the probes and the watch loops go on while a large body is worked on.
The work is bounded three ways:

- a body of more than ``max_body_bytes`` is refused with 413 before it is parsed (``MAX_BODY_BYTES``
  is sized below from the largest request a real kube-scheduler sends);
- at most ``MAX_QUEUED_REQUESTS`` verbs wait or run at once; one more is answered 503 at once;
- a request that waited longer than the scheduler does is answered 503 unworked (``verbs``).

A body that is not an ExtenderArgs, or whose Pod or Nodes have a wrong-typed field, gets HTTP 400
with ``{"error": reason}``; anything else that goes wrong answers HTTP 500 with the reason (the
scheduler then skips an ``ignorable`` extender), and the server goes on.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from aiohttp import web
from prometheus_client import generate_latest

from kubeagora.scheduler_plugin.bids import BidSettings
from kubeagora.scheduler_plugin.cache import KINDS, ClusterCache
from kubeagora.scheduler_plugin.metrics import CONTENT_TYPE, ExtenderMetrics, make_metrics
from kubeagora.scheduler_plugin.verbs import ThreadVerbs, Verbs

log = logging.getLogger("kubeagora.scheduler_extender")
API_SERVER_MAX_REQUEST_BYTES = 3 * 2**20
"""kube-apiserver refuses a request body over 3 MiB (k8s.io/apiserver's default MaxRequestBodyBytes), so
no Pod the scheduler holds was ever written as more JSON than this (etcd stores at most 1.5 MiB)."""
MAX_CLUSTER_NODES = 5_000
"""The largest cluster Kubernetes is tested to (its scalability thresholds: 5,000 nodes)."""
NODE_NAME_JSON_BYTES = 253 + 3
"""A node name is a DNS subdomain of at most 253 characters; in a JSON list, with its quotes and comma."""
ENVELOPE_BYTES = 64 * 2**10
MAX_BODY_BYTES = API_SERVER_MAX_REQUEST_BYTES + MAX_CLUSTER_NODES * NODE_NAME_JSON_BYTES + ENVELOPE_BYTES
"""The largest ExtenderArgs a real kube-scheduler sends a ``nodeCacheCapable`` extender: a Pod at the API
server's limit and the longest possible names of every node of a 5,000-node cluster, plus 64 KiB of
envelope — 4,491,264 bytes (4.3 MiB). An extender that is sent full Node objects (not
``nodeCacheCapable``) needs a larger limit (``--max-body-bytes``): a Node runs to a few KiB."""
MAX_QUEUED_REQUESTS = 8
"""Verbs waiting for or running in the worker; kube-scheduler calls one at a time per scheduling cycle."""
CACHE_KEY: web.AppKey[ClusterCache] = web.AppKey("cache", ClusterCache)
METRICS_KEY: web.AppKey[ExtenderMetrics] = web.AppKey("metrics", ExtenderMetrics)


def _json(body: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(body), status=status, content_type="application/json")


def _client_certificate(request: web.Request) -> bool:
    """Whether the client presented a certificate the TLS handshake verified (an empty dict: none)."""
    transport = request.transport
    return bool(transport is not None and transport.get_extra_info("peercert"))


def make_app(cache: ClusterCache, verbs: Verbs | None = None, metrics: ExtenderMetrics | None = None,
             max_body_bytes: int = MAX_BODY_BYTES, settings: BidSettings | None = None,
             client_auth: bool = False) -> web.Application:
    """The app over ``cache`` (health and metrics read it); ``verbs`` answers filter and prioritize (default:
    a ``ThreadVerbs`` over ``cache`` with ``settings``). The app closes ``verbs`` on cleanup. With
    ``client_auth`` (a TLS site whose context verifies client certificates, ``run.server_tls_context``)
    the verbs answer 403 to a client that presented no certificate."""
    runner = verbs or ThreadVerbs(cache, settings)
    m = metrics or make_metrics()
    waiting = 0

    def verb_handler(verb: str) -> Callable[[web.Request], Awaitable[web.Response]]:
        async def handle(request: web.Request) -> web.Response:
            nonlocal waiting
            started = time.perf_counter()
            outcome = "busy"
            if waiting >= MAX_QUEUED_REQUESTS:
                m.requests.labels(verb, outcome).inc()
                return _json({"error": f"{verb}: {waiting} requests already queued (the limit is "
                                       f"{MAX_QUEUED_REQUESTS})"}, status=503)
            if client_auth and not _client_certificate(request):
                m.requests.labels(verb, "forbidden").inc()
                return _json({"error": f"{verb}: only the scheduler may call this: present a client certificate "
                                       "signed by the CA this extender trusts (--client-ca-file)"}, status=403)
            waiting += 1
            try:
                try:
                    body = await request.read()
                except web.HTTPRequestEntityTooLarge:
                    outcome = "too_large"
                    return _json({"error": f"{verb}: a body of more than {max_body_bytes:,} bytes (the limit; "
                                           "see --max-body-bytes)"}, status=413)
                verdict = await runner.answer(verb, body, time.monotonic())
                outcome = verdict.outcome
                return web.Response(body=verdict.body, status=verdict.status, content_type="application/json")
            finally:
                waiting -= 1
                m.duration.labels(verb).observe(time.perf_counter() - started)
                m.requests.labels(verb, outcome).inc()

        return handle

    async def healthz(_: web.Request) -> web.Response:
        if not runner.alive():
            return web.Response(text="verbs worker not running", status=503)
        ok = cache.healthy()
        return web.Response(text="ok" if ok else "syncing", status=200 if ok else 503)

    async def metrics_page(_: web.Request) -> web.Response:
        counts = {"nodes": len(cache.nodes), "pods": len(cache.pods), "deployments": len(cache.selectors),
                  "intents": len(cache.intents)}
        for kind in KINDS:
            m.cache_objects.labels(kind).set(counts[kind])
        return web.Response(body=generate_latest(m.registry), headers={"Content-Type": CONTENT_TYPE})

    async def stop_worker(_: web.Application) -> None:
        runner.close()

    app = web.Application(client_max_size=max_body_bytes)
    app[CACHE_KEY] = cache
    app[METRICS_KEY] = m
    app.on_cleanup.append(stop_worker)
    app.add_routes([
        web.post("/filter", verb_handler("filter")),
        web.post("/prioritize", verb_handler("prioritize")),
        web.get("/healthz", healthz),
        web.get("/metrics", metrics_page),
    ])
    return app
