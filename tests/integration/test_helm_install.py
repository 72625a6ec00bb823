"""`helm install` of charts/kubeagora (second-scheduler mode) into a real API server, and the README's
kubectl flow through what it installed.

What this proves, and what it does not. There is no container runtime here, so:
- Real: helm (built from its Go module) installs every object of the chart into a real kube-apiserver
  (schema, RBAC escalation checks, the "restricted" Pod Security admission of the namespace: the
  ReplicaSets must create the chart's pods); `helm uninstall` removes them.
- Real, run as local processes: the three workloads the chart deploys. Each runs the command of its
  *installed* Deployment (read back from the API server), with the token of its *installed* ServiceAccount
  (TokenRequest), so the chart's RBAC is exactly what they get: the extender, the operator (with its
  webhook), and kube-scheduler -- the control-plane binary's `kube-scheduler` subcommand (the same
  Kubernetes source as the registry.k8s.io/kube-scheduler image the chart names) with the installed
  ConfigMap's KubeSchedulerConfiguration.
- Replaced, and said so: what a pod gets from its node -- listening ports (free ones) and addresses
  (127.0.0.1), in-cluster credentials (a kubeconfig with the ServiceAccount's token), the webhook's serving
  certificate (a self-signed one given to the chart, instead of cert-manager's), the mounted Secrets (the
  installed Secrets' files, written locally: the extender's serving certificate, the scheduler's client
  certificate), and cluster DNS (the extender's Service URL in the scheduler configuration becomes the
  local extender's address, the certificate still checked against the Service name, and the webhook
  configurations name the local operator's URL; no kube-proxy or CoreDNS runs here). Images, probes and
  Services are not exercised.
Then: pods that name `schedulerName: kubeagora-scheduler` are placed by that scheduler through the extender
(the extender answers filter calls; the intent's region holds), pods that name no scheduler are left to the
cluster's own, and the operator manages the intent (status written, the webhook refusing a bad intent).
"""

from __future__ import annotations

import base64
import re
import shutil
import ssl
import subprocess
import sys
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from tests.integration.kube import apply, kubectl_json, wait_for

from kubeagora.devcluster import DevCluster
from kubeagora.devcluster.cluster import free_ports
from kubeagora.devcluster.stack import stop_process
from kubeagora.operator.admission import self_signed_certificate

pytest.importorskip("kopf")
pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "kubeagora"
NAMESPACE = "kubeagora-system"
RELEASE = "kubeagora"
SCHEDULER = "kubeagora-scheduler"


@dataclass
class Process:
    name: str
    proc: subprocess.Popen[bytes]
    log: Path

    def alive(self) -> None:
        assert self.proc.poll() is None, f"{self.name} exited ({self.proc.returncode}):\n{self.log.read_text()[-3000:]}"

    def stop(self) -> None:
        stop_process(self.proc, 30)


@dataclass
class Installed:
    cluster: DevCluster
    helm: Path
    tmp: Path
    extender_url: str
    processes: dict[str, Process]
    extender_tls: ssl.SSLContext


EXTENDER_SERVICE = f"kubeagora-scheduler-extender.{NAMESPACE}.svc"


def secret_files(cluster: DevCluster, name: str, directory: Path) -> dict[str, Path]:
    """The installed Secret's keys as files: what its volume mount gives a pod."""
    directory.mkdir(parents=True, exist_ok=True)
    files = {}
    for key, value in kubectl_json(cluster, "get", "secret", name, "-n", NAMESPACE)["data"].items():
        files[key] = directory / key
        files[key].write_bytes(base64.b64decode(value))
    return files


def mounted(args: list[str], mount: str, files: dict[str, Path]) -> list[str]:
    """`args` with paths under the Secret's mount point replaced by the local files."""
    return [str(files[a.removeprefix(mount + "/")]) if a.startswith(mount + "/") else a for a in args]


def _helm_binary() -> Path:
    build = ROOT / "tools" / "helm" / "build.sh"
    if shutil.which("go") is None:
        pytest.skip("Go is not installed (helm is built from its Go module: tools/helm/build.sh)")
    proc = subprocess.run(["bash", str(build)], capture_output=True, text=True, check=False, timeout=3600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return Path(proc.stdout.strip())


def helm(installed_or_cluster: DevCluster, binary: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(binary), f"--kubeconfig={installed_or_cluster.kubeconfig}", *args],
                          capture_output=True, text=True, timeout=300, check=False)


