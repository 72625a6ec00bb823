"""The trained actor as numpy arrays: what the bench and the operator run (no torch at inference).

A policy file is a `.npz` written by `kubeagora train` (`export_policy`): the actor's layers
(`w0, b0, w1, b1, …`, tanh between them, logits out) and the feature names it was trained on. The
actor is shared by every service (parameter sharing); it reads each service's sketch of the drafted
MPC step and picks the most likely residual level. `LearnedResidual` is the `ResidualPolicy` the MPC
controller calls between its draft and its commit.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from kubeagora.controllers.mpc import MpcDraft
from kubeagora.learn.features import FEATURES, N_ACTIONS, Features, agent_features, apply_levels
from kubeagora.model import IntArray

SHIPPED_POLICY = Path(__file__).parent / "checkpoints" / "residual.npz"
"""The checkpoint in the repository (docs/benchmarks.md has the command that reproduces it)."""


class PolicyFileError(ValueError):
    """A policy file that cannot be used (missing, not a policy, trained on other features)."""


@dataclass(frozen=True, slots=True)
class ActorWeights:
    layers: tuple[tuple[Features, Features], ...]
    """(weight [in, out], bias [out]) per layer; tanh between layers, logits after the last."""

    def logits(self, features: npt.ArrayLike) -> Features:
        x: Features = np.asarray(features, dtype=np.float32)
        for k, (w, b) in enumerate(self.layers):
            x = x @ w + b
            if k < len(self.layers) - 1:
                x = np.tanh(x)
        return x

    def act(self, features: npt.ArrayLike) -> IntArray:
        """The most likely action index per row."""
        return np.asarray(np.argmax(self.logits(features), axis=1), dtype=np.int64)


def save_actor(path: Path, layers: list[tuple[npt.ArrayLike, npt.ArrayLike]]) -> None:
    """Write the actor's layers ((weight [in, out], bias [out]) each) as a policy file."""
    arrays: dict[str, Any] = {"features": np.array(FEATURES)}
    for k, (w, b) in enumerate(layers):
        arrays[f"w{k}"] = np.asarray(w, dtype=np.float32)
        arrays[f"b{k}"] = np.asarray(b, dtype=np.float32)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as f:
        np.savez_compressed(f, **arrays)


def load_actor(path: Path) -> ActorWeights:
    """Raises PolicyFileError naming the file and what is wrong with it."""
    try:
        with np.load(path, allow_pickle=False) as data:
            names = tuple(str(n) for n in data["features"]) if "features" in data else None
            layers = []
            k = 0
            while f"w{k}" in data:
                layers.append((data[f"w{k}"].astype(np.float32), data[f"b{k}"].astype(np.float32)))
                k += 1
    except FileNotFoundError:
        raise PolicyFileError(f"{path}: no such policy file") from None
    except (OSError, ValueError, KeyError) as exc:
        raise PolicyFileError(f"{path}: not a policy file written by `kubeagora train` ({exc})") from None
    if names != FEATURES:
        raise PolicyFileError(f"{path}: trained on features {names}, this version reads {FEATURES}")
    if not layers:
        raise PolicyFileError(f"{path}: no layers (w0, b0, …) in the file")
    if layers[0][0].shape[0] != len(FEATURES) or layers[-1][0].shape[1] != N_ACTIONS:
        raise PolicyFileError(f"{path}: the actor maps {layers[0][0].shape[0]} inputs to {layers[-1][0].shape[1]} "
                              f"actions; expected {len(FEATURES)} to {N_ACTIONS}")
    shapes = [(w.shape, b.shape) for w, b in layers]
    chained = all(w.ndim == 2 and b.shape == (w.shape[1],) for w, b in layers) and all(
        before.shape[1] == after.shape[0] for (before, _), (after, _) in itertools.pairwise(layers))
    if not chained:
        raise PolicyFileError(f"{path}: the layers' shapes do not chain: {shapes}")
    return ActorWeights(tuple(layers))


class LearnedResidual:
    """`ResidualPolicy` for the MPC: the drafted set-points moved by the actor's level per service."""

    def __init__(self, actor: ActorWeights) -> None:
        self.actor = actor

    @classmethod
    def from_file(cls, path: Path) -> LearnedResidual:
        return cls(load_actor(path))

    def __call__(self, draft: MpcDraft) -> IntArray:
        actions = self.actor.act(agent_features(draft))
        return apply_levels(draft.plan.setpoints, actions - N_ACTIONS // 2)
