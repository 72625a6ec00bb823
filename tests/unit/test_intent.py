"""Intents and orchestration policies: parsing names the bad field, the CRD schema and the parser agree, the
policy-level rules, and the mapping onto the simulator's Service, the shield and the rollout."""

from __future__ import annotations

import copy
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from kubeagora.decision.rollout import Rollout, RolloutPolicy, Stage, screen
from kubeagora.decision.shield import ShieldPolicy
from kubeagora.kubelet.nodes import labels, topology_for_nodes
from kubeagora.model import (
    Autonomy,
    Intent,
    IntentError,
    NodeClass,
    NodeSite,
    OrchestrationPolicy,
    RateLimits,
    ReplicaBounds,
    Service,
    Tier,
    parse_intent,
    parse_orchestration_policy,
    rollout_policy,
    service_from_intent,
    shield_policy,
    validate_intent,
)
from kubeagora.model.intent import APPROVE_EVERY_RISK, DEFAULT_TENANT, MAX_LATENCY_MS, METRIC_QUERIES
from kubeagora.operator.metric_presets import CUSTOM_QUERIES, PRESETS
from kubeagora.sim.catalog import TEMPLATES
from kubeagora.sim.topology import build_topology

ROOT = Path(__file__).resolve().parents[2]


def load_all(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def example(kind: str) -> dict[str, Any]:
    docs = load_all(ROOT / "examples" / "intent.yaml") + load_all(ROOT / "examples" / "policy.yaml")
    (doc,) = [d for d in docs if d["kind"] == kind]
    return doc


def crd_schema(plural: str) -> dict[str, Any]:
    (crd,) = load_all(ROOT / "crds" / f"{plural}.yaml")
    (version,) = crd["spec"]["versions"]
    schema: dict[str, Any] = version["schema"]["openAPIV3Schema"]
    return schema


def minimal(**spec: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"targetRef": {"name": "checkout"}, "slo": {"p95Ms": 150, "p99Ms": 250}}
    base.update(spec)
    return {"apiVersion": "kubeagora.io/v1alpha1", "kind": "OrchestrationIntent",
            "metadata": {"name": "checkout", "namespace": "shop"}, "spec": base}


def template_service(template: str, name: str = "tmpl") -> Service:
    fields = {k: v for k, v in TEMPLATES[template].items() if k not in ("resident", "traffic_share")}
    return Service(name=name, **fields)


def sites_for(n: int) -> list[NodeSite]:
    topo = build_topology(topology_for_nodes(n), np.random.default_rng(0))
    return [NodeSite.from_node(node) for node in topo.nodes]


def refusal(obj: dict[str, Any]) -> IntentError | None:
    """The parser's refusal of `obj`, or None when it parses."""
    try:
        parse_intent(obj)
    except IntentError as e:
        return e
    return None


def field_of(obj: dict[str, Any]) -> str:
    with pytest.raises(IntentError) as e:
        parse_intent(obj)
    return e.value.field_path


# ------------------------------------------------------------------------------------------ examples
def test_the_example_intent_parses_to_what_it_says() -> None:
    intent = parse_intent(example("OrchestrationIntent"))
    assert (intent.name, intent.namespace, intent.target.name) == ("checkout", "default", "checkout")
    assert (intent.slo.p95_ms, intent.slo.p99_ms) == (150.0, 250.0)
    assert intent.replicas == ReplicaBounds(1, 20)
    assert intent.placement.regions == ("region-0",)
    assert intent.placement.tiers == {Tier.EDGE, Tier.FOG, Tier.CLOUD}
    assert intent.placement.node_classes == {NodeClass.CPU}
    assert (intent.tenant, intent.autonomy, intent.template) == ("retail", Autonomy.AUTO, "web")
    assert intent.budget.energy_cap_w == 2000.0


def test_the_example_deployment_carries_what_the_mock_kubelet_reads() -> None:
    deployment = example("Deployment")
    pod = deployment["spec"]["template"]
    assert deployment["spec"]["selector"]["matchLabels"] == {"app": "checkout"} == pod["metadata"]["labels"]
    assert pod["metadata"]["annotations"]["kubeagora.io/template"] in TEMPLATES
    assert pod["metadata"]["annotations"]["kubeagora.io/template"] == example("OrchestrationIntent")["spec"][
        "workload"]["template"]


@pytest.mark.parametrize("nodes", [6, 20, 100, 1000])
def test_the_example_places_on_the_mock_kubelet_topology(nodes: int) -> None:
    intent = parse_intent(example("OrchestrationIntent"))
    policy = parse_orchestration_policy(example("OrchestrationPolicy"))
    assert validate_intent(intent, policy, sites_for(nodes), known_templates=TEMPLATES) == []


def test_the_example_policy_parses() -> None:
    policy = parse_orchestration_policy(example("OrchestrationPolicy"))
    assert policy.name == "default"
    assert policy.energy_cap_w == 50000.0
    assert policy.tenant_weights == {"retail": 2.0, "analytics": 1.0}
    assert policy.rate_limits == RateLimits(2, 2, 10)
    assert policy.min_available_pct == 75.0


# ----------------------------------------------------------------------------- the CRD and the parser
def _enum(schema: dict[str, Any], *path: str) -> set[str]:
    node = schema
    for key in path:
        node = node["items"] if key == "[]" else node["properties"][key]
    return set(node["enum"])


def test_crd_enums_are_the_models() -> None:
    schema = crd_schema("orchestrationintents")["properties"]["spec"]
    assert _enum(schema, "placement", "tiers", "[]") == {t.value for t in Tier}
    assert _enum(schema, "placement", "nodeClasses", "[]") == {c.value for c in NodeClass}
    assert _enum(schema, "autonomy") == {a.value for a in Autonomy}
    assert _enum(schema, "workload", "template") == set(TEMPLATES)
    assert _enum(schema, "metrics", "preset") == set(PRESETS)
    assert set(schema["properties"]["metrics"]["properties"]["queries"]["properties"]) == set(METRIC_QUERIES) \
        == set(CUSTOM_QUERIES)


def test_crd_defaults_are_the_parsers() -> None:
    props = crd_schema("orchestrationintents")["properties"]["spec"]["properties"]
    intent = parse_intent(minimal(replicas={"max": 5}, rollout={}))
    assert intent.tenant == props["tenant"]["default"] == DEFAULT_TENANT
    assert intent.priority == props["priority"]["default"]
    assert intent.autonomy == props["autonomy"]["default"]
    assert intent.replicas is not None
    assert intent.replicas.min_replicas == props["replicas"]["properties"]["min"]["default"]
    rollout = props["rollout"]["properties"]
    assert intent.rollout.shadow_s == rollout["shadowSeconds"]["default"] == RolloutPolicy().shadow_s
    assert intent.rollout.canary_s == rollout["canarySeconds"]["default"] == RolloutPolicy().canary_s
    assert intent.rollout.canary_fraction == rollout["canaryFraction"]["default"] == RolloutPolicy().canary_fraction


def test_every_crd_spec_field_is_one_the_parser_reads() -> None:
    """A spec that sets every field the CRD declares parses (the parser refuses fields it does not know)."""
    spec_props = crd_schema("orchestrationintents")["properties"]["spec"]["properties"]
    full = example("OrchestrationIntent")
    assert set(full["spec"]) == set(spec_props)
    for name, prop in spec_props.items():
        if "properties" in prop:
            assert set(full["spec"][name]) == set(prop["properties"]), name
    parse_intent(full)
    policy_props = crd_schema("orchestrationpolicies")["properties"]["spec"]["properties"]
    assert set(example("OrchestrationPolicy")["spec"]) == set(policy_props)


def test_crd_required_fields_are_required_by_the_parser() -> None:
    spec = crd_schema("orchestrationintents")["properties"]["spec"]
    for key in spec["required"]:
        obj = minimal()
        del obj["spec"][key]
        assert field_of(obj) == f"spec.{key}"


# --------------------------------------------------------------------------------------- bad fields
BAD: list[tuple[str, dict[str, Any], str, str]] = [
    ("p99 below p95", {"slo": {"p95Ms": 150, "p99Ms": 100}}, "spec.slo.p99Ms",
     "spec.slo.p99Ms: must be at least spec.slo.p95Ms (150)"),
    ("zero p95", {"slo": {"p95Ms": 0, "p99Ms": 100}}, "spec.slo.p95Ms", "greater than 0"),
    ("string p99", {"slo": {"p95Ms": 1, "p99Ms": "fast"}}, "spec.slo.p99Ms", "must be a number"),
    ("boolean p95", {"slo": {"p95Ms": True, "p99Ms": 2}}, "spec.slo.p95Ms", "must be a number"),
    ("missing p99", {"slo": {"p95Ms": 1}}, "spec.slo.p99Ms", "is required"),
    ("slo not an object", {"slo": [150, 250]}, "spec.slo", "must be an object"),
    ("max below min", {"replicas": {"min": 5, "max": 2}}, "spec.replicas.max", "at least spec.replicas.min (5)"),
    ("negative min", {"replicas": {"min": -1, "max": 2}}, "spec.replicas.min", "at least 0"),
    ("fractional max", {"replicas": {"max": 2.5}}, "spec.replicas.max", "must be an integer"),
    ("replicas without max", {"replicas": {"min": 1}}, "spec.replicas.max", "is required"),
    ("zero cost", {"budget": {"costPerHour": 0}}, "spec.budget.costPerHour", "greater than 0"),
    ("bad tier", {"placement": {"tiers": ["edge", "moon"]}}, "spec.placement.tiers[1]", "edge, fog, cloud"),
    ("bad class", {"placement": {"nodeClasses": ["qpu"]}}, "spec.placement.nodeClasses[0]", "mcu, cpu, gpu, tpu"),
    ("empty regions", {"placement": {"regions": []}}, "spec.placement.regions", "non-empty list"),
    ("duplicate region", {"placement": {"regions": ["a", "a"]}}, "spec.placement.regions[1]", "duplicate"),
    ("preset with capitals", {"metrics": {"preset": "OTel"}}, "spec.metrics.preset", "lower-case"),
    ("unknown query", {"metrics": {"queries": {"p50Seconds": "x"}}}, "spec.metrics.queries.p50Seconds", "unknown"),
    ("blank query", {"metrics": {"queries": {"p99Seconds": "  "}}}, "spec.metrics.queries.p99Seconds", "blanks"),
    ("query not a string", {"metrics": {"queries": {"requestsPerSecond": 5}}},
     "spec.metrics.queries.requestsPerSecond", "string"),
    ("long query", {"metrics": {"queries": {"p95Seconds": "x" * 2001}}}, "spec.metrics.queries.p95Seconds", "2000"),
    ("unknown autonomy", {"autonomy": "yolo"}, "spec.autonomy", "auto, approve, observe"),
    ("zero priority", {"priority": 0}, "spec.priority", "greater than 0"),
    ("canary fraction above 1", {"rollout": {"canaryFraction": 1.5}}, "spec.rollout.canaryFraction", "at most 1"),
    ("negative shadow", {"rollout": {"shadowSeconds": -1}}, "spec.rollout.shadowSeconds", "at least 0"),
    ("StatefulSet target", {"targetRef": {"name": "x", "kind": "StatefulSet"}}, "spec.targetRef.kind", "Deployment"),
    ("empty target name", {"targetRef": {"name": ""}}, "spec.targetRef.name", "non-empty"),
    ("typo in a field", {"replicaz": {"max": 3}}, "spec.replicaz", "unknown field"),
    ("typo inside slo", {"slo": {"p95Ms": 1, "p99Ms": 2, "p90Ms": 1}}, "spec.slo.p90Ms", "unknown field"),
    ("template with capitals", {"workload": {"template": "Web"}}, "spec.workload.template", "lower-case"),
    ("infinite p99", {"slo": {"p95Ms": 1, "p99Ms": math.inf}}, "spec.slo.p99Ms", "finite"),
]


@pytest.mark.parametrize(("what", "spec", "path", "message"), BAD, ids=[b[0] for b in BAD])
def test_a_bad_field_is_named(what: str, spec: dict[str, Any], path: str, message: str) -> None:
    with pytest.raises(IntentError) as e:
        parse_intent(minimal(**spec))
    assert e.value.field_path == path
    assert str(e.value).startswith(f"{path}: ")
    assert message in str(e.value)


def test_no_spec_is_named() -> None:
    assert field_of({"metadata": {"name": "x"}}) == "spec"
    assert field_of({"spec": "nope"}) == "spec"


def test_defaults_when_optional_fields_are_absent() -> None:
    intent = parse_intent(minimal())
    assert intent.replicas is None
    assert intent.placement.tiers is intent.placement.regions is intent.placement.node_classes is None
    assert intent.budget.cost_per_hour is intent.budget.energy_cap_w is None
    assert (intent.tenant, intent.priority, intent.autonomy, intent.template) == ("default", 1.0, Autonomy.AUTO, None)
    assert intent.namespace == "shop"


@given(p95=st.floats(allow_nan=True, allow_infinity=True), p99=st.floats(allow_nan=True, allow_infinity=True))
def test_slo_is_accepted_exactly_when_ordered_and_in_range(p95: float, p99: float) -> None:
    ok = 0 < p95 <= p99 <= MAX_LATENCY_MS
    obj = minimal(slo={"p95Ms": p95, "p99Ms": p99})
    error = refusal(obj)
    assert (error is None) == ok, error
    if error is not None:
        assert error.field_path in ("spec.slo.p95Ms", "spec.slo.p99Ms")
    else:
        intent = parse_intent(obj)
        assert (intent.slo.p95_ms, intent.slo.p99_ms) == (p95, p99)


@given(low=st.integers(-5, 200), high=st.integers(-5, 200))
def test_replica_bounds_are_accepted_exactly_when_ordered(low: int, high: int) -> None:
    ok = 0 <= low <= high
    obj = minimal(replicas={"min": low, "max": high})
    error = refusal(obj)
    assert (error is None) == ok, error
    if error is not None:
        assert error.field_path in ("spec.replicas.min", "spec.replicas.max")
    else:
        assert parse_intent(obj).replicas == ReplicaBounds(low, high)


JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-10**6, 10**6) | st.floats() | st.text(max_size=8),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3),
    max_leaves=8,
)
SPEC_PATHS = [("slo",), ("slo", "p95Ms"), ("replicas",), ("replicas", "max"), ("placement",),
              ("placement", "tiers"), ("placement", "regions"), ("budget",), ("budget", "energyCapWatts"),
              ("rollout",), ("rollout", "canaryFraction"), ("tenant",), ("priority",), ("autonomy",),
              ("workload",), ("workload", "template"), ("targetRef",), ("targetRef", "name")]


