"""The shared vocabulary of kubeagora: nodes, services, actions and the observation snapshot."""

from kubeagora.model.action import Action, Migrate, Place, QuarantineNode, Scale, SetConcurrency, ShedLoad
from kubeagora.model.cluster import DEFAULT_COLD_START_S, NODE_CLASSES, Node, NodeClass, Service, Tier
from kubeagora.model.observation import BoolArray, FloatArray, IntArray, Observation

__all__ = [
    "DEFAULT_COLD_START_S",
    "NODE_CLASSES",
    "Action",
    "BoolArray",
    "FloatArray",
    "IntArray",
    "Migrate",
    "Node",
    "NodeClass",
    "Observation",
    "Place",
    "QuarantineNode",
    "Scale",
    "Service",
    "SetConcurrency",
    "ShedLoad",
    "Tier",
]
