"""Scheduler extender: filter + prioritize latency at 1,000 and 5,000 nodes, and the scheduler's pods/s
with and without it on the local control plane, side by side.

    .venv/bin/python benchmarks/extender_latency.py                       # everything (~3 min)
    .venv/bin/python benchmarks/extender_latency.py --skip-cluster        # latency only
    .venv/bin/python benchmarks/extender_latency.py --cluster-nodes 300 --cluster-pods 500

Latency: a watch cache filled with synthetic Nodes (the mock kubelet's ``--nodes N`` topology) and
three pods per node, and three kinds of request in turn — a resident web pod (intent, two regions), an
LLM pod (one GPU, intent: cloud tier), a web pod of no intent — each offered every node (the worst
case: kube-scheduler offers at most the feasible nodes it found, ~420 of 1,000 and ~500 of 5,000 by
its default ``percentageOfNodesToScore``). "pure" times ``filter_pod`` + ``prioritize_pod`` on the
parsed pod; the HTTP paths time each verb's round trip (JSON both ways, keep-alive) to a server of the
same cache in a child process, side by side in one run: "before" is the server as it was before its
hardening (each verb parsed and answered on the event loop, plain HTTP), "after" the one
``kubeagora scheduler-extender`` runs now (the verbs in a worker process of their own with the body
checks, HTTPS, the client presenting the scheduler's certificate).

Throughput: for each mode a fresh control plane (the scheduler's client at qps 1000 / burst 2000, as
in ``kubelet_scale.py``), ``--cluster-nodes`` mock nodes, an intent restricting a Deployment to two
regions, then the Deployment scaled to ``--cluster-pods``; the time from the scale until every pod is
bound. "with" configures the scheduler from ``manifests/devcluster/scheduler-config.yaml`` (HTTPS, the
scheduler's client certificate, both from the devcluster's PKI).
"""

from __future__ import annotations

import argparse
import http.client
import json
import multiprocessing
import shutil
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from kubeagora.devcluster import DevCluster, Settings
from kubeagora.devcluster.cluster import free_ports
from kubeagora.devcluster.pki import SCHEDULER, Pki, ensure_pki
from kubeagora.devcluster.stack import stop_process
from kubeagora.kubelet import nodes as nodes_mod
from kubeagora.kubelet.plan import make_plan
from kubeagora.scheduler_plugin.bids import BidSettings
from kubeagora.scheduler_plugin.cache import DEPLOYMENTS, INTENTS, NODES, PODS, ClusterCache
from kubeagora.scheduler_plugin.filtering import filter_pod
from kubeagora.scheduler_plugin.scoring import prioritize_pod
from kubeagora.scheduler_plugin.verbs import answer_request
from kubeagora.scheduler_plugin.watch import CacheUpdates
from kubeagora.scheduler_plugin.workload import pod_demand

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE_BY_CLASS = {"cpu": "web", "mcu": "iot-ingest", "gpu": "llm", "tpu": "ml-inference"}


def log(msg: str) -> None:
    print(f"{time.strftime('%H:%M:%S')} {msg}", file=sys.stderr, flush=True)


def pod(name: str, app: str, template: str, node: str | None = None, gpus: int = 0, tpus: int = 0) -> dict[str, Any]:
    limits = {k: str(v) for k, v in (("nvidia.com/gpu", gpus), ("google.com/tpu", tpus)) if v}
    spec: dict[str, Any] = {"containers": [{"name": "app", "image": "registry.invalid/app:1", "resources": {
        "requests": {"cpu": "100m", "memory": "64Mi", **limits}}}]}
    if node:
        spec["nodeName"] = node
    return {"metadata": {"name": name, "namespace": "bench", "labels": {"app": app},
                         "annotations": {"kubeagora.io/template": template}},
            "spec": spec, "status": {"phase": "Running"}}


def intent(name: str, **placement: list[str]) -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": "bench"},
            "spec": {"targetRef": {"kind": "Deployment", "name": name}, "placement": placement}}


