"""Placement by Contract Net: announce a replica, every node bids its marginal cost, award the cheapest.

The protocol is Smith's Contract Net (R. G. Smith, "The Contract Net Protocol: High-Level
Communication and Control in a Distributed Problem Solver", IEEE Trans. Computers C-29(12), 1980):
a manager announces a task, contractors that can do it answer with a bid, the manager awards the
task to the best bid. Here the task is "start one replica of service s", the contractors are the
nodes, and a node's bid is the marginal cost of hosting that replica, in milliseconds of request
latency (or what a policy says is worth as much):

- interference: the replica's requests are slowed by the node's contention, 1 + β·u² (the
  simulator's model), and it slows every co-located replica's requests by β·(u_after² − u²);
  the sum of both, in ms per request;
- energy × carbon: the extra wall power the replica's load draws, (peak − idle)·Δu, times the
  region's grid intensity, in g CO₂ per hour, priced at `BidWeights.ms_per_carbon_g_per_h`;
- network: the RTT from the service's users (its origin region's edge) to the node;
- residency, capacity, class, readiness: a node that may not or cannot host the replica bids
  "infeasible", with the reason;
- trust: a node trusted at t ∈ (0, 1] has its bid marked up by cost·(1/t − 1), so a half-trusted
  node must be twice as cheap to win; below `BidWeights.min_trust` it does not bid.

Everything is pure: `announce` turns a `PlacementTask` and a `NodeLedger` (the nodes' state as
arrays) into one `NodeBid` per node, `award` picks the winner, `commit` returns the ledger with the
winner's load added, so the next replica of the same service sees it. `place_by_contract_net` runs
the rounds for `count` replicas from an Observation. Each award keeps its bid breakdown, so the
placement agent can explain it ("node-3: 21 ms RTT, 2.4 ms interference, 0.7 g/h, trusted").
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, TypeVar

import numpy as np
import numpy.typing as npt

from kubeagora.model import (
    NODE_CLASSES,
    BoolArray,
    FloatArray,
    IntArray,
    Node,
    NodeClass,
    Observation,
    Service,
    class_service_time_ms,
)
from kubeagora.model.spec_tables import per_specs
from kubeagora.sim.latency import INTERFERENCE

INTERFERENCE_BETA: Mapping[NodeClass, float] = INTERFERENCE
"""Slowdown at full utilisation from co-located work, 1 + β·u², per node class: the platform's
coefficients, from the one latency model (`sim.latency`)."""

IDLE_CPU_FRACTION = 0.05
"""CPU an idle replica burns, as a share of its request (the simulator's platform default)."""

ACCELERATOR_CLASSES = frozenset({NodeClass.GPU, NodeClass.TPU})


@dataclass(frozen=True, slots=True)
class BidWeights:
    """How a node turns its marginal effects into one cost (ms of request latency, or as good as)."""

    ms_per_carbon_g_per_h: float = 5.0
    """What one g CO₂/h of extra emissions is worth in ms. At 5, a 0.5-core web replica on a
    600 g/kWh grid costs ~6 ms more than on a 60 g/kWh grid: enough to pick the clean node among
    near-equals, never enough to send users to another region (40–120 ms)."""
    network_weight: float = 1.0
    """Multiplier on the users' RTT to the node (1: a ms of RTT is a ms of latency)."""
    interference_weight: float = 1.0
    slowness_weight: float = 1.0
    """Multiplier on the slowness cost: the replica's service time there × how many times slower it is
    than on the fastest node that could host it. kube-proxy splits traffic evenly, so a replica k×
    slower than its siblings fills up k× sooner and becomes the service's bottleneck: an MCU that is
    15 ms nearer but 3× slower than a CPU node is the wrong home for a 4 ms ingester."""
    min_trust: float = 0.05
    """Nodes trusted less than this do not bid (quarantine-grade suspicion)."""


@dataclass(frozen=True, slots=True)
class NodeBid:
    """One node's answer to a call for bids, with the breakdown that explains it."""

    node_index: int
    node: str
    feasible: bool
    infeasible_reason: str
    """Why the node cannot host the replica ("" when it can)."""
    interference_ms: float
    """Extra ms per request: the replica's own contention slowdown plus what it adds to its neighbours'."""
    carbon_g_per_h: float
    """Extra emissions of the replica's load on this node."""
    network_ms: float
    """RTT from the service's users to the node."""
    slowness_ms: float
    """Service time there × its ratio to the fastest feasible node's (see BidWeights.slowness_weight)."""
    trust: float
    trust_markup_ms: float
    """cost × (1/trust − 1): what distrust adds."""
    cost_ms: float
    """The bid: weighted sum of the above plus the trust markup; +inf when infeasible."""

    def explain(self) -> str:
        if not self.feasible:
            return f"{self.node}: cannot host ({self.infeasible_reason})"
        return (f"{self.node}: {self.cost_ms:.1f} ms = RTT {self.network_ms:.1f} ms + slowness "
                f"{self.slowness_ms:.1f} ms + interference {self.interference_ms:.2f} ms + "
                f"{self.carbon_g_per_h:.2f} g CO2/h"
                + (f" + distrust {self.trust_markup_ms:.1f} ms (trust {self.trust:.2f})"
                   if self.trust_markup_ms > 0 else ""))


@dataclass(frozen=True, slots=True)
class PlacementTask:
    """The call for bids: start one replica of a service."""

    service_index: int
    service: Service
    origin_region_index: int
    """Row of `ingress_rtt_ms` where the service's users are."""
    replica_busy_fraction: float
    """Expected share of the replica's worker slots busy on a reference node (0..1): its load."""


@dataclass(frozen=True, slots=True)
class NodeLedger:
    """The nodes as bidders see them, as arrays indexed like `Observation.nodes`."""

    names: tuple[str, ...]
    node_classes: tuple[NodeClass, ...]
    regions: tuple[str, ...]
    cpu_cores: FloatArray
    cpu_free: FloatArray
    memory_free_gib: FloatArray
    accelerators: FloatArray
    accelerators_free: FloatArray
    schedulable: BoolArray
    """Ready and not quarantined."""
    utilisation: FloatArray
    speed: FloatArray
    beta: FloatArray
    dynamic_power_w: FloatArray
    """Peak − idle wall power: what full utilisation adds to an idle node."""
    carbon_g_per_kwh: FloatArray
    ingress_rtt_ms: FloatArray
    """[region, node]."""
    colocated_service_ms: FloatArray
    """Sum over the replicas on each node of their requests' mean service time (ms, at the node's
    speed, before contention): how many ms of neighbours' work a rise in contention slows."""
    trust: FloatArray


def _service_class_ms(services: Sequence[Service]) -> FloatArray:
    """[service, NodeClass column] declared service time, NaN where the service cannot run (once per run
    for a tuple of services)."""
    return class_service_time_ms(services, NODE_CLASSES)


_CLASS_COLUMN = {c: j for j, c in enumerate(NodeClass)}


def _node_specs(nodes: tuple[Node, ...]) -> tuple[Any, ...]:
    """The ledger's columns that depend on the node specs alone (once per run)."""
    def build() -> tuple[Any, ...]:
        classes = tuple(n.node_class for n in nodes)
        return (tuple(n.name for n in nodes), classes, tuple(n.region for n in nodes),
                np.array([n.cpu_cores for n in nodes], dtype=np.float64),
                np.array([n.memory_gib for n in nodes], dtype=np.float64),
                np.array([n.accelerators for n in nodes], dtype=np.float64),
                np.array([INTERFERENCE_BETA[c] for c in classes], dtype=np.float64),
                np.array([n.peak_power_w - n.idle_power_w for n in nodes], dtype=np.float64),
                np.array([_CLASS_COLUMN[c] for c in classes], dtype=np.int64))
    return per_specs("contract_net.node_specs", (nodes,), build)


def ledger_from_observation(observation: Observation, trust: Mapping[str, float] | None = None) -> NodeLedger:
    """The bidders' view of the cluster now. Trust is per node name; a node not named is trusted (1.0)."""
    obs = observation
    nodes = obs.nodes
    names, classes, regions, cpu_cores, memory_gib, accelerators, beta, dynamic_power_w, node_class_column = \
        _node_specs(nodes)
    speed = np.maximum(np.asarray(obs.node_speed, dtype=np.float64), 1e-9)
    # each existing replica's mean service time on its node: service × node class table, then gather
    service_ms = np.nan_to_num(_service_class_ms(obs.services), nan=0.0)
    replica_ms = (service_ms[obs.replica_service, node_class_column[obs.replica_node]]
                  / speed[obs.replica_node]) if obs.replica_node.size else np.zeros(0)
    colocated = np.bincount(obs.replica_node, weights=replica_ms, minlength=len(nodes)).astype(np.float64)
    trust_of = trust or {}
    return NodeLedger(
        names=names,
        node_classes=classes,
        regions=regions,
        cpu_cores=cpu_cores,
        cpu_free=cpu_cores - obs.node_cpu_allocated,
        memory_free_gib=memory_gib - obs.node_memory_allocated_gib,
        accelerators=accelerators,
        accelerators_free=accelerators - obs.node_accelerators_allocated,
        schedulable=np.asarray(obs.node_ready & ~obs.node_quarantined, dtype=np.bool_),
        utilisation=np.clip(np.asarray(obs.node_utilization, dtype=np.float64), 0.0, 1.0),
        speed=speed,
        beta=beta,
        dynamic_power_w=dynamic_power_w,
        carbon_g_per_kwh=np.array([obs.region_carbon_g_per_kwh.get(n.region, 0.0) for n in nodes],
                                  dtype=np.float64),
        ingress_rtt_ms=np.asarray(obs.ingress_rtt_ms, dtype=np.float64),
        colocated_service_ms=colocated,
        trust=np.array([trust_of.get(n, 1.0) for n in names], dtype=np.float64) if trust_of
        else np.ones(len(names), dtype=np.float64),
    )


def tasks_from_observation(observation: Observation, service_indices: Sequence[int]) -> list[PlacementTask]:
    """Announce one more replica of each service named; its load is the service's arrivals spread over one
    more replica (`task_from_observation` for many services at once)."""
    obs = observation
    at = np.asarray(service_indices, dtype=np.int64)
    class_ms = _service_class_ms(obs.services)[at]
    declared = ~np.isnan(class_ms)
    reference_ms = np.where(declared.any(axis=1), np.min(np.where(declared, class_ms, np.inf), axis=1), 0.0)
    concurrency = np.array([max(obs.services[s].concurrency, 1) for s in at.tolist()], dtype=np.int64)
    replicas_after = (obs.ready_replicas[at] + obs.pending_replicas[at]).astype(np.int64) + 1
    busy = np.clip(np.asarray(obs.arrival_rps, dtype=np.float64)[at] / replicas_after * reference_ms / 1000.0
                   / concurrency, 0.0, 1.0)
    region_index = {r: k for k, r in reversed(list(enumerate(obs.regions)))}
    return [PlacementTask(s, obs.services[s], region_index.get(obs.services[s].origin_region, 0), b)
            for s, b in zip(at.tolist(), busy.tolist(), strict=True)]


def task_from_observation(observation: Observation, service_index: int) -> PlacementTask:
    """Announce one more replica of a service; its load is the service's arrivals spread over one more replica."""
    return tasks_from_observation(observation, [service_index])[0]


_CODES: dict[int, tuple[tuple[Any, ...], tuple[Any, ...], IntArray]] = {}
"""id(tuple) → (the tuple, its distinct values in order of first appearance, each entry's position among them).
A tick bids thousands of times over one ledger, whose node classes and regions are the same tuples."""


_Value = TypeVar("_Value", bound=Hashable)


def _codes(values: tuple[_Value, ...]) -> tuple[tuple[_Value, ...], IntArray]:
    cached = _CODES.get(id(values))
    if cached is not None and cached[0] is values:  # the tuple is held in the entry: its id is not reused
        return cached[1], cached[2]
    distinct = tuple(dict.fromkeys(values))
    position = {v: k for k, v in enumerate(distinct)}
    codes = np.array([position[v] for v in values], dtype=np.int64)
    if len(_CODES) >= 64:
        _CODES.clear()
    _CODES[id(values)] = (values, distinct, codes)
    return distinct, codes


def _per_node(ledger_values: tuple[_Value, ...], value_of: Callable[[_Value], object],
              dtype: type) -> npt.NDArray[Any]:
    """[value_of(v) for v in ledger_values] as an array, computing value_of once per distinct value."""
    distinct, codes = _codes(ledger_values)
    return np.array([value_of(v) for v in distinct], dtype=dtype)[codes]


def _replica_footprint(task: PlacementTask, ledger: NodeLedger) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Per node: the replica's service time (ms, NaN where its class cannot run it), accelerators it
    takes, and the utilisation it adds."""
    service = task.service
    base_ms = _per_node(ledger.node_classes, lambda c: service.service_time_ms.get(c, np.nan), np.float64)
    service_ms = base_ms / ledger.speed
    is_accelerator = _per_node(ledger.node_classes, lambda c: c in ACCELERATOR_CLASSES, np.bool_)
    accelerators = np.where(is_accelerator, float(service.accelerator_request), 0.0)
    # slots busy on this node: the reference load scaled by how much slower or faster the node serves
    reference_ms = np.nanmin(base_ms) if np.isfinite(base_ms).any() else 1.0
    busy = np.clip(task.replica_busy_fraction * np.nan_to_num(service_ms, nan=0.0) / reference_ms, 0.0, 1.0)
    cpu_used = service.cpu_request * (IDLE_CPU_FRACTION + (1.0 - IDLE_CPU_FRACTION) * busy)
    added_cpu_util = cpu_used / np.maximum(ledger.cpu_cores, 1e-9)
    added_acc_util = accelerators * busy / np.maximum(ledger.accelerators, 1.0)
    # the engine takes a node's utilisation as the larger of its CPU and accelerator shares
    return service_ms, accelerators, np.maximum(added_cpu_util, added_acc_util)


def _infeasible_reasons(task: PlacementTask, ledger: NodeLedger, service_ms: FloatArray,
                        accelerators: FloatArray, weights: BidWeights) -> list[str]:
    service = task.service
    allowed = service.allowed_regions
    checks: Sequence[tuple[BoolArray, str]] = (
        (~np.isfinite(service_ms), "node class cannot run the service"),
        (_per_node(ledger.regions, lambda r: allowed is not None and r not in allowed, np.bool_),
         "data residency: region not allowed"),
        (~ledger.schedulable, "node not ready or quarantined"),
        (ledger.trust < weights.min_trust, "node not trusted"),
        (ledger.cpu_free < service.cpu_request - 1e-9, "not enough free CPU"),
        (ledger.memory_free_gib < service.memory_request_gib - 1e-9, "not enough free memory"),
        (ledger.accelerators_free < accelerators - 1e-9, "not enough free accelerators"),
    )
    reasons = [""] * len(ledger.names)
    for failed, why in checks:
        for n in np.flatnonzero(failed):
            if not reasons[n]:
                reasons[n] = why
    return reasons


@dataclass(frozen=True, slots=True)
class BidColumns:
    """Every node's bid as arrays, indexed like the ledger: what `announce` turns into NodeBids (and
    what a caller that needs only the prices, e.g. the scheduler extender, reads without building them)."""

    interference_ms: FloatArray
    carbon_g_per_h: FloatArray
    network_ms: FloatArray
    slowness_ms: FloatArray
    markup_ms: FloatArray
    cost_ms: FloatArray
    """+inf where the node cannot host the replica."""
    infeasible_reasons: list[str]


def bid_columns(task: PlacementTask, ledger: NodeLedger, weights: BidWeights | None = None) -> BidColumns:
    """Every node's bid for the task, as arrays in node order."""
    w = weights or BidWeights()
    service_ms, accelerators, added_util = _replica_footprint(task, ledger)
    u_before = ledger.utilisation
    u_after = np.minimum(u_before + added_util, 1.0)
    own_ms = np.nan_to_num(service_ms, nan=0.0) * ledger.beta * u_after**2
    neighbours_ms = ledger.colocated_service_ms * ledger.beta * (u_after**2 - u_before**2)
    interference_ms = own_ms + neighbours_ms
    carbon_g_per_h = ledger.dynamic_power_w * (u_after - u_before) * ledger.carbon_g_per_kwh / 1000.0
    network_ms = ledger.ingress_rtt_ms[task.origin_region_index]
    reasons = _infeasible_reasons(task, ledger, service_ms, accelerators, w)
    feasible = np.array([r == "" for r in reasons], dtype=np.bool_)
    feasible_ms = np.where(feasible, service_ms, np.nan)
    fastest_ms = np.nanmin(feasible_ms) if np.isfinite(feasible_ms).any() else 1.0
    slowness_ms = np.nan_to_num(service_ms, nan=0.0) ** 2 / max(fastest_ms, 1e-9)
    raw_ms = (w.interference_weight * interference_ms + w.ms_per_carbon_g_per_h * carbon_g_per_h
              + w.network_weight * network_ms + w.slowness_weight * slowness_ms)
    trust = np.clip(ledger.trust, w.min_trust, 1.0)
    markup_ms = raw_ms * (1.0 / trust - 1.0)
    cost_ms = np.where(feasible, raw_ms + markup_ms, np.inf)
    return BidColumns(interference_ms, carbon_g_per_h, np.asarray(network_ms, dtype=np.float64), slowness_ms,
                      markup_ms, cost_ms, reasons)


