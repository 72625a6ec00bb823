"""The array readings (every service at once) equal the per-service readings they batch."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
from tests.unit.observations import observation, web_service

from kubeagora.agents.signals import (
    latency_ratio,
    latency_ratios,
    load_ratio,
    load_ratios,
    slo_at_risk,
    slo_at_risk_all,
)


def test_array_readings_equal_the_per_service_readings() -> None:
    services = tuple(web_service(f"s{i}", slo_p95_ms=100.0 + i, slo_p99_ms=200.0 + 3 * i) for i in range(6))
    obs = observation(services=services)
    obs = replace(
        obs,
        # nothing served (NaN), one percentile missing, within and beyond target, infinite
        p95_ms=np.array([math.nan, 120.0, math.nan, 50.0, 300.0, math.inf]),
        p99_ms=np.array([math.nan, math.nan, 260.0, 90.0, 100.0, 10.0]),
        # no capacity with and without arrivals, loaded, idle
        arrival_rps=np.array([0.0, 5.0, 95.0, 0.0, 120.0, 10.0]),
        capacity_rps=np.array([0.0, 0.0, 100.0, 100.0, 100.0, 50.0]),
    )
    n = len(services)
    assert latency_ratios(obs).tolist() == [latency_ratio(obs, s) for s in range(n)]
    assert load_ratios(obs).tolist() == [load_ratio(obs, s) for s in range(n)]
    for latency_share, load_share in ((0.9, 0.9), (1.0, 0.5), (2.0, 2.0)):
        assert slo_at_risk_all(obs, latency_share, load_share).tolist() == [
            slo_at_risk(obs, s, latency_share, load_share) for s in range(n)]
