//! Runtime: executes compiled plans, seed-batched. The [`driver`] owns
//! everything that is not the algorithm (seed shards and groups, the
//! schedule, evaluation, losses, checkpoints, resume, stopping); each agent
//! kind's learner ([`crate::kinds`]) is what it drives. Also the evaluation
//! protocol, replay buffers, seed sharding over worker threads and the
//! update benchmark.
//!
//! Invariants: never sees the AST or the graph, only [`crate::compile::Plan`];
//! all randomness comes from [`crate::seeds::Stream`]; prints nothing
//! (progress and results go to the caller).

pub mod bench;
pub mod driver;
pub mod evaluate;
pub mod peak;
pub mod phases;
pub mod replay;
pub mod shard;

use crate::compile::Plan;
use driver::{Outcome, Progress, RunError, Session};

/// Runs every seed of `plan` with its agent kind's learner.
pub fn run(
    plan: &Plan,
    threads: usize,
    session: Session,
    progress: Progress,
) -> Result<Outcome, RunError> {
    plan.agent.run(plan, threads, session, progress)
}
