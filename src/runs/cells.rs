//! Cells run into an open run directory: each resumed from its checkpoints
//! where it has any, stopped (every seed checkpointed) when the caller's
//! stop flag is set, and `metrics.csv` rewritten after each cell and at most
//! every 30 s while one runs ([`MetricsWriter`]), so that a long cell's
//! points so far are on disk.
//!
//! Invariants: prints nothing; what happens as a run goes (points, damaged
//! checkpoints moved aside, non-finite losses, a cell's end) goes to the
//! caller's [`Watch`]. Owns no signal handler: the caller sets the stop flag.

use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Instant;

use crate::check::{Cell, CheckedExperiment};
use crate::compile::Plan;
use crate::report::{self, MetricRow};
use crate::runtime::driver::{self, Point, Session};

use super::rundir::{DamagedCheckpoint, ForeignCheckpoint, RunDir};
pub use super::watch::{CellEnd, Quiet, Stop, Watch};

/// How a run of cells ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Ran {
    /// Every cell ran to its end; the manifest says so.
    Finished,
    /// Stopped with every seed checkpointed: running again resumes.
    Stopped,
}

/// Why a run of cells failed.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum CellsError {
    #[error(transparent)]
    #[diagnostic(transparent)]
    DamagedCheckpoint(DamagedCheckpoint),
    #[error(transparent)]
    #[diagnostic(transparent)]
    ForeignCheckpoint(ForeignCheckpoint),
    /// The cell (`cell N [LABEL]`) failed.
    #[error("{cell}: {error}")]
    Failed {
        cell: String,
        error: driver::RunError,
    },
    #[error("cannot write metrics: {0}")]
    Metrics(std::io::Error),
    #[error("cannot write the manifest: {0}")]
    Manifest(std::io::Error),
}

impl RunDir {
    /// Runs the cells that have a plan, one after the other, rewriting
    /// `metrics.csv` after each; when all ran to their end, the manifest
    /// records it. `plans` holds one entry per cell of `exp` (`None` for a
    /// cell another part runs).
    pub fn run_cells(
        &self,
        exp: &CheckedExperiment,
        plans: &[Option<Plan>],
        stop: Stop,
        watch: &dyn Watch,
    ) -> Result<Ran, CellsError> {
        let mut rows = Vec::new();
        for (cell, plan) in exp.cells.iter().zip(plans) {
            let Some(plan) = plan else {
                continue;
            };
            let end = self.run_cell(cell, plan, &rows, stop, watch)?;
            let names = plan.metrics();
            rows.extend(end.points.iter().map(|p| metric_row(cell.index, &names, p)));
            report::write_metrics(&self.dir, &self.hash, &rows).map_err(CellsError::Metrics)?;
            if end.interrupted {
                watch.cell_stopped(cell, &end);
                return Ok(Ran::Stopped);
            }
            watch.cell_finished(cell, &end);
        }
        self.finish().map_err(CellsError::Manifest)?;
        Ok(Ran::Finished)
    }

    /// Runs (or resumes) one cell from its checkpoints in this directory.
    /// While it runs, `metrics.csv` holds `done` (the rows of the cells
    /// before it) and its points so far, rewritten now and then; the
    /// caller writes the final rows.
    pub fn run_cell(
        &self,
        cell: &Cell,
        plan: &Plan,
        done: &[MetricRow],
        stop: Stop,
        watch: &dyn Watch,
    ) -> Result<CellEnd, CellsError> {
        let start = Instant::now();
        let store = self.checkpoints(cell.index, watch);
        let session = Session {
            checkpoints: Some(&store),
            stop: stop.flag,
            stop_at: stop.at,
        };
        let writer = MetricsWriter::new(
            self.dir.clone(),
            self.hash.clone(),
            done.to_vec(),
            cell.index,
            plan,
        );
        let resuming = store.dir.exists();
        let heard = watch.cell(cell, plan, resuming);
        let report = |points: &[Point], restored: bool| {
            writer.add(points);
            heard(points, restored);
        };
        let outcome =
            crate::runtime::run(plan, self.threads, session, &report).map_err(|err| match err {
                driver::RunError::Damaged(why) => {
                    CellsError::DamagedCheckpoint(DamagedCheckpoint { why })
                }
                driver::RunError::Foreign(why) => {
                    CellsError::ForeignCheckpoint(ForeignCheckpoint::new(why))
                }
                error => CellsError::Failed {
                    cell: format!("cell {} [{}]", cell.index, cell.label()),
                    error,
                },
            })?;
        if !outcome.failures.is_empty() {
            watch.non_finite(cell, plan, &outcome.failures);
        }
        Ok(CellEnd {
            points: outcome.points,
            interrupted: outcome.interrupted,
            elapsed: start.elapsed(),
        })
    }
}

/// A point of a cell whose plan's metrics are `names`, as a row of `metrics.csv`.
pub fn metric_row(cell: usize, names: &[&str], p: &Point) -> MetricRow {
    MetricRow {
        cell,
        seed: p.seed,
        step: p.step,
        metric: names[p.metric].to_string(),
        value: p.value,
    }
}

/// How often a running cell's points are written to `metrics.csv`.
pub const WRITE_EVERY_S: f64 = 30.0;

/// The run's `metrics.csv` while a cell runs: the finished cells' rows and
/// the cell's points so far, rewritten at most every [`WRITE_EVERY_S`]
/// seconds.
pub struct MetricsWriter {
    dir: PathBuf,
    /// The run's identity, for `metrics.sum`.
    hash: String,
    done: Vec<MetricRow>,
    cell: usize,
    metrics: Vec<&'static str>,
    /// The cell's points so far, and when they were last written.
    points: Mutex<(Vec<Point>, Instant)>,
}

impl MetricsWriter {
    pub fn new(
        dir: PathBuf,
        hash: String,
        done: Vec<MetricRow>,
        cell: usize,
        plan: &Plan,
    ) -> MetricsWriter {
        MetricsWriter {
            dir,
            hash,
            done,
            cell,
            metrics: plan.metrics(),
            points: Mutex::new((Vec::new(), Instant::now())),
        }
    }

    /// Adds `points` to the cell's record; rewrites `metrics.csv` (finished
    /// cells and this cell so far) at most every [`WRITE_EVERY_S`] seconds.
    pub fn add(&self, points: &[Point]) {
        let mut guard = self.points.lock().expect("metrics lock");
        let (all, last) = &mut *guard;
        all.extend_from_slice(points);
        if last.elapsed().as_secs_f64() < WRITE_EVERY_S {
            return;
        }
        *last = Instant::now();
        let mut sorted = all.clone();
        sorted.sort_by_key(|p| (p.step, p.seed, p.metric));
        let mut rows = self.done.clone();
        rows.extend(sorted.iter().map(|p| MetricRow {
            cell: self.cell,
            seed: p.seed,
            step: p.step,
            metric: self.metrics[p.metric].to_string(),
            value: p.value,
        }));
        // A failed write leaves the previous file; the checkpoints hold the points.
        let _ = report::write_metrics(&self.dir, &self.hash, &rows);
    }
}
