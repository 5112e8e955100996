#!/usr/bin/env bash
# The GPU path's check, in two halves, for GPU machines that have CUDA 13 but
# no Rust toolchain:
#
#   scripts/gpu-check.sh prepare    # here: builds gpu-check/ (CUDA binary, CUDA test executables)
#   scripts/gpu-check.sh run [OUT]  # there: runs it all, writes OUT/report.md (default gpu-check/out)
#
# `run` records the GPU (nvidia-smi), runs every CUDA test executable, the
# seed-batched update bench and every agent's bench with 30 seeds, one SLBO
# stage, and the quick-start experiment, each under a time limit, and writes
# one report with every figure and every failure. It never stops at the first
# failure: the report is what comes back from a short device session. The
# whole run keeps within MBRL_GPU_CHECK_BUDGET seconds (default 540: one
# device call), shortening or skipping the last steps.
#
# With MBRL_GPU_CHECK_CPU=1, `run` uses the CPU binary and test executables
# of this checkout at small sizes instead, its benches on the taped path that
# the CUDA binary takes (`--taped`): how the script itself is tested.
set -uo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
kit="$root/gpu-check"

prepare() {
    set -e
    mkdir -p "$kit/tests"
    # A target directory of its own, so that the CPU build stays as it is.
    export CARGO_TARGET_DIR="$root/target/cuda"
    scripts/build-cuda.sh
    cp "$CARGO_TARGET_DIR/release/mbrl" "$kit/mbrl"
    # The library's test executable (the tensor runtime, the agents' learners
    # and the driver on the CUDA device), built with the same recipe.
    scripts/build-cuda.sh --lib --tests --message-format=json 2>/dev/null | copy_tests "$kit/tests"
    du -sh "$kit"
    echo "carry gpu-check/ to the GPU machine and run: scripts/gpu-check.sh run"
}

# Copies the test executables cargo's JSON messages (stdin) name into $1.
copy_tests() {
    python3 -c '
import json, sys, shutil
for line in sys.stdin:
    try:
        m = json.loads(line)
    except ValueError:
        continue
    exe = m.get("executable")
    if m.get("reason") == "compiler-artifact" and exe and m.get("profile", {}).get("test"):
        # Named by kind and target: lib-mbrl (the library: tensors, learners,
        # driver), bin-mbrl, test-it (the integration tests).
        target = m["target"]
        name = target["kind"][0] + "-" + target["name"]
        shutil.copy(exe, f"{sys.argv[1]}/{name}")
        print("test executable:", exe, "->", name)
' "$1"
}

# step NAME SECONDS COMMAND...: runs COMMAND with a limit, logs it, records the outcome.
step() {
    local name="$1" limit="$2"
    shift 2
    local log="$out/$name.log" start end rc
    # Stay within the session's budget: shorten the last steps, skip what no longer fits.
    local left=$(( budget - ($(date +%s) - began) ))
    if [ "$left" -lt 15 ]; then
        echo "### $name: SKIPPED (the ${budget}s budget is spent)" >>"$report"
        echo "$name: skipped"
        return
    fi
    [ "$limit" -gt "$left" ] && limit="$left"
    start=$(date +%s.%N)
    timeout "$limit" "$@" >"$log" 2>&1
    rc=$?
    end=$(date +%s.%N)
    local secs
    secs=$(python3 -c "print(f'{$end - $start:.1f}')")
    local verdict="ok"
    [ "$rc" = 124 ] && verdict="TIMED OUT after ${limit}s"
    [ "$rc" != 0 ] && [ "$rc" != 124 ] && verdict="FAILED (exit $rc)"
    {
        echo "### $name: $verdict, ${secs} s"
        echo '```'
        echo "\$ $*"
        tail -n 25 "$log"
        echo '```'
    } >>"$report"
    echo "$name: $verdict (${secs} s)"
}

run() {
    out="${1:-$kit/out}"
    mkdir -p "$out"
    began=$(date +%s)
    budget="${MBRL_GPU_CHECK_BUDGET:-540}"
    report="$out/report.md"
    local mbrl seeds updates agent_steps tests_dir taped=()
    if [ "${MBRL_GPU_CHECK_CPU:-0}" = 1 ]; then
        mbrl="$root/target/release/mbrl"
        tests_dir="$out/cpu-tests"
        mkdir -p "$tests_dir"
        cargo test --release --lib --bins --tests --no-run --message-format=json 2>/dev/null | copy_tests "$tests_dir"
        seeds=4 updates=3 agent_steps=5
        # The benches train through dfdx's tape, as the CUDA binary always does.
        taped=(--taped)
    else
        mbrl="$kit/mbrl"
        tests_dir="$kit/tests"
        seeds=30 updates=20 agent_steps=20
    fi
    {
        echo "# mbrl GPU check, $(date -u +%Y-%m-%dT%H:%MZ)"
        echo
        echo "binary: \`$mbrl\` ($("$mbrl" --version 2>&1))"
        echo
        echo '```'
        nvidia-smi --query-gpu=name,memory.total,driver_version,compute_cap --format=csv 2>&1 || echo "no nvidia-smi"
        echo '```'
    } >"$report"
    # The library's tests first (the GPU numerics: taped updates, learners,
    # driver), the other test executables last, with what is left.
    for t in "$tests_dir"/lib-*; do
        [ -x "$t" ] && step "tests-$(basename "$t")" 150 "$t" --test-threads 1
    done
    step bench-update 60 "$mbrl" bench --seeds "$seeds" --threads 1 --updates "$updates" "${taped[@]}"
    for agent in er perfect_model simple_model gaussian_latent categorical_latent; do
        step "bench-$agent" 90 "$mbrl" bench --agent "$agent" --seeds "$seeds" --threads 1 --steps "$agent_steps" "${taped[@]}"
    done
    step quickstart 200 "$mbrl" run experiments/quickstart.exp --out "$out/quickstart" --scale "$( [ "${MBRL_GPU_CHECK_CPU:-0}" = 1 ] && echo 0.1 || echo 0.5)"
    step bench-slbo_mle 150 "$mbrl" bench --agent slbo_mle --seeds 2 --threads 1 --stages 1
    # The integration tests read this checkout and run the binary under test;
    # the language's snapshot tests (`ui::`) do not involve the device.
    for t in "$tests_dir"/*; do
        [ -x "$t" ] && [ "${t##*/lib-}" = "$t" ] || continue
        MBRL_BIN="$mbrl" MBRL_TEST_ROOT="$root" step "tests-$(basename "$t")" 240 "$t" --skip ui:: --test-threads 2
    done
    echo "report: $report"
}

case "${1:-}" in
    prepare) prepare ;;
    run) shift; run "$@" ;;
    *) echo "usage: scripts/gpu-check.sh prepare | run [OUT]" >&2; exit 2 ;;
esac
