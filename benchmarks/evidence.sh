#!/usr/bin/env bash
# The tables of docs/benchmarks.md, "How we compare", from nothing: `make evidence TRACES=DIR`.
#
#   benchmarks/evidence.sh TRACES_DIR [OUT_DIR]        (OUT_DIR defaults to out/evidence)
#   SEEDS=5 TUNE_SEEDS=2 JOBS=2 KUBEAGORA=.venv/bin/kubeagora PYTHON=.venv/bin/python   (the defaults)
#   STEPS="tune test table1 model-error"   (the default: all four, in this order)
#   MODEL_ERROR=0.3   (the traces' worlds stray from their specs by this log-sd; Table 1 runs at 0)
#   DURATION=60   (simulated seconds per run instead of each scenario's own: a smoke test only)
#   SCENARIOS="steady-drift burst-hotspot ..."   (Table 1's and model-error's scenarios: the six built-in ones)
#   TABLE1_CONTROLLERS=heuristic,hpa,keda,rayserve,knative,mpc,mas,clairvoyant   (Table 1's controllers)
#   TABLE1_SWEEP=standard   (Table 1's sweeps, space-separated `--sweep` specs: "hpa.target=0.5,0.6 keda.target=0.5")
#   EXECUTOR=ray   (every step's runs as Ray tasks on a local Ray; RAY_ADDRESS=ray://HOST:10001 for a Ray
#                   cluster, e.g. KubeRay's head service; the same results as worker processes)
#
# TRACES_DIR holds the public traces under their published names, at its top or below it
# (nasa_http_1995_requests_per_second.txt, AzureLLMInferenceTrace_code.csv, AzureLLMInferenceTrace_conv.csv).
#
#   tune         each baseline's knob swept on the train and validation segments of the traces
#                (baselines only), and one setting per baseline chosen there: chosen.json (the traces'
#                worlds stray from their declared specs by MODEL_ERROR, here and in test)
#   test         every controller and every baseline setting on the test segments, never used for
#                tuning: tables with 95 % intervals, the frontiers, mas at equal replica-seconds and
#                at the chosen settings, mas against the clairvoyant planner
#   table1       the six built-in scenarios, every controller, every baseline setting (Table 1), one seed
#                at a time over all six (an interrupted run leaves whole seeds behind)
#   model-error  the same scenarios in a world that strays from its specs (σ 0.3 whatever MODEL_ERROR
#                is): HPA's sweep, mpc, mas, the clairvoyant planner; how much worse each got than in
#                Table 1's world
#
# Each bench run writes one JSON per scenario and is skipped when its JSON exists, so an interrupted
# run resumes where it stopped (delete OUT_DIR to start over). Tables go to OUT_DIR/*.md, the HTML
# reports (with the frontier plots) to OUT_DIR/*-report/. Wall times go to OUT_DIR/times.txt with
# the machine's load average.
set -euo pipefail

