"""``kubeagora demo``: the product as a user meets it, on a real local control plane.

Starts the stack (control plane built from source the first time, mock kubelet, Prometheus, the
scheduler extender and the operator), applies a Deployment under the real HPA (at its best-tuned CPU
target of Table 2, ``cluster_burst.BEST_HPA_TARGET_PCT``; Burstable pods, so it reads utilisations
above 100 % under overload) and an identical one under an OrchestrationIntent, sends both the same
burst, and prints the side-by-side figures (the seed paper's Table 2, with the signal each side
scales on) with a plot. Mounted by the main CLI; bad input exits 2 with one line.
"""

from __future__ import annotations

import sys
import time
from collections import Counter
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from kubeagora.extras import needs_extra
from kubeagora.output import Output, OutputFormat, print_data

USAGE_ERROR = 2
_out = Console(width=None if sys.stdout.isatty() else 120)
_err = Console(stderr=True)


def demo(
    out: Annotated[Path, typer.Option("--out", help="Where the plot, the JSON and the logs go.")] = Path("demo-out"),
    factor: Annotated[float, typer.Option("--burst-factor", help="The burst multiplies the base load by this.")
                      ] = 8.0,
    burst_s: Annotated[float, typer.Option("--burst-seconds", help="How long the burst lasts.")] = 120.0,
    warm_s: Annotated[float, typer.Option("--warm-seconds", help="Steady load before the burst.")] = 45.0,
    base_rps: Annotated[float, typer.Option("--base-rps", help="Base load of each Deployment.")] = 120.0,
    nodes: Annotated[int, typer.Option("--nodes", help="Mock nodes.")] = 24,
    keep: Annotated[bool, typer.Option("--keep", help="Leave the stack running afterwards (kubectl it).")] = False,
    output: Output = OutputFormat.TABLE,
) -> None:
    """Real control plane, operator + extender, an intent, a burst: kubeagora vs the real HPA."""
    with needs_extra("operator", "demo"):  # the stack runs the operator and the mock kubelet
        import kopf  # noqa: F401

        from kubeagora.bench import cluster_burst as cb
        from kubeagora.devcluster.errors import DevClusterError
        from kubeagora.devcluster.stack import Stack, StackOptions

    for name, value in (("--burst-factor", factor), ("--burst-seconds", burst_s), ("--base-rps", base_rps)):
        if value <= 0:
            typer.echo(f"error: {name} must be positive (got {value:g})", err=True)
            raise typer.Exit(USAGE_ERROR)
    if warm_s < 20 or nodes < 4:
        typer.echo("error: --warm-seconds must be ≥ 20 and --nodes ≥ 4", err=True)
        raise typer.Exit(USAGE_ERROR)
    plan = cb.BurstPlan(base_rps=base_rps, factor=factor, warm_s=warm_s, burst_s=burst_s,
                        hpa_targets_pct=(cb.BEST_HPA_TARGET_PCT,))
    out = out.resolve()
    stack = Stack(out / "stack", StackOptions(nodes=nodes, keep_cluster=keep))
    started = time.monotonic()
    try:
        with _err.status("starting the stack") as spinner:
            def step(line: str) -> None:
                spinner.update(f"starting the stack [dim]{escape(line)}[/]")
                _err.print(f"[dim]{time.strftime('%H:%M:%S')}[/] {escape(line)}", highlight=False)

            stack.progress = step
            stack.up()
        _err.print(f"stack up in {time.monotonic() - started:.0f} s; logs in {stack.logs}")
        with Progress(TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn(), console=_err) as bar:
            task = bar.add_task("pods starting", total=1.0)
            timeline = cb.run_on_stack(stack, plan,
                                       lambda what, frac: bar.update(task, description=what, completed=frac))
        results = cb.summarize_timeline(timeline, plan)
        actions = stack.kubectl_json("get", "agentactions", "-n", plan.namespace).get("items", [])
        intents = stack.kubectl("get", "intents", "-n", plan.namespace, check=False)
    except DevClusterError as e:
        typer.echo(f"error: {e}", err=True)
        stack.down()
        raise typer.Exit(USAGE_ERROR) from None
    except BaseException:
        stack.down()
        raise
    if keep:
        _err.print(f"left running: export KUBECONFIG={stack.kubeconfig}")
    else:
        stack.down()
    document = cb.result_document(plan, results, timeline)
    cb.write_json(out / "burst.json", document)
    cb.plot(out / "burst.png", timeline, plan)
    if output is not OutputFormat.TABLE:  # burst.json's content on stdout; the rest is for people
        print_data(document, output)
        _err.print(f"plot: {out / 'burst.png'}   data: {out / 'burst.json'}", highlight=False)
        return
    _out.print(intents.rstrip())
    counts = Counter((a["spec"]["agent"], a["spec"]["action"]["type"], (a.get("status") or {}).get("state", "?"))
                     for a in actions)
    _out.print(f"{len(actions)} AgentActions (kubectl get aa -n {plan.namespace}): " + ", ".join(
        f"{n} {kind} by {agent} {state}" for (agent, kind, state), n in counts.most_common()))
    table = Table(title=f"Burst ×{factor:g} for {burst_s:g} s on {nodes} mock nodes (seed paper Table 2)",
                  header_style="bold")
    for col in ("autoscaler", "scales on", "time to scale (s)", "cold-start Δp99 (ms)", "SLO viol. in burst (%)",
                "p99 before/in burst (ms)", "Ready at burst / max", "replica-s"):
        table.add_column(col, justify="left" if col in ("autoscaler", "scales on") else "right")

    def f(x: float | None) -> str:
        return "never" if x is None else f"{x:.1f}"

    for arm, r in results.items():
        best = " (real; fastest of 50/70/80 % in Table 2)" if cb.hpa_target(arm) is not None else ""
        table.add_row(cb.arm_label(arm) + best, cb.SIGNALS_SHORT.get(cb.kind_of(arm), "–"),
                      f(r.time_to_scale_s), f(r.cold_start_p99_delta_ms),
                      f"{r.slo_violation_pct:.1f}", f"{f(r.baseline_p99_ms)} / {f(r.burst_p99_ms)}",
                      f"{r.replicas_at_burst} / {r.max_replicas}", f"{r.replica_seconds:.0f}")
    _out.print(table)
    _out.print(f"plot: {out / 'burst.png'}   data: {out / 'burst.json'}   ({time.monotonic() - started:.0f} s)")
