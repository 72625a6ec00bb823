"""The extender process: the aiohttp server and the watch loops on one event loop, until SIGTERM."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal

from aiohttp import web

from kubeagora.kubeapi.client import Api
from kubeagora.kubeapi.kubeconfig import Endpoint
from kubeagora.scheduler_plugin import watch
from kubeagora.scheduler_plugin.cache import ClusterCache
from kubeagora.scheduler_plugin.server import make_app

log = logging.getLogger("kubeagora.scheduler_extender")


async def _serve(endpoint: Endpoint, host: str, port: int) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    cache = ClusterCache()
    api = Api(endpoint, user_agent="kubeagora-scheduler-extender")
    runner = web.AppRunner(make_app(cache), access_log=None)
    await runner.setup()
    tasks: list[asyncio.Task[None]] = []
    try:
        await web.TCPSite(runner, host, port).start()  # OSError (port in use) before anything is watched
        log.info("listening on http://%s:%d (API server %s)", host, port, endpoint.server)
        tasks = watch.start(api, cache)
        await stop.wait()
    finally:
        for t in tasks:
            t.cancel()
        for t in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await t
        await runner.cleanup()
        await api.close()


def serve(endpoint: Endpoint, host: str, port: int) -> None:
    """Serve until SIGINT or SIGTERM; OSError when the address cannot be bound."""
    asyncio.run(_serve(endpoint, host, port))
