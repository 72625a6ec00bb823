"""The admission handlers called directly (no API server): a refusal is a 422 naming the field, and
configure_admission wires a kopf WebhookServer with a usable self-signed certificate."""

from __future__ import annotations

import shutil
import ssl
import subprocess
from pathlib import Path
from typing import Any

import pytest

kopf = pytest.importorskip("kopf")

from kubeagora.model import NodeClass, NodeSite, Tier  # noqa: E402
from kubeagora.operator import admission  # noqa: E402

POLICY = {"default": [{"metadata": {"name": "default"},
                       "spec": {"maxReplicasPerIntent": 10, "tenantWeights": {"retail": 1}}}]}
SITES = {"sites": [NodeSite("region-0", Tier.CLOUD, NodeClass.CPU)]}


def body(**spec: Any) -> Any:
    base: dict[str, Any] = {"targetRef": {"name": "checkout"}, "slo": {"p95Ms": 150, "p99Ms": 250}}
    base.update(spec)
    return kopf.Body({"metadata": {"name": "checkout", "namespace": "default"}, "spec": base})


def review(new: Any, old: Any = None, operation: str = "CREATE", policies: Any = None) -> None:
    admission.validate_orchestration_intent(body=new, old=old, operation=operation,
                                            kubeagora_cluster_policies=POLICY if policies is None else policies,
                                            kubeagora_node_sites=SITES)


def refusal(new: Any, **kw: Any) -> Any:
    with pytest.raises(kopf.AdmissionError) as e:
        review(new, **kw)
    assert e.value.code == 422
    return str(e.value)


def test_a_good_intent_is_admitted() -> None:
    review(body(replicas={"max": 10}, tenant="retail", placement={"regions": ["region-0"]}))


@pytest.mark.parametrize(("spec", "message"), [
    ({"slo": {"p95Ms": 300, "p99Ms": 250}}, "spec.slo.p99Ms: must be at least spec.slo.p95Ms (300)"),
    ({"replicas": {"max": 11}}, "spec.replicas.max: 11 is above the cluster cap"),
    ({"tenant": "nobody"}, "spec.tenant: tenant 'nobody' has no weight"),
    ({"placement": {"regions": ["eu-1"]}}, "spec.placement.regions[0]: no node is in region 'eu-1'"),
    ({"workload": {"template": "quantum"}}, "spec.workload.template: unknown template 'quantum'"),
    ({"metrics": {"preset": "zipkin"}}, "spec.metrics.preset: unknown metrics preset 'zipkin'"),
])
def test_a_bad_intent_is_refused_naming_the_field(spec: dict[str, Any], message: str) -> None:
    assert message in refusal(body(**spec))


def test_every_problem_is_reported_at_once() -> None:
    text = refusal(body(replicas={"max": 11}, tenant="nobody"))
    assert "spec.replicas.max" in text
    assert "spec.tenant" in text


def test_an_update_that_leaves_the_spec_alone_is_admitted_even_when_the_policy_tightened() -> None:
    over = body(replicas={"max": 50})
    review(over, old=body(replicas={"max": 50}), operation="UPDATE")
    assert "spec.replicas.max" in refusal(over, old=body(replicas={"max": 9}), operation="UPDATE")


def test_without_a_policy_only_the_intents_own_rules_apply() -> None:
    review(body(replicas={"max": 500}, tenant="anyone"), policies={})


