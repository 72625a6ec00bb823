"""Residency as a hard rule: intents' placement → required node affinity, evictions, ResidencyMet."""

from __future__ import annotations

import asyncio
import copy
import json
from collections.abc import Mapping
from typing import Any

from tests.unit.operator_objects import deployment, intent, node, pod
from tests.unit.test_operator_control_loop import FakeApi, FakeSignals, loop_over
from tests.unit.test_operator_control_loop import world_of as checkout_world

from kubeagora.model import NodeClass, Tier
from kubeagora.operator import residency
from kubeagora.operator.pod_admission import rule_for_pod
from kubeagora.operator.residency_step import enforce
from kubeagora.operator.view import ClusterView

REGION = residency.LABEL_REGION
CLASS = residency.LABEL_CLASS
EXAMPLE_RULE = [{"key": REGION, "operator": "In", "values": ["region-0"]},
                {"key": CLASS, "operator": "In", "values": ["cpu"]}]


def required(spec: Mapping[str, Any]) -> Any:
    return ((spec.get("affinity") or {}).get("nodeAffinity") or {}).get(
        "requiredDuringSchedulingIgnoredDuringExecution")


def test_the_example_intent_requires_region_0_and_cpu_and_all_tiers_add_nothing() -> None:
    rules = residency.rules_by_deployment([intent("checkout")])
    rule = rules["default/checkout"]
    assert rule.expressions() == EXAMPLE_RULE  # tiers [edge, fog, cloud] is every tier: no expression
    assert rule.allows({REGION: "region-0", CLASS: "cpu"})
    assert not rule.allows({REGION: "region-1", CLASS: "cpu"})
    assert not rule.allows({CLASS: "cpu"}), "a node without a region label is not provably in region-0"
    assert rule.describe() == "regions region-0; node classes cpu"
    assert residency.rules_by_deployment([intent("open", placement=None)]) == {}


def test_two_intents_on_one_deployment_both_hold() -> None:
    a = intent("a", "web", placement={"regions": ["region-0", "region-1"]})
    b = intent("b", "web", placement={"regions": ["region-1", "region-2"], "tiers": ["cloud"]})
    rule = residency.rules_by_deployment([a, b])["default/web"]
    assert rule.regions == {"region-1"}
    assert rule.tiers == {"cloud"}
    assert rule.intents == ("a", "b")


