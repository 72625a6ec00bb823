"""Topology nodes as Kubernetes Nodes: labels, capacity, pod CIDR, conditions (pure).

``topology_for_nodes(n)`` sizes a hub-and-spoke topology of about ``n`` nodes with the simulator's
own generator, so ``--nodes 1000`` gets the same tiers, classes and shapes the engine simulates.
"""

from __future__ import annotations

import ipaddress
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from kubeagora.kubelet.runtime import DEFAULT_OWNER
from kubeagora.model import Node, NodeClass
from kubeagora.sim.topology import TopologySpec

LABEL_TIER = "kubeagora.io/tier"
LABEL_CLASS = "kubeagora.io/node-class"
LABEL_MOCK = "kubeagora.io/mock-node"
LABEL_OWNER = "kubeagora.io/mock-kubelet"
"""Which mock kubelet registered the node: its ``--name-prefix`` (without the trailing '-'), or
``default``. A mock kubelet adopts, replaces or removes only the nodes it owns."""
LABEL_REGION = "topology.kubernetes.io/region"
LABEL_ZONE = "topology.kubernetes.io/zone"
LABEL_HOSTNAME = "kubernetes.io/hostname"
ANNOTATION_THROTTLE = "kubeagora.io/gpu-throttle-factor"
CONDITION_THROTTLED = "kubeagora.io/GPUThrottled"
ACCELERATOR_RESOURCE: Mapping[NodeClass, str] = {NodeClass.GPU: "nvidia.com/gpu", NodeClass.TPU: "google.com/tpu"}
MAX_PODS = 110
POD_NETWORK = ipaddress.IPv4Network("10.64.0.0/10")
"""Node ``i`` gets the ``i``-th /24 of this range as its pod CIDR (16,384 nodes at most)."""
KUBELET_VERSION = "v1.37.2-kubeagora-mock"


def topology_for_nodes(n: int, speed_jitter: float = 0.1) -> TopologySpec:
    """A hub-and-spoke spec of about ``n`` nodes (within ±15 % for n ≥ 10; at least 1 GPU node from 6).

    Regions of ~125 nodes, zones of ~20 edge nodes; per region 60 % edge (70 % CPU, 20 % MCU,
    10 % GPU), 15 % fog (80 % CPU, 20 % GPU), 25 % cloud (70 % CPU, 20 % GPU, 10 % TPU).
    """
    if n < 1:
        raise ValueError(f"--nodes must be at least 1 (got {n})")
    if n > 16 * 16 * 1000:
        raise ValueError(f"--nodes {n}: at most {16 * 16 * 1000} nodes")
    regions = min(16, max(1, math.ceil(n / 125)))
    per_region = n / regions
    edge, fog = 0.60 * per_region, 0.15 * per_region
    cloud = per_region - edge - fog
    zones = min(16, max(1, round(edge / 20)))
    per_zone = edge / zones
    edge_gpu = round(0.10 * per_zone)
    mcu = round(0.20 * per_zone)
    fog_gpu = round(0.20 * fog)
    cloud_gpu = max(1 if n >= 6 else 0, round(0.20 * cloud))
    cloud_tpu = round(0.10 * cloud)
    return TopologySpec(
        kind="hub-and-spoke",
        regions=regions,
        zones_per_region=zones,
        edge_nodes_per_zone=max(1, round(per_zone) - edge_gpu - mcu),
        mcu_nodes_per_zone=mcu,
        edge_gpu_per_zone=edge_gpu,
        fog_nodes_per_region=round(fog) - fog_gpu,
        fog_gpu_per_region=fog_gpu,
        cloud_nodes_per_region=max(0, round(cloud) - cloud_gpu - cloud_tpu),
        cloud_gpu_per_region=cloud_gpu,
        cloud_tpu_per_region=cloud_tpu,
        speed_jitter=speed_jitter,
    )


def pod_cidr(index: int) -> ipaddress.IPv4Network:
    """The /24 of node ``index`` inside ``POD_NETWORK``."""
    subnets = 1 << (24 - POD_NETWORK.prefixlen)
    if not 0 <= index < subnets:
        raise ValueError(f"node index {index} outside the {subnets} pod subnets of {POD_NETWORK}")
    return ipaddress.IPv4Network((int(POD_NETWORK.network_address) + (index << 8), 24))


