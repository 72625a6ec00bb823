"""Kubernetes objects as the operator's watches see them, for the operator's unit tests.

Nodes come from the mock kubelet's own ``manifest`` (its labels, annotations, allocatable and
conditions); pods, Deployments and intents are shaped as the API server returns them.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping, Sequence
from typing import Any

from kubeagora.kubelet import nodes as kubelet_nodes
from kubeagora.model import Node, NodeClass, Tier
from kubeagora.operator import adapter
from kubeagora.operator.metrics_source import NodeSignals, ServiceSignals
from kubeagora.sim.topology import NODE_SHAPES

NOW = "2025-06-01T12:00:00Z"


def node(name: str, tier: Tier = Tier.CLOUD, node_class: NodeClass = NodeClass.CPU, *, region: str = "region-0",
         zone: str | None = None, index: int = 0, speed: float = 1.0, ready: bool = True,
         throttle: float | None = None, taints: Sequence[dict[str, str]] = ()) -> dict[str, Any]:
    """The Node object the mock kubelet registers for a node of this shape."""
    cores, memory, accelerators, idle_w, peak_w = NODE_SHAPES[(tier, node_class)]
    model = Node(name, tier, region, zone or f"{region}-z0", node_class, cores, memory, accelerators, speed,
                 idle_w, peak_w)
    obj = kubelet_nodes.manifest(model, name, index, NOW, tuple(taints))
    obj["status"] = kubelet_nodes.status(model, name, index, NOW,
                                         kubelet_nodes.NodeHealthView(ready=ready, throttle_factor=throttle))
    if throttle is not None:
        obj["metadata"]["annotations"][kubelet_nodes.ANNOTATION_THROTTLE] = f"{throttle:g}"
    return obj


def pod(name: str, app: str, node_name: str | None = None, *, namespace: str = "default", ready: bool = True,
        cpu: str = "500m", memory: str = "256Mi", gpus: int = 0, phase: str | None = None, terminating: bool = False,
        labels: Mapping[str, str] | None = None) -> dict[str, Any]:
    """A pod of a Deployment's ReplicaSet: scheduled when ``node_name`` is set, Ready when ``ready``."""
    requests: dict[str, str] = {"cpu": cpu, "memory": memory}
    if gpus:
        requests["nvidia.com/gpu"] = str(gpus)
    scheduled = node_name is not None
    is_ready = ready and scheduled
    spec: dict[str, Any] = {"containers": [{"name": app, "image": "registry.k8s.io/pause:3.10",
                                            "resources": {"requests": requests}}],
                            "restartPolicy": "Always", "schedulerName": "default-scheduler"}
    if scheduled:
        spec["nodeName"] = node_name
    metadata: dict[str, Any] = {
        "name": name, "namespace": namespace, "uid": f"uid-{name}",
        "labels": dict(labels) if labels is not None else {"app": app, "pod-template-hash": "5d9c7b8f6"},
        "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": f"{app}-5d9c7b8f6",
                             "uid": f"uid-rs-{app}", "controller": True}],
    }
    if terminating:
        metadata["deletionTimestamp"] = NOW
        metadata["deletionGracePeriodSeconds"] = 30
    return {
        "apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": spec,
        "status": {
            "phase": phase or ("Running" if scheduled else "Pending"),
            "conditions": [
                {"type": "PodScheduled", "status": "True" if scheduled else "False"},
                {"type": "Initialized", "status": "True"},
                {"type": "ContainersReady", "status": "True" if is_ready else "False"},
                {"type": "Ready", "status": "True" if is_ready else "False"},
            ],
        },
    }


def deployment(name: str, *, namespace: str = "default", replicas: int = 2,
               selector: Mapping[str, str] | None = None, template_labels: Mapping[str, str] | None = None,
               template: str | None = "web", cpu: str | None = "500m", memory: str | None = None,
               gpus: int = 0) -> dict[str, Any]:
    """A Deployment as in examples/intent.yaml: selector, pod template labels, annotations and requests."""
    selector = dict(selector) if selector is not None else {"app": name}
    labels = dict(template_labels) if template_labels is not None else dict(selector)
    requests: dict[str, str] = {}
    if cpu is not None:
        requests["cpu"] = cpu
    if memory is not None:
        requests["memory"] = memory
    if gpus:
        requests["nvidia.com/gpu"] = str(gpus)
    annotations = {adapter.ANNOTATION_TEMPLATE: template} if template else {}
    return {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace, "labels": {"app": name}, "generation": 1},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": selector},
            "template": {
                "metadata": {"labels": labels, "annotations": annotations},
                "spec": {"containers": [{"name": name, "image": "registry.k8s.io/pause:3.10",
                                         "resources": {"requests": requests}}]},
            },
        },
        "status": {"replicas": replicas, "readyReplicas": replicas},
    }


