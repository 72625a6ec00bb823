"""The Helm chart (charts/kubeagora) rendered by a real helm (built from its Go module by tools/helm/build.sh):
it lints, renders what manifests/ installs (the same CRDs, the same RBAC rules), passes the values through to
the operator's flags, runs the second scheduler with the extender, and refuses bad values with a message.
No cluster: tests/integration/test_helm_install.py installs it into a real API server."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

import kubeagora

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "kubeagora"
BUILD = ROOT / "tools" / "helm" / "build.sh"


@pytest.fixture(scope="module")
def helm() -> Path:
    """helm from the cache, built first when missing (minutes, once); skipped only without Go."""
    where = subprocess.run(["bash", str(BUILD), "--path"], capture_output=True, text=True, check=True)
    path = Path(where.stdout.strip())
    if path.is_file():
        return path
    if shutil.which("go") is None:
        pytest.skip("Go is not installed (helm is built from its Go module: tools/helm/build.sh)")
    proc = subprocess.run(["bash", str(BUILD)], capture_output=True, text=True, check=False, timeout=3600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return Path(proc.stdout.strip())


def render(helm: Path, *sets: str, namespace: str = "kubeagora-system") -> list[dict[str, Any]]:
    args = [str(helm), "template", "kubeagora", str(CHART), "--namespace", namespace]
    for s in sets:
        args += ["--set", s]
    proc = subprocess.run(args, capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    return [d for d in yaml.safe_load_all(proc.stdout) if d]


def render_error(helm: Path, *sets: str) -> str:
    args = [str(helm), "template", "kubeagora", str(CHART)]
    for s in sets:
        args += ["--set", s]
    proc = subprocess.run(args, capture_output=True, text=True, check=False)
    assert proc.returncode != 0, proc.stdout
    return proc.stderr


def find(objects: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    found = [o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name]
    assert len(found) == 1, f"{kind}/{name}: {len(found)} found"
    return found[0]


def manifests(path: Path) -> Iterator[dict[str, Any]]:
    yield from (d for d in yaml.safe_load_all(path.read_text()) if d)


# ----------------------------------------------------------------------------------------- no helm needed
def test_the_chart_carries_the_repository_crds_unchanged() -> None:
    ours = sorted(p.name for p in (ROOT / "crds").glob("*.yaml"))
    assert sorted(p.name for p in (CHART / "crds").glob("*.yaml")) == ours
    for name in ours:
        assert (CHART / "crds" / name).read_bytes() == (ROOT / "crds" / name).read_bytes(), name


def test_chart_and_app_versions_are_the_package_version() -> None:
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert chart["version"] == chart["appVersion"] == kubeagora.__version__


# ----------------------------------------------------------------------------------------------- helm
def test_helm_lint_passes_in_every_mode(helm: Path) -> None:
    for sets in ([], ["schedulerMode=extender-only"],
                 ["prometheus.enabled=false", "operator.prometheusUrl=http://p:9090"]):
        args = [str(helm), "lint", "--strict", str(CHART)] + [a for s in sets for a in ("--set", s)]
        proc = subprocess.run(args, capture_output=True, text=True, check=False)
        assert proc.returncode == 0, proc.stdout + proc.stderr


def test_rendered_rbac_is_manifests_rbac(helm: Path) -> None:
    rendered = render(helm)
    for role in manifests(ROOT / "manifests" / "rbac.yaml"):
        if role["kind"] in ("ClusterRole", "Role"):
            assert find(rendered, role["kind"], role["metadata"]["name"])["rules"] == role["rules"]
        elif role["kind"] in ("ClusterRoleBinding", "RoleBinding"):
            ours = find(rendered, role["kind"], role["metadata"]["name"])
            assert ours["roleRef"] == role["roleRef"]
            assert ours["subjects"] == role["subjects"]


def test_rendered_webhooks_node_policy_and_state_are_the_manifests(helm: Path) -> None:
    """The same static webhook configurations (what the code serves), node policy and operator objects."""
    from kubeagora.operator.admission import webhook_configurations

    rendered = render(helm)
    made = webhook_configurations(b"", service=("kubeagora-system", "kubeagora-operator-webhook", 443))
    for config in made:
        ours = find(rendered, config["kind"], "kubeagora.io")
        assert ours["metadata"]["annotations"]["cert-manager.io/inject-ca-from"] == \
            "kubeagora-system/kubeagora-operator-webhook"
        for hook in config["webhooks"]:
            del hook["clientConfig"]["caBundle"]
        assert ours["webhooks"] == config["webhooks"]
    for doc in manifests(ROOT / "manifests" / "node-policy.yaml"):
        assert find(rendered, doc["kind"], doc["metadata"]["name"])["spec"] == doc["spec"]
    for doc in manifests(ROOT / "manifests" / "operator-state.yaml"):
        ours = find(rendered, doc["kind"], doc["metadata"]["name"])
        assert {k: v for k, v in ours.items() if k != "metadata"} == {k: v for k, v in doc.items() if k != "metadata"}
    local = render(helm, "operator.webhook.certificate=secret", "operator.webhook.caBundle=Q0E=",
                   "operator.webhook.url=https://127.0.0.1:9443")
    hook = find(local, "ValidatingWebhookConfiguration", "kubeagora.io")["webhooks"][0]
    assert hook["clientConfig"] == {"url": "https://127.0.0.1:9443/intent", "caBundle": "Q0E="}
    assert not [o for o in local if o["kind"] in ("Issuer", "Certificate")]


def test_a_provided_certificate_needs_its_ca(helm: Path) -> None:
    assert "operator.webhook.caBundle is required" in render_error(helm, "operator.webhook.certificate=secret")


def test_the_workloads_match_the_manifests_pods(helm: Path) -> None:
    rendered = render(helm)
    for path, name in ((ROOT / "manifests" / "operator.yaml", "kubeagora-operator"),
                       (ROOT / "manifests" / "scheduler-extender.yaml", "kubeagora-scheduler-extender")):
        theirs = next(d for d in manifests(path) if d["kind"] == "Deployment")["spec"]["template"]["spec"]
        ours = find(rendered, "Deployment", name)["spec"]["template"]["spec"]
        assert ours["serviceAccountName"] == theirs["serviceAccountName"]
        assert ours["securityContext"] == theirs["securityContext"]
        (c_ours,), (c_theirs,) = ours["containers"], theirs["containers"]
        assert c_ours["securityContext"] == c_theirs["securityContext"]
        assert c_ours["args"][:2] == c_theirs["args"][:2]
        assert {p["name"] for p in c_ours["ports"]} == {p["name"] for p in c_theirs["ports"]}


def test_metric_values_reach_the_operator_flags(helm: Path) -> None:
    default_args = find(render(helm), "Deployment", "kubeagora-operator")["spec"]["template"]["spec"]["containers"][0]
    assert "--metrics-preset" not in default_args["args"]  # the operator's own default
    assert "http://prometheus.kubeagora-system.svc:9090" in default_args["args"]
    args = find(render(helm, "metrics.preset=istio", "metrics.workloadLabel=destination_workload",
                       "metrics.scrapeIntervalSeconds=30", "operator.prometheusUrl=http://prom.mon:9090",
                       "prometheus.enabled=false"),
                "Deployment", "kubeagora-operator")["spec"]["template"]["spec"]["containers"][0]["args"]
    pairs = dict(zip(args[2::2], args[3::2], strict=False))
    assert pairs["--metrics-preset"] == "istio"
    assert pairs["--workload-label"] == "destination_workload"
    assert pairs["--scrape-interval"] == "30"
    assert pairs["--prometheus-url"] == "http://prom.mon:9090"


def test_second_scheduler_mode_runs_kube_scheduler_with_the_extender(helm: Path) -> None:
    rendered = render(helm, namespace="ka")
    config = yaml.safe_load(find(rendered, "ConfigMap", "kubeagora-scheduler-config")["data"]["scheduler-config.yaml"])
    assert config["kind"] == "KubeSchedulerConfiguration"
    assert [p["schedulerName"] for p in config["profiles"]] == ["kubeagora-scheduler"]
    (extender,) = config["extenders"]
    ours = yaml.safe_load((ROOT / "manifests" / "devcluster" / "scheduler-config.yaml").read_text())["extenders"][0]
    assert extender["urlPrefix"] == "https://kubeagora-scheduler-extender.ka.svc:8888"
    assert extender["tlsConfig"] == {"caFile": "/etc/kubeagora-client/ca.crt",
                                     "certFile": "/etc/kubeagora-client/tls.crt",
                                     "keyFile": "/etc/kubeagora-client/tls.key"}
    assert {k: v for k, v in extender.items() if k not in ("urlPrefix", "tlsConfig")} == {
        k: v for k, v in ours.items() if k not in ("urlPrefix", "tlsConfig")}
    assert config["leaderElection"] == {"leaderElect": True, "resourceName": "kubeagora-scheduler",
                                        "resourceNamespace": "ka"}
    pod = find(rendered, "Deployment", "kubeagora-scheduler")["spec"]["template"]["spec"]
    assert pod["containers"][0]["image"].startswith("registry.k8s.io/kube-scheduler:")
    assert "--config=/etc/kubeagora/scheduler-config.yaml" in pod["containers"][0]["command"]
    bound = {find(rendered, "ClusterRoleBinding", n)["roleRef"]["name"]
             for n in ("kubeagora-scheduler", "kubeagora-scheduler-volumes")}
    assert bound == {"system:kube-scheduler", "system:volume-scheduler"}
    only_extender = render(helm, "schedulerMode=extender-only")
    assert not [o for o in only_extender if o["metadata"]["name"].startswith("kubeagora-scheduler-config")]
    assert find(only_extender, "Deployment", "kubeagora-scheduler-extender")


def test_prometheus_or_a_service_monitor(helm: Path) -> None:
    bundled = render(helm)
    config = yaml.safe_load(find(bundled, "ConfigMap", "prometheus-config")["data"]["prometheus.yml"])
    assert config["global"]["scrape_interval"] == "15s"
    assert {j["job_name"] for j in config["scrape_configs"]} >= {"kubeagora-operator", "kubeagora-scheduler-extender",
                                                                  "kubernetes-pods"}
    assert not [o for o in bundled if o["kind"] == "ServiceMonitor"]
    message = render_error(helm, "serviceMonitor.enabled=true", "prometheus.enabled=false",
                           "operator.prometheusUrl=http://p:9090")
    assert "monitoring.coreos.com" in message  # not installable without the Prometheus Operator's CRDs
    args = [str(helm), "template", "kubeagora", str(CHART), "--api-versions", "monitoring.coreos.com/v1/ServiceMonitor",
            "--set", "serviceMonitor.enabled=true", "--set", "prometheus.enabled=false",
            "--set", "operator.prometheusUrl=http://p:9090", "--set", "serviceMonitor.labels.release=kps"]
    proc = subprocess.run(args, capture_output=True, text=True, check=True)
    monitors = [d for d in yaml.safe_load_all(proc.stdout) if d and d["kind"] == "ServiceMonitor"]
    assert sorted(m["metadata"]["name"] for m in monitors) == ["kubeagora-operator", "kubeagora-scheduler-extender"]
    assert all(m["metadata"]["labels"]["release"] == "kps" for m in monitors)
    assert not [d for d in yaml.safe_load_all(proc.stdout) if d and d["kind"] == "Deployment"
                and d["metadata"]["name"] == "prometheus"]


@pytest.mark.parametrize(("sets", "fragment"), [
    (["metrics.preset=datadog"], "/metrics/preset': value must be one of '', 'otel', 'istio'"),
    (["schedulerMode=replace-default"], "schedulerMode"),
    (["prometheus.enabled=false"], "operator.prometheusUrl is required"),
    (["extender.enabled=false"], "needs extender.enabled"),
    (["operator.metricsPort=70000"], "metricsPort"),
])
def test_bad_values_are_refused_naming_them(helm: Path, sets: list[str], fragment: str) -> None:
    assert fragment in render_error(helm, *sets)


def test_the_preset_choices_are_the_operators() -> None:
    schema = json.loads((CHART / "values.schema.json").read_text())
    choices = schema["properties"]["metrics"]["properties"]["preset"]["enum"]
    assert choices[0] == ""  # the operator's own default
    presets = pytest.importorskip("kubeagora.operator.metric_presets", reason="the operator has no presets yet").PRESETS
    assert set(choices[1:]) == set(presets)
