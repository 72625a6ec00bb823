"""The operator's control loop run in the test process against the real API server.

The loop, its API client and every request it sends are the operator's own; only two things are
stand-ins: the watch cache is filled by listing (``LiveLoop.refresh``, what kopf's watches would
have delivered), and Prometheus is a fixed table of signals (``StaticSignals``). The loop's world is
cut to the test's own namespaces and nodes, since the control plane is shared by every test module.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from tests.integration.kube import TAINT_KEY, apply

from kubeagora.devcluster import DevCluster
from kubeagora.kubeapi import kubeconfig
from kubeagora.kubeapi.client import Api
from kubeagora.operator.loop import ControlLoop, LoopSettings
from kubeagora.operator.metric_presets import DEFAULT_PRESET, PRESETS
from kubeagora.operator.metrics_source import NodeSignals, Reading, ServiceSignals, Source
from kubeagora.operator.telemetry import Telemetry
from kubeagora.operator.view import ClusterView

GROUP_PATH = "/apis/kubeagora.io/v1alpha1"
LISTS = {"nodes": "/api/v1/nodes", "pods": "/api/v1/pods", "deployments": "/apis/apps/v1/deployments",
         "intents": f"{GROUP_PATH}/orchestrationintents", "policies": f"{GROUP_PATH}/orchestrationpolicies",
         "agentactions": f"{GROUP_PATH}/agentactions"}


def unique(stem: str) -> str:
    return f"{stem}-{uuid.uuid4().hex[:6]}"


def namespace(cluster: DevCluster, name: str) -> str:
    apply(cluster, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
    return name


def workload(ns: str, name: str, prefix: str, pods: int = 1, requests: Mapping[str, str] | None = None,
             **intent_spec: Any) -> list[dict[str, Any]]:
    """An intent and its web Deployment of ``pods`` replicas whose pods tolerate the mock kubelet's taint of ``prefix``
    (``kube.mock_kubelet``); ``intent_spec`` adds to or replaces fields of the intent's spec."""
    labels = {"app": name}
    requests = dict(requests or {"cpu": "100m"})
    gpus = {k: v for k, v in requests.items() if k == "nvidia.com/gpu"}
    resources: dict[str, Any] = {"requests": requests, **({"limits": gpus} if gpus else {})}
    return [
        {"apiVersion": "kubeagora.io/v1alpha1", "kind": "OrchestrationIntent",
         "metadata": {"name": name, "namespace": ns},
         "spec": {"targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name},
                  "slo": {"p95Ms": 150, "p99Ms": 250}, "replicas": {"min": 1, "max": 10},
                  "workload": {"template": "web"}, **intent_spec}},
        {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "namespace": ns},
         "spec": {"replicas": pods, "selector": {"matchLabels": labels},
                  "template": {"metadata": {"labels": labels},
                               "spec": {"tolerations": [{"key": TAINT_KEY, "value": prefix.rstrip("-"),
                                                         "effect": "NoSchedule"}],
                                        "terminationGracePeriodSeconds": 1,
                                        "containers": [{"name": "app", "image": "registry.k8s.io/pause:3.10",
                                                        "resources": resources}]}}}},
    ]


@dataclass
class StaticSignals:
    """Prometheus as a table: per-service load and latency (what the mock kubelet would export)."""

    table: dict[str, ServiceSignals] = field(default_factory=dict)

    def set(self, service: str, offered_rps: float, p95_ms: float = math.nan, p99_ms: float = math.nan) -> None:
        self.table[service] = ServiceSignals(service, offered_rps, offered_rps, 0.0, p95_ms, p99_ms)

    def source(self, preset: str | None, queries: Mapping[str, str] | None = None) -> Source:
        return Source(PRESETS[preset or DEFAULT_PRESET], dict(queries or {}))

    def services(self, sources: Mapping[str, Source] | None = None) -> Reading:
        return Reading(dict(self.table))

    def nodes(self) -> dict[str, NodeSignals]:
        return {}


@dataclass
class LiveLoop:
    """``async with LiveLoop(...) as live: await live.tick()``."""

    cluster: DevCluster
    namespaces: Iterable[str]
    nodes: Iterable[str] = ()
    """Node names the loop sees (the test's own)."""
    settings: LoopSettings = field(default_factory=lambda: LoopSettings(run=uuid.uuid4().hex[:6],
                                                                        namespace=unique("sec-ops")))
    """The operator's namespace is created when missing (its own per test by default)."""
    signals: StaticSignals = field(default_factory=StaticSignals)
    policies: Iterable[str] = ()
    """Cluster-scoped policies the loop sees (by name)."""

    def __post_init__(self) -> None:
        self.view = ClusterView()
        self.telemetry = Telemetry()
        self.api: Api | None = None
        self.loop: ControlLoop | None = None

    async def __aenter__(self) -> LiveLoop:
        self.api = Api(await kubeconfig.load(self.cluster.kubeconfig), user_agent="kubeagora-security-test")
        await self.api.create("/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace",
                                                     "metadata": {"name": self.settings.namespace}}, ok=(409,))
        self.loop = ControlLoop(self.view, self.api, self.settings, self.telemetry,
                                signals=self.signals)  # type: ignore[arg-type]
        return self

    async def __aexit__(self, *_: object) -> None:
        assert self.api is not None
        await self.api.close()

    def _kept(self, kind: str, obj: Mapping[str, Any]) -> bool:
        meta = obj.get("metadata") or {}
        if kind == "nodes":
            return meta.get("name") in set(self.nodes)
        if kind == "policies":
            return meta.get("name") in set(self.policies)
        return meta.get("namespace") in set(self.namespaces)

    async def refresh(self) -> None:
        """What the watches would have delivered by now (objects gone are dropped from the view)."""
        assert self.api is not None
        for kind, path in LISTS.items():
            items, _ = await self.api.list_all(path, {})
            self.view.objects[kind] = {}
            for obj in items:
                if self._kept(kind, obj):
                    self.view.apply(kind, None, obj)

    async def tick(self) -> str:
        assert self.loop is not None
        await self.refresh()
        return await self.loop.tick()