EXAMPLE_INTENT_SPEC: dict[str, Any] = {
    "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "checkout"},
    "slo": {"p95Ms": 150, "p99Ms": 250},
    "replicas": {"min": 1, "max": 20},
    "budget": {"costPerHour": 5.0, "energyCapWatts": 2000},
    "placement": {"tiers": ["edge", "fog", "cloud"], "regions": ["region-0"], "nodeClasses": ["cpu"],
                  "minTrust": 0.5, "requireAttestation": False},
    "tenant": "retail",
    "priority": 1.0,
    "rollout": {"shadowSeconds": 30, "canarySeconds": 60, "canaryFraction": 0.25},
    "autonomy": "auto",
    "workload": {"template": "web"},
    "metrics": {"preset": "otel", "queries": {"p99Seconds": (
        'histogram_quantile(0.99, sum by (le) (rate(http_server_request_duration_seconds_bucket{ '
        'k8s_namespace_name="default", k8s_deployment_name="checkout", http_response_status_code!~"5.."}[1m])))')}},
}
"""The spec of examples/intent.yaml."""


def intent(name: str = "checkout", target: str | None = None, *, namespace: str = "default",
           **spec_changes: Any) -> dict[str, Any]:
    """examples/intent.yaml's intent, targeting ``target`` (default: the intent's name); a change of
    ``None`` removes that field of the spec."""
    spec = copy.deepcopy(EXAMPLE_INTENT_SPEC)
    spec["targetRef"]["name"] = target or name
    for key, value in spec_changes.items():
        if value is None:
            spec.pop(key, None)
        else:
            spec[key] = value
    return {"apiVersion": "kubeagora.io/v1alpha1", "kind": "OrchestrationIntent",
            "metadata": {"name": name, "namespace": namespace, "uid": f"uid-intent-{name}", "generation": 1},
            "spec": spec}


def by_key(objs: Sequence[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Namespaced objects by "namespace/name" (the operator's view of Deployments and intents)."""
    return {f"{o['metadata']['namespace']}/{o['metadata']['name']}": o for o in objs}


def by_name(objs: Sequence[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {o["metadata"]["name"]: o for o in objs}


def signals(service: str, offered_rps: float = 0.0, served_rps: float | None = None, dropped_rps: float = 0.0,
            p95_ms: float = math.nan, p99_ms: float = math.nan) -> ServiceSignals:
    return ServiceSignals(service, offered_rps, offered_rps if served_rps is None else served_rps, dropped_rps,
                          p95_ms, p99_ms)


def node_signals(name: str, utilization: float = math.nan, power_w: float = math.nan) -> NodeSignals:
    return NodeSignals(name, utilization, power_w)


def checkout_cluster(replicas: int = 2, autonomy: str = "auto") -> dict[str, Any]:
    """examples/intent.yaml on a three-node cluster: the checkout Deployment with ``replicas`` Ready pods."""
    nodes = [node("edge-cpu-0", Tier.EDGE, NodeClass.CPU, index=0),
             node("fog-cpu-0", Tier.FOG, NodeClass.CPU, index=1),
             node("cloud-cpu-0", Tier.CLOUD, NodeClass.CPU, index=2)]
    dep = deployment("checkout", replicas=replicas)
    names = [n["metadata"]["name"] for n in nodes]
    pods = [pod(f"checkout-{i}", "checkout", names[i % len(names)]) for i in range(replicas)]
    bindings, unbound = adapter.bind([intent("checkout", autonomy=autonomy)], {"default/checkout": dep},
                                     ["region-0"])
    assert not unbound, unbound
    return {"nodes": nodes, "pods": pods, "deployments": {"default/checkout": dep}, "bindings": bindings}


def observe_checkout(world: Mapping[str, Any], now_s: float, *, offered_rps: float = 200.0, p99_ms: float = 100.0,
                     counters: adapter.Counters | None = None) -> Any:
    """The operator's Observation of ``checkout_cluster`` at ``now_s`` with these Prometheus figures."""
    sig = {"default/checkout": signals("default/checkout", offered_rps, p95_ms=p99_ms * 0.7, p99_ms=p99_ms)}
    return adapter.observe(now_s, world["nodes"], world["pods"], world["deployments"], world["bindings"], sig, {},
                           counters or adapter.Counters())
