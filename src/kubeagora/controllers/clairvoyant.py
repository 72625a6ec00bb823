"""The clairvoyant planner (`clairvoyant`, once `oracle`): knows the true world and the future, and provisions early.

Not a real system, and not a bound either (it is greedy): a reference the others are measured against.
It is the only controller that reads the compiled scenario: the expected arrivals of every service
(`Workload.rates`, the rate the engine draws its Poisson counts from and evaluates its queues at), the
fault schedule, and the true world (`CompiledScenario.world`: the service times, cold starts,
interference and node speeds the engine runs, where every other controller sees only the declared
specs). Every tick it plans all
services together, replica by replica, with the engine's own latency model
(`controllers.latency_prediction`):

- demand: a service's peak expected rate over [now, now + its cold start + a tick] when scaling up
  (what replicas started now must cover), and a little longer when scaling down;
- a service whose predicted p95 or p99 misses its SLO (with a margin), or one of whose replicas
  would run busier than `max_replica_utilisation`, gets one more replica on the node where the
  service's predicted tail is lowest: near its users, fast, and not slowed by a busy node (the
  utilisation of every node follows from the whole plan, interference 1 + β·u² included); the worst
  service goes first, and the plan is re-evaluated after every replica;
- a service whose plan, less any one of its replicas, still meets the SLO under the longer horizon
  scales down by one (repeatedly);
- faults ahead: nodes that will die, or that a partition will cut off from a service's users or from
  the control plane, take no new replicas from `fault_lead_s` + cold start before; replicas on them
  move away (`Migrate`, so the old one serves until the new one is Ready); a node that dies for good
  is quarantined the tick before it dies; a GPU power cap ahead is planned at its reduced speed, so
  capacity is there before it bites;
- one service a tick (round robin) moves its slowest or farthest replica when that clearly lowers
  its worst ratio of predicted tail to SLO: even routing makes the slowest replica the busiest, so a
  badly placed one costs replicas;
- among nodes that serve a service about equally well, the planner prefers the one whose users would
  still see a p99 within the SLO during a packet-loss spell (mean service time + network + one
  retransmission timeout).

Every `Place` and `Migrate` books its node in a `NodeLedger` (memory included, draining pods too),
so later actions of the same tick see the capacity already taken and the engine refuses none.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from kubeagora.controllers.fault_outlook import FaultOutlook
from kubeagora.controllers.latency_prediction import (
    IDLE_CPU_FRACTION,
    node_utilisation,
    predict_latency_batch_ms,
)
from kubeagora.controllers.packing import ACCELERATOR_CLASSES, NodeLedger
from kubeagora.controllers.policy_parts import replica_bounds
from kubeagora.model import (
    NODE_CLASSES,
    Action,
    FloatArray,
    IntArray,
    Migrate,
    Observation,
    Place,
    QuarantineNode,
    Scale,
    WorldParameters,
)
from kubeagora.sim import latency as lat
from kubeagora.sim.engine import PlatformDefaults
from kubeagora.sim.latency import INTERFERENCE, interference_slowdown
from kubeagora.sim.scenario import CompiledScenario

MAX_ADDS_PER_TICK = 600


@dataclass(frozen=True, slots=True)
class ClairvoyantSettings:
    interval_s: float = 2.0
    slo_margin: float = 0.9
    """Plan each service's p95 and p99 at this share of its SLO."""
    scale_down_margin: float = 0.85
    """Remove a replica only if the plan without it stays within this share of the SLO."""
    scale_down_extra_horizon_s: float = 30.0
    max_replica_utilisation: float = 0.9
    """No replica is planned busier than this: near 1 the fluid backlog of Poisson excess grows."""
    fault_lead_s: float = 60.0
    """Stop using a node this long (plus the cold start) before a fault makes it useless."""
    migrate_gain: float = 0.05
    """Move a replica when the service's worst ratio of predicted tail to SLO (or of ρ to its cap)
    drops by at least this share."""
    unattainable_slack: float = 1.1
    """Where even an idle replica misses the SLO (a loss burst), aim at this multiple of that floor."""


