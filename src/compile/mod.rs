//! Compile: a cell's dataflow graph to the plan the runtime executes.
//!
//! This is the one bridge from the language to the runtime: it reads the
//! graph's nodes and their settings (never the checked cell), resolves the
//! env configuration, the evaluation protocol, the compatibility mode and
//! `--scale`, and produces a [`Plan`]: the seeds, the env, the protocol, the
//! driver's [`Schedule`] and one agent plan per agent kind. It also says what
//! a plan will cost ([`Plan::cost`]), from the sizes it will run at.
//!
//! Invariants: reads [`crate::graph::Graph`] only; knows the env and tensor
//! building blocks' configuration types but runs nothing; one function per
//! agent kind (`dqn`, `random`, `slbo`).

mod dqn;
mod env;
pub mod slbo;

use crate::envs::EnvConfig;
use crate::graph::{Graph, Node};

pub use dqn::{
    Compat, DqnPlan, Exploration, Latent, LearnedPlan, ModelKind, ModelLoss, ModelPlan, ObsHead,
    Rollouts,
};
pub use env::{EvalMetric, Protocol};
pub use slbo::SlboPlan;

/// Why a cell cannot be compiled.
#[derive(Debug, PartialEq, thiserror::Error)]
pub enum CompileError {
    #[error("agent `{agent}` ({ctor}) cannot run yet: {why}")]
    Unsupported {
        agent: String,
        ctor: &'static str,
        why: String,
    },
    /// The graph lacks what its agent kind needs: `check` should have refused the cell.
    #[error(
        "the dataflow graph has no {what} (a bug: `mbrl check` should have refused this cell)"
    )]
    Incomplete { what: String },
}

/// How the driver runs a learner: units of work, evaluations, checkpoints.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Schedule {
    /// Units of work per seed (DQN: env steps; SLBO: stages).
    pub units: u64,
    /// Env steps per unit: evaluations are labelled in env steps.
    pub steps_per_unit: u64,
    /// Units between evaluations; the last unit is always evaluated.
    pub eval_every: u64,
    /// Units between checkpoints (taken at the next evaluation).
    pub save_every: u64,
    /// Also evaluate before the first unit.
    pub eval_at_start: bool,
}

/// What one cell runs: its seeds, env, evaluation protocol and schedule,
/// and the agent.
#[derive(Clone, Debug, PartialEq)]
pub struct Plan {
    pub root_seed: u64,
    pub seeds: Vec<u64>,
    pub env: EnvConfig,
    pub protocol: Protocol,
    pub schedule: Schedule,
    pub agent: AgentPlan,
}

/// The agent kinds the runtime has a learner for.
#[derive(Clone, Debug, PartialEq)]
pub enum AgentPlan {
    /// Uniform random actions: the floor every curve is read against.
    Random,
    /// The Young et al. DQN family.
    Dqn(Box<DqnPlan>),
    /// SLBO with its model losses.
    Slbo(Box<SlboPlan>),
}

/// What a plan will compute and hold, for one seed.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Cost {
    /// Useful floating-point operations of all updates (forward, backward, targets, rollouts).
    pub flops: f64,
    /// Bytes of replay storage and parameters with optimizer state.
    pub bytes: f64,
}

/// Compiles one cell's graph; `scale` multiplies its budget (rounded to
/// whole evaluation intervals, at least one).
pub fn compile(graph: &Graph, scale: f64) -> Result<Plan, CompileError> {
    let env_node = need(graph, "env")?;
    let env = env::config(env_node)?;
    let protocol = env::protocol(need(graph, "evaluator")?, env_node);
    let (schedule, agent) = match graph.agent {
        "dqn" => {
            let (schedule, plan) = dqn::compile(graph)?;
            (schedule, AgentPlan::Dqn(Box::new(plan)))
        }
        "random" => {
            let s = need(graph, "schedule")?;
            let schedule = Schedule {
                units: count(s, "steps"),
                steps_per_unit: 1,
                eval_every: count(s, "eval_every").max(1),
                save_every: count(s, "eval_every").max(1),
                eval_at_start: false,
            };
            (schedule, AgentPlan::Random)
        }
        "slbo" => {
            let (schedule, plan) = slbo::compile(graph)?;
            (schedule, AgentPlan::Slbo(Box::new(plan)))
        }
        other => {
            return Err(CompileError::Incomplete {
                what: format!("agent kind `{other}`"),
            })
        }
    };
    Ok(Plan {
        root_seed: graph.run.root_seed,
        seeds: (0..graph.run.seeds).collect(),
        env,
        protocol,
        schedule: scaled(schedule, scale),
        agent,
    })
}

/// The schedule with its budget multiplied by `scale`, in whole evaluation intervals.
fn scaled(schedule: Schedule, scale: f64) -> Schedule {
    let every = schedule.eval_every.max(1);
    let units = ((schedule.units as f64 * scale) / every as f64).round() as u64 * every;
    Schedule {
        units: units.max(every),
        ..schedule
    }
}

impl Plan {
    /// Names of the metrics the plan's learner reports, `eval` first.
    pub fn metrics(&self) -> &'static [&'static str] {
        match &self.agent {
            AgentPlan::Random => &["eval"],
            AgentPlan::Dqn(_) => dqn::METRICS,
            AgentPlan::Slbo(plan) => slbo::metrics(&plan.loss),
        }
    }

    /// Compute and memory of one seed.
    pub fn cost(&self) -> Cost {
        match &self.agent {
            AgentPlan::Random => Cost::default(),
            AgentPlan::Dqn(plan) => dqn::cost(plan, &self.schedule),
            AgentPlan::Slbo(plan) => slbo::cost(plan, &self.schedule),
        }
    }

    /// `(learning_starts, gradient updates per env step)`: how a plot's
    /// `x: updates` reads an env step.
    pub fn updates_per_step(&self) -> (u64, f64) {
        match &self.agent {
            AgentPlan::Random => (0, 0.0),
            AgentPlan::Dqn(p) => (p.learning_starts, p.updates_per_step as f64),
            AgentPlan::Slbo(p) => {
                let per_stage = p.iters * (p.model_iters + p.policy_iters);
                (0, per_stage as f64 / p.steps_per_stage.max(1) as f64)
            }
        }
    }

    /// Env steps one seed takes.
    pub fn env_steps(&self) -> u64 {
        self.schedule.units * self.schedule.steps_per_unit
    }
}

/// Total compute of `plans` (all seeds), and the memory of the largest (cells run one at a time).
pub fn total_cost(plans: &[Plan]) -> Cost {
    let seeds = |p: &Plan| p.seeds.len() as f64;
    Cost {
        flops: plans.iter().map(|p| p.cost().flops * seeds(p)).sum(),
        bytes: plans
            .iter()
            .map(|p| p.cost().bytes * seeds(p))
            .fold(0.0, f64::max),
    }
}

/// The node playing `role`.
fn need<'g>(graph: &'g Graph, role: &str) -> Result<&'g Node, CompileError> {
    graph.find(role).ok_or_else(|| CompileError::Incomplete {
        what: format!("`{role}` node"),
    })
}

/// A count attribute `check` has validated as a non-negative integer.
fn count(node: &Node, attr: &str) -> u64 {
    node.int(attr).unwrap_or(0).max(0) as u64
}
