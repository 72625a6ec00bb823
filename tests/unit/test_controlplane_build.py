"""The cold path of ``controlplane/build.sh``: an empty cache and a stand-in ``go`` that builds at once.

A fresh machine (a new user, CI without a cache) is the only place this path runs for real, and it
takes 10+ minutes there; the stand-in keeps every step of the script (toolchain check, module
download, the background build and its progress loop, the move into the cache) but not the compile.
"""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

import pytest

from kubeagora.devcluster.binary import build, find_build_script
from kubeagora.devcluster.errors import DevClusterError

SCRIPT = find_build_script([Path(__file__).resolve().parent])

FAKE_GO = """#!/usr/bin/env bash
# A stand-in for the Go toolchain: answers what build.sh asks and "builds" at once.
case "$1" in
  env) echo go1.26.99 ;;
  mod) echo "go: downloading k8s.io/kubernetes" ;;
  list) printf 'pkg/a\\npkg/b\\npkg/c\\n' ;;
  build)
    [[ -n "${FAKE_GO_CALLS:-}" ]] && echo build >> "$FAKE_GO_CALLS"
    [[ -n "${FAKE_GO_BUILD_S:-}" ]] && sleep "$FAKE_GO_BUILD_S"
    printf 'pkg/a\\npkg/b\\n'
    if [[ -n "${FAKE_GO_FAIL:-}" ]]; then
      echo "pkg/c: undefined: Frobnicate" >&2
      echo "compile error, last line of the log" >&2
      exit 1
    fi
    while [[ $# -gt 0 ]]; do
      if [[ "$1" == "-o" ]]; then printf '#!/bin/sh\\necho fake\\n' > "$2"; chmod +x "$2"; fi
      shift
    done ;;
  *) echo "fake go: unexpected $*" >&2; exit 3 ;;
esac
"""


@pytest.fixture
def cold_machine(tmp_path: Path) -> dict[str, str]:
    """An environment with an empty cache directory and the stand-in ``go`` first on PATH."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    go = bin_dir / "go"
    go.write_text(FAKE_GO)
    go.chmod(go.stat().st_mode | stat.S_IXUSR)
    cache = tmp_path / "cache"  # does not exist yet: the script must create it
    return {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "KUBEAGORA_CACHE": str(cache)}


def _run(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    assert SCRIPT is not None
    return subprocess.run(["bash", str(SCRIPT)], env=env, capture_output=True, text=True, timeout=60, check=False)


def test_cold_build_exits_zero_and_prints_the_cached_binary(cold_machine: dict[str, str]) -> None:
    proc = _run(cold_machine)
    assert proc.returncode == 0, proc.stderr
    binary = Path(proc.stdout.strip().splitlines()[-1])
    assert binary.is_relative_to(Path(cold_machine["KUBEAGORA_CACHE"]) / "bin")
    assert binary.name == "kubeagora-controlplane"
    assert os.access(binary, os.X_OK)
    assert "built " in proc.stderr
    assert not list(binary.parent.glob(".kubeagora-controlplane.*")), "the temporary output was left behind"

    again = _run(cold_machine)  # the warm path reuses what the cold one built
    assert again.returncode == 0
    assert again.stdout.strip() == str(binary)
    assert "reusing cached" in again.stderr


def test_failed_build_exits_one_with_the_log_tail(cold_machine: dict[str, str]) -> None:
    proc = _run({**cold_machine, "FAKE_GO_FAIL": "1"})
    assert proc.returncode == 1
    assert "go build failed" in proc.stderr
    assert "compile error, last line of the log" in proc.stderr
    assert proc.stdout.strip() == ""
    assert not list(Path(cold_machine["KUBEAGORA_CACHE"]).rglob("kubeagora-controlplane")), "no binary after a failure"


def test_python_side_reports_a_cold_build_as_success(
    cold_machine: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """``resolve_binary`` (what ``kubeagora demo`` and the tests call) takes the cold build as built."""
    for key in ("PATH", "KUBEAGORA_CACHE"):
        monkeypatch.setenv(key, cold_machine[key])
    assert SCRIPT is not None
    lines: list[str] = []
    binary = build(SCRIPT, lines.append)
    assert binary.name == "kubeagora-controlplane"
    assert any(line.startswith("built ") for line in lines)

    monkeypatch.setenv("FAKE_GO_FAIL", "1")
    monkeypatch.setenv("KUBEAGORA_CACHE", cold_machine["KUBEAGORA_CACHE"] + "-2")
    with pytest.raises(DevClusterError, match="compile error, last line of the log"):
        build(SCRIPT, lines.append)


def test_two_builds_at_once_compile_once(cold_machine: dict[str, str], tmp_path: Path) -> None:
    """A second caller waits for the first build and reuses its binary (one compile, one log)."""
    assert SCRIPT is not None
    calls = tmp_path / "calls"
    env = {**cold_machine, "FAKE_GO_CALLS": str(calls), "FAKE_GO_BUILD_S": "2"}
    procs = [subprocess.Popen(["bash", str(SCRIPT)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for _ in range(2)]
    outs = [p.communicate(timeout=60) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [err for _, err in outs]
    assert outs[0][0].strip() == outs[1][0].strip()
    assert calls.read_text().split() == ["build"]
