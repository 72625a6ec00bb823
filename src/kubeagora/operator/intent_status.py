"""An intent's status: what was observed, whether the SLO holds, the last decisions (pure).

Conditions keep their ``lastTransitionTime`` while their status stays the same, as Kubernetes
conditions do; ``sloCompliancePct`` is the share of the loop's recent ticks (``ComplianceWindow``)
in which the service's p95 and p99 were within target.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

MAX_DECISIONS = 10


@dataclass
class ComplianceWindow:
    """The last ``size`` ticks' verdicts per intent (True: within SLO; ticks without traffic are skipped)."""

    size: int = 120
    verdicts: dict[str, deque[bool]] = field(default_factory=dict)

    def add(self, key: str, within: bool | None) -> None:
        if within is None:
            return
        self.verdicts.setdefault(key, deque(maxlen=self.size)).append(within)

    def pct(self, key: str) -> float | None:
        v = self.verdicts.get(key)
        return 100.0 * sum(v) / len(v) if v else None


def within_slo(p95_ms: float, p99_ms: float, slo_p95_ms: float, slo_p99_ms: float) -> bool | None:
    """None when nothing was served (NaN); +Inf (past the last histogram bucket) is a miss."""
    if math.isnan(p95_ms) or math.isnan(p99_ms):
        return None
    return p95_ms <= slo_p95_ms and p99_ms <= slo_p99_ms


def condition(previous: Sequence[Mapping[str, Any]], kind: str, ok: bool | None, reason: str, message: str,
              now_iso: str) -> dict[str, Any]:
    status = "Unknown" if ok is None else ("True" if ok else "False")
    before = next((c for c in previous if c.get("type") == kind), None)
    since = before.get("lastTransitionTime") if before and before.get("status") == status else now_iso
    return {"type": kind, "status": status, "reason": reason, "message": message, "lastTransitionTime": since}


def _round(x: float, digits: int = 1) -> float | None:
    return round(x, digits) if math.isfinite(x) else None


@dataclass(frozen=True, slots=True)
class Finding:
    """One more condition of the intent (residency, orphaned nodes), as a tick found it."""

    kind: str
    status: bool | None
    reason: str
    message: str


@dataclass(frozen=True, slots=True)
class Observed:
    p95_ms: float
    p99_ms: float
    rps: float
    replicas: int
    ready_replicas: int


def status_patch(previous_status: Mapping[str, Any], observed: Observed | None, slo_p95_ms: float,
                 slo_p99_ms: float, compliance_pct: float | None, decisions: Sequence[Mapping[str, Any]],
                 now_iso: str, target_found: bool, metrics_ok: bool, metrics_error: str = "",
                 autoscaler_conflict: tuple[bool, str, str] | None = None,
                 findings: Sequence[Finding] = (), degraded: str = "", note: str = "") -> dict[str, Any]:
    """`autoscaler_conflict`: (status, reason, message) of the AutoscalerConflict condition (see
    `operator.autoscalers`); None leaves the condition out. `findings`: more conditions (residency,
    orphaned nodes). ``degraded``: what is wrong with this intent or its Deployment (its ``Degraded``
    condition says so, reason ``InvalidTarget``); empty: the condition is about the metrics. ``note``:
    what the OrchestrationPolicy changed in the intent (a capped priority), added to the ``Ready`` message."""
    prev = list(previous_status.get("conditions") or ())
    conditions = [condition(prev, "Ready", target_found, "TargetFound" if target_found else "TargetMissing",
                            ("the target Deployment exists and is managed" + (f"; {note}" if note else ""))
                            if target_found else "the target Deployment does not exist (yet)", now_iso)]
    body: dict[str, Any] = {}
    if observed is not None:
        body["observed"] = {k: v for k, v in (("p95Ms", _round(observed.p95_ms)), ("p99Ms", _round(observed.p99_ms)),
                                              ("rps", _round(observed.rps, 2)), ("replicas", observed.replicas),
                                              ("readyReplicas", observed.ready_replicas)) if v is not None}
        met = within_slo(observed.p95_ms, observed.p99_ms, slo_p95_ms, slo_p99_ms)
        if met is None:
            conditions.append(condition(prev, "SLOMet", None, "NoTraffic", "no request was served in the window",
                                        now_iso))
        else:
            conditions.append(condition(
                prev, "SLOMet", met, "WithinTarget" if met else "TargetMissed",
                f"p95 {observed.p95_ms:.0f} ms (target {slo_p95_ms:g}), p99 {observed.p99_ms:.0f} ms "
                f"(target {slo_p99_ms:g})", now_iso))
    if degraded:
        conditions.append(condition(prev, "Degraded", True, "InvalidTarget", degraded[:1000], now_iso))
    else:
        conditions.append(condition(prev, "Degraded", not metrics_ok,
                                    "MetricsUnavailable" if not metrics_ok else "MetricsFlowing",
                                    metrics_error if not metrics_ok else "Prometheus answers; the agents decide",
                                    now_iso))
    if autoscaler_conflict is not None:
        conflict, reason, message = autoscaler_conflict
        conditions.append(condition(prev, "AutoscalerConflict", conflict, reason, message, now_iso))
    conditions += [condition(prev, f.kind, f.status, f.reason, f.message[:1000], now_iso) for f in findings]
    if compliance_pct is not None:
        body["sloCompliancePct"] = round(compliance_pct, 1)
    body["conditions"] = conditions
    merged = [*decisions, *(previous_status.get("lastDecisions") or ())]
    body["lastDecisions"] = merged[:MAX_DECISIONS]
    return {"status": body}
