"""The Helm chart's extender: HTTPS with certificates the chart makes, the second scheduler's client
certificate required, a NetworkPolicy — and the rendered certificates actually complete a handshake
with the extender as the scheduler (and fail without the client certificate)."""

from __future__ import annotations

import asyncio
import base64
import json
import ssl
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from tests.security.extender_process import checkout_pod, synthetic_cache
from tests.unit.test_helm_chart import find, helm, render  # noqa: F401  (helm is a fixture)

from kubeagora.devcluster.cluster import free_ports
from kubeagora.scheduler_plugin.run import server_tls_context
from kubeagora.scheduler_plugin.server import make_app

NAMESPACE = "ka"
SERVICE = f"kubeagora-scheduler-extender.{NAMESPACE}.svc"


def secret_files(objects: list[dict[str, Any]], name: str, directory: Path) -> dict[str, Path]:
    directory.mkdir(parents=True, exist_ok=True)
    out = {}
    for key, value in find(objects, "Secret", name)["data"].items():
        out[key] = directory / key
        out[key].write_bytes(base64.b64decode(value))
    return out


def extender_args(objects: list[dict[str, Any]]) -> list[str]:
    (container,) = find(objects, "Deployment", "kubeagora-scheduler-extender")["spec"]["template"]["spec"]["containers"]
    return list(container["args"])


def test_the_chart_s_certificates_let_the_scheduler_in_and_no_one_else(helm: Path, tmp_path: Path) -> None:  # noqa: F811
    objects = render(helm, namespace=NAMESPACE)
    server = secret_files(objects, "kubeagora-scheduler-extender-tls", tmp_path / "server")
    client = secret_files(objects, "kubeagora-scheduler-client-tls", tmp_path / "client")
    args = extender_args(objects)
    assert args[args.index("--client-ca-file") + 1] == "/etc/kubeagora-tls/ca.crt"
    cache, _ = synthetic_cache(20)
    body = json.dumps({"Pod": checkout_pod(), "NodeNames": ["edge-cpu-0-0-0"]}).encode()

    async def main() -> None:
        tls = server_tls_context(server["tls.crt"], server["tls.key"], server["ca.crt"])
        runner = web.AppRunner(make_app(cache, client_auth=True), access_log=None)
        await runner.setup()
        (port,) = free_ports(1)
        await web.TCPSite(runner, "127.0.0.1", port, ssl_context=tls).start()
        as_scheduler = ssl.create_default_context(cafile=str(client["ca.crt"]))
        as_scheduler.load_cert_chain(client["tls.crt"], client["tls.key"])
        stranger = ssl.create_default_context(cafile=str(client["ca.crt"]))
        try:
            async with aiohttp.ClientSession() as session:
                for ctx, expected in ((as_scheduler, 200), (stranger, 403)):
                    # the certificate names the Service, as the scheduler reaches it; here it is on 127.0.0.1
                    async with session.post(f"https://127.0.0.1:{port}/filter", data=body, ssl=ctx,
                                            server_hostname=SERVICE) as resp:
                        assert resp.status == expected, await resp.text()
        finally:
            await runner.cleanup()

    asyncio.run(main())


def test_the_second_scheduler_trusts_the_release_ca_and_presents_its_certificate(helm: Path) -> None:  # noqa: F811
    objects = render(helm, namespace=NAMESPACE)
    pod = find(objects, "Deployment", "kubeagora-scheduler")["spec"]["template"]["spec"]
    mounts = {m["name"]: m["mountPath"] for m in pod["containers"][0]["volumeMounts"]}
    secrets = {v["name"]: v["secret"]["secretName"] for v in pod["volumes"] if "secret" in v}
    assert secrets == {"client-tls": "kubeagora-scheduler-client-tls"}
    config = find(objects, "ConfigMap", "kubeagora-scheduler-config")["data"]["scheduler-config.yaml"]
    assert f"caFile: {mounts['client-tls']}/ca.crt" in config
    assert f"certFile: {mounts['client-tls']}/tls.crt" in config


def test_the_network_policy_admits_only_the_schedulers_and_prometheus(helm: Path) -> None:  # noqa: F811
    second = find(render(helm, namespace=NAMESPACE), "NetworkPolicy", "kubeagora-scheduler-extender")
    (rule,) = second["spec"]["ingress"]
    selectors = [peer["podSelector"]["matchLabels"] for peer in rule["from"] if "podSelector" in peer]
    assert {"app.kubernetes.io/name": "kubeagora-scheduler"} in selectors
    assert {"app.kubernetes.io/name": "prometheus"} in selectors
    assert not [peer for peer in rule["from"] if "ipBlock" in peer]
    only = render(helm, "schedulerMode=extender-only", "extender.networkPolicy.schedulerCIDRs={10.0.0.0/24}",
                  "prometheus.enabled=false", "operator.prometheusUrl=http://prom:9090")
    (rule,) = find(only, "NetworkPolicy", "kubeagora-scheduler-extender")["spec"]["ingress"]
    assert [peer["ipBlock"]["cidr"] for peer in rule["from"] if "ipBlock" in peer] == ["10.0.0.0/24"]
    assert {"app.kubernetes.io/name": "kubeagora-scheduler"} not in [
        peer["podSelector"]["matchLabels"] for peer in rule["from"] if "podSelector" in peer]
    assert "--client-ca-file" not in extender_args(only)  # the cluster's own scheduler has no client certificate
    assert not [o for o in render(helm, "extender.networkPolicy.enabled=false") if o["kind"] == "NetworkPolicy"]
