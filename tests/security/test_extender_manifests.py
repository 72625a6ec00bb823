"""The extender as installed: reachable only by the scheduler (and Prometheus), over HTTPS, with the
scheduler configured to verify it — read from the files, no cluster needed. On today's main the
extender served plain HTTP with no NetworkPolicy: any pod could call /filter and /prioritize."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from kubeagora.devcluster.cluster import scheduler_config_dict
from kubeagora.devcluster.pki import SCHEDULER, Pki
from kubeagora.scheduler_plugin import cli as extender_cli
from kubeagora.scheduler_plugin.server import MAX_BODY_BYTES

ROOT = Path(__file__).resolve().parents[2]
MANIFEST = ROOT / "manifests" / "scheduler-extender.yaml"
NAME = "kubeagora-scheduler-extender"


def objects() -> dict[str, dict[str, Any]]:
    return {doc["kind"]: doc for doc in yaml.safe_load_all(MANIFEST.read_text()) if doc}


def container() -> dict[str, Any]:
    (c,) = objects()["Deployment"]["spec"]["template"]["spec"]["containers"]
    return dict(c)


def test_only_the_scheduler_and_prometheus_may_reach_the_extender() -> None:
    policy = objects()["NetworkPolicy"]
    pod_labels = objects()["Deployment"]["spec"]["template"]["metadata"]["labels"]
    assert policy["metadata"]["namespace"] == objects()["Deployment"]["metadata"]["namespace"]
    assert policy["spec"]["podSelector"]["matchLabels"].items() <= pod_labels.items()
    assert policy["spec"]["policyTypes"] == ["Ingress"]
    ports = {p["name"] for p in container()["ports"]}
    sources = []
    for rule in policy["spec"]["ingress"]:
        assert rule.get("from"), "a rule without 'from' admits every pod"
        assert {p["port"] for p in rule["ports"]} <= ports
        sources += rule["from"]
    selected = [s for s in sources if "podSelector" in s]
    assert {tuple(sorted(s["podSelector"]["matchLabels"].items())) for s in selected} == {
        (("component", "kube-scheduler"),), (("app.kubernetes.io/name", "prometheus"),)}
    scheduler = next(s for s in selected if s["podSelector"]["matchLabels"] == {"component": "kube-scheduler"})
    assert scheduler["namespaceSelector"]["matchLabels"] == {"kubernetes.io/metadata.name": "kube-system"}
    blocks = [s["ipBlock"]["cidr"] for s in sources if "ipBlock" in s]
    assert blocks == ["172.18.0.0/16"], "only the (kind) control-plane nodes' network, for a host-network scheduler"


def test_the_extender_serves_https_from_its_secret_and_is_probed_over_it() -> None:
    c = container()
    args = c["args"]
    mounts = {m["name"]: m["mountPath"] for m in c["volumeMounts"]}
    volumes = {v["name"]: v for v in objects()["Deployment"]["spec"]["template"]["spec"]["volumes"]}
    cert, key = args[args.index("--tls-cert-file") + 1], args[args.index("--tls-key-file") + 1]
    (tls_volume,) = [name for name, path in mounts.items() if cert.startswith(path + "/")]
    assert key.startswith(mounts[tls_volume] + "/")
    assert volumes[tls_volume]["secret"]["secretName"] == f"{NAME}-tls"
    assert c["readinessProbe"]["httpGet"]["scheme"] == "HTTPS"
    annotations = objects()["Deployment"]["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/scheme"] == "https"


def test_every_scheduler_config_calls_the_extender_over_verified_https() -> None:
    configs = [p for p in (ROOT / "manifests").rglob("*.yaml")
               if "\nkind: KubeSchedulerConfiguration\n" in p.read_text()]
    assert len(configs) >= 3
    for path in configs:
        for extender in yaml.safe_load(path.read_text())["extenders"]:
            assert extender["urlPrefix"].startswith("https://"), path.name
            assert extender["enableHTTPS"] is True, path.name
            assert not (extender.get("tlsConfig") or {}).get("insecure"), path.name


def test_the_devcluster_gives_the_scheduler_its_ca_and_client_certificate(tmp_path: Path) -> None:
    base = yaml.safe_load((ROOT / "manifests" / "devcluster" / "scheduler-config.yaml").read_text())
    pki = Pki(tmp_path / "pki")
    cfg = scheduler_config_dict(tmp_path / "kube-scheduler.kubeconfig", base, pki)
    (extender,) = cfg["extenders"]
    assert extender["tlsConfig"] == {"caFile": str(pki.ca_cert), "certFile": str(pki.client_cert(SCHEDULER)),
                                     "keyFile": str(pki.client_key(SCHEDULER))}
    own = {**base["extenders"][0], "tlsConfig": {"caFile": "/mine.crt"}}
    (kept,) = scheduler_config_dict(tmp_path / "k", {**base, "extenders": [own]}, pki)["extenders"]
    assert kept["tlsConfig"] == {"caFile": "/mine.crt"}  # a user's own tlsConfig is left alone


def test_the_cli_default_body_limit_is_the_sized_one() -> None:
    import inspect

    default = inspect.signature(extender_cli.scheduler_extender).parameters["max_body_bytes"].default
    assert default == MAX_BODY_BYTES
