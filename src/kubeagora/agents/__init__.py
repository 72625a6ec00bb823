"""The agents: one module per role, each a pure `decide(observation, state, context)`."""

from kubeagora.agents.base import Agent, AgentContext, Lane, Proposal

__all__ = ["Agent", "AgentContext", "Lane", "Proposal"]
