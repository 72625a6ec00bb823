"""Training the residual: behavioural cloning of the clairvoyant planner, DAgger, then MAPPO (CTDE).

One readable file in the CleanRL manner rather than TorchRL/BenchMARL: the environment steps a
simulator whose episodes cost seconds of CPU each, so the learner is a few hundred lines around a
plain rollout loop, and what it does can be read and checked in one place (a library's collectors,
specs and vectorised transforms would be most of the code and none of the cost).

- **Actors** share one small MLP (parameter sharing): a service's features → a residual level.
  Decentralised execution: each agent reads only its own service's sketch (`features.agent_features`),
  which is all the operator has to compute at run time (`policy.LearnedResidual`, numpy).
- **Critic** is centralised (MAPPO): it reads the agent's features, the whole cluster's (mean and max
  over services) and the episode's progress (`features.critic_inputs`); used only in training.
- **Warm start**: behavioural cloning on the clairvoyant planner's answer at every drafted step of
  episodes run by mas as it is, then DAgger rounds (episodes run by the current policy, labelled by
  the planner, added to the data set). The clairvoyant planner knows the future and the true world:
  it is a teacher here, never a contender.
- **Exploration is shielded**: every sampled residual is bounded by the MPC controller and goes
  through mas's shield, twin and canary like any other proposal (`env`).

Many environments per process: one per training scenario, stepped in lock-step, the actor evaluated
once per step for all their agents. Seeds: the training episodes use seeds from 1000 on, which the
bench (each scenario's own seed and the next ones) never uses. Everything is seeded (`TrainArgs.seed`);
a checkpoint after every iteration holds the networks, the optimisers, the data set and the random
states, and `resume` carries on from it.
"""

from __future__ import annotations

import csv
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import torch
from torch import nn

from kubeagora.learn.env import ResidualEnv
from kubeagora.learn.features import N_ACTIONS, N_FEATURES, Features, critic_inputs
from kubeagora.learn.policy import save_actor

Array = npt.NDArray[Any]
Progress = Callable[[int, int, str], None]
"""Called with (units done, units in all, what is running now); a unit is one episode."""

CHECKPOINT = "checkpoint.pt"
POLICY = "policy.npz"
LOG = "train.csv"
LOG_FIELDS = ("phase", "iteration", "episodes", "reward_per_agent_step", "slo_violation_pct", "replica_seconds",
              "loss", "accuracy_or_entropy", "dataset", "wall_s")


@dataclass(frozen=True, slots=True)
class TrainArgs:
    seed: int = 0
    """Seeds torch, the action sampling and the order of the training seeds."""
    scenarios: tuple[str, ...] = ("steady-drift", "burst-hotspot", "diurnal-mixed", "gpu-throttle",
                                  "node-zone-failure", "region-partition")
    """One environment per scenario, stepped together."""
    first_train_seed: int = 1000
    """Episode k of a scenario's environment runs seed first_train_seed + k (the bench uses 1–10)."""
    duration_s: float = 600.0
    """Simulated seconds per episode (40 decisions at the MPC's 15 s)."""
    model_error: float = 0.3
    """The world's log-sd from the declared specs (the evidence's σ 0.3)."""
    bc_rounds: int = 1
    """Rounds of episodes run by mas as it is, labelled by the clairvoyant planner."""
    dagger_rounds: int = 1
    """Rounds of episodes run by the current policy, labelled by the planner and added to the data."""
    teacher_cuts: bool = False
    """Whether the clone learns the planner's cuts too. By default a cut it advises is taught as "keep the
    plan": it cuts knowing the true world and the future, which a student reading mas's sketch cannot
    justify (a clone taught every cut learnt mostly to cut, and tripled mas's violations). Its adds stay."""
    add_weight: float = 2.5
    """Cloning weighs the planner's adds by this against its "keep the plan" (asymmetric: a missed add costs
    a window of violations, a needless one a few replica-seconds)."""
    bc_epochs: int = 60
    ppo_iterations: int = 4
    """Rounds of MAPPO (one episode per environment each) after the warm start."""
    hidden: int = 64
    bc_lr: float = 3e-3
    lr: float = 3e-4
    gamma: float = 0.9
    """Per 15-second decision: a horizon of ~2.5 minutes, a cold start and its consequences."""
    gae_lambda: float = 0.9
    clip: float = 0.2
    ppo_epochs: int = 4
    minibatch: int = 512
    entropy_coef: float = 0.003
    value_coef: float = 0.5
    bc_coef: float = 0.1
    """Keeps MAPPO's actor close to the clone (a cross-entropy term on the data set) while it explores."""

    @property
    def total_episodes(self) -> int:
        return (self.bc_rounds + self.dagger_rounds + self.ppo_iterations) * len(self.scenarios)


