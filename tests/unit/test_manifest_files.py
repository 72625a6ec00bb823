"""manifests/, read as files: what `kubectl apply -f manifests/` would get, checked without a cluster.

The apply set is the directory's own .yaml/.yml/.json files (kubectl does not descend into
subdirectories without -R); files that are not Kubernetes objects (the kind cluster config, scheduler
configurations, Prometheus configs) must live outside it. RBAC must be least privilege (no wildcards,
no built-in admin roles, no Secrets), pods must meet the "restricted" Pod Security Standard, and the
containers' arguments must be ones the `kubeagora` CLI accepts. The integration test
tests/integration/test_manifests.py applies the same files to a real API server.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from kubeagora.cli import app

ROOT = Path(__file__).resolve().parents[2]
MANIFESTS = ROOT / "manifests"
NAMESPACE = "kubeagora-system"
IMAGE = "kubeagora:dev"
CLUSTER_SCOPED = {"Namespace", "ClusterRole", "ClusterRoleBinding", "CustomResourceDefinition",
                  "ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding"}
BUILT_IN_ROLES = {"cluster-admin", "admin", "edit", "system:masters"}
POWERFUL_VERBS = {"*", "escalate", "bind", "impersonate"}


def apply_set() -> list[Path]:
    return sorted(p for p in MANIFESTS.iterdir() if p.is_file() and p.suffix in {".yaml", ".yml", ".json"})


def objects() -> list[dict[str, Any]]:
    """The Kubernetes objects of the apply set (anything else fails the first test below)."""
    docs = [doc for path in apply_set() for doc in yaml.safe_load_all(path.read_text()) if doc]
    return [doc for doc in docs if {"apiVersion", "kind", "metadata"} <= doc.keys()]


def of_kind(*kinds: str) -> list[dict[str, Any]]:
    return [o for o in objects() if o["kind"] in kinds]


def test_every_file_is_kubernetes_objects_with_a_header_comment() -> None:
    assert apply_set()
    for path in apply_set():
        text = path.read_text()
        assert text.startswith("#"), f"{path.name}: begins without a comment saying what it is"
        for doc in yaml.safe_load_all(text):
            if doc is None:
                continue
            assert {"apiVersion", "kind", "metadata"} <= doc.keys(), f"{path.name}: not a Kubernetes object"
            group = doc["apiVersion"].rpartition("/")[0]
            assert not group.endswith(("kind.x-k8s.io", "config.k8s.io")), (
                f"{path.name}: {doc['kind']} is a tool's config file, not an API object: "
                "kubectl apply -f manifests/ would fail on it; keep it in a subdirectory"
            )


def test_the_namespace_comes_first_and_holds_every_namespaced_object() -> None:
    first = next(d for d in yaml.safe_load_all(apply_set()[0].read_text()) if d)
    assert (first["kind"], first["metadata"]["name"]) == ("Namespace", NAMESPACE), (
        "kubectl applies a directory's files in name order: the Namespace must be in the first one"
    )
    for o in objects():
        if o["kind"] not in CLUSTER_SCOPED:
            assert o["metadata"].get("namespace") == NAMESPACE, f"{o['kind']}/{o['metadata']['name']}"


def test_rbac_has_no_wildcards_no_secrets_and_no_powerful_verbs() -> None:
    roles = of_kind("ClusterRole", "Role")
    assert roles
    for role in roles:
        for rule in role["rules"]:
            where = f"{role['metadata']['name']}: {rule}"
            for key in ("apiGroups", "resources", "verbs", "resourceNames", "nonResourceURLs"):
                assert "*" not in rule.get(key, []), f"wildcard {key} in {where}"
            assert not POWERFUL_VERBS & set(rule["verbs"]), where
            if "secrets" in rule["resources"]:  # only the operator's own key, by name, never listed
                assert role["kind"] == "Role", where
                assert rule["resourceNames"] == ["kubeagora-record-key"], where
                assert set(rule["verbs"]) <= {"get", "patch"}, where
        assert "aggregationRule" not in role


def test_the_operators_namespaced_objects_are_named_and_created_by_the_manifests() -> None:
    """Its Role grants get and update (or patch) on named objects only, and no create: each exists empty."""
    (role,) = [r for r in of_kind("Role") if r["metadata"]["name"] == "kubeagora-operator"]
    shipped = {(o["kind"], o["metadata"]["name"]) for o in objects()}
    kinds = {"secrets": "Secret", "leases": "Lease", "configmaps": "ConfigMap"}
    for rule in role["rules"]:
        assert "create" not in rule["verbs"], rule
        for resource in rule["resources"]:
            for name in rule["resourceNames"]:
                assert (kinds[resource], name) in shipped, (resource, name)


def test_no_role_may_write_webhook_configurations() -> None:
    """At most reading kubeagora's own (its readiness), never writing any."""
    for role in of_kind("ClusterRole", "Role"):
        for rule in role["rules"]:
            if {"validatingwebhookconfigurations", "mutatingwebhookconfigurations"} & set(rule["resources"]):
                assert rule["verbs"] == ["get"], rule
                assert rule["resourceNames"] == ["kubeagora.io"], rule


