"""A real Kubernetes control plane on 127.0.0.1, run as four subprocesses of one binary.

``etcd → kube-apiserver → kube-controller-manager → kube-scheduler`` start in that order, each in
its own process group, each waited for until healthy. Everything lives in one state directory:

    cluster.json                    binary, ports and pids (what ``status`` and ``down`` read)
    pki/                            CA, serving, client and service-account keys (see ``pki``)
    etcd/                           etcd's data directory
    logs/<component>.log            stdout and stderr of each component
    serving/<component>/            self-signed serving certs of the scheduler and controller manager
    kubeconfig                      admin (O=system:masters)
    kube-scheduler.kubeconfig       kube-controller-manager.kubeconfig
    kube-scheduler-config.yaml      the KubeSchedulerConfiguration passed with --config

No kubelet runs: Pods stay Pending unless something (a test, the mock kubelet) plays the node.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from kubeagora.devcluster import defaults
from kubeagora.devcluster import pki as pki_mod
from kubeagora.devcluster.binary import resolve_binary
from kubeagora.devcluster.errors import DevClusterError

#: Start order; ``down`` stops them in reverse.
COMPONENTS: tuple[str, ...] = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler")
BINARY_NAME = "kubeagora-controlplane"
HOST = "127.0.0.1"
SERVICE_CLUSTER_IP_RANGE = "10.0.0.0/24"
SCHEDULER_CONFIG_API = "kubescheduler.config.k8s.io/v1"
DEFAULT_STATE_DIR = defaults.DEFAULT_STATE_DIR

Progress = Callable[[str], None]


def _quiet(_: str) -> None:
    return None


@dataclass(frozen=True)
class Settings:
    """How the control plane is started. Every field has a default fit for a laptop."""

    node_monitor_grace_period: str | None = None
    """kube-controller-manager ``--node-monitor-grace-period`` (e.g. ``"20s"``); None keeps the
    upstream default. Tests shorten it so an unrenewed node Lease turns the Node NotReady sooner."""

    scheduler_config: Path | None = None
    """A KubeSchedulerConfiguration to use instead of the default one (e.g. one adding an
    extender). Its ``clientConnection.kubeconfig`` is replaced by the devcluster's; leader election
    is turned off unless the file says otherwise."""

    start_timeout_s: float = 180.0
    """Seconds each component has to become healthy."""

    stop_timeout_s: float = 15.0
    """Seconds between SIGTERM and SIGKILL when stopping a component."""

    unsafe_no_fsync: bool = True
    """etcd without fsync: much faster on slow disks; data may be lost on power loss."""

    extra_args: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    """Extra flags per component name, appended after the devcluster's own."""


