"""What a pod asks for: its service, its catalog template, its requests, and the model `Service`
the Contract-Net bids price (pure).

A pod's service time per node class comes from its ``kubeagora.io/template`` annotation (the
simulator's catalog: web, api, ml-inference, iot-ingest, llm); a pod without one is a generic
workload that runs on any class at ``GENERIC_SERVICE_MS``. CPU, memory and accelerators are the
sums of its containers' requests (a limit standing in for a missing request, as the API server
defaults it).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from kubeagora.kubelet.nodes import ACCELERATOR_RESOURCE
from kubeagora.kubelet.pods import ANNOTATION_TEMPLATE, requests, service_of
from kubeagora.model import NODE_CLASSES, NodeClass, Service
from kubeagora.sim.catalog import TEMPLATES

GPU_RESOURCE = ACCELERATOR_RESOURCE[NodeClass.GPU]
TPU_RESOURCE = ACCELERATOR_RESOURCE[NodeClass.TPU]
GENERIC_SERVICE_MS = 10.0
"""Mean service time assumed for a pod with no catalog template, on every node class."""
GIB = 2.0**30


@dataclass(frozen=True, slots=True)
class PodDemand:
    namespace: str
    name: str
    labels: Mapping[str, str]
    service: str
    """The ``kubeagora.io/service`` label, else ``app``, else the pod's name."""
    template: str | None
    """The catalog template named by the pod's annotation (None: absent or unknown)."""
    cpu: float
    memory_gib: float
    gpus: float
    tpus: float
    service_time_ms: Mapping[NodeClass, float]

    @property
    def accelerators(self) -> float:
        return self.gpus + self.tpus

    def service_ms_on(self, node_class: NodeClass | None) -> float:
        """Mean service time on a reference node of this class (the fastest listed when the class is
        unknown or unlisted: the scheduler may put a pod where its template would not)."""
        if node_class is not None and node_class in self.service_time_ms:
            return self.service_time_ms[node_class]
        return min(self.service_time_ms.values())


def pod_demand(pod: Mapping[str, Any]) -> PodDemand:
    meta = pod.get("metadata") or {}
    labels = meta.get("labels") or {}
    annotations = meta.get("annotations") or {}
    template = annotations.get(ANNOTATION_TEMPLATE)
    known = template if template in TEMPLATES else None
    times: Mapping[NodeClass, float] = (dict(TEMPLATES[known]["service_time_ms"]) if known
                                        else dict.fromkeys(NODE_CLASSES, GENERIC_SERVICE_MS))
    return PodDemand(
        namespace=str(meta.get("namespace") or "default"),
        name=str(meta.get("name") or ""),
        labels={str(k): str(v) for k, v in labels.items()},
        service=service_of(labels) or str(meta.get("name") or ""),
        template=known,
        cpu=requests(pod, "cpu"),
        memory_gib=requests(pod, "memory") / GIB,
        gpus=requests(pod, GPU_RESOURCE),
        tpus=requests(pod, TPU_RESOURCE),
        service_time_ms=times,
    )


def model_service(demand: PodDemand, origin_region: str, allowed_regions: tuple[str, ...] | None) -> Service:
    """The pod as the simulator's `Service`: what a Contract-Net task announces."""
    t: Mapping[str, Any] = TEMPLATES[demand.template] if demand.template else {}
    return Service(
        name=f"{demand.namespace}/{demand.service}",  # a service is named within its namespace
        service_time_ms=dict(demand.service_time_ms),
        cpu_request=demand.cpu,
        memory_request_gib=demand.memory_gib,
        accelerator_request=round(demand.accelerators),
        service_time_cv=float(t.get("service_time_cv", 0.6)),
        origin_region=origin_region,
        allowed_regions=allowed_regions,
        concurrency=int(t.get("concurrency", 4)),
    )
