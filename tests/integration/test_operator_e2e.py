"""kubeagora end to end, as its users meet it, on a real control plane of its own.

One stack for the module (``devcluster.stack``): the control plane, whose kube-scheduler calls the
scheduler extender; the mock kubelet playing the two-region ``gpu-throttle`` topology (faults off)
with the metrics API; a real Prometheus; the extender; the operator (shadow 5 s, canary 600 s, so a
canary lasts until it is judged). The README's kubectl flow is applied as written; then a burst, and
an operator killed in the middle of a canary.
"""

from __future__ import annotations

import json
import signal
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.integration.kube import wait_for

from kubeagora.devcluster.stack import Stack, StackOptions

pytest.importorskip("kopf")
pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
IN_FLIGHT = ("Shadow", "Canary", "AwaitingApproval")


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, controlplane_binary: Path) -> Iterator[Stack]:
    options = StackOptions(scenario="gpu-throttle",
                           operator_args=("--shadow-seconds", "5", "--canary-seconds", "600"))
    with Stack(tmp_path_factory.mktemp("e2e"), options, binary=controlplane_binary) as s:
        yield s


def get(stack: Stack, *args: str) -> Any:
    return stack.kubectl_json("get", *args)


def condition(obj: dict[str, Any], kind: str) -> dict[str, Any]:
    return next((c for c in (obj.get("status") or {}).get("conditions") or () if c["type"] == kind), {})


def state(action: dict[str, Any]) -> str | None:
    """An AgentAction's state; None until the operator has written its first status (a fresh one has none)."""
    value: str | None = (action.get("status") or {}).get("state")
    return value


def agentactions(stack: Stack, intent: str | None = None) -> list[dict[str, Any]]:
    items = get(stack, "agentactions", "-n", "default")["items"]
    return [a for a in items if intent is None or a["spec"]["intentRef"]["name"] == intent]


@pytest.fixture(scope="module")
def applied(stack: Stack) -> Stack:
    """The README's flow: the CRDs are in (the stack applied crds/), then the policy and the intent."""
    stack.kubectl("apply", "-f", str(ROOT / "examples" / "policy.yaml"), "-f", str(ROOT / "examples" / "intent.yaml"))

    def reported() -> bool:
        intent = get(stack, "intent", "checkout", "-n", "default")
        return condition(intent, "Ready").get("status") == "True" and \
            condition(intent, "SLOMet").get("status") in ("True", "False")

    wait_for("the operator to report on intent checkout", reported, timeout_s=90)
    return stack


def test_kubectl_get_intent_shows_the_slo_and_what_was_observed(applied: Stack) -> None:
    table = applied.kubectl("get", "intent", "checkout", "-n", "default")
    header = table.splitlines()[0]
    for column in ("TARGET", "P95 SLO", "P99 SLO", "OBSERVED P99", "REPLICAS", "SLO-MET", "AUTONOMY"):
        assert column in header, table
    status = get(applied, "intent", "checkout", "-n", "default")["status"]
    assert status["observed"]["replicas"] >= 1
    assert status["observed"]["rps"] > 0
    assert condition({"status": status}, "Degraded")["status"] == "False"  # Prometheus answers


def test_the_extender_keeps_checkout_in_its_region_and_class(applied: Stack) -> None:
    nodes = {n["metadata"]["name"]: n["metadata"]["labels"] for n in get(applied, "nodes")["items"]}
    assert {labels["topology.kubernetes.io/region"] for labels in nodes.values()} >= {"region-0", "region-1"}
    pods = wait_for("checkout's pods to be bound", lambda: [
        p for p in get(applied, "pods", "-n", "default", "-l", "app=checkout")["items"]
        if p["spec"].get("nodeName")] or None)
    for pod in pods:
        labels = nodes[pod["spec"]["nodeName"]]
        assert labels["topology.kubernetes.io/region"] == "region-0", pod["spec"]["nodeName"]
        assert labels["kubeagora.io/node-class"] == "cpu", pod["spec"]["nodeName"]


