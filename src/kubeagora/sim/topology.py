"""Topology generators: hub-and-spoke edge clusters, fat-tree data centres, edge grids.

A `Topology` is the node list plus the network between them: the round-trip time from the users of
each region (who enter at that region's edge) to every node, node-to-node RTTs, access-link
bandwidth, and the Gilbert–Elliott burst-loss parameters of each region's access network.
Default link figures follow the seed paper: edge 10–100 Mbps / 10–30 ms, fog 1–10 Gbps / 2–8 ms,
inter-region 10–40 Gbps / 40–120 ms.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from kubeagora.model import FloatArray, Node, NodeClass, Tier

# name: (cores, memory GiB, accelerators, idle W, peak W)
NODE_SHAPES: dict[tuple[Tier, NodeClass], tuple[float, float, int, float, float]] = {
    (Tier.EDGE, NodeClass.MCU): (1.0, 0.5, 0, 2.0, 6.0),
    (Tier.EDGE, NodeClass.CPU): (4.0, 8.0, 0, 20.0, 65.0),
    (Tier.EDGE, NodeClass.GPU): (8.0, 16.0, 1, 30.0, 120.0),
    (Tier.FOG, NodeClass.CPU): (16.0, 64.0, 0, 80.0, 250.0),
    (Tier.FOG, NodeClass.GPU): (16.0, 64.0, 2, 110.0, 700.0),
    (Tier.CLOUD, NodeClass.CPU): (32.0, 128.0, 0, 120.0, 400.0),
    (Tier.CLOUD, NodeClass.GPU): (32.0, 256.0, 4, 200.0, 1800.0),
    (Tier.CLOUD, NodeClass.TPU): (32.0, 256.0, 4, 180.0, 1200.0),
}


@dataclass(frozen=True, slots=True)
class Topology:
    nodes: tuple[Node, ...]
    regions: tuple[str, ...]
    ingress_rtt_ms: FloatArray
    """[region, node]: RTT from a user at that region's edge to the node."""
    node_rtt_ms: FloatArray
    """[node, node]: RTT between nodes (service-to-service calls)."""
    access_bandwidth_mbps: FloatArray
    """[region, node]: bottleneck bandwidth on the path from the region's users to the node."""
    loss_good: float = 1e-4
    loss_bad: float = 0.05
    p_good_to_bad: float = 0.002
    p_bad_to_good: float = 0.2
    """Gilbert–Elliott two-state burst loss per region access network, per second."""


@dataclass(frozen=True, slots=True)
class TopologySpec:
    kind: str = "hub-and-spoke"
    regions: int = 2
    zones_per_region: int = 2
    edge_nodes_per_zone: int = 3
    mcu_nodes_per_zone: int = 1
    edge_gpu_per_zone: int = 0
    fog_nodes_per_region: int = 2
    fog_gpu_per_region: int = 0
    cloud_nodes_per_region: int = 4
    cloud_gpu_per_region: int = 1
    cloud_tpu_per_region: int = 0
    speed_jitter: float = 0.1
    """Node speed factors are drawn uniformly in 1 ± jitter (no two machines are equal)."""


def _node(name: str, tier: Tier, cls: NodeClass, region: str, zone: str, speed: float) -> Node:
    cores, mem, acc, idle_w, peak_w = NODE_SHAPES[(tier, cls)]
    return Node(name, tier, region, zone, cls, cores, mem, acc, speed, idle_w, peak_w)


def build_topology(spec: TopologySpec, rng: np.random.Generator) -> Topology:
    if spec.kind not in GENERATORS:
        raise ValueError(f"unknown topology kind {spec.kind!r} (known: {', '.join(sorted(GENERATORS))})")
    return GENERATORS[spec.kind](spec, rng)


def _speed(spec: TopologySpec, rng: np.random.Generator) -> float:
    return float(1.0 + rng.uniform(-spec.speed_jitter, spec.speed_jitter))


