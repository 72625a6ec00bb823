"""kopf's side of the operator (thin): settings, the watches feeding the view, the loop's life.

Importing this module registers the handlers; the validating webhook's (``admission``) are
registered only when the operator serves it (kopf refuses admission handlers without a server), and
must be imported before ``kopf.run`` (kopf sizes its index storage then): ``cli.run`` does that.
``kubeagora operator run`` passes an ``OperatorConfig`` in kopf's memo.
"""

from __future__ import annotations

import asyncio
import copy
import logging
import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import kopf
from aiohttp import web

from kubeagora.kubeapi import kubeconfig
from kubeagora.kubeapi.client import Api
from kubeagora.operator.leader import LEASE_NAME, LeaderElector, LeaseSettings
from kubeagora.operator.loop import ControlLoop, LoopSettings
from kubeagora.operator.records import GROUP, VERSION
from kubeagora.operator.telemetry import Telemetry
from kubeagora.operator.view import ClusterView

HEALTHY_TICKS = 4
"""``/healthz`` fails when the loop has not ticked for this many intervals."""


@dataclass(frozen=True)
class OperatorConfig:
    kubeconfig: Path | None
    loop: LoopSettings
    metrics_host: str = "0.0.0.0"
    metrics_port: int = 8080
    webhook_host: str | None = None
    """Where the API server reaches the webhook (None: no webhook server)."""
    webhook_port: int = 9443
    webhook_listen: str | None = None
    leader_election: bool = True
    """Act only while holding the Lease ``kubeagora-operator`` in the operator's namespace (see ``leader``)."""
    identity: str = ""
    """This replica's name in the Lease (default: host name and process id)."""
    webhook_cert: Path | None = None
    webhook_key: Path | None = None
    webhook_manage: bool = False
    """Let kopf write the webhook configurations (self-signed certificate) instead of static ones."""


@kopf.on.login()
async def login(memo: Any, **_: Any) -> kopf.ConnectionInfo:
    """The same credentials our own client uses (the official loaders: a kubeconfig with any user,
    exec plugins included, or the pod's service account); kopf logs in again when an exec plugin's
    token expires, and on a 401."""
    endpoint = await kubeconfig.load(memo["config"].kubeconfig)
    authorization = await endpoint.authorization() or ""
    scheme, _space, token = authorization.partition(" ")
    return kopf.ConnectionInfo(server=endpoint.server, ca_path=endpoint.ca_path, insecure=endpoint.insecure,
                               certificate_path=endpoint.cert_path, private_key_path=endpoint.key_path,
                               scheme=scheme or None, token=token or None, expiration=endpoint.expires_at)


@kopf.on.startup()
async def start(settings: kopf.OperatorSettings, memo: Any,
                logger: logging.Logger | logging.LoggerAdapter[Any], **_: Any) -> None:
    config: OperatorConfig = memo["config"]
    settings.posting.level = logging.WARNING  # our own Events say what was decided; kopf's would be noise
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    view = ClusterView()
    api = Api(await kubeconfig.load(config.kubeconfig), user_agent="kubeagora-operator")
    if config.webhook_host is not None:
        from kubeagora.operator import admission  # imported (and registered) by cli.run already

        admission.configure_admission(
            settings, config.webhook_host, config.webhook_port,
            managed_name=admission.MANAGED_CONFIGURATION if config.webhook_manage else None,
            addr=config.webhook_listen, certfile=config.webhook_cert, pkeyfile=config.webhook_key,
            authorizer=admission.subject_access_reviewer(api))
    telemetry = Telemetry()
    loop = ControlLoop(view, api, await asyncio.to_thread(config.loop.resolved), telemetry)
    stop = asyncio.Event()

    def healthy() -> bool:
        limit = HEALTHY_TICKS * config.loop.interval_s
        return loop.now() < limit or time.monotonic() - telemetry.last_tick < limit

    webhooks = asyncio.Event()
    if config.webhook_host is None:
        webhooks.set()
    else:
        from kubeagora.operator import pod_admission

        async def registered() -> None:
            await pod_admission.wait_until_registered(api, admission.MANAGED_CONFIGURATION)
            webhooks.set()

        memo.update(webhooks_task=asyncio.create_task(registered()))

    def ready() -> bool:
        return telemetry.last_tick > 0 and webhooks.is_set()

    runner = web.AppRunner(telemetry.app(healthy, ready), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, config.metrics_host, config.metrics_port).start()
    tasks = []
    leading: Callable[[], bool] | None = None
    if config.leader_election:
        identity = config.identity or f"{socket.gethostname()}-{os.getpid()}"
        elector = LeaderElector(api, LeaseSettings(config.loop.namespace, identity))
        tasks.append(asyncio.create_task(elector.run(stop)))
        leading = elector.leading
        logger.info("leader election: Lease %s/%s as %s", config.loop.namespace, LEASE_NAME, identity)
    tasks.append(asyncio.create_task(loop.run(stop, leading)))
    memo.update(view=view, api=api, stop=stop, runner=runner, tasks=tasks)
    logger.info("kubeagora operator: metrics on %s:%d, run %s", config.metrics_host, config.metrics_port,
                config.loop.run)


@kopf.on.cleanup()
async def stop(memo: Any, **_: Any) -> None:
    if "stop" not in memo:
        return
    memo["stop"].set()
    tasks: list[asyncio.Task[None]] = memo["tasks"]
    try:
        await asyncio.wait_for(asyncio.gather(*tasks), 10)
    except (TimeoutError, asyncio.CancelledError):
        for task in tasks:
            task.cancel()
    if "webhooks_task" in memo:
        memo["webhooks_task"].cancel()
    await memo["runner"].cleanup()
    await memo["api"].close()


def _feed(kind: str, event: kopf.RawEvent, memo: Any) -> None:
    view: ClusterView | None = memo.get("view")
    if view is not None:
        view.apply(kind, event.get("type"), copy.deepcopy(dict(event["object"])))


@kopf.on.event("v1", "nodes")
def nodes(event: kopf.RawEvent, memo: Any, **_: Any) -> None:
    _feed("nodes", event, memo)


@kopf.on.event("v1", "pods")
def pods(event: kopf.RawEvent, memo: Any, **_: Any) -> None:
    _feed("pods", event, memo)


@kopf.on.event("apps", "v1", "deployments")
def deployments(event: kopf.RawEvent, memo: Any, **_: Any) -> None:
    _feed("deployments", event, memo)


@kopf.on.event(GROUP, VERSION, "orchestrationintents")
def intents(event: kopf.RawEvent, memo: Any, **_: Any) -> None:
    _feed("intents", event, memo)


@kopf.on.event(GROUP, VERSION, "orchestrationpolicies")
def policies(event: kopf.RawEvent, memo: Any, **_: Any) -> None:
    _feed("policies", event, memo)


@kopf.on.event(GROUP, VERSION, "agentactions")
def agentactions(event: kopf.RawEvent, memo: Any, **_: Any) -> None:
    _feed("agentactions", event, memo)


# Other autoscalers, so an intent whose Deployment gets one later says so (AutoscalerConflict).
@kopf.on.event("autoscaling", "v2", "horizontalpodautoscalers")
def hpas(event: kopf.RawEvent, memo: Any, **_: Any) -> None:
    _feed("hpas", event, memo)


@kopf.on.event("keda.sh", "v1alpha1", "scaledobjects")  # served only where KEDA is installed
def scaledobjects(event: kopf.RawEvent, memo: Any, **_: Any) -> None:
    _feed("scaledobjects", event, memo)