def test_the_rule_goes_into_the_template_once_and_keeps_the_users_own_terms() -> None:
    rule = residency.rules_by_deployment([intent("checkout")])["default/checkout"]
    dep = deployment("checkout")
    patch = residency.template_patch(dep, rule)
    assert patch is not None
    template = patch["spec"]["template"]
    assert required(template["spec"]) == {"nodeSelectorTerms": [{"matchExpressions": EXAMPLE_RULE}]}
    assert json.loads(template["metadata"]["annotations"][residency.ANNOTATION_RULE]) == EXAMPLE_RULE
    # applied: nothing more to write
    patched = merged(dep, patch)
    assert residency.template_patch(patched, rule) is None

    own = {"matchExpressions": [{"key": "disk", "operator": "In", "values": ["ssd"]}]}
    users = copy.deepcopy(dep)
    users["spec"]["template"]["spec"]["affinity"] = {"nodeAffinity": {
        "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [own]}}}
    narrowed = required(residency.template_patch(users, rule)["spec"]["template"]["spec"])  # type: ignore[index]
    assert narrowed == {"nodeSelectorTerms": [{"matchExpressions": [*own["matchExpressions"], *EXAMPLE_RULE]}]}


def test_a_changed_or_deleted_intent_takes_out_exactly_what_kubeagora_added() -> None:
    rule = residency.rules_by_deployment([intent("checkout")])["default/checkout"]
    dep = deployment("checkout")
    own = {"key": "disk", "operator": "In", "values": ["ssd"]}
    dep["spec"]["template"]["spec"]["affinity"] = {"nodeAffinity": {
        "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [{"matchExpressions": [own]}]}}}
    dep = merged(dep, residency.template_patch(dep, rule))
    wider = residency.rules_by_deployment([intent("checkout", placement={"regions": ["region-0", "region-1"]})])
    dep = merged(dep, residency.template_patch(dep, wider["default/checkout"]))
    assert required(dep["spec"]["template"]["spec"])["nodeSelectorTerms"] == [{"matchExpressions": [
        own, {"key": REGION, "operator": "In", "values": ["region-0", "region-1"]}]}]
    assert residency.recorded_deployments({"default/checkout": dep}) == ["default/checkout"]
    cleared = merged(dep, residency.template_patch(dep, None))
    assert required(cleared["spec"]["template"]["spec"])["nodeSelectorTerms"] == [{"matchExpressions": [own]}]
    assert residency.ANNOTATION_RULE not in cleared["spec"]["template"]["metadata"]["annotations"]
    # without a term of the user's, nothing is left at all (an empty term would match no node)
    plain = merged(deployment("checkout"), residency.template_patch(deployment("checkout"), rule))
    assert required(merged(plain, residency.template_patch(plain, None))["spec"]["template"]["spec"]) is None


def test_the_webhook_writes_the_rule_into_a_pod_and_a_second_pass_changes_nothing() -> None:
    rule = residency.rules_by_deployment([intent("checkout")])["default/checkout"]
    p = pod("checkout-abc", "checkout")
    residency.apply_to_pod(p, rule)
    assert required(p["spec"]) == {"nodeSelectorTerms": [{"matchExpressions": EXAMPLE_RULE}]}
    again = copy.deepcopy(p)
    residency.apply_to_pod(again, rule)
    assert again == p


def merged(obj: dict[str, Any], patch: Mapping[str, Any] | None) -> dict[str, Any]:
    """RFC 7386 merge patch (what the API server does with the operator's PATCH)."""
    out = copy.deepcopy(obj)

    def merge(target: dict[str, Any], change: Mapping[str, Any]) -> None:
        for k, v in change.items():
            if v is None:
                target.pop(k, None)
            elif isinstance(v, Mapping) and isinstance(target.get(k), dict):
                merge(target[k], v)
            else:
                target[k] = copy.deepcopy(v)

    merge(out, patch or {})
    return out


# ---------------------------------------------------------------------------------------------- the step
def two_region_world(misplaced: int, *, region_1_only: bool = False) -> ClusterView:
    """checkout (examples/intent.yaml: region-0, cpu) with 4 replicas, ``misplaced`` of them in region-1."""
    nodes = [node("cloud-cpu-0-0", Tier.CLOUD, NodeClass.CPU, region="region-1" if region_1_only else "region-0"),
             node("cloud-cpu-1-0", Tier.CLOUD, NodeClass.CPU, region="region-1", index=1),
             node("cloud-gpu-0-0", Tier.CLOUD, NodeClass.GPU, region="region-0", index=2)]
    view = ClusterView()
    for n in nodes:
        view.apply("nodes", None, n)
    view.apply("deployments", None, deployment("checkout", replicas=4))
    view.apply("intents", None, intent("checkout"))
    for i in range(4):
        on = "cloud-cpu-1-0" if i < misplaced else "cloud-cpu-0-0"
        view.apply("pods", None, pod(f"checkout-{i}", "checkout", on))
    return view


class RefusingApi(FakeApi):
    """A PodDisruptionBudget refuses every eviction."""

    async def create(self, path: str, body: Mapping[str, Any], want: bool = False,
                     ok: tuple[int, ...] = ()) -> tuple[int, Any]:
        self.calls.append(("POST", path, body))
        return (429 if path.endswith("/eviction") else 201), None


def test_misplaced_pods_are_evicted_a_quarter_at_a_time_and_reported_moving() -> None:
    api = FakeApi()
    out = asyncio.run(enforce(api, two_region_world(misplaced=3)))  # type: ignore[arg-type]
    (template,) = api.to("PATCH", "/deployments/checkout")
    assert required(template["spec"]["template"]["spec"]) is not None
    assert len(api.to("POST", "/eviction")) == 1  # 25 % of 4 replicas per tick
    assert out.evicted == {"default/checkout-0"}
    verdict = out.verdicts["default/checkout"]
    assert (verdict.met, verdict.reason) == (False, "Moving")
    assert "checkout-0 on cloud-cpu-1-0" in verdict.message
    assert "topology.kubernetes.io/region=region-1" in verdict.message


def test_a_refused_eviction_is_a_violated_residency_not_a_silent_one() -> None:
    out = asyncio.run(enforce(RefusingApi(), two_region_world(misplaced=1)))  # type: ignore[arg-type]
    verdict = out.verdicts["default/checkout"]
    assert (verdict.met, verdict.reason) == (False, "EvictionRefused")
    assert not out.evicted


def test_with_no_node_to_move_to_nothing_is_evicted_and_the_intent_says_why() -> None:
    api = FakeApi()
    out = asyncio.run(enforce(api, two_region_world(misplaced=4, region_1_only=True)))  # type: ignore[arg-type]
    assert not api.to("POST", "/eviction")
    verdict = out.verdicts["default/checkout"]
    assert (verdict.met, verdict.reason) == (False, "NoAllowedNode")


def test_pods_within_the_rule_are_left_alone_and_the_intent_says_so() -> None:
    api = FakeApi()
    out = asyncio.run(enforce(api, two_region_world(misplaced=0)))  # type: ignore[arg-type]
    assert not api.to("POST", "/eviction")
    assert out.verdicts["default/checkout"].met


def test_the_loop_enforces_residency_even_without_prometheus_and_reports_it() -> None:
    world = checkout_world(replicas=2)
    world["nodes"].append(node("cloud-cpu-9", Tier.CLOUD, NodeClass.CPU, region="region-1", index=9))
    world["pods"][0]["spec"]["nodeName"] = "cloud-cpu-9"
    loop, api = loop_over(world, FakeSignals(None))
    assert asyncio.run(loop.tick()) == "held"
    assert api.to("PATCH", "/apis/apps/v1/namespaces/default/deployments/checkout")
    assert api.to("POST", "/pods/checkout-0/eviction")
    (status,) = api.to("PATCH", "/orchestrationintents/checkout/status")
    met = next(c for c in status["status"]["conditions"] if c["type"] == residency.CONDITION)
    assert (met["status"], met["reason"]) == ("False", "Moving")


class ReadingApi:
    """Answers the webhook's two reads: the namespace's intents and one ReplicaSet."""

    def __init__(self, intents: list[dict[str, Any]], replicasets: dict[str, dict[str, Any]]) -> None:
        self.intents, self.replicasets = intents, replicasets
        self.reads: list[str] = []

    async def list_all(self, path: str, params: Mapping[str, str]) -> tuple[list[Any], str]:
        self.reads.append(path)
        return self.intents, "1"

    async def get(self, path: str, params: Mapping[str, str] | None = None) -> Any:
        self.reads.append(path)
        return self.replicasets[path.rsplit("/", 1)[-1]]


def replicaset(name: str, deployment_name: str) -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": "default", "ownerReferences": [
        {"apiVersion": "apps/v1", "kind": "Deployment", "name": deployment_name, "controller": True}]}}


def test_the_webhook_finds_a_pods_intent_through_its_replicaset_and_its_deployment() -> None:
    api = ReadingApi([intent("checkout")], {"checkout-5d9c7b8f6": replicaset("checkout-5d9c7b8f6", "checkout")})
    p = pod("checkout-abc", "checkout")
    rule = asyncio.run(rule_for_pod(api, "default", p))  # type: ignore[arg-type]
    assert rule is not None
    assert rule.expressions() == EXAMPLE_RULE
    # another Deployment's pod, a bare pod, a namespace without restricting intents
    other = ReadingApi([intent("checkout")], {"web-5d9c7b8f6": replicaset("web-5d9c7b8f6", "web")})
    assert asyncio.run(rule_for_pod(other, "default", pod("web-abc", "web"))) is None  # type: ignore[arg-type]
    bare = pod("debug", "checkout")
    bare["metadata"]["ownerReferences"] = []
    assert asyncio.run(rule_for_pod(api, "default", bare)) is None  # type: ignore[arg-type]
    open_intents = ReadingApi([intent("checkout", placement=None)], {})
    assert asyncio.run(rule_for_pod(open_intents, "default", p)) is None  # type: ignore[arg-type]
    assert len(open_intents.reads) == 1, "no ReplicaSet read when nothing in the namespace restricts placement"
