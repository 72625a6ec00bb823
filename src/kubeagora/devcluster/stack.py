"""The whole local stack, as a user would run it, for the demo, the benchmark and the e2e tests:

    control plane (devcluster) whose kube-scheduler calls the scheduler extender
    mock kubelet: nodes, pods, traffic, /metrics, the metrics.k8s.io API (for the real HPA)
    Prometheus scraping the mock kubelet and the operator
    scheduler extender, operator (``kubeagora operator run``), CRDs applied

Every process is a subprocess with its log under ``state_dir/logs``; ``down`` stops them all (the
control plane too, unless ``keep_cluster``). Ports are picked free, so stacks can run side by side.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

import yaml

from kubeagora.devcluster.cluster import DevCluster, Settings, free_ports
from kubeagora.devcluster.errors import DevClusterError
from kubeagora.devcluster.pki import Pki
from kubeagora.devcluster.prometheus import PrometheusServer

Progress = Callable[[str], None]
ROOT = Path(__file__).resolve().parents[3]
"""The repository root (crds/ and manifests/ live there in a checkout)."""


def _quiet(_: str) -> None:
    pass


def kubeagora_command() -> list[str]:
    """The ``kubeagora`` CLI of this interpreter (works from a venv without activating it)."""
    script = Path(sys.executable).with_name("kubeagora")
    return [str(script)] if script.exists() else [sys.executable, "-c", "from kubeagora.cli import app; app()"]


@dataclass
class Child:
    name: str
    proc: subprocess.Popen[bytes]
    log: Path
    url: str = ""

    def alive(self) -> bool:
        return self.proc.poll() is None

    def tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self, timeout_s: float = 20.0, sig: int = signal.SIGTERM) -> None:
        stop_process(self.proc, timeout_s, sig)



def kubectl_input(objects: Sequence[Any]) -> str:
    """Objects for ``kubectl apply -f -`` as one JSON List. Not YAML: PyYAML leaves a string such as
    ``28e041`` (a hex run id) unquoted, and kubectl's YAML 1.2 reader then takes it for a number."""
    return json.dumps({"apiVersion": "v1", "kind": "List", "items": list(objects)})

