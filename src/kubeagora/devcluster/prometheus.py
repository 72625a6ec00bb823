"""A real Prometheus next to the devcluster: get the binary without root, write its scrape config, run it.

The binary, first found wins:

1. ``$KUBEAGORA_PROMETHEUS_BINARY``;
2. ``prometheus`` on ``PATH``;
3. a copy cached by an earlier run in ``<cache>/bin/prometheus-<version>/prometheus``, where ``<cache>`` is
   ``$KUBEAGORA_CACHE`` or ``~/.cache/kubeagora`` (the root ``controlplane/build.sh`` caches in too);
4. Debian's ``prometheus`` package, fetched with ``apt-get download`` (no root needed) and unpacked
   with ``dpkg-deb -x``; only ``usr/bin/prometheus`` (and ``promtool``) are kept, in the cache above. Where the
   machine's package lists are missing (container images delete them), they are fetched into a
   private directory first (``apt-get -o Dir::State::Lists=... update``, again without root).

The package's web-UI assets and console libraries are not kept: scraping and the HTTP query API
(all that ``kubeagora.operator.metrics_source`` uses) work without them.

A server's state directory holds:

    prometheus.yml      the scrape config (``scrape_config``)
    data/               the TSDB
    prometheus.log      stdout and stderr
    prometheus.json     binary, port and pid (what ``stop`` and ``url`` read)
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import shutil
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

import yaml

from kubeagora.devcluster import defaults
from kubeagora.devcluster.cluster import HOST, free_ports, pid_alive, port_free, stop_pid
from kubeagora.devcluster.errors import DevClusterError

PROMETHEUS_ENV = "KUBEAGORA_PROMETHEUS_BINARY"
DEBIAN_PACKAGE = "prometheus"
CACHE_ENV = "KUBEAGORA_CACHE"
DEFAULT_STATE_DIR = defaults.PROMETHEUS_STATE_DIR
DEFAULT_PORT = defaults.PROMETHEUS_PORT
DEFAULT_SCRAPE_INTERVAL_S = defaults.PROMETHEUS_SCRAPE_INTERVAL_S
#: Scrape job names (in `defaults`, which the CLI reads without importing this module).
JOB_MOCK_KUBELET = defaults.JOB_MOCK_KUBELET
JOB_OPERATOR = defaults.JOB_OPERATOR
JOB_SCHEDULER_EXTENDER = defaults.JOB_SCHEDULER_EXTENDER
JOBS: tuple[str, ...] = (JOB_MOCK_KUBELET, JOB_OPERATOR, JOB_SCHEDULER_EXTENDER)

Progress = Callable[[str], None]

_TARGET = re.compile(r"^[A-Za-z0-9.\-]+:\d{1,5}$|^\[[0-9A-Fa-f:]+\]:\d{1,5}$")


def _quiet(_: str) -> None:
    return None


class PrometheusError(DevClusterError):
    """Prometheus could not be obtained, configured, started or stopped."""


# --- the scrape config (pure) ----------------------------------------------------------------------


def duration(seconds: float) -> str:
    """A Prometheus duration: ``2s``, ``500ms``."""
    if seconds <= 0:
        raise PrometheusError(f"a scrape interval must be positive (got {seconds:g}s)")
    ms = round(seconds * 1000)
    return f"{ms // 1000}s" if ms % 1000 == 0 else f"{ms}ms"


def scrape_config(targets: Mapping[str, Sequence[str]], scrape_interval_s: float = DEFAULT_SCRAPE_INTERVAL_S
                  ) -> dict[str, Any]:
    """A ``prometheus.yml`` scraping ``/metrics`` of each job's ``host:port`` targets.

    The interval is short (2 s by default) so that tests and demos see a burst within seconds; the
    operator is told the interval (``--scrape-interval``) and spans four in its windows; the timeout
    equals the interval, as Prometheus requires.
    """
    every = duration(scrape_interval_s)
    jobs = []
    for job, addresses in targets.items():
        if not re.fullmatch(r"[a-zA-Z_][a-zA-Z0-9_\-]*", job):
            raise PrometheusError(f"scrape job {job!r}: not a valid job name")
        bad = [a for a in addresses if not _TARGET.match(a)]
        if bad:
            raise PrometheusError(f"scrape job {job}: {bad[0]!r} is not HOST:PORT")
        if addresses:
            jobs.append({"job_name": job, "metrics_path": "/metrics",
                         "static_configs": [{"targets": list(addresses)}]})
    return {
        "global": {"scrape_interval": every, "scrape_timeout": every, "evaluation_interval": every},
        "scrape_configs": jobs,
    }


# --- the binary ------------------------------------------------------------------------------------


def cache_dirname(version: str) -> str:
    """``prometheus-2.42.0+ds-5+deb12u1`` from a Debian version (an epoch's ``:`` becomes ``_``)."""
    safe = re.sub(r"[^A-Za-z0-9.+~\-]", "_", version.strip())
    if not safe:
        raise PrometheusError("the downloaded prometheus package has no version")
    return f"prometheus-{safe}"


def _executable(path: Path) -> bool:
    return path.is_file() and os.access(path, os.X_OK)


def default_cache_dir() -> Path:
    """``$KUBEAGORA_CACHE/bin`` (read at each call, as build.sh reads it), else ``~/.cache/kubeagora/bin``."""
    return Path(os.environ.get(CACHE_ENV) or "~/.cache/kubeagora").expanduser() / "bin"


def cached_binary(cache_dir: Path | None = None) -> Path | None:
    """A previously unpacked ``prometheus-<version>/prometheus`` (the last by name), if any."""
    cache_dir = default_cache_dir() if cache_dir is None else cache_dir
    found = sorted(p for p in cache_dir.expanduser().glob("prometheus-*/prometheus") if _executable(p))
    return found[-1] if found else None


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else "(no output)"


def resolve_prometheus(cache_dir: Path | None = None, progress: Progress = _quiet) -> Path:
    """The path of a runnable ``prometheus``, downloading Debian's package once when needed."""
    from_env = os.environ.get(PROMETHEUS_ENV)
    if from_env:
        path = Path(from_env).expanduser()
        if not _executable(path):
            raise PrometheusError(f"${PROMETHEUS_ENV}: {path} is not an executable file")
        return path
    on_path = shutil.which("prometheus")
    if on_path:
        return Path(on_path)
    cache_dir = (default_cache_dir() if cache_dir is None else cache_dir).expanduser()
    with _file_lock(cache_dir / "prometheus.lock"):  # one download, however many processes ask
        cached = cached_binary(cache_dir)
        if cached is not None:
            return cached
        return _download(cache_dir, progress)


def _download(cache_dir: Path, progress: Progress) -> Path:
    apt, dpkg = shutil.which("apt-get"), shutil.which("dpkg-deb")
    if apt is None or dpkg is None:
        raise PrometheusError(
            "cannot obtain prometheus: it is not on PATH and apt-get/dpkg-deb are missing to fetch Debian's "
            f"package; install prometheus (https://prometheus.io/download/) or set ${PROMETHEUS_ENV}"
        )
    work = Path(tempfile.mkdtemp(prefix=".prometheus-download-", dir=cache_dir))
    try:
        progress(f"apt-get download {DEBIAN_PACKAGE}")
        proc = subprocess.run([apt, "-q", "download", DEBIAN_PACKAGE], cwd=work, capture_output=True, text=True,
                              check=False)
        if proc.returncode != 0:
            # No package lists on this machine (or stale ones): fetch them into a private directory.
            progress(f"apt-get download failed ({_last_line(proc.stderr)}); fetching package lists privately")
            lists, cache = work / "apt" / "lists", work / "apt" / "cache"
            for d in (lists / "partial", cache / "archives" / "partial"):
                d.mkdir(parents=True)
            private = ["-o", f"Dir::State::Lists={lists}", "-o", f"Dir::Cache={cache}"]
            update = subprocess.run([apt, "-q", *private, "update"], cwd=work, capture_output=True, text=True,
                                    check=False)
            proc = subprocess.run([apt, "-q", *private, "download", DEBIAN_PACKAGE], cwd=work, capture_output=True,
                                  text=True, check=False)
            if proc.returncode != 0:
                why = _last_line(proc.stderr if update.returncode == 0 else update.stderr)
                raise PrometheusError(f"cannot obtain prometheus: not on PATH, and `apt-get download "
                                      f"{DEBIAN_PACKAGE}` failed: {why}")
        debs = sorted(work.glob(f"{DEBIAN_PACKAGE}_*.deb"))
        if not debs:
            raise PrometheusError(f"apt-get download {DEBIAN_PACKAGE} left no .deb in {work}")
        return _unpack(dpkg, debs[-1], work, cache_dir, progress)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _unpack(dpkg: str, deb: Path, work: Path, cache_dir: Path, progress: Progress) -> Path:
    version = subprocess.run([dpkg, "-f", str(deb), "Version"], capture_output=True, text=True, check=False)
    if version.returncode != 0:
        raise PrometheusError(f"dpkg-deb -f {deb.name} Version failed: {_last_line(version.stderr)}")
    progress(f"unpacking {deb.name}")
    root = work / "root"
    proc = subprocess.run([dpkg, "-x", str(deb), str(root)], capture_output=True, text=True, check=False)
    binary = root / "usr" / "bin" / "prometheus"
    if proc.returncode != 0 or not _executable(binary):
        raise PrometheusError(f"dpkg-deb -x {deb.name} gave no usr/bin/prometheus: {_last_line(proc.stderr)}")
    staged = work / "staged"
    staged.mkdir()
    shutil.copy2(binary, staged / "prometheus")
    if _executable(root / "usr" / "bin" / "promtool"):  # checks configs (``promtool check config``)
        shutil.copy2(root / "usr" / "bin" / "promtool", staged / "promtool")
    check = subprocess.run([str(staged / "prometheus"), "--version"], capture_output=True, text=True, check=False)
    if check.returncode != 0:
        raise PrometheusError(f"the unpacked prometheus does not run here: {_last_line(check.stderr)}")
    final = cache_dir / cache_dirname(version.stdout)
    if final.exists():
        shutil.rmtree(final)
    staged.rename(final)  # same filesystem: the cache never shows a half-written binary
    progress(f"prometheus cached in {final}")
    return final / "prometheus"


def promtool_for(prometheus: Path) -> Path | None:
    """``promtool`` next to ``prometheus`` (as the cache and Debian's package keep it), else on PATH."""
    beside = prometheus.parent / "promtool"
    if _executable(beside):
        return beside
    on_path = shutil.which("promtool")
    return Path(on_path) if on_path else None


# --- the server ------------------------------------------------------------------------------------


def _tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _is_prometheus(pid: int) -> bool:
    if not pid_alive(pid):
        return False
    try:
        argv0 = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0]
    except OSError:
        return True  # no /proc (macOS): trust the recorded pid
    return argv0.endswith(b"prometheus")


