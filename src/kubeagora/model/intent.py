"""OrchestrationIntent and OrchestrationPolicy as frozen values, parsed from their Kubernetes objects.

`parse_intent` and `parse_orchestration_policy` check what the CRD schema checks (types, enums, bounds, the
cross-field rules), so a file is judged the same with or without an API server; `validate_intent`
adds the rules that need the cluster's guardrails or its nodes (caps, tenants, data residency). Every
problem is reported as a field path and a sentence (`spec.slo.p99Ms: must be at least spec.slo.p95Ms
(150)`), which is what a person needs to fix the YAML.

The mapping functions at the end turn an intent and a policy into the knobs the rest of kubeagora
already has: the simulator's `Service`, the shield's `ShieldPolicy`, the rollout's `RolloutPolicy`.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import TYPE_CHECKING, Any, TypeVar

from kubeagora.model.cluster import Node, NodeClass, Service, Tier

if TYPE_CHECKING:  # the decision layer imports the model; the model imports it only where it is used
    from kubeagora.decision.rollout import RolloutPolicy
    from kubeagora.decision.shield import ShieldPolicy

GROUP = "kubeagora.io"
VERSION = "v1alpha1"
INTENT_KIND = "OrchestrationIntent"
ORCHESTRATION_POLICY_KIND = "OrchestrationPolicy"
DEFAULT_POLICY_NAME = "default"
"""The OrchestrationPolicy the operator enforces."""
DEFAULT_TENANT = "default"
"""The tenant an intent belongs to when it names none; always allowed, weight 1."""
MAX_LATENCY_MS = 3_600_000.0
MAX_REPLICAS = 100_000
DEFAULT_MAX_REPLICAS = 50
"""spec.replicas.max when spec.replicas is absent and no template says otherwise (the simulator's default)."""
APPROVE_EVERY_RISK = -1.0
"""A RolloutPolicy.approval_risk below any risk (0..1): every action waits for a person."""

_LABEL_TIER = "kubeagora.io/tier"
_LABEL_CLASS = "kubeagora.io/node-class"
_LABEL_REGION = "topology.kubernetes.io/region"


class Autonomy(StrEnum):
    """How much the agents may do on their own for one intent."""

    AUTO = "auto"
    """Actions that pass the shield and the twin are rolled out without a person."""
    APPROVE = "approve"
    """Every action waits for a person (AgentAction AwaitingApproval)."""
    OBSERVE = "observe"
    """Actions are proposed and recorded, never enacted."""


class IntentError(ValueError):
    """A field of an intent or policy is wrong; `str()` names the field and what is wrong with it."""

    def __init__(self, field_path: str, message: str) -> None:
        super().__init__(f"{field_path}: {message}")
        self.field_path = field_path
        self.message = message


@dataclass(frozen=True, slots=True)
class FieldError:
    """One policy-level problem with an intent (validate_intent returns a list of these)."""

    field_path: str
    message: str

    def __str__(self) -> str:
        return f"{self.field_path}: {self.message}"


# ------------------------------------------------------------------------------------------ values
@dataclass(frozen=True, slots=True)
class TargetRef:
    """The workload an intent is about, in the intent's own namespace."""

    name: str
    kind: str = "Deployment"
    api_version: str = "apps/v1"


@dataclass(frozen=True, slots=True)
class Slo:
    p95_ms: float
    p99_ms: float


@dataclass(frozen=True, slots=True)
class ReplicaBounds:
    min_replicas: int
    max_replicas: int


@dataclass(frozen=True, slots=True)
class Budget:
    """Caps for one workload; None = no cap."""

    cost_per_hour: float | None = None
    energy_cap_w: float | None = None


@dataclass(frozen=True, slots=True)
class Placement:
    """Where replicas may run; None on a dimension = anywhere on it."""

    tiers: frozenset[Tier] | None = None
    regions: tuple[str, ...] | None = None
    """Data residency: replicas only in these regions."""
    node_classes: frozenset[NodeClass] | None = None
    """Accelerators are used only when gpu or tpu is listed."""
    min_trust: float | None = None
    """Only nodes the operator trusts at least this much (0..1, from attestation and cross-checks)."""
    require_attestation: bool = False
    """Only nodes whose last attestation the operator verified."""

    def allows(self, site: NodeSite) -> bool:
        """Whether a replica may run on a node at this site (a node without a label fails a constraint on it)."""
        return (
            (self.tiers is None or site.tier in self.tiers)
            and (self.regions is None or site.region in self.regions)
            and (self.node_classes is None or site.node_class in self.node_classes)
        )


@dataclass(frozen=True, slots=True)
class RolloutSettings:
    """Pacing of shadow → canary → full for this workload's actions."""

    shadow_s: float = 30.0
    canary_s: float = 60.0
    canary_fraction: float = 0.25


@dataclass(frozen=True, slots=True)
class MetricsSource:
    """Where the operator reads this workload's load and latency (``spec.metrics``)."""

    preset: str | None = None
    """A preset of standard series by name (otel, istio, ...); None: the operator's default."""
    queries: Mapping[str, str] = field(default_factory=dict, hash=False)
    """Custom PromQL by signal (requestsPerSecond, errorsPerSecond, p95Seconds, p99Seconds), each
    returning one sample; it replaces the preset's query for that signal."""


@dataclass(frozen=True, slots=True)
class Intent:
    """One OrchestrationIntent: what a Deployment needs and how far the agents may go."""

    name: str
    namespace: str
    target: TargetRef
    slo: Slo
    replicas: ReplicaBounds | None = None
    """None: the workload template's bounds (or 1..DEFAULT_MAX_REPLICAS)."""
    budget: Budget = Budget()
    placement: Placement = Placement()
    tenant: str = DEFAULT_TENANT
    priority: float = 1.0
    rollout: RolloutSettings = RolloutSettings()
    autonomy: Autonomy = Autonomy.AUTO
    template: str | None = None
    """The catalog template (web, api, llm, ...) the twin simulates this workload as."""
    metrics: MetricsSource = MetricsSource()


@dataclass(frozen=True, slots=True)
class RateLimits:
    """Caps on disruptive and privileged actions; None = the shield's default."""

    migrations_per_minute: int | None = None
    quarantines_per_hour: int | None = None
    privileged_actions_per_hour: int | None = None


@dataclass(frozen=True, slots=True)
class Approvers:
    """Who may answer AgentActions awaiting a person in some namespaces (besides whom RBAC lets)."""

    namespaces: tuple[str, ...]
    users: frozenset[str] = frozenset()
    groups: frozenset[str] = frozenset()

    def admit(self, namespace: str, user: str, groups: Iterable[str]) -> bool:
        return namespace in self.namespaces and (user in self.users or not self.groups.isdisjoint(groups))


@dataclass(frozen=True, slots=True)
class TenantSigning:
    """A tenant's intent-signing keys and whether its intents must be signed."""

    public_keys: tuple[str, ...] = ()
    """ed25519 public keys, PEM (``openssl pkey -pubout``); any of them may sign."""
    required: bool = False


@dataclass(frozen=True, slots=True)
class IntentSigning:
    """Which intents must carry a valid signature (``kubeagora.io/signature``) and whose keys verify it."""

    require_all: bool = False
    """Every intent must be signed by a key of its tenant."""
    tenants: Mapping[str, TenantSigning] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class OrchestrationPolicy:
    """The cluster's guardrails (a OrchestrationPolicy object); None = no limit from the policy."""

    name: str = DEFAULT_POLICY_NAME
    energy_cap_w: float | None = None
    carbon_cap_g_per_kwh: float | None = None
    max_replicas_per_intent: int | None = None
    tenant_weights: Mapping[str, float] = field(default_factory=dict)
    min_available_pct: float | None = None
    rate_limits: RateLimits = RateLimits()
    max_priority: float | None = None
    """The highest spec.priority any intent gets (a tenant's own cap overrides it)."""
    tenant_priority_caps: Mapping[str, float] = field(default_factory=dict)
    tenant_namespaces: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    """A tenant listed here may be named only by intents in these namespaces."""
    approvers: tuple[Approvers, ...] = ()

    def priority_cap(self, tenant: str) -> float | None:
        return self.tenant_priority_caps.get(tenant, self.max_priority)

    def may_claim(self, namespace: str, tenant: str) -> bool:
        """Whether an intent in ``namespace`` may name ``tenant``."""
        allowed = self.tenant_namespaces.get(tenant)
        return allowed is None or namespace in allowed

    def may_approve(self, namespace: str, user: str, groups: Iterable[str]) -> bool:
        """Whether the policy names this user (or one of the groups) an approver in ``namespace``."""
        groups = tuple(groups)
        return any(a.admit(namespace, user, groups) for a in self.approvers)
    intent_signing: IntentSigning = IntentSigning()

    def min_available_replicas(self, replicas: int) -> int:
        """Ready replicas of a workload with `replicas` that a disruptive action must leave."""
        if self.min_available_pct is None or replicas <= 0:
            return 0
        return math.ceil(self.min_available_pct / 100.0 * replicas - 1e-9)

    def tenant_weight(self, tenant: str) -> float:
        return float(self.tenant_weights.get(tenant, 1.0))


@dataclass(frozen=True, slots=True)
class NodeSite:
    """Where a node is, as placement sees it (None where the node has no such label)."""

    region: str | None
    tier: Tier | None
    node_class: NodeClass | None

    @classmethod
    def from_node(cls, node: Node) -> NodeSite:
        return cls(node.region, node.tier, node.node_class)

    @classmethod
    def from_labels(cls, labels: Mapping[str, str]) -> NodeSite:
        """From a Kubernetes Node's labels (the mock kubelet's, or a real node labelled the same way)."""
        tier = labels.get(_LABEL_TIER)
        node_class = labels.get(_LABEL_CLASS)
        return cls(
            labels.get(_LABEL_REGION),
            Tier(tier) if tier in _TIERS else None,
            NodeClass(node_class) if node_class in _CLASSES else None,
        )


_TIERS = frozenset(t.value for t in Tier)
_CLASSES = frozenset(c.value for c in NodeClass)


# ------------------------------------------------------------------------------------ field readers
T = TypeVar("T")


def _mapping(obj: Any, path: str) -> Mapping[str, Any]:
    if not isinstance(obj, Mapping):
        raise IntentError(path, f"must be an object, got {_show(obj)}")
    return obj


def _only_known(obj: Mapping[str, Any], path: str, known: Collection[str]) -> None:
    for key in obj:
        if key not in known:
            raise IntentError(f"{path}.{key}", f"unknown field (known: {', '.join(sorted(known))})")


def _required(obj: Mapping[str, Any], key: str, path: str) -> Any:
    if obj.get(key) is None:
        raise IntentError(f"{path}.{key}", "is required")
    return obj[key]


def _number(value: Any, path: str, *, above: float | None = None, at_least: float | None = None,
            at_most: float | None = None) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise IntentError(path, f"must be a number, got {_show(value)}")
    x = float(value)
    if not math.isfinite(x):
        raise IntentError(path, f"must be a finite number, got {_show(value)}")
    if above is not None and x <= above:
        raise IntentError(path, f"must be greater than {above:g}, got {x:g}")
    if at_least is not None and x < at_least:
        raise IntentError(path, f"must be at least {at_least:g}, got {x:g}")
    if at_most is not None and x > at_most:
        raise IntentError(path, f"must be at most {at_most:g}, got {x:g}")
    return x


def _integer(value: Any, path: str, *, at_least: int = 0, at_most: int = MAX_REPLICAS) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise IntentError(path, f"must be an integer, got {_show(value)}")
    if value < at_least:
        raise IntentError(path, f"must be at least {at_least}, got {value}")
    if value > at_most:
        raise IntentError(path, f"must be at most {at_most}, got {value}")
    return value


def _string(value: Any, path: str, *, max_length: int = 253) -> str:
    if not isinstance(value, str) or not value:
        raise IntentError(path, f"must be a non-empty string, got {_show(value)}")
    if len(value) > max_length:
        raise IntentError(path, f"must be at most {max_length} characters long")
    return value


def _choice(value: Any, path: str, choices: type[T], allowed: Collection[str]) -> T:
    if not isinstance(value, str) or value not in allowed:
        raise IntentError(path, f"must be one of {', '.join(allowed)}, got {_show(value)}")
    return choices(value)  # type: ignore[call-arg]


def _list(value: Any, path: str) -> list[Any]:
    if not isinstance(value, list | tuple) or not value:
        raise IntentError(path, f"must be a non-empty list, got {_show(value)}")
    seen: set[Any] = set()
    for i, item in enumerate(value):
        if isinstance(item, str) and item in seen:
            raise IntentError(f"{path}[{i}]", f"duplicate {item!r}")
        seen.add(item if isinstance(item, str) else id(item))
    return list(value)


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


# ------------------------------------------------------------------------------------------ parsing
_SPEC_FIELDS = ("targetRef", "slo", "replicas", "budget", "placement", "tenant", "priority", "rollout",
                "autonomy", "workload", "metrics")
METRIC_QUERIES = ("requestsPerSecond", "errorsPerSecond", "p95Seconds", "p99Seconds")
"""The signals ``spec.metrics.queries`` may give as PromQL."""
MAX_QUERY_LENGTH = 2000
_TEMPLATE_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789-")


def parse_intent(obj: Mapping[str, Any]) -> Intent:
    """An OrchestrationIntent object (as the API server or a YAML file has it) as an `Intent`.

    Raises `IntentError` naming the first field that breaks the CRD's rules.
    """
    obj = _mapping(obj, "object")
    meta = _mapping(obj.get("metadata") or {}, "metadata")
    name = str(meta.get("name") or meta.get("generateName") or "")
    namespace = str(meta.get("namespace") or "default")
    if obj.get("spec") is None:
        raise IntentError("spec", "is required")
    spec = _mapping(obj["spec"], "spec")
    _only_known(spec, "spec", _SPEC_FIELDS)

    ref = _mapping(_required(spec, "targetRef", "spec"), "spec.targetRef")
    _only_known(ref, "spec.targetRef", ("apiVersion", "kind", "name"))
    api_version = ref.get("apiVersion", "apps/v1")
    if api_version != "apps/v1":
        raise IntentError("spec.targetRef.apiVersion", f"must be apps/v1, got {_show(api_version)}")
    kind = ref.get("kind", "Deployment")
    if kind != "Deployment":
        raise IntentError("spec.targetRef.kind", f"must be Deployment, got {_show(kind)}")
    target = TargetRef(_string(_required(ref, "name", "spec.targetRef"), "spec.targetRef.name"), kind, api_version)

    slo_obj = _mapping(_required(spec, "slo", "spec"), "spec.slo")
    _only_known(slo_obj, "spec.slo", ("p95Ms", "p99Ms"))
    p95 = _number(_required(slo_obj, "p95Ms", "spec.slo"), "spec.slo.p95Ms", above=0, at_most=MAX_LATENCY_MS)
    p99 = _number(_required(slo_obj, "p99Ms", "spec.slo"), "spec.slo.p99Ms", above=0, at_most=MAX_LATENCY_MS)
    if p99 < p95:
        raise IntentError("spec.slo.p99Ms", f"must be at least spec.slo.p95Ms ({p95:g})")

    return Intent(
        name=name,
        namespace=namespace,
        target=target,
        slo=Slo(p95, p99),
        replicas=_replicas(spec.get("replicas")),
        budget=_budget(spec.get("budget")),
        placement=_placement(spec.get("placement")),
        tenant=_string(spec.get("tenant", DEFAULT_TENANT), "spec.tenant", max_length=63),
        priority=_number(spec.get("priority", 1.0), "spec.priority", above=0, at_most=1000),
        rollout=_rollout(spec.get("rollout")),
        autonomy=_choice(spec.get("autonomy", Autonomy.AUTO.value), "spec.autonomy", Autonomy,
                         [a.value for a in Autonomy]),
        template=_template(spec.get("workload")),
        metrics=_metrics(spec.get("metrics")),
    )


def _replicas(value: Any) -> ReplicaBounds | None:
    if value is None:
        return None
    obj = _mapping(value, "spec.replicas")
    _only_known(obj, "spec.replicas", ("min", "max"))
    low = _integer(obj.get("min", 1), "spec.replicas.min")
    high = _integer(_required(obj, "max", "spec.replicas"), "spec.replicas.max")
    if high < low:
        raise IntentError("spec.replicas.max", f"must be at least spec.replicas.min ({low})")
    return ReplicaBounds(low, high)


def _budget(value: Any) -> Budget:
    if value is None:
        return Budget()
    obj = _mapping(value, "spec.budget")
    _only_known(obj, "spec.budget", ("costPerHour", "energyCapWatts"))
    cost, energy = obj.get("costPerHour"), obj.get("energyCapWatts")
    return Budget(
        None if cost is None else _number(cost, "spec.budget.costPerHour", above=0),
        None if energy is None else _number(energy, "spec.budget.energyCapWatts", above=0),
    )


def _placement(value: Any) -> Placement:
    if value is None:
        return Placement()
    obj = _mapping(value, "spec.placement")
    _only_known(obj, "spec.placement", ("tiers", "regions", "nodeClasses", "minTrust", "requireAttestation"))
    tiers = obj.get("tiers")
    min_trust = obj.get("minTrust")
    attested = obj.get("requireAttestation", False)
    if not isinstance(attested, bool):
        raise IntentError("spec.placement.requireAttestation", f"must be true or false, got {_show(attested)}")
    if attested:  # refused rather than accepted and ignored: a protection that silently does nothing is worse
        raise IntentError("spec.placement.requireAttestation",
                          "true is not enforced yet (no node publishes a verified attestation on a cluster); "
                          "use placement.minTrust, which the scheduler extender enforces")
    regions = obj.get("regions")
    classes = obj.get("nodeClasses")
    return Placement(
        None if tiers is None else frozenset(
            _choice(t, f"spec.placement.tiers[{i}]", Tier, [x.value for x in Tier])
            for i, t in enumerate(_list(tiers, "spec.placement.tiers"))),
        None if regions is None else tuple(
            _string(r, f"spec.placement.regions[{i}]", max_length=63)
            for i, r in enumerate(_list(regions, "spec.placement.regions"))),
        None if classes is None else frozenset(
            _choice(c, f"spec.placement.nodeClasses[{i}]", NodeClass, [x.value for x in NodeClass])
            for i, c in enumerate(_list(classes, "spec.placement.nodeClasses"))),
        None if min_trust is None else _number(min_trust, "spec.placement.minTrust", at_least=0, at_most=1),
        attested,
    )


def _rollout(value: Any) -> RolloutSettings:
    if value is None:
        return RolloutSettings()
    obj = _mapping(value, "spec.rollout")
    _only_known(obj, "spec.rollout", ("shadowSeconds", "canarySeconds", "canaryFraction"))
    d = RolloutSettings()
    return RolloutSettings(
        _number(obj.get("shadowSeconds", d.shadow_s), "spec.rollout.shadowSeconds", at_least=0, at_most=86400),
        _number(obj.get("canarySeconds", d.canary_s), "spec.rollout.canarySeconds", at_least=0, at_most=86400),
        _number(obj.get("canaryFraction", d.canary_fraction), "spec.rollout.canaryFraction", above=0, at_most=1),
    )


def _template(value: Any) -> str | None:
    if value is None:
        return None
    obj = _mapping(value, "spec.workload")
    _only_known(obj, "spec.workload", ("template",))
    if obj.get("template") is None:
        return None
    template = _string(obj["template"], "spec.workload.template", max_length=63)
    if not set(template) <= _TEMPLATE_CHARS:
        raise IntentError("spec.workload.template", f"must be a lower-case name like web or llm, got {_show(template)}")
    return template


def _metrics(value: Any) -> MetricsSource:
    if value is None:
        return MetricsSource()
    obj = _mapping(value, "spec.metrics")
    _only_known(obj, "spec.metrics", ("preset", "queries"))
    preset = None
    if obj.get("preset") is not None:
        preset = _string(obj["preset"], "spec.metrics.preset", max_length=63)
        if not set(preset) <= _TEMPLATE_CHARS:
            raise IntentError("spec.metrics.preset",
                              f"must be a lower-case name like otel or istio, got {_show(preset)}")
    queries: dict[str, str] = {}
    if obj.get("queries") is not None:
        raw = _mapping(obj["queries"], "spec.metrics.queries")
        _only_known(raw, "spec.metrics.queries", METRIC_QUERIES)
        for key in METRIC_QUERIES:
            if raw.get(key) is not None:
                query = _string(raw[key], f"spec.metrics.queries.{key}", max_length=MAX_QUERY_LENGTH)
                if not query.strip():
                    raise IntentError(f"spec.metrics.queries.{key}", "must be a PromQL expression, got blanks")
                queries[key] = query
    return MetricsSource(preset, queries)


_POLICY_FIELDS = ("energyCapWatts", "carbonCapGPerKwh", "maxReplicasPerIntent", "tenantWeights", "disruptionBudget",
                  "rateLimits", "maxPriority", "tenantPriorityCaps", "tenantNamespaces", "approvers", "intentSigning")
MAX_KEYS_PER_TENANT = 8
_PEM_PUBLIC_KEY = "-----BEGIN PUBLIC KEY-----"


def parse_orchestration_policy(obj: Mapping[str, Any]) -> OrchestrationPolicy:
    """A OrchestrationPolicy object as a `OrchestrationPolicy`; raises `IntentError` naming the first bad field."""
    obj = _mapping(obj, "object")
    meta = _mapping(obj.get("metadata") or {}, "metadata")
    spec = _mapping(obj.get("spec") or {}, "spec")
    _only_known(spec, "spec", _POLICY_FIELDS)

    def positive(key: str) -> float | None:
        value = spec.get(key)
        return None if value is None else _number(value, f"spec.{key}", above=0)

    cap = spec.get("maxReplicasPerIntent")
    weights = _mapping(spec.get("tenantWeights") or {}, "spec.tenantWeights")
    budget = _mapping(spec.get("disruptionBudget") or {}, "spec.disruptionBudget")
    _only_known(budget, "spec.disruptionBudget", ("minAvailablePct",))
    pct = budget.get("minAvailablePct")
    limits = _mapping(spec.get("rateLimits") or {}, "spec.rateLimits")
    _only_known(limits, "spec.rateLimits", ("migrationsPerMinute", "quarantinesPerHour", "privilegedActionsPerHour"))

    def rate(key: str) -> int | None:
        value = limits.get(key)
        return None if value is None else _integer(value, f"spec.rateLimits.{key}", at_most=10_000)

    max_priority = spec.get("maxPriority")
    caps = _mapping(spec.get("tenantPriorityCaps") or {}, "spec.tenantPriorityCaps")
    tenant_namespaces = _mapping(spec.get("tenantNamespaces") or {}, "spec.tenantNamespaces")
    approvers = spec.get("approvers") or []
    if not isinstance(approvers, list):
        raise IntentError("spec.approvers", f"must be a list, got {_show(approvers)}")
    return OrchestrationPolicy(
        name=str(meta.get("name") or DEFAULT_POLICY_NAME),
        energy_cap_w=positive("energyCapWatts"),
        carbon_cap_g_per_kwh=positive("carbonCapGPerKwh"),
        max_replicas_per_intent=None if cap is None else _integer(cap, "spec.maxReplicasPerIntent"),
        tenant_weights={_string(t, "spec.tenantWeights", max_length=63):
                        _number(w, f"spec.tenantWeights.{t}", above=0) for t, w in weights.items()},
        min_available_pct=None if pct is None else _number(pct, "spec.disruptionBudget.minAvailablePct",
                                                           at_least=0, at_most=100),
        rate_limits=RateLimits(rate("migrationsPerMinute"), rate("quarantinesPerHour"),
                               rate("privilegedActionsPerHour")),
        max_priority=None if max_priority is None else _number(max_priority, "spec.maxPriority", above=0,
                                                               at_most=1000),
        tenant_priority_caps={_string(t, "spec.tenantPriorityCaps", max_length=63):
                              _number(c, f"spec.tenantPriorityCaps.{t}", above=0, at_most=1000)
                              for t, c in caps.items()},
        tenant_namespaces={_string(t, "spec.tenantNamespaces", max_length=63): tuple(
            _string(ns, f"spec.tenantNamespaces.{t}[{i}]", max_length=63)
            for i, ns in enumerate(_list(v, f"spec.tenantNamespaces.{t}"))) for t, v in tenant_namespaces.items()},
        approvers=tuple(_approvers(a, f"spec.approvers[{i}]") for i, a in enumerate(approvers)),
        intent_signing=_intent_signing(spec.get("intentSigning")),
    )


def _approvers(value: Any, path: str) -> Approvers:
    obj = _mapping(value, path)
    _only_known(obj, path, ("namespaces", "users", "groups"))
    namespaces = tuple(_string(ns, f"{path}.namespaces[{i}]", max_length=63)
                       for i, ns in enumerate(_list(_required(obj, "namespaces", path), f"{path}.namespaces")))
    users = frozenset(_string(u, f"{path}.users[{i}]") for i, u in enumerate(obj.get("users") or ()))
    groups = frozenset(_string(g, f"{path}.groups[{i}]") for i, g in enumerate(obj.get("groups") or ()))
    if not users and not groups:
        raise IntentError(path, "must name at least one of users or groups")
    return Approvers(namespaces, users, groups)


def _intent_signing(value: Any) -> IntentSigning:
    """spec.intentSigning: the keys are checked for shape here; that each is an ed25519 key, by the webhook."""
    if value is None:
        return IntentSigning()
    obj = _mapping(value, "spec.intentSigning")
    _only_known(obj, "spec.intentSigning", ("requireAll", "tenants"))
    require_all = obj.get("requireAll", False)
    if not isinstance(require_all, bool):
        raise IntentError("spec.intentSigning.requireAll", f"must be true or false, got {_show(require_all)}")
    tenants: dict[str, TenantSigning] = {}
    for name, raw in _mapping(obj.get("tenants") or {}, "spec.intentSigning.tenants").items():
        path = f"spec.intentSigning.tenants.{name}"
        _string(name, path, max_length=63)
        entry = _mapping(raw, path)
        _only_known(entry, path, ("publicKeys", "required"))
        keys = entry.get("publicKeys") or []
        if not isinstance(keys, list) or len(keys) > MAX_KEYS_PER_TENANT:
            raise IntentError(f"{path}.publicKeys", f"must be a list of at most {MAX_KEYS_PER_TENANT} PEM public keys")
        for i, key in enumerate(keys):
            if not isinstance(key, str) or not key.strip().startswith(_PEM_PUBLIC_KEY) or len(key) > 1024:
                raise IntentError(f"{path}.publicKeys[{i}]", "must be a PEM public key (-----BEGIN PUBLIC KEY-----, "
                                  "as `openssl pkey -pubout` writes it)")
        required = entry.get("required", False)
        if not isinstance(required, bool):
            raise IntentError(f"{path}.required", f"must be true or false, got {_show(required)}")
        tenants[name] = TenantSigning(tuple(keys), required)
    return IntentSigning(require_all, tenants)


# --------------------------------------------------------------------------------- policy-level rules
def validate_intent(intent: Intent, policy: OrchestrationPolicy | None, nodes: Iterable[NodeSite] | None = None,
                    known_templates: Collection[str] | None = None,
                    known_presets: Collection[str] | None = None) -> list[FieldError]:
    """What the cluster's guardrails and nodes say against an intent that is well-formed on its own.

    `nodes` None or empty skips the node rules (a cluster with no nodes yet tells nothing about regions);
    `known_templates` (`known_presets`) None skips the template (metrics preset) rule.
    """
    errors: list[FieldError] = []
    if policy is not None:
        cap = policy.max_replicas_per_intent
        if cap is not None and intent.replicas is not None and intent.replicas.max_replicas > cap:
            errors.append(FieldError("spec.replicas.max", f"{intent.replicas.max_replicas} is above the cluster cap "
                                     f"(OrchestrationPolicy {policy.name} maxReplicasPerIntent = {cap})"))
        if policy.tenant_weights and intent.tenant != DEFAULT_TENANT and intent.tenant not in policy.tenant_weights:
            known = ", ".join(sorted({DEFAULT_TENANT, *policy.tenant_weights}))
            errors.append(FieldError("spec.tenant", f"tenant {intent.tenant!r} has no weight in OrchestrationPolicy "
                                     f"{policy.name} (known: {known})"))
        if not policy.may_claim(intent.namespace, intent.tenant):
            allowed = ", ".join(policy.tenant_namespaces.get(intent.tenant, ()))
            errors.append(FieldError("spec.tenant", f"tenant {intent.tenant!r} may be named only in namespaces "
                                     f"{allowed} (OrchestrationPolicy {policy.name} tenantNamespaces)"))
        cap_priority = policy.priority_cap(intent.tenant)
        if cap_priority is not None and intent.priority > cap_priority:
            errors.append(FieldError("spec.priority", f"{intent.priority:g} is above tenant {intent.tenant!r}'s cap "
                                     f"(OrchestrationPolicy {policy.name}: {cap_priority:g})"))
        energy, cluster_energy = intent.budget.energy_cap_w, policy.energy_cap_w
        if energy is not None and cluster_energy is not None and energy > cluster_energy:
            errors.append(FieldError("spec.budget.energyCapWatts", f"{energy:g} W is above the cluster cap "
                                     f"(OrchestrationPolicy {policy.name} energyCapWatts = {cluster_energy:g} W)"))
    sites = list(nodes or ())
    if sites:
        errors.extend(_placement_errors(intent.placement, sites))
    if known_templates is not None and intent.template is not None and intent.template not in known_templates:
        errors.append(FieldError("spec.workload.template", f"unknown template {intent.template!r} "
                                 f"(known: {', '.join(sorted(known_templates))})"))
    preset = intent.metrics.preset
    if known_presets is not None and preset is not None and preset not in known_presets:
        errors.append(FieldError("spec.metrics.preset", f"unknown metrics preset {preset!r} "
                                 f"(known: {', '.join(sorted(known_presets))})"))
    return errors


def _placement_errors(placement: Placement, sites: list[NodeSite]) -> list[FieldError]:
    errors: list[FieldError] = []
    regions = sorted({s.region for s in sites if s.region is not None})
    for i, region in enumerate(placement.regions or ()):
        if region not in regions:
            errors.append(FieldError(f"spec.placement.regions[{i}]",
                                     f"no node is in region {region!r} (regions: {', '.join(regions) or 'none'})"))
    if not errors and not any(placement.allows(s) for s in sites):
        wanted = [f"{name} {', '.join(sorted(str(v) for v in values))}" for name, values in
                  (("tiers", placement.tiers), ("regions", placement.regions),
                   ("nodeClasses", placement.node_classes)) if values is not None]
        errors.append(FieldError("spec.placement", f"no node matches {'; '.join(wanted)}"))
    return errors


# ------------------------------------------------------------------------------------------ mapping
def service_from_intent(intent: Intent, name: str, template_service: Service) -> Service:
    """The simulator's `Service` for an intent's workload: the template's profile with the intent's SLOs,
    bounds, residency, allowed node classes, tenant and priority.

    Raises `IntentError` on spec.placement.nodeClasses when the template runs on none of the listed classes.
    """
    service_time = dict(template_service.service_time_ms)
    affinity = template_service.accelerator_affinity
    classes = intent.placement.node_classes
    if classes is not None:
        service_time = {c: ms for c, ms in service_time.items() if c in classes}
        if not service_time:
            runs_on = ", ".join(sorted(str(c) for c in template_service.service_time_ms))
            listed = ", ".join(sorted(str(c) for c in classes))
            raise IntentError("spec.placement.nodeClasses",
                              f"{name} runs only on {runs_on}, none of which is listed ({listed})")
        if affinity is not None and affinity not in classes:
            affinity = None
    regions = intent.placement.regions
    allowed = template_service.allowed_regions if regions is None else tuple(regions)
    origin = template_service.origin_region
    if allowed is not None and origin not in allowed:
        origin = allowed[0]  # its users are where its data may live
    bounds = intent.replicas
    return replace(
        template_service,
        name=name,
        service_time_ms=service_time,
        accelerator_affinity=affinity,
        slo_p95_ms=intent.slo.p95_ms,
        slo_p99_ms=intent.slo.p99_ms,
        tenant=intent.tenant,
        priority_weight=intent.priority,
        allowed_regions=allowed,
        origin_region=origin,
        min_replicas=template_service.min_replicas if bounds is None else bounds.min_replicas,
        max_replicas=template_service.max_replicas if bounds is None else bounds.max_replicas,
    )


def shield_policy(orchestration_policy: OrchestrationPolicy, base: ShieldPolicy | None = None) -> ShieldPolicy:
    """The shield's knobs under a OrchestrationPolicy; what the policy leaves out stays as in `base`.

    Rates become counts over the shield's own windows: migrations per minute × the disruption window
    (the shield counts migrations with the other disruptive actions), and the smaller of quarantines and
    privileged actions per hour (a quarantine is privileged) × the privileged window. The energy cap is
    the shield's power cap, the carbon cap its carbon cap, and minAvailablePct the share of a service's
    replicas a migration or quarantine must leave Ready.
    """
    from kubeagora.decision.shield import ShieldPolicy

    base = ShieldPolicy() if base is None else base
    limits = orchestration_policy.rate_limits
    changes: dict[str, Any] = {}
    if orchestration_policy.energy_cap_w is not None:
        changes["max_power_w"] = orchestration_policy.energy_cap_w
    if orchestration_policy.carbon_cap_g_per_kwh is not None:
        changes["max_carbon_g_per_kwh"] = orchestration_policy.carbon_cap_g_per_kwh
    if orchestration_policy.min_available_pct is not None:
        changes["min_available_fraction"] = orchestration_policy.min_available_pct / 100.0
    if limits.migrations_per_minute is not None:
        changes["max_disruptions_cluster"] = math.floor(limits.migrations_per_minute * base.disruption_window_s / 60.0)
    privileged = [r for r in (limits.quarantines_per_hour, limits.privileged_actions_per_hour) if r is not None]
    if privileged:
        changes["max_quarantines_per_window"] = math.floor(min(privileged) * base.privileged_window_s / 3600.0)
    return replace(base, **changes)


def rollout_policy(intent: Intent, base: RolloutPolicy | None = None) -> RolloutPolicy:
    """The rollout's pacing for an intent's actions; with autonomy approve or observe a person approves each
    (observe is enforced by the operator, which enacts nothing)."""
    from kubeagora.decision.rollout import RolloutPolicy

    base = RolloutPolicy() if base is None else base
    approval = base.approval_risk if intent.autonomy is Autonomy.AUTO else APPROVE_EVERY_RISK
    return replace(base, shadow_s=intent.rollout.shadow_s, canary_s=intent.rollout.canary_s,
                   canary_fraction=intent.rollout.canary_fraction, approval_risk=approval)