def _hub_and_spoke(spec: TopologySpec, rng: np.random.Generator) -> Topology:
    """Each zone is an edge cluster (spoke) behind its region's fog hub, hubs behind the cloud."""
    nodes: list[Node] = []
    regions = tuple(f"region-{r}" for r in range(spec.regions))
    for r, region in enumerate(regions):
        for z in range(spec.zones_per_region):
            zone = f"{region}-z{z}"
            for cls, count in ((NodeClass.CPU, spec.edge_nodes_per_zone), (NodeClass.MCU, spec.mcu_nodes_per_zone),
                               (NodeClass.GPU, spec.edge_gpu_per_zone)):
                for i in range(count):
                    nodes.append(_node(f"edge-{cls}-{r}-{z}-{i}", Tier.EDGE, cls, region, zone, _speed(spec, rng)))
        for cls, count in ((NodeClass.CPU, spec.fog_nodes_per_region), (NodeClass.GPU, spec.fog_gpu_per_region)):
            for i in range(count):
                zone = f"{region}-z{i % max(spec.zones_per_region, 1)}"
                nodes.append(_node(f"fog-{cls}-{r}-{i}", Tier.FOG, cls, region, zone, _speed(spec, rng)))
        for cls, count in ((NodeClass.CPU, spec.cloud_nodes_per_region), (NodeClass.GPU, spec.cloud_gpu_per_region),
                           (NodeClass.TPU, spec.cloud_tpu_per_region)):
            for i in range(count):
                zone = f"{region}-cloud"
                nodes.append(_node(f"cloud-{cls}-{r}-{i}", Tier.CLOUD, cls, region, zone, _speed(spec, rng)))
    return _network(tuple(nodes), regions, rng, cloud_hops_ms=1.0)


def _fat_tree(spec: TopologySpec, rng: np.random.Generator) -> Topology:
    """Cloud-heavy: most capacity in k-ary fat-tree data centres (three switch hops inside a pod)."""
    fat = replace(spec, kind="hub-and-spoke", edge_nodes_per_zone=max(1, spec.edge_nodes_per_zone // 2),
                  cloud_nodes_per_region=spec.cloud_nodes_per_region * 2)
    topo = _hub_and_spoke(fat, rng)
    return _network(topo.nodes, topo.regions, rng, cloud_hops_ms=0.3 * 3)


def _grid(spec: TopologySpec, rng: np.random.Generator) -> Topology:
    """An edge mesh: edge nodes talk to neighbours directly, more edge capacity and no fog tier."""
    mesh = replace(spec, kind="hub-and-spoke", edge_nodes_per_zone=spec.edge_nodes_per_zone * 2, fog_nodes_per_region=0)
    topo = _hub_and_spoke(mesh, rng)
    return _network(topo.nodes, topo.regions, rng, cloud_hops_ms=1.0)


def _network(nodes: tuple[Node, ...], regions: tuple[str, ...], rng: np.random.Generator,
             cloud_hops_ms: float) -> Topology:
    n_reg, n = len(regions), len(nodes)
    zones = sorted({nd.zone for nd in nodes})
    edge_rtt = {z: rng.uniform(10.0, 30.0) for z in zones}
    edge_bw = {z: rng.uniform(10.0, 100.0) for z in zones}
    fog_rtt = {r: rng.uniform(2.0, 8.0) for r in regions}
    fog_bw = {r: rng.uniform(1_000.0, 10_000.0) for r in regions}
    inter = np.zeros((n_reg, n_reg))
    for a in range(n_reg):
        for b in range(a + 1, n_reg):
            inter[a, b] = inter[b, a] = rng.uniform(40.0, 120.0)
    # users of a region enter at the edge of its first zone
    user_zone = {r: next((nd.zone for nd in nodes if nd.region == r and nd.tier == Tier.EDGE), r) for r in regions}
    region_idx = {r: i for i, r in enumerate(regions)}

    def path_to(node: Node) -> tuple[float, float]:
        """RTT and bottleneck bandwidth from the node to the core of its own region."""
        if node.tier == Tier.EDGE:
            return edge_rtt[node.zone] + fog_rtt[node.region], edge_bw[node.zone]
        if node.tier == Tier.FOG:
            return fog_rtt[node.region], fog_bw[node.region]
        return cloud_hops_ms, 25_000.0

    ingress = np.zeros((n_reg, n))
    bandwidth = np.zeros((n_reg, n))
    for r, region in enumerate(regions):
        uz = user_zone[region]
        access_rtt, access_bw = edge_rtt.get(uz, 10.0), edge_bw.get(uz, 100.0)
        for j, nd in enumerate(nodes):
            if nd.tier == Tier.EDGE and nd.zone == uz:
                ingress[r, j], bandwidth[r, j] = access_rtt, access_bw
                continue
            rtt, bw = path_to(nd)
            rtt += access_rtt + fog_rtt[region] + inter[r, region_idx[nd.region]]
            ingress[r, j], bandwidth[r, j] = rtt, min(access_bw, bw)
    core = np.array([path_to(nd)[0] for nd in nodes])
    reg = np.array([region_idx[nd.region] for nd in nodes])
    node_rtt = core[:, None] + core[None, :] + inter[reg[:, None], reg[None, :]]
    np.fill_diagonal(node_rtt, 0.05)
    return Topology(nodes, regions, ingress, node_rtt, bandwidth)


GENERATORS = {"hub-and-spoke": _hub_and_spoke, "fat-tree": _fat_tree, "grid": _grid}
