"""Run the README's "kubeagora on the local control plane" block as written, twice on one devcluster.

The block is parsed from README.md, so the README and this run cannot drift apart. Each line runs in
``bash`` in a work directory that looks like the repository's root (``.venv``, ``crds/``,
``examples/``, ``manifests/`` linked in), with the variables the block set before it (``K=…``,
``export KUBECONFIG=…``) and ``kubectl`` on PATH (the control-plane binary's own). Lines that end in
``&`` are the block's background jobs; their pids are kept to kill them as the README says.

Between the lines it waits for what the README's comments promise, then checks it:

- every pod of the region-restricted ``checkout`` is, at every moment from its creation (polled
  twice a second), on a node in region-0 of class cpu, and carries the required node affinity;
- the ×20 burst is scaled (the Deployment has more replicas than before it);
- no AwaitingApproval flood: at most two requests waiting, never two for one action and target.

The second pass runs after the README's own clean-up line (``devcluster down``) on the same state,
with another topology (``--scenario region-partition`` for ``gpu-throttle``): ``devcluster up`` must
say it reuses that state, and the mock kubelet must take over the earlier nodes. At the end
``devcluster delete`` runs twice (the second finds nothing). Runs inside a network namespace of its
own when the test can make one (the README's fixed ports), see ``test_readme_flow.py``.

    python tests/integration/readme_flow.py --repo . --work DIR --binary PATH --prometheus PATH
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

SECTION = "## kubeagora on the local control plane"
SECOND_TOPOLOGY = ("--scenario gpu-throttle", "--scenario region-partition")
ALLOWED = {"topology.kubernetes.io/region": "region-0", "kubeagora.io/node-class": "cpu"}
MAX_AWAITING = 2


class FlowError(AssertionError):
    pass


def check(ok: object, message: str) -> None:
    if not ok:
        raise FlowError(message)


def log(message: str) -> None:
    print(f"{time.strftime('%H:%M:%S')} {message}", flush=True)


# ---------------------------------------------------------------------------------------------- parsing
def section(readme: str) -> str:
    start = readme.index(SECTION)
    end = readme.find("\n## ", start + len(SECTION))
    return readme[start:end if end >= 0 else None]


def block(readme: str) -> list[str]:
    """The section's ``sh`` block, one command per item (continuation lines joined)."""
    text = section(readme)
    match = re.search(r"```sh\n(.*?)```", text, re.S)
    check(match, "the README's section has no ```sh block")
    assert match is not None
    lines: list[str] = []
    pending = ""
    for raw in match.group(1).splitlines():
        if raw.rstrip().endswith("\\"):
            pending += raw.rstrip()[:-1] + " "
            continue
        line = (pending + raw).strip()
        pending = ""
        if line:
            lines.append(line)
    return lines


def cleanup_line(readme: str) -> str:
    """The README's command that stops it all (from its "To stop it all" bullet)."""
    match = re.search(r"To stop it all: `([^`]+)`", section(readme))
    check(match, "the README's section no longer says how to stop it all")
    assert match is not None
    return match.group(1)


# ---------------------------------------------------------------------------------------------- running
def is_setting(line: str) -> bool:
    return bool(re.match(r"(export\s+)?[A-Z_]+=", line))


