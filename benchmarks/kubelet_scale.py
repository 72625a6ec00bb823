"""Mock kubelet vs KWOK at scale: N mock nodes and P pods Running against the local control plane.

    .venv/bin/python benchmarks/kubelet_scale.py                    # 1,000 nodes, 10,000 pods, both
    .venv/bin/python benchmarks/kubelet_scale.py --nodes 200 --pods 2000 --only mock

For each of the two node simulators, on a fresh control plane of its own (same binary, same flags):
start the simulator with N nodes (the mock kubelet's ``--nodes N`` topology; KWOK gets the very same
Node objects, annotated ``kwok.x-k8s.io/node=fake``), create P pods as ``--deployments``
Deployments, and measure the time until all P pods are Running (and Ready), then the simulator's
CPU (% of one core, from /proc) and RSS over ``--steady-s`` seconds once everything runs. The mock
kubelet also serves ``--rps`` requests per second per service through the latency model and
exports /metrics, which a scrape every 5 s exercises; KWOK does neither.

KWOK is built with ``go install sigs.k8s.io/kwok/cmd/kwok@VERSION`` into
``~/.cache/kubeagora/kwok/VERSION/`` (nothing of it lands in this repository) and run with its own
stages (node-initialize, node-heartbeat-with-lease, pod-ready, pod-complete, pod-delete) read from
the module cache.

To bind 10,000 pods in minutes the control plane's clients are allowed more than their default
20–50 requests per second: the scheduler's ``clientConnection`` gets qps 1000 / burst 2000, and the
controller manager ``--kube-api-qps=1000 --kube-api-burst=2000`` (the ReplicaSet controller creates
the pods).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import yaml

from kubeagora.devcluster import DevCluster, Settings
from kubeagora.devcluster.pki import ADMIN, Pki
from kubeagora.devcluster.stack import stop_process
from kubeagora.kubelet import nodes as nodes_mod
from kubeagora.kubelet.plan import make_plan

ROOT = Path(__file__).resolve().parent.parent
KWOK_VERSION = "v0.8.0"
KWOK_STAGES = ("node/fast/node-initialize.yaml", "node/heartbeat-with-lease/node-heartbeat-with-lease.yaml",
               "pod/fast/pod-ready.yaml", "pod/fast/pod-complete.yaml", "pod/fast/pod-delete.yaml")
CLK_TCK = os.sysconf("SC_CLK_TCK")


@dataclass
class Result:
    simulator: str
    nodes: int
    pods: int
    nodes_ready_s: float
    pods_running_s: float
    pods_ready_s: float
    steady_cpu_pct: float
    ramp_cpu_pct: float
    rss_mib: float
    steady_window_s: float
    notes: str = ""


def log(msg: str) -> None:
    print(f"{time.strftime('%H:%M:%S')} {msg}", file=sys.stderr, flush=True)


# --- /proc ---------------------------------------------------------------------------------------

def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime + stime


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def competing_processes(exclude: set[int], top: int = 5) -> list[str]:
    out = subprocess.run(["ps", "-eo", "pid,pcpu,etime,args", "--sort=-pcpu", "--no-headers"],
                         capture_output=True, text=True, check=False).stdout.splitlines()
    rows = []
    for line in out:
        pid, pcpu, _, args = ([*line.split(None, 3), "", "", "", ""])[:4]
        if int(pid) in exclude or float(pcpu) < 5.0:
            continue
        rows.append(f"{pcpu}% {args[:90]}")
    return rows[:top]


# --- the API, read-only, for counting pods -----------------------------------------------------------

class Counter:
    """Counts pods and nodes through metadata-only lists (cheap for the API server to send)."""

    def __init__(self, cluster: DevCluster) -> None:
        pki = Pki(cluster.layout.pki_dir)
        self.ctx = ssl.create_default_context(cafile=str(pki.ca_cert))
        self.ctx.load_cert_chain(str(pki.client_cert(ADMIN)), str(pki.client_key(ADMIN)))
        assert cluster.server is not None
        self.server = cluster.server

    def _get(self, path: str, accept: str = "application/json") -> Any:
        req = urllib.request.Request(self.server + path, headers={"Accept": accept})
        with urllib.request.urlopen(req, context=self.ctx, timeout=60) as resp:
            return json.loads(resp.read())

    def pods(self) -> tuple[int, int]:
        """(Running pods, Ready pods), from the server-side table (name, ready, status, ...)."""
        body = self._get("/api/v1/pods?fieldSelector=status.phase%3DRunning&includeObject=None",
                         "application/json;as=Table;v=v1;g=meta.k8s.io")
        rows = body.get("rows") or []
        ready = sum(1 for r in rows if str(r["cells"][1]).split("/")[0] == str(r["cells"][1]).split("/")[-1])
        return len(rows), ready

    def ready_nodes(self) -> int:
        body = self._get("/api/v1/nodes")
        return sum(1 for n in body["items"] for c in n["status"].get("conditions") or ()
                   if c["type"] == "Ready" and c["status"] == "True")


# --- one run -------------------------------------------------------------------------------------

def deployments(n_deploy: int, pods: int) -> list[dict[str, Any]]:
    out = []
    per = [pods // n_deploy + (1 if i < pods % n_deploy else 0) for i in range(n_deploy)]
    for i, replicas in enumerate(per):
        labels = {"app": f"svc-{i}", "kubeagora.io/service": f"svc-{i}"}
        out.append({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": f"svc-{i}", "namespace": "default"},
            "spec": {
                "replicas": replicas, "selector": {"matchLabels": labels},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {"containers": [{"name": "app", "image": "registry.invalid/app:1",
                                             "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}}}]},
                },
            },
        })
    return out


def start_cluster(state: Path) -> DevCluster:
    shutil.rmtree(state, ignore_errors=True)
    state.mkdir(parents=True)
    sched = state.parent / f"{state.name}-scheduler.yaml"
    sched.write_text(yaml.safe_dump({
        "apiVersion": "kubescheduler.config.k8s.io/v1", "kind": "KubeSchedulerConfiguration",
        "clientConnection": {"qps": 1000, "burst": 2000},
    }))
    settings = Settings(scheduler_config=sched, extra_args={
        "kube-controller-manager": ("--kube-api-qps=1000", "--kube-api-burst=2000"),
    })
    cluster = DevCluster(state, settings=settings, progress=lambda m: log(f"  devcluster: {m}"))
    cluster.up()
    return cluster


def kubectl(cluster: DevCluster, *args: str, data: str | None = None) -> None:
    proc = cluster.kubectl(*args, input=data, timeout_s=600)
    if proc.returncode != 0:
        raise RuntimeError(f"kubectl {' '.join(args)}: {proc.stderr.strip()[:500]}")


def wait(what: str, probe: Any, timeout_s: float, every_s: float = 2.0) -> float:
    t0 = time.monotonic()
    while True:
        if probe():
            return time.monotonic() - t0
        if time.monotonic() - t0 > timeout_s:
            raise TimeoutError(f"timed out after {timeout_s:.0f} s waiting for {what}")
        time.sleep(every_s)


def kwok_binary(version: str) -> tuple[Path, Path]:
    """The kwok binary (built once into the cache) and its module directory (for the stages)."""
    gobin = Path.home() / ".cache" / "kubeagora" / "kwok" / version
    binary = gobin / "kwok"
    if not binary.exists():
        log(f"building kwok {version} (go install; a few minutes the first time)")
        gobin.mkdir(parents=True, exist_ok=True)
        subprocess.run(["go", "install", f"sigs.k8s.io/kwok/cmd/kwok@{version}"], check=True,
                       env={**os.environ, "GOBIN": str(gobin), "GOFLAGS": "-mod=mod"}, cwd=tempfile.gettempdir())
    modcache = subprocess.run(["go", "env", "GOMODCACHE"], capture_output=True, text=True, check=True).stdout.strip()
    return binary, Path(modcache) / f"sigs.k8s.io/kwok@{version}"


def run_one(which: str, args: argparse.Namespace, work: Path) -> Result:
    plan = make_plan(None, args.nodes, seed=1)
    n_nodes = len(plan.names)
    log(f"[{which}] fresh control plane; {n_nodes} nodes, {args.pods} pods")
    cluster = start_cluster(work / which)
    counter = Counter(cluster)
    proc: subprocess.Popen[bytes] | None = None
    metrics_url = ""
    notes = ""
    try:
        logf = (work / f"{which}.log").open("wb")
        if which == "mock":
            port = 19200
            metrics_url = f"http://127.0.0.1:{port}/metrics"
            cmd = [str(ROOT / ".venv" / "bin" / "kubeagora"), "mock-kubelet", "--kubeconfig", str(cluster.kubeconfig),
                   "--nodes", str(args.nodes), "--metrics-port", str(port), "--default-rps", str(args.rps)]
            proc = subprocess.Popen(cmd, stdout=logf, stderr=subprocess.STDOUT, start_new_session=True)
        else:
            binary, module = kwok_binary(args.kwok_version)
            stages = "\n---\n".join((module / "kustomize" / "stage" / s).read_text() for s in KWOK_STAGES)
            config = work / "kwok-stages.yaml"
            config.write_text(stages)
            cmd = [str(binary), f"--kubeconfig={cluster.kubeconfig}", f"--config={config}",
                   "--manage-all-nodes=false", "--manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake",
                   "--node-lease-duration-seconds=40", "--cidr=10.64.0.0/10"]
            proc = subprocess.Popen(cmd, stdout=logf, stderr=subprocess.STDOUT, start_new_session=True)
            now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
            objs = []
            for j, (name, node) in enumerate(zip(plan.names, plan.topology.nodes, strict=True)):
                m = nodes_mod.manifest(node, name, j, now)
                m["metadata"]["annotations"]["kwok.x-k8s.io/node"] = "fake"
                objs.append(m)
            log(f"[kwok] creating {n_nodes} fake nodes")
            kubectl(cluster, "create", "-f", "-", data=yaml.safe_dump({"apiVersion": "v1", "kind": "List",
                                                                         "items": objs}))
        t_start = time.monotonic()
        cpu0 = cpu_seconds(proc.pid)
        nodes_s = wait(f"{n_nodes} Ready nodes", lambda: proc.poll() is None and counter.ready_nodes() >= n_nodes,
                       args.timeout_s)
        if proc.poll() is not None:
            raise RuntimeError(f"{which} exited with {proc.returncode}; see {work / f'{which}.log'}")
        log(f"[{which}] {n_nodes} nodes Ready after {nodes_s:.1f} s")
        competing = competing_processes({proc.pid, os.getpid(), *cluster.running().values()})
        t_deploy = time.monotonic()
        kubectl(cluster, "apply", "-f", "-", data=yaml.safe_dump_all(deployments(args.deployments, args.pods)))
        running_s = ready_s = float("nan")
        last = (0, 0)
        deadline = t_deploy + args.timeout_s
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"{which} exited with {proc.returncode}; see {work / f'{which}.log'}")
            last = counter.pods()
            t = time.monotonic() - t_deploy
            if last[0] >= args.pods and running_s != running_s:
                running_s = t
                log(f"[{which}] all {args.pods} pods Running after {t:.1f} s")
            if last[1] >= args.pods:
                ready_s = t
                log(f"[{which}] all {args.pods} pods Ready after {t:.1f} s")
                break
            log(f"[{which}]   {t:6.0f} s: {last[0]} Running, {last[1]} Ready")
            time.sleep(5.0)
        else:
            notes = f"timed out: {last[0]} Running, {last[1]} Ready of {args.pods}"
            log(f"[{which}] {notes}")
        ramp_cpu = (cpu_seconds(proc.pid) - cpu0) / max(time.monotonic() - t_start, 1e-9) * 100
        log(f"[{which}] steady window {args.steady_s:.0f} s")
        time.sleep(5.0)  # let the last status writes settle
        c0, w0 = cpu_seconds(proc.pid), time.monotonic()
        rss = rss_mib(proc.pid)
        while time.monotonic() - w0 < args.steady_s:
            time.sleep(5.0)
            rss = max(rss, rss_mib(proc.pid))
            if metrics_url:
                with urllib.request.urlopen(metrics_url, timeout=30) as resp:
                    resp.read()
        window = time.monotonic() - w0
        steady = (cpu_seconds(proc.pid) - c0) / window * 100
        if competing:
            notes = "; ".join(filter(None, [notes, "competing: " + " | ".join(competing)]))
        return Result(which, n_nodes, args.pods, round(nodes_s, 1), round(running_s, 1), round(ready_s, 1),
                      round(steady, 1), round(ramp_cpu, 1), round(rss, 1), round(window, 1), notes)
    finally:
        if proc is not None:
            stop_process(proc, 20)
        cluster.down()


def table(results: list[Result]) -> str:
    rows = ["| simulator | nodes | pods | nodes Ready (s) | pods Running (s) | pods Ready (s) | "
            "steady CPU (% core) | CPU during ramp (% core) | RSS (MiB) |",
            "|---|--:|--:|--:|--:|--:|--:|--:|--:|"]
    for r in results:
        name = "kubeagora mock kubelet (+ traffic, /metrics)" if r.simulator == "mock" else f"KWOK {KWOK_VERSION}"
        rows.append(f"| {name} | {r.nodes:,} | {r.pods:,} | {r.nodes_ready_s:g} | {r.pods_running_s:g} | "
                    f"{r.pods_ready_s:g} | {r.steady_cpu_pct:g} | {r.ramp_cpu_pct:g} | {r.rss_mib:g} |")
    return "\n".join(rows)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt  # so a SIGTERM also stops the simulator and the control plane (finally:)


def main() -> None:
    signal.signal(signal.SIGTERM, _interrupt)
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--nodes", type=int, default=1000)
    p.add_argument("--pods", type=int, default=10_000)
    p.add_argument("--deployments", type=int, default=10)
    p.add_argument("--rps", type=float, default=100.0, help="mock kubelet: requests/s per service")
    p.add_argument("--steady-s", type=float, default=60.0)
    p.add_argument("--timeout-s", type=float, default=1800.0)
    p.add_argument("--only", choices=("mock", "kwok"))
    p.add_argument("--kwok-version", default=KWOK_VERSION)
    p.add_argument("--work-dir", type=Path, default=Path(tempfile.gettempdir()) / "kubeagora-kubelet-scale")
    p.add_argument("--json", type=Path)
    args = p.parse_args()
    if args.nodes < 1 or args.pods < 1 or args.deployments < 1 or args.steady_s <= 0:
        p.error("--nodes, --pods, --deployments and --steady-s must be positive")
    args.work_dir.mkdir(parents=True, exist_ok=True)
    results = [run_one(which, args, args.work_dir) for which in ("mock", "kwok") if args.only in (None, which)]
    print(table(results))
    for r in results:
        if r.notes:
            print(f"\n{r.simulator}: {r.notes}")
    if args.json:
        args.json.write_text(json.dumps([asdict(r) for r in results], indent=2))


if __name__ == "__main__":
    main()
