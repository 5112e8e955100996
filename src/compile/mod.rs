//! Compile: a cell's dataflow graph to the plan the runtime executes.
//!
//! This is the one bridge from the language to the runtime: it reads the
//! graph's nodes and their settings (never the checked cell), resolves the
//! env configuration, the evaluation protocol, the compatibility mode and
//! `--scale`, and produces a [`Plan`]: the seeds, the env, the protocol, the
//! driver's [`Schedule`] and the agent's typed plan, which the agent's kind
//! ([`crate::kinds`]) compiles from its nodes. It also says what a plan will
//! cost ([`Plan::cost`]), from the sizes it will run at.
//!
//! Invariants: reads [`crate::graph::Graph`] only; knows the env and tensor
//! building blocks' configuration types but runs nothing; knows no agent
//! kind by name (the graph's kind is looked up in the registry).

mod env;

use crate::envs::EnvConfig;
use crate::graph::{Graph, Node};

pub use crate::kinds::AgentPlan;
pub use env::{EvalMetric, Protocol};

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
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
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
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Plan {
    pub root_seed: u64,
    pub seeds: Vec<u64>,
    pub env: EnvConfig,
    pub protocol: Protocol,
    pub schedule: Schedule,
    pub agent: AgentPlan,
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
    let protocol = env::protocol(need(graph, "evaluator")?, env_node)?;
    let kind = crate::kinds::lookup(graph.agent).map_err(|err| CompileError::Incomplete {
        what: format!("registered agent kind ({err})"),
    })?;
    let (schedule, agent) = kind.compile(graph)?;
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
    pub fn metrics(&self) -> Vec<&'static str> {
        self.agent.metrics()
    }

    /// Compute and memory of one seed.
    pub fn cost(&self) -> Cost {
        self.agent.cost(&self.schedule)
    }

    /// `(learning_starts, gradient updates per env step)`: how a plot's
    /// `x: updates` reads an env step.
    pub fn updates_per_step(&self) -> (u64, f64) {
        self.agent.updates_per_step()
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

/// A value's canonical text: its fields by name with their values (RON),
/// the same for equal values on every build; what identities hash.
pub fn canonical<T: serde::Serialize>(value: &T) -> String {
    ron::to_string(value).unwrap_or_else(|err| unreachable!("plans serialize to RON: {err}"))
}

/// The node playing `role`.
pub fn need<'g>(graph: &'g Graph, role: &str) -> Result<&'g Node, CompileError> {
    graph.find(role).ok_or_else(|| CompileError::Incomplete {
        what: format!("`{role}` node"),
    })
}

/// Reads a node's settings for a plan. `check` gives every field of a
/// block a value (the one set, or the schema's default) and lowering puts
/// each on its node, so a setting that is missing, or is not one of the
/// values a plan knows, is a compile error naming it: a default is written
/// in the schema only, never a second time here.
pub trait Settings {
    fn need_int(&self, attr: &str) -> Result<i64, CompileError>;
    /// A count `check` has validated as a non-negative integer.
    fn need_count(&self, attr: &str) -> Result<u64, CompileError> {
        Ok(self.need_int(attr)?.max(0) as u64)
    }
    fn need_float(&self, attr: &str) -> Result<f64, CompileError>;
    fn need_flag(&self, attr: &str) -> Result<bool, CompileError>;
    fn need_text(&self, attr: &str) -> Result<&str, CompileError>;
    /// The value of an enum setting among `choices`.
    fn need_choice<T: Copy>(&self, attr: &str, choices: &[(&str, T)]) -> Result<T, CompileError> {
        let text = self.need_text(attr)?;
        choices
            .iter()
            .find(|(name, _)| *name == text)
            .map(|(_, value)| *value)
            .ok_or_else(|| CompileError::Incomplete {
                what: format!("plan for `{attr}: {text}`"),
            })
    }
}

impl Settings for Node {
    fn need_int(&self, attr: &str) -> Result<i64, CompileError> {
        self.int(attr).ok_or_else(|| missing(self, attr))
    }

    fn need_float(&self, attr: &str) -> Result<f64, CompileError> {
        self.float(attr).ok_or_else(|| missing(self, attr))
    }

    fn need_flag(&self, attr: &str) -> Result<bool, CompileError> {
        self.bool(attr).ok_or_else(|| missing(self, attr))
    }

    fn need_text(&self, attr: &str) -> Result<&str, CompileError> {
        self.text(attr).ok_or_else(|| missing(self, attr))
    }
}

fn missing(node: &Node, attr: &str) -> CompileError {
    CompileError::Incomplete {
        what: format!("`{attr}` on its `{}` node", node.role),
    }
}
