"""Reaching the scheduler extender as something other than the scheduler (finding 4: plain HTTP, no
authentication). Now it serves HTTPS, and with a client CA its verbs answer only a client whose
certificate chains to that CA — the scheduler's (its ``tlsConfig.certFile``); the probes stay open.

The certificates are the devcluster's (``devcluster.pki``): its CA, the extender's serving certificate,
the scheduler's client certificate; a second PKI plays an impostor with a CA of its own.
"""

from __future__ import annotations

import asyncio
import json
import ssl
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from tests.security.extender_process import checkout_pod, synthetic_cache

from kubeagora.devcluster.cluster import free_ports
from kubeagora.devcluster.pki import SCHEDULER, Pki, ensure_pki
from kubeagora.scheduler_plugin.run import server_tls_context
from kubeagora.scheduler_plugin.server import make_app


@pytest.fixture(scope="module")
def pkis(tmp_path_factory: pytest.TempPathFactory) -> tuple[Pki, Pki]:
    return ensure_pki(tmp_path_factory.mktemp("cluster-pki")), ensure_pki(tmp_path_factory.mktemp("impostor-pki"))


def client_context(trusted_ca: Path | None, cert: Path | None = None, key: Path | None = None) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(trusted_ca)) if trusted_ca else ssl.create_default_context()
    if cert is not None and key is not None:
        ctx.load_cert_chain(cert, key)
    return ctx


Check = Callable[[str], Awaitable[None]]


def serve_tls(pki: Pki, check: Check, client_ca: bool = True) -> None:
    cache, _ = synthetic_cache(20)

    async def main() -> None:
        tls = server_tls_context(pki.extender_cert, pki.extender_key, pki.ca_cert if client_ca else None)
        runner = web.AppRunner(make_app(cache, client_auth=client_ca), access_log=None)
        await runner.setup()
        (port,) = free_ports(1)
        await web.TCPSite(runner, "127.0.0.1", port, ssl_context=tls).start()
        try:
            await check(f"127.0.0.1:{port}")
        finally:
            await runner.cleanup()

    asyncio.run(main())


BODY = json.dumps({"Pod": checkout_pod(), "NodeNames": ["edge-cpu-0-0-0"]}).encode()


async def call(url: str, ctx: ssl.SSLContext | bool, path: str = "/filter") -> tuple[int, Any]:
    async with aiohttp.ClientSession() as session:
        if path == "/healthz":
            async with session.get(url + path, ssl=ctx) as resp:
                return resp.status, await resp.text()
        async with session.post(url + path, data=BODY, ssl=ctx) as resp:
            return resp.status, await resp.json()


def test_the_scheduler_s_certificate_is_answered(pkis: tuple[Pki, Pki]) -> None:
    cluster, _ = pkis

    async def check(address: str) -> None:
        ctx = client_context(cluster.ca_cert, cluster.client_cert(SCHEDULER), cluster.client_key(SCHEDULER))
        status, answer = await call(f"https://{address}", ctx)
        assert status == 200, answer
        assert "NodeNames" in answer

    serve_tls(cluster, check)


def test_a_client_without_a_certificate_gets_403_but_the_probes_answer(pkis: tuple[Pki, Pki]) -> None:
    cluster, _ = pkis

    async def check(address: str) -> None:
        status, answer = await call(f"https://{address}", client_context(cluster.ca_cert))
        assert status == 403
        assert "client certificate" in answer["error"]
        assert await call(f"https://{address}", client_context(cluster.ca_cert), "/healthz") == (200, "ok")

    serve_tls(cluster, check)


@pytest.mark.parametrize(("server", "client", "scheme", "refusal"), [
    ("cluster", "impostor", "https", aiohttp.ClientError),  # a client certificate from another CA
    ("cluster", None, "http", aiohttp.ClientError),  # plain HTTP
    # the other half of TLS: the scheduler, trusting only the cluster's CA, refuses an impostor's extender
    ("impostor", "cluster", "https", aiohttp.ClientConnectorCertificateError),
], ids=["client-from-another-ca", "plain-http", "server-from-another-ca"])
def test_what_fails_the_connection(pkis: tuple[Pki, Pki], server: str, client: str | None, scheme: str,
                                   refusal: type[Exception]) -> None:
    by_name = dict(zip(("cluster", "impostor"), pkis, strict=True))
    cluster = by_name["cluster"]

    async def check(address: str) -> None:
        ctx: ssl.SSLContext | bool = False
        if client is not None:
            who = by_name[client]
            ctx = client_context(cluster.ca_cert, who.client_cert(SCHEDULER), who.client_key(SCHEDULER))
        with pytest.raises(refusal):
            await call(f"{scheme}://{address}", ctx)

    serve_tls(by_name[server], check)


def test_without_a_client_ca_any_tls_client_is_answered(pkis: tuple[Pki, Pki]) -> None:
    """Server-authenticated TLS only (a scheduler with no client certificate file, as kubeadm's): the
    NetworkPolicy is then what keeps other callers out (manifests/scheduler-extender.yaml)."""
    cluster, _ = pkis

    async def check(address: str) -> None:
        status, _ = await call(f"https://{address}", client_context(cluster.ca_cert))
        assert status == 200

    serve_tls(cluster, check, client_ca=False)