def node_ip(index: int) -> str:
    """The node's own address: the first host of its pod CIDR (nothing routes it; it is a label)."""
    return str(pod_cidr(index).network_address + 1)


def _cpu(cores: float) -> str:
    return str(int(cores)) if float(cores).is_integer() else f"{round(cores * 1000)}m"


def capacity(node: Node) -> dict[str, str]:
    """Capacity (= allocatable: the mock reserves nothing) as Kubernetes quantities."""
    out = {
        "cpu": _cpu(node.cpu_cores),
        "memory": f"{round(node.memory_gib * 1024)}Mi",
        "pods": str(MAX_PODS),
        "ephemeral-storage": "100Gi",
    }
    resource = ACCELERATOR_RESOURCE.get(node.node_class)
    if resource is not None and node.accelerators > 0:
        out[resource] = str(node.accelerators)
    return out


def owner_of(name_prefix: str) -> str:
    """The owner label value of a mock kubelet started with ``--name-prefix`` (a valid label value)."""
    return name_prefix.strip("-")[:63].strip("-._") or DEFAULT_OWNER


def labels(node: Node, name: str, owner: str = DEFAULT_OWNER) -> dict[str, str]:
    return {
        LABEL_TIER: str(node.tier),
        LABEL_CLASS: str(node.node_class),
        LABEL_REGION: node.region,
        LABEL_ZONE: node.zone,
        LABEL_HOSTNAME: name,
        LABEL_MOCK: "true",
        LABEL_OWNER: owner,
        "kubernetes.io/os": "linux",
        "kubernetes.io/arch": "amd64",
        "node.kubernetes.io/instance-type": f"{node.tier}-{node.node_class}",
    }


@dataclass(frozen=True, slots=True)
class NodeHealthView:
    """What a node's status should say right now."""

    ready: bool = True
    throttle_factor: float | None = None
    """GPU speed multiplier under a power cap (None: not throttled)."""


