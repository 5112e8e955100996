//! Where a run's time goes: CPU seconds per phase of the agent loop
//! (acting, Q's data, the model's update, Q's update, evaluation), summed
//! over worker threads. Off unless [`enable`]d (`mbrl bench --agent`), when
//! timing a phase costs one relaxed load.
//!
//! Invariants: measures only; a phase's timing never changes what it computes.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Instant;

/// A phase of the agent loop.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Choosing actions and stepping the real envs.
    Acting,
    /// Q's training batch: a replay sample, or rollouts (true env or model).
    Data,
    /// The learned model's gradient step.
    ModelUpdate,
    /// Q's gradient step (and, for SLBO, TRPO and V's fit).
    QUpdate,
    /// The evaluation protocol.
    Evaluation,
}

impl Phase {
    pub const ALL: [Phase; 5] = [
        Phase::Acting,
        Phase::Data,
        Phase::ModelUpdate,
        Phase::QUpdate,
        Phase::Evaluation,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Phase::Acting => "acting",
            Phase::Data => "replay/rollouts",
            Phase::ModelUpdate => "model update",
            Phase::QUpdate => "policy update",
            Phase::Evaluation => "evaluation",
        }
    }
}

static ENABLED: AtomicBool = AtomicBool::new(false);
static NANOS: [AtomicU64; 5] = [const { AtomicU64::new(0) }; 5];

/// Starts timing phases, from zero.
pub fn enable() {
    for n in &NANOS {
        n.store(0, Ordering::Relaxed);
    }
    ENABLED.store(true, Ordering::Relaxed);
}

/// CPU seconds spent in each phase since [`enable`].
pub fn totals() -> Vec<(Phase, f64)> {
    Phase::ALL
        .iter()
        .zip(&NANOS)
        .map(|(p, n)| (*p, n.load(Ordering::Relaxed) as f64 * 1e-9))
        .collect()
}

/// Runs `f`, adding its time to `phase` when timing is on.
#[inline]
pub fn time<T>(phase: Phase, f: impl FnOnce() -> T) -> T {
    if !ENABLED.load(Ordering::Relaxed) {
        return f();
    }
    let start = Instant::now();
    let out = f();
    let index = Phase::ALL.iter().position(|p| *p == phase).unwrap_or(0);
    NANOS[index].fetch_add(start.elapsed().as_nanos() as u64, Ordering::Relaxed);
    out
}
