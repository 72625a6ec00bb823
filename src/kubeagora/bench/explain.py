"""`kubeagora explain RUN.json`: the decision log of a run, as a person reads it.

A run's `decisions` are either the MAS's rollout records (agent, reason, inputs, predicted effect,
shield and twin verdicts, stage transitions) or, for the baselines, the bare actions with their
reason. Both become rows: when, who, what, the outcome and why.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any


class Outcome(StrEnum):
    """How a decision ended: the AgentAction stages (`kubeagora.decision.rollout.Stage`; a unit test keeps
    the two equal), or Refused for a baseline's action the engine did not carry out."""

    PROPOSED = "Proposed"
    SHADOW = "Shadow"
    CANARY = "Canary"
    APPLIED = "Applied"
    ROLLED_BACK = "RolledBack"
    REJECTED = "Rejected"
    AWAITING_APPROVAL = "AwaitingApproval"
    REFUSED = "Refused"


@dataclass(frozen=True, slots=True)
class DecisionRow:
    at_s: float
    agent: str
    action: str
    outcome: str
    why: str
    twin: str


def load_runs(path: Path) -> list[dict[str, Any]]:
    """The runs of a bench or simulate JSON file; ValueError naming the file when it is not one."""
    try:
        document = json.loads(path.read_text())
    except FileNotFoundError:
        raise ValueError(f"{path}: no such file") from None
    except (OSError, json.JSONDecodeError) as e:
        raise ValueError(f"{path}: not a bench JSON file ({e})") from None
    runs = document.get("runs") if isinstance(document, dict) else None
    if not isinstance(runs, list) or not runs:
        raise ValueError(f"{path}: field 'runs': expected a non-empty list of runs")
    return runs


def select_runs(runs: Sequence[Mapping[str, Any]], scenario: str | None, controller: str | None,
                seed: int | None) -> list[Mapping[str, Any]]:
    chosen = [r for r in runs if (scenario is None or r.get("scenario") == scenario)
              and (controller is None or r.get("controller") == controller)
              and (seed is None or r.get("seed") == seed)]
    if not chosen:
        have = sorted({f"{r.get('scenario')}/{r.get('controller')}/{r.get('seed')}" for r in runs})
        raise ValueError(f"no run matches (runs: {', '.join(have[:12])}{' …' if len(have) > 12 else ''})")
    return chosen


def describe_action(action: Mapping[str, Any]) -> str:
    kind = action.get("kind", "?")
    if kind == "Scale":
        return f"Scale {action.get('service')} → {action.get('replicas')}"
    if kind == "Place":
        return f"Place {action.get('service')} on {action.get('node')}"
    if kind == "Migrate":
        return f"Migrate {action.get('service')} {action.get('from_node')} → {action.get('to_node')}"
    if kind == "SetConcurrency":
        return f"SetConcurrency {action.get('service')} = {action.get('concurrency')}"
    if kind == "ShedLoad":
        return f"ShedLoad {action.get('service')} {float(action.get('fraction', 0.0)):.0%}"
    if kind == "QuarantineNode":
        return f"Quarantine {action.get('node')}"
    if kind == "LiftQuarantine":
        return f"Lift the quarantine of {action.get('node')}"
    return str(kind)


def _twin_summary(twin: Mapping[str, Any] | None) -> str:
    if not twin:
        return ""
    base, cand = twin.get("baseline") or {}, twin.get("candidate") or {}
    verdict = "accepted" if twin.get("accepted") else "rejected"
    b, c = base.get("slo_violation_pct"), cand.get("slo_violation_pct")
    if isinstance(b, int | float) and isinstance(c, int | float):
        return f"{verdict}: violations {b:.1f} → {c:.1f} %"
    return verdict


def rows(decisions: Sequence[Mapping[str, Any]]) -> Iterator[DecisionRow]:
    for d in decisions:
        if "proposals" in d:  # a rollout record
            transitions = d.get("transitions") or [{}]
            for p in d["proposals"]:
                action = p.get("action") or {}
                why = p.get("reason", "")
                last = transitions[-1].get("why", "")
                if last and last not in ("proposed",):
                    why = f"{why} — {last}" if why else last
                yield DecisionRow(float(transitions[0].get("at_s", 0.0)), p.get("agent", "?"),
                                  describe_action(action), str(d.get("stage", "?")), why,
                                  _twin_summary(d.get("twin")))
        else:  # a baseline's bare action
            outcome = (Outcome.REFUSED if d.get("kind") == "Refused" else Outcome.APPLIED).value
            yield DecisionRow(float(d.get("t_s", 0.0)), "controller", describe_action(d), outcome,
                              str(d.get("reason", "")), "")