def bid_at(columns: BidColumns, ledger: NodeLedger, node_index: int) -> NodeBid:
    """One node's bid, read from the columns."""
    c, n = columns, node_index
    reason = c.infeasible_reasons[n]
    return NodeBid(n, ledger.names[n], not reason, reason, float(c.interference_ms[n]), float(c.carbon_g_per_h[n]),
                   float(c.network_ms[n]), float(c.slowness_ms[n]), float(ledger.trust[n]), float(c.markup_ms[n]),
                   float(c.cost_ms[n]))


def cheapest_index(columns: BidColumns, excluding: int | None = None) -> int | None:
    """What `award` picks among the columns' bids (optionally without one node), without building them."""
    feasible = np.array([not r for r in columns.infeasible_reasons], dtype=np.bool_)
    if excluding is not None:
        feasible[excluding] = False
    candidates = np.flatnonzero(feasible)
    if candidates.size == 0:
        return None
    # argmin takes the first of equal costs: the lowest node index, as `award` breaks ties
    return int(candidates[np.argmin(columns.cost_ms[candidates])])


def announce(task: PlacementTask, ledger: NodeLedger, weights: BidWeights | None = None) -> tuple[NodeBid, ...]:
    """Every node's bid for the task, in node order (infeasible nodes included, with the reason)."""
    c = bid_columns(task, ledger, weights)
    return tuple(bid_at(c, ledger, n) for n in range(len(ledger.names)))