def synthetic_cache(n: int, updates: CacheUpdates | None = None) -> tuple[ClusterCache, list[str]]:
    """A watch cache of the ``--nodes n`` topology (or those lists handed to ``updates``)."""
    plan = make_plan(None, n, seed=1)
    now = "2026-01-01T00:00:00Z"
    nodes = [nodes_mod.manifest(node, name, i, now) for i, (node, name) in enumerate(zip(plan.topology.nodes,
                                                                                           plan.names, strict=True))]
    pods = []
    for node, name in zip(plan.topology.nodes, plan.names, strict=True):
        cls = str(node.node_class)
        for k in range(3):
            pods.append(pod(f"{name}-{k}", f"bg-{cls}", TEMPLATE_BY_CLASS[cls], name,
                            gpus=int(cls == "gpu" and k == 0), tpus=int(cls == "tpu" and k == 0)))
    cache = ClusterCache()
    target: CacheUpdates = updates or cache
    target.replace(NODES, nodes)
    target.replace(PODS, pods)
    target.replace(DEPLOYMENTS, [{"metadata": {"name": a, "namespace": "bench"},
                                  "spec": {"selector": {"matchLabels": {"app": a}}}} for a in ("resident", "llm")])
    regions = sorted({nd.region for nd in plan.topology.nodes})[:2]
    target.replace(INTENTS, [intent("resident", regions=regions), intent("llm", tiers=["cloud"])])
    return cache, list(plan.names)


REQUEST_PODS = (pod("resident-x", "resident", "web"), pod("llm-x", "llm", "llm", gpus=1),
                pod("plain-x", "plain", "web"))


def percentiles_ms(samples_s: list[float]) -> tuple[float, float]:
    a = np.asarray(samples_s) * 1000.0
    return float(np.percentile(a, 50)), float(np.percentile(a, 99))


def pure_latency(cache: ClusterCache, names: list[str], requests: int) -> dict[str, tuple[float, float]]:
    settings = BidSettings()
    out: dict[str, list[float]] = {"filter": [], "prioritize": [], "both": []}
    for i in range(requests):
        p = REQUEST_PODS[i % len(REQUEST_PODS)]
        t0 = time.perf_counter()
        demand = pod_demand(p)
        passed = filter_pod(cache, demand, names).passed
        t1 = time.perf_counter()
        prioritize_pod(cache, pod_demand(p), p["metadata"]["annotations"], passed, settings)
        t2 = time.perf_counter()
        out["filter"].append(t1 - t0)
        out["prioritize"].append(t2 - t1)
        out["both"].append(t2 - t0)
    return {k: percentiles_ms(v) for k, v in out.items()}


def _inline_app(cache: ClusterCache) -> Any:
    """The server as it was before its hardening: each verb parsed and answered on the event loop, plain
    HTTP (the baseline of the before/after comparison; the same pure functions answer)."""
    from aiohttp import web

    async def verb(request: web.Request) -> web.Response:
        verdict = answer_request(cache, request.path.strip("/"), await request.read(), BidSettings())
        return web.Response(body=verdict.body, status=verdict.status, content_type="application/json")

    async def healthz(_: web.Request) -> web.Response:
        return web.Response(text="ok")

    app = web.Application(client_max_size=64 * 2**20)
    app.add_routes([web.post("/filter", verb), web.post("/prioritize", verb), web.get("/healthz", healthz)])
    return app


def _serve(n: int, port: int, mode: str, pki_dir: str) -> None:
    from aiohttp import web

    from kubeagora.scheduler_plugin.run import server_tls_context
    from kubeagora.scheduler_plugin.server import make_app
    from kubeagora.scheduler_plugin.verbs import ProcessVerbs
    from kubeagora.scheduler_plugin.watch import Replicated

    if mode == "before":
        cache, _ = synthetic_cache(n)
        web.run_app(_inline_app(cache), host="127.0.0.1", port=port, access_log=None, print=None)
        return
    pki = Pki(Path(pki_dir))
    cache, verbs = ClusterCache(), ProcessVerbs()
    synthetic_cache(n, Replicated(cache, verbs))  # the server's cache and the worker's replica
    tls = server_tls_context(pki.extender_cert, pki.extender_key, pki.ca_cert)
    web.run_app(make_app(cache, verbs, client_auth=True), host="127.0.0.1", port=port, access_log=None, print=None,
                ssl_context=tls)