def test_the_static_webhook_configurations_are_the_ones_the_code_serves() -> None:
    from kubeagora.operator.admission import webhook_configurations

    shipped = [d for d in yaml.safe_load_all((MANIFESTS / "webhook" / "webhook.yaml").read_text())
               if d and d["kind"].endswith("WebhookConfiguration")]
    made = webhook_configurations(b"", service=(NAMESPACE, "kubeagora-operator-webhook", 443))
    assert [c["kind"] for c in shipped] == [c["kind"] for c in made]
    for got, want in zip(shipped, made, strict=True):
        assert got["metadata"]["annotations"]["cert-manager.io/inject-ca-from"] == \
            f"{NAMESPACE}/kubeagora-operator-webhook"
        for hook in want["webhooks"]:
            del hook["clientConfig"]["caBundle"]
        assert got["webhooks"] == want["webhooks"]


def test_the_bundled_prometheus_has_no_lifecycle_api() -> None:
    (prometheus,) = [d for d in of_kind("Deployment") if d["metadata"]["name"] == "prometheus"]
    for container in prometheus["spec"]["template"]["spec"]["containers"]:
        assert not any("lifecycle" in a for a in container.get("args", [])), container["args"]


def test_bindings_name_only_roles_defined_here_and_service_accounts_defined_here() -> None:
    roles = {r["metadata"]["name"] for r in of_kind("ClusterRole", "Role")}
    accounts = {(a["metadata"]["namespace"], a["metadata"]["name"]) for a in of_kind("ServiceAccount")}
    bindings = of_kind("ClusterRoleBinding", "RoleBinding")
    assert bindings
    for binding in bindings:
        ref = binding["roleRef"]["name"]
        assert ref not in BUILT_IN_ROLES, f"{binding['metadata']['name']} grants {ref}"
        assert ref in roles, f"{binding['metadata']['name']} names a role not defined in manifests/: {ref}"
        for subject in binding["subjects"]:
            assert subject["kind"] == "ServiceAccount", subject
            assert (subject["namespace"], subject["name"]) in accounts, subject


def test_the_operator_may_not_touch_what_it_does_not_enact() -> None:
    """Deployments: the scale subresource, and patches of the pod template (the residency rule), never
    replaced, created or deleted; pods only evicted, never created or deleted."""
    (operator,) = [r for r in of_kind("ClusterRole") if r["metadata"]["name"] == "kubeagora-operator"]
    grants = {(g, res, v) for rule in operator["rules"] for g in rule["apiGroups"]
              for res in rule["resources"] for v in rule["verbs"]}  # fmt: skip
    assert ("apps", "deployments/scale", "patch") in grants
    assert ("apps", "deployments", "patch") in grants
    assert not {("apps", "deployments", v) for v in ("update", "create", "delete")} & grants
    assert not {("", "pods", v) for v in ("patch", "update", "create", "delete")} & grants
    assert ("", "pods/eviction", "create") in grants
    assert ("", "nodes", "delete") not in grants