class PrometheusServer:
    """One Prometheus process scraping ``targets`` (job name → ``HOST:PORT`` list), state in ``state_dir``.

    ``port=0`` picks a free port. ``start`` returns once ``/-/ready`` answers; the process runs in
    its own session, so it outlives this object (``kubeagora devcluster prometheus up``) until
    ``stop`` — or the ``with`` block ends.
    """

    def __init__(
        self,
        state_dir: Path = DEFAULT_STATE_DIR,
        targets: Mapping[str, Sequence[str]] | None = None,
        scrape_interval_s: float = DEFAULT_SCRAPE_INTERVAL_S,
        *,
        port: int = DEFAULT_PORT,
        binary: Path | None = None,
        retention: str = "1d",
        progress: Progress = _quiet,
    ) -> None:
        if not 0 <= port < 65536:
            raise PrometheusError(f"port {port}: not a port number")
        self.root = state_dir.expanduser().resolve()
        self.targets = {job: tuple(addrs) for job, addrs in (targets or {}).items()}
        self.scrape_interval_s = scrape_interval_s
        self.port = port
        self.binary = binary
        self.retention = retention
        self.progress = progress
        self._child: subprocess.Popen[bytes] | None = None

    @property
    def config_file(self) -> Path:
        return self.root / "prometheus.yml"

    @property
    def log(self) -> Path:
        return self.root / "prometheus.log"

    @property
    def state_file(self) -> Path:
        return self.root / "prometheus.json"

    def _state(self) -> dict[str, Any]:
        try:
            data = json.loads(self.state_file.read_text())
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as e:
            raise PrometheusError(f"{self.state_file}: unreadable state file: {e}") from None
        return data if isinstance(data, dict) else {}

    def _write_state(self, data: Mapping[str, Any]) -> None:
        tmp = self.state_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(data, indent=2, sort_keys=True))
        tmp.replace(self.state_file)

    @property
    def pid(self) -> int | None:
        """The pid of the Prometheus this state directory started, while it runs."""
        pid = self._state().get("pid")
        return pid if isinstance(pid, int) and _is_prometheus(pid) else None

    @property
    def url(self) -> str | None:
        """``http://127.0.0.1:PORT`` of the running server, None when it does not run."""
        port = self._state().get("port")
        return f"http://{HOST}:{port}" if self.pid is not None and isinstance(port, int) else None

    def ready(self, timeout_s: float = 2.0) -> bool:
        url = self.url
        if url is None:
            return False
        try:
            with urllib.request.urlopen(f"{url}/-/ready", timeout=timeout_s) as resp:
                return bool(resp.status == 200)
        except (urllib.error.URLError, OSError):
            return False

    def start(self, timeout_s: float = 60.0) -> bool:
        """Start Prometheus and wait for ``/-/ready``; False (nothing done) when it already runs and is ready.

        An already running server gets the new scrape config (written, then ``/-/reload``).
        """
        config = scrape_config(self.targets, self.scrape_interval_s)  # bad targets fail before anything runs
        self.root.mkdir(parents=True, exist_ok=True)
        self.config_file.write_text(yaml.safe_dump(config, sort_keys=False))
        if self.pid is not None:
            if self.ready():
                self._reload()
                self.progress(f"already running at {self.url}")
                return False
            self.stop()
        binary = self.binary or resolve_prometheus(progress=self.progress)
        port = self.port or free_ports(1)[0]
        if not port_free(port):
            raise PrometheusError(f"port {port} on {HOST} is taken; stop what listens there or pick another port")
        args = [str(binary), f"--config.file={self.config_file}", f"--storage.tsdb.path={self.root / 'data'}",
                f"--storage.tsdb.retention.time={self.retention}", f"--web.listen-address={HOST}:{port}",
                "--web.enable-lifecycle"]
        self.progress(f"starting prometheus on {HOST}:{port}")
        with self.log.open("ab") as log:
            log.write(f"\n==> {time.strftime('%Y-%m-%dT%H:%M:%S')} {' '.join(args)}\n".encode())
            log.flush()
            self._child = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                           cwd=self.root, start_new_session=True)
        self._write_state({"pid": self._child.pid, "port": port, "binary": str(binary)})
        deadline = time.monotonic() + timeout_s
        while not self.ready():
            code = self._child.poll()
            if code is not None:
                raise PrometheusError(f"prometheus exited with status {code} while starting; "
                                      f"last lines of {self.log}:\n{_tail(self.log)}")
            if time.monotonic() > deadline:
                self.stop()
                raise PrometheusError(f"prometheus not ready at {HOST}:{port}/-/ready after {timeout_s:.0f}s; "
                                      f"last lines of {self.log}:\n{_tail(self.log)}")
            time.sleep(0.2)
        self.progress(f"prometheus ready at {self.url} (pid {self._child.pid})")
        return True

    def _reload(self) -> None:
        req = urllib.request.Request(f"{self.url}/-/reload", method="POST")
        try:
            with urllib.request.urlopen(req, timeout=10):
                pass
        except (urllib.error.URLError, OSError) as e:
            raise PrometheusError(f"prometheus at {self.url} refused the new config: {e}") from None

    def stop(self, timeout_s: float = 20.0) -> bool:
        """Stop the server (SIGTERM, then SIGKILL); False when none ran. The TSDB stays."""
        pid = self.pid
        if pid is not None:
            self.progress(f"stopping prometheus (pid {pid})")
            stop_pid(pid, timeout_s)
        if self._child is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._child.wait(timeout=1)
            self._child = None
        if self.state_file.exists():
            state = self._state()
            state.pop("pid", None)
            self._write_state(state)
        return pid is not None

    def __enter__(self) -> PrometheusServer:
        self.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None
                 ) -> None:
        self.stop()