def mlp(inputs: int, hidden: int, outputs: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(inputs, hidden), nn.Tanh(), nn.Linear(hidden, hidden), nn.Tanh(),
                         nn.Linear(hidden, outputs))


@dataclass
class Learner:
    args: TrainArgs
    actor: nn.Sequential
    critic: nn.Sequential
    bc_optimizer: torch.optim.Optimizer
    optimizer: torch.optim.Optimizer
    phase: str = "bc"
    """bc, dagger, mappo, then done."""
    iteration: int = 0
    """Rounds done in this phase."""
    episodes: int = 0
    data_features: list[Array] = field(default_factory=list)
    data_labels: list[Array] = field(default_factory=list)

    @classmethod
    def new(cls, args: TrainArgs) -> Learner:
        torch.manual_seed(args.seed)
        actor = mlp(N_FEATURES, args.hidden, N_ACTIONS)
        last = actor[-1]
        assert isinstance(last, nn.Linear)
        with torch.no_grad():  # start near "every level alike": a small last layer
            last.weight.mul_(0.01)
            last.bias.zero_()
        critic = mlp(3 * N_FEATURES + 1, args.hidden, 1)
        return cls(args, actor, critic, torch.optim.Adam(actor.parameters(), lr=args.bc_lr),
                   torch.optim.Adam([*actor.parameters(), *critic.parameters()], lr=args.lr))

    def state_dict(self) -> dict[str, Any]:
        return {"args": asdict(self.args), "actor": self.actor.state_dict(), "critic": self.critic.state_dict(),
                "bc_optimizer": self.bc_optimizer.state_dict(), "optimizer": self.optimizer.state_dict(),
                "phase": self.phase, "iteration": self.iteration, "episodes": self.episodes,
                "data_features": self.data_features, "data_labels": self.data_labels,
                "torch_rng": torch.get_rng_state()}

    @classmethod
    def from_checkpoint(cls, path: Path) -> Learner:
        saved = torch.load(path, weights_only=False)
        fields: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v for k, v in saved["args"].items()}
        args = TrainArgs(**fields)
        learner = cls.new(args)
        learner.actor.load_state_dict(saved["actor"])
        learner.critic.load_state_dict(saved["critic"])
        learner.bc_optimizer.load_state_dict(saved["bc_optimizer"])
        learner.optimizer.load_state_dict(saved["optimizer"])
        learner.phase, learner.iteration, learner.episodes = saved["phase"], saved["iteration"], saved["episodes"]
        learner.data_features, learner.data_labels = saved["data_features"], saved["data_labels"]
        torch.set_rng_state(saved["torch_rng"])
        return learner

    def export(self, path: Path) -> None:
        linear = [m for m in self.actor if isinstance(m, nn.Linear)]
        save_actor(path, [(m.weight.detach().numpy().T.copy(), m.bias.detach().numpy().copy()) for m in linear])


@dataclass
class Rollout:
    """One lock-step pass over every environment: per environment, [decision, agent] arrays."""

    features: list[Array]
    critic_in: list[Array]
    actions: list[Array]
    log_probs: list[Array]
    values: list[Array]
    rewards: list[Array]
    expert: list[Array]
    metrics: list[dict[str, float]]