@dataclass
class Shell:
    work: Path
    env: dict[str, str]
    prelude: list[str] = field(default_factory=list)
    jobs: list[int] = field(default_factory=list)

    def run(self, line: str, timeout_s: float = 300.0) -> subprocess.CompletedProcess[str]:
        background = line.rstrip().endswith("&")
        script = "\n".join([*self.prelude, line, *(['echo "JOB $!"'] if background else [])])
        log(f"$ {line}")
        proc = subprocess.run(["bash", "-c", script], cwd=self.work, env=self.env, capture_output=True, text=True,
                              timeout=timeout_s, check=False)
        if background:
            self.jobs += [int(m) for m in re.findall(r"^JOB (\d+)$", proc.stdout, re.M)]
        if is_setting(line) and proc.returncode == 0:
            self.prelude.append(line)
        for out in (proc.stdout, proc.stderr):
            if out.strip():
                print("  " + "\n  ".join(out.rstrip().splitlines()[-15:]), flush=True)
        return proc

    def must(self, line: str, timeout_s: float = 300.0) -> subprocess.CompletedProcess[str]:
        proc = self.run(line, timeout_s)
        check(proc.returncode == 0, f"`{line}` exited {proc.returncode}:\n{proc.stderr[-3000:]}")
        return proc

    def kubectl_json(self, *args: str) -> Any:
        proc = subprocess.run(["bash", "-c", "\n".join([*self.prelude, 'kubectl "$@" -o json']), "kubectl", *args],
                              cwd=self.work, env=self.env, capture_output=True, text=True, timeout=60, check=False)
        if proc.returncode != 0:
            return None
        return json.loads(proc.stdout)

    def kill_jobs(self) -> None:
        for pid in self.jobs:
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                continue
        deadline = time.monotonic() + 30
        for pid in self.jobs:
            while time.monotonic() < deadline and _alive(pid):
                time.sleep(0.2)
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)
        self.jobs.clear()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[-1].split()[0] != "Z"
    except OSError:
        return False


def wait(what: str, probe: Callable[[], Any], timeout_s: float) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        value = probe()
        if value:
            return value
        check(time.monotonic() < deadline, f"timed out after {timeout_s:.0f} s waiting for {what}")
        time.sleep(1.0)


# ---------------------------------------------------------------------------------------------- watching
class Placements(threading.Thread):
    """Every (pod, node) of checkout seen bound, polled twice a second from the intent's apply on."""

    def __init__(self, shell: Shell) -> None:
        super().__init__(daemon=True)
        self.shell = shell
        self.seen: dict[str, str] = {}
        self.without_affinity: set[str] = set()
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.is_set():
            pods = self.shell.kubectl_json("get", "pods", "-n", "default", "-l", "app=checkout")
            for p in (pods or {}).get("items") or ():
                name, node = p["metadata"]["name"], p["spec"].get("nodeName")
                if node:
                    self.seen[name] = node
                if not required_affinity(p):
                    self.without_affinity.add(name)
            self.done.wait(0.5)


def required_affinity(obj: dict[str, Any]) -> list[dict[str, Any]]:
    spec = obj.get("spec") or {}
    terms = (((spec.get("affinity") or {}).get("nodeAffinity") or {}).get(
        "requiredDuringSchedulingIgnoredDuringExecution") or {}).get("nodeSelectorTerms") or []
    return [t for t in terms if all(any(e.get("key") == k and v in e.get("values", ()) for e in
                                        t.get("matchExpressions") or ()) for k, v in ALLOWED.items())]


def condition(obj: dict[str, Any], kind: str) -> dict[str, Any]:
    return next((c for c in (obj.get("status") or {}).get("conditions") or () if c.get("type") == kind), {})


# ---------------------------------------------------------------------------------------------- one pass
def one_pass(shell: Shell, lines: list[str], cleanup: str, second: bool) -> None:
    watcher: Placements | None = None
    replicas_before_burst = 0
    try:
        for line in lines:
            if "kubectl patch aa NAME" in line:
                waiting = awaiting(shell)
                if not waiting:
                    log(f"(skipped, nothing awaits approval) {line}")
                    continue
                shell.must(line.replace("NAME", waiting[0]["metadata"]["name"]))
                continue
            if "kubectl get intent,deploy checkout" in line:
                wait("the operator to scale checkout up", partial(scaled, shell, replicas_before_burst), 240)
            if "kubectl get intent checkout" in line:
                wait("the operator to report on the intent", lambda: (shell.kubectl_json(
                    "get", "intent", "checkout", "-n", "default") or {}).get("status", {}).get("observed"), 120)
            if line.startswith("curl") and "/load" in line:
                replicas_before_burst = deployment(shell)["spec"]["replicas"]
            proc = shell.must(line, timeout_s=300)
            after(shell, line, proc, second)
            if "examples/intent.yaml" in line:
                watcher = Placements(shell)
                watcher.start()
                wait("checkout's pods to be Ready", lambda: ready_and_bound(shell), 240)
        check(watcher is not None, "the block never applied examples/intent.yaml")
        assert watcher is not None
        wait("every checkout pod within region-0 and cpu (ResidencyMet)", lambda: condition(
            shell.kubectl_json("get", "intent", "checkout", "-n", "default") or {}, "ResidencyMet").get("status")
            == "True", 120)
    finally:
        if watcher is not None:
            watcher.done.set()
            watcher.join(timeout=10)
        shell.run(cleanup, timeout_s=300)
        shell.kill_jobs()
    assert watcher is not None
    labels = node_labels(shell) or {}
    outside = {pod: node for pod, node in watcher.seen.items()
               if node in labels and any(labels[node].get(k) != v for k, v in ALLOWED.items())}
    check(watcher.seen, "no checkout pod was ever seen bound")
    check(not outside, f"checkout pods were bound outside region-0/cpu: {outside}")
    check(not watcher.without_affinity, f"pods without the required affinity: {sorted(watcher.without_affinity)}")
    log(f"residency held: {len(watcher.seen)} checkout pods seen, all within {ALLOWED}")