def service_account_kubeconfig(cluster: DevCluster, account: str, path: Path) -> Path:
    """A kubeconfig with the ServiceAccount's own token: what a pod of it gets from the kubelet."""
    proc = cluster.kubectl("create", "token", account, "-n", NAMESPACE, "--duration=2h")
    assert proc.returncode == 0, proc.stderr
    admin = yaml.safe_load(cluster.kubeconfig.read_text())
    path.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config",
        "clusters": [{"name": "devcluster", "cluster": admin["clusters"][0]["cluster"]}],
        "users": [{"name": account, "user": {"token": proc.stdout.strip()}}],
        "contexts": [{"name": account, "context": {"cluster": "devcluster", "user": account}}],
        "current-context": account,
    }))
    return path


def container_args(cluster: DevCluster, deployment: str) -> list[str]:
    """The installed Deployment's container command line (args; kube-scheduler's is its command)."""
    spec = kubectl_json(cluster, "get", "deployment", deployment, "-n", NAMESPACE)["spec"]["template"]["spec"]
    (container,) = spec["containers"]
    return [*container.get("command", []), *container.get("args", [])]


def locally(args: list[str], values: dict[str, str]) -> list[str]:
    """`args` with each option in `values` given that value instead (ports, addresses, files)."""
    out = list(args)
    for i, arg in enumerate(out[:-1]):
        if arg in values:
            out[i + 1] = values[arg]
    return out


def spawn(name: str, cmd: list[str], log: Path) -> Process:
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    return Process(name, proc, log)


def http_ok(url: str, context: ssl.SSLContext | None = None) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=5, context=context) as resp:
            return bool(resp.status == 200)
    except (urllib.error.URLError, OSError):
        return False


