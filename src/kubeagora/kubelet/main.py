"""The mock kubelet's asyncio main loop: one process plays every node of a plan.

Tasks: the heartbeat loop (Lease renewals, status reports, fault transitions, pod crashes), the
pod watch (one watch of every bound pod, filtered to our nodes), the pod timeline (Ready after the
cold start, deletion after the containers stop), the traffic tick, and an HTTP server:

    GET    /metrics   Prometheus exposition (see ``metrics``)
    GET    /healthz   "ok" once every node is registered
    GET    /status    JSON: nodes, pods, Ready pods, active faults
    POST   /faults    JSON {"kind": "node-termination", "node": NAME [, "duration_s": S]}
                      ("zone": Z for a zone-outage; {"kind": "pod-crash", "service": S}); bounded:
                      see ``faults`` and ``bodies`` (a bad body is a 400 naming the field)
    DELETE /faults    clear the faults added here (their nodes come back)
    GET    /load      JSON: each service's offered and base rate (see ``load``)
    POST   /load      JSON {"service": S, "rps": R} or {"service": S, "factor": F}: change a load

A service is a workload in a namespace ("namespace/workload": the Deployment the pod's ReplicaSet
belongs to), so same-named workloads of two namespaces never share traffic or series; ``/load`` and
``/faults`` also take a bare workload name or service label and then mean every namespace's.

With ``--metrics-api-port`` a second, HTTPS listener serves ``metrics.k8s.io/v1beta1`` as an
aggregated API (see ``metrics_api``): the traffic loop samples every pod's and node's cumulative
CPU each tick, and the real HPA in kube-controller-manager reads their rates through the API server.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import time
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np
from aiohttp import web

from kubeagora.kubeapi import kubeconfig
from kubeagora.kubeapi.client import Api, ApiError, WatchExpired
from kubeagora.kubelet import leases, runtime
from kubeagora.kubelet import metrics_api as mapi
from kubeagora.kubelet import nodes as nodes_mod
from kubeagora.kubelet import resource_metrics as rm
from kubeagora.kubelet.bodies import MAX_ADMIN_BODY_BYTES, json_object
from kubeagora.kubelet.errors import KubeletError
from kubeagora.kubelet.faults import (
    MAX_MANUAL_FAULTS,
    NodeFaults,
    crashes_between,
    manual_fault,
    node_faults,
    parse_fault_request,
    still_held,
)
from kubeagora.kubelet.load import check_bound, load_doc, parse_load_change
from kubeagora.kubelet.metrics import CONTENT_TYPE, exposition, make_registry
from kubeagora.kubelet.plan import Plan
from kubeagora.kubelet.pods import (
    STOP_DELAY_S,
    Action,
    ContainerRun,
    IpPool,
    Timeline,
    cold_start_s,
    containers,
    decide,
    delete_options,
    limits,
    pod_status,
    requests,
    scheduled_at,
    service_of,
    workload_of,
)
from kubeagora.kubelet.takeover import take_over
from kubeagora.kubelet.traffic import PodTable, TrafficModel
from kubeagora.model import NodeClass
from kubeagora.sim.scenario import FaultEvent

HEARTBEAT_TICK_S = 0.5
HEARTBEAT_LANE = 16
"""Concurrent Lease and node-status writes, apart from the pod writes (``--max-in-flight``)."""
TIMELINE_TICK_S = 0.2
UNLABELLED = "unlabelled"


@dataclass(frozen=True)
class Options:
    kubeconfig: Path
    metrics_host: str = "127.0.0.1"
    metrics_port: int = 9108
    taints: tuple[dict[str, str], ...] = ()
    tick_s: float = 1.0
    max_in_flight: int = 32
    delete_nodes_on_exit: bool = False
    seed: int = 0
    metrics_api_port: int = 0
    """HTTPS port of the metrics.k8s.io aggregated API; 0 turns it off."""
    metrics_api_address: str | None = None
    """Address it listens on and registers (None: this machine's default-route address)."""
    register_metrics_api: bool = True
    """Create the Service, EndpointSlice and APIService (and delete them on exit)."""
    owner: str = runtime.DEFAULT_OWNER
    """The owner label of the nodes this kubelet registers (from ``--name-prefix``)."""
    log_file: str = ""
    """Where this process logs, for its runtime record (``runtime``)."""
    runtime_dir: Path | None = None
    """Where runtime records live (None: ``runtime.RUNTIME_DIR``)."""


@dataclass
class PodRecord:
    key: str
    uid: str
    namespace: str
    name: str
    node: int
    service: str
    ip: str
    scheduled_at: str
    started_pod_at: str
    main: list[tuple[str, str]]
    init: list[tuple[str, str]]
    cold_start_s: float
    run: ContainerRun
    stopping: bool = False
    dirty: bool = False
    """The status changed since the last write."""
    writing: bool = False
    """A status write is in flight (one at a time per pod, so they cannot land out of order)."""
    labels: dict[str, str] = field(default_factory=dict)
    requests: tuple[rm.ContainerRequest, ...] = ()


@dataclass
class Stats:
    registered: bool = False
    writes: int = 0
    errors: int = 0
    last_error: str = ""
    counts: dict[str, int] = field(default_factory=dict)


def now_iso() -> str:
    return leases.rfc3339(datetime.now(UTC))


def log(message: str) -> None:
    print(f"{time.strftime('%H:%M:%S')} mock-kubelet: {message}", file=sys.stderr, flush=True)


class MockKubelet:
    def __init__(self, plan: Plan, options: Options) -> None:
        self.plan = plan
        self.options = options
        self.nodes = plan.topology.nodes
        self.names = plan.names
        self.node_index = {name: j for j, name in enumerate(self.names)}
        self.node_uid: dict[int, str] = {}
        self.pools = [IpPool(nodes_mod.pod_cidr(j)) for j in range(len(self.nodes))]
        self.pods: dict[str, PodRecord] = {}
        self.parked: dict[int, dict[str, tuple[str, dict[str, Any]]]] = {}
        self.table = PodTable()
        self.model = TrafficModel(self.nodes, plan.topology.ingress_rtt_ms, seed=options.seed)
        self.registry = make_registry(self.model, self.names, lambda: self.faults.heard)
        self.base_rps: dict[str, float] = {}
        """Each service's rate when its profile was made (what a load factor multiplies)."""
        self.aliases: dict[str, frozenset[str]] = {}
        """Service ("namespace/workload") → the names ``/load`` and ``/faults`` may call it by: that
        key, the bare workload name and the pods' service label (the scenario's name for it)."""
        self.pod_usage = rm.UsageHistory()
        self.node_usage = rm.UsageHistory()
        self.node_labels = [nodes_mod.labels(n, name, options.owner)
                            for n, name in zip(self.nodes, self.names, strict=True)]
        self.timeline = Timeline()
        self.manual: list[FaultEvent] = []
        self.t0 = time.monotonic()
        self.faults: NodeFaults = node_faults((), len(self.nodes), 0.0)
        self.condition_since: list[dict[str, str]] = [{} for _ in self.nodes]
        self.stats = Stats()
        self.background: set[asyncio.Task[Any]] = set()
        self.api: Api | None = None
        self.heartbeats = asyncio.Semaphore(HEARTBEAT_LANE)
        self.stop = asyncio.Event()
        self._last_error_log = 0.0

    # plumbing ---------------------------------------------------------------------------------

    def elapsed(self) -> float:
        return time.monotonic() - self.t0

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.ensure_future(coro)
        self.background.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[Any]) -> None:
        self.background.discard(task)
        if task.cancelled():
            return
        exc = task.exception()
        if exc is not None:
            self.error(exc)

    def error(self, exc: BaseException) -> None:
        self.stats.errors += 1
        self.stats.last_error = str(exc)
        if time.monotonic() - self._last_error_log > 5.0:
            self._last_error_log = time.monotonic()
            log(f"error ({self.stats.errors} so far): {exc}")

    @property
    def client(self) -> Api:
        assert self.api is not None
        return self.api

    def events(self) -> list[FaultEvent]:
        return [*self.plan.faults, *self.manual]

    # nodes ------------------------------------------------------------------------------------

    async def register(self, j: int) -> None:
        name, node = self.names[j], self.nodes[j]
        body = nodes_mod.manifest(node, name, j, now_iso(), self.options.taints, self.options.owner)
        status, obj = await self.client.create("/api/v1/nodes", body, want=True, ok=(409,))
        if status == 409:
            meta = {"metadata": {"labels": body["metadata"]["labels"], "annotations": body["metadata"]["annotations"]},
                    "spec": body["spec"]}
            await self.client.merge_patch(f"/api/v1/nodes/{name}", meta)
            await self.client.merge_patch(f"/api/v1/nodes/{name}/status", {"status": body["status"]})
            obj = await self.client.get(f"/api/v1/nodes/{name}")
        self.node_uid[j] = str(obj["metadata"]["uid"])
        await self.renew(j, create=True)

    async def renew(self, j: int, create: bool = False) -> None:
        name = self.names[j]
        path = f"/apis/coordination.k8s.io/v1/namespaces/{leases.LEASE_NAMESPACE}/leases/{name}"
        now = datetime.now(UTC)
        if not create:
            async with self.heartbeats:  # a lane of their own: pod writes queueing up must not delay them
                status = await self.client.merge_patch(path, leases.renew_patch(now), ok=(404,), bounded=False)
            if status != 404:
                return
        status, _ = await self.client.create(
            f"/apis/coordination.k8s.io/v1/namespaces/{leases.LEASE_NAMESPACE}/leases",
            leases.lease_manifest(name, self.node_uid.get(j), now), ok=(409,))
        if status == 409:
            await self.client.merge_patch(path, leases.renew_patch(now))

    async def report_status(self, j: int) -> None:
        health = nodes_mod.NodeHealthView(ready=True, throttle_factor=self.faults.throttle_factor(j))
        patch = nodes_mod.status_patch(now_iso(), health, self.condition_since[j])
        for c in patch["status"]["conditions"]:
            self.condition_since[j].setdefault(c["type"], c["lastTransitionTime"])
        async with self.heartbeats:
            await self.client.merge_patch(f"/api/v1/nodes/{self.names[j]}/status", patch, bounded=False)

    async def node_changed(self, j: int, back: bool, throttle_changed: bool) -> None:
        """A node came back or its throttle changed: tell the API server now (not in 5 minutes)."""
        if back:
            # the node-lifecycle controller set Ready Unknown meanwhile: a fresh transition
            self.condition_since[j] = {}
            await self.renew(j)
        if throttle_changed:
            self.condition_since[j].pop(nodes_mod.CONDITION_THROTTLED, None)
            await self.client.merge_patch(f"/api/v1/nodes/{self.names[j]}",
                                          nodes_mod.throttle_annotation_patch(self.faults.throttle_factor(j)))
        await self.report_status(j)
        if back:
            for event_type, pod in self.parked.pop(j, {}).values():
                self.handle(event_type, pod)

    async def heartbeat_loop(self) -> None:
        n = len(self.nodes)
        lease_offsets = leases.stagger(n, leases.RENEW_INTERVAL_S)
        status_offsets = leases.stagger(n, leases.STATUS_REPORT_INTERVAL_S)
        t_prev = self.elapsed()
        while not self.stop.is_set():
            await asyncio.sleep(HEARTBEAT_TICK_S)
            t = self.elapsed()
            before = self.faults
            self.faults = node_faults(self.events(), n, t)
            heard = self.faults.heard
            for j in leases.due(lease_offsets, leases.RENEW_INTERVAL_S, t_prev, t):
                if heard[j]:
                    self.spawn(self.renew(int(j)))
            for j in leases.due(status_offsets, leases.STATUS_REPORT_INTERVAL_S, t_prev, t):
                if heard[j]:
                    self.spawn(self.report_status(int(j)))
            back = heard & ~before.heard
            gone = ~heard & before.heard
            throttled = self.faults.throttle != before.throttle
            for j in np.flatnonzero(gone):
                log(f"node {self.names[j]} stops heartbeating (fault)")
            for j in np.flatnonzero((back | throttled) & heard):
                if back[j]:
                    log(f"node {self.names[j]} heartbeats again")
                self.spawn(self.node_changed(int(j), bool(back[j]), bool(throttled[j])))
            for service in crashes_between(self.plan.crashes, t_prev, t):
                self.crash(service)
            t_prev = t

    # pods -------------------------------------------------------------------------------------

    def handle(self, event_type: str, pod: dict[str, Any]) -> None:
        meta = pod.get("metadata") or {}
        j = self.node_index.get((pod.get("spec") or {}).get("nodeName") or "")
        if j is None:
            return
        key = f"{meta.get('namespace')}/{meta.get('name')}"
        rec = self.pods.get(key)
        if rec is not None and rec.uid != meta.get("uid") and event_type != "DELETED":
            self.forget(key)
            rec = None
        if rec is not None:
            rec.labels = dict(meta.get("labels") or {})
        if not self.faults.heard[j] and event_type != "DELETED":
            self.parked.setdefault(j, {})[key] = (event_type, pod)  # a dead kubelet sees nothing
            return
        action = decide(event_type, pod, rec is not None, rec.stopping if rec else False)
        if action is Action.START or action is Action.ADOPT:
            self.start(key, j, pod, adopt=action is Action.ADOPT)
        elif action is Action.STOP:
            if rec is None:
                rec = self.start(key, j, pod, adopt=True, quiet=True)
            rec.stopping = True
            self.table.set_ready(key, False)
            self.timeline.at(self.elapsed() + STOP_DELAY_S, "delete", key)
        elif action is Action.FORGET:
            self.forget(key)

    def start(self, key: str, j: int, pod: dict[str, Any], adopt: bool, quiet: bool = False) -> PodRecord:
        meta, status = pod.get("metadata") or {}, pod.get("status") or {}
        now = now_iso()
        # a service is a workload in a namespace: same-named workloads of two namespaces are two services
        workload = workload_of(meta) or UNLABELLED
        label = service_of(meta.get("labels")) or workload
        service = f"{meta.get('namespace')}/{workload}"
        s = self.model.index.get(service)
        if s is None:
            s = self.model.set_profile(replace(self.plan.profile(label, meta.get("annotations")), name=service))
            self.base_rps[service] = self.model.profiles[s].rps
            self.aliases[service] = frozenset({service, workload, label})
        known = self.plan.scenario_services.get(label)
        cold = cold_start_s(meta.get("annotations"), NodeClass(self.nodes[j].node_class),
                            known.cold_start_s if known else None)
        ready = adopt and any(c.get("type") == "Ready" and c.get("status") == "True"
                              for c in status.get("conditions") or ())
        ip = self.pools[j].take(status.get("podIP") if adopt else None)
        started = str(status.get("startTime") or now) if adopt else now
        rec = PodRecord(key, str(meta.get("uid")), str(meta.get("namespace")), str(meta.get("name")), j, service, ip,
                        scheduled_at(pod, now), started, containers(pod), containers(pod, "initContainers"), cold,
                        ContainerRun(started, ready or cold <= 0, now), labels=dict(meta.get("labels") or {}),
                        requests=tuple(rm.container_requests(pod)))
        self.pods[key] = rec
        acc = requests(pod, "nvidia.com/gpu") + requests(pod, "google.com/tpu")
        self.table.add(key, s, j, requests(pod, "cpu"), acc, cpu_limit=limits(pod, "cpu"))
        self.table.set_ready(key, rec.run.ready)
        if not rec.run.ready:
            self.timeline.at(self.elapsed() + cold, "ready", key)
        if not (adopt or quiet):
            self.write_status(rec)
        return rec

    def forget(self, key: str) -> None:
        rec = self.pods.pop(key, None)
        if rec is not None:
            self.pools[rec.node].give_back(rec.ip)
        self.table.remove(key)
        self.timeline.cancel(key)

    def write_status(self, rec: PodRecord) -> None:
        """Write the pod's status soon; changes made while a write waits are coalesced into it."""
        rec.dirty = True
        if not rec.writing:
            rec.writing = True
            self.spawn(self._status_writer(rec))

    async def _status_writer(self, rec: PodRecord) -> None:
        try:
            while rec.dirty and rec.key in self.pods:
                async with self.client.writes:  # wait for a slot first, then build the newest status
                    rec.dirty = False
                    host_ip = nodes_mod.node_ip(rec.node)
                    body = pod_status(rec.uid, host_ip, rec.ip, rec.scheduled_at, rec.started_pod_at, rec.main,
                                      rec.init, rec.run)
                    await self.client.merge_patch(f"/api/v1/namespaces/{rec.namespace}/pods/{rec.name}/status",
                                                  body, ok=(404, 409), bounded=False)
        finally:
            rec.writing = False

    def services_named(self, name: str) -> list[str]:
        """The services ("namespace/workload") ``name`` means: that key, or every service whose bare
        workload name or service label it is (a scenario names services without namespaces)."""
        return sorted(key for key, names in self.aliases.items() if name in names)

    def crash(self, service: str) -> None:
        """Every container of the services' pods ``service`` names restarts once; Ready again after
        the cold start."""
        now = now_iso()
        hit = 0
        keys = set(self.services_named(service))
        for rec in self.pods.values():
            if rec.service not in keys or rec.stopping or not self.faults.heard[rec.node]:
                continue
            run = rec.run
            rec.run = ContainerRun(now, False, now, run.restart_count + 1, (run.started_at, now))
            self.table.set_ready(rec.key, False)
            self.timeline.at(self.elapsed() + rec.cold_start_s, "ready", rec.key)
            self.write_status(rec)
            hit += 1
        log(f"pod-crash {service}: {hit} pods restart")

    async def timeline_loop(self) -> None:
        while not self.stop.is_set():
            await asyncio.sleep(TIMELINE_TICK_S)
            t = self.elapsed()
            for kind, key in self.timeline.pop_due(t):
                rec = self.pods.get(key)
                if rec is None:
                    continue
                if not self.faults.heard[rec.node]:
                    self.timeline.at(t + 1.0, kind, key)  # the kubelet is cut off: later
                    continue
                if kind == "ready" and not rec.stopping:
                    now = now_iso()
                    run = rec.run
                    rec.run = ContainerRun(run.started_at, True, now, run.restart_count, run.last_terminated)
                    self.table.set_ready(key, True)
                    self.write_status(rec)
                elif kind == "delete":
                    self.spawn(self.client.delete(f"/api/v1/namespaces/{rec.namespace}/pods/{rec.name}",
                                                  delete_options(rec.uid)))

    async def watch_loop(self) -> None:
        params = {"fieldSelector": "spec.nodeName!="}
        while not self.stop.is_set():
            try:
                items, rv = await self.client.list_all("/api/v1/pods", params)
                seen = set()
                for pod in items:
                    meta = pod.get("metadata") or {}
                    seen.add(f"{meta.get('namespace')}/{meta.get('name')}")
                    self.handle("ADDED", pod)
                for key in [k for k in self.pods if k not in seen]:
                    self.forget(key)
                while not self.stop.is_set():
                    async for event_type, obj in self.client.watch("/api/v1/pods", params, rv):
                        rv = str((obj.get("metadata") or {}).get("resourceVersion") or rv)
                        if event_type != "BOOKMARK":
                            self.handle(event_type, obj)
            except WatchExpired:
                continue
            except (TimeoutError, aiohttp.ClientError, ApiError) as e:
                self.error(e)
                await asyncio.sleep(1.0)

    # traffic ----------------------------------------------------------------------------------

    async def traffic_loop(self) -> None:
        dt = self.options.tick_s
        while not self.stop.is_set():
            await asyncio.sleep(dt)
            self.model.tick(dt, self.table, self.faults.serving, self.faults.throttle)
            if self.options.metrics_api_port:
                self.sample_usage(time.time())

    def sample_usage(self, t: float) -> None:
        """Record the cumulative CPU of every pod (by uid: a name can come back as a new pod) and node."""
        pods = {}
        for rec in self.pods.values():
            used = self.table.used_cpu_seconds(rec.key)
            if used is not None:
                pods[rec.uid] = used
        self.pod_usage.record(t, pods)
        self.node_usage.record(t, dict(zip(self.names, self.model.node_cpu_seconds.tolist(), strict=True)))

    def pod_snapshots(self) -> list[rm.PodSnapshot]:
        """What metrics-server would have scraped: running pods on nodes whose kubelet answers."""
        out = []
        for rec in self.pods.values():
            if rec.stopping or not self.faults.heard[rec.node] or not rec.requests:
                continue
            usage = self.pod_usage.usage(rec.uid)
            if usage is not None:
                out.append(rm.PodSnapshot(rec.namespace, rec.name, rec.labels, usage, rec.requests))
        return out

    def node_snapshots(self) -> list[rm.NodeSnapshot]:
        """Per node: the rate of its pods' CPU, and the sum of their (placeholder) memory."""
        memory = [0.0] * len(self.nodes)
        for rec in self.pods.values():
            if not rec.stopping and rec.requests:
                memory[rec.node] += sum(c.memory_bytes for c in rm.split_usage(0.0, rec.requests))
        out = []
        for j, name in enumerate(self.names):
            usage = self.node_usage.usage(name)
            if usage is not None and self.faults.heard[j]:
                out.append(rm.NodeSnapshot(name, self.node_labels[j], usage, memory[j]))
        return out

    # admin ------------------------------------------------------------------------------------

    def add_fault(self, body: Mapping[str, object]) -> str:
        """Apply a ``POST /faults`` body; ValueError for a bad one, an unknown target or too many held."""
        req = parse_fault_request(body)
        if req.service is not None:
            if not self.services_named(req.service):
                raise ValueError(f"no pods of service {req.service!r} run here")
            self.crash(req.service)
            return f"pod-crash {req.service}"
        if req.zone is not None:
            target = req.zone
            hit = [j for j, n in enumerate(self.nodes) if n.zone == target]
        else:
            target = str(req.node)
            hit = [self.node_index[target]] if target in self.node_index else []
        if not hit:
            raise ValueError(f"no mock node or zone named {target!r}")
        t = self.elapsed()
        self.manual = still_held(self.manual, t)
        if len(self.manual) >= MAX_MANUAL_FAULTS:
            raise ValueError(f"{len(self.manual)} faults added here still hold (the limit is {MAX_MANUAL_FAULTS}): "
                             "wait for some to end or DELETE /faults")
        event = manual_fault(req.kind, hit, t, req.duration_s, req.factor, f"{req.kind} {target}")
        self.manual.append(event)
        self.faults = node_faults(self.events(), len(self.nodes), t)
        log(f"fault added: {event.label} ({len(hit)} nodes)")
        return event.label

    def change_load(self, body: object) -> dict[str, Any]:
        """Apply a ``POST /load`` body; ValueError for a bad one or a service that runs no pod here."""
        change = parse_load_change(body)
        keys = self.services_named(change.service)
        if not keys:
            known = ", ".join(sorted(self.model.index)) or "none yet"
            raise ValueError(f"no pods of service {change.service!r} run here (services: {known})")
        offered, bases = {}, {}
        for key in keys:  # checked first: a bad factor changes nothing
            s = self.model.index[key]
            bases[key] = self.base_rps.get(key, self.model.profiles[s].rps)
            offered[key] = check_bound(change, bases[key])
        for key in keys:
            self.model.set_rps(self.model.index[key], offered[key])
            log(f"load of {key}: {offered[key]:g} rps (base {bases[key]:g})")
        return load_doc(offered, bases)

    def load_state(self) -> dict[str, Any]:
        return load_doc({p.name: p.rps for p in self.model.profiles}, self.base_rps)

    def status_doc(self) -> dict[str, Any]:
        t = self.elapsed()
        ready = sum(1 for r in self.pods.values() if r.run.ready and not r.stopping)
        active = [e.label for e in self.events() if e.at_s <= t and (e.duration_s is None or t < e.at_s + e.duration_s)]
        return {"registered": self.stats.registered, "nodes": len(self.nodes), "pods": len(self.pods),
                "ready_pods": ready, "heard_nodes": int(self.faults.heard.sum()), "faults": active,
                "errors": self.stats.errors, "last_error": self.stats.last_error, "elapsed_s": round(t, 1)}

    def web_app(self) -> web.Application:
        async def metrics(_: web.Request) -> web.Response:
            return web.Response(body=exposition(self.registry), headers={"Content-Type": CONTENT_TYPE})

        async def healthz(_: web.Request) -> web.Response:
            return web.Response(text="ok" if self.stats.registered else "registering",
                                status=200 if self.stats.registered else 503)

        async def status(_: web.Request) -> web.Response:
            return web.json_response(self.status_doc())

        async def post_fault(request: web.Request) -> web.Response:
            try:
                label = self.add_fault(json_object(await request.read()))
            except ValueError as e:
                return web.json_response({"error": str(e)}, status=400)
            return web.json_response({"added": label})

        async def get_load(_: web.Request) -> web.Response:
            return web.json_response(self.load_state())

        async def post_load(request: web.Request) -> web.Response:
            try:
                return web.json_response(self.change_load(json_object(await request.read())))
            except ValueError as e:
                return web.json_response({"error": str(e)}, status=400)

        async def clear_faults(_: web.Request) -> web.Response:
            cleared = len(self.manual)
            self.manual.clear()
            log(f"{cleared} faults cleared")
            return web.json_response({"cleared": cleared})

        app = web.Application(client_max_size=MAX_ADMIN_BODY_BYTES)
        app.add_routes([web.get("/metrics", metrics), web.get("/healthz", healthz), web.get("/status", status),
                        web.post("/faults", post_fault), web.delete("/faults", clear_faults),
                        web.get("/load", get_load), web.post("/load", post_load)])
        return app

    # run --------------------------------------------------------------------------------------

    async def run(self, on_ready: Callable[[int], None] | None = None) -> None:
        # the official loader; this client is our own aiohttp one (see kubeapi.client) for its write lanes
        endpoint = await kubeconfig.load(self.options.kubeconfig)
        self.api = Api(endpoint, self.options.max_in_flight, user_agent="kubeagora-mock-kubelet")
        runner = web.AppRunner(self.web_app(), access_log=None)
        await runner.setup()
        api_runner: web.AppRunner | None = None
        api_address: str | None = None
        api_registered = False
        try:
            site = web.TCPSite(runner, self.options.metrics_host, self.options.metrics_port)
            try:
                await site.start()
            except OSError as e:
                port = self.options.metrics_port
                raise KubeletError(f"--metrics-port {port}: cannot listen ({e.strerror}); another mock kubelet may "
                                   f"serve there (stop it: kubeagora mock-kubelet --stop), or pass --metrics-port 0"
                                   ) from None
            port = self._bound_port(runner)
            log(f"serving /metrics, /status and /faults on http://{self.options.metrics_host}:{port}")
            try:
                await self.client.get("/version")
            except (aiohttp.ClientError, ApiError, OSError) as e:
                raise KubeletError(f"cannot reach the API server at {endpoint.server}: {e}; start the devcluster "
                                   f"with: kubeagora devcluster up") from None
            if self.options.metrics_api_port:
                api_address = self.options.metrics_api_address or mapi.host_address()
                api_runner = await self.serve_metrics_api(api_address)
                if self.options.register_metrics_api:
                    api_registered = await self.register_metrics_api(api_address)
            started = time.monotonic()
            try:
                wanted = {name: nodes_mod.manifest(node, name, j, now_iso(), self.options.taints, self.options.owner)
                          for j, (node, name) in enumerate(zip(self.nodes, self.names, strict=True))}
                await take_over(self.client, wanted, self.options.owner, log)
                await asyncio.gather(*(self.register(j) for j in range(len(self.nodes))))
            except ApiError as e:
                raise KubeletError(f"cannot register the nodes: {e}. To start from an empty cluster: "
                                   f"kubeagora devcluster delete && kubeagora devcluster up") from None
            self.stats.registered = True
            self.t0 = time.monotonic()
            log(f"registered {len(self.nodes)} nodes ({self.plan.source}) in {time.monotonic() - started:.1f} s")
            record = runtime.Record(os.getpid(), endpoint.server, self.options.owner,
                                    f"http://{self.options.metrics_host}:{port}", len(self.nodes), self.plan.source,
                                    self.options.log_file, time.time())
            runtime.write(record, self.options.runtime_dir)
            if on_ready is not None:
                on_ready(port)
            tasks = [asyncio.ensure_future(c) for c in (self.heartbeat_loop(), self.watch_loop(),
                                                         self.timeline_loop(), self.traffic_loop())]
            stopper = asyncio.ensure_future(self.stop.wait())
            done, _ = await asyncio.wait([*tasks, stopper], return_when=asyncio.FIRST_COMPLETED)
            for task in [*tasks, stopper, *self.background]:
                task.cancel()
            for task in done:
                if task is not stopper and not task.cancelled() and task.exception() is not None:
                    raise task.exception()  # type: ignore[misc]
        finally:
            runtime.remove(endpoint.server, self.options.owner, os.getpid(), self.options.runtime_dir)
            if self.options.delete_nodes_on_exit and self.api is not None:
                with contextlib.suppress(Exception):
                    await asyncio.gather(*(self.client.delete(f"/api/v1/nodes/{name}") for name in self.names))
                log(f"deleted {len(self.names)} nodes")
            if api_registered and api_address is not None:
                with contextlib.suppress(Exception):
                    if await mapi.unregister(self.client, api_address, self.options.metrics_api_port):
                        log(f"unregistered APIService {mapi.APISERVICE_NAME}")
            await runner.cleanup()
            if api_runner is not None:
                await api_runner.cleanup()
            if self.api is not None:
                await self.api.close()

    async def serve_metrics_api(self, address: str) -> web.AppRunner:
        """Start the HTTPS listener of metrics.k8s.io on ``address:--metrics-api-port``."""
        port = self.options.metrics_api_port
        runner = web.AppRunner(mapi.web_app(self.pod_snapshots, self.node_snapshots), access_log=None)
        await runner.setup()
        try:
            await web.TCPSite(runner, address, port, ssl_context=mapi.serving_context(address)).start()
        except OSError as e:
            await runner.cleanup()
            raise KubeletError(f"--metrics-api-port {port}: cannot listen on {address} ({e.strerror})") from None
        except KubeletError:
            await runner.cleanup()
            raise
        log(f"serving {rm.GROUP_VERSION} on https://{address}:{port} (self-signed)")
        return runner

    async def register_metrics_api(self, address: str) -> bool:
        try:
            await mapi.register(self.client, address, self.options.metrics_api_port)
        except ApiError as e:
            raise KubeletError(f"cannot register the metrics API: {e}") from None
        log(f"registered APIService {mapi.APISERVICE_NAME} → {address}:{self.options.metrics_api_port}")

        async def report() -> None:
            ok, why = await mapi.wait_available(self.client)
            log(f"APIService {mapi.APISERVICE_NAME} " + ("Available" if ok else f"not Available after 60 s ({why})"))

        self.spawn(report())
        return True

    @staticmethod
    def _bound_port(runner: web.AppRunner) -> int:
        for addr in runner.addresses:
            if isinstance(addr, tuple) and len(addr) >= 2:
                return int(addr[1])
        return 0


def run(plan: Plan, options: Options) -> None:
    """Run until SIGINT or SIGTERM; KubeletError for bad input or an unreachable API server."""

    async def main() -> None:
        kubelet = MockKubelet(plan, options)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, kubelet.stop.set)
        await kubelet.run()

    asyncio.run(main())
