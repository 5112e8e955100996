#!/usr/bin/env bash
# The test suite: clippy and rustdoc with warnings as errors, everything without MuJoCo (with a
# local Slurm cluster), then the HalfCheetah tests with
# the `mujoco` feature (libmujoco fetched from PyPI by setup-mujoco.sh), then a type check of the
# `cuda` build (CUDA 13 from PyPI by build-cuda.sh), which no test machine can run but all must compile.
set -euo pipefail
cd "$(dirname "$0")/.."
# A one-node Slurm cluster for the `mbrl slurm` tests, where this machine allows one (root or
# sudo): scripts/slurm-cluster.sh installs slurm-wlm and munge if absent (it says so first) and
# starts munged, slurmctld and slurmd with their files in ${TMPDIR:-/tmp}/mbrl-slurm, nothing in
# /etc. What it started is stopped when this script ends, however it ends (the trap below).
# `MBRL_REQUIRE_SLURM=1` (CI) makes the cluster a must.
if cluster="$(scripts/slurm-cluster.sh start)"; then
    eval "$cluster"
    if [ "${MBRL_SLURM_STARTED:-0}" = 1 ]; then
        trap 'scripts/slurm-cluster.sh stop' EXIT
    fi
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
    # The Slurm block above, in a wrapper: its daemons are gone when the wrapper exits.
    cargo test --locked --test it -- --ignored faults_labels::the_test_command_stops
elif [ "${MBRL_REQUIRE_SLURM:-0}" = 1 ]; then
    echo "error: the tmpfs test needs root" >&2
    exit 1
else
    echo "note: not root; the tmpfs test (faults::a_full_disk_leaves_no_partial_files) is not run" >&2
fi
# rliable (Agarwal et al. 2021) run live against mbrl's statistics: a venv in .rliable-venv/
# with rliable and its dependencies from PyPI (about 60 MB, once; it says so). Skipped, saying
# so, where Python cannot make a venv; CI (MBRL_REQUIRE_SLURM=1) requires it.
if [ ! -x .rliable-venv/bin/python ] && python3 -m venv .rliable-venv.tmp 2>/dev/null; then
    echo "note: installing rliable, numpy, scipy and pandas<3 from PyPI into .rliable-venv/ (once)" >&2
    .rliable-venv.tmp/bin/pip install --quiet rliable numpy scipy 'pandas<3' &&
        mv .rliable-venv.tmp .rliable-venv
fi
rm -rf .rliable-venv.tmp
if [ -x .rliable-venv/bin/python ]; then
    cargo test --locked --test it -- --ignored stats::
elif [ "${MBRL_REQUIRE_SLURM:-0}" = 1 ]; then
    echo "error: rliable could not be installed (python3 -m venv)" >&2
    exit 1
else
    echo "note: no Python venv here; the live rliable test (stats::point_estimates_match_rliable_run_live) is not run" >&2
fi
# The AMX bf16 kernel against FP32 products, and the agents in bf16 (batch invariance, exact
# resume), where the CPU has the tiles.
if grep -qw amx_bf16 /proc/cpuinfo 2>/dev/null && grep -qw amx_tile /proc/cpuinfo; then
    cargo test --locked --lib -- --ignored tensor::amx:: bf16
else
    echo "note: this CPU has no AMX; the bf16 tests (tensor::amx::tests::amx_products_match_fp32_products_of_the_rounded_inputs, kinds::dqn::learner::tests::every_agent_in_bf16_is_batch_invariant_and_resumes_exactly, kinds::slbo::learner::tests::bf16_stages_are_batch_invariant_and_resume_exactly) are not run" >&2
fi
# Downloads the 26 MB `mujoco` wheel from PyPI once, keeping only libmujoco in .mujoco/ (it says so).
eval "$(scripts/setup-mujoco.sh)"
cargo test --locked --features mujoco --test it envs::halfcheetah
# Downloads 186 MB of CUDA 13 wheels from PyPI once, unpacked to 490 MB in .cuda/ (it says so).
CARGO_TARGET_DIR=target/cuda scripts/build-cuda.sh --check --locked
