//! Runtime: executes compiled plans, seed-batched. The [`driver`] owns
//! everything that is not the algorithm (seed shards and groups, the
//! schedule, evaluation, losses, checkpoints, resume, stopping); each agent
//! kind is a learner it drives: [`dqn`] (the Young et al. family), [`slbo`]
//! and [`random`]. Also the evaluation protocol, replay buffers, seed sharding
//! over worker threads and the update benchmark.
//!
//! Invariants: never sees the AST or the graph, only [`crate::compile::Plan`];
//! all randomness comes from [`crate::seeds::Stream`]; prints nothing
//! (progress and results go to the caller).

pub mod bench;
pub mod dqn;
pub mod driver;
pub mod evaluate;
pub mod peak;
pub mod phases;
pub mod random;
pub mod replay;
pub mod shard;
pub mod slbo;

use crate::compile::{AgentPlan, Plan};
use driver::{Outcome, Progress, RunError, Session};

/// Runs every seed of `plan` with its agent kind's learner.
pub fn run(
    plan: &Plan,
    threads: usize,
    session: Session,
    progress: Progress,
) -> Result<Outcome, RunError> {
    match &plan.agent {
        AgentPlan::Dqn(dqn) => {
            driver::run(&dqn::Dqn { plan, dqn }, plan, threads, session, progress)
        }
        AgentPlan::Random => driver::run(&random::Random, plan, threads, session, progress),
        AgentPlan::Slbo(slbo) => {
            driver::run(&slbo::Slbo { plan, slbo }, plan, threads, session, progress)
        }
    }
}
