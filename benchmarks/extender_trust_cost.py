"""What the extender's trust filter costs: filter + prioritize latency for a resident pod whose intent
asks ``placement.minTrust`` against the same pod without it, side by side in one run.

    .venv/bin/python benchmarks/extender_trust_cost.py                  # 1,000 and 5,000 nodes
    .venv/bin/python benchmarks/extender_trust_cost.py --nodes 1000 --requests 2000

The watch cache is ``extender_latency.py``'s synthetic one (the mock kubelet's ``--nodes N`` topology,
three pods per node); every other node carries the operator's published trust annotation (0.5 or 0.9),
and the two intents differ only in ``minTrust: 0.8``. Each pod is offered every node (the worst case),
requests alternate between the two so machine noise falls on both; the pure functions are timed
(the HTTP round trip adds the same on both sides, see ``extender_latency.py``).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

from extender_latency import percentiles_ms, pod, synthetic_cache

from kubeagora.kubeapi.node_reports import ANNOTATION_TRUST
from kubeagora.scheduler_plugin.bids import BidSettings
from kubeagora.scheduler_plugin.cache import DEPLOYMENTS, INTENTS, NODES, ClusterCache
from kubeagora.scheduler_plugin.filtering import filter_pod
from kubeagora.scheduler_plugin.scoring import prioritize_pod
from kubeagora.scheduler_plugin.workload import pod_demand

MIN_TRUST = 0.8


@dataclass(frozen=True, slots=True)
class WithTrust:
    """Forwards ``synthetic_cache``'s lists to ``cache``, with trust published on every other node and
    the two intents of this comparison in place of its own."""

    cache: ClusterCache

    def apply(self, kind: str, event: str, obj: Mapping[str, Any]) -> None:
        self.cache.apply(kind, event, obj)

    def replace(self, kind: str, items: Iterable[Mapping[str, Any]]) -> None:
        if kind == NODES:
            items = [trusted(node, i) for i, node in enumerate(items)]
        elif kind == INTENTS:
            items = [intent("plain-intent", {}), intent("trusting-intent", {"minTrust": MIN_TRUST})]
        elif kind == DEPLOYMENTS:
            items = [{"metadata": {"name": a, "namespace": "bench"},
                      "spec": {"selector": {"matchLabels": {"app": a}}}} for a in ("plain-intent", "trusting-intent")]
        self.cache.replace(kind, items)


def trusted(node: Mapping[str, Any], i: int) -> dict[str, Any]:
    if not i % 2:
        return dict(node)
    meta = dict(node["metadata"])
    meta["annotations"] = {**meta.get("annotations", {}), ANNOTATION_TRUST: "0.5" if i % 4 == 1 else "0.9"}
    return {**node, "metadata": meta}


def intent(app: str, extra: dict[str, Any]) -> dict[str, Any]:
    return {"metadata": {"name": app, "namespace": "bench"},
            "spec": {"targetRef": {"kind": "Deployment", "name": app},
                     "placement": {"regions": ["region-0", "region-1"], **extra}}}


def trusted_cache(n: int) -> tuple[ClusterCache, list[str]]:
    cache = ClusterCache()
    _, names = synthetic_cache(n, WithTrust(cache))
    return cache, names


def measure(n: int, requests: int) -> dict[str, Any]:
    cache, names = trusted_cache(n)
    settings = BidSettings()
    pods = {"without": pod("p-x", "plain-intent", "web"), "minTrust": pod("t-x", "trusting-intent", "web")}
    samples: dict[str, list[float]] = {k: [] for k in pods}
    passed_count: dict[str, int] = {}
    for i in range(requests):
        for kind in (("without", "minTrust") if i % 2 else ("minTrust", "without")):
            p = pods[kind]
            t0 = time.perf_counter()
            passed = filter_pod(cache, pod_demand(p), names).passed
            prioritize_pod(cache, pod_demand(p), p["metadata"]["annotations"], passed, settings)
            samples[kind].append(time.perf_counter() - t0)
            passed_count[kind] = len(passed)
    out: dict[str, Any] = {"nodes": n}
    for kind, s in samples.items():
        p50, p99 = percentiles_ms(s)
        out[kind] = {"p50_ms": p50, "p99_ms": p99, "nodes_passed": passed_count[kind]}
    out["p99_ratio"] = out["minTrust"]["p99_ms"] / out["without"]["p99_ms"]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--nodes", default="1000,5000", help="synthetic cache sizes")
    ap.add_argument("--requests", type=int, default=1000, help="requests per size and side")
    args = ap.parse_args()
    try:
        sizes = [int(s) for s in args.nodes.split(",")]
    except ValueError:
        ap.error(f"--nodes must be comma-separated integers (got {args.nodes!r})")
    if any(s < 2 for s in sizes) or args.requests < 10:
        ap.error("--nodes entries must be >= 2 and --requests >= 10")
    print("| nodes | side | nodes passed | p50 ms | p99 ms |\n|---|---|---|---|---|")
    for n in sizes:
        r = measure(n, args.requests)
        for kind in ("without", "minTrust"):
            side = r[kind]
            print(f"| {n:,} | {kind} | {side['nodes_passed']:,} | {side['p50_ms']:.2f} | {side['p99_ms']:.2f} |")
        print(f"| {n:,} | p99 minTrust / without | | | {r['p99_ratio']:.2f}× |")


if __name__ == "__main__":
    main()