@settings(max_examples=300, deadline=None)
@given(path=st.sampled_from(SPEC_PATHS), value=JSON)
def test_any_value_anywhere_is_parsed_or_refused_with_a_field_under_it(path: tuple[str, ...], value: Any) -> None:
    obj = minimal(replicas={"max": 3}, placement={"tiers": ["edge"], "regions": ["r"]}, budget={"energyCapWatts": 5},
                  rollout={"canaryFraction": 0.5}, workload={"template": "web"})
    node = obj["spec"]
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    error = refusal(obj)  # anything but IntentError propagates and fails the test
    if error is not None:
        parent = ("spec." + ".".join(path)).rsplit(".", 1)[0]
        assert error.field_path.startswith(parent), (error.field_path, path)
        assert str(error).startswith(error.field_path + ": ")


@given(tiers=st.sets(st.sampled_from(list(Tier)), min_size=1), classes=st.sets(st.sampled_from(list(NodeClass)),
       min_size=1), regions=st.lists(st.sampled_from(["region-0", "region-1", "eu"]), min_size=1, unique=True),
       tenant=st.sampled_from(["retail", "default", "a-b"]), autonomy=st.sampled_from(list(Autonomy)),
       priority=st.floats(0.01, 1000), low=st.integers(0, 10), extra=st.integers(0, 10))
