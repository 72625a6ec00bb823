"""The extender's verbs worker must not outlive a parent killed halfway through sending it an update.

The attack: the parent dies (SIGKILL, the OOM killer) after writing only part of an update into the
updates queue. The child then waits for the rest of that message, and since it holds the queue's write
end itself no end of file ever comes: before the fix it stayed forever, an orphan holding its cache.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

PARENT = textwrap.dedent("""
    import os, struct, sys, time
    from kubeagora.scheduler_plugin.verbs import ProcessVerbs

    verbs = ProcessVerbs()
    deadline = time.monotonic() + 60
    while not verbs.alive():
        assert time.monotonic() < deadline, "the verbs worker never became ready"
        time.sleep(0.05)
    # half an update: a header announcing 1000 bytes, then one byte of them
    os.write(verbs._updates._writer.fileno(), struct.pack("!i", 1000) + b"x")
    print(verbs._process.pid, flush=True)
    time.sleep(600)
""")


def _running(pid: int) -> bool:
    """Alive and not a zombie waiting to be reaped."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False
    return state not in ("Z", "X")


def test_verbs_worker_exits_when_its_parent_is_killed_mid_update() -> None:
    parent = subprocess.Popen([sys.executable, "-c", PARENT], stdout=subprocess.PIPE, text=True)
    try:
        line = parent.stdout.readline() if parent.stdout else ""
        assert line.strip().isdigit(), f"the parent did not report its worker (exit {parent.poll()})"
        child = int(line)
        time.sleep(0.5)  # the child is now blocked on the half-written update
        assert _running(child)
        os.kill(parent.pid, signal.SIGKILL)
        parent.wait(10)
        deadline = time.monotonic() + 10
        while _running(child) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not _running(child), "the verbs worker outlived its killed parent"
    finally:
        parent.kill()
        if "child" in locals() and _running(child):
            os.kill(child, signal.SIGKILL)
