//! Compile: a checked cell to the plan the runtime executes on a device.
//!
//! The plan holds what the runtime needs and nothing of the language: layer
//! sizes inferred by `check`, activations, optimizer constants, the schedule
//! (steps, updates per step, target syncs, evaluation) and the seeds.
//!
//! Invariants: reads `check`'s output only; knows the tensor building blocks'
//! configuration types but runs nothing.

use crate::check::{Cell, CheckedExperiment, Obj};
use crate::tensor::mlp::Activation;
use crate::tensor::optim::AdamConfig;

/// Why a cell cannot be compiled (yet).
#[derive(Debug, PartialEq, thiserror::Error)]
pub enum CompileError {
    #[error("agent `{agent}` ({ctor}) cannot run yet: {why}")]
    Unsupported {
        agent: String,
        ctor: &'static str,
        why: String,
    },
}

/// Q's training data from rollouts of the true env from stored states (the
/// perfect model, young2022 spec §3.2): `starts` states x `length` steps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TrueRollouts {
    pub starts: usize,
    pub length: usize,
}

/// A DQN cell trained on replay (ER, young2022 spec §3.1) or on true-env rollouts (§3.2).
#[derive(Clone, Debug, PartialEq)]
pub struct DqnPlan {
    pub root_seed: u64,
    pub seeds: Vec<u64>,
    /// `[obs, hidden..., actions]`.
    pub q_dims: Vec<usize>,
    pub activation: Activation,
    pub adam: AdamConfig,
    pub gamma: f64,
    pub temperature: f64,
    pub batch: usize,
    pub buffer: usize,
    pub steps: u64,
    pub learning_starts: u64,
    pub updates_per_step: u64,
    pub target_update_every: u64,
    pub eval_every: u64,
    /// `None`: replay batches of `batch` transitions.
    pub rollouts: Option<TrueRollouts>,
}

pub fn dqn_plan(exp: &CheckedExperiment, cell: &Cell) -> Result<DqnPlan, CompileError> {
    let agent = &cell.agent;
    let unsupported = |why: &str| CompileError::Unsupported {
        agent: agent.label.clone(),
        ctor: agent.ctor.name,
        why: why.to_string(),
    };
    if agent.ctor.name != "dqn" {
        return Err(unsupported("only `dqn` agents compile so far"));
    }
    let rollouts = match (agent.obj("model"), agent.obj("planner")) {
        (None, None) => None,
        (Some(model), Some(planner))
            if model.ctor.name == "true_env" && planner.ctor.name == "model_rollouts" =>
        {
            Some(TrueRollouts {
                starts: count(planner, "starts"),
                length: count(planner, "length"),
            })
        }
        _ => {
            return Err(unsupported(
                "learned-model DQN agents land with the rest of Figure 4",
            ))
        }
    };
    let q = cell
        .nets
        .iter()
        .find(|n| n.role == "Q")
        .ok_or_else(|| unsupported("no Q network was inferred"))?;
    let mut q_dims = vec![q.input];
    q_dims.extend(&q.hidden);
    q_dims.push(q.output);
    let optimizer = agent
        .obj("optimizer")
        .ok_or_else(|| unsupported("no optimizer"))?;
    Ok(DqnPlan {
        root_seed: exp.root_seed,
        seeds: (0..exp.seeds).collect(),
        q_dims,
        activation: Activation::from_name(&q.activation),
        adam: adam_config(optimizer, agent.float("lr").unwrap_or(1e-4)),
        gamma: agent.float("gamma").unwrap_or(0.9),
        temperature: agent.float("temperature").unwrap_or(1.0),
        batch: count(agent, "batch"),
        buffer: count(agent, "buffer"),
        steps: count(agent, "steps") as u64,
        learning_starts: count(agent, "learning_starts") as u64,
        updates_per_step: count(agent, "updates_per_step") as u64,
        target_update_every: count(agent, "target_update_every") as u64,
        eval_every: count(agent, "eval_every") as u64,
        rollouts,
    })
}

fn adam_config(optimizer: &Obj, lr: f64) -> AdamConfig {
    AdamConfig {
        lr,
        b1: optimizer.float("b1").unwrap_or(0.9),
        b2: optimizer.float("b2").unwrap_or(0.99),
        eps: optimizer.float("eps").unwrap_or(1e-5),
        weight_decay: optimizer.float("weight_decay").unwrap_or(0.0),
    }
}

/// A count field `check` has validated as a non-negative integer.
fn count(obj: &Obj, field: &str) -> usize {
    obj.int(field).unwrap_or(0).max(0) as usize
}
