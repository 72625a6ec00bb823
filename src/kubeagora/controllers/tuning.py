"""The main knob of each baseline, and controller labels that carry a setting of it (`hpa@target=0.6`).

A fair comparison tunes the peers (DESIGN.md, "How we compare"): every baseline has one main knob,
`target`, swept over a documented range, and a shipped default that is shown as its own labelled
row. A label is `FAMILY` (the shipped default) or `FAMILY@target=VALUE`; a label whose value equals
the default is written as the bare family name, so a sweep that includes the default runs it once.

| family | `target` means | default | standard sweep |
| --- | --- | --- | --- |
| heuristic | scale-out CPU utilisation (scale-in at target − 0.4, the paper's 70/30 gap) | 0.7 | 0.5–0.9 |
| hpa | target CPU utilisation of the HPA | 0.8 (autoscaling/v1's default) | 0.5–0.9 |
| keda | threshold as a share of one replica's full-speed request rate | 0.7 | 0.5–0.9 |
| knative | container-concurrency-target-percentage (target = share × slots) | 0.7 (Knative's default) | 0.5–0.9 |
| rayserve | target_ongoing_requests per replica slot | 0.5 (Ray's 2 on a 4-slot replica) | 0.3–0.9 |

Pure: no controller is built here (the registry does that with `settings_override`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

KNOB = "target"
"""The one knob name every baseline exposes; its meaning is the family's (see the table above)."""
LABEL_SEPARATOR = "@"


@dataclass(frozen=True, slots=True)
class Knob:
    family: str
    meaning: str
    default: float
    default_note: str
    """Where the default comes from, for the labelled row."""
    low: float
    high: float
    """The range a value must lie in (wider than the standard sweep: a user may go further)."""
    standard: tuple[float, ...]
    """The values `--sweep standard` runs."""


def _grid(start: float, stop: float, step: float) -> tuple[float, ...]:
    n = math.floor((stop - start) / step + 1e-9) + 1
    return tuple(round(start + k * step, 6) for k in range(n))


KNOBS: dict[str, Knob] = {
    "heuristic": Knob(
        "heuristic",
        "scale-out CPU utilisation (scale-in 0.4 below it)",
        0.7,
        "the seed paper's 70 %",
        0.45,
        0.95,
        _grid(0.5, 0.9, 0.1),
    ),
    "hpa": Knob(
        "hpa",
        "target CPU utilisation",
        0.8,
        "autoscaling/v1's default 80 %",
        0.1,
        1.0,
        _grid(0.5, 0.9, 0.1),
    ),
    "keda": Knob(
        "keda",
        "request-rate threshold as a share of one replica's full-speed rate",
        0.7,
        "70 % of a replica's rate",
        0.1,
        1.0,
        _grid(0.5, 0.9, 0.1),
    ),
    "knative": Knob(
        "knative",
        "target concurrency as a share of the replica's slots",
        0.7,
        "Knative's container-concurrency-target-percentage 70 %",
        0.1,
        1.0,
        _grid(0.5, 0.9, 0.1),
    ),
    "rayserve": Knob(
        "rayserve",
        "target ongoing requests per replica slot",
        0.5,
        "Ray's target_ongoing_requests 2 on a 4-slot replica",
        0.05,
        4.0,
        _grid(0.3, 0.9, 0.15),
    ),
}
TUNABLE_FAMILIES: tuple[str, ...] = tuple(KNOBS)


@dataclass(frozen=True, slots=True)
class ControllerLabel:
    """A controller family and, for a baseline, the value of its knob (None = the shipped default)."""

    family: str
    target: float | None = None

    @property
    def text(self) -> str:
        if self.target is None:
            return self.family
        return f"{self.family}{LABEL_SEPARATOR}{KNOB}={format_value(self.target)}"

    @property
    def is_default(self) -> bool:
        return self.target is None

    def target_value(self) -> float | None:
        """The knob's value this label runs with (the default's where none was given); None if not tunable."""
        knob = KNOBS.get(self.family)
        if knob is None:
            return None
        return knob.default if self.target is None else self.target


def format_value(value: float) -> str:
    return f"{value:g}"


def parse_label(text: str, aliases: dict[str, str] | None = None) -> ControllerLabel:
    """`hpa`, `hpa@target=0.6` → a canonical label. Raises ValueError naming what was wrong.

    The family is not checked against the registry here (the registry does that); only the knob is.
    """
    aliases = aliases or {}
    name, sep, setting = text.strip().partition(LABEL_SEPARATOR)
    family = aliases.get(name, name)
    if not sep:
        return ControllerLabel(family)
    knob = KNOBS.get(family)
    if knob is None:
        raise ValueError(f"controller {text!r}: {family!r} has no knob to set (tunable: {', '.join(KNOBS)})")
    key, eq, raw = setting.partition("=")
    if key != KNOB or not eq:
        raise ValueError(f"controller {text!r}: write the setting as {family}{LABEL_SEPARATOR}{KNOB}=VALUE")
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"controller {text!r}: {raw!r} is not a number") from None
    return checked_label(family, value, where=f"controller {text!r}")


def checked_label(family: str, value: float, where: str) -> ControllerLabel:
    knob = KNOBS[family]
    if not (math.isfinite(value) and knob.low <= value <= knob.high):
        raise ValueError(
            f"{where}: {family}'s {KNOB} ({knob.meaning}) must lie in "
            f"[{format_value(knob.low)}, {format_value(knob.high)}] (got {format_value(value)})"
        )
    value = round(value, 6)
    return ControllerLabel(family, None if value == knob.default else value)
