"""Credentials for our clients and for kopf, from the official loaders (``kubernetes_asyncio.config``).

Where they come from, in order: ``--kubeconfig FILE``; else ``$KUBECONFIG`` (several files
``a:b``, merged by the loader); else ``~/.kube/config``; else, inside a pod, the service account. What
the official loader does that our hand-written one did not: exec plugins (``aws eks get-token``,
``gke-gcloud-auth-plugin``, ``kubelogin``: their tokens are fetched again when they expire),
``tokenFile``, several kubeconfig files, and the service account token re-read every minute (bound
tokens rotate). With several files the loader merges clusters, contexts and users as kubectl does (the
first file naming one wins) but lets the last file's ``current-context`` win; kubectl takes the first
file that sets one, and so do we (``first_current_context``). Nothing found: ``KubeConfigError``
naming what is missing, which the CLIs print as one line with exit status 2.

``Endpoint`` is what a client needs: the server, a TLS context, and ``authorization()``, the
``Authorization`` header's current value (refreshed by the loader; None for client certificates).
"""

from __future__ import annotations

import asyncio
import datetime
import os
import ssl
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from kubernetes_asyncio.client import Configuration
from kubernetes_asyncio.config import ConfigException
from kubernetes_asyncio.config.incluster_config import InClusterConfigLoader
from kubernetes_asyncio.config.kube_config import load_kube_config

from kubeagora.kubeapi.errors import KubeConfigError

SERVICE_ACCOUNT_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")
DEFAULT_KUBECONFIG = Path("~/.kube/config")
NO_CREDENTIALS = ("no Kubernetes credentials: no --kubeconfig given, $KUBECONFIG is unset, there is no "
                  "~/.kube/config, and this is not a pod with a service account (KUBERNETES_SERVICE_HOST is unset)")


async def _no_authorization() -> str | None:
    return None


@dataclass(frozen=True)
class Endpoint:
    server: str
    ssl_context: ssl.SSLContext | None
    authorization: Callable[[], Awaitable[str | None]] = _no_authorization
    """The ``Authorization`` header's value now ("Bearer …"), or None (client certificates)."""
    source: str = ""
    """Where the credentials came from (a kubeconfig path, or "the pod's service account")."""
    ca_path: str | None = None
    cert_path: str | None = None
    key_path: str | None = None
    insecure: bool = False
    expires_at: datetime.datetime | None = None
    """When an exec plugin's token expires (kopf logs in again then); None: it does not say."""


def kubeconfig_source(path: Path | None, env: Mapping[str, str] | None = None) -> str | None:
    """The kubeconfig file(s) to load (``a:b`` for several), or None for the pod's service account;
    KubeConfigError when there are no credentials at all."""
    env = os.environ if env is None else env
    if path is not None:
        path = path.expanduser()
        if not path.is_file():
            raise KubeConfigError(f"--kubeconfig {path}: no such file")
        return str(path)
    listed = [p for p in env.get("KUBECONFIG", "").split(os.pathsep) if p]
    if listed:
        if not any(Path(p).expanduser().is_file() for p in listed):
            raise KubeConfigError(f"$KUBECONFIG names no file that exists ({env['KUBECONFIG']})")
        return os.pathsep.join(listed)
    if DEFAULT_KUBECONFIG.expanduser().is_file():
        return str(DEFAULT_KUBECONFIG.expanduser())
    if env.get("KUBERNETES_SERVICE_HOST"):
        return None
    raise KubeConfigError(NO_CREDENTIALS)


def first_current_context(source: str) -> str | None:
    """The ``current-context`` of the first file in ``source`` (``a:b``) that sets one, as kubectl
    reads several files; None when none does (or a file cannot be read: the loader then says why)."""
    for name in source.split(os.pathsep):
        path = Path(name).expanduser()
        if not name or not path.is_file():
            continue
        try:
            doc = yaml.safe_load(path.read_text())
        except (OSError, UnicodeDecodeError, yaml.YAMLError):
            return None
        context = doc.get("current-context") if isinstance(doc, dict) else None
        if context:
            return str(context)
    return None


def _ssl_context(ca: str | None, cert: str | None, key: str | None, verify: bool) -> ssl.SSLContext:
    try:
        ctx = ssl.create_default_context(cafile=ca if verify else None)
        if not verify:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        if cert and key:
            ctx.load_cert_chain(cert, key)
    except (ssl.SSLError, OSError) as e:
        raise KubeConfigError(f"the cluster's CA or the client certificate is unusable: {e}") from None
    return ctx


async def load(path: Path | None = None, env: Mapping[str, str] | None = None,
               sa_dir: Path = SERVICE_ACCOUNT_DIR) -> Endpoint:
    """The ``Endpoint`` of the kubeconfig(s) or the service account (see the module's doc)."""
    env = os.environ if env is None else env
    source = kubeconfig_source(path, env)
    configuration = Configuration()
    loader: Any = None
    try:
        if source is None:
            InClusterConfigLoader(str(sa_dir / "token"), str(sa_dir / "ca.crt"), try_refresh_token=True,
                                  environ=dict(env)).load_and_set(configuration)
        else:
            loader = await load_kube_config(config_file=source, context=first_current_context(source),
                                            client_configuration=configuration, persist_config=False)
    except (ConfigException, KeyError, TypeError, ValueError, OSError, AssertionError) as e:
        where = source or f"the pod's service account ({sa_dir})"
        reason = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise KubeConfigError(f"{where}: cannot use these credentials: {reason}") from None
    server = str(configuration.host).rstrip("/")
    if not server.startswith(("https://", "http://")):
        raise KubeConfigError(f"{source}: cluster server {server!r} is not an http(s) URL")
    refresh = _exec_refresher(loader, configuration)

    async def authorization() -> str | None:
        await refresh()
        value = await configuration.get_api_key_with_prefix("BearerToken")
        return str(value) if value else None

    tls = None if server.startswith("http://") else _ssl_context(
        configuration.ssl_ca_cert, configuration.cert_file, configuration.key_file, bool(configuration.verify_ssl))
    return Endpoint(server, tls, authorization, source or "the pod's service account", configuration.ssl_ca_cert,
                    configuration.cert_file, configuration.key_file, not configuration.verify_ssl,
                    getattr(loader, "exec_plugin_expiry", None))


def _exec_refresher(loader: Any, configuration: Any) -> Callable[[], Awaitable[None]]:
    """Fetch an exec plugin's token again once it expires (the loader knows when), as
    ``kubernetes_asyncio.config.refresh_token`` does, but on demand rather than in a loop."""
    user = getattr(loader, "_user", None)  # what refresh_token reads too
    if loader is None or user is None or "exec" not in user:
        async def nothing() -> None:
            return None

        return nothing
    lock = asyncio.Lock()

    async def refresh() -> None:
        async with lock:
            await loader.load_from_exec_plugin()  # a no-op until the token's expirationTimestamp
            configuration.api_key["BearerToken"] = loader.token

    return refresh


def check(path: Path | None) -> str:
    """Load the credentials once, in a loop of their own (for a CLI to fail early, in one line);
    returns where they came from."""
    async def probe() -> str:
        return (await load(path)).source

    return asyncio.run(probe())


def server(path: Path | None) -> str:
    """The API server's URL those credentials reach (loaded once, in a loop of their own)."""
    async def probe() -> str:
        return (await load(path)).server

    return asyncio.run(probe())
