#!/usr/bin/env bash
# Steady-state seconds per env step of the reference (30 seeds vmapped in one process, ProcMaze
# g4, high data, the shipped Figure 4 configs, CPU, evaluation excluded): the number to compare
# with `mbrl bench --agent NAME --threads 2`. Set up first with scripts/reference/setup.sh.
# Usage: scripts/reference/time.sh AGENT [time_ref.py options]
#   AGENT: ER | perfect_model | simple_model | gaussian_latent_model | categorical_latent_model
# Env steps per call (the config's eval_frequency, the lax.scan length; 500 in the reference)
# are shortened so that one call takes 10-25 s on 2 cores; training start and target updates
# depend on the global step, so the algorithm is unchanged (`--chunk 500` restores it).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
ref="${MBRL_REFERENCE:-$here/../../.reference}"
agent="${1:?usage: time.sh AGENT [options]}"; shift
case "$agent" in
    ER | perfect_model) chunk=100 ;;
    simple_model | gaussian_latent_model) chunk=50 ;;
    categorical_latent_model) chunk=10 ;;
    *) echo "unknown agent $agent" >&2; exit 2 ;;
esac
export JAX_PLATFORMS=cpu TF_CPP_MIN_LOG_LEVEL=1 MBRL_REFERENCE="$ref"
# XLA sizes its thread pool from the CPUs the process may use; pin to 2 where there are more.
pin=()
if command -v taskset >/dev/null && [ "$(nproc --all)" -gt 2 ]; then pin=(taskset -c 0,1); fi
exec "${pin[@]}" "$ref/venv/bin/python" -u "$here/time_ref.py" "$agent" \
    --chunk "$chunk" --budget 60 --min-timed 3 --skip 1 "$@"