if [ $# -lt 1 ] || [ ! -d "$1" ]; then
    echo "usage: $0 TRACES_DIR [OUT_DIR]   (TRACES_DIR: a directory holding the public traces)" >&2
    exit 2
fi
TRACES=$1
OUT=${2:-out/evidence}
SEEDS=${SEEDS:-5}
TUNE_SEEDS=${TUNE_SEEDS:-2}
JOBS=${JOBS:-2}
KUBEAGORA=${KUBEAGORA:-.venv/bin/kubeagora}
PYTHON=${PYTHON:-.venv/bin/python}
STEPS=${STEPS:-tune test table1 model-error}
MODEL_ERROR=${MODEL_ERROR:-0.3}
SCENARIOS=${SCENARIOS:-steady-drift burst-hotspot diurnal-mixed gpu-throttle node-zone-failure region-partition}
BASELINES=heuristic,hpa,keda,rayserve,knative
TABLE1_CONTROLLERS=${TABLE1_CONTROLLERS:-$BASELINES,mpc,mas,clairvoyant}
TABLE1_SWEEP=${TABLE1_SWEEP:-standard}
SHORT=()
[ -n "${DURATION:-}" ] && SHORT=(--duration "$DURATION")
# EXECUTOR=ray runs every step's runs as Ray tasks: a local Ray, or the cluster at RAY_ADDRESS
# (ray://HOST:10001). Same results as worker processes.
EXECUTOR=${EXECUTOR:-processes}
RUN_ON=(--executor "$EXECUTOR")
[ -n "${RAY_ADDRESS:-}" ] && RUN_ON+=(--ray-address "$RAY_ADDRESS")
mkdir -p "$OUT"

timed() {  # timed NAME OUTPUT_JSON COMMAND...: run unless OUTPUT_JSON exists; log wall time and load
    local name=$1 json=$2 start
    shift 2
    if [ -s "$json" ]; then
        echo "$name: $json exists, skipped" >&2
        return
    fi
    start=$(date +%s)
    echo "$name: started $(date -u +%FT%TZ), load $(cut -d' ' -f1-3 /proc/loadavg)" >>"$OUT/times.txt"
    "$@"
    echo "$name: $(($(date +%s) - start)) s, done $(date -u +%FT%TZ), load $(cut -d' ' -f1-3 /proc/loadavg)" \
        >>"$OUT/times.txt"
}

for step in $STEPS; do
    case $step in
    tune)
        for part in train validation; do
            for seed in $(seq 1 "$TUNE_SEEDS"); do
                timed "traces $part seed $seed" "$OUT/traces-$part-s$seed.json" \
                    "$PYTHON" benchmarks/trace_split.py --traces "$TRACES" --part "$part" --controllers "$BASELINES" \
                    --model-error "$MODEL_ERROR" --first-seed "$seed" --seeds 1 --jobs "$JOBS" "${RUN_ON[@]}" \
                    --json "$OUT/traces-$part-s$seed.json" "${SHORT[@]}"
            done
        done
        "$PYTHON" benchmarks/trace_split.py --choose "$OUT"/traces-train-s*.json "$OUT"/traces-validation-s*.json \
            --write "$OUT/chosen.json" >"$OUT/chosen.md"
        ;;
    test)
        # one seed at a time, so that an interrupted run leaves whole seeds behind
        for seed in $(seq 1 "$SEEDS"); do
            timed "traces test seed $seed" "$OUT/traces-test-s$seed.json" \
                "$PYTHON" benchmarks/trace_split.py --traces "$TRACES" --part test --model-error "$MODEL_ERROR" \
                --first-seed "$seed" --seeds 1 --jobs "$JOBS" "${RUN_ON[@]}" --json "$OUT/traces-test-s$seed.json" "${SHORT[@]}"
        done
        chosen=()
        [ -s "$OUT/chosen.json" ] && chosen=(--chosen "$OUT/chosen.json")
        "$PYTHON" benchmarks/results_tables.py "$OUT"/traces-test-s*.json "${chosen[@]}" \
            --report "$OUT/test-report" >"$OUT/test.md"
        ;;
    table1)
        # one seed at a time over every scenario, so that an interrupted run leaves whole seeds behind
        sweeps=()
        for spec in $TABLE1_SWEEP; do sweeps+=(--sweep "$spec"); done
        scenario_list=$(echo $SCENARIOS | tr ' ' ,)
        for seed in $(seq 1 "$SEEDS"); do
            timed "table1 seed $seed" "$OUT/t1-s$seed.json" \
                "$KUBEAGORA" bench --scenarios "$scenario_list" --controllers "$TABLE1_CONTROLLERS" "${sweeps[@]}" \
                --seeds 1 --seed-offset $((seed - 1)) --jobs "$JOBS" "${RUN_ON[@]}" --json "$OUT/t1-s$seed.json" "${SHORT[@]}" \
                >/dev/null
        done
        "$PYTHON" benchmarks/results_tables.py "$OUT"/t1-*.json --report "$OUT/table1-report" >"$OUT/table1.md"
        ;;
    model-error)
        for s in $SCENARIOS; do
            timed "model error $s" "$OUT/me-$s.json" \
                "$KUBEAGORA" bench --scenarios "$s" --controllers hpa,mpc,mas,clairvoyant --sweep hpa.target=0.5:0.9:0.1 \
                --model-error 0.3 --seeds "$SEEDS" --jobs "$JOBS" "${RUN_ON[@]}" --json "$OUT/me-$s.json" "${SHORT[@]}" >/dev/null
        done
        "$PYTHON" benchmarks/results_tables.py "$OUT"/me-*.json --report "$OUT/model-error-report" \
            >"$OUT/model-error.md"
        if ls "$OUT"/t1-*.json >/dev/null 2>&1; then
            "$PYTHON" benchmarks/model_error_table.py --exact "$OUT"/t1-*.json --erring "$OUT"/me-*.json \
                >>"$OUT/model-error.md"
        fi
        ;;
    *)
        echo "$0: unknown step '$step' in STEPS (tune, test, table1, model-error)" >&2
        exit 2
        ;;
    esac
done
echo "tables in $OUT/*.md; times in $OUT/times.txt" >&2
