"""The seed paper's Table 2 on a real local control plane, over several runs: one burst, the real
Kubernetes HPA at several CPU targets and kubeagora's operator side by side (time to scale, cold-start
p99 delta, SLO violations in the burst, replica-seconds).

    .venv/bin/python benchmarks/burst_table2.py                                  # 3 runs, ~5 min each
    .venv/bin/python benchmarks/burst_table2.py --runs 1 --burst-seconds 40 --warm-seconds 25   # smoke run
    .venv/bin/python benchmarks/burst_table2.py --scrape-interval 15   # Prometheus at a usual interval

Each run brings up a fresh stack (``kubeagora.devcluster.stack``: control plane, mock kubelet,
Prometheus, scheduler extender, operator) with its state under ``--out/run-K/``, applies the identical
Deployments of ``kubeagora.bench.cluster_burst`` (one under a real HPA per ``--hpa-targets`` target, one
under an OrchestrationIntent; Burstable pods, no CPU limit unless ``--cpu-limit``), holds the base load
``--warm-seconds``, multiplies it by ``--factor`` for ``--burst-seconds``, writes ``run-K.json`` (plan,
the signal each side read, the machine's load average over the run, figures, per-second timeline) and
``run-K.png``, and tears the stack down (the logs stay in ``run-K/stack/logs``). At the end it prints a
markdown table of each figure's mean (min–max) over the runs per autoscaler with the paper's figures
beside them, and the operator against the best HPA target on time to scale and violations, and
writes both to ``--out/table.md``. The figures' definitions are in the module's docstring.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

from kubeagora.bench import cluster_burst as cb
from kubeagora.devcluster.cluster import Layout
from kubeagora.devcluster.errors import DevClusterError
from kubeagora.devcluster.stack import Stack, StackOptions
from kubeagora.kubeapi.quantity import checked_quantity, quantity

USAGE_ERROR = 2
err = Console(stderr=True)


class OneLineParser(argparse.ArgumentParser):
    """Bad arguments: one line on stderr, exit 2."""

    def error(self, message: str) -> NoReturn:
        sys.stderr.write(f"error: {message}\n")
        raise SystemExit(USAGE_ERROR)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    default = cb.BurstPlan()
    p = OneLineParser(description=(__doc__ or "").split("\n\n")[0])
    p.add_argument("--runs", type=int, default=3, help="fresh stacks, one burst each (default 3)")
    p.add_argument("--burst-seconds", type=float, default=default.burst_s, help="how long the burst lasts")
    p.add_argument("--warm-seconds", type=float, default=default.warm_s, help="steady base load before it (≥ 20)")
    p.add_argument("--factor", type=float, default=default.factor, help="the burst multiplies the base load")
    p.add_argument("--base-rps", type=float, default=default.base_rps, help="base load of each Deployment")
    p.add_argument("--nodes", type=int, default=24, help="mock nodes (≥ 4)")
    p.add_argument("--hpa-targets", default=",".join(map(str, default.hpa_targets_pct)),
                   help="the real HPA's CPU utilisation targets in %%, one Deployment each (default 50,70,80)")
    p.add_argument("--cpu-limit", default=None,
                   help="the pods' CPU limit (a quantity, e.g. 1 or 1000m); none by default: Burstable pods")
    p.add_argument("--scrape-interval", type=float, default=2.0,
                   help="seconds between Prometheus scrapes (the operator's windows span four)")
    p.add_argument("--cold-start-seconds", type=float, default=default.cold_start_s,
                   help="seconds from a pod's start to Ready")
    p.add_argument("--out", type=Path, default=Path("out/burst-table2"), help="where runs, plots and table go")
    args = p.parse_args(argv)
    if args.runs < 1:
        p.error(f"--runs must be at least 1 (got {args.runs})")
    for flag, value in (("--burst-seconds", args.burst_seconds), ("--factor", args.factor),
                        ("--base-rps", args.base_rps)):
        if not value > 0:
            p.error(f"{flag} must be positive (got {value:g})")
    if not args.warm_seconds >= 20:
        p.error(f"--warm-seconds must be at least 20, for a steady baseline (got {args.warm_seconds:g})")
    if not args.scrape_interval > 0:
        p.error(f"--scrape-interval must be positive (got {args.scrape_interval:g})")
    if not args.cold_start_seconds >= 0:
        p.error(f"--cold-start-seconds must be ≥ 0 (got {args.cold_start_seconds:g})")
    if args.nodes < 4:
        p.error(f"--nodes must be at least 4 (got {args.nodes})")
    try:
        targets = tuple(int(t) for t in args.hpa_targets.split(",") if t.strip())
    except ValueError:
        p.error(f"--hpa-targets must be whole percentages separated by commas (got {args.hpa_targets!r})")
    if not targets or any(not 1 <= t <= 100 for t in targets) or len(set(targets)) < len(targets):
        p.error(f"--hpa-targets must be distinct percentages in 1..100 (got {args.hpa_targets!r})")
    args.hpa_targets = targets
    if args.cpu_limit is not None:
        try:
            limit = checked_quantity(args.cpu_limit)
        except ValueError:
            p.error(f"--cpu-limit must be a CPU quantity such as 1 or 1000m (got {args.cpu_limit!r})")
        if not limit >= quantity(default.cpu_request):
            p.error(f"--cpu-limit must be at least the request {default.cpu_request} (got {args.cpu_limit})")
    return args


def one_run(k: int, args: argparse.Namespace, plan: cb.BurstPlan, bar: Progress, task: TaskID
            ) -> dict[str, cb.ArmResult]:
    """Run ``k``: a fresh stack, the burst, run-K.json and run-K.png; the stack is down on return."""
    label = f"run {k}/{args.runs}"
    stack = Stack(args.out / f"run-{k}" / "stack", StackOptions(nodes=args.nodes,
                                                               scrape_interval_s=args.scrape_interval))
    stack.progress = lambda line: bar.update(task, description=f"{label}: stack: {escape(line)}")
    started = time.monotonic()
    try:
        stack.up()
        err.print(f"{label}: stack up in {time.monotonic() - started:.0f} s; logs in {stack.logs}")
        timeline = cb.run_on_stack(stack, plan, lambda what, frac: bar.update(
            task, description=f"{label}: {escape(what)}", completed=frac))
    finally:
        bar.update(task, description=f"{label}: stopping the stack")
        stack.down()
        shutil.rmtree(Layout(stack.state_dir / "cluster").etcd_dir, ignore_errors=True)
    results = cb.summarize_timeline(timeline, plan)
    doc = cb.result_document(plan, results, timeline)
    cb.write_json(args.out / f"run-{k}.json", doc)
    cb.plot(args.out / f"run-{k}.png", timeline, plan)
    load = doc["conditions"]["load_1m"] or {}
    err.print(f"{label}: done in {time.monotonic() - started:.0f} s: {args.out / f'run-{k}.json'} "
              f"(load average {load.get('mean', float('nan')):.1f} on {doc['conditions']['cpus']} CPUs, "
              f"longest gap between samples {doc['conditions']['max_sample_gap_s'] or 0:.1f} s)")
    return results


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    args.out = args.out.resolve()
    plan = cb.BurstPlan(base_rps=args.base_rps, factor=args.factor, warm_s=args.warm_seconds,
                        burst_s=args.burst_seconds, hpa_targets_pct=args.hpa_targets, cpu_limit=args.cpu_limit,
                        cold_start_s=args.cold_start_seconds)
    per_arm: dict[str, list[cb.ArmResult]] = {}
    failed: str | None = None
    with Progress(TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn(), console=err) as bar:
        runs = bar.add_task(f"{args.runs} run(s)", total=args.runs)
        for k in range(1, args.runs + 1):
            task = bar.add_task(f"run {k}/{args.runs}", total=1.0)
            try:
                results = one_run(k, args, plan, bar, task)
            except DevClusterError as e:
                failed = f"run {k}: {e}"
                break
            finally:
                bar.remove_task(task)
            for arm, r in results.items():
                per_arm.setdefault(arm, []).append(r)
            bar.advance(runs)
    if failed:
        err.print(f"[red]error[/]: {escape(failed)}")
    if not per_arm:
        return 1
    done = len(next(iter(per_arm.values())))
    limit = f"CPU limit {plan.cpu_limit}" if plan.cpu_limit else "no CPU limit"
    title = (f"Burst ×{plan.factor:g} of {plan.base_rps:g} rps for {plan.burst_s:g} s after {plan.warm_s:g} s, "
             f"{args.nodes} mock nodes, Prometheus scraping every {args.scrape_interval:g} s, pods requesting "
             f"{plan.cpu_request} CPU with {limit}, cold start {plan.cold_start_s:g} s, {done} run(s); "
             "mean (min–max) over the runs")
    table = cb.markdown_table(per_arm)
    verdicts = cb.verdicts_markdown(cb.verdicts(per_arm, plan.burst_s))
    (args.out / "table.md").write_text(f"{title}\n\n{table}\n\n{verdicts}\n")
    print(title)
    print()
    print(table)
    print()
    print(verdicts)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
