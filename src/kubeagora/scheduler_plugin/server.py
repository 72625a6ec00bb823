"""The extender's HTTP face (aiohttp): the scheduler's verbs and the usual probes.

    POST /filter       ExtenderArgs → ExtenderFilterResult (``filtering.filter_pod``)
    POST /prioritize   ExtenderArgs → HostPriorityList (``scoring.prioritize_pod``)
    GET  /healthz      "ok" once nodes and pods are listed, else 503 "syncing"
    GET  /metrics      Prometheus exposition (``metrics``)

A body that is not an ExtenderArgs gets HTTP 400 with ``{"error": reason}``; anything else that goes
wrong answers HTTP 500 with the reason (the scheduler then skips an ``ignorable`` extender), and the
server goes on.
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
from kubeagora.scheduler_plugin.cache import KINDS, ClusterCache, node_info
from kubeagora.scheduler_plugin.filtering import filter_pod
from kubeagora.scheduler_plugin.metrics import CONTENT_TYPE, ExtenderMetrics, make_metrics
from kubeagora.scheduler_plugin.protocol import (
    ExtenderArgs,
    MalformedRequest,
    filter_result,
    host_priority_list,
    parse_extender_args,
)
from kubeagora.scheduler_plugin.scoring import prioritize_pod
from kubeagora.scheduler_plugin.workload import pod_demand

log = logging.getLogger("kubeagora.scheduler_extender")
MAX_BODY_BYTES = 64 * 2**20
"""Full Node objects of a few thousand nodes (without ``nodeCacheCapable``) run to tens of MB."""
CACHE_KEY: web.AppKey[ClusterCache] = web.AppKey("cache", ClusterCache)
METRICS_KEY: web.AppKey[ExtenderMetrics] = web.AppKey("metrics", ExtenderMetrics)


def _json(body: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(body), status=status, content_type="application/json")


def answer_filter(cache: ClusterCache, args: ExtenderArgs) -> dict[str, Any]:
    offered = None
    if args.nodes is not None:
        offered = {n.name: n for n in map(node_info, args.nodes)}
    outcome = filter_pod(cache, pod_demand(args.pod), args.node_names, offered)
    return filter_result(args, outcome.passed, outcome.failed, outcome.unresolvable)


def answer_prioritize(cache: ClusterCache, args: ExtenderArgs, settings: BidSettings) -> list[dict[str, Any]]:
    annotations = (args.pod.get("metadata") or {}).get("annotations") or {}
    return host_priority_list(prioritize_pod(cache, pod_demand(args.pod), annotations, args.node_names, settings))


def make_app(cache: ClusterCache, settings: BidSettings | None = None,
             metrics: ExtenderMetrics | None = None) -> web.Application:
    bid_settings = settings or BidSettings()
    m = metrics or make_metrics()

    def verb(name: str, answer: Callable[[ExtenderArgs], Any]) -> Callable[[web.Request], Awaitable[web.Response]]:
        async def handle(request: web.Request) -> web.Response:
            started = time.perf_counter()
            outcome = "ok"
            try:
                body = await request.read()
                try:
                    args = parse_extender_args(body)
                except MalformedRequest as e:
                    outcome = "bad_request"
                    return _json({"error": f"{name}: {e}"}, status=400)
                try:
                    return _json(answer(args))
                except Exception as e:  # a bug must not take the scheduler's extender down
                    outcome = "error"
                    log.exception("%s failed", name)
                    return _json({"error": f"{name}: {type(e).__name__}: {e}"}, status=500)
            finally:
                m.duration.labels(name).observe(time.perf_counter() - started)
                m.requests.labels(name, outcome).inc()

        return handle

    async def healthz(_: web.Request) -> web.Response:
        ok = cache.healthy()
        return web.Response(text="ok" if ok else "syncing", status=200 if ok else 503)

    async def metrics_page(_: web.Request) -> web.Response:
        counts = {"nodes": len(cache.nodes), "pods": len(cache.pods), "deployments": len(cache.selectors),
                  "intents": len(cache.intents)}
        for kind in KINDS:
            m.cache_objects.labels(kind).set(counts[kind])
        return web.Response(body=generate_latest(m.registry), headers={"Content-Type": CONTENT_TYPE})

    app = web.Application(client_max_size=MAX_BODY_BYTES)
    app[CACHE_KEY] = cache
    app[METRICS_KEY] = m
    app.add_routes([
        web.post("/filter", verb("filter", lambda a: answer_filter(cache, a))),
        web.post("/prioritize", verb("prioritize", lambda a: answer_prioritize(cache, a, bid_settings))),
        web.get("/healthz", healthz),
        web.get("/metrics", metrics_page),
    ])
    return app