def test_a_valid_spec_round_trips(tiers: set[Tier], classes: set[NodeClass], regions: list[str], tenant: str,
                                  autonomy: Autonomy, priority: float, low: int, extra: int) -> None:
    obj = minimal(placement={"tiers": [str(t) for t in tiers], "nodeClasses": [str(c) for c in classes],
                             "regions": regions}, tenant=tenant, autonomy=str(autonomy), priority=priority,
                  replicas={"min": low, "max": low + extra})
    original = copy.deepcopy(obj)
    intent = parse_intent(obj)
    assert obj == original  # parsing reads, never writes
    assert intent.placement.tiers == tiers
    assert intent.placement.node_classes == classes
    assert intent.placement.regions == tuple(regions)
    assert (intent.tenant, intent.autonomy, intent.priority) == (tenant, autonomy, priority)
    assert intent.replicas == ReplicaBounds(low, low + extra)


# ------------------------------------------------------------------------------------ cluster policy
@pytest.mark.parametrize(("spec", "path"), [
    ({"energyCapWatts": -1}, "spec.energyCapWatts"),
    ({"carbonCapGPerKwh": "low"}, "spec.carbonCapGPerKwh"),
    ({"tenantWeights": {"retail": 0}}, "spec.tenantWeights.retail"),
    ({"tenantWeights": ["retail"]}, "spec.tenantWeights"),
    ({"disruptionBudget": {"minAvailablePct": 101}}, "spec.disruptionBudget.minAvailablePct"),
    ({"rateLimits": {"migrationsPerMinute": 1.5}}, "spec.rateLimits.migrationsPerMinute"),
    ({"rateLimits": {"quarantinesPerHour": -1}}, "spec.rateLimits.quarantinesPerHour"),
    ({"maxReplicasPerIntent": -3}, "spec.maxReplicasPerIntent"),
    ({"energyCap": 5}, "spec.energyCap"),
])
def test_a_bad_policy_field_is_named(spec: dict[str, Any], path: str) -> None:
    with pytest.raises(IntentError) as e:
        parse_orchestration_policy({"metadata": {"name": "default"}, "spec": spec})
    assert e.value.field_path == path


