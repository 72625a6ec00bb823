"""A scheduler extender in a child process, its watch cache filled with a synthetic cluster, for the
tests that time its probes while it works on large bodies (the test's own threads must not share the
server's interpreter lock), and the bodies at the size limit that cost it the most work."""

from __future__ import annotations

import contextlib
import http.client
import multiprocessing
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import orjson

from kubeagora.devcluster.cluster import free_ports
from kubeagora.kubelet import nodes as nodes_mod
from kubeagora.kubelet.plan import make_plan
from kubeagora.scheduler_plugin.cache import DEPLOYMENTS, INTENTS, NODES, PODS, ClusterCache


def synthetic_objects(n_nodes: int) -> dict[str, list[dict[str, Any]]]:
    """The mock kubelet's ``--nodes n`` topology, two pods on every node, an intent limiting ``checkout``
    to region-1: the watch cache's lists, by kind."""
    plan = make_plan(None, n_nodes, seed=1)
    now = "2026-01-01T00:00:00Z"
    nodes = [nodes_mod.manifest(node, name, i, now)
             for i, (node, name) in enumerate(zip(plan.topology.nodes, plan.names, strict=True))]
    pods = [{"metadata": {"name": f"{name}-{k}", "namespace": "bg", "labels": {"app": "bg"},
                          "annotations": {"kubeagora.io/template": "web"}},
             "spec": {"nodeName": name, "containers": [{"resources": {"requests": {"cpu": "100m"}}}]},
             "status": {"phase": "Running"}} for name in plan.names for k in range(2)]
    return {NODES: nodes, PODS: pods,
            DEPLOYMENTS: [{"metadata": {"name": "checkout", "namespace": "shop"},
                           "spec": {"selector": {"matchLabels": {"app": "checkout"}}}}],
            INTENTS: [{"metadata": {"name": "checkout", "namespace": "shop"},
                       "spec": {"targetRef": {"kind": "Deployment", "name": "checkout"},
                                "placement": {"regions": ["region-1"]}}}]}


def synthetic_cache(n_nodes: int) -> tuple[ClusterCache, list[str]]:
    cache = ClusterCache()
    for kind, items in synthetic_objects(n_nodes).items():
        cache.replace(kind, items)
    return cache, [str(n["metadata"]["name"]) for n in synthetic_objects(n_nodes)[NODES]]


def checkout_pod(**spec: Any) -> dict[str, Any]:
    return {"metadata": {"name": "checkout-1", "namespace": "shop", "labels": {"app": "checkout"},
                         "annotations": {"kubeagora.io/template": "web"}},
            "spec": {"containers": [{"resources": {"requests": {"cpu": "500m", "memory": "256Mi"}}}], **spec}}


def filled_to(limit_bytes: int, body_of: Callable[[int], Any]) -> bytes:
    """The JSON of ``body_of(n)`` for the largest ``n`` that stays within ``limit_bytes``."""
    low, high = 0, limit_bytes
    while low < high:
        mid = (low + high + 1) // 2
        if len(orjson.dumps(body_of(mid))) <= limit_bytes:
            low = mid
        else:
            high = mid - 1
    return orjson.dumps(body_of(low))


def costly_bodies(names: list[str], limit_bytes: int) -> dict[str, bytes]:
    """Bodies at ``limit_bytes`` that cost the extender the most work per byte (measured): hundreds of
    thousands of distinct node names, tens of thousands of containers, of labels."""
    container = {"name": "c", "resources": {"requests": {"cpu": "1m", "memory": "1", "nvidia.com/gpu": "0"}}}

    def labelled(n: int) -> dict[str, Any]:
        pod = checkout_pod()
        pod["metadata"]["labels"] |= {f"k{i}": "v" for i in range(n)}
        return {"Pod": pod, "NodeNames": names}

    return {
        "distinct names": filled_to(limit_bytes, lambda n: {"Pod": checkout_pod(),
                                                            "NodeNames": names + [f"x{i}" for i in range(n)]}),
        "containers": filled_to(limit_bytes, lambda n: {"Pod": checkout_pod(containers=[container] * n),
                                                        "NodeNames": names}),
        "labels": filled_to(limit_bytes, labelled),
    }


def _serve(n_nodes: int, port: int, options: dict[str, Any]) -> None:
    """The extender as ``kubeagora scheduler-extender`` runs it (verbs in a child process of this one),
    its watch cache filled once from ``synthetic_objects``."""
    from aiohttp import web

    from kubeagora.scheduler_plugin.server import make_app
    from kubeagora.scheduler_plugin.verbs import ProcessVerbs
    from kubeagora.scheduler_plugin.watch import Replicated

    cache, verbs = ClusterCache(), ProcessVerbs(**options.pop("verbs", {}))
    updates = Replicated(cache, verbs)
    for kind, items in synthetic_objects(n_nodes).items():
        updates.replace(kind, items)
    web.run_app(make_app(cache, verbs, **options), host="127.0.0.1", port=port, access_log=None, print=None)


@dataclass
class ExtenderProcess:
    port: int

    def connection(self, timeout_s: float = 60.0) -> http.client.HTTPConnection:
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout_s)

    def post(self, path: str, body: bytes, timeout_s: float = 60.0) -> tuple[int, bytes]:
        conn = self.connection(timeout_s)
        try:
            conn.request("POST", path, body=body, headers={"Content-Type": "application/json"})
            resp = conn.getresponse()
            return resp.status, resp.read()
        finally:
            conn.close()


@contextlib.contextmanager
def extender_process(n_nodes: int = 1000, **options: Any) -> Iterator[ExtenderProcess]:
    (port,) = free_ports(1)
    child = multiprocessing.get_context("spawn").Process(target=_serve, args=(n_nodes, port, options))
    child.start()
    try:
        deadline = time.monotonic() + 180
        while True:
            try:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
                conn.request("GET", "/healthz")
                if conn.getresponse().status == 200:
                    break
            except OSError:
                pass
            assert child.is_alive(), "the extender process exited"
            assert time.monotonic() < deadline, "the extender process did not become healthy"
            time.sleep(0.2)
        yield ExtenderProcess(port)
    finally:
        child.terminate()
        child.join(10)