def test_a_burst_makes_the_operator_scale_up_and_say_why(applied: Stack) -> None:
    before = get(applied, "deployment", "checkout", "-n", "default")["spec"]["replicas"]
    load = applied.set_load("checkout", 25.0)  # 10 rps × 25: several replicas' worth
    offered = load["services"]["default/checkout"]["rps"]
    started = time.monotonic()
    try:
        scaled = wait_for("the operator to scale checkout up", lambda: (
            d := get(applied, "deployment", "checkout", "-n", "default"))["spec"]["replicas"] > before and d,
            timeout_s=60)
        reaction_s = time.monotonic() - started
        capacity_per_pod = 4 * 1000 / 25.0  # the web template: 4 workers × 25 ms
        wait_for("Ready capacity to reach the offered load", lambda: (
            get(applied, "deployment", "checkout", "-n", "default")["status"].get("readyReplicas", 0)
            * capacity_per_pod >= offered), timeout_s=120)
    finally:
        applied.set_load("checkout", 1.0)
    assert reaction_s < 45, f"the operator took {reaction_s:.0f} s to scale"
    assert scaled["spec"]["replicas"] <= 20  # the intent's bound
    applied_actions = [a for a in agentactions(applied, "checkout") if state(a) == "Applied"]
    assert applied_actions, "no AgentAction records the scale-up"
    assert all(a["spec"]["reason"] for a in applied_actions)
    events = get(applied, "events", "-n", "default", "--field-selector", "involvedObject.name=checkout")["items"]
    assert any(e["reason"] == "Enacted" and "scale default/checkout" in e["message"] for e in events)
    decisions = get(applied, "intent", "checkout", "-n", "default")["status"]["lastDecisions"]
    assert decisions
    assert decisions[0]["agent"]


def test_the_webhook_refuses_an_intent_that_breaks_the_orchestration_policy(applied: Stack) -> None:
    bad = {"apiVersion": "kubeagora.io/v1alpha1", "kind": "OrchestrationIntent",
           "metadata": {"name": "rogue", "namespace": "default"},
           "spec": {"targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "checkout"},
                    "slo": {"p95Ms": 150, "p99Ms": 250}, "tenant": "nobody"}}
    proc = applied.cluster.kubectl("apply", "-f", "-", input=json.dumps(bad))  # type: ignore[union-attr]
    assert proc.returncode != 0
    assert "spec.tenant" in proc.stderr, proc.stderr
    assert applied.kubectl("get", "intent", "rogue", "-n", "default", check=False) == ""


def test_the_operator_exports_its_own_metrics(applied: Stack) -> None:
    with urllib.request.urlopen(applied.children["operator"].url + "/metrics", timeout=10) as resp:
        text = resp.read().decode()
    ticks = [line for line in text.splitlines() if line.startswith("kubeagora_operator_decision_seconds_count")]
    assert ticks
    assert float(ticks[0].split()[-1]) > 0
    assert 'kubeagora_operator_actions_total{agent=' in text


