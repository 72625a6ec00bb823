"""Helpers the integration tests share: kubectl with JSON out, apply, polling with a deadline, and a
mock kubelet subprocess on nodes of the module's own."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from kubeagora.devcluster import DevCluster
from kubeagora.devcluster.cluster import free_ports
from kubeagora.devcluster.stack import kubectl_input, stop_process


def kubectl_json(cluster: DevCluster, *args: str) -> Any:
    proc = cluster.kubectl(*args, "-o", "json")
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def apply(cluster: DevCluster, *objects: dict[str, Any]) -> None:
    proc = cluster.kubectl("apply", "-f", "-", input=kubectl_input(objects))
    assert proc.returncode == 0, proc.stderr


def wait_for(what: str, probe: Callable[[], Any], timeout_s: float = 60.0, every_s: float = 0.5) -> Any:
    """Poll `probe` until it returns something truthy; fail the test (no traceback) at the deadline."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout_s:.0f}s waiting for {what}", pytrace=False)
        time.sleep(every_s)


# ---------------------------------------------------------------------------------------------- a mock kubelet
TAINT_KEY = "kubeagora.io/mock-test"
"""Each test module's mock nodes carry this taint with a value of their own, so only that module's
pods (which tolerate it) land on them."""


@dataclass(frozen=True)
class MockKubelet:
    url: str
    prefix: str
    proc: subprocess.Popen[bytes]
    log: Path

    def get(self, path: str) -> bytes:
        with urllib.request.urlopen(self.url + path, timeout=10) as resp:
            body: bytes = resp.read()
            return body

    def post(self, path: str, body: dict[str, Any], method: str = "POST") -> Any:
        req = urllib.request.Request(self.url + path, data=json.dumps(body).encode(), method=method,
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=10) as resp:
            return json.loads(resp.read())

    def request(self, path: str, body: dict[str, Any] | None = None) -> Any:
        """GET (no body) or POST a JSON body; the JSON reply."""
        return self.post(path, body) if body is not None else json.loads(self.get(path))

    def alive(self) -> None:
        code = self.proc.poll()
        assert code is None, f"mock kubelet exited ({code}):\n{self.log.read_text()[-3000:]}"


@contextmanager
def mock_kubelet(cluster: DevCluster, log_dir: Path, stem: str, nodes: int, *args: str,
                 timeout_s: float = 90.0) -> Iterator[MockKubelet]:
    """A mock kubelet subprocess playing ``nodes`` nodes named ``<stem><random>-…``, tainted
    ``TAINT_KEY=<that prefix>``; yields once they are registered, stops it (and its nodes) after."""
    prefix = f"{stem}{uuid.uuid4().hex[:6]}-"
    (port,) = free_ports(1)
    log = log_dir / "mock-kubelet.log"
    cmd = [sys.executable, "-c", "from kubeagora.cli import app; app()", "mock-kubelet",
           "--kubeconfig", str(cluster.kubeconfig), "--nodes", str(nodes), "--name-prefix", prefix,
           "--taint", f"{TAINT_KEY}={prefix.rstrip('-')}:NoSchedule", "--metrics-port", str(port),
           "--delete-nodes-on-exit", *args]
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    m = MockKubelet(f"http://127.0.0.1:{port}", prefix, proc, log)
    try:
        def healthy() -> bool:
            m.alive()
            try:
                return m.get("/healthz") == b"ok"
            except (urllib.error.URLError, OSError):
                return False

        wait_for("the mock kubelet to register its nodes", healthy, timeout_s=timeout_s)
        yield m
    finally:
        stop_process(proc, 60)
