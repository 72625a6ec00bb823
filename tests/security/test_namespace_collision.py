"""Attack: a tenant names a Deployment like another tenant's to capture or unmanage its service.

A tenant who may create Deployments and intents only in its own namespace (``aaa-attacker``: sorted
before the victim's ``shop``) creates ``checkout`` with the same pod labels as ``shop/checkout`` and
an intent for it. The operator must keep managing ``shop/checkout`` on its own intent, read its
latency from its own series only, and enact on it only what was decided for it.
"""

from __future__ import annotations

import pytest
from tests.unit.operator_objects import by_key, deployment, intent, node, pod

from kubeagora.model import Scale
from kubeagora.operator import adapter, enact
from kubeagora.operator.metric_presets import PRESETS
from kubeagora.operator.metrics_source import parse_services, service_queries

VICTIM, ATTACKER = "shop", "aaa-attacker"


def world() -> tuple[list[dict[str, object]], dict[str, dict[str, object]], list[dict[str, object]]]:
    victim = deployment("checkout", namespace=VICTIM, replicas=3)
    rogue = deployment("checkout", namespace=ATTACKER, replicas=1)
    intents = [intent("checkout", namespace=VICTIM), intent("grab", target="checkout", namespace=ATTACKER)]
    pods = [*(pod(f"checkout-{i}", "checkout", "cloud-cpu-0", namespace=VICTIM) for i in range(3)),
            pod("checkout-x", "checkout", "cloud-cpu-0", namespace=ATTACKER)]
    return intents, by_key([victim, rogue]), pods


def test_a_same_named_deployment_elsewhere_neither_captures_nor_unmanages_the_victims_service() -> None:
    intents, deployments, _ = world()
    bound, unbound = adapter.bind(intents, deployments, ["region-0"])
    assert unbound == []  # before the fix: shop/checkout was NotManaged ("managed by another intent")
    victim = next(b for b in bound if b.namespace == VICTIM)
    rogue = next(b for b in bound if b.namespace == ATTACKER)
    assert (victim.intent, victim.deployment) == ("checkout", "checkout")
    assert victim.service.name != rogue.service.name


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_the_attackers_series_do_not_mix_into_the_victims_signals(preset: str) -> None:
    # what Prometheus answers when both tenants' workloads export under the same Deployment name
    p = PRESETS[preset]

    def series(value: float, namespace: str) -> dict[str, object]:
        return {"metric": {p.namespace_label: namespace, p.workload_label: "checkout", "service": "checkout"},
                "value": [1.7e9, str(value)]}

    results = {"offered": [series(100.0, VICTIM), series(5000.0, ATTACKER)],
               "p99": [series(0.080, VICTIM), series(9.0, ATTACKER)]}
    signals = parse_services(results, p)
    intents, deployments, _ = world()
    bound, _ = adapter.bind(intents, deployments, ["region-0"])
    victim = next(b for b in bound if b.namespace == VICTIM)
    mine = signals[victim.service.name]
    assert mine.offered_rps == 100.0
    assert mine.p99_ms == 80.0
    # and the queries keep tenants apart: every aggregation keeps the namespace
    for promql in service_queries(p).values():
        assert f"by ({p.namespace_label}, {p.workload_label}" in promql, promql


def test_an_action_decided_for_the_victim_scales_the_victims_deployment_only() -> None:
    intents, deployments, pods = world()
    bound, _ = adapter.bind(intents, deployments, ["region-0"])
    by_service = {b.service.name: b for b in bound}
    victim = next(b for b in bound if b.namespace == VICTIM)
    nodes = {"cloud-cpu-0": node("cloud-cpu-0")}
    requests, skipped = enact.plan([Scale(victim.service.name, 5, "burst")], by_service, deployments, pods, nodes)
    assert skipped == []
    assert [r.path for r in requests] == [enact.scale_path(VICTIM, "checkout")]
    assert requests[0].service == victim.service.name
