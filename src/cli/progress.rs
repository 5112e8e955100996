//! Progress of a running cell: a line when every seed has reported an
//! evaluation, with the rate and an ETA estimated from the steps taken
//! since learning started (the steps before it, without updates, are far
//! cheaper and say nothing about the rest), and, when the cell is stopped,
//! a line for each evaluation some seeds reached before the stop. (`metrics.csv`
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
    /// Env steps before the first update.
    learning_starts: u64,
    label: String,
    lines: Mutex<Lines>,
}

/// What the lines printed so far measured.
struct Lines {
    /// The step and time of the last line printed (unknown when resuming).
    last: Option<(u64, Instant)>,
    /// The step and time of the first line at or after learning started
    /// (or of the first line of a resumed cell): where the rate is measured from.
    since: Option<(u64, Instant)>,
    /// Evaluations that not every seed has reported yet: step -> values.
    pending: BTreeMap<u64, Vec<f64>>,
}

impl Progress {
    pub fn new(plan: &Plan, cell: &Cell, resuming: bool) -> Progress {
        let label = format!("cell {} [{}]", cell.index, cell.label());
        Progress {
            n_seeds: plan.seeds.len(),
            steps: plan.env_steps(),
            learning_starts: plan.updates_per_step().0,
            label,
            lines: Mutex::new(Lines {
                last: (!resuming).then(|| (0, Instant::now())),
                since: None,
                pending: BTreeMap::new(),
            }),
        }
    }

    pub fn record(&self, points: &[Point], restored: bool) {
        if restored {
            return;
        }
        let mut lines = self.lines.lock().expect("progress lock");
        for p in points.iter().filter(|p| p.metric == EVAL) {
            lines.pending.entry(p.step).or_default().push(p.value);
        }
        let complete: Vec<u64> = lines
            .pending
            .iter()
            .filter(|(_, v)| v.len() == self.n_seeds)
            .map(|(k, _)| *k)
            .collect();
        for step in complete {
            let values = lines.pending.remove(&step).unwrap_or_default();
            let (mean, _) = super::mean_sd(&values);
            let speed = self.speed(&mut lines, step);
            outln!(
                "  {} step {step}/{}: eval {mean:.4} ({speed})",
                self.label,
                self.steps
            );
        }
    }

    /// The rate and ETA for a line at `step`, as of now.
    fn speed(&self, lines: &mut Lines, step: u64) -> String {
        let now = Instant::now();
        let rate = |from: u64, at: Instant| {
            step.saturating_sub(from) as f64 / now.duration_since(at).as_secs_f64().max(1e-9)
        };
        let eta = |rate: f64| (self.steps - step.min(self.steps)) as f64 / rate.max(1e-9);
        let speed = match (lines.last, lines.since) {
            (Some((from, _)), _) if step <= from => "before the first unit".to_string(),
            // A resumed run's first line has no interval to measure.
            (None, _) => "resumed".to_string(),
            (Some((from, at)), _) if step <= self.learning_starts => format!(
                "{:.0} steps/s before learning starts at step {}; no ETA yet",
                rate(from, at),
                self.learning_starts
            ),
            (_, Some((from, at))) => {
                let r = rate(from, at);
                format!("{r:.0} steps/s, ETA {:.0} s", eta(r))
            }
            // The first line after learning started: its interval holds
            // some steps without updates, so this ETA is a lower bound.
            (Some((from, at)), None) => {
                let r = rate(from, at);
                format!("{r:.0} steps/s, ETA {:.0} s or more", eta(r))
            }
        };
        lines.last = Some((step, now));
        if lines.since.is_none() && step >= self.learning_starts {
            lines.since = Some((step, now));
        }
        speed
    }

    /// Prints the evaluations that some seeds, not all, reached before the
    /// cell was stopped (they are in `metrics.csv` too).
    pub fn flush(&self) {
        let mut lines = self.lines.lock().expect("progress lock");
        for (step, values) in std::mem::take(&mut lines.pending) {
            let (mean, _) = super::mean_sd(&values);
            outln!(
                "  {} step {step}/{}: eval {mean:.4} ({} of {} seeds, stopped before the others reached it)",
                self.label,
                self.steps,
                values.len(),
                self.n_seeds
            );
        }
    }
}
