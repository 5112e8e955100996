#!/usr/bin/env bash
# The test suite: everything without MuJoCo, then the HalfCheetah tests with
# the `mujoco` feature (libmujoco fetched from PyPI by setup-mujoco.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo test --locked
eval "$(scripts/setup-mujoco.sh)"
cargo test --locked --features mujoco --test it envs::halfcheetah