def after(shell: Shell, line: str, proc: subprocess.CompletedProcess[str], second: bool) -> None:
    """What the README's comment on ``line`` promises."""
    out = proc.stdout + proc.stderr
    if "devcluster up" in line:
        reused = "reusing the existing state" in out
        check(reused == second, ("a used devcluster's up did not say it reuses its state" if second
                                 else "a new devcluster's up said it reuses state"))
    elif "mock-kubelet" in line and "--detach" in line:
        check("mock kubelet serving" in proc.stdout, f"the detached mock kubelet did not say where it serves: {out}")
        wait("every node to be the new kubelet's and Ready", lambda: nodes_current(shell), 120)
        if second:
            kubelet_log = (shell.work / "kubelet.log").read_text()
            check("removing" in kubelet_log or "recreating" in kubelet_log,
                  "the mock kubelet did not take over the earlier topology's nodes")
    elif "devcluster status" in line:
        check(re.search(r"mock-kubelet[\s│|]+serving", proc.stdout),
              f"devcluster status shows no serving kubelet:\n{out}")
    elif "kubectl get pods -o wide" in line:
        for pod in pods(shell):
            check(required_affinity(pod), f"{pod['metadata']['name']} lacks the required node affinity")
    elif "kubectl describe intent checkout" in line:
        check("ResidencyMet" in proc.stdout, "describe shows no ResidencyMet condition")
    elif line.startswith("kubectl get aa"):
        check_no_flood(shell)


def pods(shell: Shell) -> list[dict[str, Any]]:
    listed = shell.kubectl_json("get", "pods", "-n", "default", "-l", "app=checkout") or {}
    return [p for p in listed.get("items") or () if not p["metadata"].get("deletionTimestamp")]


def deployment(shell: Shell) -> dict[str, Any]:
    dep: dict[str, Any] = shell.kubectl_json("get", "deployment", "checkout", "-n", "default")
    check(dep, "deployment checkout is missing")
    return dep


def ready_and_bound(shell: Shell) -> bool:
    dep = shell.kubectl_json("get", "deployment", "checkout", "-n", "default") or {}
    return bool((dep.get("status") or {}).get("readyReplicas", 0) >= 1 and pods(shell)
                and all(p["spec"].get("nodeName") for p in pods(shell)))


def scaled(shell: Shell, replicas_before: int) -> bool:
    """The operator scaled checkout up after the burst (the block's "the operator scaled it")."""
    return bool(deployment(shell)["spec"]["replicas"] > replicas_before)


def node_labels(shell: Shell) -> dict[str, dict[str, str]] | None:
    listed = shell.kubectl_json("get", "nodes")
    if listed is None:
        return None
    return {n["metadata"]["name"]: n["metadata"].get("labels") or {} for n in listed["items"]}


