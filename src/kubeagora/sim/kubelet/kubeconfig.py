"""A kubeconfig → the API server's URL, a TLS context with the client certificate, and a token.

Only what the mock kubelet needs: the current context's cluster (``server``,
``certificate-authority[-data]``, ``insecure-skip-tls-verify``) and user
(``client-certificate[-data]`` + ``client-key[-data]``, or ``token``).
"""

from __future__ import annotations

import base64
import os
import ssl
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from kubeagora.sim.kubelet.errors import KubeletError


@dataclass(frozen=True)
class Endpoint:
    server: str
    ssl_context: ssl.SSLContext | None
    token: str | None = None


def _named(items: Any, name: str, what: str, path: Path) -> dict[str, Any]:
    for item in items or ():
        if isinstance(item, dict) and item.get("name") == name and isinstance(item.get(what), dict):
            return dict(item[what])
    raise KubeletError(f"{path}: no {what} named {name!r}")


def _data(entry: dict[str, Any], key: str, base: Path) -> bytes | None:
    """The bytes of ``key-data`` (base64) or of the file ``key`` names (relative to the kubeconfig)."""
    if entry.get(f"{key}-data"):
        try:
            return base64.b64decode(entry[f"{key}-data"])
        except ValueError:
            raise KubeletError(f"field {key}-data is not valid base64") from None
    if entry.get(key):
        path = Path(entry[key])
        path = path if path.is_absolute() else base / path
        try:
            return path.read_bytes()
        except OSError as e:
            raise KubeletError(f"{path}: cannot read {key}: {e.strerror}") from None
    return None


def load(path: Path) -> Endpoint:
    try:
        cfg = yaml.safe_load(path.read_text())
    except OSError as e:
        raise KubeletError(f"{path}: cannot read kubeconfig: {e.strerror}") from None
    except yaml.YAMLError as e:
        raise KubeletError(f"{path}: malformed kubeconfig YAML: {e}") from None
    if not isinstance(cfg, dict) or not cfg.get("current-context"):
        raise KubeletError(f"{path}: not a kubeconfig with a current-context")
    context = _named(cfg.get("contexts"), cfg["current-context"], "context", path)
    cluster = _named(cfg.get("clusters"), str(context.get("cluster")), "cluster", path)
    user = _named(cfg.get("users"), str(context.get("user")), "user", path) if context.get("user") else {}
    server = str(cluster.get("server") or "").rstrip("/")
    if not server.startswith(("https://", "http://")):
        raise KubeletError(f"{path}: cluster server {server!r} is not an http(s) URL")
    if server.startswith("http://"):
        return Endpoint(server, None, user.get("token"))
    base = path.parent
    ctx = ssl.create_default_context()
    if cluster.get("insecure-skip-tls-verify"):
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    else:
        ca = _data(cluster, "certificate-authority", base)
        if ca is not None:
            ctx.load_verify_locations(cadata=ca.decode())
    cert, key = _data(user, "client-certificate", base), _data(user, "client-key", base)
    if cert is not None and key is not None:
        _load_chain(ctx, cert, key)
    elif not user.get("token"):
        raise KubeletError(f"{path}: user {context.get('user')!r} has neither a client certificate nor a token")
    return Endpoint(server, ctx, user.get("token"))


def _load_chain(ctx: ssl.SSLContext, cert: bytes, key: bytes) -> None:
    """``load_cert_chain`` reads files only: write both to a private temporary file, load, delete."""
    fd, name = tempfile.mkstemp(prefix="kubeagora-client-", suffix=".pem")
    try:
        os.write(fd, cert + b"\n" + key)
        os.close(fd)
        ctx.load_cert_chain(name)
    except ssl.SSLError as e:
        raise KubeletError(f"client certificate or key unusable: {e}") from None
    finally:
        os.unlink(name)