@dataclass(frozen=True, slots=True)
class PendingMigration:
    service: int
    from_node: int
    to_node: int
    until_s: float
    """After this the target is Ready (or failed) and the source gone."""


@dataclass(frozen=True, slots=True)
class ClairvoyantState:
    migrations: tuple[PendingMigration, ...] = ()
    """Migrations under way: their source pods still show up but are about to go."""


@dataclass(frozen=True, slots=True)
class Tails:
    """Predicted figures of one service under several candidate plans (arrays, one entry per plan)."""

    p95_ms: FloatArray
    p99_ms: FloatArray
    busiest_rho: FloatArray
    loss_burst_p99_ms: FloatArray
    """p99 while the users' access network loses a few per cent of packets (a Gilbert–Elliott bad
    spell): the retransmitted share waits one RTO on top of the mean service time and network."""


class _Plan:
    """The replicas the planner intends to have, and what the engine would make of them. Local to
    one `decide` call."""

    def __init__(self, planner: ClairvoyantPlanner, demand_rps: FloatArray, node_speed: FloatArray,
                 loss: FloatArray, service: IntArray, node: IntArray) -> None:
        self.o = planner
        self.demand_rps = demand_rps
        self.node_speed = node_speed
        self.loss = loss
        self.service = service
        self.node = node
        self.utilisation = self._utilisation(service, node)

    def counts(self) -> IntArray:
        return np.bincount(self.service, minlength=self.o.n_services)

    def nodes_of(self, s: int) -> IntArray:
        return np.asarray(self.node[self.service == s], dtype=np.int64)

    def _utilisation(self, service: IntArray, node: IntArray) -> FloatArray:
        o = self.o
        counts = np.bincount(service, minlength=o.n_services)
        per_replica = self.demand_rps[service] / np.maximum(counts[service], 1)
        return node_utilisation(
            node, o.base_ms[service, node], per_replica, o.concurrency[service], o.cpu_request[service],
            o.accelerators_on[service, node], self.node_speed, o.node_beta, o.node_cores, o.node_accelerators,
        )

    def add(self, s: int, n: int) -> None:
        self.service = np.append(self.service, s)
        self.node = np.append(self.node, n)
        self.utilisation = self._utilisation(self.service, self.node)

    def remove(self, s: int, n: int) -> None:
        k = int(np.flatnonzero((self.service == s) & (self.node == n))[0])
        self.service = np.delete(self.service, k)
        self.node = np.delete(self.node, k)
        self.utilisation = self._utilisation(self.service, self.node)

    def tails(self, s: int, plans: IntArray, utilisation: FloatArray, demand_rps: float | None = None) -> Tails:
        """Service s on each row of `plans` ([plan, replica] node indices), with the node
        utilisations of each row (`utilisation[plan, replica]`)."""
        o = self.o
        rate = float(self.demand_rps[s] if demand_rps is None else demand_rps)
        count = plans.shape[0]
        if plans.shape[1] == 0:
            idle = np.full(count, math.inf if rate > 0 else 0.0)
            return Tails(idle, idle, idle, idle)
        service_ms = o.base_ms[s, plans] / self.node_speed[plans] * interference_slowdown(
            o.node_beta[plans], utilisation)
        per_replica = rate / plans.shape[1]
        p95, p99 = predict_latency_batch_ms(
            service_ms, o.network_ms[s, plans], np.full(count, per_replica), int(o.concurrency[s]),
            o.services[s].service_time_cv, float(self.loss[s]))
        return Tails(p95, p99, per_replica * service_ms.max(axis=1) / (1000.0 * o.concurrency[s]),
                     service_ms.mean(axis=1) + o.network_ms[s, plans].mean(axis=1) + lat.RTO_MS)

    def current(self, s: int, demand_rps: float | None = None) -> Tails:
        nodes = self.nodes_of(s)
        return self.tails(s, nodes[None, :], self.utilisation[nodes][None, :], demand_rps)

    def with_one_more(self, s: int, candidates: IntArray) -> tuple[Tails, IntArray]:
        """Service s with one more replica on each candidate node; also returns the plans' rows."""
        o = self.o
        nodes = self.nodes_of(s)
        plans = np.concatenate([np.broadcast_to(nodes, (candidates.size, nodes.size)), candidates[:, None]], axis=1)
        # the new replica's load on its node (the service's other replicas get a little less: ignored)
        per_replica = float(self.demand_rps[s]) / plans.shape[1]
        service_ms = o.base_ms[s, candidates] / self.node_speed[candidates] * interference_slowdown(
            o.node_beta[candidates], self.utilisation[candidates])
        busy = np.minimum(per_replica * service_ms / (1000.0 * o.concurrency[s]), 1.0)
        cpu = o.cpu_request[s] * (IDLE_CPU_FRACTION + (1.0 - IDLE_CPU_FRACTION) * busy) / o.node_cores[candidates]
        accelerators = o.accelerators_on[s, candidates] * busy / np.maximum(o.node_accelerators[candidates], 1.0)
        raised = np.minimum(self.utilisation[candidates] + np.maximum(cpu, accelerators), 1.0)
        utilisation = np.where(plans == candidates[:, None], raised[:, None], self.utilisation[plans])
        return self.tails(s, plans, utilisation), plans

    def with_one_less(self, s: int, demand_rps: float) -> tuple[Tails, IntArray]:
        """Service s without one replica, for each distinct node it runs on; returns those nodes too."""
        nodes = self.nodes_of(s)
        gone = np.unique(nodes)
        rows = [np.delete(nodes, int(np.flatnonzero(nodes == n)[0])) for n in gone]
        plans = np.array(rows, dtype=np.int64).reshape(gone.size, nodes.size - 1)
        return self.tails(s, plans, self.utilisation[plans], demand_rps), gone