def test_the_scheduler_extender_only_reads() -> None:
    (extender,) = [r for r in of_kind("ClusterRole") if r["metadata"]["name"] == "kubeagora-scheduler-extender"]
    for rule in extender["rules"]:
        assert set(rule["verbs"]) <= {"get", "list", "watch"}, rule


def pod_templates() -> list[tuple[str, dict[str, Any]]]:
    """Every Deployment's pod: all of them run in the namespace that enforces the restricted standard."""
    return [(d["metadata"]["name"], d["spec"]["template"]["spec"]) for d in of_kind("Deployment")]


def kubeagora_pods() -> list[tuple[str, dict[str, Any]]]:
    """The pods that run the kubeagora image (the operator and the scheduler extender)."""
    return [(name, pod) for name, pod in pod_templates() if pod["containers"][0]["image"] == IMAGE]


def test_the_operator_and_the_extender_run_the_kubeagora_image() -> None:
    assert {name for name, _ in kubeagora_pods()} >= {"kubeagora-operator", "kubeagora-scheduler-extender"}


@pytest.mark.parametrize(("name", "pod"), pod_templates())
def test_pods_meet_the_restricted_pod_security_standard(name: str, pod: dict[str, Any]) -> None:
    assert pod["securityContext"]["runAsNonRoot"] is True, name
    assert pod["securityContext"]["runAsUser"] > 0, name
    assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault", name
    assert not pod.get("hostNetwork"), name
    assert not pod.get("hostPID"), name
    for container in pod["containers"]:
        sc = container["securityContext"]
        assert sc["allowPrivilegeEscalation"] is False, name
        assert sc["readOnlyRootFilesystem"] is True, name
        assert sc["capabilities"]["drop"] == ["ALL"], name
        assert not sc["capabilities"].get("add"), name
        assert {"cpu", "memory"} <= container["resources"]["requests"].keys(), name
        assert "memory" in container["resources"]["limits"], name
        assert "livenessProbe" in container, name
        assert "readinessProbe" in container, name


@pytest.mark.parametrize(("name", "pod"), kubeagora_pods())
def test_each_pod_runs_as_its_own_bound_service_account(name: str, pod: dict[str, Any]) -> None:
    assert pod["serviceAccountName"] == name
    subjects = {s["name"] for b in of_kind("ClusterRoleBinding") for s in b["subjects"]}
    assert name in subjects


@pytest.mark.parametrize(("name", "pod"), kubeagora_pods())
def test_container_arguments_are_accepted_by_the_cli(name: str, pod: dict[str, Any]) -> None:
    """`--help` after the arguments: click rejects unknown options and commands before printing help."""
    (container,) = pod["containers"]
    result = CliRunner().invoke(app, [*container["args"], "--help"])
    assert result.exit_code == 0, f"{name}: kubeagora {' '.join(container['args'])}:\n{result.output}"


@pytest.mark.parametrize(("name", "pod"), pod_templates())
def test_probes_and_services_use_declared_ports(name: str, pod: dict[str, Any]) -> None:
    (container,) = pod["containers"]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    for probe in (container["livenessProbe"], container["readinessProbe"]):
        handler = probe.get("httpGet") or probe.get("tcpSocket")
        assert handler["port"] in ports, f"{name}: probe on undeclared port {handler['port']}"
    services = [s for s in of_kind("Service") if s["spec"]["selector"].get("app.kubernetes.io/name") == name]
    assert services, f"no Service selects {name}"
    labels = next(d for d in of_kind("Deployment") if d["metadata"]["name"] == name)["spec"]["template"]["metadata"]
    for service in services:
        assert service["spec"]["selector"].items() <= labels["labels"].items()
        for port in service["spec"]["ports"]:
            assert port["targetPort"] in ports, f"{service['metadata']['name']}: targetPort {port['targetPort']}"