@dataclass(frozen=True, slots=True)
class MoveBids:
    """Re-bids of hosts for one of their replicas (see `move_many`), one row per (task, host)."""

    ledger: NodeLedger
    hosts: IntArray
    """[row] the host re-bidding."""
    movable: BoolArray
    """[row] the host can bid (not quarantined, not misplaced) and another node can take the replica."""
    best: IntArray
    """[row] the cheapest other node (the lowest index among equal costs); meaningless where not movable."""
    host_cost_ms: FloatArray
    """[row] the host's bid."""
    best_cost_ms: FloatArray
    """[row] the best other node's bid."""
    columns: dict[str, FloatArray]
    """The rows' bids for the host and the best node only: name → [row, 2] (host, best)."""

    def pair(self, row: int) -> tuple[NodeBid, NodeBid] | None:
        """(the host's bid, the best other node's bid), None where the replica cannot move."""
        if not self.movable[row]:
            return None
        c, names, trust = self.columns, self.ledger.names, self.ledger.trust

        def bid(k: int, n: int) -> NodeBid:
            return NodeBid(n, names[n], True, "", float(c["interference_ms"][row, k]),
                           float(c["carbon_g_per_h"][row, k]), float(c["network_ms"][row, k]),
                           float(c["slowness_ms"][row, k]), float(trust[n]), float(c["markup_ms"][row, k]),
                           float(c["cost_ms"][row, k]))

        return bid(0, int(self.hosts[row])), bid(1, int(self.best[row]))