def conditions(now: str, health: NodeHealthView, since: Mapping[str, str] | None = None) -> list[dict[str, str]]:
    """The node's conditions; ``since`` keeps each condition's lastTransitionTime (type → time)."""
    since = since or {}

    def cond(kind: str, status: str, reason: str, message: str) -> dict[str, str]:
        return {"type": kind, "status": status, "reason": reason, "message": message,
                "lastHeartbeatTime": now, "lastTransitionTime": since.get(kind, now)}

    out = [
        cond("MemoryPressure", "False", "KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
        cond("DiskPressure", "False", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
        cond("PIDPressure", "False", "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
        cond("Ready", "True" if health.ready else "False",
             "KubeletReady" if health.ready else "KubeletNotReady",
             "mock kubelet is posting ready status" if health.ready else "mock kubelet is not ready"),
    ]
    if health.throttle_factor is not None:
        out.append(cond(CONDITION_THROTTLED, "True", "PowerCapped",
                        f"accelerators run at {health.throttle_factor:g}x speed under a power cap"))
    return out


def status(node: Node, name: str, index: int, now: str, health: NodeHealthView) -> dict[str, Any]:
    cap = capacity(node)
    return {
        "capacity": cap,
        "allocatable": cap,
        "conditions": conditions(now, health),
        "addresses": [{"type": "InternalIP", "address": node_ip(index)}, {"type": "Hostname", "address": name}],
        "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
        "nodeInfo": {
            "architecture": "amd64", "operatingSystem": "linux", "osImage": "kubeagora mock node",
            "kernelVersion": "mock", "containerRuntimeVersion": "mock://1.0", "kubeletVersion": KUBELET_VERSION,
            "kubeProxyVersion": "", "bootID": "", "machineID": "", "systemUUID": "",
        },
        "phase": "Running",
    }


def manifest(node: Node, name: str, index: int, now: str, taints: tuple[dict[str, str], ...] = (),
             owner: str = DEFAULT_OWNER) -> dict[str, Any]:
    """The Node object to create (status included, as a kubelet registers itself)."""
    spec: dict[str, Any] = {"podCIDR": str(pod_cidr(index)), "podCIDRs": [str(pod_cidr(index))]}
    if taints:
        spec["taints"] = [dict(t) for t in taints]
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "labels": labels(node, name, owner),
            "annotations": {"node.alpha.kubernetes.io/ttl": "0",
                            "kubeagora.io/speed-factor": f"{node.speed_factor:.3f}"},
        },
        "spec": spec,
        "status": status(node, name, index, now, NodeHealthView()),
    }


def status_patch(now: str, health: NodeHealthView, since: Mapping[str, str] | None = None) -> dict[str, Any]:
    """A merge patch of the node status subresource (conditions replace the list whole)."""
    return {"status": {"conditions": conditions(now, health, since)}}


def throttle_annotation_patch(factor: float | None) -> dict[str, Any]:
    """A merge patch of the node's metadata: the throttle factor annotation, or its removal."""
    return {"metadata": {"annotations": {ANNOTATION_THROTTLE: None if factor is None else f"{factor:g}"}}}


def parse_taint(text: str) -> dict[str, str]:
    """``key=value:Effect`` or ``key:Effect`` → a taint; ValueError naming the problem."""
    body, sep, effect = text.rpartition(":")
    if not sep or effect not in ("NoSchedule", "PreferNoSchedule", "NoExecute") or not body:
        raise ValueError(f"--taint {text!r}: expected KEY[=VALUE]:EFFECT, EFFECT one of "
                         "NoSchedule, PreferNoSchedule, NoExecute")
    key, _, value = body.partition("=")
    taint = {"key": key, "effect": effect}
    if value:
        taint["value"] = value
    return taint


# ---------------------------------------------------------------------------------------------- start-up
@dataclass(frozen=True, slots=True)
class Takeover:
    """What a starting mock kubelet does with the Nodes already in the cluster (``reconcile``)."""

    adopt: tuple[str, ...] = ()
    """Its own nodes that fit the new topology: labels, taints and status are patched in place."""
    recreate: tuple[tuple[str, str], ...] = ()
    """Its own nodes that cannot become the new topology's in place (the API server refuses to change
    a node's pod CIDR), with why: deleted, then registered anew."""
    remove: tuple[str, ...] = ()
    """Its own nodes the new topology does not have (an earlier run's): deleted."""
    foreign: tuple[tuple[str, str], ...] = ()
    """Nodes of the new topology's names that another kubelet registered, with whose they are: left alone,
    and the kubelet does not start."""


def owned_by(node_obj: Mapping[str, Any], owner: str) -> bool:
    """A node this mock kubelet registered (a mock node of an older version, without the owner label,
    counts as the default owner's)."""
    node_labels = (node_obj.get("metadata") or {}).get("labels") or {}
    if node_labels.get(LABEL_MOCK) != "true":
        return False
    return bool(node_labels.get(LABEL_OWNER, DEFAULT_OWNER) == owner)


def _whose(node_obj: Mapping[str, Any]) -> str:
    node_labels = (node_obj.get("metadata") or {}).get("labels") or {}
    if node_labels.get(LABEL_MOCK) != "true":
        return "a kubelet that is not kubeagora's mock"
    return f"the mock kubelet with --name-prefix {node_labels.get(LABEL_OWNER, DEFAULT_OWNER)!r}"


def reconcile(existing: Sequence[Mapping[str, Any]], wanted: Mapping[str, Mapping[str, Any]], owner: str) -> Takeover:
    """``existing``: every Node in the cluster; ``wanted``: name → the manifest this run registers."""
    adopt: list[str] = []
    recreate: list[tuple[str, str]] = []
    remove: list[str] = []
    foreign: list[tuple[str, str]] = []
    for obj in existing:
        name = str((obj.get("metadata") or {}).get("name"))
        mine = owned_by(obj, owner)
        if name not in wanted:
            if mine:
                remove.append(name)
            continue
        if not mine:
            foreign.append((name, _whose(obj)))
            continue
        have = (obj.get("spec") or {}).get("podCIDR")
        want = (wanted[name].get("spec") or {}).get("podCIDR")
        if have and have != want:
            recreate.append((name, f"pod CIDR {have} → {want}"))
        else:
            adopt.append(name)
    return Takeover(tuple(sorted(adopt)), tuple(sorted(recreate)), tuple(sorted(remove)), tuple(sorted(foreign)))