def nodes_current(shell: Shell) -> bool:
    """Every node is a mock node of the default owner and Ready (no earlier topology left over)."""
    listed = shell.kubectl_json("get", "nodes") or {}
    items = listed.get("items") or []
    return bool(items) and all(
        n["metadata"]["labels"].get("kubeagora.io/mock-kubelet") == "default"
        and condition(n, "Ready").get("status") == "True" for n in items)


def awaiting(shell: Shell) -> list[dict[str, Any]]:
    listed = shell.kubectl_json("get", "agentactions", "-A") or {}
    return [a for a in listed.get("items") or () if (a.get("status") or {}).get("state") == "AwaitingApproval"]


def check_no_flood(shell: Shell) -> None:
    waiting = awaiting(shell)
    keys = [(a["spec"]["action"]["type"], a["spec"]["action"].get("service") or a["spec"]["action"].get("node"))
            for a in waiting]
    check(len(waiting) <= MAX_AWAITING, f"{len(waiting)} AgentActions await approval: {keys}")
    check(len(keys) == len(set(keys)), f"the same request waits twice: {keys}")
    log(f"AwaitingApproval: {keys or 'none'}")


# ---------------------------------------------------------------------------------------------- main
def prepare(repo: Path, work: Path, binary: Path, prometheus: Path) -> dict[str, str]:
    """The work directory (the repository's parts the block names) and the environment."""
    work.mkdir(parents=True, exist_ok=True)
    for name in ("crds", "examples", "manifests"):
        link = work / name
        if not link.exists():
            link.symlink_to(repo / name)
    venv = work / ".venv"
    if not venv.exists():
        venv.symlink_to(Path(sys.executable).parent.parent)
    bin_dir = work / "bin"
    bin_dir.mkdir(exist_ok=True)
    shim = bin_dir / "kubectl"
    shim.write_text(f'#!/bin/sh\nexec "{binary}" kubectl "$@"\n')
    shim.chmod(0o755)
    home = work / "home"
    home.mkdir(exist_ok=True)
    keep = {k: v for k, v in os.environ.items() if k in ("LANG", "LC_ALL", "TERM", "TMPDIR")}
    return {**keep, "HOME": str(home), "PATH": f"{bin_dir}:{os.environ.get('PATH', '/usr/bin:/bin')}",
            "KUBEAGORA_CONTROLPLANE_BINARY": str(binary), "KUBEAGORA_PROMETHEUS_BINARY": str(prometheus),
            "PYTHONUNBUFFERED": "1"}


def loopback_up() -> None:
    """Inside a fresh network namespace the loopback interface starts down."""
    if shutil.which("ip"):
        subprocess.run(["ip", "link", "set", "lo", "up"], check=False, capture_output=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repo", type=Path, required=True)
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument("--binary", type=Path, required=True)
    parser.add_argument("--prometheus", type=Path, required=True)
    args = parser.parse_args(argv)
    loopback_up()
    readme = (args.repo / "README.md").read_text()
    lines, cleanup = block(readme), cleanup_line(readme)
    old, new = SECOND_TOPOLOGY
    check(any(old in ln for ln in lines), f"the block no longer starts the mock kubelet with {old}")
    shell = Shell(args.work, prepare(args.repo.resolve(), args.work, args.binary, args.prometheus))
    try:
        log("pass 1: the block as written, on a new devcluster")
        one_pass(shell, lines, cleanup, second=False)
        log(f"pass 2: after `{cleanup}`, on the same state, with {new}")
        shell.prelude.clear()
        one_pass(shell, [ln.replace(old, new) for ln in lines], cleanup, second=True)
        shell.prelude = [ln for ln in shell.prelude if not ln.startswith("export KUBECONFIG")]
        first, again = (shell.must("$K devcluster delete") for _ in range(2))
        check("deleted" in first.stdout, f"devcluster delete did not delete:\n{first.stdout}")
        check("nothing to delete" in again.stdout, f"a second devcluster delete was not a no-op:\n{again.stdout}")
    except FlowError as e:
        log(f"FAILED: {e}")
        return 1
    finally:
        shell.kill_jobs()
    log("the README's block worked on a new and on a used devcluster")
    return 0


if __name__ == "__main__":
    sys.exit(main())
