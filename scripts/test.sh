#!/usr/bin/env bash
# The test suite: everything without MuJoCo (with a local Slurm cluster), then the HalfCheetah tests with
# the `mujoco` feature (libmujoco fetched from PyPI by setup-mujoco.sh), then a type check of the
# `cuda` build (CUDA 13 from PyPI by build-cuda.sh), which no test machine can run but all must compile.
set -euo pipefail
cd "$(dirname "$0")/.."
# A one-node Slurm cluster for the `mbrl slurm` tests, where this machine
# allows one (root or sudo); `MBRL_REQUIRE_SLURM=1` (CI) makes it a must.
if scripts/slurm-cluster.sh; then
    export MBRL_SLURM=1
elif [ "${MBRL_REQUIRE_SLURM:-0}" = 1 ]; then
    exit 1
else
    echo "note: no Slurm cluster here; the tests that need one are skipped" >&2
fi
cargo test --locked
eval "$(scripts/setup-mujoco.sh)"
cargo test --locked --features mujoco --test it envs::halfcheetah
CARGO_TARGET_DIR=target/cuda scripts/build-cuda.sh --check --locked
