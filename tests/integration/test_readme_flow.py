"""The README's "kubeagora on the local control plane" block, run as written, twice on one devcluster
(``readme_flow.py`` does the run; this module finds the binaries and a network of its own).

The block uses fixed ports (8888, 9108, 8080, 9090, 9443), so it runs in a network namespace of its
own where the machine allows one (``unshare -n`` as root, ``unshare -rn`` otherwise), and directly
only where those ports are free. It starts and stops its own devcluster (in a temporary HOME), not the
session's. About ten minutes on a shared 2-core machine.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from kubeagora.devcluster.cluster import port_free

pytestmark = [pytest.mark.integration, pytest.mark.slow]
pytest.importorskip("kopf")

ROOT = Path(__file__).resolve().parents[2]
DRIVER = Path(__file__).with_name("readme_flow.py")
README_PORTS = (8888, 9108, 8080, 9090, 9443)


def isolation() -> list[str] | None:
    """The command prefix that gives the run a network of its own ([] for none; None: no way to run)."""
    if shutil.which("unshare"):
        for prefix in (["unshare", "-n"], ["unshare", "-rn"]):
            if subprocess.run([*prefix, "true"], capture_output=True, check=False).returncode == 0:
                return prefix
    return [] if all(port_free(p) for p in README_PORTS) else None


def test_the_readme_block_works_on_a_new_and_on_a_used_devcluster(controlplane_binary: Path,
                                                                   tmp_path: Path) -> None:
    from kubeagora.devcluster.prometheus import resolve_prometheus

    prefix = isolation()
    if prefix is None:
        pytest.skip(f"no network namespace and the README's ports {README_PORTS} are not all free")
    prometheus = resolve_prometheus()
    proc = subprocess.run(
        [*prefix, sys.executable, str(DRIVER), "--repo", str(ROOT), "--work", str(tmp_path / "work"),
         "--binary", str(controlplane_binary), "--prometheus", str(prometheus)],
        capture_output=True, text=True, timeout=2400, check=False)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-12000:]
    assert "pass 2" in output
    assert output.count("residency held") == 2
