"""Service templates: the kinds of workload the scenarios mix (web, API, ML inference, IoT, LLM).

Service times are per reference node of each class; a class absent cannot run the template (pods
that request accelerators only fit GPU/TPU nodes, a small IoT ingester also fits an MCU).
"""

from __future__ import annotations

from typing import Any

from kubeagora.model import NodeClass, Service

C, M, G, T = NodeClass.CPU, NodeClass.MCU, NodeClass.GPU, NodeClass.TPU

TEMPLATES: dict[str, dict[str, Any]] = {
    "web": dict(service_time_ms={C: 25.0}, cpu_request=0.5, memory_request_gib=0.25,
                concurrency=4, service_time_cv=0.8, cold_start_s={C: 6.0}),
    "api": dict(service_time_ms={C: 30.0}, cpu_request=1.0, memory_request_gib=1.0,
                concurrency=4, service_time_cv=0.8, cold_start_s={C: 10.0}, traffic_share=0.8),
    "ml-inference": dict(service_time_ms={G: 18.0, T: 14.0}, cpu_request=2.0, memory_request_gib=8.0,
                         accelerator_request=1, accelerator_affinity=G, concurrency=8, service_time_cv=0.4,
                         cold_start_s={G: 25.0, T: 30.0}, priority_weight=2.0,
                         traffic_share=0.25),
    "iot-ingest": dict(service_time_ms={M: 12.0, C: 4.0}, cpu_request=0.25, memory_request_gib=0.125,
                       concurrency=2, service_time_cv=0.5, cold_start_s={M: 2.0, C: 4.0}, resident=True,
                       traffic_share=0.6),
    "llm": dict(service_time_ms={G: 140.0, T: 110.0}, cpu_request=4.0, memory_request_gib=24.0,
                accelerator_request=1, accelerator_affinity=G, concurrency=16, service_time_cv=0.5,
                cold_start_s={G: 45.0, T: 50.0}, slo_p95_ms=600.0, slo_p99_ms=1000.0, priority_weight=2.0,
                max_replicas=16, traffic_share=0.04),
}
"""`resident=True` marks data that must stay in its users' region (allowed_regions = origin).
`traffic_share` scales a generated service's share of the scenario's load: an LLM endpoint sees a
few per cent of the request rate of a web front end (and each request costs a GPU far more)."""


def template_service(template: str, name: str, origin_region: str = "region-0") -> Service:
    """A service of this template with the catalog's profile (ValueError for an unknown template)."""
    if template not in TEMPLATES:
        raise ValueError(f"unknown service template {template!r} (known: {', '.join(TEMPLATES)})")
    fields = {k: v for k, v in TEMPLATES[template].items() if k not in ("resident", "traffic_share")}
    resident = bool(TEMPLATES[template].get("resident", False))
    return Service(name=name, origin_region=origin_region,
                   allowed_regions=(origin_region,) if resident else None, **fields)