def http_latency(n: int, names: list[str], requests: int, mode: str, pki: Pki) -> dict[str, tuple[float, float]]:
    """Each verb's round trip to the server in a child process: ``before`` (inline, plain HTTP) or
    ``after`` (as ``kubeagora scheduler-extender`` serves: verbs in a worker process, HTTPS, the
    client presenting the scheduler's certificate)."""
    (port,) = free_ports(1)
    child = multiprocessing.get_context("spawn").Process(target=_serve, args=(n, port, mode, str(pki.dir)))
    child.start()
    tls = None
    if mode == "after":
        tls = ssl.create_default_context(cafile=str(pki.ca_cert))
        tls.load_cert_chain(pki.client_cert(SCHEDULER), pki.client_key(SCHEDULER))

    def connect() -> http.client.HTTPConnection:
        if tls is None:
            return http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        return http.client.HTTPSConnection("127.0.0.1", port, timeout=30, context=tls)

    try:
        deadline = time.monotonic() + 180
        while True:
            try:
                probe = connect()
                probe.request("GET", "/healthz")
                if probe.getresponse().status == 200:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"the {mode} server did not become healthy")
            time.sleep(0.2)
        conn = connect()
        out: dict[str, list[float]] = {"filter": [], "prioritize": [], "both": []}

        def call(verb: str, body: bytes) -> Any:
            conn.request("POST", f"/{verb}", body=body, headers={"Content-Type": "application/json"})
            resp = conn.getresponse()
            data = resp.read()
            assert resp.status == 200, data[:200]
            return json.loads(data)

        for i in range(requests):
            p = REQUEST_PODS[i % len(REQUEST_PODS)]
            t0 = time.perf_counter()
            passed = call("filter", json.dumps({"Pod": p, "NodeNames": names}).encode())["NodeNames"]
            t1 = time.perf_counter()
            call("prioritize", json.dumps({"Pod": p, "NodeNames": passed}).encode())
            t2 = time.perf_counter()
            out["filter"].append(t1 - t0)
            out["prioritize"].append(t2 - t1)
            out["both"].append(t2 - t0)
        conn.close()
        return {k: percentiles_ms(v) for k, v in out.items()}
    finally:
        child.terminate()
        child.join(10)


# --- the scheduler's pods/s ----------------------------------------------------------------------------

MINIMAL_CRD: dict[str, Any] = {
    "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
    "metadata": {"name": "orchestrationintents.kubeagora.io"},
    "spec": {"group": "kubeagora.io", "scope": "Namespaced",
             "names": {"plural": "orchestrationintents", "kind": "OrchestrationIntent"},
             "versions": [{"name": "v1alpha1", "served": True, "storage": True, "schema": {"openAPIV3Schema": {
                 "type": "object", "x-kubernetes-preserve-unknown-fields": True}}}]},
}