def test_an_empty_policy_limits_nothing() -> None:
    policy = parse_orchestration_policy({"metadata": {"name": "default"}})
    assert policy == OrchestrationPolicy()
    assert shield_policy(policy) == ShieldPolicy()
    assert policy.min_available_replicas(10) == 0


@given(pct=st.floats(0, 100), replicas=st.integers(0, 500))
def test_min_available_replicas_is_the_smallest_count_at_the_share(pct: float, replicas: int) -> None:
    k = OrchestrationPolicy(min_available_pct=pct).min_available_replicas(replicas)
    assert 0 <= k <= replicas
    if replicas:
        assert k / replicas >= pct / 100 - 1e-6
        assert k == 0 or (k - 1) / replicas < pct / 100


# -------------------------------------------------------------------------------- policy-level rules
def intent_with(**spec: Any) -> Intent:
    return parse_intent(minimal(**spec))


def test_replicas_above_the_policy_cap_are_refused() -> None:
    policy = OrchestrationPolicy(max_replicas_per_intent=10)
    assert validate_intent(intent_with(replicas={"max": 10}), policy) == []
    (error,) = validate_intent(intent_with(replicas={"max": 11}), policy)
    assert error.field_path == "spec.replicas.max"
    assert "11" in error.message
    assert "maxReplicasPerIntent = 10" in error.message
    assert validate_intent(intent_with(), policy) == []  # no bounds asked: nothing above the cap