def collect(envs: Sequence[ResidualEnv], learner: Learner, mode: str, episode: int = 0) -> Rollout:
    """Episode `episode` of every environment. mode: "plan" (level 0: mas as it is), "greedy" or "sample"."""
    obs_and_infos = [env.reset(seed=episode) for env in envs]
    alive = [bool(env.agents) for env in envs]
    traces: list[dict[str, list[Array]]] = [
        {k: [] for k in ("features", "critic_in", "actions", "log_probs", "values", "rewards", "expert")} for _ in envs]
    current: list[Features] = [np.stack(list(o.values())) for o, _ in obs_and_infos]
    infos = [i for _, i in obs_and_infos]
    while any(alive):
        live = [k for k, a in enumerate(alive) if a]
        batch = np.concatenate([current[k] for k in live])
        critic_batch = np.concatenate([critic_inputs(current[k], envs[k].i / envs[k].steps) for k in live])
        with torch.no_grad():
            logits = learner.actor(torch.from_numpy(batch))
            dist = torch.distributions.Categorical(logits=logits)
            if mode == "sample":
                chosen = dist.sample()
            elif mode == "greedy":
                chosen = logits.argmax(dim=1)
            else:
                chosen = torch.full((batch.shape[0],), N_ACTIONS // 2, dtype=torch.int64)
            log_prob = dist.log_prob(chosen).numpy()
            value = learner.critic(torch.from_numpy(critic_batch)).squeeze(1).numpy()
        chosen_np = chosen.numpy()
        offset = 0
        for k in live:
            env, n = envs[k], current[k].shape[0]
            part = slice(offset, offset + n)
            offset += n
            agents = list(env.agents)
            expert = np.array([infos[k][a].get("expert_action", -1) for a in agents])
            obs, rewards, _, truncations, infos[k] = env.step(dict(zip(agents, chosen_np[part].tolist(), strict=True)))
            t = traces[k]
            t["features"].append(current[k])
            t["critic_in"].append(critic_batch[part])
            t["actions"].append(chosen_np[part])
            t["log_probs"].append(log_prob[part])
            t["values"].append(value[part])
            t["rewards"].append(np.array([rewards[a] for a in agents], dtype=np.float32))
            t["expert"].append(expert)
            if all(truncations.values()):
                alive[k] = False
            else:
                current[k] = np.stack([obs[a] for a in env.agents])
    stacked = {key: [np.stack(t[key]) for t in traces] for key in traces[0]}
    return Rollout(**stacked, metrics=[env.episode_metrics() for env in envs])


def _summary(rollout: Rollout) -> dict[str, float]:
    return {"reward_per_agent_step": float(np.mean([r.mean() for r in rollout.rewards])),
            "slo_violation_pct": float(np.mean([m["slo_violation_pct"] for m in rollout.metrics])),
            "replica_seconds": float(np.mean([m["replica_seconds"] for m in rollout.metrics]))}


def label_weights(args: TrainArgs) -> torch.Tensor:
    """Per action index: the cloning loss's weight (`TrainArgs.add_weight` on the levels above the plan)."""
    return torch.tensor([args.add_weight if k > N_ACTIONS // 2 else 1.0 for k in range(N_ACTIONS)])


def fit_clone(learner: Learner) -> tuple[float, float]:
    """Cross-entropy on the aggregated data set; returns (loss, accuracy)."""
    x = torch.from_numpy(np.concatenate(learner.data_features))
    y = torch.from_numpy(np.concatenate(learner.data_labels).astype(np.int64))
    loss = torch.tensor(0.0)
    weight = label_weights(learner.args)
    for _ in range(learner.args.bc_epochs):
        for idx in torch.randperm(len(x)).split(learner.args.minibatch):
            loss = nn.functional.cross_entropy(learner.actor(x[idx]), y[idx], weight=weight)
            learner.bc_optimizer.zero_grad()
            loss.backward()
            learner.bc_optimizer.step()
    with torch.no_grad():
        accuracy = float((learner.actor(x).argmax(dim=1) == y).float().mean())
    return loss.item(), accuracy


def add_labels(learner: Learner, rollout: Rollout) -> None:
    for features, expert in zip(rollout.features, rollout.expert, strict=True):
        labelled = expert >= 0
        labels = expert[labelled].astype(np.int64)
        if not learner.args.teacher_cuts:
            labels = np.maximum(labels, N_ACTIONS // 2)
        learner.data_features.append(features[labelled].astype(np.float32))
        learner.data_labels.append(labels)


def advantages(rollout: Rollout, gamma: float, lam: float) -> tuple[Array, Array]:
    """GAE per agent along each environment's episode (the last decision bootstraps nothing)."""
    adv_all, ret_all = [], []
    for rewards, values in zip(rollout.rewards, rollout.values, strict=True):
        adv = np.zeros_like(rewards)
        last = np.zeros(rewards.shape[1], dtype=np.float32)
        for t in reversed(range(len(rewards))):
            next_value = values[t + 1] if t + 1 < len(rewards) else 0.0
            delta = rewards[t] + gamma * next_value - values[t]
            last = delta + gamma * lam * last
            adv[t] = last
        adv_all.append(adv.reshape(-1))
        ret_all.append((adv + values).reshape(-1))
    return np.concatenate(adv_all), np.concatenate(ret_all)


def ppo_update(learner: Learner, rollout: Rollout) -> tuple[float, float]:
    """Clipped PPO on the shared actor, value regression on the centralised critic; (loss, entropy)."""
    args = learner.args
    adv, ret = advantages(rollout, args.gamma, args.gae_lambda)
    def flat(parts: list[Array]) -> torch.Tensor:
        return torch.from_numpy(np.concatenate([p.reshape(-1, *p.shape[2:]) for p in parts]))
    x, xc = flat(rollout.features), flat(rollout.critic_in)
    a, old_logp = flat(rollout.actions).long(), flat(rollout.log_probs)
    adv_t, ret_t = torch.from_numpy(adv), torch.from_numpy(ret)
    adv_t = (adv_t - adv_t.mean()) / (adv_t.std() + 1e-8)
    bx = torch.from_numpy(np.concatenate(learner.data_features)) if learner.data_features else None
    by = torch.from_numpy(np.concatenate(learner.data_labels).astype(np.int64)) if learner.data_labels else None
    loss = entropy = torch.tensor(0.0)
    for _ in range(args.ppo_epochs):
        for idx in torch.randperm(len(x)).split(args.minibatch):
            dist = torch.distributions.Categorical(logits=learner.actor(x[idx]))
            ratio = torch.exp(dist.log_prob(a[idx]) - old_logp[idx])
            policy_loss = -torch.min(ratio * adv_t[idx],
                                     torch.clamp(ratio, 1 - args.clip, 1 + args.clip) * adv_t[idx]).mean()
            value_loss = ((learner.critic(xc[idx]).squeeze(1) - ret_t[idx]) ** 2).mean()
            entropy = dist.entropy().mean()
            loss = policy_loss + args.value_coef * value_loss - args.entropy_coef * entropy
            if bx is not None and by is not None and args.bc_coef > 0:
                pick = torch.randint(len(bx), (len(idx),))
                loss = loss + args.bc_coef * nn.functional.cross_entropy(learner.actor(bx[pick]), by[pick],
                                                                         weight=label_weights(args))
            learner.optimizer.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_([*learner.actor.parameters(), *learner.critic.parameters()], 0.5)
            learner.optimizer.step()
    return loss.item(), entropy.item()


def make_envs(args: TrainArgs, expert: bool) -> list[ResidualEnv]:
    # each scenario's environment walks its own seeds; the order depends on TrainArgs.seed
    rounds = args.bc_rounds + args.dagger_rounds + args.ppo_iterations
    return [ResidualEnv(name, seeds=[args.first_train_seed + 100 * args.seed + k for k in range(rounds)],
                        duration_s=args.duration_s, model_error=args.model_error, expert=expert)
            for name in args.scenarios]


def train(out: Path, args: TrainArgs | None = None, resume: bool = False, progress: Progress | None = None) -> Path:
    """Train into `out` (checkpoint.pt, policy.npz, train.csv); returns the exported policy's path."""
    torch.set_num_threads(1)
    out.mkdir(parents=True, exist_ok=True)
    checkpoint, log_path = out / CHECKPOINT, out / LOG
    if resume and checkpoint.exists():
        learner = Learner.from_checkpoint(checkpoint)
    else:
        learner = Learner.new(args or TrainArgs())
        with log_path.open("w", newline="") as f:
            csv.writer(f).writerow(LOG_FIELDS)
    args = learner.args
    labelled_envs = make_envs(args, expert=True)
    plain_envs = make_envs(args, expert=False)
    rounds = {"bc": args.bc_rounds, "dagger": args.dagger_rounds, "mappo": args.ppo_iterations}
    order = [*rounds, "done"]
    started = time.perf_counter()
    if progress:
        progress(learner.episodes, args.total_episodes, f"{learner.phase} {learner.iteration}")
    while learner.phase != "done":
        phase = learner.phase
        if learner.iteration >= rounds[phase]:
            learner.phase, learner.iteration = order[order.index(phase) + 1], 0
            continue
        episode = learner.episodes // len(args.scenarios)  # resumed runs continue with the next seeds
        if phase == "mappo":
            rollout = collect(plain_envs, learner, "sample", episode)
            loss, second = ppo_update(learner, rollout)
        else:
            rollout = collect(labelled_envs, learner, "plan" if phase == "bc" else "greedy", episode)
            add_labels(learner, rollout)
            loss, second = fit_clone(learner)
        learner.iteration += 1
        learner.episodes += len(args.scenarios)
        row = {"phase": phase, "iteration": learner.iteration, "episodes": learner.episodes, **_summary(rollout),
               "loss": loss, "accuracy_or_entropy": second,
               "dataset": int(sum(len(y) for y in learner.data_labels)),
               "wall_s": round(time.perf_counter() - started, 1)}
        with log_path.open("a", newline="") as f:
            csv.writer(f).writerow([row[k] for k in LOG_FIELDS])
        learner.export(out / POLICY)
        torch.save(learner.state_dict(), checkpoint)
        if progress:
            progress(learner.episodes, args.total_episodes, f"{phase} {learner.iteration}/{rounds[phase]}")
    learner.export(out / POLICY)
    return out / POLICY
