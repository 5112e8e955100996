//! One integration-test binary: UI snapshots, the CLI, and no-panic properties.

mod cli;
mod envs;
mod fields;
mod numerics;
mod props;
mod ui;