@pytest.fixture(scope="module")
def installed(controlplane_binary: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Installed]:
    """A control plane of this module's own (the chart's cluster-wide objects share names with manifests/,
    which another module applies), mock nodes in two regions, the chart installed, its workloads running."""
    binary = _helm_binary()
    tmp = tmp_path_factory.mktemp("helm")
    cluster = DevCluster(tmp / "state", binary=controlplane_binary)
    processes: dict[str, Process] = {}
    try:
        cluster.up()
        (kubelet_port,) = free_ports(1)
        processes["mock-kubelet"] = spawn("mock-kubelet", [
            sys.executable, "-c", "from kubeagora.cli import app; app()", "mock-kubelet", "--kubeconfig",
            str(cluster.kubeconfig), "--scenario", "gpu-throttle", "--no-faults", "--metrics-port", str(kubelet_port)],
            tmp / "mock-kubelet.log")
        wait_for("the mock kubelet's nodes", lambda: http_ok(f"http://127.0.0.1:{kubelet_port}/healthz"), 90)
        # The namespace enforces the "restricted" Pod Security Standard, as manifests/00-namespace.yaml does.
        apply(cluster, {"apiVersion": "v1", "kind": "Namespace", "metadata": {
            "name": NAMESPACE, "labels": {"pod-security.kubernetes.io/enforce": "restricted"}}})
        extender_port, operator_port, webhook_port, scheduler_port = free_ports(4)
        # No cert-manager here: the webhook's certificate is given (certificate=secret), and the API server
        # reaches the local operator at a URL instead of the Service.
        cert, key = self_signed_certificate(tmp / "webhook", "127.0.0.1")
        proc = helm(cluster, binary, "install", RELEASE, str(CHART), "--namespace", NAMESPACE,
                    "--set", "operator.webhook.certificate=secret",
                    "--set", f"operator.webhook.caBundle={base64.b64encode(cert.read_bytes()).decode()}",
                    "--set", f"operator.webhook.url=https://127.0.0.1:{webhook_port}")
        assert proc.returncode == 0, proc.stdout + proc.stderr
        wait_for("the ServiceAccounts' token controller",
                 lambda: cluster.kubectl("create", "token", "kubeagora-operator", "-n", NAMESPACE).returncode == 0, 60)

        extender_url = f"https://127.0.0.1:{extender_port}"
        cli = [sys.executable, "-c", "from kubeagora.cli import app; app()"]
        server_tls = secret_files(cluster, "kubeagora-scheduler-extender-tls", tmp / "extender-tls")
        client_tls = secret_files(cluster, "kubeagora-scheduler-client-tls", tmp / "scheduler-tls")
        extender_args = mounted(locally(container_args(cluster, "kubeagora-scheduler-extender"),
                                        {"--host": "127.0.0.1", "--port": str(extender_port)}),
                                "/etc/kubeagora-tls", server_tls)
        assert "--client-ca-file" in extender_args
        # the test calls the extender as the scheduler does, its certificate checked for the Service's name
        as_scheduler = ssl.create_default_context(cafile=str(client_tls["ca.crt"]))
        as_scheduler.load_cert_chain(client_tls["tls.crt"], client_tls["tls.key"])
        as_scheduler.check_hostname = False
        processes["extender"] = spawn("extender", [*cli, *extender_args, "--kubeconfig", str(
            service_account_kubeconfig(cluster, "kubeagora-scheduler-extender", tmp / "extender.kubeconfig"))],
            tmp / "extender.log")
        operator_args = locally(container_args(cluster, "kubeagora-operator"),
                                {"--metrics-port": str(operator_port), "--webhook-port": str(webhook_port),
                                 "--webhook-listen": "127.0.0.1", "--webhook-cert": str(cert),
                                 "--webhook-key": str(key)})
        processes["operator"] = spawn("operator", [*cli, *operator_args, "--metrics-host", "127.0.0.1",
                                                   "--kubeconfig", str(service_account_kubeconfig(
                                                       cluster, "kubeagora-operator", tmp / "operator.kubeconfig"))],
                                      tmp / "operator.log")

        # kube-scheduler with the installed configuration; only the extender's address is local.
        config = yaml.safe_load(kubectl_json(cluster, "get", "configmap", "kubeagora-scheduler-config", "-n",
                                             NAMESPACE)["data"]["scheduler-config.yaml"])
        assert config["extenders"][0]["urlPrefix"] == f"https://{EXTENDER_SERVICE}:8888"
        config["extenders"][0]["urlPrefix"] = extender_url
        tls_config = config["extenders"][0]["tlsConfig"]
        for key in ("caFile", "certFile", "keyFile"):
            tls_config[key] = mounted([tls_config[key]], "/etc/kubeagora-client", client_tls)[0]
        tls_config["serverName"] = EXTENDER_SERVICE
        scheduler_kubeconfig = service_account_kubeconfig(cluster, SCHEDULER, tmp / "scheduler.kubeconfig")
        config["clientConnection"] = {"kubeconfig": str(scheduler_kubeconfig)}
        (tmp / "scheduler-config.yaml").write_text(yaml.safe_dump(config))
        scheduler_args = locally(container_args(cluster, SCHEDULER),
                                 {})  # kube-scheduler --config=/etc/kubeagora/scheduler-config.yaml
        assert scheduler_args[0] == "kube-scheduler"
        scheduler_args = [re.sub(r"^--config=.*", f"--config={tmp / 'scheduler-config.yaml'}", a)
                          for a in scheduler_args]
        processes["scheduler"] = spawn("scheduler", [
            str(controlplane_binary), *scheduler_args, f"--authentication-kubeconfig={scheduler_kubeconfig}",
            f"--authorization-kubeconfig={scheduler_kubeconfig}", "--bind-address=127.0.0.1",
            f"--secure-port={scheduler_port}", f"--cert-dir={tmp / 'scheduler-certs'}"], tmp / "scheduler.log")

        def running() -> bool:
            for p in processes.values():
                p.alive()
            return (http_ok(f"{extender_url}/healthz", as_scheduler)
                    and http_ok(f"http://127.0.0.1:{operator_port}/healthz"))

        wait_for("the extender and the operator, as their ServiceAccounts", running, timeout_s=120)
        yield Installed(cluster, binary, tmp, extender_url, processes, as_scheduler)
    finally:
        for p in reversed(list(processes.values())):
            p.stop()
        cluster.down()


# ------------------------------------------------------------------------------------------ the install
def test_helm_installs_every_object_of_the_chart(installed: Installed) -> None:
    cluster = installed.cluster
    status = helm(cluster, installed.helm, "status", RELEASE, "--namespace", NAMESPACE)
    assert "STATUS: deployed" in status.stdout, status.stdout + status.stderr
    manifest = helm(cluster, installed.helm, "get", "manifest", RELEASE, "--namespace", NAMESPACE).stdout
    objects = [d for d in yaml.safe_load_all(manifest) if d]
    assert {(o["kind"], o["metadata"]["name"]) for o in objects} >= {
        ("Deployment", "kubeagora-operator"), ("Deployment", "kubeagora-scheduler-extender"),
        ("Deployment", SCHEDULER), ("ConfigMap", "kubeagora-scheduler-config"), ("Deployment", "prometheus"),
        ("ClusterRole", "kubeagora-operator"), ("ClusterRoleBinding", SCHEDULER)}
    for obj in objects:  # each one is in the API server
        where = ["-n", NAMESPACE] if obj["metadata"].get("namespace") else []
        if obj["kind"] == "RoleBinding" and obj["metadata"].get("namespace") == "kube-system":
            where = ["-n", "kube-system"]
        got = cluster.kubectl("get", obj["kind"], obj["metadata"]["name"], *where)
        assert got.returncode == 0, f"{obj['kind']}/{obj['metadata']['name']}: {got.stderr}"
    for crd in ("orchestrationintents.kubeagora.io", "orchestrationpolicies.kubeagora.io",
                "agentactions.kubeagora.io"):
        assert cluster.kubectl("get", "crd", crd).returncode == 0


