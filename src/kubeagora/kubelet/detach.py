"""``kubeagora mock-kubelet --detach``: start the mock kubelet in the background, but only return once it
serves, so a start-up failure reaches the terminal.

Run in the background with a shell's ``&`` and its output in a file, a mock kubelet that cannot start
(an API server that is down, a port in use, nodes another kubelet owns) dies where nobody looks.
``--detach`` instead starts the same command as a child in its own session, logging to
``--log-file``, and waits: once the child's runtime record (``runtime``) appears and its ``/healthz``
answers, it prints where the kubelet serves and exits 0; if the child exits first, it prints the
child's error lines (each names the command that fixes it) on stderr and exits with the child's status.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from kubeagora.kubelet import runtime

DETACH_FLAG = "--detach"


def child_args(argv: Sequence[str]) -> list[str]:
    """The command line of the child: this one without ``--detach``, run by this interpreter."""
    return [sys.executable, "-c", "from kubeagora.cli import app; app()",
            *(a for a in argv if a != DETACH_FLAG)]


def error_lines(log_text: str, limit: int = 5) -> list[str]:
    """What the child said went wrong (its ``error:`` lines, else the end of its log)."""
    lines = [ln for ln in log_text.splitlines() if ln.strip()]
    errors = [ln for ln in lines if ln.startswith("error:")]
    return (errors or lines)[-limit:]


@dataclass(frozen=True)
class Started:
    pid: int
    record: runtime.Record | None
    """None: the child exited (``code``) or did not serve in time."""
    code: int | None = None
    log_tail: tuple[str, ...] = ()


def start(argv: Sequence[str], log_file: Path, server: str, owner: str, timeout_s: float,
          runtime_dir: Path | None = None) -> Started:
    log_file.parent.mkdir(parents=True, exist_ok=True)
    offset = log_file.stat().st_size if log_file.exists() else 0
    with log_file.open("ab") as log:
        log.write(f"==> {time.strftime('%Y-%m-%dT%H:%M:%S')} mock-kubelet {' '.join(argv)}\n".encode())
        log.flush()
        child = subprocess.Popen(child_args(argv), stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                 start_new_session=True)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        code = child.poll()
        if code is not None:
            return Started(child.pid, None, code, tuple(error_lines(_tail(log_file, offset))))
        record = next((r for r in runtime.records_for(server, runtime_dir) if r.pid == child.pid), None)
        if record is not None and runtime.serving(record):
            return Started(child.pid, record)
        time.sleep(0.25)
    child.terminate()
    try:
        child.wait(timeout=30)
    except subprocess.TimeoutExpired:
        child.kill()
    return Started(child.pid, None, None, tuple(error_lines(_tail(log_file, offset))))


def _tail(path: Path, offset: int, limit_bytes: int = 20_000) -> str:
    """What this run wrote to the log (from ``offset``), at most its last ``limit_bytes``."""
    try:
        data = path.read_bytes()[offset:]
    except OSError:
        return ""
    return data[-limit_bytes:].decode(errors="replace")
