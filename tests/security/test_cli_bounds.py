"""CLI memory bombs: a trace, a step or a duration that would allocate without bound, and a trace
path pointed at a file whose content must not be echoed.

Each runs the real ``kubeagora`` command in a child process capped at 3 GiB of address space and a
time limit, so that without the bounds the attack ends in a MemoryError traceback or a timeout (what
today's main did: 7.28 TiB for a two-line trace, 9.8 GiB for ``step_s: 1e-6``, a run of 10^15 steps)
instead of taking the machine down. With them: exit status 2, one line, the limit named.
"""

from __future__ import annotations

import os
import resource
import subprocess
import sys
from pathlib import Path

import pytest

from kubeagora.sim.scenario import MAX_DURATION_S, MAX_STEPS, MIN_STEP_S
from kubeagora.sim.trace import MAX_REQUESTS_PER_SECOND, MAX_TRACE_SECONDS

ADDRESS_SPACE_BYTES = 3 * 2**30
TIMEOUT_S = 120


def _cap_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (ADDRESS_SPACE_BYTES, ADDRESS_SPACE_BYTES))


def kubeagora(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "COLUMNS": "200"}
    return subprocess.run([sys.executable, "-c", "from kubeagora.cli import app; app()", *args], env=env,
                          capture_output=True, text=True, timeout=TIMEOUT_S, preexec_fn=_cap_memory, check=False)


def assert_refused(proc: subprocess.CompletedProcess[str], *fragments: str) -> str:
    assert "Traceback" not in proc.stderr, proc.stderr[-2000:]
    assert proc.returncode == 2, (proc.returncode, proc.stderr[-2000:])
    message = proc.stderr.strip()
    assert message.startswith("error: ")
    assert "\n" not in message
    for fragment in fragments:
        assert fragment in message, message
    return message


def test_a_timestamps_trace_spanning_1e12_seconds_is_refused(tmp_path: Path) -> None:
    trace = tmp_path / "arrivals.csv"
    trace.write_text("timestamp\n0\n1e12\n")
    proc = kubeagora("bench", "--scenarios", "steady-drift", "--controllers", "static", "--duration", "60",
                     "--trace", str(trace))
    assert_refused(proc, str(trace), f"{MAX_TRACE_SECONDS:,} s")


def test_a_counts_trace_longer_than_the_limit_is_refused(tmp_path: Path) -> None:
    trace = tmp_path / "counts.txt"
    trace.write_text("1 " * (MAX_TRACE_SECONDS + 1))
    proc = kubeagora("bench", "--scenarios", "steady-drift", "--controllers", "static", "--duration", "60",
                     "--trace", str(trace))
    assert_refused(proc, str(trace), f"{MAX_TRACE_SECONDS:,} seconds")


def test_a_count_too_large_for_a_float_is_refused(tmp_path: Path) -> None:
    trace = tmp_path / "counts.txt"
    trace.write_text("1 2\n" + "9" * 400 + "\n")
    proc = kubeagora("bench", "--scenarios", "steady-drift", "--controllers", "static", "--duration", "60",
                     "--trace", str(trace))
    assert_refused(proc, "line 2, word 1", f"{MAX_REQUESTS_PER_SECOND:,}")


def test_a_microsecond_step_is_refused(tmp_path: Path) -> None:
    scenario = tmp_path / "tiny-step.yaml"
    scenario.write_text("name: tiny-step\nstep_s: 0.000001\nduration_s: 60\n")
    proc = kubeagora("simulate", "--scenario", str(scenario), "--controller", "static")
    assert_refused(proc, "step_s", f"{MIN_STEP_S:g}")


def test_too_many_steps_are_refused(tmp_path: Path) -> None:
    scenario = tmp_path / "long.yaml"
    scenario.write_text(f"name: long\nstep_s: {MIN_STEP_S}\nduration_s: {MAX_DURATION_S}\n")
    proc = kubeagora("simulate", "--scenario", str(scenario), "--controller", "static")
    assert_refused(proc, "steps", f"{MAX_STEPS:,}")


@pytest.mark.parametrize("duration", ["1e15", "inf", "nan"])
def test_a_huge_duration_is_refused(duration: str) -> None:
    proc = kubeagora("simulate", "--scenario", "steady-drift", "--controller", "static", "--duration", duration)
    assert_refused(proc, "--duration", f"{MAX_DURATION_S:,}")


@pytest.mark.parametrize("fmt", ["counts", "timestamps"])
def test_an_error_does_not_echo_the_content_of_the_file_the_trace_names(tmp_path: Path, fmt: str) -> None:
    secret = tmp_path / "credentials"
    secret.write_text("hunter2-token,x\nanother-secret,y\n")
    scenario = tmp_path / "leak.yaml"
    scenario.write_text(f"name: leak\nworkload:\n  trace: {{path: {secret}, format: {fmt}}}\n")
    proc = kubeagora("simulate", "--scenario", str(scenario), "--controller", "static", "--duration", "60")
    message = assert_refused(proc, str(secret), "line")
    for word in ("hunter2", "another-secret", "token"):
        assert word not in message


def test_a_binary_file_as_trace_is_one_clear_line() -> None:
    proc = kubeagora("bench", "--scenarios", "steady-drift", "--controllers", "static", "--duration", "60",
                     "--trace", sys.executable, "--trace-format", "timestamps")
    assert_refused(proc, "not a text file")
