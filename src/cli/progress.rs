//! Progress of a running cell: a line when every seed has reported an
//! evaluation (the rate over the last interval and an ETA). (`metrics.csv`
//! is kept current by `runs::cells::MetricsWriter`.)

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Instant;

use crate::check::Cell;
use crate::compile::Plan;
use crate::runtime::driver::{Point, EVAL};

/// Prints a line when every seed has reported an evaluation.
pub struct Progress {
    n_seeds: usize,
    steps: u64,
    label: String,
    /// The step and time of the last line printed (unknown when resuming).
    last: Mutex<Option<(u64, Instant)>>,
    pending: Mutex<BTreeMap<u64, Vec<f64>>>,
}

impl Progress {
    pub fn new(plan: &Plan, cell: &Cell, resuming: bool) -> Progress {
        let label = format!("cell {} [{}]", cell.index, cell.label());
        Progress {
            n_seeds: plan.seeds.len(),
            steps: plan.env_steps(),
            label,
            last: Mutex::new((!resuming).then(|| (0, Instant::now()))),
            pending: Mutex::new(BTreeMap::new()),
        }
    }

    pub fn record(&self, points: &[Point], restored: bool) {
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
