"""`--sweep`: which settings of the baselines' knobs a bench runs, as controller labels.

A sweep spec is one of
- `standard`: every tunable family among the bench's controllers, over its standard grid
  (`controllers.tuning.KNOBS`);
- `FAMILY.target=START:STOP:STEP`: an inclusive range (`hpa.target=0.5:0.9:0.1`);
- `FAMILY.target=A,B,C`: a list of values.

The result is the controller list to run: the given controllers, then for each swept family its
shipped default (a labelled row of its own) and the swept settings, in the order given. A value
equal to the family's default is the default's run, not a second one.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from kubeagora.controllers.registry import ALIASES, controller_label
from kubeagora.controllers.tuning import KNOB, KNOBS, checked_label, format_value

STANDARD = "standard"
MAX_VALUES = 50
"""More settings than this in one spec is a typo (a step of 0.001), not a sweep."""


def _values(spec: str, family: str, text: str) -> list[float]:
    def number(raw: str) -> float:
        try:
            value = float(raw)
        except ValueError:
            raise ValueError(f"--sweep {spec!r}: {raw!r} is not a number") from None
        if not math.isfinite(value):
            raise ValueError(f"--sweep {spec!r}: {raw!r} is not a finite number")
        return value

    if ":" in text:
        parts = text.split(":")
        if len(parts) != 3:
            raise ValueError(f"--sweep {spec!r}: a range is START:STOP:STEP")
        start, stop, step = (number(p) for p in parts)
        if step <= 0 or stop < start:
            raise ValueError(f"--sweep {spec!r}: a range needs STEP > 0 and STOP ≥ START")
        count = math.floor((stop - start) / step + 1e-9) + 1
        if count > MAX_VALUES:
            raise ValueError(f"--sweep {spec!r}: {count} values; at most {MAX_VALUES} per family")
        return [round(start + k * step, 6) for k in range(count)]
    values = [number(v) for v in text.split(",") if v.strip()]
    if not values:
        raise ValueError(f"--sweep {spec!r}: no values after '='")
    return values


def parse_sweep(spec: str, controllers: Sequence[str]) -> dict[str, list[str]]:
    """Family → controller labels (its default first) for one spec. Raises ValueError naming the problem."""
    spec = spec.strip()
    if spec == STANDARD:
        families = [f for f in dict.fromkeys(controller_label(c).family for c in controllers) if f in KNOBS]
        if not families:
            raise ValueError(f"--sweep {STANDARD}: none of the controllers has a knob (tunable: {', '.join(KNOBS)})")
        return {f: _labels(f, KNOBS[f].standard, spec) for f in families}
    head, eq, values = spec.partition("=")
    name, dot, knob = head.partition(".")
    family = ALIASES.get(name.strip(), name.strip())
    if not eq or not dot:
        raise ValueError(f"--sweep {spec!r}: write FAMILY.{KNOB}=START:STOP:STEP, FAMILY.{KNOB}=A,B,C or {STANDARD}")
    if family not in KNOBS:
        raise ValueError(f"--sweep {spec!r}: {family!r} has no knob to sweep (tunable: {', '.join(KNOBS)})")
    if knob.strip() != KNOB:
        raise ValueError(f"--sweep {spec!r}: {family}'s knob is {KNOB!r} ({KNOBS[family].meaning})")
    return {family: _labels(family, _values(spec, family, values), spec)}


def _labels(family: str, values: Sequence[float], spec: str) -> list[str]:
    labels = [family] + [checked_label(family, v, where=f"--sweep {spec!r}").text for v in values]
    return list(dict.fromkeys(labels))


def expand_sweeps(controllers: Sequence[str], specs: Sequence[str]) -> list[str]:
    """The controllers to run: `controllers` (canonical labels) and every swept setting, without repeats."""
    labels = [controller_label(c).text for c in controllers]
    for spec in specs:
        for swept in parse_sweep(spec, controllers).values():
            labels.extend(swept)
    return list(dict.fromkeys(labels))


def describe_standard() -> str:
    """One line per family for `--help` and the docs: what `standard` sweeps."""
    return "; ".join(
        f"{k.family} {', '.join(format_value(v) for v in k.standard)} (default {format_value(k.default)})"
        for k in KNOBS.values()
    )