def test_the_chart_pods_pass_the_restricted_pod_security_standard(installed: Installed) -> None:
    cluster = installed.cluster

    def pods_created() -> bool:
        sets = kubectl_json(cluster, "get", "replicasets", "-n", NAMESPACE)["items"]
        return len(sets) >= 4 and all((rs.get("status") or {}).get("replicas", 0) >= 1 for rs in sets)

    wait_for("the ReplicaSets to create the chart's pods", pods_created, timeout_s=60)
    events = kubectl_json(cluster, "get", "events", "-n", NAMESPACE)["items"]
    assert not [e["message"] for e in events if e.get("reason") == "FailedCreate"]


# --------------------------------------------------------------------------------- the second scheduler
def _extender_filter_calls(installed: Installed) -> float:
    with urllib.request.urlopen(f"{installed.extender_url}/metrics", timeout=5,
                                context=installed.extender_tls) as resp:
        text = resp.read().decode()
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith("kubeagora_extender_requests_total{") and 'verb="filter"' in line)


def _deployment(name: str, namespace: str, replicas: int, scheduler: str | None) -> dict[str, Any]:
    labels = {"app": name, "kubeagora.io/service": name}
    spec: dict[str, Any] = {"terminationGracePeriodSeconds": 1, "containers": [{
        "name": "app", "image": "registry.invalid/app:1", "resources": {"requests": {"cpu": "100m"}}}]}
    if scheduler is not None:
        spec["schedulerName"] = scheduler
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "namespace": namespace},
            "spec": {"replicas": replicas, "selector": {"matchLabels": labels},
                     "template": {"metadata": {"labels": labels}, "spec": spec}}}


def _scheduled_by(cluster: DevCluster, namespace: str, app: str, n: int) -> dict[str, str] | None:
    """{pod: the scheduler that bound it} once all `n` pods are bound."""
    pods = kubectl_json(cluster, "get", "pods", "-n", namespace, "-l", f"app={app}")["items"]
    if len(pods) != n or not all(p["spec"].get("nodeName") for p in pods):
        return None
    events = kubectl_json(cluster, "get", "events", "-n", namespace, "--field-selector", "reason=Scheduled")["items"]
    by = {e["involvedObject"]["name"]: e.get("reportingComponent") or (e.get("source") or {}).get("component", "")
          for e in events}
    return {p["metadata"]["name"]: by.get(p["metadata"]["name"], "") for p in pods} if len(by) >= n else None


def test_pods_naming_kubeagora_scheduler_are_placed_through_the_extender(installed: Installed) -> None:
    cluster = installed.cluster
    namespace = f"ka-helm-{uuid.uuid4().hex[:6]}"
    apply(cluster, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}})
    wait_for("the lease of the second scheduler", lambda: cluster.kubectl(
        "get", "lease", SCHEDULER, "-n", NAMESPACE).returncode == 0, timeout_s=90)
    wait_for(f"serviceaccount default in {namespace}", lambda: cluster.kubectl(
        "get", "serviceaccount", "default", "-n", namespace).returncode == 0, timeout_s=60)
    # Residency from the intent only: the pods carry no affinity of their own, so only the extender's filter
    # keeps them in region-0.
    apply(cluster, {"apiVersion": "kubeagora.io/v1alpha1", "kind": "OrchestrationIntent",
                    "metadata": {"name": "placed", "namespace": namespace},
                    "spec": {"targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "placed"},
                             "slo": {"p95Ms": 150, "p99Ms": 250}, "replicas": {"min": 1, "max": 10},
                             "placement": {"regions": ["region-0"]}}})
    before = _extender_filter_calls(installed)
    apply(cluster, _deployment("placed", namespace, 4, SCHEDULER), _deployment("plain", namespace, 2, None))
    placed = wait_for("the second scheduler to bind the pods", lambda: _scheduled_by(cluster, namespace, "placed", 4),
                      timeout_s=90)
    assert set(placed.values()) == {SCHEDULER}, placed
    assert _extender_filter_calls(installed) >= before + 4
    nodes = {n["metadata"]["name"]: n["metadata"]["labels"] for n in kubectl_json(cluster, "get", "nodes")["items"]}
    pods = kubectl_json(cluster, "get", "pods", "-n", namespace, "-l", "app=placed")["items"]
    assert {nodes[p["spec"]["nodeName"]]["topology.kubernetes.io/region"] for p in pods} == {"region-0"}
    plain = wait_for("the cluster's own scheduler to bind the others",
                     lambda: _scheduled_by(cluster, namespace, "plain", 2), timeout_s=90)
    assert set(plain.values()) == {"default-scheduler"}, plain