@dataclass(frozen=True)
class Ports:
    etcd_client: int
    etcd_peer: int
    apiserver: int
    controller_manager: int
    scheduler: int

    def as_dict(self) -> dict[str, int]:
        return {
            "etcd_client": self.etcd_client,
            "etcd_peer": self.etcd_peer,
            "apiserver": self.apiserver,
            "controller_manager": self.controller_manager,
            "scheduler": self.scheduler,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Ports:
        return cls(**{k: int(d[k]) for k in cls.__dataclass_fields__})


@dataclass(frozen=True)
class Layout:
    """Paths inside a state directory (pure: building one touches no file)."""

    root: Path

    @property
    def state_file(self) -> Path:
        return self.root / "cluster.json"

    @property
    def pki_dir(self) -> Path:
        return self.root / "pki"

    @property
    def etcd_dir(self) -> Path:
        return self.root / "etcd"

    @property
    def logs_dir(self) -> Path:
        return self.root / "logs"

    @property
    def serving_dir(self) -> Path:
        """Self-signed serving certificates of the scheduler and controller manager."""
        return self.root / "serving"

    @property
    def kubeconfig(self) -> Path:
        return self.root / "kubeconfig"

    @property
    def scheduler_config(self) -> Path:
        return self.root / "kube-scheduler-config.yaml"

    def component_kubeconfig(self, component: str) -> Path:
        return self.root / f"{component}.kubeconfig"

    def log(self, component: str) -> Path:
        return self.logs_dir / f"{component}.log"


@dataclass(frozen=True)
class ComponentStatus:
    name: str
    pid: int | None
    running: bool
    healthy: bool
    url: str | None
    log: Path


# --- pure helpers ---------------------------------------------------------------------------------


def free_ports(n: int, host: str = HOST) -> list[int]:
    """``n`` distinct ports free on ``host`` right now (the OS picks them)."""
    socks: list[socket.socket] = []
    try:
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind((host, 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def port_free(port: int, host: str = HOST) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        # As Go's listeners do: a port whose old connections linger in TIME_WAIT is still usable.
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def pick_ports(previous: Ports | None = None) -> Ports:
    """The previous ports when all are still free (the cluster keeps its address), else new ones."""
    if previous is not None and all(port_free(p) for p in previous.as_dict().values()):
        return previous
    return Ports(*free_ports(5))


def apiserver_url(ports: Ports) -> str:
    return f"https://{HOST}:{ports.apiserver}"


def health_url(component: str, ports: Ports) -> str:
    return {
        "etcd": f"http://{HOST}:{ports.etcd_client}/health",
        "kube-apiserver": f"{apiserver_url(ports)}/readyz",
        "kube-controller-manager": f"https://{HOST}:{ports.controller_manager}/healthz",
        "kube-scheduler": f"https://{HOST}:{ports.scheduler}/healthz",
    }[component]


def kubeconfig_dict(server: str, ca_pem: bytes, cert_pem: bytes, key_pem: bytes, user: str) -> dict[str, Any]:
    """A kubeconfig with one cluster, one user (client certificate) and one current context."""

    def b64(data: bytes) -> str:
        return base64.b64encode(data).decode()

    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {"name": "kubeagora", "cluster": {"server": server, "certificate-authority-data": b64(ca_pem)}}
        ],
        "users": [
            {
                "name": user,
                "user": {"client-certificate-data": b64(cert_pem), "client-key-data": b64(key_pem)},
            }
        ],
        "contexts": [{"name": "kubeagora", "context": {"cluster": "kubeagora", "user": user}}],
        "current-context": "kubeagora",
    }


def scheduler_config_dict(kubeconfig: Path, base: Mapping[str, Any] | None = None,
                          pki: pki_mod.Pki | None = None) -> dict[str, Any]:
    """A KubeSchedulerConfiguration for the devcluster, optionally built on a user's one. An extender with
    ``enableHTTPS`` and no ``tlsConfig`` gets the devcluster's own (with ``pki``): it verifies the extender
    with the cluster CA (which signed ``scheduler-extender.crt``) and presents the scheduler's client
    certificate, which an extender run with ``--client-ca-file`` the CA requires."""
    cfg: dict[str, Any] = dict(base) if base else {}
    cfg.setdefault("apiVersion", SCHEDULER_CONFIG_API)
    cfg.setdefault("kind", "KubeSchedulerConfiguration")
    cfg["clientConnection"] = {**dict(cfg.get("clientConnection") or {}), "kubeconfig": str(kubeconfig)}
    election = dict(cfg.get("leaderElection") or {})
    election.setdefault("leaderElect", False)
    cfg["leaderElection"] = election
    extenders = cfg.get("extenders")
    if pki is not None and isinstance(extenders, list):
        cfg["extenders"] = [_with_devcluster_tls(ext, pki) for ext in extenders]
    return cfg


def _with_devcluster_tls(extender: Any, pki: pki_mod.Pki) -> Any:
    if not isinstance(extender, dict) or not extender.get("enableHTTPS") or extender.get("tlsConfig"):
        return extender
    return {**extender, "tlsConfig": {"caFile": str(pki.ca_cert), "certFile": str(pki.client_cert(pki_mod.SCHEDULER)),
                                      "keyFile": str(pki.client_key(pki_mod.SCHEDULER))}}


def load_scheduler_config(path: Path) -> dict[str, Any]:
    """Read a user's KubeSchedulerConfiguration, with errors that name the file and field."""
    try:
        data = yaml.safe_load(path.read_text())
    except OSError as e:
        raise DevClusterError(f"{path}: cannot read scheduler config: {e.strerror}") from None
    except yaml.YAMLError as e:
        raise DevClusterError(f"{path}: malformed YAML: {e}") from None
    if not isinstance(data, dict):
        raise DevClusterError(f"{path}: a KubeSchedulerConfiguration must be a YAML mapping")
    if data.get("kind", "KubeSchedulerConfiguration") != "KubeSchedulerConfiguration":
        raise DevClusterError(f"{path}: field 'kind' is {data.get('kind')!r}, not KubeSchedulerConfiguration")
    return data


def component_args(component: str, layout: Layout, ports: Ports, settings: Settings) -> list[str]:
    """The flags of one component (after the subcommand name)."""
    p = pki_mod.Pki(layout.pki_dir)
    if component == "etcd":
        args = [
            "--name=kubeagora",
            f"--data-dir={layout.etcd_dir}",
            f"--listen-client-urls=http://{HOST}:{ports.etcd_client}",
            f"--listen-peer-urls=http://{HOST}:{ports.etcd_peer}",
        ]
        if settings.unsafe_no_fsync:
            args.append("--unsafe-no-fsync")
    elif component == "kube-apiserver":
        args = [
            f"--etcd-servers=http://{HOST}:{ports.etcd_client}",
            f"--bind-address={HOST}",
            f"--advertise-address={HOST}",
            # A loopback address may not be an Endpoints address, so the "kubernetes" Service
            # gets no endpoints; nothing here runs in a real pod network anyway.
            "--endpoint-reconciler-type=none",
            f"--secure-port={ports.apiserver}",
            f"--cert-dir={layout.pki_dir}",  # holds apiserver.crt / apiserver.key
            f"--client-ca-file={p.ca_cert}",
            f"--service-account-issuer={apiserver_url(ports)}",
            f"--service-account-key-file={p.sa_pub}",
            f"--service-account-signing-key-file={p.sa_key}",
            f"--service-cluster-ip-range={SERVICE_CLUSTER_IP_RANGE}",
            "--authorization-mode=Node,RBAC",
            "--allow-privileged=true",
            # Aggregation layer, so aggregated APIs (e.g. custom metrics) work and the scheduler
            # and controller manager find a request-header CA for delegated authentication.
            f"--requestheader-client-ca-file={p.ca_cert}",
            f"--requestheader-allowed-names={pki_mod.FRONT_PROXY.common_name}",
            "--requestheader-username-headers=X-Remote-User",
            "--requestheader-group-headers=X-Remote-Group",
            "--requestheader-extra-headers-prefix=X-Remote-Extra-",
            f"--proxy-client-cert-file={p.client_cert(pki_mod.FRONT_PROXY)}",
            f"--proxy-client-key-file={p.client_key(pki_mod.FRONT_PROXY)}",
            # No kube-proxy runs, so a Service's cluster IP leads nowhere: the aggregator dials an
            # endpoint of the APIService's Service instead (e.g. the mock kubelet's metrics API).
            "--enable-aggregator-routing=true",
        ]
    elif component == "kube-controller-manager":
        kubeconfig = layout.component_kubeconfig(component)
        args = [
            f"--kubeconfig={kubeconfig}",
            f"--authentication-kubeconfig={kubeconfig}",
            f"--authorization-kubeconfig={kubeconfig}",
            f"--bind-address={HOST}",
            f"--secure-port={ports.controller_manager}",
            f"--cert-dir={layout.serving_dir / component}",
            "--leader-elect=false",
            "--controllers=*",  # every controller on by default, node-lifecycle included
            "--use-service-account-credentials=true",
            f"--root-ca-file={p.ca_cert}",
            f"--service-account-private-key-file={p.sa_key}",
            f"--cluster-signing-cert-file={p.ca_cert}",
            f"--cluster-signing-key-file={p.ca_key}",
            f"--service-cluster-ip-range={SERVICE_CLUSTER_IP_RANGE}",
        ]
        if settings.node_monitor_grace_period:
            args.append(f"--node-monitor-grace-period={settings.node_monitor_grace_period}")
    elif component == "kube-scheduler":
        kubeconfig = layout.component_kubeconfig(component)
        args = [
            f"--config={layout.scheduler_config}",
            f"--authentication-kubeconfig={kubeconfig}",
            f"--authorization-kubeconfig={kubeconfig}",
            f"--bind-address={HOST}",
            f"--secure-port={ports.scheduler}",
            f"--cert-dir={layout.serving_dir / component}",
        ]
    else:
        raise ValueError(f"unknown component {component!r}; expected one of {', '.join(COMPONENTS)}")
    return args + list(settings.extra_args.get(component, ()))


# --- processes ------------------------------------------------------------------------------------


def _proc_state(pid: int) -> str | None:
    """The state letter of /proc/<pid>/stat (R, S, Z, ...), or None where /proc is absent."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rpartition(")")[2].split()[0]


def _reap(pid: int) -> None:
    """Collect the exit status of our own child, so it does not linger as a zombie."""
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


def pid_alive(pid: int, component: str | None = None) -> bool:
    """Whether ``pid`` runs (zombies count as gone), and, with ``component``, runs that component."""
    _reap(pid)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    if _proc_state(pid) == "Z":
        return False
    if component is not None:
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            return sys.platform != "linux"  # no /proc to check against (macOS): trust the pid
        return len(argv) > 1 and argv[0].endswith(BINARY_NAME.encode()) and argv[1] == component.encode()
    return True


def stop_pid(pid: int, timeout_s: float) -> None:
    """SIGTERM the process group of ``pid``; SIGKILL it if it outlives ``timeout_s``."""
    for sig, wait in ((signal.SIGTERM, timeout_s), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(pid, sig)
        except ProcessLookupError:
            _reap(pid)
            return
        except PermissionError:
            os.kill(pid, sig)
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if not pid_alive(pid):
                return
            time.sleep(0.1)
    if pid_alive(pid):
        raise DevClusterError(f"process {pid} survived SIGKILL")


def _tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


# --- the cluster ----------------------------------------------------------------------------------


class DevCluster:
    """The local control plane whose state lives in ``state_dir``.

    ``binary`` overrides where the control-plane binary comes from (see ``binary.resolve_binary``);
    ``progress`` receives one short line per step.
    """

    def __init__(
        self,
        state_dir: Path = DEFAULT_STATE_DIR,
        *,
        binary: Path | None = None,
        settings: Settings | None = None,
        progress: Progress = _quiet,
    ) -> None:
        self.layout = Layout(state_dir.expanduser().resolve())
        self.binary = binary
        self.settings = settings or Settings()
        self.progress = progress
        self._children: dict[str, subprocess.Popen[bytes]] = {}

    # state file --------------------------------------------------------------------------------

    def _read_state(self) -> dict[str, Any]:
        try:
            data = json.loads(self.layout.state_file.read_text())
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as e:
            raise DevClusterError(f"{self.layout.state_file}: unreadable state file: {e}") from None
        if not isinstance(data, dict):
            raise DevClusterError(f"{self.layout.state_file}: unreadable state file: not a JSON object")
        return data

    def _write_state(self, data: Mapping[str, Any]) -> None:
        tmp = self.layout.state_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(data, indent=2, sort_keys=True))
        tmp.replace(self.layout.state_file)

    def _pids(self) -> dict[str, int]:
        pids = self._read_state().get("pids", {})
        return {k: int(v) for k, v in pids.items()} if isinstance(pids, dict) else {}

    # queries -----------------------------------------------------------------------------------

    @property
    def kubeconfig(self) -> Path:
        """The admin kubeconfig (written by ``up``)."""
        return self.layout.kubeconfig

    @property
    def ports(self) -> Ports | None:
        raw = self._read_state().get("ports")
        return Ports.from_dict(raw) if isinstance(raw, dict) else None

    @property
    def server(self) -> str | None:
        ports = self.ports
        return apiserver_url(ports) if ports else None

    def recorded_binary(self) -> Path | None:
        raw = self._read_state().get("binary")
        return Path(raw) if isinstance(raw, str) else None

    def pids(self) -> dict[str, int]:
        """The pid recorded for each component started (running or not)."""
        return self._pids()

    def running(self) -> dict[str, int]:
        """The pid of each component whose recorded process still runs."""
        return {name: pid for name, pid in self._pids().items() if pid_alive(pid, name)}

    def healthy(self, component: str) -> bool:
        ports = self.ports
        return ports is not None and self._probe(component, ports)

    def status(self) -> list[ComponentStatus]:
        pids = self._pids()
        ports = self.ports
        out = []
        for name in COMPONENTS:
            pid = pids.get(name)
            running = pid is not None and pid_alive(pid, name)
            out.append(
                ComponentStatus(
                    name=name,
                    pid=pid,
                    running=running,
                    healthy=running and ports is not None and self._probe(name, ports),
                    url=health_url(name, ports) if ports else None,
                    log=self.layout.log(name),
                )
            )
        return out

    def _ssl_context(self, component: str) -> ssl.SSLContext:
        if component == "kube-apiserver":
            p = pki_mod.Pki(self.layout.pki_dir)
            ctx = ssl.create_default_context(cafile=str(p.ca_cert))
            ctx.load_cert_chain(str(p.client_cert(pki_mod.ADMIN)), str(p.client_key(pki_mod.ADMIN)))
            return ctx
        # The scheduler and controller manager serve a self-signed certificate of their own.
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        return ctx

    def _probe(self, component: str, ports: Ports, timeout_s: float = 3.0) -> bool:
        url = health_url(component, ports)
        ctx = self._ssl_context(component) if url.startswith("https") else None
        try:
            with urllib.request.urlopen(url, timeout=timeout_s, context=ctx) as resp:
                body: str = resp.read().decode(errors="replace")
                status = int(resp.status)
        except (urllib.error.URLError, OSError, ssl.SSLError, ValueError):
            return False
        if status != 200:
            return False
        if component == "etcd":
            try:
                health = json.loads(body).get("health")
                return bool(health == "true" or health is True)
            except ValueError:
                return False
        return body.strip() == "ok"

    # up ----------------------------------------------------------------------------------------

    def up(self) -> bool:
        """Start the control plane; False (and nothing done) when it already runs and is healthy."""
        running = self.running()
        if len(running) == len(COMPONENTS) and all(self.healthy(n) for n in COMPONENTS):
            self.progress(f"already running (API server {self.server})")
            return False
        if running:
            self.progress(f"partly running ({', '.join(running)}); restarting everything")
            self.down()

        override = self.settings.scheduler_config
        scheduler_base = load_scheduler_config(override.expanduser()) if override else None  # fail early
        binary = resolve_binary(self.binary, self.progress).resolve()
        layout = self.layout
        for d in (layout.root, layout.logs_dir, layout.etcd_dir, layout.serving_dir):
            d.mkdir(parents=True, exist_ok=True)
        layout.etcd_dir.chmod(0o700)
        self.progress("certificates and keys")
        pki = pki_mod.ensure_pki(layout.pki_dir)

        state = self._read_state()
        previous = state.get("ports")
        ports = pick_ports(Ports.from_dict(previous) if isinstance(previous, dict) else None)
        self._write_kubeconfigs(pki, ports)
        cfg = scheduler_config_dict(layout.component_kubeconfig("kube-scheduler"), scheduler_base, pki)
        layout.scheduler_config.write_text(yaml.safe_dump(cfg, sort_keys=False))
        state = {"binary": str(binary), "ports": ports.as_dict(), "pids": {}, "server": apiserver_url(ports)}
        self._write_state(state)

        try:
            for name in COMPONENTS:
                self._start(name, binary, ports, state)
        except BaseException:
            self.progress("start failed; stopping what was started")
            with contextlib.suppress(DevClusterError):
                self.down()
            raise
        self.progress(f"control plane ready: {apiserver_url(ports)}  kubeconfig: {layout.kubeconfig}")
        return True

    def _write_kubeconfigs(self, pki: pki_mod.Pki, ports: Ports) -> None:
        ca = pki.ca_cert.read_bytes()
        targets = (
            (pki_mod.ADMIN, self.layout.kubeconfig),
            (pki_mod.SCHEDULER, self.layout.component_kubeconfig("kube-scheduler")),
            (pki_mod.CONTROLLER_MANAGER, self.layout.component_kubeconfig("kube-controller-manager")),
        )
        for who, path in targets:
            cfg = kubeconfig_dict(
                apiserver_url(ports), ca, pki.client_cert(who).read_bytes(), pki.client_key(who).read_bytes(),
                who.common_name,
            )  # fmt: skip
            path.touch(mode=0o600, exist_ok=True)
            path.write_text(yaml.safe_dump(cfg, sort_keys=False))

    def _start(self, name: str, binary: Path, ports: Ports, state: dict[str, Any]) -> None:
        self.progress(f"starting {name}")
        log_path = self.layout.log(name)
        args = [str(binary), name, *component_args(name, self.layout, ports, self.settings)]
        with log_path.open("ab") as log:
            log.write(f"\n==> {time.strftime('%Y-%m-%dT%H:%M:%S')} {' '.join(args)}\n".encode())
            log.flush()
            proc = subprocess.Popen(
                args, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                cwd=self.layout.root, start_new_session=True,
            )  # fmt: skip
        self._children[name] = proc
        state["pids"][name] = proc.pid
        self._write_state(state)

        deadline = time.monotonic() + self.settings.start_timeout_s
        while True:
            code = proc.poll()
            if code is not None:
                raise DevClusterError(
                    f"{name} exited with status {code} while starting; "
                    f"last lines of {log_path}:\n{_tail(log_path)}"
                )
            if self._probe(name, ports):
                self.progress(f"{name} healthy (pid {proc.pid})")
                return
            if time.monotonic() > deadline:
                raise DevClusterError(
                    f"{name} not healthy at {health_url(name, ports)} "
                    f"after {self.settings.start_timeout_s:.0f}s; "
                    f"last lines of {log_path}:\n{_tail(log_path)}"
                )
            time.sleep(0.25)

    # down --------------------------------------------------------------------------------------

    def down(self) -> list[str]:
        """Stop every component (reverse start order); the names of those that were running."""
        state = self._read_state()
        pids = self._pids()
        stopped = []
        for name in reversed(COMPONENTS):
            pid = pids.get(name)
            if pid is None:
                continue
            if pid_alive(pid, name):
                self.progress(f"stopping {name} (pid {pid})")
                stop_pid(pid, self.settings.stop_timeout_s)
                stopped.append(name)
            child = self._children.pop(name, None)
            if child is not None:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    child.wait(timeout=1)
        if state:
            state["pids"] = {}
            self._write_state(state)
        return stopped

    # delete ------------------------------------------------------------------------------------

    def delete(self) -> bool:
        """Stop every component and remove the state directory (certificates, etcd data, logs);
        False when there was none. Safe to repeat. Refuses a directory that is not a devcluster's."""
        root = self.layout.root
        if not root.exists():
            return False
        ours = self.layout.state_file.exists() or self.layout.pki_dir.is_dir() or self.layout.etcd_dir.is_dir()
        if not ours and any(root.iterdir()):
            raise DevClusterError(f"{root} holds files but no cluster.json, pki/ or etcd/: not a devcluster's "
                                  "state directory, so it is not deleted")
        self.down()
        self.progress(f"removing {root}")
        shutil.rmtree(root)
        return True

    def holds_data(self) -> bool:
        """Whether etcd has data from an earlier start (objects survive ``down`` and ``up``)."""
        return (self.layout.etcd_dir / "member").is_dir()

    # kubectl -----------------------------------------------------------------------------------

    def kubectl(
        self, *args: str, input: str | None = None, timeout_s: float = 60.0
    ) -> subprocess.CompletedProcess[str]:
        """Run the binary's own kubectl (same release as the API server) with the admin kubeconfig."""
        binary = self.recorded_binary()
        if binary is None:
            raise DevClusterError(f"no cluster was started in {self.layout.root}")
        return subprocess.run(
            [str(binary), "kubectl", f"--kubeconfig={self.layout.kubeconfig}", *args],
            input=input, capture_output=True, text=True, timeout=timeout_s, check=False,
        )  # fmt: skip


# --- module-level conveniences ---------------------------------------------------------------------


def up(state_dir: Path = DEFAULT_STATE_DIR, **kwargs: Any) -> DevCluster:
    """Start (or find running) the control plane in ``state_dir``; returns its handle."""
    cluster = DevCluster(state_dir, **kwargs)
    cluster.up()
    return cluster


def down(state_dir: Path = DEFAULT_STATE_DIR) -> list[str]:
    """Stop the control plane in ``state_dir``; safe to call when nothing runs."""
    return DevCluster(state_dir).down()


def status(state_dir: Path = DEFAULT_STATE_DIR) -> list[ComponentStatus]:
    return DevCluster(state_dir).status()


def kubeconfig_path(state_dir: Path = DEFAULT_STATE_DIR) -> Path:
    return Layout(state_dir.expanduser().resolve()).kubeconfig


def parse_extra_args(items: Sequence[str]) -> dict[str, tuple[str, ...]]:
    """``["kube-apiserver=--v=2", ...]`` → ``{"kube-apiserver": ("--v=2",)}``."""
    out: dict[str, list[str]] = {}
    for item in items:
        name, sep, flag = item.partition("=")
        if not sep or name not in COMPONENTS or not flag:
            raise DevClusterError(
                f"--extra-arg {item!r}: expected COMPONENT=--flag=value, "
                f"COMPONENT one of {', '.join(COMPONENTS)}"
            )
        out.setdefault(name, []).append(flag)
    return {k: tuple(v) for k, v in out.items()}
