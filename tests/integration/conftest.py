"""One real control plane per test session, shared by every integration test.

The binary is built (or taken from its cache) by ``controlplane/build.sh``; the tests are skipped
only when Go is absent and no prebuilt binary is named in ``$KUBEAGORA_CONTROLPLANE_BINARY``.

Under pytest-xdist every worker runs this fixture; they share one cluster through a lock and a
reference count in the directory common to all workers, and the last worker out stops it.
An ``atexit`` hook releases the reference if the session ends without running the teardown.
"""

from __future__ import annotations

import atexit
import fcntl
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from kubeagora.devcluster import BINARY_ENV, DevCluster, DevClusterError, Settings, resolve_binary
from kubeagora.devcluster.cluster import pid_alive

NODE_MONITOR_GRACE_PERIOD = "20s"


def _go_absent() -> bool:
    return shutil.which("go") is None and not os.environ.get(BINARY_ENV)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    if not _go_absent():
        return
    skip = pytest.mark.skip(
        reason=f"Go is not installed (needed to build the control plane; or set {BINARY_ENV})"
    )
    for item in items:
        if "integration" in item.keywords:
            item.add_marker(skip)


@contextmanager
def _locked(directory: Path) -> Iterator[None]:
    directory.mkdir(parents=True, exist_ok=True)
    with (directory / "lock").open("w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _refs(directory: Path, delta: int) -> int:
    path = directory / "refs"
    n = int(path.read_text()) if path.exists() else 0
    n = max(0, n + delta)
    path.write_text(str(n))
    return n


@pytest.fixture(scope="session")
def controlplane_binary(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The control-plane binary, built on first use and cached across sessions."""
    shared = _shared_dir(tmp_path_factory)
    with _locked(shared):
        try:
            return resolve_binary()
        except DevClusterError as e:  # Go too old, or the build failed: a failure, not a skip
            pytest.fail(f"cannot build the control plane: {e}", pytrace=False)


def _shared_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.getbasetemp()
    # xdist workers get basetemp/popen-gwN; their parent is common to the whole session.
    root = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base
    return root / "kubeagora-devcluster"


@pytest.fixture(scope="session")
def devcluster(tmp_path_factory: pytest.TempPathFactory, controlplane_binary: Path) -> Iterator[DevCluster]:
    """A running control plane (etcd, API server, controller manager, scheduler), no nodes."""
    shared = _shared_dir(tmp_path_factory)
    cluster = DevCluster(
        shared / "state",
        binary=controlplane_binary,
        settings=Settings(node_monitor_grace_period=NODE_MONITOR_GRACE_PERIOD),
    )
    released = False

    def release() -> None:
        nonlocal released
        if released:
            return
        released = True
        with _locked(shared):
            if _refs(shared, -1) == 0:
                pids = cluster.pids()
                cluster.down()
                left = [f"{name} (pid {pid})" for name, pid in pids.items() if pid_alive(pid)]
                assert not left, f"still running after down: {', '.join(left)}"

    with _locked(shared):
        try:
            cluster.up()  # no-op when another worker already started it
        except BaseException:
            if _refs(shared, 0) == 0:
                cluster.down()
            raise
        _refs(shared, +1)
        atexit.register(release)
    try:
        yield cluster
    finally:
        release()
