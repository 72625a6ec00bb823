"""The RTT from a region's users to a node, estimated from the node's labels (pure).

The extender sees no probes, only labels; it prices distance the way the simulator's hub-and-spoke
topology builds it (``sim.topology``), at the midpoints of the seed paper's link ranges: users enter
at the edge of their region's first zone (an edge hop, 10–30 ms); a node elsewhere is reached
through the region's fog hub (2–8 ms), then its own path — another edge hop plus the hub for an edge
node, the hub for a fog node, a switch hop (1 ms) for a cloud node — plus the inter-region link
(40–120 ms) when it sits in another region.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from kubeagora.model import FloatArray, Tier


@dataclass(frozen=True, slots=True)
class LinkLatencies:
    edge_access_ms: float = 20.0
    fog_ms: float = 5.0
    cloud_hop_ms: float = 1.0
    inter_region_ms: float = 80.0


def ingress_rtt_ms(origin_region: str | None, regions: Sequence[str | None], zones: Sequence[str | None],
                   tiers: Sequence[str | None], user_zone: Mapping[str, str],
                   links: LinkLatencies = LinkLatencies()) -> FloatArray:
    """Per node: the estimated RTT from ``origin_region``'s users (zeros when it is unknown)."""
    n = len(regions)
    if origin_region is None:
        return np.zeros(n)
    users_zone = user_zone.get(origin_region)
    edge_path = links.edge_access_ms + links.fog_ms
    own_path = {Tier.EDGE.value: edge_path, Tier.FOG.value: links.fog_ms}
    reach = links.edge_access_ms + links.fog_ms
    out = np.empty(n)
    for j in range(n):
        tier = tiers[j]
        if tier == Tier.EDGE and zones[j] == users_zone and users_zone is not None:
            out[j] = links.edge_access_ms
            continue
        rtt = own_path.get(tier or "", links.cloud_hop_ms) + reach
        if regions[j] != origin_region:
            rtt += links.inter_region_ms
        out[j] = rtt
    return out
