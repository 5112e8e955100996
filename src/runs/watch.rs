//! What a run tells its caller as it goes ([`Watch`]: points, damaged
//! checkpoints moved aside, non-finite losses, a cell's end), and how the
//! caller stops it ([`Stop`]). The types [`super::rundir`] and
//! [`super::cells`] share, so that neither imports the other's caller-facing
//! types back.
//!
//! Invariants: types only; prints nothing.

use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use crate::check::Cell;
use crate::compile::Plan;
use crate::runtime::driver::{NonFinite, Point, ProgressFn};

/// What a run tells whoever watches it as it goes. Every method does
/// nothing by default; `mbrl run` prints.
pub trait Watch: Sync {
    /// A damaged checkpoint was moved aside (`recompute`); its seeds start again.
    fn moved_aside(&self, _moved: &MovedAside) {}

    /// A cell starts (`resuming`: it has checkpoints): what hears its
    /// workers' points, restored from checkpoints (`true`) or new.
    fn cell<'a>(&'a self, _cell: &Cell, _plan: &Plan, _resuming: bool) -> Box<ProgressFn<'a>> {
        Box::new(|_, _| ())
    }

    /// A cell's run returned with non-finite losses: every one of them,
    /// by step.
    fn non_finite(&self, _cell: &Cell, _plan: &Plan, _failures: &[NonFinite]) {}

    /// A cell ran to its end and its metrics were written.
    fn cell_finished(&self, _cell: &Cell, _end: &CellEnd) {}

    /// A cell was stopped (every seed checkpointed) and its metrics so far
    /// were written; the run returns.
    fn cell_stopped(&self, _cell: &Cell, _end: &CellEnd) {}
}

/// A watch that hears nothing.
pub struct Quiet;

impl Watch for Quiet {}

/// When a run stops early, every seed checkpointed.
#[derive(Clone, Copy)]
pub struct Stop<'a> {
    /// Set (by a Ctrl-C handler) to checkpoint every seed at its next
    /// evaluation and return.
    pub flag: &'a AtomicBool,
    /// Behave as if `flag` were set once a seed that started (or resumed)
    /// before this env step reaches it.
    pub at: Option<u64>,
}

/// How one cell's run ended.
#[derive(Debug)]
pub struct CellEnd {
    /// Its points, ordered by step, seed and metric (including those
    /// restored from checkpoints).
    pub points: Vec<Point>,
    /// Stopped early; every unfinished seed has a checkpoint.
    pub interrupted: bool,
    pub elapsed: Duration,
}

/// A damaged checkpoint moved aside (`--recompute-damaged`): its seeds
/// start again.
#[derive(Clone, Debug)]
pub struct MovedAside {
    /// What was wrong with it, naming the checkpoint.
    pub why: String,
    /// Where it went.
    pub aside: PathBuf,
}

impl std::fmt::Display for MovedAside {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}; moved to `{}`, its seeds start again",
            self.why,
            self.aside.display()
        )
    }
}
