"""Residency on a real control plane whose kube-scheduler has no extender at all (the extender "down"):
the operator's mutating webhook and template patch are all that keep a restricted Deployment's pods in
their region; a node relabelled out of the region has its pods moved, and the intent says so.

One stack for the module: the two-region ``gpu-throttle`` topology, Prometheus, the operator with its
webhooks, no scheduler extender.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from tests.integration.kube import wait_for

from kubeagora.devcluster.stack import Stack, StackOptions

pytest.importorskip("kopf")
pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
REGION, CLASS = "topology.kubernetes.io/region", "kubeagora.io/node-class"
REPLICAS = 8


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, controlplane_binary: Path) -> Iterator[Stack]:
    with Stack(tmp_path_factory.mktemp("residency"), StackOptions(scenario="gpu-throttle", extender=False),
               binary=controlplane_binary) as s:
        yield s


def example(name: str, replicas: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """examples/intent.yaml's intent and Deployment (region-0, cpu), renamed, with ``replicas``."""
    intent, deployment = yaml.safe_load_all((ROOT / "examples" / "intent.yaml").read_text())
    intent, deployment = copy.deepcopy(intent), copy.deepcopy(deployment)
    intent["metadata"]["name"] = name
    intent["spec"]["targetRef"]["name"] = name
    intent["spec"]["replicas"]["min"] = replicas
    deployment["metadata"]["name"] = name
    deployment["metadata"]["labels"] = {"app": name}
    deployment["spec"]["replicas"] = replicas
    deployment["spec"]["selector"]["matchLabels"] = {"app": name}
    deployment["spec"]["template"]["metadata"]["labels"] = {"app": name}
    deployment["spec"]["template"]["spec"]["containers"][0]["name"] = name
    return intent, deployment


def node_labels(stack: Stack) -> dict[str, dict[str, str]]:
    return {n["metadata"]["name"]: n["metadata"]["labels"] for n in stack.kubectl_json("get", "nodes")["items"]}


def pods(stack: Stack, app: str) -> list[dict[str, Any]]:
    return [p for p in stack.kubectl_json("get", "pods", "-n", "default", "-l", f"app={app}")["items"]
            if not p["metadata"].get("deletionTimestamp")]


def inside(labels: dict[str, str]) -> bool:
    return labels.get(REGION) == "region-0" and labels.get(CLASS) == "cpu"


def required(obj: dict[str, Any]) -> Any:
    return (((obj.get("spec") or {}).get("affinity") or {}).get("nodeAffinity") or {}).get(
        "requiredDuringSchedulingIgnoredDuringExecution")


def condition(stack: Stack, intent: str, kind: str) -> dict[str, Any]:
    obj = stack.kubectl_json("get", "intent", intent, "-n", "default")
    return next((c for c in (obj.get("status") or {}).get("conditions") or () if c["type"] == kind), {})


def test_without_the_rule_the_scheduler_spreads_pods_over_both_regions(stack: Stack) -> None:
    """The control: without the rule nothing here keeps a pod in region-0 (so the next test can fail)."""
    _, deployment = example("unpinned", REPLICAS)
    stack.apply(deployment)
    try:
        bound = wait_for("unpinned's pods to be bound", lambda: (
            ps if len(ps := [p for p in pods(stack, "unpinned") if p["spec"].get("nodeName")]) == REPLICAS
            else None), timeout_s=120)
        labels = node_labels(stack)
        assert not all(inside(labels[p["spec"]["nodeName"]]) for p in bound), "all landed in region-0 by chance"
        assert not any(required(p) for p in bound)
    finally:
        stack.kubectl("delete", "deployment", "unpinned", "-n", "default", "--wait=false")


def test_pods_applied_together_with_their_intent_carry_the_rule_and_never_leave_the_region(stack: Stack) -> None:
    intent, deployment = example("pinned", REPLICAS)
    stack.apply(intent, deployment)  # in one apply, as examples/intent.yaml does
    labels = node_labels(stack)
    seen: dict[str, str] = {}
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        for p in pods(stack, "pinned"):
            assert required(p), f"{p['metadata']['name']} was admitted without the residency rule"
            if p["spec"].get("nodeName"):
                seen[p["metadata"]["name"]] = p["spec"]["nodeName"]
        if len(seen) >= REPLICAS and condition(stack, "pinned", "ResidencyMet").get("status") == "True":
            break
        time.sleep(0.5)
    outside = {pod: node for pod, node in seen.items() if not inside(labels[node])}
    assert len(seen) >= REPLICAS, seen
    assert not outside, f"bound outside region-0/cpu without an extender: {outside}"
    template = stack.kubectl_json("get", "deployment", "pinned", "-n", "default")["spec"]["template"]
    assert required(template), "the operator wrote the rule into the pod template"
    assert "kubeagora.io/residency" in template["metadata"]["annotations"]
    assert condition(stack, "pinned", "ResidencyMet")["status"] == "True"


def test_a_pod_on_a_node_relabelled_out_of_the_region_is_moved_back_and_the_intent_says_so(stack: Stack) -> None:
    placed = wait_for("pinned's pods to be bound", lambda: [p for p in pods(stack, "pinned")
                                                           if p["spec"].get("nodeName")] or None)
    victim = placed[0]
    node = victim["spec"]["nodeName"]
    stack.kubectl("label", "node", node, f"{REGION}=region-1", "--overwrite")
    try:
        moving = wait_for("ResidencyMet to turn False", lambda: (
            c if (c := condition(stack, "pinned", "ResidencyMet")).get("status") == "False" else None), timeout_s=60)
        assert moving["reason"] in ("Moving", "EvictionRefused"), moving
        assert node in moving["message"]
        wait_for("every pinned pod off the relabelled node", lambda: all(
            p["spec"].get("nodeName") != node for p in pods(stack, "pinned")), timeout_s=90)
        wait_for("ResidencyMet to be True again", lambda: condition(
            stack, "pinned", "ResidencyMet").get("status") == "True", timeout_s=90)
        labels = node_labels(stack)
        bound = [p for p in pods(stack, "pinned") if p["spec"].get("nodeName")]
        assert all(inside(labels[p["spec"]["nodeName"]]) for p in bound)
    finally:
        stack.kubectl("label", "node", node, f"{REGION}=region-0", "--overwrite")
