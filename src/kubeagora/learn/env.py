"""A PettingZoo ParallelEnv over the engine: the mas controller, with one learning agent per service.

Every simulated second the engine steps; every 5 s mas ticks; every third tick (15 s) the MPC
re-plans, and that is when the agents act: the MPC drafts its step (`MpcController.draft`), each
agent reads its service's sketch of it (`features.agent_features`) and picks a residual level, the
controller commits the corrected set-points (bounded to ±max(2, 20 %) of the plan) and mas carries
on as always: the market, the other agents, the risk score, the shield, the twin and the canary see
the corrected set-points like any other proposal, so exploration never bypasses the shield.

Reward per agent over the 15 s until the next re-plan (shaped as the design asks):

    − violating share   (requests served in the service's SLO-violating windows + dropped, / arrived)
    − cost × pod-seconds / (15 s × the plan's replicas)   (energy and cost: what it holds beyond the plan)
    − change × |level|                                   (change risk: large, frequent reconfigurations)
    − cut × max(−level, 0)                               (cutting below the plan costs more than adding)

Stability is in the change term and in the MPC's own change cost. With `expert=True` each step's
infos carry the clairvoyant planner's answer (`expert_action`): the level that comes nearest the
replicas it would ask for at that moment with the true world and the future, planning (as the agents
do) for the 15 s until the next decision (behavioural cloning and DAgger label with it). The
clairvoyant planner is a teacher only; it never acts here.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
from gymnasium import spaces
from pettingzoo import ParallelEnv

from kubeagora.controllers.clairvoyant import ClairvoyantPlanner, ClairvoyantSettings, ClairvoyantState
from kubeagora.controllers.mas import MasController, MasState
from kubeagora.controllers.mpc import MpcDraft
from kubeagora.learn.features import (
    FEATURE_CLIP,
    N_ACTIONS,
    N_FEATURES,
    Features,
    agent_features,
    apply_levels,
    level_towards,
)
from kubeagora.model import Action, IntArray, Observation, Place, Scale
from kubeagora.sim.engine import Engine
from kubeagora.sim.scenario import CompiledScenario, compile_scenario, load_scenario

MIN_EPISODE_S = 30.0


@dataclass(frozen=True, slots=True)
class RewardWeights:
    cost: float = 0.05
    """Per unit of pod-seconds relative to the plan: holding 20 % more than the plan costs as much as
    1 % of the service's requests in violating windows."""
    change: float = 0.002
    """Per action level away from the plan."""
    cut: float = 0.01
    """Per level below the plan, on top of `change` (asymmetric): a cut saves at most 0.005 per level in
    `cost` and can cost a window of violations, which the agent's sketch rarely sees coming."""


def expert_replicas(observation: Observation, actions: Sequence[Action]) -> IntArray:
    """Per service: the replicas a controller's actions ask for (a `Place` adds one, a `Scale` sets them)."""
    wanted = np.asarray(observation.desired_replicas, dtype=np.int64).copy()
    for action in actions:
        if isinstance(action, Place):
            wanted[observation.service_index(action.service)] += 1
    for action in actions:
        if isinstance(action, Scale):
            wanted[observation.service_index(action.service)] = action.replicas
    return wanted