def test_a_tenant_without_a_weight_is_refused_once_the_policy_lists_tenants() -> None:
    policy = OrchestrationPolicy(tenant_weights={"retail": 2.0})
    assert validate_intent(intent_with(tenant="retail"), policy) == []
    assert validate_intent(intent_with(tenant="default"), policy) == []
    (error,) = validate_intent(intent_with(tenant="retial"), policy)
    assert str(error).startswith("spec.tenant: tenant 'retial' has no weight")
    assert validate_intent(intent_with(tenant="anyone"), OrchestrationPolicy()) == []


def test_an_energy_cap_above_the_clusters_is_refused() -> None:
    policy = OrchestrationPolicy(energy_cap_w=1000.0)
    assert validate_intent(intent_with(budget={"energyCapWatts": 1000}), policy) == []
    (error,) = validate_intent(intent_with(budget={"energyCapWatts": 1500}), policy)
    assert error.field_path == "spec.budget.energyCapWatts"
    assert validate_intent(intent_with(budget={"energyCapWatts": 1e9}), OrchestrationPolicy()) == []


def test_regions_must_be_where_nodes_are() -> None:
    sites = sites_for(300)  # three regions
    assert {s.region for s in sites} == {"region-0", "region-1", "region-2"}
    assert validate_intent(intent_with(placement={"regions": ["region-2"]}), None, sites) == []
    errors = validate_intent(intent_with(placement={"regions": ["region-1", "mars", "region-9"]}), None, sites)
    assert [e.field_path for e in errors] == ["spec.placement.regions[1]", "spec.placement.regions[2]"]
    assert "region-0, region-1, region-2" in errors[0].message


