#!/usr/bin/env bash
# mbrl against the Young et al. JAX reference on this machine, alternated: ROUNDS times, mbrl's
# agent bench (training loop only, evaluation excluded) with fp32 products, then with bf16 ones
# on the CPU's AMX units (where it has them), then the reference's timing
# (scripts/reference/time.sh), and the ratio of each pair. A shared machine drifts by tens of
# percent within minutes; pairs taken back to back, and their median, are what compares.
# Set up the reference first (scripts/reference/setup.sh) and build mbrl (cargo build --release).
# Usage: scripts/reference/compare.sh AGENT [ROUNDS]   (ROUNDS: 3 by default)
#   AGENT: er | perfect_model | simple_model | gaussian_latent | categorical_latent
# Env: MBRL_BIN (default target/release/mbrl), MBRL_REFERENCE (as for time.sh).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$here/../.."
agent="${1:?usage: compare.sh AGENT [ROUNDS]}"
rounds="${2:-3}"
mbrl="${MBRL_BIN:-$root/target/release/mbrl}"
case "$agent" in
    er) ref=ER steps=200 ;;
    perfect_model) ref=perfect_model steps=200 ;;
    simple_model) ref=simple_model steps=200 ;;
    gaussian_latent) ref=gaussian_latent_model steps=200 ;;
    categorical_latent) ref=categorical_latent_model steps=100 ;;
    *) echo "unknown agent $agent" >&2; exit 2 ;;
esac
[ -x "$mbrl" ] || { echo "no mbrl binary at $mbrl (cargo build --release)" >&2; exit 2; }
# bf16 where the CPU multiplies in it (mbrl refuses it otherwise).
precisions=(fp32)
if grep -qw amx_bf16 /proc/cpuinfo 2>/dev/null && grep -qw amx_tile /proc/cpuinfo; then precisions+=(bf16); fi
declare -A ratios
for round in $(seq "$rounds"); do
    declare -A ours=()
    for p in "${precisions[@]}"; do
        ours[$p]=$("$mbrl" bench --agent "$agent" --threads 2 --steps "$steps" --precision "$p" |
            sed -n 's/.*training loop only.*: \([0-9.]*\) s per env step.*/\1/p')
    done
    theirs=$("$here/time.sh" "$ref" | sed -n 's/.*median-of-calls \([0-9.]*\).*/\1/p')
    line="round $round: reference $theirs s per env step (30 seeds)"
    for p in "${precisions[@]}"; do
        if [ -z "${ours[$p]}" ] || [ -z "$theirs" ]; then
            echo "round $round: a timing failed (mbrl $p: '${ours[$p]}', reference: '${theirs}')" >&2
            exit 1
        fi
        ratio=$(awk -v a="$theirs" -v b="${ours[$p]}" 'BEGIN { printf "%.2f", a / b }')
        ratios[$p]="${ratios[$p]:-} $ratio"
        line="$line; mbrl $p ${ours[$p]} s: reference/mbrl ${ratio}x"
    done
    echo "$line"
done
for p in "${precisions[@]}"; do
    # shellcheck disable=SC2086
    median=$(printf '%s\n' ${ratios[$p]} | sort -n | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }')
    echo "$agent ($p products): reference/mbrl ${median}x (median of $rounds pairs:${ratios[$p]})"
done
