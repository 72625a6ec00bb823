"""Placement done by a controller itself (`Place` actions) instead of the default scheduler.

`NodeLedger` is the free capacity of every node as a controller sees it in an Observation; taking a
replica returns a new ledger, so a controller can place several replicas in one tick without
double-booking a node. Node choice is a scoring function over the nodes that fit.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from kubeagora.model import BoolArray, FloatArray, NodeClass, Observation

ACCELERATOR_CLASSES = (NodeClass.GPU, NodeClass.TPU)


@dataclass(frozen=True, slots=True)
class NodeLedger:
    cpu_free: FloatArray
    memory_free_gib: FloatArray
    accelerators_free: FloatArray
    cpu_total: FloatArray
    memory_total_gib: FloatArray
    schedulable: BoolArray
    runs_service: BoolArray
    """[service, node]: the node's class can run the service and residency allows its region."""

    @classmethod
    def from_observation(cls, observation: Observation) -> NodeLedger:
        nodes, services = observation.nodes, observation.services
        cpu_total = np.array([n.cpu_cores for n in nodes])
        memory_total = np.array([n.memory_gib for n in nodes])
        accelerators = np.array([n.accelerators for n in nodes], dtype=float)
        runs = np.array(
            [
                [
                    s.can_run_on(n.node_class)
                    and (s.allowed_regions is None or n.region in s.allowed_regions)
                    for n in nodes
                ]
                for s in services
            ],
            dtype=bool,
        ).reshape(len(services), len(nodes))
        return cls(
            cpu_total - observation.node_cpu_allocated,
            # booked memory incl. pods still draining (the live pod list misses those)
            memory_total - observation.node_memory_allocated_gib,
            accelerators - observation.node_accelerators_allocated,
            cpu_total,
            memory_total,
            observation.node_ready & ~observation.node_quarantined,
            runs,
        )

    def fits(self, observation: Observation, service: int) -> BoolArray:
        s = observation.services[service]
        acc_need = self.accelerators_needed(observation, service)
        fitting: BoolArray = (
            self.runs_service[service]
            & self.schedulable
            & (self.cpu_free >= s.cpu_request - 1e-9)
            & (self.memory_free_gib >= s.memory_request_gib - 1e-9)
            & (self.accelerators_free >= acc_need)
        )
        return fitting

    @staticmethod
    def accelerators_needed(observation: Observation, service: int) -> FloatArray:
        s = observation.services[service]
        return np.array(
            [s.accelerator_request if n.node_class in ACCELERATOR_CLASSES else 0 for n in observation.nodes],
            dtype=float,
        )

    def take(self, observation: Observation, service: int, node: int) -> NodeLedger:
        s = observation.services[service]
        cpu, mem, acc = self.cpu_free.copy(), self.memory_free_gib.copy(), self.accelerators_free.copy()
        cpu[node] -= s.cpu_request
        mem[node] -= s.memory_request_gib
        acc[node] -= self.accelerators_needed(observation, service)[node]
        return NodeLedger(
            cpu, mem, acc, self.cpu_total, self.memory_total_gib, self.schedulable, self.runs_service
        )

    def most_allocated_scores(self, observation: Observation, service: int) -> FloatArray:
        """kube-scheduler's NodeResourcesFit MostAllocated: mean of cpu and memory allocated after placing."""
        s = observation.services[service]
        cpu_after = (self.cpu_total - self.cpu_free + s.cpu_request) / self.cpu_total
        mem_after = (
            self.memory_total_gib - self.memory_free_gib + s.memory_request_gib
        ) / self.memory_total_gib
        return (cpu_after + mem_after) / 2.0


def best_node(candidates: BoolArray, scores: FloatArray) -> int | None:
    """The highest-scoring candidate (lowest index on ties, for reproducible runs), or None."""
    if not candidates.any():
        return None
    return int(np.argmax(np.where(candidates, scores, -np.inf)))
