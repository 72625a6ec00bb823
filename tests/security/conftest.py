"""The security tests use the integration tests' shared control plane (one per session), with the
kubeagora CRDs applied."""

from pathlib import Path

import pytest
from tests.integration.conftest import (  # noqa: F401  (fixtures and the skip-without-Go hook)
    controlplane_binary,
    devcluster,
    pytest_collection_modifyitems,
)

from kubeagora.devcluster import DevCluster

ROOT = Path(__file__).resolve().parents[2]
CRDS = ("orchestrationintents.kubeagora.io", "orchestrationpolicies.kubeagora.io", "agentactions.kubeagora.io")


@pytest.fixture(scope="module")
def crds(devcluster: DevCluster) -> DevCluster:  # noqa: F811
    proc = devcluster.kubectl("apply", "-f", str(ROOT / "crds"))
    assert proc.returncode == 0, proc.stderr
    proc = devcluster.kubectl("wait", "--for=condition=Established", "--timeout=60s", *(f"crd/{c}" for c in CRDS))
    assert proc.returncode == 0, proc.stderr
    return devcluster
