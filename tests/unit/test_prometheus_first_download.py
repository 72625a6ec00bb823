"""The first Prometheus download on a fresh machine: an empty cache, no prometheus on PATH.

Stand-ins for ``apt-get`` and ``dpkg-deb`` play Debian's tools (no network, no root), so the whole
cold path of ``resolve_prometheus`` runs: the download, the fallback that fetches package lists into a
private directory when the machine has none (container images delete them), the unpack, the check that
the binary runs, and the move into the cache that later calls reuse.
"""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from kubeagora.devcluster.prometheus import PROMETHEUS_ENV, PrometheusError, resolve_prometheus

FAKE_APT = """#!/usr/bin/env bash
# apt-get stand-in: `download prometheus` leaves a .deb in the working directory.
echo "$*" >> "$FAKE_LOG"
private=0; for a in "$@"; do [[ "$a" == Dir::State::Lists=* ]] && private=1; done
case " $* " in
  *" update "*) exit 0 ;;
  *" download "*)
    if [[ -n "${FAKE_NO_LISTS:-}" && $private == 0 ]]; then
      echo "E: Unable to locate package prometheus" >&2; exit 100
    fi
    echo fake-deb > prometheus_2.42.0+ds-5+deb12u1_amd64.deb ;;
  *) exit 3 ;;
esac
"""

FAKE_DPKG = """#!/usr/bin/env bash
# dpkg-deb stand-in: -f DEB Version, -x DEB DIR.
case "$1" in
  -f) echo "2.42.0+ds-5+deb12u1" ;;
  -x)
    mkdir -p "$3/usr/bin"
    for tool in prometheus promtool; do
      printf '#!/bin/sh\\necho "%s, version 2.42.0"\\n' "$tool" > "$3/usr/bin/$tool"
      chmod +x "$3/usr/bin/$tool"
    done ;;
  *) exit 3 ;;
esac
"""


def _tool(directory: Path, name: str, text: str) -> None:
    path = directory / name
    path.write_text(text)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)


@pytest.fixture
def fresh_machine(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """PATH holds only the stand-ins and the shell; the cache root is empty. Returns the apt-get log."""
    tools = tmp_path / "bin"
    tools.mkdir()
    _tool(tools, "apt-get", FAKE_APT)
    _tool(tools, "dpkg-deb", FAKE_DPKG)
    for name in ("bash", "sh", "mkdir", "chmod", "printf", "echo"):
        src = Path("/bin") / name
        if src.exists():
            (tools / name).symlink_to(src)
    log = tmp_path / "apt.log"
    monkeypatch.delenv(PROMETHEUS_ENV, raising=False)
    monkeypatch.setenv("PATH", str(tools))
    monkeypatch.setenv("FAKE_LOG", str(log))
    monkeypatch.setenv("KUBEAGORA_CACHE", str(tmp_path / "cache"))
    return log


def test_first_download_lands_in_the_cache_and_is_reused(fresh_machine: Path, tmp_path: Path) -> None:
    binary = resolve_prometheus()
    assert binary == tmp_path / "cache" / "bin" / "prometheus-2.42.0+ds-5+deb12u1" / "prometheus"
    assert (binary.parent / "promtool").is_file()
    assert not list((tmp_path / "cache" / "bin").glob(".prometheus-download-*")), "the download's work dir was left"
    assert fresh_machine.read_text().count("download") == 1

    assert resolve_prometheus() == binary  # the second call hits the cache: no second download
    assert fresh_machine.read_text().count("download") == 1


def test_without_package_lists_they_are_fetched_privately(fresh_machine: Path, monkeypatch: pytest.MonkeyPatch,
                                                          tmp_path: Path) -> None:
    monkeypatch.setenv("FAKE_NO_LISTS", "1")
    binary = resolve_prometheus()
    assert binary.is_file()
    calls = fresh_machine.read_text().splitlines()
    assert len(calls) == 3, calls  # download (fails), private update, private download
    assert "Dir::State::Lists=" in calls[1]
    assert "update" in calls[1]


def test_a_binary_that_does_not_run_is_refused(fresh_machine: Path, tmp_path: Path) -> None:
    _tool(tmp_path / "bin", "dpkg-deb", FAKE_DPKG.replace('echo "%s, version 2.42.0"', "exit 1"))
    with pytest.raises(PrometheusError, match="does not run here"):
        resolve_prometheus()
    assert not list((tmp_path / "cache" / "bin").glob("prometheus-*")), "a broken binary was cached"