def stop_process(proc: subprocess.Popen[bytes], timeout_s: float = 60.0, sig: int = signal.SIGTERM) -> None:
    """Signal the process's group (it was started with ``start_new_session``), then SIGKILL it after
    ``timeout_s``; safe when it has exited already."""
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, sig)
    try:
        proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def http_ok(url: str, timeout_s: float = 3.0, context: ssl.SSLContext | None = None) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=timeout_s, context=context) as resp:
            return bool(resp.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def wait_until(what: str, check: Callable[[], bool], timeout_s: float, child: Child | None = None) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if child is not None and not child.alive():
            raise DevClusterError(f"{child.name} exited ({child.proc.returncode}) while waiting for {what}:\n"
                                  f"{child.tail()}")
        if check():
            return
        time.sleep(0.5)
    tail = f"\n{child.tail()}" if child is not None else ""
    raise DevClusterError(f"timed out after {timeout_s:.0f} s waiting for {what}{tail}")


@dataclass
class StackOptions:
    nodes: int = 24
    scenario: str | None = None
    """Play this scenario's topology instead of ``nodes`` generated nodes (its faults are not replayed)."""
    extender: bool = True
    operator: bool = True
    operator_args: Sequence[str] = ()
    webhook: bool = True
    """The operator serves the admission webhooks (on 127.0.0.1, a free port, with a certificate the stack
    makes; the stack writes the webhook configurations, as an administrator applies manifests/webhook.yaml)."""
    operator_namespace: str = "kubeagora-system"
    scrape_interval_s: float = 2.0
    keep_cluster: bool = False
    node_monitor_grace_period: str | None = None


@dataclass
class Stack:
    state_dir: Path
    options: StackOptions = field(default_factory=StackOptions)
    progress: Progress = _quiet
    binary: Path | None = None
    cluster: DevCluster | None = None
    prometheus: PrometheusServer | None = None
    children: dict[str, Child] = field(default_factory=dict)
    ports: dict[str, int] = field(default_factory=dict)

    # ------------------------------------------------------------------------------------------ helpers
    @property
    def kubeconfig(self) -> Path:
        assert self.cluster is not None
        return self.cluster.kubeconfig

    @property
    def logs(self) -> Path:
        return self.state_dir / "logs"

    def kubectl(self, *args: str, stdin: str | None = None, check: bool = True) -> str:
        assert self.cluster is not None
        proc = self.cluster.kubectl(*args, input=stdin)
        if check and proc.returncode != 0:
            raise DevClusterError(f"kubectl {' '.join(args)}: {proc.stderr.strip()}")
        return str(proc.stdout)

    def kubectl_json(self, *args: str) -> Any:
        return json.loads(self.kubectl(*args, "-o", "json"))

    def apply(self, *objects: Any) -> None:
        self.kubectl("apply", "-f", "-", stdin=kubectl_input(objects))

    def spawn(self, name: str, args: Sequence[str], url: str = "") -> Child:
        self.logs.mkdir(parents=True, exist_ok=True)
        log = self.logs / f"{name}.log"
        with log.open("ab") as out:
            proc = subprocess.Popen([*kubeagora_command(), *args], stdout=out, stderr=subprocess.STDOUT,
                                    start_new_session=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
        child = Child(name, proc, log, url)
        self.children[name] = child
        return child

    # ------------------------------------------------------------------------------------------ up
    def up(self) -> Stack:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        names = ["extender", "kubelet", "metrics_api", "operator", "prometheus", "webhook"]
        self.ports = dict(zip(names, free_ports(len(names)), strict=True))
        scheduler_config = self._scheduler_config() if self.options.extender else None
        self.progress("control plane (the first build of the binary takes minutes)")
        self.cluster = DevCluster(self.state_dir / "cluster", binary=self.binary, progress=self.progress,
                                  settings=Settings(scheduler_config=scheduler_config,
                                                    node_monitor_grace_period=self.options.node_monitor_grace_period))
        self.cluster.up()
        try:
            self._start_rest()
        except BaseException:
            self.down()
            raise
        return self

    def _scheduler_config(self) -> Path:
        """The devcluster's scheduler config with the extender on this stack's port (the devcluster fills
        in its TLS settings from its PKI)."""
        cfg = yaml.safe_load((ROOT / "manifests" / "devcluster" / "scheduler-config.yaml").read_text())
        for ext in cfg.get("extenders") or ():
            ext["urlPrefix"] = f"https://127.0.0.1:{self.ports['extender']}"
        path = self.state_dir / "scheduler-config.yaml"
        path.write_text(yaml.safe_dump(cfg, sort_keys=False))
        return path

    def _start_rest(self) -> None:
        kc = str(self.kubeconfig)
        self.progress("CRDs")
        self.kubectl("apply", "-f", str(ROOT / "crds"))
        self.kubectl("wait", "--for", "condition=established", "crd", "--all", "--timeout=60s")
        self.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": self.options.operator_namespace}})
        where = ["--scenario", self.options.scenario] if self.options.scenario else ["--nodes", str(self.options.nodes)]
        self.progress(f"mock kubelet ({' '.join(where)}), metrics API")
        kubelet = self.spawn("mock-kubelet", [
            "mock-kubelet", "--kubeconfig", kc, *where, "--no-faults",
            "--metrics-port", str(self.ports["kubelet"]), "--metrics-api-port", str(self.ports["metrics_api"]),
            "--delete-nodes-on-exit"], f"http://127.0.0.1:{self.ports['kubelet']}")
        wait_until("the mock kubelet to register its nodes", lambda: http_ok(kubelet.url + "/healthz"), 120, kubelet)
        if self.options.extender:
            self.progress("scheduler extender")
            assert self.cluster is not None
            pki = Pki(self.cluster.layout.pki_dir)
            ext = self.spawn("scheduler-extender", [
                "scheduler-extender", "--kubeconfig", kc, "--host", "127.0.0.1", "--port", str(self.ports["extender"]),
                "--tls-cert-file", str(pki.extender_cert), "--tls-key-file", str(pki.extender_key),
                "--client-ca-file", str(pki.ca_cert)], f"https://127.0.0.1:{self.ports['extender']}")
            trust = ssl.create_default_context(cafile=str(pki.ca_cert))
            wait_until("the scheduler extender", lambda: http_ok(ext.url + "/healthz", context=trust), 60, ext)
        self.progress("Prometheus")
        targets = {"mock-kubelet": [f"127.0.0.1:{self.ports['kubelet']}"]}
        if self.options.operator:
            targets["kubeagora-operator"] = [f"127.0.0.1:{self.ports['operator']}"]
        self.prometheus = PrometheusServer(self.state_dir / "prometheus", targets, self.options.scrape_interval_s,
                                           port=self.ports["prometheus"], progress=self.progress)
        self.prometheus.start()
        if self.options.operator:
            self.start_operator()
        self.progress("stack ready")

    def _webhook(self) -> list[str]:
        """The webhook's serving certificate (made once) and its configurations; the operator's flags."""
        from kubeagora.operator.admission import self_signed_certificate, webhook_configurations

        cert, key = self.state_dir / "webhook" / "webhook.crt", self.state_dir / "webhook" / "webhook.key"
        if not cert.exists():
            cert, key = self_signed_certificate(self.state_dir / "webhook", "127.0.0.1")
            self.apply(*webhook_configurations(cert.read_bytes(), url=f"https://127.0.0.1:{self.ports['webhook']}"))
        return ["--webhook-host", "127.0.0.1", "--webhook-port", str(self.ports["webhook"]),
                "--webhook-cert", str(cert), "--webhook-key", str(key)]

    def start_operator(self, name: str = "operator", port: int | None = None, webhook: bool | None = None,
                       args: Sequence[str] = ()) -> Child:
        """An operator process (a second one: another ``name`` and metrics ``port``, no webhook)."""
        assert self.prometheus is not None
        self.progress(name)
        port = port or self.ports["operator"]
        flags = self._webhook() if (self.options.webhook if webhook is None else webhook) else []
        op = self.spawn(name, [
            "operator", "run", "--kubeconfig", str(self.kubeconfig), "--prometheus-url", str(self.prometheus.url),
            "--metrics-host", "127.0.0.1", "--metrics-port", str(port), "--namespace", self.options.operator_namespace,
            "--identity", name, *flags, "--scrape-interval", f"{self.options.scrape_interval_s:g}",
            *self.options.operator_args, *args], f"http://127.0.0.1:{port}")
        # ready: it has ticked (or stands by) and, with webhooks, the API server calls them (pods get the
        # residency rule)
        wait_until(name, lambda: http_ok(op.url + "/readyz"), 120, op)
        return op

    # ------------------------------------------------------------------------------------------ load
    def set_load(self, service: str, factor: float) -> dict[str, Any]:
        body = json.dumps({"service": service, "factor": factor}).encode()
        req = urllib.request.Request(self.children["mock-kubelet"].url + "/load", data=body, method="POST",
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=10) as resp:
            return dict(json.loads(resp.read()))

    # ------------------------------------------------------------------------------------------ down
    def down(self) -> None:
        for name in [*(n for n in self.children if n.startswith("operator")), "scheduler-extender", "mock-kubelet"]:
            child = self.children.pop(name, None)
            if child is not None:
                child.stop(timeout_s=60 if name == "mock-kubelet" else 20)
        for child in self.children.values():
            child.stop()
        self.children.clear()
        if self.prometheus is not None:
            self.prometheus.stop()
        if self.cluster is not None and not self.options.keep_cluster:
            self.cluster.down()

    def __enter__(self) -> Stack:
        return self.up()

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.down()


def remove_state(state_dir: Path) -> None:
    shutil.rmtree(state_dir, ignore_errors=True)
