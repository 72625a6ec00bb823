"""Reliability: circuits open after seconds of silence, and the node-loss, partition and throttle playbooks."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
from tests.unit.observations import in_regions, node, observation, web_service, with_replicas

from kubeagora.agents.base import AgentContext, Lane
from kubeagora.agents.reliability import ReliabilityAgent
from kubeagora.model import Migrate, NodeClass, Observation, QuarantineNode, Scale, Service


def two_nodes(heartbeat_age_s: list[float]) -> Observation:
    obs = observation(nodes=(node("a"), node("b")))
    obs = with_replicas(obs, [(0, 0, True), (0, 1, True)])
    return replace(obs, node_heartbeat_age_s=np.array(heartbeat_age_s))


def test_a_node_silent_for_8_s_is_quarantined_long_before_kubernetes_notices() -> None:
    agent = ReliabilityAgent()
    obs = two_nodes([8.0, 1.0])
    proposals, _ = agent.decide(obs, agent.initial_state(obs), AgentContext())

    quarantines = [p for p in proposals if isinstance(p.action, QuarantineNode)]
    assert [p.action.node for p in quarantines] == ["a"]  # b answered a second ago
    assert quarantines[0].lane is Lane.INCIDENT
    assert "8.0 s" in quarantines[0].reason
    assert quarantines[0].risk == 0.5  # one of the two Ready replicas sits there
    assert quarantines[0].inputs["retry_budget_ratio"] == 0.1


def test_a_node_loss_holds_the_service_at_its_pre_fault_replicas() -> None:
    agent = ReliabilityAgent()
    healthy = two_nodes([0.0, 0.0])
    state = agent.initial_state(healthy)
    _, state = agent.decide(healthy, state, AgentContext())
    # the node dies and something lowered the desired count to the survivors
    faulty = replace(two_nodes([8.0, 0.0]), desired_replicas=np.array([1]))
    proposals, _ = agent.decide(faulty, state, AgentContext())

    scales = [p.action for p in proposals if isinstance(p.action, Scale)]
    assert scales == [Scale("web", 2, scales[0].reason)]


def partitioned() -> Observation:
    local = web_service("local", origin_region="region-1")
    remote = web_service("remote", origin_region="region-0")
    obs = observation(services=(local, remote), nodes=(node("a", "region-0"), node("b", "region-1")))
    obs = in_regions(with_replicas(obs, [(0, 1, True), (1, 0, True), (1, 1, True)]), ("region-0", "region-1"))
    return replace(obs, node_heartbeat_age_s=np.array([0.0, 12.0]))


def test_a_partition_scales_the_services_whose_users_are_elsewhere_and_quarantines_nothing() -> None:
    agent = ReliabilityAgent()
    obs = partitioned()
    proposals, state = agent.decide(obs, agent.initial_state(obs), AgentContext())

    # region-1 is cut off: "remote" (users in region-0) lost one of its two replicas; "local" keeps serving
    # its region-1 users there, and quarantining b would take that away
    assert [p.action for p in proposals] == [Scale("remote", 3, proposals[0].reason)]
    again, _ = agent.decide(obs, state, AgentContext())
    assert again == []  # asked once per partition, not every tick


def gpu_cluster(free_gpu_node: bool) -> Observation:
    llm = Service("llm", {NodeClass.GPU: 100.0}, cpu_request=1.0, accelerator_request=1, concurrency=2)
    nodes = [node("gpu-0", node_class=NodeClass.GPU, accelerators=2, cores=8.0)]
    if free_gpu_node:
        nodes.append(node("gpu-1", node_class=NodeClass.GPU, accelerators=2, cores=8.0))
    obs = with_replicas(observation(services=(llm,), nodes=tuple(nodes), arrival_rps=10.0),
                        [(0, 0, True), (0, 0, True)])
    allocated = np.zeros(len(nodes), np.int64)
    allocated[0] = 2
    speed = np.ones(len(nodes))
    speed[0] = 0.5
    return replace(obs, node_accelerators_allocated=allocated, node_speed=speed)


def test_a_throttled_gpu_without_a_spare_scales_the_service_by_the_speed_it_lost() -> None:
    agent = ReliabilityAgent()
    obs = gpu_cluster(free_gpu_node=False)
    proposals, state = agent.decide(obs, agent.initial_state(obs), AgentContext())

    # two replicas at half speed: one replica's worth of speed lost
    assert [p.action for p in proposals] == [Scale("llm", 3, proposals[0].reason)]
    again, _ = agent.decide(replace(obs, desired_replicas=np.array([3])), state, AgentContext())
    assert again == []


def test_a_throttled_gpu_with_a_free_unthrottled_one_moves_a_replica_there() -> None:
    agent = ReliabilityAgent()
    obs = gpu_cluster(free_gpu_node=True)
    proposals, _ = agent.decide(obs, agent.initial_state(obs), AgentContext())

    assert [p.action for p in proposals] == [Migrate("llm", "gpu-0", "gpu-1", proposals[0].reason)]