def test_a_placement_no_node_satisfies_is_refused() -> None:
    sites = [NodeSite("region-0", Tier.EDGE, NodeClass.CPU), NodeSite("region-1", Tier.CLOUD, NodeClass.GPU)]
    assert validate_intent(intent_with(placement={"tiers": ["cloud"], "nodeClasses": ["gpu"]}), None, sites) == []
    (error,) = validate_intent(intent_with(placement={"regions": ["region-0"], "nodeClasses": ["gpu"]}), None, sites)
    assert error.field_path == "spec.placement"
    assert "regions region-0" in error.message
    assert "nodeClasses gpu" in error.message


def test_require_attestation_is_refused_until_something_enforces_it() -> None:
    assert intent_with(placement={"requireAttestation": False}).placement.require_attestation is False
    with pytest.raises(IntentError) as refused:
        parse_intent(minimal(placement={"requireAttestation": True}))
    assert refused.value.field_path == "spec.placement.requireAttestation"
    assert "minTrust" in str(refused.value)


def test_node_rules_are_skipped_without_nodes() -> None:
    intent = intent_with(placement={"regions": ["nowhere"]})
    assert validate_intent(intent, None, None) == []
    assert validate_intent(intent, None, []) == []


def test_unknown_templates_are_refused_when_templates_are_known() -> None:
    intent = intent_with(workload={"template": "quantum"})
    assert validate_intent(intent, None) == []
    (error,) = validate_intent(intent, None, known_templates=TEMPLATES)
    assert error.field_path == "spec.workload.template"
    assert "web" in error.message


def test_node_sites_from_labels_match_the_mock_kubelets_nodes() -> None:
    topo = build_topology(topology_for_nodes(40), np.random.default_rng(1))
    for i, node in enumerate(topo.nodes):
        assert NodeSite.from_labels(labels(node, f"n{i}")) == NodeSite.from_node(node)
    assert NodeSite.from_labels({"topology.kubernetes.io/region": "r", "kubeagora.io/tier": "moon"}) == NodeSite(
        "r", None, None)


def test_a_node_without_labels_fails_every_constraint_but_none() -> None:
    bare = NodeSite(None, None, None)
    assert intent_with().placement.allows(bare)
    assert not intent_with(placement={"tiers": ["edge", "fog", "cloud"]}).placement.allows(bare)


# --------------------------------------------------------------------------------------- mapping
def test_service_from_intent_takes_the_intents_targets_and_the_templates_profile() -> None:
    intent = parse_intent(example("OrchestrationIntent"))
    web = template_service("web")
    svc = service_from_intent(intent, "checkout", web)
    assert svc.name == "checkout"
    assert (svc.slo_p95_ms, svc.slo_p99_ms) == (150.0, 250.0)
    assert (svc.min_replicas, svc.max_replicas) == (1, 20)
    assert svc.allowed_regions == ("region-0",)
    assert (svc.tenant, svc.priority_weight) == ("retail", 1.0)
    assert svc.service_time_ms == web.service_time_ms
    assert svc.cpu_request == web.cpu_request
    assert svc.concurrency == web.concurrency
    assert svc.cold_start_s == web.cold_start_s


