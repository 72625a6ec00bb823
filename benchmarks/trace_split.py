"""Generalisation: a train / validation / test split of public traces, and the bench over one part of it.

    python benchmarks/trace_split.py --traces DIR --list                        # the split, as a table
    python benchmarks/trace_split.py --traces DIR --part train --controllers heuristic,hpa,keda,rayserve,knative \
        --seeds 2 --json out/train.json                                         # the same for validation
    python benchmarks/trace_split.py --choose out/train.json out/validation.json --write out/chosen.json
    python benchmarks/trace_split.py --traces DIR --part test --seeds 5 --json out/test.json
    python benchmarks/results_tables.py out/test.json --chosen out/chosen.json

DIR holds the public files under their published names, at its top or in folders below it (see
docs/benchmarks.md, "Generalisation"):
`nasa_http_1995_requests_per_second.txt` (NASA-HTTP 1995 as requests per second) and
`AzureLLMInferenceTrace_code.csv`, `AzureLLMInferenceTrace_conv.csv` (Azure LLM inference 2023).
Nothing of them is copied into the repository.

Every segment replays its slice of a trace on the default scenario's cluster and services, scaled
so that the slice's busiest minute (60-second moving average) is `PEAK_RPS`, a load the cluster can
serve: the shape of the traffic differs between segments, and no segment asks more than the cluster
holds (a segment over capacity would make every controller violate alike and compare nothing).
Each segment is a scenario of its own in the bench, run with every controller and the standard sweep
of each baseline's knob. Its YAML is kept beside the output (`out/test.json` → `out/test-scenarios/`),
which the document names as the scenario's source: `kubeagora bench --scenarios out/test-scenarios/X.yaml`
reruns one segment.

The split: train is what the controllers and this bench were developed on (the segments earlier
docs used); validation is what a baseline's setting is chosen on (`--choose`); test was never run
before the split was fixed, and nothing is chosen on it.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import yaml

from kubeagora.bench.document import bench_document, read_document, write_document
from kubeagora.bench.matrix import default_jobs, matrix_progress_bar, plan_matrix, run_matrix
from kubeagora.bench.sweep import expand_sweeps
from kubeagora.controllers.tuning import KNOBS, parse_label
from kubeagora.sim.scenario import DEFAULT_SCENARIO, load_scenario
from kubeagora.sim.trace import load_trace, moving_average

PEAK_RPS = 9000.0
"""The default scenario peaks at 9,600 req/s (6,000 drifting up by 20 % an hour) on its cluster."""
NASA = "nasa_http_1995_requests_per_second.txt"
AZURE_CODE = "AzureLLMInferenceTrace_code.csv"
AZURE_CONV = "AzureLLMInferenceTrace_conv.csv"
NASA_AUGUST_1 = 2_381_545
"""Index of 1995-08-01 00:00 in the NASA series: the Hurricane Erin outage (zeros from index 2,435,065)
began at 14:52 that day; the July log ends on the 28th and the gap to August is not in the series."""
CONTROLLERS = "heuristic,hpa,keda,rayserve,knative,mas,clairvoyant"


def fail(message: str) -> NoReturn:
    """Bad input: one line naming what was wrong, exit status 2."""
    print(f"error: {message}", file=sys.stderr)
    raise SystemExit(2)


def _july(day: int, hour: int) -> int:
    return ((day - 1) * 24 + hour) * 3600


def _august(day: int, hour: int) -> int:
    return NASA_AUGUST_1 + ((day - 1) * 24 + hour) * 3600


@dataclass(frozen=True, slots=True)
class Segment:
    part: str
    name: str
    file: str
    offset_s: int
    duration_s: int
    when: str

    @property
    def format(self) -> str:
        return "timestamps" if self.file.endswith(".csv") else "counts"


SEGMENTS = (
    Segment("train", "nasa-jul01-00h", NASA, _july(1, 0), 1800, "1995-07-01 (Sat) 00:00–00:30"),
    Segment("train", "nasa-jul05-13h", NASA, _july(5, 13), 1800, "1995-07-05 (Wed) 13:00–13:30"),
    Segment("train", "azure-code-a", AZURE_CODE, 0, 1680, "2023-11-16, code, minutes 0–28"),
    Segment("validation", "nasa-jul12-14h", NASA, _july(12, 14), 1800, "1995-07-12 (Wed) 14:00–14:30"),
    Segment("validation", "nasa-jul20-11h", NASA, _july(20, 11), 1800, "1995-07-20 (Thu) 11:00–11:30"),
    Segment("validation", "azure-code-b", AZURE_CODE, 1680, 1680, "2023-11-16, code, minutes 28–56"),
    Segment("test", "nasa-aug08-15h", NASA, _august(8, 15), 1800, "1995-08-08 (Tue) 15:00–15:30"),
    Segment("test", "nasa-aug22-10h", NASA, _august(22, 10), 1800, "1995-08-22 (Tue) 10:00–10:30"),
    Segment("test", "azure-conv-a", AZURE_CONV, 0, 1680, "2023-11-16, conversation, minutes 0–28"),
    Segment("test", "azure-conv-b", AZURE_CONV, 1740, 1680, "2023-11-16, conversation, minutes 29–57"),
)
PARTS = ("train", "validation", "test")


def trace_path(traces: Path, name: str) -> Path:
    """`name` at the top of `traces` or in a folder below it (the datasets' own layouts)."""
    if not traces.is_dir():
        fail(f"--traces {traces}: not a directory")
    top = traces / name
    if top.is_file():
        return top
    found = sorted(p for p in traces.rglob(name) if p.is_file())
    if not found:
        fail(f"{name}: not found in {traces} or below (--traces names the directory holding it)")
    return found[0]


def segment_scale(segment: Segment, traces: Path) -> tuple[float, float, float]:
    """(scale that makes the segment's 60-s peak PEAK_RPS, the raw mean req/s, the raw 60-s peak req/s)."""
    path = trace_path(traces, segment.file)
    counts = load_trace(path, segment.format)[segment.offset_s : segment.offset_s + segment.duration_s]
    peak = float(moving_average(counts, 60).max())
    if peak <= 0:
        fail(f"{segment.name}: no requests in {segment.file} at offset {segment.offset_s} s")
    return PEAK_RPS / peak, float(counts.mean()), peak


def scenario_file(segment: Segment, traces: Path, directory: Path, model_error: float = 0.0) -> Path:
    model, _ = load_scenario(DEFAULT_SCENARIO)
    scale, mean, _ = segment_scale(segment, traces)
    trace = {
        "path": str(trace_path(traces, segment.file).resolve()),
        "format": segment.format,
        "scale": round(scale, 3),
        "offset_s": segment.offset_s,
    }
    data = model.model_dump(mode="json", exclude_none=True)
    data["name"] = segment.name
    data["description"] = f"{segment.part}: {segment.when}, {segment.file} × {scale:,.0f} (raw mean {mean:.2f} req/s)"
    data["duration_s"] = segment.duration_s
    data["model_error"] = model_error
    data["workload"]["trace"] = trace
    path = directory / f"{segment.name}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def print_split(traces: Path) -> None:
    print("| part | segment | trace | slice | raw mean req/s | raw 60-s peak req/s | scale |")
    print("|---|---|---|---|---:|---:|---:|")
    for s in SEGMENTS:
        scale, mean, peak = segment_scale(s, traces)
        print(f"| {s.part} | {s.name} | `{s.file}` | {s.when} | {mean:.2f} | {peak:.2f} | × {scale:,.0f} |")


def run_part(
    part: str,
    traces: Path,
    seeds: int,
    jobs: int | None,
    out: Path,
    controllers: str,
    duration_s: float | None,
    model_error: float,
    first_seed: int = 1,
    only: list[str] | None = None,
    sweep: bool = True,
    executor: str = "processes",
    ray_address: str | None = None,
) -> None:
    segments = [s for s in SEGMENTS if s.part == part and (not only or s.name in only)]
    if not segments:
        fail(f"--segments {','.join(only or [])}: none of them is a {part} segment")
    scenarios = out.parent / f"{out.stem}-scenarios"
    scenarios.mkdir(parents=True, exist_ok=True)
    files = [str(scenario_file(s, traces, scenarios, model_error)) for s in segments]
    names = controllers.split(",")
    labels = expand_sweeps(names, ["standard"] if sweep and any(c in KNOBS for c in names) else [])
    plan = plan_matrix(files, labels, n_seeds=seeds, first_seed=first_seed, duration_s=duration_s)
    workers = jobs or default_jobs(len(plan.runs))
    with matrix_progress_bar(plan.runs) as progress:
        if executor == "ray":  # the same results as worker processes (kubeagora bench --executor ray)
            from kubeagora.bench.ray_executor import RayExecutorError, run_matrix_on_ray

            try:
                results = run_matrix_on_ray(plan.runs, jobs=workers, address=ray_address, progress=progress)
            except RayExecutorError as error:
                fail(str(error))
        else:
            results = run_matrix(plan.runs, jobs=workers, progress=progress)
    picked = (f"--segments {','.join(only)} " if only else "") + ("" if sweep else "--no-sweep ")
    command = (
        f"python benchmarks/trace_split.py --traces TRACES --part {part} {picked}--controllers {controllers} "
        f"--model-error {model_error:g} --first-seed {first_seed} --seeds {seeds} --json {out}"
    )
    write_document(bench_document(results, plan.scenarios, command), out)
    print(f"wrote {out} ({len(plan.runs)} runs)", file=sys.stderr)


ChoiceRow = tuple[float, float, float, float]
"""(chosen target, its mean violations %, its mean replica-seconds, the family's best mean violations %)."""


def choose(runs: list[dict[str, Any]], slack_points: float = 1.0) -> dict[str, ChoiceRow]:
    """Per baseline, the setting chosen on train and validation runs: the cheapest (mean replica-seconds)
    whose mean violations over every segment and seed are within `slack_points` of the family's best
    setting. Refuses runs of any segment that is not train or validation."""
    tuning = {s.name for s in SEGMENTS if s.part in ("train", "validation")}
    others = {r["scenario"] for r in runs} - tuning
    if others:
        raise ValueError(f"settings are chosen on train and validation only; not on {', '.join(sorted(others))}")
    chosen: dict[str, ChoiceRow] = {}
    for family in KNOBS:
        by_label: dict[str, list[tuple[float, float]]] = {}
        for r in runs:
            if parse_label(r["controller"]).family == family:
                m = r["metrics"]
                by_label.setdefault(r["controller"], []).append((m["slo_violation_pct"], m["replica_seconds"]))
        if not by_label:
            continue
        means = {
            label: (sum(v for v, _ in xs) / len(xs), sum(c for _, c in xs) / len(xs)) for label, xs in by_label.items()
        }
        best = min(v for v, _ in means.values())
        label, (violations, cost) = min(
            ((lab, vc) for lab, vc in means.items() if vc[0] <= best + slack_points), key=lambda item: item[1][1]
        )
        target = parse_label(label).target_value()
        assert target is not None
        chosen[family] = (target, violations, cost, best)
    return chosen


def choose_settings(documents: list[Path]) -> dict[str, float]:
    """Print and return each baseline's setting chosen on these train and validation documents."""
    runs = [r for p in documents for r in read_document(p)["runs"]]
    try:
        chosen = choose(runs)
    except ValueError as error:
        fail(f"--choose: {error}")
    print("| baseline | chosen target | mean violations % | mean replica-s | best setting's violations % |")
    print("|---|---:|---:|---:|---:|")
    for family, (target, violations, cost, best) in chosen.items():
        print(f"| {family} | {target:g} | {violations:.2f} | {cost:,.0f} | {best:.2f} |")
    return {family: row[0] for family, row in chosen.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--traces", type=Path, help="directory holding the public trace files (for --list and --part)")
    ap.add_argument("--list", action="store_true", help="print the split and exit")
    ap.add_argument("--part", choices=PARTS)
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument(
        "--no-sweep", action="store_true", help="run the controllers as given, without each baseline's standard sweep"
    )
    ap.add_argument("--segments", help="comma-separated segment names: only these of the part (default: all)")
    ap.add_argument("--first-seed", type=int, default=1, help="seeds count up from this one (default 1)")
    ap.add_argument("--jobs", type=int)
    ap.add_argument("--executor", choices=("processes", "ray"), default="processes",
                    help="ray: the runs as Ray tasks, on a local Ray with --jobs CPUs or at --ray-address")
    ap.add_argument("--ray-address", help="with --executor ray: a Ray cluster (ray://HOST:10001, or auto)")
    ap.add_argument("--controllers", default=CONTROLLERS)
    ap.add_argument("--json", type=Path)
    ap.add_argument(
        "--duration", type=float, help="simulated seconds per run (default: the segment's; for a smoke test)"
    )
    ap.add_argument(
        "--model-error",
        type=float,
        default=0.0,
        help="log-sd σ of the world's departure from the declared specs (docs/benchmarks.md; default 0)",
    )
    ap.add_argument("--choose", type=Path, nargs="+", help="bench JSON of train and validation: pick each setting")
    ap.add_argument("--write", type=Path, help="with --choose: write the chosen settings here as JSON")
    args = ap.parse_args()
    if (args.list or args.part) and args.traces is None:
        ap.error("--list and --part need --traces DIR")
    if args.list:
        print_split(args.traces)
    elif args.choose:
        chosen = choose_settings(args.choose)
        if args.write:
            args.write.parent.mkdir(parents=True, exist_ok=True)
            args.write.write_text(json.dumps(chosen, indent=2) + "\n")
            print(f"wrote {args.write}", file=sys.stderr)
    elif args.part and args.json:
        if args.seeds < 1 or args.first_seed < 0:
            ap.error(f"--seeds must be ≥ 1 and --first-seed ≥ 0 (got {args.seeds} and {args.first_seed})")
        if not 0.0 <= args.model_error <= 1.0:
            ap.error(f"--model-error must lie in [0, 1] (got {args.model_error:g})")
        if args.ray_address is not None and args.executor != "ray":
            ap.error("--ray-address needs --executor ray")
        run_part(
            args.part, args.traces, args.seeds, args.jobs, args.json, args.controllers, args.duration,
            args.model_error,
            args.first_seed,
            args.segments.split(",") if args.segments else None,
            not args.no_sweep,
            args.executor,
            args.ray_address,
        )
    else:
        ap.error("give --list, --choose FILES, or --part PART --json FILE")


if __name__ == "__main__":
    main()
