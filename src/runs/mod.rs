//! Runs: an experiment run into a run directory, its parts run apart and
//! merged, and the Slurm job directory that runs them as an array. This is
//! the library API `mbrl run`, `mbrl merge` and `mbrl slurm` call; a
//! program (or a test) can do all of it without the command line.
//!
//! - [`prepare`]: an experiment's cells compiled for a run, its identity,
//!   the part of it a directory runs, and the refusals before anything is
//!   allocated (a changed experiment, too little memory);
//! - [`rundir`]: the run directory: opened (created or resumed), locked,
//!   its identity and manifest checked, its checkpoints verified (and, on
//!   request, damaged ones moved aside to be recomputed);
//! - [`cells`]: cells run into an open run directory, resumed from its
//!   checkpoints, with `metrics.csv` kept current;
//! - [`watch`]: what a run tells its caller as it goes, and how the caller
//!   stops it;
//! - [`references`]: the experiment's `report` block and the reference
//!   levels (the random agent, the known optimum) its manifest records;
//! - [`job`]: the Slurm job directory: its layout (which [`merge`] reads
//!   too), its sealed record, the batch script, and `sbatch`;
//! - [`merge`]: the parts of a sharded run (or of a job) merged into one
//!   run directory, every refusal coded.
//!
//! Why a module of its own and not part of `report`: `report` formats,
//! writes and verifies run directories and computes nothing (its merge
//! runs nothing); this module sits above it and above `runtime`, because
//! opening a directory compiles and evaluates (the reference levels) and
//! running one drives the learners.
//!
//! Invariants: prints nothing, returns no exit codes and reads no process
//! state a caller should own (Ctrl-C, arguments): every refusal is a typed
//! error that is a `miette::Diagnostic` with the code and message `mbrl`
//! shows (errors without a code are shown as `error: MESSAGE`), and what a
//! run does as it goes reaches the caller through [`Watch`]. No cycles
//! among the files: `watch` <- `rundir` <- `cells`, `rundir` <- `job` <-
//! `merge`. The
//! checkpoints' and the directory's formats belong to `report`.

pub mod cells;
pub mod job;
pub mod merge;
pub mod prepare;
pub mod rates;
pub mod references;
pub mod rundir;
pub mod watch;

pub use cells::Ran;
pub use prepare::{check_memory, check_precision, compile_cells, Compiled};
pub use rundir::{identity, open, Opening, RunDir};
pub use watch::{CellEnd, Quiet, Stop, Watch};

/// Mean and sample standard deviation (NaN for no values).
pub fn mean_sd(xs: &[f64]) -> (f64, f64) {
    if xs.is_empty() {
        return (f64::NAN, f64::NAN);
    }
    let n = xs.len() as f64;
    let mean = xs.iter().sum::<f64>() / n;
    let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0).max(1.0);
    (mean, var.sqrt())
}
