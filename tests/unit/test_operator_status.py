"""An intent's status: observed figures, conditions that keep their transition time, decisions, compliance."""

from __future__ import annotations

import math
from typing import Any

import orjson
import pytest

from kubeagora.operator.intent_status import MAX_DECISIONS, ComplianceWindow, Observed, status_patch, within_slo

T0, T1, T2 = "2025-06-15T15:00:00Z", "2025-06-15T15:00:05Z", "2025-06-15T15:00:10Z"
SLO_P95, SLO_P99 = 150.0, 250.0


def patch(previous: dict[str, Any] | None = None, observed: Observed | None = None, now: str = T0, *,
          compliance: float | None = None, decisions: list[dict[str, Any]] | None = None, target_found: bool = True,
          metrics_ok: bool = True, metrics_error: str = "") -> dict[str, Any]:
    out = status_patch(previous or {}, observed, SLO_P95, SLO_P99, compliance, decisions or [], now, target_found,
                       metrics_ok, metrics_error)
    orjson.dumps(out)  # what the API client sends
    return dict(out["status"])


def conditions(status: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["type"]: c for c in status["conditions"]}


def healthy(p99_ms: float = 180.0) -> Observed:
    return Observed(p95_ms=120.0, p99_ms=p99_ms, rps=212.346, replicas=3, ready_replicas=2)


def test_observed_figures_are_rounded_and_the_slo_holds() -> None:
    st = patch(observed=healthy(180.04))
    assert st["observed"] == {"p95Ms": 120.0, "p99Ms": 180.0, "rps": 212.35, "replicas": 3, "readyReplicas": 2}
    c = conditions(st)
    assert [x["type"] for x in st["conditions"]] == ["Ready", "SLOMet", "Degraded"]
    assert (c["Ready"]["status"], c["Ready"]["reason"]) == ("True", "TargetFound")
    assert (c["SLOMet"]["status"], c["SLOMet"]["reason"]) == ("True", "WithinTarget")
    assert "p99 180 ms (target 250)" in c["SLOMet"]["message"]
    assert (c["Degraded"]["status"], c["Degraded"]["reason"]) == ("False", "MetricsFlowing")
    assert all(x["lastTransitionTime"] == T0 for x in st["conditions"])


def test_a_missed_target_is_slomet_false() -> None:
    c = conditions(patch(observed=healthy(300.0)))
    assert (c["SLOMet"]["status"], c["SLOMet"]["reason"]) == ("False", "TargetMissed")
    # p95 alone over its target misses too
    c = conditions(patch(observed=Observed(160.0, 200.0, 10.0, 1, 1)))
    assert c["SLOMet"]["status"] == "False"


def test_conditions_keep_their_transition_time_until_their_status_flips() -> None:
    first = patch(observed=healthy(180.0), now=T0)
    # still within target five seconds later: the time the condition became true stays
    second = patch(first, healthy(200.0), now=T1)
    assert conditions(second)["SLOMet"]["lastTransitionTime"] == T0
    assert "p99 200 ms" in conditions(second)["SLOMet"]["message"]
    # the SLO breaks: SLOMet flips and its time moves; Ready did not change and keeps its time
    third = patch(second, healthy(400.0), now=T2)
    assert conditions(third)["SLOMet"]["status"] == "False"
    assert conditions(third)["SLOMet"]["lastTransitionTime"] == T2
    assert conditions(third)["Ready"]["lastTransitionTime"] == T0
    assert conditions(third)["Degraded"]["lastTransitionTime"] == T0


def test_no_traffic_is_unknown_not_a_verdict() -> None:
    st = patch(observed=Observed(math.nan, math.nan, 0.0, 2, 2))
    c = conditions(st)
    assert (c["SLOMet"]["status"], c["SLOMet"]["reason"]) == ("Unknown", "NoTraffic")
    # NaN is no JSON number: the latencies are left out, the rest is reported
    assert st["observed"] == {"rps": 0.0, "replicas": 2, "readyReplicas": 2}


def test_latency_past_the_last_histogram_bucket_is_a_miss_not_no_traffic() -> None:
    # Prometheus' histogram_quantile answers +Inf when the quantile lies past the largest bucket:
    # the service is badly overloaded, which must not read as "no request was served"
    assert within_slo(math.inf, math.inf, SLO_P95, SLO_P99) is False
    assert within_slo(120.0, math.inf, SLO_P95, SLO_P99) is False
    st = patch(observed=Observed(math.inf, math.inf, 900.0, 2, 2))
    assert (conditions(st)["SLOMet"]["status"], conditions(st)["SLOMet"]["reason"]) == ("False", "TargetMissed")


def test_within_slo_verdicts() -> None:
    assert within_slo(150.0, 250.0, SLO_P95, SLO_P99) is True  # at the target is within it
    assert within_slo(150.1, 100.0, SLO_P95, SLO_P99) is False
    assert within_slo(math.nan, 100.0, SLO_P95, SLO_P99) is None


def test_a_missing_target_and_missing_metrics_show_in_ready_and_degraded() -> None:
    st = patch(None, None, target_found=False, metrics_ok=False, metrics_error="Prometheus at :9090 refused")
    c = conditions(st)
    assert "observed" not in st
    assert "SLOMet" not in c
    assert (c["Ready"]["status"], c["Ready"]["reason"]) == ("False", "TargetMissing")
    assert (c["Degraded"]["status"], c["Degraded"]["reason"], c["Degraded"]["message"]) == (
        "True", "MetricsUnavailable", "Prometheus at :9090 refused")


def decision(i: int) -> dict[str, Any]:
    return {"time": f"2025-06-15T15:{i:02d}:00Z", "agent": "scaling", "action": f"Scale checkout replicas={i}",
            "reason": "forecast", "state": "Applied"}


def test_last_decisions_are_newest_first_and_at_most_ten() -> None:
    older = [decision(i) for i in range(9, 0, -1)]  # newest first: 9 .. 1
    st = patch({"lastDecisions": older}, healthy(), decisions=[decision(11), decision(10)])
    assert len(st["lastDecisions"]) == MAX_DECISIONS
    assert [d["time"][14:16] for d in st["lastDecisions"]] == ["11", "10", "09", "08", "07", "06", "05", "04",
                                                               "03", "02"]
    # a tick without decisions keeps the list
    again = patch(st, healthy(), now=T1)
    assert again["lastDecisions"] == st["lastDecisions"]


def test_compliance_is_the_share_of_ticks_within_slo_over_a_window() -> None:
    window = ComplianceWindow(size=4)
    assert window.pct("default/checkout") is None
    for within in (True, None, True, False, None):  # ticks without traffic are skipped
        window.add("default/checkout", within)
    assert window.pct("default/checkout") == pytest.approx(100.0 * 2 / 3)
    for within in (False, False, True):  # the window keeps the last four verdicts: F, F, F, T
        window.add("default/checkout", within)
    assert window.pct("default/checkout") == pytest.approx(25.0)
    assert window.pct("default/cart") is None
    assert patch(observed=healthy(), compliance=window.pct("default/checkout"))["sloCompliancePct"] == 25.0
    assert "sloCompliancePct" not in patch(observed=healthy())
