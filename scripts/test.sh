#!/usr/bin/env bash
# The test suite: clippy and rustdoc with warnings as errors, everything without MuJoCo (with a
# local Slurm cluster), then the HalfCheetah tests with
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
# Lints and docs first: clippy with warnings as errors, rustdoc with broken links as errors.
cargo clippy --locked --all-targets -- -D warnings
RUSTDOCFLAGS="-D warnings" cargo doc --locked --no-deps --lib
cargo test --locked
# The tests that need the machine's services are #[ignore]d (reported as ignored where they
# cannot run, never as passed) and run here where they can; CI (MBRL_REQUIRE_SLURM=1, root)
# must run them all.
if [ "${MBRL_SLURM:-0}" = 1 ]; then
    cargo test --locked --test it -- --ignored slurm::
fi
if [ "$(id -u)" = 0 ]; then
    cargo test --locked --test it -- --ignored faults::a_full_disk
elif [ "${MBRL_REQUIRE_SLURM:-0}" = 1 ]; then
    echo "error: the tmpfs test needs root" >&2
    exit 1
else
    echo "note: not root; the tmpfs test (faults::a_full_disk_leaves_no_partial_files) is not run" >&2
fi
eval "$(scripts/setup-mujoco.sh)"
cargo test --locked --features mujoco --test it envs::halfcheetah
CARGO_TARGET_DIR=target/cuda scripts/build-cuda.sh --check --locked
