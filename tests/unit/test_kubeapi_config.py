"""The in-cluster service account → Endpoint (the operator and extender in a pod)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from kubeagora.kubeapi.errors import KubeConfigError
from kubeagora.kubeapi.kubeconfig import in_cluster


def _ca(tmp: Path) -> str:
    key, crt = tmp / "ca.key", tmp / "ca.crt"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(crt),
                    "-days", "1", "-subj", "/CN=test-ca"], check=True, capture_output=True)
    return crt.read_text()


def test_in_cluster_reads_the_mounted_token_and_ca(tmp_path: Path) -> None:
    (tmp_path / "ca.crt").write_text(_ca(tmp_path))
    (tmp_path / "token").write_text("secret-token\n")
    ep = in_cluster(tmp_path, {"KUBERNETES_SERVICE_HOST": "10.96.0.1", "KUBERNETES_SERVICE_PORT": "443"})
    assert ep.server == "https://10.96.0.1:443"
    assert ep.token == "secret-token"
    assert ep.ssl_context is not None


def test_in_cluster_brackets_an_ipv6_host(tmp_path: Path) -> None:
    (tmp_path / "ca.crt").write_text(_ca(tmp_path))
    (tmp_path / "token").write_text("t")
    ep = in_cluster(tmp_path, {"KUBERNETES_SERVICE_HOST": "fd00::1", "KUBERNETES_SERVICE_PORT": "443"})
    assert ep.server == "https://[fd00::1]:443"


def test_outside_a_pod_the_error_says_to_pass_a_kubeconfig(tmp_path: Path) -> None:
    with pytest.raises(KubeConfigError, match="--kubeconfig"):
        in_cluster(tmp_path, {})


def test_a_missing_token_is_named(tmp_path: Path) -> None:
    with pytest.raises(KubeConfigError, match="service account"):
        in_cluster(tmp_path, {"KUBERNETES_SERVICE_HOST": "h", "KUBERNETES_SERVICE_PORT": "1"})