def start(args: list[str], log_path: Path) -> subprocess.Popen[bytes]:
    with log_path.open("wb") as out:
        return subprocess.Popen([sys.executable, "-c", "from kubeagora.cli import app; app()", *args],
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


def stop(proc: subprocess.Popen[bytes]) -> None:
    stop_process(proc, 60)


def wait(what: str, probe: Callable[[], bool], timeout_s: float, every_s: float = 0.25) -> float:
    t0 = time.monotonic()
    while not probe():
        if time.monotonic() - t0 > timeout_s:
            raise TimeoutError(f"timed out after {timeout_s:.0f} s waiting for {what}")
        time.sleep(every_s)
    return time.monotonic() - t0


def kubectl(cluster: DevCluster, *args: str, data: str | None = None) -> str:
    proc = cluster.kubectl(*args, input=data, timeout_s=600)
    if proc.returncode != 0:
        raise RuntimeError(f"kubectl {' '.join(args)}: {proc.stderr.strip()[:500]}")
    return proc.stdout


def scheduling_run(with_extender: bool, nodes: int, pods: int, work: Path) -> dict[str, Any]:
    mode = "with" if with_extender else "without"
    state = work / mode
    shutil.rmtree(state, ignore_errors=True)
    state.mkdir(parents=True)
    ext_port, kubelet_port = free_ports(2)
    cfg: dict[str, Any] = (yaml.safe_load((ROOT / "manifests" / "devcluster" / "scheduler-config.yaml").read_text())
                           if with_extender else {"apiVersion": "kubescheduler.config.k8s.io/v1",
                                                  "kind": "KubeSchedulerConfiguration"})
    cfg["clientConnection"] = {"qps": 1000, "burst": 2000}
    if with_extender:
        cfg["extenders"][0]["urlPrefix"] = f"https://127.0.0.1:{ext_port}"
    (work / f"{mode}-scheduler.yaml").write_text(yaml.safe_dump(cfg))
    cluster = DevCluster(state, settings=Settings(scheduler_config=work / f"{mode}-scheduler.yaml", extra_args={
        "kube-controller-manager": ("--kube-api-qps=1000", "--kube-api-burst=2000")}))
    procs: list[subprocess.Popen[bytes]] = []
    try:
        cluster.up()
        kc = str(cluster.kubeconfig)
        procs.append(start(["mock-kubelet", "--kubeconfig", kc, "--nodes", str(nodes), "--metrics-port",
                            str(kubelet_port), "--no-faults"], work / f"{mode}-kubelet.log"))
        pki = Pki(cluster.layout.pki_dir)
        trust = ssl.create_default_context(cafile=str(pki.ca_cert))
        if with_extender:
            procs.append(start(["scheduler-extender", "--kubeconfig", kc, "--port", str(ext_port),
                                "--tls-cert-file", str(pki.extender_cert), "--tls-key-file", str(pki.extender_key),
                                "--client-ca-file", str(pki.ca_cert)], work / f"{mode}-extender.log"))

        def healthy(url: str) -> bool:
            try:
                with urllib.request.urlopen(f"{url}/healthz", timeout=2, context=trust) as r:
                    return r.status == 200
            except OSError:
                return False

        wait("the mock kubelet", lambda: healthy(f"http://127.0.0.1:{kubelet_port}"), 300)
        kubectl(cluster, "apply", "-f", "-", data=yaml.safe_dump(MINIMAL_CRD))
        wait("the CRD", lambda: cluster.kubectl("get", "orchestrationintents").returncode == 0, 60)
        regions = ["region-0", "region-1"]
        labels = {"app": "bench", "kubeagora.io/service": "bench"}
        deployment = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "bench",
                                                                                 "namespace": "default"},
                      "spec": {"replicas": 0, "selector": {"matchLabels": labels}, "template": {
                          "metadata": {"labels": labels, "annotations": {"kubeagora.io/template": "web"}},
                          "spec": {"containers": [{"name": "app", "image": "registry.invalid/app:1", "resources": {
                              "requests": {"cpu": "10m", "memory": "16Mi"}}}]}}}}
        kubectl(cluster, "apply", "-f", "-", data=yaml.safe_dump_all([
            {"apiVersion": "kubeagora.io/v1alpha1", "kind": "OrchestrationIntent",
             "metadata": {"name": "bench", "namespace": "default"},
             "spec": {"targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "bench"},
                      "slo": {"p95Ms": 150, "p99Ms": 250}, "placement": {"regions": regions}}},
            deployment]))
        if with_extender:
            def sees_intent() -> bool:
                try:
                    with urllib.request.urlopen(f"https://127.0.0.1:{ext_port}/metrics", timeout=2,
                                                context=trust) as r:
                        return 'kubeagora_extender_cache_objects{kind="intents"} 1.0' in r.read().decode()
                except OSError:
                    return False
            wait("the extender to see the intent", sees_intent, 60)

        def bound() -> int:
            out = cluster.kubectl("get", "pods", "-n", "default", "-l", "app=bench",
                                  "--field-selector", "spec.nodeName!=", "--no-headers", timeout_s=120)
            return len([line for line in out.stdout.splitlines() if line.strip()])

        kubectl(cluster, "scale", "deployment", "bench", f"--replicas={pods}")
        elapsed = wait(f"{pods} pods bound", lambda: bound() >= pods, 900, every_s=0.5)
        placed = json.loads(kubectl(cluster, "get", "pods", "-l", "app=bench", "-o", "json"))["items"]
        node_region = {n["metadata"]["name"]: n["metadata"]["labels"].get("topology.kubernetes.io/region")
                       for n in json.loads(kubectl(cluster, "get", "nodes", "-o", "json"))["items"]}
        outside = sum(1 for p in placed if node_region.get(p["spec"].get("nodeName")) not in regions)
        log(f"{mode} extender: {pods} pods bound in {elapsed:.1f} s ({pods / elapsed:.1f} pods/s), "
            f"{outside} outside {regions}")
        return {"mode": mode, "nodes": nodes, "pods": pods, "bound_s": elapsed, "pods_per_s": pods / elapsed,
                "outside_regions": outside}
    finally:
        for p in reversed(procs):
            stop(p)
        cluster.down()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--nodes", default="1000,5000", help="synthetic cache sizes for the latency part")
    ap.add_argument("--requests", type=int, default=600, help="requests per size and path (3 pod kinds in turn)")
    ap.add_argument("--cluster-nodes", type=int, default=300)
    ap.add_argument("--cluster-pods", type=int, default=500)
    ap.add_argument("--skip-cluster", action="store_true")
    ap.add_argument("--json", type=Path, help="write the results here")
    args = ap.parse_args()
    results: dict[str, Any] = {"latency": [], "scheduling": []}
    print("| nodes | path | filter p50 / p99 (ms) | prioritize p50 / p99 (ms) | both p50 / p99 (ms) |")
    print("|--:|---|--:|--:|--:|")
    with tempfile.TemporaryDirectory(prefix="extender-pki-") as pki_dir:
        pki = ensure_pki(Path(pki_dir))
        for n in (int(x) for x in args.nodes.split(",")):
            log(f"synthetic cache of ~{n} nodes")
            cache, names = synthetic_cache(n)
            pure_latency(cache, names, 30)  # warm-up (imports, caches)
            rows: dict[str, dict[str, tuple[float, float]]] = {"pure": pure_latency(cache, names, args.requests)}
            for mode in ("before", "after"):
                rows[f"http {mode}"] = http_latency(n, names, args.requests, mode, pki)
            for path, got in rows.items():
                results["latency"].append({"nodes": len(names), "path": path,
                                           **{k: list(v) for k, v in got.items()}})
                cells = " | ".join(f"{got[k][0]:.2f} / {got[k][1]:.2f}" for k in ("filter", "prioritize", "both"))
                print(f"| {len(names):,} | {path} | {cells} |", flush=True)
            before, after = rows["http before"], rows["http after"]
            ratios = ", ".join(f"{k} {after[k][1] / before[k][1]:.2f}×" for k in ("filter", "prioritize", "both"))
            print(f"| {len(names):,} | after / before, p99 | {ratios} | | |", flush=True)
    if not args.skip_cluster:
        with tempfile.TemporaryDirectory(prefix="extender-bench-") as tmp:
            for with_extender in (False, True):
                results["scheduling"].append(scheduling_run(with_extender, args.cluster_nodes, args.cluster_pods,
                                                            Path(tmp)))
        print()
        print("| scheduler | mock nodes | pods | all bound (s) | pods/s | pods outside the intent's regions |")
        print("|---|--:|--:|--:|--:|--:|")
        for r in results["scheduling"]:
            print(f"| {r['mode']} extender | {r['nodes']} | {r['pods']} | {r['bound_s']:.1f} | "
                  f"{r['pods_per_s']:.1f} | {r['outside_regions']} |")
        a, b = results["scheduling"]
        print(f"\nwith / without: {b['pods_per_s'] / a['pods_per_s']:.2f}× the pods/s")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
