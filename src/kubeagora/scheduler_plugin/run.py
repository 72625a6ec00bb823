"""The extender process: the aiohttp server and the watch loops on one event loop, the verbs in a child
process (``verbs.ProcessVerbs``) fed the same watch events, until SIGTERM — or until that child dies,
which ends the extender with an error so that its pod is restarted."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import ssl
from pathlib import Path

from aiohttp import web

from kubeagora.kubeapi import kubeconfig
from kubeagora.kubeapi.client import Api
from kubeagora.scheduler_plugin import watch
from kubeagora.scheduler_plugin.cache import ClusterCache
from kubeagora.scheduler_plugin.server import MAX_BODY_BYTES, make_app
from kubeagora.scheduler_plugin.verbs import ProcessVerbs

log = logging.getLogger("kubeagora.scheduler_extender")
WORKER_CHECK_S = 1.0


def server_tls_context(cert_file: Path, key_file: Path, client_ca_file: Path | None = None) -> ssl.SSLContext:
    """TLS 1.2+ with the extender's serving certificate. With ``client_ca_file`` a client may present a
    certificate, which must then chain to that CA (the handshake fails otherwise); the server refuses
    the verbs to a client that presented none, while the probes and /metrics stay open to the kubelet
    and Prometheus. ssl.SSLError or OSError for unreadable or mismatched files."""
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(cert_file, key_file)
    if client_ca_file is not None:
        ctx.load_verify_locations(cafile=client_ca_file)
        ctx.verify_mode = ssl.CERT_OPTIONAL
    return ctx


class VerbsWorkerDied(RuntimeError):
    """The verbs' child process ended; the extender cannot answer the scheduler any more."""


async def _watch_worker(verbs: ProcessVerbs, stop: asyncio.Event) -> None:
    while not stop.is_set():
        if verbs.exited():
            stop.set()
            raise VerbsWorkerDied("the verbs' worker process exited")
        await asyncio.sleep(WORKER_CHECK_S)


async def _serve(kubeconfig_path: Path | None, host: str, port: int, tls: ssl.SSLContext | None,
                 max_body_bytes: int, client_auth: bool) -> None:
    endpoint = await kubeconfig.load(kubeconfig_path)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    cache = ClusterCache()
    verbs = ProcessVerbs()
    api = Api(endpoint, user_agent="kubeagora-scheduler-extender")
    runner = web.AppRunner(make_app(cache, verbs, max_body_bytes=max_body_bytes, client_auth=client_auth),
                           access_log=None)
    await runner.setup()
    tasks: list[asyncio.Task[None]] = []
    try:
        await web.TCPSite(runner, host, port, ssl_context=tls).start()  # OSError (port in use) first
        log.info("listening on %s://%s:%d (API server %s)%s", "https" if tls else "http", host, port,
                 endpoint.server, ", verbs for verified client certificates only" if client_auth else "")
        tasks = [*watch.start(api, watch.Replicated(cache, verbs)),
                 asyncio.create_task(_watch_worker(verbs, stop), name="verbs-worker")]
        await stop.wait()
        for t in tasks:
            if t.done() and not t.cancelled() and (error := t.exception()) is not None:
                raise error
    finally:
        for t in tasks:
            t.cancel()
        for t in tasks:
            with contextlib.suppress(asyncio.CancelledError, VerbsWorkerDied):
                await t
        await runner.cleanup()
        await api.close()


def serve(kubeconfig_path: Path | None, host: str, port: int, tls: ssl.SSLContext | None = None,
          max_body_bytes: int = MAX_BODY_BYTES, client_auth: bool = False) -> None:
    """Serve until SIGINT or SIGTERM; OSError when the address cannot be bound, KubeConfigError when
    the credentials cannot be used, VerbsWorkerDied when the verbs' process ends."""
    asyncio.run(_serve(kubeconfig_path, host, port, tls, max_body_bytes, client_auth))
