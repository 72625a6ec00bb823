"""Load control of the mock kubelet's ``/load`` endpoint (pure): bodies in, request rates out.

    POST /load {"service": S, "rps": R}       offer R requests per second to S from now on
    POST /load {"service": S, "factor": F}    offer F × S's base rate (factor 1 restores it)
    GET  /load                                every service's offered and base rate

A service's base rate is the one its profile was made with (the ``--traffic`` file, the pods'
``kubeagora.io/rps`` annotation, the scenario, ``--default-rps``; see ``plan``). Tests and demos
use it to drive a burst against the real HPA.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

MAX_RPS = 1e7
"""Sanity bound on an offered rate (requests per second)."""


@dataclass(frozen=True, slots=True)
class LoadChange:
    service: str
    rps: float | None = None
    factor: float | None = None

    def new_rps(self, base_rps: float) -> float:
        """The rate to offer, given the service's base rate."""
        if self.rps is not None:
            return self.rps
        assert self.factor is not None
        return base_rps * self.factor


def _number(body: Mapping[str, Any], field: str) -> float:
    value = body[field]
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
        raise ValueError(f"field '{field}' must be a finite number ≥ 0 (got {value!r})")
    return float(value)


def parse_load_change(body: object) -> LoadChange:
    """A ``POST /load`` body; ValueError saying what is wrong with it."""
    if not isinstance(body, dict):
        raise ValueError('expected a JSON object {"service": S, "rps": R} or {"service": S, "factor": F}')
    unknown = set(body) - {"service", "rps", "factor"}
    if unknown:
        raise ValueError(f"unknown field(s) {', '.join(sorted(map(str, unknown)))}; expected service and rps or factor")
    service = body.get("service")
    if not isinstance(service, str) or not service:
        raise ValueError(f"field 'service' must be a non-empty string (got {service!r})")
    if ("rps" in body) == ("factor" in body):
        raise ValueError("give exactly one of 'rps' and 'factor'")
    if "rps" in body:
        rps = _number(body, "rps")
        if rps > MAX_RPS:
            raise ValueError(f"field 'rps' must be at most {MAX_RPS:g} (got {rps:g})")
        return LoadChange(service, rps=rps)
    return LoadChange(service, factor=_number(body, "factor"))


def check_bound(change: LoadChange, base_rps: float) -> float:
    """The new rate, or ValueError when a factor takes it past ``MAX_RPS``."""
    rps = change.new_rps(base_rps)
    if rps > MAX_RPS:
        raise ValueError(f"factor {change.factor:g} × base {base_rps:g} rps exceeds {MAX_RPS:g} rps")
    return rps


def load_doc(offered: Mapping[str, float], base: Mapping[str, float]) -> dict[str, Any]:
    """The ``GET /load`` reply: {"services": {S: {"rps": offered, "base_rps": base, "factor": f}}}."""
    out: dict[str, Any] = {}
    for name, rps in offered.items():
        b = base.get(name, rps)
        out[name] = {"rps": rps, "base_rps": b, "factor": rps / b if b > 0 else None}
    return {"services": out}
