//! One integration-test binary: UI snapshots, the CLI, and no-panic properties.

mod cli;
mod props;
mod ui;
