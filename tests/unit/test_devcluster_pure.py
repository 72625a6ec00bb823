"""devcluster pieces that need no control plane: flags, configs, certificates, CLI errors."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from kubeagora.devcluster import DevClusterError, Layout, Ports, Settings
from kubeagora.devcluster.binary import find_build_script, parse_go_version
from kubeagora.devcluster.cli import devcluster_app
from kubeagora.devcluster.cluster import (
    component_args,
    free_ports,
    kubeconfig_dict,
    load_scheduler_config,
    parse_extra_args,
    pick_ports,
    pid_alive,
    scheduler_config_dict,
)
from kubeagora.devcluster.pki import ADMIN, ensure_pki

REPO = Path(__file__).resolve().parents[2]
PORTS = Ports(etcd_client=2379, etcd_peer=2380, apiserver=6443, controller_manager=10257, scheduler=10259)


def flags(args: list[str]) -> dict[str, str]:
    return dict(a.removeprefix("--").partition("=")[::2] for a in args)


def test_apiserver_flags_follow_envtest(tmp_path: Path) -> None:
    f = flags(component_args("kube-apiserver", Layout(tmp_path), PORTS, Settings()))
    assert f["etcd-servers"] == "http://127.0.0.1:2379"
    assert f["secure-port"] == "6443"
    assert f["authorization-mode"] == "Node,RBAC"
    assert f["cert-dir"] == str(tmp_path / "pki")
    assert f["service-account-key-file"].endswith("sa.pub")
    assert f["service-account-signing-key-file"].endswith("sa.key")
    assert f["service-account-issuer"] == "https://127.0.0.1:6443"
    assert "enable-admission-plugins" not in f  # defaults, webhooks included
    assert "disable-admission-plugins" not in f


def test_controller_manager_flags_and_grace_period_override(tmp_path: Path) -> None:
    layout = Layout(tmp_path)
    default = flags(component_args("kube-controller-manager", layout, PORTS, Settings()))
    assert "node-monitor-grace-period" not in default
    assert default["controllers"] == "*"
    assert default["use-service-account-credentials"] == "true"
    for key in ("root-ca-file", "service-account-private-key-file", "cluster-signing-cert-file"):
        assert key in default
    fast = Settings(node_monitor_grace_period="20s", extra_args={"kube-controller-manager": ("--v=3",)})
    args = component_args("kube-controller-manager", layout, PORTS, fast)
    assert flags(args)["node-monitor-grace-period"] == "20s"
    assert args[-1] == "--v=3"


def test_scheduler_uses_its_config_file(tmp_path: Path) -> None:
    f = flags(component_args("kube-scheduler", Layout(tmp_path), PORTS, Settings()))
    assert f["config"] == str(tmp_path / "kube-scheduler-config.yaml")
    with pytest.raises(ValueError, match="unknown component"):
        component_args("kubelet", Layout(tmp_path), PORTS, Settings())


def test_scheduler_config_keeps_user_extenders_and_points_at_our_kubeconfig(tmp_path: Path) -> None:
    user = tmp_path / "sched.yaml"
    user.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "kubescheduler.config.k8s.io/v1",
                "kind": "KubeSchedulerConfiguration",
                "clientConnection": {"kubeconfig": "/elsewhere", "qps": 50},
                "extenders": [{"urlPrefix": "http://127.0.0.1:8888", "filterVerb": "filter"}],
            }
        )
    )
    cfg = scheduler_config_dict(Path("/state/kube-scheduler.kubeconfig"), load_scheduler_config(user))
    assert cfg["clientConnection"] == {"kubeconfig": "/state/kube-scheduler.kubeconfig", "qps": 50}
    assert cfg["leaderElection"] == {"leaderElect": False}
    assert cfg["extenders"][0]["filterVerb"] == "filter"
    default = scheduler_config_dict(Path("/k"))
    assert default["kind"] == "KubeSchedulerConfiguration"


@pytest.mark.parametrize(
    ("content", "message"),
    [("a: [", "malformed YAML"), ("- 1", "must be a YAML mapping"), ("kind: Pod", "field 'kind'")],
)
def test_bad_scheduler_config_names_the_file(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(content)
    with pytest.raises(DevClusterError, match=message) as info:
        load_scheduler_config(path)
    assert str(path) in str(info.value)


def test_kubeconfig_embeds_credentials() -> None:
    cfg = kubeconfig_dict("https://127.0.0.1:1", b"CA", b"CERT", b"KEY", "me")
    assert cfg["current-context"] == "kubeagora"
    assert cfg["clusters"][0]["cluster"]["server"] == "https://127.0.0.1:1"
    assert cfg["users"][0]["user"]["client-key-data"] == "S0VZ"


def test_ports_are_distinct_and_reused_when_free() -> None:
    ports = free_ports(5)
    assert len(set(ports)) == 5
    previous = Ports(*ports)
    assert pick_ports(previous) == previous


def test_extra_args_and_go_versions() -> None:
    assert parse_extra_args(["kube-apiserver=--v=2", "kube-apiserver=--x"]) == {
        "kube-apiserver": ("--v=2", "--x")
    }
    with pytest.raises(DevClusterError, match="COMPONENT"):
        parse_extra_args(["kubelet=--v=2"])
    assert parse_go_version("go version go1.26.8 linux/amd64") == (1, 26)
    assert parse_go_version("devel") is None


def test_dead_or_foreign_pids_are_not_ours() -> None:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    assert not pid_alive(proc.pid)
    assert pid_alive(os.getpid())
    if sys.platform == "linux":
        assert not pid_alive(os.getpid(), "etcd")  # alive, but not one of ours


def test_pki_has_admin_in_system_masters(tmp_path: Path) -> None:
    pki = ensure_pki(tmp_path / "pki")
    assert all(p.is_file() for p in pki.all_files())
    subject = subprocess.run(
        ["openssl", "x509", "-in", str(pki.client_cert(ADMIN)), "-noout", "-subject"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    assert "O=system:masters" in subject or "O = system:masters" in subject
    verify = subprocess.run(
        ["openssl", "verify", "-CAfile", str(pki.ca_cert), str(pki.apiserver_cert)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert verify.returncode == 0, verify.stderr
    before = pki.apiserver_cert.read_bytes()
    ensure_pki(tmp_path / "pki")  # idempotent: nothing regenerated
    assert pki.apiserver_cert.read_bytes() == before


def test_build_script_exits_2_without_go(tmp_path: Path) -> None:
    script = find_build_script([REPO])
    assert script is not None
    no_go = [d for d in os.environ["PATH"].split(os.pathsep) if d and not (Path(d) / "go").exists()]
    env = {"PATH": os.pathsep.join(no_go), "HOME": str(tmp_path), "KUBEAGORA_CACHE": str(tmp_path / "cache")}
    proc = subprocess.run(["/bin/bash", str(script)], env=env, capture_output=True, text=True, check=False)
    assert proc.returncode == 2, proc.stderr
    assert "Go is not installed" in proc.stderr


def test_cli_errors_are_one_message_and_exit_2(tmp_path: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(devcluster_app, ["kubeconfig", "--state-dir", str(tmp_path)])
    assert result.exit_code == 2
    assert "run 'kubeagora devcluster up' first" in result.output
    assert "Traceback" not in result.output
    result = runner.invoke(devcluster_app, ["up", "--state-dir", str(tmp_path), "--binary", "/nonexistent"])
    assert result.exit_code == 2
    assert "not an executable file" in result.output
    result = runner.invoke(devcluster_app, ["status", "--state-dir", str(tmp_path)])
    assert result.exit_code == 1
    assert "stopped" in result.output
    result = runner.invoke(devcluster_app, ["down", "--state-dir", str(tmp_path)])
    assert result.exit_code == 0
    assert "nothing was running" in result.output
