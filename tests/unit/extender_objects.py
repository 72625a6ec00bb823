"""Kubernetes objects as the extender's watch sees them, built small for its unit tests."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from kubeagora.scheduler_plugin.cache import DEPLOYMENTS, INTENTS, NODES, PODS, ClusterCache


def node(name: str, region: str = "region-0", tier: str = "cloud", node_class: str = "cpu", cpu: str = "32",
         memory: str = "128Gi", gpus: int = 0, tpus: int = 0, zone: str | None = None, speed: float = 1.0,
         ready: bool = True, annotations: dict[str, str] | None = None) -> dict[str, Any]:
    allocatable = {"cpu": cpu, "memory": memory, "pods": "110"}
    if gpus:
        allocatable["nvidia.com/gpu"] = str(gpus)
    if tpus:
        allocatable["google.com/tpu"] = str(tpus)
    return {
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": name, "labels": {
            "kubeagora.io/tier": tier, "kubeagora.io/node-class": node_class,
            "topology.kubernetes.io/region": region,
            "topology.kubernetes.io/zone": zone or (f"{region}-cloud" if tier == "cloud" else f"{region}-z0")},
            "annotations": {"kubeagora.io/speed-factor": f"{speed:.3f}", **(annotations or {})}},
        "status": {"allocatable": allocatable, "capacity": allocatable,
                   "conditions": [{"type": "Ready", "status": "True" if ready else "False"}]},
    }


def pod(name: str, namespace: str = "shop", labels: dict[str, str] | None = None, node_name: str | None = None,
        cpu: str = "500m", memory: str = "256Mi", gpus: int = 0, tpus: int = 0, template: str | None = None,
        phase: str = "Running", annotations: dict[str, str] | None = None) -> dict[str, Any]:
    requests: dict[str, str] = {"cpu": cpu, "memory": memory}
    if gpus:
        requests["nvidia.com/gpu"] = str(gpus)
    if tpus:
        requests["google.com/tpu"] = str(tpus)
    ann = dict(annotations or {})
    if template:
        ann["kubeagora.io/template"] = template
    spec: dict[str, Any] = {"containers": [{"name": "app", "image": "registry.invalid/app:1",
                                            "resources": {"requests": requests}}]}
    if node_name:
        spec["nodeName"] = node_name
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": namespace, "labels": labels or {"app": name},
                         "annotations": ann},
            "spec": spec, "status": {"phase": phase}}


def deployment(name: str, namespace: str = "shop", match_labels: dict[str, str] | None = None) -> dict[str, Any]:
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "namespace": namespace},
            "spec": {"selector": {"matchLabels": match_labels or {"app": name}}}}


def intent(name: str, target: str, namespace: str = "shop", **placement: list[str]) -> dict[str, Any]:
    return {"apiVersion": "kubeagora.io/v1alpha1", "kind": "OrchestrationIntent",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": target},
                     "slo": {"p95Ms": 150, "p99Ms": 250}, "placement": placement}}


def cache_of(nodes: Sequence[dict[str, Any]], pods: Sequence[dict[str, Any]] = (),
             deployments: Sequence[dict[str, Any]] = (), intents: Sequence[dict[str, Any]] = ()) -> ClusterCache:
    cache = ClusterCache(capacity=4)
    cache.replace(NODES, nodes)
    cache.replace(PODS, pods)
    cache.replace(DEPLOYMENTS, deployments)
    cache.replace(INTENTS, intents)
    return cache
