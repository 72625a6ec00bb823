"""Finding, or building, the ``kubeagora-controlplane`` binary.

Order: an explicit path; then ``$KUBEAGORA_CONTROLPLANE_BINARY``; then ``controlplane/build.sh``
of the source checkout (found above this file or above the working directory), which reuses its
per-version cache and builds only when the cache misses.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

from kubeagora.devcluster.errors import DevClusterError, GoMissingError

BINARY_ENV = "KUBEAGORA_CONTROLPLANE_BINARY"
MIN_GO = (1, 26)

Progress = Callable[[str], None]


def _quiet(_: str) -> None:
    return None


def parse_go_version(text: str) -> tuple[int, int] | None:
    """``(1, 26)`` from ``go1.26.8`` or ``go version go1.26.8 linux/amd64``; None if unparsable."""
    m = re.search(r"go(\d+)\.(\d+)", text)
    return (int(m.group(1)), int(m.group(2))) if m else None


def go_version() -> tuple[int, int] | None:
    """The (major, minor) of the ``go`` on PATH, or None when there is none."""
    exe = shutil.which("go")
    if exe is None:
        return None
    proc = subprocess.run(
        [exe, "env", "GOVERSION"], capture_output=True, text=True, check=False,
        env={**os.environ, "GOTOOLCHAIN": "local"},
    )  # fmt: skip
    return parse_go_version(proc.stdout) if proc.returncode == 0 else None


def find_build_script(starts: list[Path] | None = None) -> Path | None:
    """``controlplane/build.sh`` in the nearest ancestor of this module or the working directory."""
    if starts is None:
        starts = [Path(__file__).resolve().parent, Path.cwd().resolve()]
    for start in starts:
        for directory in (start, *start.parents):
            script = directory / "controlplane" / "build.sh"
            if script.is_file() and (directory / "controlplane" / "go.mod").is_file():
                return script
    return None


def _check_executable(path: Path, origin: str) -> Path:
    if not path.is_file() or not os.access(path, os.X_OK):
        raise DevClusterError(f"{origin}: {path} is not an executable file")
    return path


def resolve_binary(explicit: Path | None = None, progress: Progress = _quiet) -> Path:
    """The path of a usable control-plane binary, building it first when needed."""
    if explicit is not None:
        return _check_executable(explicit.expanduser(), "--binary")
    from_env = os.environ.get(BINARY_ENV)
    if from_env:
        return _check_executable(Path(from_env).expanduser(), f"${BINARY_ENV}")
    script = find_build_script()
    if script is None:
        raise DevClusterError(
            "cannot find the control-plane binary: pass --binary PATH, set "
            f"${BINARY_ENV}, or run from a kubeagora source checkout (it has controlplane/build.sh)"
        )
    return build(script, progress)


def build(script: Path, progress: Progress = _quiet) -> Path:
    """Run ``build.sh`` (a no-op when its cache hits), streaming its progress lines."""
    proc = subprocess.Popen(
        ["bash", str(script)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, bufsize=1,
    )  # fmt: skip
    assert proc.stderr is not None
    assert proc.stdout is not None
    lines: list[str] = []
    for line in proc.stderr:
        line = line.rstrip("\n")
        lines.append(line)
        progress(line.removeprefix("[controlplane] "))
    out = proc.stdout.read().strip().splitlines()
    code = proc.wait()
    message = lines[-1].removeprefix("[controlplane] ") if lines else f"{script} failed"
    if code == 2:
        raise GoMissingError(message)
    if code != 0 or not out:
        tail = "\n".join(lines[-15:])
        raise DevClusterError(f"building the control plane failed (exit {code}):\n{tail}")
    return _check_executable(Path(out[-1]), str(script))