class ResidualEnv(ParallelEnv):  # type: ignore[misc]  # PettingZoo ships no type hints
    """One scenario, a new seed from `seeds` each episode (in turn), `duration_s` simulated per episode."""

    metadata: ClassVar[dict[str, Any]] = {"name": "kubeagora_residual_v0", "render_modes": []}

    def __init__(self, scenario: str = "steady-drift", seeds: Sequence[int] = (1000,), duration_s: float = 600.0,
                 model_error: float = 0.3, reward: RewardWeights | None = None, expert: bool = False) -> None:
        if not seeds:
            raise ValueError("a training environment needs at least one seed")
        if not duration_s >= MIN_EPISODE_S:
            raise ValueError(f"an episode must last at least {MIN_EPISODE_S:g} s: the agents act every 15 s "
                             f"(got {duration_s:g})")
        self.scenario_name = scenario
        self.seeds = tuple(int(s) for s in seeds)
        self.duration_s = float(duration_s)
        self.model_error = float(model_error)
        self.weights = reward or RewardWeights()
        self.expert = expert
        self._model, self._source = load_scenario(scenario)
        first = self._compile(self.seeds[0])
        self.possible_agents = [f"scale-{i}" for i in range(len(first.services))]
        self.agents: list[str] = []
        self.render_mode = None
        self._episode = 0
        self.compiled: CompiledScenario = first
        self.engine: Engine | None = None

    def _compile(self, seed: int) -> CompiledScenario:
        return compile_scenario(self._model, self._source, seed=seed, duration_s=self.duration_s,
                                model_error=self.model_error)

    @functools.cache  # noqa: B019  # PettingZoo asks for the same space object each call
    def observation_space(self, agent: str) -> spaces.Box:
        return spaces.Box(-FEATURE_CLIP, FEATURE_CLIP, shape=(N_FEATURES,), dtype=np.float32)

    @functools.cache  # noqa: B019
    def action_space(self, agent: str) -> spaces.Discrete:
        return spaces.Discrete(N_ACTIONS)

    # ------------------------------------------------------------------ episode
    def reset(self, seed: int | None = None, options: dict[str, Any] | None = None
              ) -> tuple[dict[str, Features], dict[str, dict[str, Any]]]:
        if seed is not None:
            self._episode = seed
        episode_seed = self.seeds[self._episode % len(self.seeds)]
        self._episode += 1
        self.compiled = self._compile(episode_seed)
        self.engine = Engine(self.compiled)
        self.controller = MasController()
        # the teacher plans for the agents' cadence: what must be there until their next decision, 15 s
        # on (at its own 2 s tick it would provision just in time and teach a 15 s controller to cut)
        teacher_settings = ClairvoyantSettings(interval_s=self.controller.planner.settings.interval_s)
        self.teacher = ClairvoyantPlanner(self.compiled, teacher_settings) if self.expert else None
        self.state: MasState = self.controller.initial_state(self.engine.observe())
        self.steps = round(self.compiled.duration_s / self.compiled.step_s)
        self.every = max(1, round(self.controller.interval_s / self.compiled.step_s))
        self.i = 0
        self.pod_seconds = np.zeros(len(self.compiled.services))
        self.agents = list(self.possible_agents)
        self._draft: MpcDraft | None = None
        self._observation: Observation = self.engine.observe()
        """What mas observed at the drafted step (the draft may read it with over-claimed demand cut)."""
        self._advance()
        return self._observations(), self._infos()

    def _advance(self) -> None:
        """Step the engine (mas deciding on its ticks) until the MPC's next re-plan, or the episode's end."""
        engine = self.engine
        assert engine is not None
        while self.i < self.steps:
            if self.i % self.every == 0 and self.i > 0 and self._draft is None:
                observation = engine.observe()
                if self.controller.replans(self.state):
                    planned_from = self.controller.planning_observation(observation, self.state)
                    self._draft = self.controller.planner.draft(planned_from, self.state.mpc)
                    self._observation = observation
                    return
                actions, self.state = self.controller.decide(observation, self.state)
                if actions:
                    engine.apply(actions)
            engine.step()
            self.pod_seconds += engine.pods()[0] * self.compiled.step_s
            self.i += 1
            self._draft = None

    def _observations(self) -> dict[str, Features]:
        if self._draft is None:
            return {}
        table = agent_features(self._draft)
        return {agent: table[k] for k, agent in enumerate(self.agents)}

    def _infos(self) -> dict[str, dict[str, Any]]:
        if self._draft is None or self.teacher is None:
            return {agent: {} for agent in self.agents}
        actions, _ = self.teacher.decide(self._observation, ClairvoyantState())
        wanted = expert_replicas(self._observation, actions)
        best = level_towards(self._draft.plan.setpoints, wanted)
        return {agent: {"expert_action": int(best[k])} for k, agent in enumerate(self.agents)}

    def step(self, actions: dict[str, Any]) -> tuple[dict[str, Features], dict[str, float], dict[str, bool],
                                                    dict[str, bool], dict[str, dict[str, Any]]]:
        draft, engine = self._draft, self.engine
        if draft is None or engine is None:
            raise RuntimeError("step() after the episode ended: call reset()")
        neutral = N_ACTIONS // 2  # level 0: the plan as drafted
        chosen = np.array([int(actions.get(agent, neutral)) for agent in self.possible_agents], dtype=np.int64)
        levels = chosen - N_ACTIONS // 2
        counters, recorder = engine.state.counters, engine.recorder
        arrived0 = counters.arrived.copy()
        bad0 = recorder.violating_served_by_service + counters.dropped + counters.lost
        pods0 = self.pod_seconds.copy()
        t0 = engine.state.t
        planned = draft.plan.setpoints
        mpc_step = self.controller.planner.commit(draft, apply_levels(planned, levels))
        moves, self.state = self.controller.decide(self._observation, self.state, mpc_step)
        if moves:
            engine.apply(moves)
        self._draft = None
        engine.step()
        self.pod_seconds += engine.pods()[0] * self.compiled.step_s
        self.i += 1
        self._advance()
        elapsed = max(engine.state.t - t0, self.compiled.step_s)
        bad = recorder.violating_served_by_service + counters.dropped + counters.lost - bad0
        arrived = counters.arrived - arrived0
        violating = np.clip(bad / np.maximum(arrived, 1.0), 0.0, 1.0)
        held = (self.pod_seconds - pods0) / (elapsed * np.maximum(planned, 1))
        reward = (-violating - self.weights.cost * held - self.weights.change * np.abs(levels)
                  - self.weights.cut * np.maximum(-levels, 0))
        done = self._draft is None
        rewards = {agent: float(reward[k]) for k, agent in enumerate(self.agents)}
        truncations = dict.fromkeys(self.agents, done)
        terminations = dict.fromkeys(self.agents, False)
        infos = self._infos()
        for k, agent in enumerate(self.agents):
            infos[agent]["violating_share"] = float(violating[k])
        observations: dict[str, Features] = (
            {agent: np.zeros(N_FEATURES, np.float32) for agent in self.agents} if done else self._observations())
        if done:
            self.agents = []
        return observations, rewards, terminations, truncations, infos

    def episode_metrics(self) -> dict[str, float]:
        """The finished episode's SLO violation % and replica-seconds, as the bench reports them."""
        assert self.engine is not None
        metrics = self.engine.recorder.metrics(self.compiled.duration_s, 0.0, None)
        return {"slo_violation_pct": float(metrics["slo_violation_pct"] or 0.0),
                "replica_seconds": float(metrics["replica_seconds"] or 0.0)}

    def render(self) -> None:
        return None

    def close(self) -> None:
        self.engine = None