def _less_one_replica(values: FloatArray, hosts: IntArray, added: FloatArray) -> FloatArray:
    """[row, node] `values`, less one replica at each row's host: `commit`'s value there is `added`, and
    the inverse of commit is 2·before − after."""
    out = np.tile(values, (hosts.size, 1))
    out[np.arange(hosts.size), hosts] = 2 * values[hosts] - added
    return out


_MOVE_CHUNK_CELLS = 1 << 20
"""Rows are re-bid in chunks of about this many [row, node] cells (8 MiB per float array)."""


def move_many(tasks: Sequence[PlacementTask], hosts: Sequence[int], ledger: NodeLedger,
              weights: BidWeights | None = None, services: tuple[Service, ...] | None = None) -> MoveBids:
    """For each row (task, host): the host's bid and the best other node's bid for one replica of the
    task's service on the host, re-bid as if placed afresh, i.e. with that replica's resources handed
    back first.

    The same bids as `announce` over the ledger less one replica on the host, and `award` over the
    others: the ledgers less one replica differ from `ledger` only at the host, so the rows are
    [row, node] arrays, and the arithmetic is `bid_columns`' element for element. `services`: the
    observation's services, which the tasks' `service_index` name (their service-time table is then
    the run's, computed once)."""
    n_nodes = len(ledger.names)
    at = np.asarray(hosts, dtype=np.int64)
    n_rows = at.size
    movable = np.zeros(n_rows, dtype=np.bool_)
    best = np.zeros(n_rows, dtype=np.int64)
    columns = {k: np.zeros((n_rows, 2)) for k in
               ("interference_ms", "carbon_g_per_h", "network_ms", "slowness_ms", "markup_ms", "cost_ms")}
    if n_rows == 0:
        return MoveBids(ledger, at, movable, best, columns["cost_ms"][:, 0], columns["cost_ms"][:, 1], columns)
    w = weights or BidWeights()
    # per distinct task: its service's rows of the static tables
    distinct: dict[int, int] = {}
    row_task = np.array([distinct.setdefault(id(t), len(distinct)) for t in tasks], dtype=np.int64)
    unique_tasks = list({id(t): t for t in tasks}.values())
    task_services = [t.service for t in unique_tasks]
    class_table = (_service_class_ms(services)[[t.service_index for t in unique_tasks]] if services is not None
                   else _service_class_ms(task_services))
    region_values, region_codes = _codes(ledger.regions)
    disallowed_table = np.array([[s.allowed_regions is not None and r not in s.allowed_regions
                                  for r in region_values] for s in task_services], dtype=np.bool_)
    class_values, class_codes = _codes(ledger.node_classes)
    is_accelerator = np.array([c in ACCELERATOR_CLASSES for c in class_values], dtype=np.bool_)[class_codes]
    class_column = np.array([_CLASS_COLUMN[c] for c in class_values], dtype=np.int64)[class_codes]
    cpu_request = np.array([s.cpu_request for s in task_services], dtype=np.float64)
    memory_request = np.array([s.memory_request_gib for s in task_services], dtype=np.float64)
    accelerator_request = np.array([float(s.accelerator_request) for s in task_services], dtype=np.float64)
    busy_fraction = np.array([t.replica_busy_fraction for t in unique_tasks], dtype=np.float64)
    origin = np.array([t.origin_region_index for t in unique_tasks], dtype=np.int64)
    trust = np.clip(ledger.trust, w.min_trust, 1.0)
    node_feasible = ledger.schedulable & ~(ledger.trust < w.min_trust)

    chunk = max(1, _MOVE_CHUNK_CELLS // max(n_nodes, 1))
    for lo in range(0, n_rows, chunk):
        hi = min(n_rows, lo + chunk)
        task = row_task[lo:hi]
        host = at[lo:hi]
        rows = np.arange(hi - lo)
        # the replica's footprint on each node (`_replica_footprint`, one row per task)
        base_ms = class_table[task][:, class_column]
        service_ms = base_ms / ledger.speed
        accelerators = np.where(is_accelerator, accelerator_request[task][:, None], 0.0)
        reference_ms = np.where(np.isfinite(base_ms).any(axis=1),
                                np.min(np.where(np.isnan(base_ms), np.inf, base_ms), axis=1), 1.0)
        service_ms_0 = np.nan_to_num(service_ms, nan=0.0)
        busy = np.clip(busy_fraction[task][:, None] * service_ms_0 / reference_ms[:, None], 0.0, 1.0)
        cpu_used = cpu_request[task][:, None] * (IDLE_CPU_FRACTION + (1.0 - IDLE_CPU_FRACTION) * busy)
        added_cpu_util = cpu_used / np.maximum(ledger.cpu_cores, 1e-9)
        added_acc_util = accelerators * busy / np.maximum(ledger.accelerators, 1.0)
        added_util = np.maximum(added_cpu_util, added_acc_util)
        cpu_free = _less_one_replica(ledger.cpu_free, host, ledger.cpu_free[host] + -cpu_request[task])
        memory_free = _less_one_replica(ledger.memory_free_gib, host,
                                        ledger.memory_free_gib[host] + -memory_request[task])
        accelerators_free = _less_one_replica(ledger.accelerators_free, host,
                                              ledger.accelerators_free[host] + -accelerators[rows, host])
        u_before = _less_one_replica(ledger.utilisation, host,
                                     np.minimum(ledger.utilisation[host] + added_util[rows, host], 1.0))
        u_before[rows, host] = np.clip(u_before[rows, host], 0.0, 1.0)
        colocated = _less_one_replica(ledger.colocated_service_ms, host,
                                      ledger.colocated_service_ms[host] + service_ms[rows, host])
        colocated[rows, host] = np.maximum(colocated[rows, host], 0.0)

        u_after = np.minimum(u_before + added_util, 1.0)
        own_ms = service_ms_0 * ledger.beta * u_after**2
        neighbours_ms = colocated * ledger.beta * (u_after**2 - u_before**2)
        interference_ms = own_ms + neighbours_ms
        carbon_g_per_h = ledger.dynamic_power_w * (u_after - u_before) * ledger.carbon_g_per_kwh / 1000.0
        network_ms = ledger.ingress_rtt_ms[origin[task]]
        feasible = (np.isfinite(service_ms) & ~disallowed_table[task][:, region_codes] & node_feasible
                    & ~(cpu_free < cpu_request[task][:, None] - 1e-9)
                    & ~(memory_free < memory_request[task][:, None] - 1e-9)
                    & ~(accelerators_free < accelerators - 1e-9))
        feasible_ms = np.where(feasible, service_ms, np.inf)
        any_feasible = np.isfinite(feasible_ms).any(axis=1)
        fastest_ms = np.where(any_feasible, feasible_ms.min(axis=1), 1.0)
        slowness_ms = service_ms_0 ** 2 / np.maximum(fastest_ms, 1e-9)[:, None]
        raw_ms = (w.interference_weight * interference_ms + w.ms_per_carbon_g_per_h * carbon_g_per_h
                  + w.network_weight * network_ms + w.slowness_weight * slowness_ms)
        markup_ms = raw_ms * (1.0 / trust - 1.0)
        cost_ms = np.where(feasible, raw_ms + markup_ms, np.inf)

        others = feasible.copy()
        others[rows, host] = False
        can = feasible[rows, host] & others.any(axis=1)
        pick = np.argmin(np.where(others, cost_ms, np.inf), axis=1)
        # every other node's cost is +inf: `award` takes the first of them
        all_inf = ~others[rows, pick]
        pick[all_inf] = np.argmax(others[all_inf], axis=1)
        movable[lo:hi], best[lo:hi] = can, pick
        for name, values in (("interference_ms", interference_ms), ("carbon_g_per_h", carbon_g_per_h),
                             ("network_ms", network_ms), ("slowness_ms", slowness_ms), ("markup_ms", markup_ms),
                             ("cost_ms", cost_ms)):
            columns[name][lo:hi, 0] = values[rows, host]
            columns[name][lo:hi, 1] = values[rows, pick]
    return MoveBids(ledger, at, movable, best, columns["cost_ms"][:, 0], columns["cost_ms"][:, 1], columns)


def move_bids(task: PlacementTask, ledger: NodeLedger, hosts: Sequence[int],
              weights: BidWeights | None = None) -> list[tuple[NodeBid, NodeBid] | None]:
    """For each host of the task's service: (the host's bid, the best other node's bid) for one of its
    replicas, re-bid as if placed afresh (`move_many` for one task); None where the host cannot bid
    (quarantined, misplaced) or no other node can."""
    moves = move_many([task] * len(hosts), hosts, ledger, weights)
    return [moves.pair(r) for r in range(len(hosts))]


def award(bids: Sequence[NodeBid]) -> NodeBid | None:
    """The cheapest feasible bid; ties go to the lowest node index (reproducible runs). None if none can."""
    feasible = [b for b in bids if b.feasible]
    if not feasible:
        return None
    return min(feasible, key=lambda b: (b.cost_ms, b.node_index))


def commit(task: PlacementTask, ledger: NodeLedger, node_index: int) -> NodeLedger:
    """The ledger after the replica starts on `node_index`: its resources taken, its load added."""
    service_ms, accelerators, added_util = _replica_footprint(task, ledger)
    n = node_index
    service = task.service

    def bumped(values: FloatArray, delta: float) -> FloatArray:
        out = values.copy()
        out[n] += delta
        return out

    return replace(
        ledger,
        cpu_free=bumped(ledger.cpu_free, -service.cpu_request),
        memory_free_gib=bumped(ledger.memory_free_gib, -service.memory_request_gib),
        accelerators_free=bumped(ledger.accelerators_free, -float(accelerators[n])),
        utilisation=np.minimum(bumped(ledger.utilisation, float(added_util[n])), 1.0),
        colocated_service_ms=bumped(ledger.colocated_service_ms, float(service_ms[n])),
    )


def run_contract_net(task: PlacementTask, ledger: NodeLedger, count: int,
                     weights: BidWeights | None = None) -> tuple[list[tuple[int, NodeBid]], NodeLedger]:
    """`count` rounds of announce → bid → award for the same task; stops early when no node can bid."""
    awards: list[tuple[int, NodeBid]] = []
    for _ in range(count):
        columns = bid_columns(task, ledger, weights)
        index = cheapest_index(columns)  # `award` over `announce`'s bids, without building the losers' bids
        if index is None:
            break
        winner = bid_at(columns, ledger, index)
        awards.append((winner.node_index, winner))
        ledger = commit(task, ledger, winner.node_index)
    return awards, ledger


def place_by_contract_net(observation: Observation, service_index: int, count: int,
                          trust: Mapping[str, float] | None = None,
                          weights: BidWeights | None = None) -> list[tuple[int, NodeBid]]:
    """Where to start `count` more replicas of a service: (node index, winning bid) per replica.

    Fewer than `count` entries means the rest fit nowhere (the winning bids say why others lost).
    """
    if count < 0:
        raise ValueError(f"count must be ≥ 0, got {count}")
    task = task_from_observation(observation, service_index)
    awards, _ = run_contract_net(task, ledger_from_observation(observation, trust), count, weights)
    return awards
