//! Progress of a running cell: a line when every seed has reported an
//! evaluation (the rate over the last interval and an ETA), and
//! `metrics.csv` rewritten at most every 30 s from the finished cells and
//! the cell's points so far.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Instant;

use crate::check::Cell;
use crate::compile::Plan;
use crate::report::{self, MetricRow};
use crate::runtime::driver::{Point, EVAL};

/// The run's `metrics.csv` while a cell runs: the finished cells' rows and
/// the cell's index.
pub struct Record {
    pub dir: PathBuf,
    /// The run's identity, for `metrics.sum`.
    pub hash: String,
    pub done: Vec<MetricRow>,
    pub cell: usize,
}

/// How often a running cell's points are written to `metrics.csv`.
const WRITE_EVERY_S: f64 = 30.0;

/// Prints a line when every seed has reported an evaluation, and keeps
/// `metrics.csv` current during long cells.
pub struct Progress {
    n_seeds: usize,
    steps: u64,
    metrics: Vec<&'static str>,
    label: String,
    /// The step and time of the last line printed (unknown when resuming).
    last: Mutex<Option<(u64, Instant)>>,
    /// Where the metrics go, the cell's points so far, and when they were last written.
    record: Mutex<(Record, Vec<Point>, Instant)>,
    pending: Mutex<BTreeMap<u64, Vec<f64>>>,
}

impl Progress {
    /// Adds `points` to the cell's record; rewrites `metrics.csv` (finished
    /// cells and this cell so far) at most every [`WRITE_EVERY_S`] seconds.
    fn write_now_and_then(&self, points: &[Point]) {
        let mut guard = self.record.lock().expect("progress lock");
        let (record, all, last) = &mut *guard;
        all.extend_from_slice(points);
        if last.elapsed().as_secs_f64() < WRITE_EVERY_S {
            return;
        }
        *last = Instant::now();
        let mut sorted = all.clone();
        sorted.sort_by_key(|p| (p.step, p.seed, p.metric));
        let mut rows = record.done.clone();
        rows.extend(sorted.iter().map(|p| MetricRow {
            cell: record.cell,
            seed: p.seed,
            step: p.step,
            metric: self.metrics[p.metric].to_string(),
            value: p.value,
        }));
        // A failed write leaves the previous file; the checkpoints hold the points.
        let _ = report::write_metrics(&record.dir, &record.hash, &rows);
    }

    pub fn new(plan: &Plan, cell: &Cell, resuming: bool, record: Record) -> Progress {
        let label = format!("cell {} [{}]", cell.index, cell.label());
        Progress {
            n_seeds: plan.seeds.len(),
            steps: plan.env_steps(),
            metrics: plan.metrics(),
            label,
            last: Mutex::new((!resuming).then(|| (0, Instant::now()))),
            record: Mutex::new((record, Vec::new(), Instant::now())),
            pending: Mutex::new(BTreeMap::new()),
        }
    }

    pub fn record(&self, points: &[Point], restored: bool) {
        self.write_now_and_then(points);
        if restored {
            return;
        }
        let mut pending = self.pending.lock().expect("progress lock");
        for p in points.iter().filter(|p| p.metric == EVAL) {
            pending.entry(p.step).or_default().push(p.value);
        }
        let complete: Vec<u64> = pending
            .iter()
            .filter(|(_, v)| v.len() == self.n_seeds)
            .map(|(k, _)| *k)
            .collect();
        for step in complete {
            let values = pending.remove(&step).unwrap_or_default();
            let (mean, _) = super::mean_sd(&values);
            // The rate of the last interval: steps before learning starts are far cheaper.
            // A resumed run's first line has no interval to measure.
            let mut last = self.last.lock().expect("progress lock");
            let speed = match *last {
                Some((since_step, _)) if step <= since_step => "before the first unit".to_string(),
                Some((since_step, since)) => {
                    let secs = since.elapsed().as_secs_f64();
                    let rate = step.saturating_sub(since_step) as f64 / secs.max(1e-9);
                    let eta = (self.steps - step) as f64 / rate.max(1e-9);
                    format!("{rate:.0} steps/s, ETA {eta:.0} s")
                }
                None => "resumed".to_string(),
            };
            *last = Some((step, Instant::now()));
            outln!(
                "  {} step {step}/{}: eval {mean:.4} ({speed})",
                self.label,
                self.steps
            );
        }
    }
}
