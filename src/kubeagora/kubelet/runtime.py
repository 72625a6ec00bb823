"""Which mock kubelets serve which cluster: one small JSON record per running mock kubelet.

A mock kubelet writes its record once its nodes are registered and removes it when it stops:

    ~/.local/state/kubeagora/mock-kubelet/<server digest>-<owner>.json
    {"pid", "server", "owner", "url", "nodes", "source", "log", "started"}

``kubeagora devcluster status`` lists those of its API server (and whether each still answers),
``devcluster down`` and ``delete`` stop them, ``kubeagora mock-kubelet --detach`` waits for its
child's record before it returns, and ``kubeagora mock-kubelet --stop`` stops them.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import signal
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

RUNTIME_DIR = Path("~/.local/state/kubeagora/mock-kubelet")
DEFAULT_OWNER = "default"
"""The owner of a mock kubelet started without ``--name-prefix`` (see ``nodes.LABEL_OWNER``)."""


@dataclass(frozen=True)
class Record:
    pid: int
    server: str
    owner: str
    url: str
    nodes: int
    source: str
    log: str = ""
    started: float = 0.0

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Record:
        return cls(int(data["pid"]), str(data["server"]), str(data["owner"]), str(data["url"]), int(data["nodes"]),
                   str(data.get("source", "")), str(data.get("log", "")), float(data.get("started", 0.0)))


def _dir(root: Path | None) -> Path:
    return (root or RUNTIME_DIR).expanduser()


def path_for(server: str, owner: str, root: Path | None = None) -> Path:
    digest = hashlib.sha256(server.encode()).hexdigest()[:12]
    return _dir(root) / f"{digest}-{owner}.json"


def write(record: Record, root: Path | None = None) -> Path:
    path = path_for(record.server, record.owner, root)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(asdict(record), indent=2))
    tmp.replace(path)
    return path


def remove(server: str, owner: str, pid: int, root: Path | None = None) -> None:
    """Remove the record, if it is still this process's (a successor may have written its own)."""
    path = path_for(server, owner, root)
    with contextlib.suppress(OSError, ValueError, KeyError):
        if Record.from_json(json.loads(path.read_text())).pid == pid:
            path.unlink()


def records_for(server: str, root: Path | None = None) -> list[Record]:
    """The records of mock kubelets that served ``server`` (running or not: see ``alive``)."""
    out = []
    digest = hashlib.sha256(server.encode()).hexdigest()[:12]
    for path in sorted(_dir(root).glob(f"{digest}-*.json")):
        with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
            record = Record.from_json(json.loads(path.read_text()))
            if record.server == server:
                out.append(record)
    return out


def alive(record: Record) -> bool:
    """Whether the recorded process still runs (a zombie does not)."""
    try:
        os.kill(record.pid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    try:
        with open(f"/proc/{record.pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[-1].split()[0] != "Z"
    except OSError:
        return True


def serving(record: Record, timeout_s: float = 2.0) -> bool:
    """Whether the recorded mock kubelet answers ``/healthz`` (its nodes are registered)."""
    try:
        with urllib.request.urlopen(record.url + "/healthz", timeout=timeout_s) as resp:
            return bool(resp.status == 200)
    except (urllib.error.URLError, OSError, ValueError):
        return False


def stop(record: Record, timeout_s: float = 30.0, root: Path | None = None) -> bool:
    """SIGTERM the recorded process and wait for it (it deletes what it must on the way out); SIGKILL
    after ``timeout_s``. True if it was running."""
    if not alive(record):
        remove(record.server, record.owner, record.pid, root)
        return False
    with contextlib.suppress(ProcessLookupError):
        os.kill(record.pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    while alive(record) and time.monotonic() < deadline:
        time.sleep(0.1)
    if alive(record):
        with contextlib.suppress(ProcessLookupError):
            os.kill(record.pid, signal.SIGKILL)
    remove(record.server, record.owner, record.pid, root)
    return True
