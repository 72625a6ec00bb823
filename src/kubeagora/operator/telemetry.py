"""The operator's own Prometheus metrics, served with ``/healthz`` and ``/readyz`` on the metrics port.

``/readyz`` answers 200 once the control loop has ticked and, when the operator serves webhooks, the
API server has them: from then on an intent and its Deployment may be applied (their pods get the
residency rule at creation). ``until curl -sf HOST:PORT/readyz; do sleep 1; done`` waits for it.

    kubeagora_operator_decision_seconds              one control-loop tick: observe, decide, enact (histogram)
    kubeagora_operator_actions_total{agent,type,outcome}   decisions by agent, action type and outcome
                                                     (the AgentAction state: Applied, Shadow, RolledBack, ...)
    kubeagora_operator_rollouts{state}               AgentActions of this run by state (gauge)
    kubeagora_operator_intents                       intents managed (gauge)
    kubeagora_operator_ticks_total{result}           ticks: decided | held (metrics unavailable) | failed
    kubeagora_operator_intent_slo_met{namespace,intent}   1 when the last window was within SLO
"""

from __future__ import annotations

import time
from collections.abc import Callable

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class Telemetry:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.decision_seconds = Histogram(
            "kubeagora_operator_decision_seconds", "One control-loop tick: observe, decide, record and enact.",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0), registry=self.registry)
        self.actions = Counter("kubeagora_operator_actions", "Decisions by agent, action type and outcome.",
                               ["agent", "type", "outcome"], registry=self.registry)
        self.rollouts = Gauge("kubeagora_operator_rollouts", "AgentActions of this run by state.", ["state"],
                              registry=self.registry)
        self.intents = Gauge("kubeagora_operator_intents", "Intents managed.", registry=self.registry)
        self.ticks = Counter("kubeagora_operator_ticks", "Control-loop ticks by result.", ["result"],
                             registry=self.registry)
        self.slo_met = Gauge("kubeagora_operator_intent_slo_met", "1 when the intent's last window met its SLO.",
                             ["namespace", "intent"], registry=self.registry)
        self.last_tick = 0.0

    def exposition(self) -> bytes:
        return generate_latest(self.registry)

    def app(self, healthy: Callable[[], bool], ready: Callable[[], bool] | None = None) -> web.Application:
        async def metrics(_: web.Request) -> web.Response:
            return web.Response(body=self.exposition(), headers={"Content-Type": CONTENT_TYPE})

        async def healthz(_: web.Request) -> web.Response:
            ok = healthy()
            return web.Response(text="ok" if ok else "the control loop is not ticking", status=200 if ok else 503)

        async def readyz(_: web.Request) -> web.Response:
            ok = (ready or healthy)()
            return web.Response(text="ok" if ok else "not ready: no control-loop tick yet, or the webhooks are not "
                                                     "registered yet", status=200 if ok else 503)

        app = web.Application()
        app.add_routes([web.get("/metrics", metrics), web.get("/healthz", healthz), web.get("/readyz", readyz)])
        return app

    def ticked(self) -> None:
        self.last_tick = time.monotonic()
