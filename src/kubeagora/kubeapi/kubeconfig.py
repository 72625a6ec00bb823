"""A kubeconfig → the API server's URL, a TLS context with the client certificate, and a token.

What our clients need: the current context's cluster (``server``,
``certificate-authority[-data]``, ``insecure-skip-tls-verify``) and user
(``client-certificate[-data]`` + ``client-key[-data]``, or ``token``); or, inside a pod, the service
account (``in_cluster``).
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

from kubeagora.kubeapi.errors import KubeConfigError


@dataclass(frozen=True)
class Endpoint:
    server: str
    ssl_context: ssl.SSLContext | None
    token: str | None = None


def _named(items: Any, name: str, what: str, path: Path) -> dict[str, Any]:
    for item in items or ():
        if isinstance(item, dict) and item.get("name") == name and isinstance(item.get(what), dict):
            return dict(item[what])
    raise KubeConfigError(f"{path}: no {what} named {name!r}")


def _data(entry: dict[str, Any], key: str, base: Path) -> bytes | None:
    """The bytes of ``key-data`` (base64) or of the file ``key`` names (relative to the kubeconfig)."""
    if entry.get(f"{key}-data"):
        try:
            return base64.b64decode(entry[f"{key}-data"])
        except ValueError:
            raise KubeConfigError(f"field {key}-data is not valid base64") from None
    if entry.get(key):
        path = Path(entry[key])
        path = path if path.is_absolute() else base / path
        try:
            return path.read_bytes()
        except OSError as e:
            raise KubeConfigError(f"{path}: cannot read {key}: {e.strerror}") from None
    return None


@dataclass(frozen=True)
class Credentials:
    """The raw pieces of a kubeconfig's current context (or a service account), for any client."""

    server: str
    ca_pem: bytes | None = None
    cert_pem: bytes | None = None
    key_pem: bytes | None = None
    token: str | None = None
    insecure: bool = False


def credentials(path: Path) -> Credentials:
    try:
        cfg = yaml.safe_load(path.read_text())
    except OSError as e:
        raise KubeConfigError(f"{path}: cannot read kubeconfig: {e.strerror}") from None
    except yaml.YAMLError as e:
        raise KubeConfigError(f"{path}: malformed kubeconfig YAML: {e}") from None
    if not isinstance(cfg, dict) or not cfg.get("current-context"):
        raise KubeConfigError(f"{path}: not a kubeconfig with a current-context")
    context = _named(cfg.get("contexts"), cfg["current-context"], "context", path)
    cluster = _named(cfg.get("clusters"), str(context.get("cluster")), "cluster", path)
    user = _named(cfg.get("users"), str(context.get("user")), "user", path) if context.get("user") else {}
    server = str(cluster.get("server") or "").rstrip("/")
    if not server.startswith(("https://", "http://")):
        raise KubeConfigError(f"{path}: cluster server {server!r} is not an http(s) URL")
    if server.startswith("http://"):
        return Credentials(server, token=user.get("token"))
    base = path.parent
    insecure = bool(cluster.get("insecure-skip-tls-verify"))
    ca = None if insecure else _data(cluster, "certificate-authority", base)
    cert, key = _data(user, "client-certificate", base), _data(user, "client-key", base)
    if (cert is None or key is None) and not user.get("token"):
        raise KubeConfigError(f"{path}: user {context.get('user')!r} has neither a client certificate nor a token")
    return Credentials(server, ca, cert, key, user.get("token"), insecure)


def endpoint(creds: Credentials) -> Endpoint:
    if creds.server.startswith("http://"):
        return Endpoint(creds.server, None, creds.token)
    ctx = ssl.create_default_context()
    if creds.insecure:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    elif creds.ca_pem is not None:
        ctx.load_verify_locations(cadata=creds.ca_pem.decode())
    if creds.cert_pem is not None and creds.key_pem is not None:
        _load_chain(ctx, creds.cert_pem, creds.key_pem)
    return Endpoint(creds.server, ctx, creds.token)


def load(path: Path) -> Endpoint:
    return endpoint(credentials(path))


def _load_chain(ctx: ssl.SSLContext, cert: bytes, key: bytes) -> None:
    """``load_cert_chain`` reads files only: write both to a private temporary file, load, delete."""
    fd, name = tempfile.mkstemp(prefix="kubeagora-client-", suffix=".pem")
    try:
        os.write(fd, cert + b"\n" + key)
        os.close(fd)
        ctx.load_cert_chain(name)
    except ssl.SSLError as e:
        raise KubeConfigError(f"client certificate or key unusable: {e}") from None
    finally:
        os.unlink(name)


SERVICE_ACCOUNT_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")


def in_cluster_credentials(sa_dir: Path = SERVICE_ACCOUNT_DIR, env: dict[str, str] | None = None) -> Credentials:
    """The API server as a pod sees it: KUBERNETES_SERVICE_HOST/PORT, the mounted token and CA."""
    env = dict(os.environ) if env is None else env
    host, port = env.get("KUBERNETES_SERVICE_HOST"), env.get("KUBERNETES_SERVICE_PORT")
    if not host or not port:
        raise KubeConfigError("not in a pod (KUBERNETES_SERVICE_HOST is unset): pass --kubeconfig")
    try:
        token = (sa_dir / "token").read_text().strip()
        ca = (sa_dir / "ca.crt").read_bytes()
    except OSError as e:
        raise KubeConfigError(f"{sa_dir}: cannot read the service account ({e.strerror})") from None
    host = f"[{host}]" if ":" in host else host
    return Credentials(f"https://{host}:{port}", ca, token=token)


def in_cluster(sa_dir: Path = SERVICE_ACCOUNT_DIR, env: dict[str, str] | None = None) -> Endpoint:
    return endpoint(in_cluster_credentials(sa_dir, env))


def credentials_or_in_cluster(path: Path | None) -> Credentials:
    """A kubeconfig when one is given (or exists at the default place), else the service account."""
    if path is not None:
        return credentials(path.expanduser())
    default = Path(os.environ.get("KUBECONFIG", "~/.kube/config")).expanduser()
    if default.is_file():
        return credentials(default)
    return in_cluster_credentials()


def load_or_in_cluster(path: Path | None) -> Endpoint:
    return endpoint(credentials_or_in_cluster(path))