# --- manifests/kind: a kind cluster whose own kube-scheduler calls the extender -----------------------

KIND = MANIFESTS / "kind"
NODE_MOUNT = "/etc/kubeagora"
KUBEADM_PATCH_TARGETS = {"etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubeletconfiguration"}


def kind_cluster() -> dict[str, Any]:
    config: dict[str, Any] = yaml.safe_load((KIND / "kind-cluster.yaml").read_text())
    return config


def kubeadm_patches() -> dict[str, dict[str, Any]]:
    return {doc["kind"]: doc for doc in (yaml.safe_load(p) for p in kind_cluster()["kubeadmConfigPatches"])}


def test_kind_mounts_this_directory_into_the_control_plane_node() -> None:
    (control_plane,) = [n for n in kind_cluster()["nodes"] if n["role"] == "control-plane"]
    (mount,) = control_plane["extraMounts"]
    assert (ROOT / mount["hostPath"]).resolve() == KIND, "hostPath is relative to the repository root"
    assert mount["containerPath"] == NODE_MOUNT


def test_kubeadm_starts_kube_scheduler_with_the_kind_scheduler_config() -> None:
    scheduler = kubeadm_patches()["ClusterConfiguration"]["scheduler"]
    config = Path(scheduler["extraArgs"]["config"])
    assert config.parent == Path(NODE_MOUNT)
    assert (KIND / config.name).is_file()
    (volume,) = scheduler["extraVolumes"]
    assert volume["hostPath"] == volume["mountPath"] == NODE_MOUNT
    patches = Path(kubeadm_patches()["InitConfiguration"]["patches"]["directory"])
    assert patches.parent == Path(NODE_MOUNT)
    files = list((KIND / patches.name).iterdir())
    assert files
    for patch in files:  # kubeadm ignores files not named <target>[suffix][+patchtype].yaml
        assert patch.stem.partition("+")[0] in KUBEADM_PATCH_TARGETS, patch.name


def test_kind_scheduler_config_calls_the_extender_service_like_the_devcluster_one() -> None:
    kind_config = yaml.safe_load((KIND / "scheduler-config.yaml").read_text())
    assert kind_config["clientConnection"]["kubeconfig"] == "/etc/kubernetes/scheduler.conf"  # kubeadm's
    (kind_extender,) = kind_config["extenders"]
    (service,) = [s for s in of_kind("Service") if s["metadata"]["name"] == "kubeagora-scheduler-extender"]
    (port,) = service["spec"]["ports"]
    assert kind_extender["urlPrefix"] == f"https://{service['metadata']['name']}.{NAMESPACE}.svc:{port['port']}"
    assert kind_extender["tlsConfig"] == {"caFile": f"{NODE_MOUNT}/scheduler-extender.crt"}
    others = [p for p in MANIFESTS.rglob("*.yaml") if p.parent != KIND
              and "\nkind: KubeSchedulerConfiguration\n" in p.read_text()]  # fmt: skip
    assert others, "no scheduler configuration for the local control plane under manifests/"
    where = {"urlPrefix", "tlsConfig"}  # where the extender is and how it is verified: the only differences
    for other in others:
        (local_extender,) = yaml.safe_load(other.read_text())["extenders"]
        fail_closed = other.name == "scheduler-config-fail-closed.yaml"
        assert local_extender["ignorable"] is not fail_closed, other.name
        ignored = where | ({"ignorable"} if fail_closed else set())
        assert {k: v for k, v in kind_extender.items() if k not in ignored} == {
            k: v for k, v in local_extender.items() if k not in ignored
        }, f"{other.relative_to(ROOT)} and the kind scheduler config call the extender differently"