def test_killing_the_operator_mid_canary_loses_nothing(applied: Stack) -> None:
    """An over-provisioned service makes the placement agent move replicas (canaried migrations);
    the operator is killed with SIGKILL while one is in Canary and a new one takes over."""
    applied.apply(*idle_service())
    canary = wait_for("an AgentAction in Canary", lambda: next(
        (a for a in agentactions(applied) if state(a) == "Canary"), None),
        timeout_s=300, every_s=0.3)
    old = applied.children["operator"]
    old.stop(sig=signal.SIGKILL)
    run = canary["metadata"]["labels"]["kubeagora.io/operator-run"]
    applied.start_operator()
    name = canary["metadata"]["name"]

    def finished() -> dict[str, Any] | None:
        a = get(applied, "agentaction", name, "-n", "default")
        return a if a["status"]["state"] == "RolledBack" else None

    rolled_back = wait_for(f"{name} to be rolled back by the new operator", finished, timeout_s=60)
    assert "restarted" in rolled_back["status"]["message"]
    assert rolled_back["status"]["transitions"][-1]["from"] == "Canary"
    left = [a["metadata"]["name"] for a in agentactions(applied)
            if a["metadata"]["labels"]["kubeagora.io/operator-run"] == run
            and state(a) in IN_FLIGHT]
    assert not left, f"the earlier run's rollouts still in flight: {left}"
    undo = rolled_back["status"].get("rollback") or []
    for action in undo:
        if action["type"] == "Scale":
            deployment = [a for a in get(applied, "deployments", "-n", "default")["items"]
                          if f"default/{a['metadata']['name']}" == action["service"]]
            assert deployment[0]["spec"]["replicas"] == action["replicas"]


def test_with_autonomy_approve_nothing_happens_until_a_person_approves_with_kubectl(applied: Stack) -> None:
    """A service that needs more replicas than it has, under an intent with autonomy approve."""
    applied.apply(*service("gated", replicas=1, rps=400, autonomy="approve"))
    # the scale-up (other agents may ask about other moves, a migration say, in any order)
    held = wait_for("a scale-up of gated to wait for a person", lambda: next(
        (a for a in agentactions(applied, "gated") if state(a) == "AwaitingApproval"
         and a["spec"]["action"]["type"] in ("Scale", "Place")), None), timeout_s=120)
    assert held["spec"]["approval"] == "Pending"
    time.sleep(10)  # two more ticks: still nothing enacted
    assert get(applied, "deployment", "gated", "-n", "default")["spec"]["replicas"] == 1
    name = held["metadata"]["name"]
    applied.kubectl("patch", "agentaction", name, "-n", "default", "--type", "merge",
                    "-p", '{"spec": {"approval": "Approved"}}')

    def moved_on() -> dict[str, Any] | None:
        a = get(applied, "agentaction", name, "-n", "default")
        return a if a["status"]["state"] != "AwaitingApproval" else None

    after = wait_for(f"{name} to move on once approved", moved_on, timeout_s=30)
    assert any(t["from"] == "AwaitingApproval" and "approved by" in t["reason"] for t in after["status"]["transitions"])
    wait_for("the approved scale-up to reach the Deployment", lambda: get(
        applied, "deployment", "gated", "-n", "default")["spec"]["replicas"] > 1, timeout_s=60)


def idle_service() -> list[dict[str, Any]]:
    return service("idle", replicas=8, rps=5)


def service(name: str, replicas: int, rps: float, autonomy: str = "auto") -> list[dict[str, Any]]:
    """A web Deployment on CPU nodes with its intent (the intent first, as in examples/intent.yaml)."""
    labels = {"app": name}
    return [
        {"apiVersion": "kubeagora.io/v1alpha1", "kind": "OrchestrationIntent",
         "metadata": {"name": name, "namespace": "default"},
         "spec": {"targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name},
                  "slo": {"p95Ms": 150, "p99Ms": 250}, "replicas": {"min": 1, "max": 10},
                  "autonomy": autonomy, "workload": {"template": "web"}}},
        {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "namespace": "default"},
         "spec": {"replicas": replicas, "selector": {"matchLabels": labels},
                  "template": {"metadata": {"labels": labels, "annotations": {"kubeagora.io/template": "web",
                                                                              "kubeagora.io/rps": f"{rps:g}"}},
                               "spec": {"nodeSelector": {"kubeagora.io/node-class": "cpu"},
                                        "terminationGracePeriodSeconds": 5,
                                        "containers": [{"name": "app", "image": "registry.k8s.io/pause:3.10",
                                                        "resources": {"requests": {"cpu": "250m"}}}]}}}},
    ]
