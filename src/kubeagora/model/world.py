"""How the world differs from its nominal specs: the parameters a cluster never tells the operator.

A `Service` declares its service time and cold start per node class and a `Node` its speed; the
interference coefficients β of the node classes are the platform's published figures. A real
deployment runs slower or faster than declared, and nobody tells the controllers by how much.
`WorldParameters` holds those differences as multipliers of the nominal values (1 = as specified):

- `service_time_factor[service, node class]`: mean service time of a request;
- `cold_start_factor[service, node class]`: pod start until Ready;
- `interference_factor[node class]`: β of the slowdown 1 + β·u² under co-located load;
- `node_speed_factor[node]`: the machine's speed against its declared `speed_factor`.

The simulator draws one world per scenario and seed (`draw`, model error σ: each factor is
lognormal with median 1 and log-standard deviation σ) and runs it; the controllers see only the
nominal specs. The digital twin runs the same engine with the world its calibration estimates
(`kubeagora.decision.calibration`). Node classes are indexed as `NODE_CLASSES`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from kubeagora.model.cluster import NODE_CLASSES
from kubeagora.model.observation import FloatArray

MODEL_ERROR_STREAM = 0x6D6F_6465
"""Mixed into the scenario's seed: the world is drawn from a stream of its own, so a scenario's
topology, services, workload and faults are the same at every model error."""
MAX_DEVIATION_SIGMAS = 3.0
"""Draws are clipped to median × e^(±3σ): a 3σ tail is already 2.5× at σ 0.3, and one service
10× slower than declared would measure that service's SLO, not the controllers."""


@dataclass(frozen=True, slots=True)
class WorldParameters:
    service_time_factor: FloatArray
    """[service, node class] multiplier of the declared mean service time."""
    cold_start_factor: FloatArray
    """[service, node class] multiplier of the declared cold start."""
    interference_factor: FloatArray
    """[node class] multiplier of the platform's interference coefficient β."""
    node_speed_factor: FloatArray
    """[node] multiplier of the node's declared speed."""

    def __post_init__(self) -> None:
        n_classes = len(NODE_CLASSES)
        st, cs = self.service_time_factor, self.cold_start_factor
        if st.ndim != 2 or st.shape[1] != n_classes or cs.shape != st.shape:
            raise ValueError(f"service_time_factor and cold_start_factor must be [service, {n_classes}] "
                             f"(got {st.shape} and {cs.shape})")
        if self.interference_factor.shape != (n_classes,) or self.node_speed_factor.ndim != 1:
            raise ValueError(f"interference_factor must be [{n_classes}] and node_speed_factor [node] (got "
                             f"{self.interference_factor.shape} and {self.node_speed_factor.shape})")
        for name in self.__slots__:
            values = getattr(self, name)
            if not np.all(np.isfinite(values) & (values > 0)):
                raise ValueError(f"{name} must be positive and finite")

    @property
    def n_services(self) -> int:
        return int(self.service_time_factor.shape[0])

    @property
    def n_nodes(self) -> int:
        return int(self.node_speed_factor.shape[0])

    @property
    def is_nominal(self) -> bool:
        return all(bool(np.all(getattr(self, name) == 1.0)) for name in self.__slots__)

    @classmethod
    def nominal(cls, n_services: int, n_nodes: int) -> WorldParameters:
        """The world exactly as specified."""
        n_classes = len(NODE_CLASSES)
        return cls(np.ones((n_services, n_classes)), np.ones((n_services, n_classes)), np.ones(n_classes),
                   np.ones(n_nodes))

    @classmethod
    def draw(cls, n_services: int, n_nodes: int, sigma: float, seed: int) -> WorldParameters:
        """A world with model error `sigma`: every factor lognormal, median 1, log-sd σ (clipped at ±3σ).

        The same seed draws the same standard normals at every σ, so σ 0.15 and σ 0.3 of a seed err
        in the same directions, one twice as far; σ 0 is the nominal world exactly."""
        if not (math.isfinite(sigma) and sigma >= 0):
            raise ValueError(f"model error must be a finite number ≥ 0 (got {sigma})")
        n_classes = len(NODE_CLASSES)
        rng = np.random.default_rng([seed, MODEL_ERROR_STREAM])
        z = [rng.standard_normal((n_services, n_classes)), rng.standard_normal((n_services, n_classes)),
             rng.standard_normal(n_classes), rng.standard_normal(n_nodes)]
        factors = [np.exp(sigma * np.clip(zi, -MAX_DEVIATION_SIGMAS, MAX_DEVIATION_SIGMAS)) for zi in z]
        return cls(*factors)
