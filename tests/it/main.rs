//! One integration-test binary: UI snapshots, the CLI, the runs library, and no-panic properties.

mod claims;
mod cli;
mod envs;
mod faults;
mod faults_labels;
mod faults_run;
mod fields;
mod numerics;
mod props;
mod runs;
mod slurm;
mod stats;
mod ui;

/// The checkout whose files the tests read (`experiments/`, `README.md`,
/// `src/`) and where they run `mbrl`: this one, or `MBRL_TEST_ROOT` where the
/// test executable runs away from its build (`scripts/gpu-check.sh` on a GPU
/// machine).
pub(crate) fn root() -> std::path::PathBuf {
    std::env::var_os("MBRL_TEST_ROOT").map_or_else(|| env!("CARGO_MANIFEST_DIR").into(), Into::into)
}

/// The `mbrl` binary under test: cargo's, or `MBRL_BIN` (as for [`root`]).
pub(crate) fn bin() -> std::path::PathBuf {
    std::env::var_os("MBRL_BIN").map_or_else(|| env!("CARGO_BIN_EXE_mbrl").into(), Into::into)
}