def test_service_from_intent_keeps_the_templates_bounds_and_residency_when_the_intent_has_none() -> None:
    llm = template_service("llm")
    svc = service_from_intent(intent_with(), "chat", llm)
    assert (svc.min_replicas, svc.max_replicas) == (llm.min_replicas, llm.max_replicas) == (1, 16)
    assert svc.allowed_regions is None
    assert svc.origin_region == llm.origin_region


def test_node_classes_narrow_where_the_service_runs() -> None:
    llm = template_service("llm")
    svc = service_from_intent(intent_with(placement={"nodeClasses": ["tpu", "cpu"]}), "chat", llm)
    assert set(svc.service_time_ms) == {NodeClass.TPU}
    assert svc.accelerator_affinity is None  # the template prefers gpu, which the intent rules out
    with pytest.raises(IntentError) as e:
        service_from_intent(intent_with(placement={"nodeClasses": ["cpu"]}), "chat", llm)
    assert e.value.field_path == "spec.placement.nodeClasses"
    assert "gpu, tpu" in str(e.value)


def test_residency_moves_the_users_to_an_allowed_region() -> None:
    svc = service_from_intent(intent_with(placement={"regions": ["region-1"]}), "x", template_service("web"))
    assert svc.allowed_regions == ("region-1",)
    assert svc.origin_region == "region-1"


def test_shield_policy_from_a_orchestration_policy() -> None:
    policy = parse_orchestration_policy(example("OrchestrationPolicy"))
    shield = shield_policy(policy)
    assert shield.max_power_w == 50000.0
    # 2 migrations a minute over the shield's 300 s window; min(2 quarantines, 10 privileged) an hour
    assert shield.max_disruptions_cluster == 10
    assert shield.max_quarantines_per_window == 2
    assert (shield.safe_utilisation, shield.min_ready_replicas) == (ShieldPolicy().safe_utilisation, 1)


def test_shield_policy_keeps_the_base_where_the_policy_is_silent_and_scales_rates_to_its_windows() -> None:
    base = ShieldPolicy(safe_utilisation=0.5, disruption_window_s=120.0, privileged_window_s=7200.0,
                        max_power_w=7.0)
    shield = shield_policy(OrchestrationPolicy(rate_limits=RateLimits(migrations_per_minute=3,
                                                                privileged_actions_per_hour=1)), base)
    assert shield.safe_utilisation == 0.5
    assert shield.max_power_w == 7.0
    assert shield.max_disruptions_cluster == 6
    assert shield.max_quarantines_per_window == 2
    assert shield_policy(OrchestrationPolicy(rate_limits=RateLimits(quarantines_per_hour=0)), base) \
        .max_quarantines_per_window == 0


def _rollout() -> Rollout:
    return Rollout("r1", (), Stage.PROPOSED, (), ("checkout",), risk=0.0)


@pytest.mark.parametrize(("autonomy", "stage"), [
    ("auto", Stage.SHADOW), ("approve", Stage.AWAITING_APPROVAL), ("observe", Stage.AWAITING_APPROVAL)])
def test_autonomy_decides_whether_a_harmless_action_waits_for_a_person(autonomy: str, stage: Stage) -> None:
    policy = rollout_policy(intent_with(autonomy=autonomy))
    assert screen(_rollout(), 0.0, [], None, policy, risk=0.0).stage is stage


def test_rollout_policy_takes_the_intents_pacing() -> None:
    base = RolloutPolicy(approval_risk=0.3, cooldown_s=99.0)
    policy = rollout_policy(intent_with(rollout={"shadowSeconds": 5, "canarySeconds": 7, "canaryFraction": 0.5}),
                            base)
    assert (policy.shadow_s, policy.canary_s, policy.canary_fraction) == (5.0, 7.0, 0.5)
    assert (policy.approval_risk, policy.cooldown_s) == (0.3, 99.0)
    assert rollout_policy(intent_with(autonomy="approve"), base).approval_risk == APPROVE_EVERY_RISK
