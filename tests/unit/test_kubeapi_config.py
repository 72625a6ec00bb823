"""Credentials through the official loaders: kubeconfigs (several, exec plugins), the service account,
none at all; and the REST client's retries on 429 and 5xx."""

from __future__ import annotations

import asyncio
import datetime
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from aiohttp import web
from typer.testing import CliRunner

from kubeagora.kubeapi import kubeconfig
from kubeagora.kubeapi.client import MAX_BACKOFF_S, Api, ApiError, retry_delay_s
from kubeagora.kubeapi.errors import KubeConfigError
from kubeagora.kubeapi.kubeconfig import Endpoint, kubeconfig_source, load


def _ca(tmp: Path) -> Path:
    key, crt = tmp / "ca.key", tmp / "ca.crt"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(crt),
                    "-days", "1", "-subj", "/CN=test-ca"], check=True, capture_output=True)
    return crt


def pod_env(host: str = "10.96.0.1") -> dict[str, str]:
    return {"KUBERNETES_SERVICE_HOST": host, "KUBERNETES_SERVICE_PORT": "443"}


@pytest.fixture
def no_home_kubeconfig(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    return home


def test_in_cluster_reads_the_mounted_token_and_follows_its_rotation(
        tmp_path: Path, no_home_kubeconfig: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from kubernetes_asyncio.config import incluster_config

    monkeypatch.setattr(incluster_config, "TOKEN_REFRESH_PERIOD", datetime.timedelta(0))  # re-read at once
    _ca(tmp_path)
    (tmp_path / "token").write_text("first-token")

    async def scenario() -> tuple[Endpoint, str | None, str | None]:
        ep = await load(None, pod_env(), tmp_path)
        before = await ep.authorization()
        (tmp_path / "token").write_text("rotated-token")  # the kubelet rotates bound tokens
        return ep, before, await ep.authorization()

    ep, before, after = asyncio.run(scenario())
    assert ep.server == "https://10.96.0.1:443"
    assert ep.ssl_context is not None
    assert (before, after) == ("Bearer first-token", "Bearer rotated-token")
    assert ep.source == "the pod's service account"


def test_in_cluster_brackets_an_ipv6_host(tmp_path: Path, no_home_kubeconfig: Path) -> None:
    _ca(tmp_path)
    (tmp_path / "token").write_text("t")
    ep = asyncio.run(load(None, pod_env("fd00::1"), tmp_path))
    assert ep.server == "https://[fd00::1]:443"


def test_no_credentials_at_all_is_one_line_naming_what_is_missing(no_home_kubeconfig: Path) -> None:
    with pytest.raises(KubeConfigError) as err:
        kubeconfig_source(None, {})
    message = str(err.value)
    assert "\n" not in message
    for what in ("--kubeconfig", "$KUBECONFIG", "~/.kube/config", "KUBERNETES_SERVICE_HOST"):
        assert what in message


def test_a_pod_without_its_token_says_so(tmp_path: Path, no_home_kubeconfig: Path) -> None:
    with pytest.raises(KubeConfigError, match="service account"):
        asyncio.run(load(None, pod_env(), tmp_path))


def kubeconfig_doc(server: str, user: dict[str, Any] | None = None, *, clusters: bool = True,
                   users: bool = True) -> dict[str, Any]:
    doc: dict[str, Any] = {"apiVersion": "v1", "kind": "Config", "current-context": "c",
                           "contexts": [{"name": "c", "context": {"cluster": "k", "user": "u"}}]}
    if clusters:
        doc["clusters"] = [{"name": "k", "cluster": {"server": server, "insecure-skip-tls-verify": True}}]
    if users:
        doc["users"] = [{"name": "u", "user": user or {"token": "static-token"}}]
    return doc


def test_several_kubeconfig_files_are_merged(tmp_path: Path, no_home_kubeconfig: Path) -> None:
    a, b = tmp_path / "a.yaml", tmp_path / "b.yaml"
    a.write_text(yaml.safe_dump(kubeconfig_doc("https://api.example:6443", users=False)))
    b.write_text(yaml.safe_dump({"apiVersion": "v1", "kind": "Config",
                                 "users": [{"name": "u", "user": {"token": "from-b"}}]}))
    env = {"KUBECONFIG": f"{a}:{tmp_path / 'missing.yaml'}:{b}"}
    assert kubeconfig_source(None, env) == f"{a}:{tmp_path / 'missing.yaml'}:{b}"
    ep = asyncio.run(load(None, env))
    assert ep.server == "https://api.example:6443"
    assert asyncio.run(ep.authorization()) == "Bearer from-b"
    assert ep.insecure


def test_with_several_files_the_first_current_context_wins_as_with_kubectl(tmp_path: Path,
                                                                          no_home_kubeconfig: Path) -> None:
    """kubectl: the first file to set current-context wins (the official loader lets the last one win)."""
    def doc(context: str, server: str) -> dict[str, Any]:
        return {"apiVersion": "v1", "kind": "Config", "current-context": context,
                "contexts": [{"name": context, "context": {"cluster": context, "user": context}}],
                "clusters": [{"name": context, "cluster": {"server": server, "insecure-skip-tls-verify": True}}],
                "users": [{"name": context, "user": {"token": f"token-{context}"}}]}

    none, first, second = tmp_path / "none.yaml", tmp_path / "first.yaml", tmp_path / "second.yaml"
    none.write_text(yaml.safe_dump({"apiVersion": "v1", "kind": "Config", "current-context": "",
                                    "preferences": {}}))
    first.write_text(yaml.safe_dump(doc("prod", "https://prod.example:6443")))
    second.write_text(yaml.safe_dump(doc("dev", "https://dev.example:6443")))
    ep = asyncio.run(load(None, {"KUBECONFIG": f"{none}:{first}:{second}"}))
    assert ep.server == "https://prod.example:6443"
    assert asyncio.run(ep.authorization()) == "Bearer token-prod"
    ep = asyncio.run(load(None, {"KUBECONFIG": f"{second}:{first}"}))
    assert ep.server == "https://dev.example:6443"


def test_a_kubeconfig_naming_no_existing_file_is_refused(tmp_path: Path, no_home_kubeconfig: Path) -> None:
    with pytest.raises(KubeConfigError, match="names no file that exists"):
        kubeconfig_source(None, {"KUBECONFIG": f"{tmp_path / 'x'}:{tmp_path / 'y'}"})
    with pytest.raises(KubeConfigError, match="no such file"):
        kubeconfig_source(tmp_path / "nope.yaml", {})


def test_an_exec_plugin_user_gets_its_token_and_a_new_one_once_it_expires(tmp_path: Path,
                                                                         no_home_kubeconfig: Path) -> None:
    """As EKS's ``aws eks get-token`` or GKE's ``gke-gcloud-auth-plugin`` are configured."""
    calls = tmp_path / "calls"
    plugin = tmp_path / "plugin.py"
    plugin.write_text(
        "import datetime, json, pathlib\n"
        f"calls = pathlib.Path({str(calls)!r})\n"
        "n = int(calls.read_text()) + 1 if calls.exists() else 1\n"
        "calls.write_text(str(n))\n"
        "expires = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(minutes=6 if n > 1 else -1)\n"
        "print(json.dumps({'apiVersion': 'client.authentication.k8s.io/v1beta1', 'kind': 'ExecCredential',\n"
        "                  'status': {'token': f'exec-token-{n}',\n"
        "                             'expirationTimestamp': expires.strftime('%Y-%m-%dT%H:%M:%SZ')}}))\n")
    user = {"exec": {"apiVersion": "client.authentication.k8s.io/v1beta1", "command": sys.executable,
                     "args": [str(plugin)], "interactiveMode": "Never"}}
    path = tmp_path / "eks.yaml"
    path.write_text(yaml.safe_dump(kubeconfig_doc("https://eks.example", user)))

    async def scenario() -> tuple[Endpoint, list[str | None]]:
        ep = await load(path, {})
        return ep, [await ep.authorization(), await ep.authorization()]

    ep, (first, second) = asyncio.run(scenario())
    # the token fetched when loading had already expired: the first request fetches a new one, once
    assert ep.expires_at is not None
    assert ep.expires_at < datetime.datetime.now(datetime.UTC)
    assert first == second == "Bearer exec-token-2"
    assert calls.read_text() == "2"


def test_an_unusable_kubeconfig_is_one_line(tmp_path: Path, no_home_kubeconfig: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump({"apiVersion": "v1", "current-context": "nope", "contexts": []}))
    with pytest.raises(KubeConfigError, match=f"{path}: cannot use these credentials"):
        asyncio.run(load(path, {}))


def test_operator_run_without_credentials_exits_2_with_one_line(no_home_kubeconfig: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("kopf")
    from kubeagora.cli import app

    monkeypatch.delenv("KUBECONFIG", raising=False)
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    result = CliRunner().invoke(app, ["operator", "run"])
    assert result.exit_code == 2
    assert "Traceback" not in result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1
    assert lines[0].startswith("error: no Kubernetes credentials")


# --- retries ----------------------------------------------------------------------------------------


def test_retry_delays_grow_honour_retry_after_and_stay_bounded() -> None:
    import random

    rng = random.Random(1)
    delays = [retry_delay_s(k, None, rng) for k in range(8)]
    assert 0.1 < delays[0] < 0.4
    assert delays[3] > delays[0]
    assert max(delays) <= MAX_BACKOFF_S
    assert retry_delay_s(0, "2") == 2.0
    assert retry_delay_s(0, "3600") == MAX_BACKOFF_S
    assert 0.1 < retry_delay_s(0, "Wed, 21 Oct 2015 07:28:00 GMT", rng) < 0.4  # a date: plain backoff


def test_the_client_retries_throttling_and_server_errors_but_not_what_the_caller_expects(
        monkeypatch: pytest.MonkeyPatch) -> None:
    import kubeagora.kubeapi.client as client

    monkeypatch.setattr(client, "BACKOFF_S", 0.01)
    answers: list[int] = []

    async def scenario() -> tuple[int, list[int], int, str]:
        queue = [429, 503, 201]
        seen: list[int] = []

        async def handler(request: web.Request) -> web.Response:
            status = queue.pop(0) if queue else 201
            seen.append(status)
            assert request.headers.get("Authorization") == "Bearer t"
            return web.json_response({"kind": "Status", "message": f"said {status}"}, status=status,
                                     headers={"Retry-After": "0"} if status == 429 else None)

        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", handler)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]

        async def token() -> str:
            return "Bearer t"

        api = Api(Endpoint(f"http://127.0.0.1:{port}", None, token))
        try:
            status, _ = await api.create("/api/v1/namespaces/x/pods", {"kind": "Pod"})
            answers.extend(seen)
            seen.clear()
            queue[:] = [429]
            evicted, _ = await api.create("/api/v1/namespaces/x/pods/p/eviction", {}, ok=(429,))  # a PDB's "not now"
            tries_evict = len(seen)
            queue[:] = [500] * 10
            try:
                await api.get("/api/v1/nodes")
                failed = ""
            except ApiError as e:
                failed = str(e)
            return status, answers, evicted * 100 + tries_evict, failed
        finally:
            await api.close()
            await runner.cleanup()

    status, seen, evict, failed = asyncio.run(scenario())
    assert status == 201
    assert seen == [429, 503, 201]
    assert evict == 429 * 100 + 1  # answered, not retried
    assert "HTTP 500" in failed  # given up after the retries


def test_the_endpoint_document_names_its_source(tmp_path: Path, no_home_kubeconfig: Path) -> None:
    path = tmp_path / "plain.yaml"
    path.write_text(json.dumps(kubeconfig_doc("http://127.0.0.1:8080")))
    ep = asyncio.run(load(path, {}))
    assert (ep.server, ep.ssl_context, ep.source) == ("http://127.0.0.1:8080", None, str(path))
    assert kubeconfig.check(path) == str(path)
