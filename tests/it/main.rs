//! One integration-test binary: UI snapshots, the CLI, and no-panic properties.

mod cli;
mod envs;
mod faults;
mod fields;
mod numerics;
mod props;
mod slurm;
mod ui;