# ------------------------------------------------------------------------------------------ the operator
def test_the_readme_flow_works_through_the_chart(installed: Installed) -> None:
    """kubectl apply of the examples; the operator (as the chart's ServiceAccount) manages the intent and its
    webhook refuses a bad one."""
    cluster = installed.cluster
    examples = ROOT / "examples"
    proc = cluster.kubectl("apply", "-f", str(examples / "policy.yaml"), "-f", str(examples / "intent.yaml"))
    assert proc.returncode == 0, proc.stderr

    def managed() -> dict[str, Any] | None:
        installed.processes["operator"].alive()
        status = kubectl_json(cluster, "get", "intent", "checkout", "-n", "default").get("status") or {}
        ready = [c for c in status.get("conditions") or () if c["type"] == "Ready"]
        return status if ready and ready[0]["reason"] == "TargetFound" else None

    status = wait_for("the operator to manage the example intent", managed, timeout_s=120)
    types = {c["type"] for c in status["conditions"]}
    assert "AutoscalerConflict" in types
    # No Prometheus answers at the chart's default URL here (its pod does not run): the operator holds and says so.
    degraded = next(c for c in status["conditions"] if c["type"] == "Degraded")
    assert degraded["reason"] == "MetricsUnavailable"

    # The README's step for second-scheduler mode: the Deployment opts in to kubeagora-scheduler.
    proc = cluster.kubectl("patch", "deployment", "checkout", "-n", "default", "--type=merge",
                           "-p", '{"spec": {"template": {"spec": {"schedulerName": "kubeagora-scheduler"}}}}')
    assert proc.returncode == 0, proc.stderr

    def rolled_out() -> dict[str, str] | None:
        pods = kubectl_json(cluster, "get", "pods", "-n", "default", "-l", "app=checkout")["items"]
        live = [p for p in pods if not p["metadata"].get("deletionTimestamp")]
        if not live or any(p["spec"].get("schedulerName") != SCHEDULER or not p["spec"].get("nodeName")
                           for p in live):
            return None
        return _scheduled_by(cluster, "default", "checkout", len(live))

    by = wait_for("the example's pods to be placed by kubeagora-scheduler", rolled_out, timeout_s=120)
    assert set(by.values()) == {SCHEDULER}, by

    bad = yaml.safe_load(next(d for d in (examples / "intent.yaml").read_text().split("\n---\n")
                              if "OrchestrationIntent" in d))
    bad["metadata"]["name"] = "too-big"
    bad["spec"]["replicas"]["max"] = 100_000
    refused = wait_for("the operator's webhook", lambda: (p := cluster.kubectl(
        "apply", "--dry-run=server", "-f", "-", input=yaml.safe_dump(bad))).returncode != 0 and p, timeout_s=60)
    assert "denied the request" in refused.stderr
    assert "spec.replicas.max" in refused.stderr


def test_helm_uninstall_removes_the_release(installed: Installed) -> None:
    """Last: the operator and the scheduler are stopped first, as deleting their ServiceAccounts would stop them."""
    for name in ("operator", "scheduler", "extender"):
        installed.processes[name].stop()
    cluster = installed.cluster
    proc = helm(cluster, installed.helm, "uninstall", RELEASE, "--namespace", NAMESPACE, "--wait", "--timeout=90s")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert cluster.kubectl("get", "deployment", "kubeagora-operator", "-n", NAMESPACE).returncode != 0
    assert cluster.kubectl("get", "clusterrole", "kubeagora-operator").returncode != 0
    assert cluster.kubectl("get", "crd", "orchestrationintents.kubeagora.io").returncode == 0  # Helm keeps CRDs
