"""Helpers the integration tests share: kubectl with JSON out, apply, and polling with a deadline."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import pytest
import yaml

from kubeagora.devcluster import DevCluster


def kubectl_json(cluster: DevCluster, *args: str) -> Any:
    proc = cluster.kubectl(*args, "-o", "json")
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def apply(cluster: DevCluster, *objects: dict[str, Any]) -> None:
    proc = cluster.kubectl("apply", "-f", "-", input=yaml.safe_dump_all(objects))
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
