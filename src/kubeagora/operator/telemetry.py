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
    kubeagora_operator_leader                        1 while this replica leads (acts), 0 on standby
    kubeagora_operator_failed_ticks_in_a_row         consecutive failed ticks (``/healthz`` fails at
                                                     ``UNHEALTHY_AFTER_FAILED_TICKS``)
    kubeagora_operator_intent_slo_target_seconds{namespace,intent,deployment,quantile}   each managed
                                                     intent's latency targets (quantile 0.95 and 0.99), so a
                                                     dashboard draws every intent's own lines
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
UNHEALTHY_AFTER_FAILED_TICKS = 3
"""A loop that fails this many ticks in a row is not doing its job, though it still ticks."""


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
        self.failed_in_a_row = Gauge("kubeagora_operator_failed_ticks_in_a_row", "Consecutive failed ticks.",
                                     registry=self.registry)
        self.leader = Gauge("kubeagora_operator_leader", "1 while this replica holds the leader Lease and acts.",
                            registry=self.registry)
        self.slo_target = Gauge("kubeagora_operator_intent_slo_target_seconds",
                                "The intent's latency target at this quantile (spec.slo).",
                                ["namespace", "intent", "deployment", "quantile"], registry=self.registry)
        self._targets: set[tuple[str, str, str]] = set()
        self.last_tick = 0.0
        self.failures = 0

    def set_slo_targets(self, targets: Mapping[tuple[str, str, str], tuple[float, float]]) -> None:
        """(namespace, intent, deployment) → (p95, p99 target in seconds) of every managed intent;
        the series of intents no longer managed go."""
        for gone in self._targets - set(targets):
            for quantile in ("0.95", "0.99"):
                self.slo_target.remove(*gone, quantile)
        for key, (p95_s, p99_s) in targets.items():
            self.slo_target.labels(*key, "0.95").set(p95_s)
            self.slo_target.labels(*key, "0.99").set(p99_s)
        self._targets = set(targets)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)

    def app(self, healthy: Callable[[], bool], ready: Callable[[], bool] | None = None) -> web.Application:
        async def metrics(_: web.Request) -> web.Response:
            return web.Response(body=self.exposition(), headers={"Content-Type": CONTENT_TYPE})

        async def healthz(_: web.Request) -> web.Response:
            if self.failing():
                return web.Response(text=f"the control loop failed its last {self.failures} ticks", status=503)
            ok = healthy()
            return web.Response(text="ok" if ok else "the control loop is not ticking", status=200 if ok else 503)

        async def readyz(_: web.Request) -> web.Response:
            ok = (ready or healthy)()
            return web.Response(text="ok" if ok else "not ready: no control-loop tick yet, or the webhooks are not "
                                                     "registered yet", status=200 if ok else 503)

        app = web.Application()
        app.add_routes([web.get("/metrics", metrics), web.get("/healthz", healthz), web.get("/readyz", readyz)])
        return app

    def ticked(self, failed: bool = False) -> None:
        self.last_tick = time.monotonic()
        self.leader.set(1)
        self.failures = self.failures + 1 if failed else 0
        self.failed_in_a_row.set(self.failures)

    def standby(self) -> None:
        """Not leading: alive and waiting (a standby replica is healthy)."""
        self.last_tick = time.monotonic()
        self.failures = 0
        self.leader.set(0)

    def failing(self) -> bool:
        """Whether the last ``UNHEALTHY_AFTER_FAILED_TICKS`` ticks all failed."""
        return self.failures >= UNHEALTHY_AFTER_FAILED_TICKS
