"""Finding 7 — two operator replicas.

Without leader election a second operator rolled back the first one's canaries (as an "earlier
run's") and then both scaled the same Deployments. Here two real ``kubeagora operator run``
processes share one control plane (with the mock kubelet and a real Prometheus): only the holder of
the Lease acts; the leader is killed with SIGKILL in the middle of a canary; the other must take the
Lease within 30 s and roll the canary back, and no action may be carried out twice.
"""

from __future__ import annotations

import signal
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.integration.kube import wait_for
from tests.integration.test_operator_e2e import idle_service

from kubeagora.devcluster.cluster import free_ports
from kubeagora.devcluster.stack import Stack, StackOptions

pytest.importorskip("kopf")
pytestmark = pytest.mark.integration

NAMESPACE = "kubeagora-system"
RUN = "kubeagora.io/operator-run"


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, controlplane_binary: Path) -> Iterator[Stack]:
    options = StackOptions(scenario="gpu-throttle", extender=False, operator=False, webhook=False,
                           operator_args=("--shadow-seconds", "5", "--canary-seconds", "600"))
    with Stack(tmp_path_factory.mktemp("two-operators"), options, binary=controlplane_binary) as s:
        yield s


def holder(stack: Stack) -> str:
    lease = stack.kubectl_json("get", "lease", "kubeagora-operator", "-n", NAMESPACE)
    return str(lease["spec"].get("holderIdentity") or "")


def metric(url: str, name: str) -> float:
    with urllib.request.urlopen(url + "/metrics", timeout=10) as resp:
        lines = [line for line in resp.read().decode().splitlines() if line.startswith(name)]
    return sum(float(line.split()[-1]) for line in lines)


def agentactions(stack: Stack) -> list[dict[str, Any]]:
    return list(stack.kubectl_json("get", "agentactions", "-A")["items"])


def test_one_replica_acts_and_the_other_takes_over_within_30_s_without_acting_twice(stack: Stack) -> None:
    port_a, port_b = free_ports(2)
    a = stack.start_operator("operator-a", port_a)
    wait_for("operator-a to hold the Lease", lambda: holder(stack) == "operator-a", timeout_s=60)
    b = stack.start_operator("operator-b", port_b)
    stack.apply(*idle_service())
    canary = wait_for("an AgentAction in Canary", lambda: next(
        (x for x in agentactions(stack) if (x.get("status") or {}).get("state") == "Canary"), None),
        timeout_s=300, every_s=0.3)

    # while a leads, b only watches: every record is a's, b has not ticked
    runs = {x["metadata"]["labels"][RUN] for x in agentactions(stack)}
    assert runs == {canary["metadata"]["labels"][RUN]}, runs
    assert metric(b.url, "kubeagora_operator_ticks_total") == 0
    assert metric(b.url, "kubeagora_operator_leader") == 0
    assert metric(a.url, "kubeagora_operator_leader") == 1

    a.stop(sig=signal.SIGKILL)
    killed = time.monotonic()
    wait_for("operator-b to take the Lease", lambda: holder(stack) == "operator-b", timeout_s=60, every_s=0.2)
    failover_s = time.monotonic() - killed
    assert failover_s < 30, f"takeover took {failover_s:.1f} s"

    name, ns = canary["metadata"]["name"], canary["metadata"]["namespace"]

    def rolled_back() -> dict[str, Any] | None:
        x = stack.kubectl_json("get", "agentaction", name, "-n", ns)
        return x if x["status"]["state"] == "RolledBack" else None

    done = wait_for(f"{name} to be rolled back by operator-b", rolled_back, timeout_s=60)
    assert "restarted" in done["status"]["message"]
    time.sleep(10)  # a few more of b's ticks
    old_run = canary["metadata"]["labels"][RUN]
    for x in agentactions(stack):
        moves = [(t["from"], t["to"]) for t in (x.get("status") or {}).get("transitions") or ()]
        assert len(moves) == len(set(moves)), f"{x['metadata']['name']} went through a step twice: {moves}"
        if x["metadata"]["labels"][RUN] == old_run:
            state = (x.get("status") or {}).get("state")
            assert state not in ("Shadow", "Canary", "AwaitingApproval"), x["metadata"]["name"]
    print(f"failover: operator-b held the Lease {failover_s:.1f} s after operator-a was killed")
