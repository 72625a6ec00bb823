"""CLI startup: how long `kubeagora --help` takes, against the imports it avoids (issue target: < 1 s).

Each command runs `--runs` times as a fresh process, interleaved so machine load hits them alike;
prints the median and the spread of wall time and of CPU time (user + system, which load on a shared
machine inflates less than wall time). Usage:

    python benchmarks/cli_startup.py              # 15 runs of each
    python benchmarks/cli_startup.py --runs 30
"""

from __future__ import annotations

import argparse
import resource
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

TARGET_S = 1.0


def commands() -> dict[str, list[str]]:
    exe = shutil.which("kubeagora", path=str(Path(sys.executable).parent)) or "kubeagora"
    return {
        "kubeagora --help": [exe, "--help"],
        "kubeagora --version": [exe, "--version"],
        "kubeagora simulate --help": [exe, "simulate", "--help"],
        "python -c pass (interpreter alone)": [sys.executable, "-c", "pass"],
        "python -c 'import cvxpy' (what --help no longer imports)": [sys.executable, "-c", "import cvxpy"],
    }


def timed(command: list[str]) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of one run of `command`."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    cmds = commands()
    samples: dict[str, list[tuple[float, float]]] = {name: [] for name in cmds}
    for command in cmds.values():
        timed(command)  # warm the file cache (.pyc, site-packages) once
    for _ in range(args.runs):
        for name, command in cmds.items():
            samples[name].append(timed(command))
    print(f"{'command':58} {'wall median':>11} {'wall p10-p90':>13} {'CPU median':>10}")
    for name, runs in samples.items():
        walls = sorted(w for w, _ in runs)
        cpus = [c for _, c in runs]
        p10, p90 = walls[len(walls) // 10], walls[(len(walls) * 9) // 10 - 1 if len(walls) >= 10 else -1]
        print(f"{name:58} {statistics.median(walls):>10.2f}s {p10:>6.2f}-{p90:.2f}s {statistics.median(cpus):>9.2f}s")
    help_wall = statistics.median(w for w, _ in samples["kubeagora --help"])
    verdict = "met" if help_wall < TARGET_S else "NOT met"
    print(f"target kubeagora --help < {TARGET_S:g} s: {verdict} (median {help_wall:.2f} s over {args.runs} runs)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