def test_a_policy_of_another_name_is_admitted_with_a_warning() -> None:
    warnings: list[str] = []
    policy = kopf.Body({"metadata": {"name": "staging"}, "spec": {"energyCapWatts": 5}})
    admission.validate_orchestration_policy(body=policy, name="staging", warnings=warnings, operation="CREATE")
    assert warnings == ["the operator enforces only the OrchestrationPolicy named 'default'; 'staging' has no effect"]
    bad = kopf.Body({"metadata": {"name": "default"}, "spec": {"energyCapWatts": -5}})
    with pytest.raises(kopf.AdmissionError, match=r"spec\.energyCapWatts"):
        admission.validate_orchestration_policy(body=bad, name="default", warnings=[], operation="CREATE")


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl tool")
def test_configure_admission_serves_https_with_a_certificate_for_the_host(tmp_path: Path) -> None:
    settings = kopf.OperatorSettings()
    admission.configure_admission(settings, host="127.0.0.1", port=19443, managed_name="x.kubeagora.io",
                                  cert_dir=tmp_path)
    server = settings.admission.server
    assert isinstance(server, kopf.WebhookServer)
    assert (server.host, server.addr, server.port) == ("127.0.0.1", "127.0.0.1", 19443)
    assert settings.admission.managed == "x.kubeagora.io"
    text = subprocess.run(["openssl", "x509", "-in", str(server.certfile), "-noout", "-text"],
                          capture_output=True, text=True, check=True).stdout
    assert "IP Address:127.0.0.1" in text
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(str(server.certfile), str(server.pkeyfile))  # the key matches the certificate


def test_configure_admission_refuses_what_the_api_server_would() -> None:
    settings = kopf.OperatorSettings()
    with pytest.raises(ValueError, match="dotted domain"):
        admission.configure_admission(settings, host="127.0.0.1", managed_name="kubeagora")
    with pytest.raises(ValueError, match="go together"):
        admission.configure_admission(settings, host="127.0.0.1", certfile=Path("c.crt"))


# ------------------------------------------------------------------------- other autoscalers on the Deployment
def _hpa(name: str, target: str, namespace: str = "default") -> Any:
    return {"metadata": {"name": name, "namespace": namespace},
            "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": target}}}


def _index(kind: str, *objects: Any) -> dict[tuple[str, str], list[Any]]:
    index: dict[tuple[str, str], list[Any]] = {}
    for obj in objects:
        for key, value in admission._by_target(kind, kopf.Body(obj)).items():
            index.setdefault(key, []).append(value)
    return index


def test_an_intent_on_a_deployment_an_hpa_scales_is_refused_naming_it() -> None:
    hpas = _index("HorizontalPodAutoscaler", _hpa("checkout-hpa", "checkout"), _hpa("other", "cart"),
                  _hpa("same-name-elsewhere", "checkout", namespace="shop"))
    with pytest.raises(kopf.AdmissionError) as e:
        admission.validate_orchestration_intent(body=body(), operation="CREATE", kubeagora_cluster_policies=POLICY,
                                                kubeagora_node_sites=SITES, kubeagora_hpas=hpas)
    assert e.value.code == 422
    message = str(e.value)
    assert "HorizontalPodAutoscaler default/checkout-hpa" in message
    assert "spec.targetRef.name" in message
    assert "other" not in message
    assert "same-name-elsewhere" not in message


def test_a_keda_scaled_object_is_a_conflict_too_and_its_target_kind_defaults_to_deployment() -> None:
    scaled = {"metadata": {"name": "checkout-so", "namespace": "default"},
              "spec": {"scaleTargetRef": {"name": "checkout"}}}
    with pytest.raises(kopf.AdmissionError) as e:
        admission.validate_orchestration_intent(body=body(), operation="CREATE", kubeagora_cluster_policies=POLICY,
                                                kubeagora_node_sites=SITES,
                                                kubeagora_scaled_objects=_index("ScaledObject", scaled))
    assert "ScaledObject default/checkout-so" in str(e.value)


def test_an_hpa_on_another_kind_of_target_is_no_conflict() -> None:
    hpa = _hpa("sts-hpa", "checkout")
    hpa["spec"]["scaleTargetRef"]["kind"] = "StatefulSet"
    admission.validate_orchestration_intent(body=body(), operation="CREATE", kubeagora_cluster_policies=POLICY,
                                            kubeagora_node_sites=SITES,
                                            kubeagora_hpas=_index("HorizontalPodAutoscaler", hpa))
