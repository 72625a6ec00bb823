"""Node CPU utilisation from the resource metrics API (``metrics.k8s.io``, served by metrics-server).

The same figures the HorizontalPodAutoscaler reads: each node's CPU usage (metrics-server's rate of
the kubelet's cAdvisor counters) over its allocatable CPU. A cluster without metrics-server answers
404 or 503: utilisation is then unknown (the agents read it as idle), and the operator says so once.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

import aiohttp

from kubeagora.kubeapi.client import Api, ApiError
from kubeagora.kubeapi.quantity import quantity
from kubeagora.operator.view import Obj

NODE_METRICS_PATH = "/apis/metrics.k8s.io/v1beta1/nodes"
log = logging.getLogger("kubeagora.operator")


def node_utilization(node_objs: Sequence[Obj], node_metrics: Sequence[Mapping[str, Any]]) -> dict[str, float]:
    """Node name → CPU usage / allocatable CPU, for the nodes both lists know (pure)."""
    allocatable = {}
    for obj in node_objs:
        status = obj.get("status") or {}
        cores = quantity((status.get("allocatable") or status.get("capacity") or {}).get("cpu"))
        if cores > 0:
            allocatable[str((obj.get("metadata") or {}).get("name"))] = cores
    out = {}
    for item in node_metrics:
        name = str((item.get("metadata") or {}).get("name"))
        if name in allocatable:
            try:
                used = quantity((item.get("usage") or {}).get("cpu"))
            except ValueError:
                continue  # one malformed item costs its node's figure, not the tick
            out[name] = min(max(used / allocatable[name], 0.0), 1.0)
    return out


class NodeUsageReader:
    """Reads ``NodeMetrics`` each tick; remembers whether the API was there, to log a change once."""

    def __init__(self, api: Api) -> None:
        self.api = api
        self.available: bool | None = None

    async def utilization(self, node_objs: Sequence[Obj]) -> dict[str, float]:
        try:
            body = await self.api.get(NODE_METRICS_PATH)
        except (ApiError, aiohttp.ClientError, OSError, TimeoutError) as e:
            if self.available is not False:
                log.warning("no node CPU usage from metrics.k8s.io (%s): node utilisation reads as unknown", e)
            self.available = False
            return {}
        if self.available is not True:
            log.info("node CPU usage from metrics.k8s.io")
        self.available = True
        items = body.get("items") if isinstance(body, Mapping) else None
        return node_utilization(node_objs, items if isinstance(items, list) else [])