class ClairvoyantPlanner:
    name = "clairvoyant"

    def __init__(self, scenario: CompiledScenario, settings: ClairvoyantSettings | None = None,
                 platform: PlatformDefaults | None = None) -> None:
        self.scenario = scenario
        self.settings = settings or ClairvoyantSettings()
        self.platform = platform or PlatformDefaults()
        topology = scenario.topology
        services, nodes = scenario.services, scenario.nodes
        self.services = services
        self.n_services = len(services)
        region = {r: i for i, r in enumerate(topology.regions)}
        self.origin = np.array([region[s.origin_region] for s in services], dtype=np.int64)
        # the true world, not the declared specs: only the clairvoyant planner may read it
        world = scenario.world or WorldParameters.nominal(len(services), len(nodes))
        cls = np.array([NODE_CLASSES.index(n.node_class) for n in nodes], dtype=np.int64)
        self.node_beta = np.array([INTERFERENCE[n.node_class] for n in nodes]) * world.interference_factor[cls]
        self.node_cores = np.array([n.cpu_cores for n in nodes])
        self.node_accelerators = np.array([n.accelerators for n in nodes], dtype=float)
        self.node_nominal_speed = np.array([n.speed_factor for n in nodes])
        self.node_true_speed = self.node_nominal_speed * world.node_speed_factor
        self.concurrency = np.array([s.concurrency for s in services], dtype=float)
        self.cpu_request = np.array([s.cpu_request for s in services])
        self.memory_request_gib = np.array([s.memory_request_gib for s in services])
        # class service time at reference speed (the engine divides by the node's current speed)
        self.base_ms = np.array([[s.service_time_ms.get(n.node_class, np.nan) for n in nodes] for s in services]
                                ) * world.service_time_factor[:, cls]
        self.accelerators_on = np.array(
            [[s.accelerator_request if n.node_class in ACCELERATOR_CLASSES else 0 for n in nodes]
             for s in services], dtype=float)
        self.cold_start_s = np.array([[s.cold_start_on(n.node_class) for n in nodes] for s in services]
                                     ) * world.cold_start_factor[:, cls]
        self.network_ms = topology.ingress_rtt_ms[self.origin] + 8.0 / topology.access_bandwidth_mbps[self.origin]
        runnable = ~np.isnan(self.base_ms)
        self.service_cold_s = np.where(runnable, self.cold_start_s, 0.0).max(axis=1)
        self.outlook = FaultOutlook.from_scenario(scenario, self.platform.control_plane_region)

    @property
    def interval_s(self) -> float:
        return self.settings.interval_s

    def initial_state(self, observation: Observation) -> ClairvoyantState:
        return ClairvoyantState()

    # ------------------------------------------------------------------ the future
    def future_peak_rps(self, now_s: float, horizon_s: FloatArray) -> FloatArray:
        """Per service: the peak expected arrival rate over [now, now + horizon], callers' calls included."""
        step = self.scenario.step_s
        steps = math.ceil(float(horizon_s.max()) / step) + 1
        external = self.scenario.workload.rates(now_s, steps, step)
        rates = external
        for _ in range(2):  # calls reach a callee of a callee too
            with_calls = external.copy()
            for caller, callee in self.scenario.downstream:
                with_calls[:, callee] += rates[:, caller]
            rates = with_calls
        reach = np.ceil(horizon_s / step).astype(np.int64) + 1
        mask = np.arange(steps)[:, None] < reach[None, :]
        return np.asarray(np.where(mask, rates, 0.0).max(axis=0), dtype=np.float64)

    # ------------------------------------------------------------------ the decision
    def decide(self, observation: Observation, state: ClairvoyantState) -> tuple[Sequence[Action], ClairvoyantState]:
        cfg, now = self.settings, observation.time_s
        nodes = observation.nodes
        n_nodes = len(nodes)
        ledger = NodeLedger.from_observation(observation)
        live = np.zeros((self.n_services, n_nodes), dtype=np.int64)
        np.add.at(live, (observation.replica_service, observation.replica_node), 1)
        migrations = tuple(m for m in state.migrations if m.until_s > now)
        actions: list[Action] = []

        # faults ahead: quarantine a node the tick before it dies for good (or with pods still on it)
        dying = self.outlook.dead_nodes(now, now + cfg.interval_s) & ~self.outlook.dead_nodes(now, now)
        for_good = self.outlook.nodes_dying_for_good(now, now + cfg.interval_s, self.scenario.duration_s)
        for doomed in np.flatnonzero(dying & ~observation.node_quarantined):
            if for_good[doomed] or live[:, doomed].any():
                actions.append(QuarantineNode(nodes[doomed].name, "clairvoyant: the node dies before the next tick"))
                ledger = replace(ledger, schedulable=ledger.schedulable & (np.arange(n_nodes) != doomed))

        # where each service may run over the planning window
        lead_end = now + cfg.fault_lead_s + self.service_cold_s + cfg.interval_s
        usable = np.zeros((self.n_services, n_nodes), dtype=bool)
        loss = np.zeros(self.n_services)
        horizon_end = float(lead_end.max())
        # the observation reports declared speed × throttle: the throttle on the machine's true speed
        speed = self.node_true_speed * np.minimum(
            self.outlook.speed_factor(now, horizon_end),
            np.asarray(observation.node_speed) / self.node_nominal_speed,
        )
        for s in range(self.n_services):
            dead = self.outlook.dead_nodes(now, float(lead_end[s]))
            cut = self.outlook.cut_off_nodes(int(self.origin[s]), now, float(lead_end[s]))
            usable[s] = ledger.runs_service[s] & ledger.schedulable & ~dead & ~cut
            loss[s] = max(self.scenario.topology.loss_good,
                          self.outlook.forced_loss(int(self.origin[s]), now, float(lead_end[s])))

        up_horizon = self.service_cold_s + cfg.interval_s + self.scenario.step_s
        demand_up = self.future_peak_rps(now, up_horizon)
        demand_down = self.future_peak_rps(now, up_horizon + cfg.scale_down_extra_horizon_s)

        # the current plan: live pods on usable nodes, less the sources of migrations under way
        keep = usable[observation.replica_service, observation.replica_node]
        plan_service = observation.replica_service[keep].astype(np.int64)
        plan_node = observation.replica_node[keep].astype(np.int64)
        for m in migrations:
            k = np.flatnonzero((plan_service == m.service) & (plan_node == m.from_node))
            if k.size:
                plan_service = np.delete(plan_service, k[0])
                plan_node = np.delete(plan_node, k[0])
        leaving = [
            [int(n) for n in observation.replica_node[(observation.replica_service == s) & ~keep]]
            for s in range(self.n_services)
        ]
        plan = _Plan(self, demand_up, speed, loss, plan_service, plan_node)
        lo, hi = replica_bounds(observation)
        targets = self._targets(plan, usable)

        def shortfall(s: int) -> float:
            """How far the service is from its targets (≤ 1 means met)."""
            below_min = 2.0 if plan.counts()[s] < lo[s] else 0.0
            return max(float(self._worst_ratio(plan.current(s), targets[s])[0]), below_min)

        # ---- scale up, worst service first, one replica at a time
        exhausted = np.zeros(self.n_services, dtype=bool)
        added = np.zeros(self.n_services, dtype=np.int64)
        moved: set[int] = set()
        gaps = np.array([shortfall(s) for s in range(self.n_services)])
        for _ in range(MAX_ADDS_PER_TICK):
            s = int(np.argmax(np.where(exhausted, 0.0, gaps)))
            if exhausted[s] or gaps[s] <= 1.0:
                break
            if plan.counts()[s] >= hi[s]:
                exhausted[s] = True
                continue
            choice = self._best_node(plan, s, ledger.fits(observation, s) & usable[s], targets[s])
            if choice is None:
                exhausted[s] = True
                continue
            n, after = choice
            if math.isfinite(gaps[s]) and after > 0.995 * gaps[s] and plan.counts()[s] >= lo[s]:
                exhausted[s] = True  # one more replica no longer helps: the SLO is out of reach (network, loss)
                continue
            plan.add(s, n)
            ledger = ledger.take(observation, s, n)
            tails = plan.current(s)
            why = (f"clairvoyant: {demand_up[s]:.0f} req/s ahead; predicted p95/p99 {tails.p95_ms[0]:.0f}/"
                   f"{tails.p99_ms[0]:.0f} ms with {plan.counts()[s]} replicas")
            if leaving[s]:
                source = leaving[s].pop()
                actions.append(Migrate(self.services[s].name, nodes[source].name, nodes[n].name,
                                       why + f", leaving {nodes[source].name} ahead of a fault"))
                migrations += (PendingMigration(s, source, n, now + self.cold_start_s[s, n] + 2 * cfg.interval_s),)
                moved.add(s)
            else:
                actions.append(Place(self.services[s].name, nodes[n].name, why))
            added[s] += 1
            # a replica changes its node's utilisation, so every service on that node is re-checked
            affected = np.unique(plan.service[plan.node == n])
            for k in affected:
                gaps[k] = shortfall(int(k))
            gaps[s] = shortfall(s)

        # ---- scale down, and (round robin, one service a tick) move a badly placed replica
        pending_migration = {m.service for m in migrations}
        rebalance = round(now / cfg.interval_s) % self.n_services
        for s in range(self.n_services):
            if added[s] or s in pending_migration or exhausted[s]:
                continue
            removed = self._removable(plan, s, float(demand_down[s]), targets[s], int(lo[s]))
            if removed:
                desired = int(observation.desired_replicas[s]) - removed
                actions.append(Scale(self.services[s].name, desired,
                                     f"clairvoyant: {demand_down[s]:.0f} req/s ahead needs "
                                     f"{plan.counts()[s]} replicas"))
                continue
            if s == rebalance and observation.pending_replicas[s] == 0 and s not in moved:
                move = self._better_placement(plan, s, ledger.fits(observation, s) & usable[s], targets[s])
                if move is not None:
                    src, dst, gain = move
                    actions.append(Migrate(self.services[s].name, nodes[src].name, nodes[dst].name,
                                           f"clairvoyant: predicted tail {100 * gain:.0f} % further within the SLO"))
                    ledger = ledger.take(observation, s, dst)
                    plan.remove(s, src)
                    plan.add(s, dst)
                    migrations += (PendingMigration(s, src, dst, now + self.cold_start_s[s, dst] + 2 * cfg.interval_s),)
        return actions, ClairvoyantState(migrations)

    def _worst_ratio(self, tails: Tails, target: tuple[float, float]) -> FloatArray:
        """Per plan: the largest of predicted p95 and p99 over their targets and ρ over its cap."""
        return np.asarray(np.maximum.reduce([tails.p95_ms / target[0], tails.p99_ms / target[1],
                                             tails.busiest_rho / self.settings.max_replica_utilisation]))

    def _targets(self, plan: _Plan, usable: np.ndarray) -> list[tuple[float, float]]:
        """Per service: (p95, p99) to plan for; above the SLO only where an idle replica misses it."""
        cfg = self.settings
        out = []
        for s, svc in enumerate(self.services):
            t95, t99 = cfg.slo_margin * svc.slo_p95_ms, cfg.slo_margin * svc.slo_p99_ms
            candidates = np.flatnonzero(usable[s])
            if candidates.size:
                best = candidates[np.argmin(self.network_ms[s, candidates]
                                            + self.base_ms[s, candidates] / plan.node_speed[candidates])]
                idle = plan.tails(s, np.array([[best]]), np.zeros((1, 1)), demand_rps=0.0)
                t95 = max(t95, cfg.unattainable_slack * float(idle.p95_ms[0]))
                t99 = max(t99, cfg.unattainable_slack * float(idle.p99_ms[0]))
            out.append((t95, t99))
        return out

    def _best_node(self, plan: _Plan, s: int, candidates: np.ndarray,
                   target: tuple[float, float]) -> tuple[int, float] | None:
        """The candidate node on which one more replica leaves service s furthest within its targets,
        and the worst ratio it leaves; among near ties, the one that best survives a loss burst."""
        options = np.flatnonzero(candidates)
        if options.size == 0:
            return None
        tails, _ = plan.with_one_more(s, options)
        worst = self._worst_ratio(tails, target)
        close = worst <= worst.min() * 1.005 + 1e-9
        burst = np.maximum(tails.loss_burst_p99_ms, 0.98 * self.services[s].slo_p99_ms)
        spread = tails.p95_ms / target[0] + tails.p99_ms / target[1]
        order = np.lexsort((spread, burst, ~close))
        k = int(order[0])
        return int(options[k]), float(worst[k])

    def _removable(self, plan: _Plan, s: int, demand_down_rps: float, target: tuple[float, float],
                   min_replicas: int) -> int:
        """How many replicas service s can lose while its plan, less its best replicas, still meets the
        target under the longer horizon's demand (the engine picks which pods go, so assume the worst)."""
        cfg = self.settings
        down_target = (target[0] * cfg.scale_down_margin / cfg.slo_margin,
                       target[1] * cfg.scale_down_margin / cfg.slo_margin)
        floor = max(min_replicas, 1 if demand_down_rps > 0 else 0)
        removed = 0
        while plan.nodes_of(s).size > floor:
            tails, gone = plan.with_one_less(s, demand_down_rps)
            worst = self._worst_ratio(tails, down_target)
            k = int(np.argmax(worst))
            if worst[k] > 1.0:
                break
            plan.remove(s, int(gone[k]))
            removed += 1
        return removed

    def _better_placement(self, plan: _Plan, s: int, candidates: np.ndarray,
                          target: tuple[float, float]) -> tuple[int, int, float] | None:
        """(from, to, gain) when moving one replica of s clearly lowers its worst ratio to target: the
        slowest replica (even routing makes it the busiest) or the farthest one goes to the best node."""
        nodes = plan.nodes_of(s)
        if nodes.size == 0 or not candidates.any():
            return None
        worst_now = float(self._worst_ratio(plan.current(s), target)[0])
        if not math.isfinite(worst_now):
            return None
        service_ms = self.base_ms[s, nodes] / plan.node_speed[nodes] * interference_slowdown(
            self.node_beta[nodes], plan.utilisation[nodes])
        best: tuple[int, int, float] | None = None
        for k in {int(np.argmax(service_ms)), int(np.argmax(self.network_ms[s, nodes] + service_ms))}:
            source = int(nodes[k])
            plan.remove(s, source)
            choice = self._best_node(plan, s, candidates, target)
            plan.add(s, source)
            if choice is None or choice[0] == source:
                continue
            gain = 1.0 - choice[1] / worst_now
            if gain >= self.settings.migrate_gain and (best is None or gain > best[2]):
                best = (source, choice[0], gain)
        return best
