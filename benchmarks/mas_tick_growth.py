"""How mas's tick grows with the cluster: CPU per tick at 100 … 10,000 services, and the growth curve.

Runs `benchmarks/mas_tick.py` once per size, each in its own process (the MPC's compiled problem of one
size is not kept for the next), on the speed benchmark's cluster (~200 nodes per 1,000 services, so
nodes grow with services from 2,000 on). Prints the table of docs/benchmarks.md and draws the curve:

    python benchmarks/mas_tick_growth.py --services 1000,2000,5000,10000 --ticks 7 \\
        --csv mas-tick-growth.csv --plot docs/img/mas-tick-growth.png
    python benchmarks/mas_tick_growth.py --from-csv mas-tick-growth.csv --plot docs/img/mas-tick-growth.png

`--ticks 7` is 35 simulated seconds of decisions: the first tick (it compiles the MPC) apart, then two
full MPC cycles (a re-plan every third tick), so the mean weighs re-planning ticks as a long run does.
"""

from __future__ import annotations

import argparse
import csv
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

FIELDS = ("services", "nodes", "ticks", "first_tick_cpu_s", "cpu_s_per_tick", "mpc_tick_cpu_s", "other_tick_cpu_s",
          "x_real_time", "cores_per_1000_services", "twin_screens")


def measure(services: int, ticks: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "tick.json"
        subprocess.run([sys.executable, str(Path(__file__).parent / "mas_tick.py"), "--services", str(services),
                        "--ticks", str(ticks), "--json", str(out)], check=True)
        got = json.loads(out.read_text())
    cpu, every, interval = got["tick_cpu_s"], got["mpc_every_ticks"], got["interval_s"]
    rest = cpu[1:]
    per_tick = statistics.fmean(rest)
    return {
        "services": services, "nodes": got["nodes"], "ticks": ticks, "first_tick_cpu_s": cpu[0],
        "cpu_s_per_tick": per_tick,
        "mpc_tick_cpu_s": statistics.fmean([c for k, c in enumerate(cpu) if k > 0 and k % every == 0]),
        "other_tick_cpu_s": statistics.fmean([c for k, c in enumerate(cpu) if k > 0 and k % every != 0]),
        "x_real_time": interval / per_tick,
        # CPU seconds per simulated second, per 1,000 services: the cores mas needs to keep up at real time
        "cores_per_1000_services": per_tick / interval * 1000.0 / services,
        # moves screened in the twin after the first tick: each is a whole-cluster engine run
        "twin_screens": sum(got["twin_screens"][1:]),
    }


def plot(rows: list[dict[str, float]], path: Path, note: str = "") -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = [r["services"] for r in rows]
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    left.plot(n, [r["cpu_s_per_tick"] for r in rows], "o-", label="mean of all ticks")
    left.plot(n, [r["mpc_tick_cpu_s"] for r in rows], "s--", label="ticks that re-plan (MPC)")
    left.plot(n, [r["other_tick_cpu_s"] for r in rows], "^--", label="other ticks")
    left.axhline(5.0, color="grey", lw=0.8)
    left.text(n[0], 5.0, " 5 s: a tick's length (real time)", va="bottom", fontsize=8, color="grey")
    left.axhline(0.1, color="red", lw=0.8, ls=":")
    left.text(n[0], 0.1, " 0.1 s: the target at 1,000 services", va="bottom", fontsize=8, color="red")
    left.set(xscale="log", yscale="log", xlabel="services (≈ 200 nodes per 1,000)", ylabel="CPU s per 5-s tick",
             title="mas: CPU per tick")
    left.legend(fontsize=8)
    right.plot(n, [r["cores_per_1000_services"] for r in rows], "o-")
    right.set(xscale="log", xlabel="services", ylabel="cores per 1,000 services at real time",
              title="mas: cores needed per 1,000 services", ylim=(0, None))
    for ax in (left, right):
        ax.grid(True, which="both", lw=0.3)
    if note:
        fig.text(0.5, 0.01, note, ha="center", fontsize=8)
    fig.tight_layout(rect=(0, 0.04 if note else 0, 1, 1))
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90, metadata={"Date": None} if path.suffix == ".svg" else None)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--services", default="1000,2000,5000,10000")
    ap.add_argument("--ticks", type=int, default=7)
    ap.add_argument("--csv", type=Path, default=None, help="write (or, with --from-csv, read) the rows here")
    ap.add_argument("--from-csv", type=Path, default=None, help="plot rows measured before instead of measuring")
    ap.add_argument("--plot", type=Path, default=None, help="draw the growth curve (.svg or .png)")
    ap.add_argument("--note", default="", help="a line of text under the figure (e.g. a size that did not run)")
    args = ap.parse_args()
    if args.from_csv is not None:
        with args.from_csv.open() as f:
            rows = [{k: float(v) for k, v in r.items()} for r in csv.DictReader(f)]
    else:
        rows = []
        for services in (int(x) for x in args.services.split(",")):
            rows.append(measure(services, args.ticks))
            if args.csv is not None:  # after every size: a long run keeps what it measured
                with args.csv.open("w", newline="") as f:
                    writer = csv.DictWriter(f, fieldnames=FIELDS)
                    writer.writeheader()
                    writer.writerows(rows)
    print("| services | nodes | first tick CPU s | CPU s per tick | MPC ticks | other ticks | moves screened in "
          "the twin | × real time | cores per 1,000 services |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        screens = f"{r['twin_screens']:.0f}" if "twin_screens" in r else "–"  # CSVs written before the count
        print(f"| {r['services']:,.0f} | {r['nodes']:,.0f} | {r['first_tick_cpu_s']:.1f} | {r['cpu_s_per_tick']:.3f} "
              f"| {r['mpc_tick_cpu_s']:.3f} | {r['other_tick_cpu_s']:.3f} | {screens} | {r['x_real_time']:.1f} "
              f"| {r['cores_per_1000_services']:.4f} |")
    if args.plot is not None:
        plot(rows, args.plot, args.note)


if __name__ == "__main__":
    main()
