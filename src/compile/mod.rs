//! Compile: a checked cell to the plan the runtime executes on a device.
//!
//! The plan holds what the runtime needs and nothing of the language: layer
//! sizes inferred by `check`, activations, optimizer constants, the schedule
//! (steps, updates per step, target syncs, evaluation) and the seeds.
//!
//! Invariants: reads `check`'s output only; knows the tensor building blocks'
//! configuration types but runs nothing.

use crate::check::{Cell, CheckedExperiment, Obj};
use crate::schema::ActionSpace;
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

/// Q's training data from model rollouts: `starts` start states x `length`
/// steps per update (young2022 spec §3.2-3.4).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rollouts {
    pub starts: usize,
    pub length: usize,
}

/// The model Q's rollouts run in.
#[derive(Clone, Debug, PartialEq)]
pub enum ModelPlan {
    /// The env itself from stored states (the perfect model, spec §3.2).
    TrueEnv,
    /// A model fitted to replay (spec §3.3-3.4).
    Learned(LearnedPlan),
}

/// A learned model: its networks, its loss and its optimizer.
#[derive(Clone, Debug, PartialEq)]
pub struct LearnedPlan {
    pub kind: ModelKind,
    pub obs_dim: usize,
    pub n_actions: usize,
    pub hidden: Vec<usize>,
    pub activation: Activation,
    /// The model's Adam (its step size is `model_lr`; the step counter is Q's).
    pub adam: AdamConfig,
    pub loss: ModelLoss,
    /// Rollout step k is weighted by the product of the predicted
    /// continuations before it (on episodic envs under `weighting: auto`).
    pub continuation_weights: bool,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum ModelKind {
    /// Reward, continuation and next-obs MLPs on `[obs, one_hot(a)]` (spec §3.3).
    Factored { obs: ObsHead },
    /// Encoder, transition prior, reward, continuation and decoder (spec §3.4).
    Latent(Latent),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ObsHead {
    /// Per-bit logits; rollouts sample bits.
    Bernoulli,
    /// The mean of a unit-variance Gaussian; rollouts use the mean.
    Gaussian,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Latent {
    /// `features` one-hot features of `width` classes, straight-through samples.
    Categorical { features: usize, width: usize },
    /// `features` reparameterised Gaussians; the encoder's std gets `min_std` added.
    Gaussian {
        features: usize,
        min_std: f32,
        sigmoid2: bool,
    },
}

impl Latent {
    /// The size of a latent sample (Q's input).
    pub fn dim(&self) -> usize {
        match *self {
            Latent::Categorical { features, width } => features * width,
            Latent::Gaussian { features, .. } => features,
        }
    }

    /// The size of the encoder's and the transition's output.
    pub fn params_dim(&self) -> usize {
        match *self {
            Latent::Categorical { features, width } => features * width,
            Latent::Gaussian { features, .. } => 2 * features,
        }
    }
}

/// Weights of the model loss's terms.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ModelLoss {
    pub reward: f32,
    pub continuation: f32,
    pub obs: f32,
    pub kl_prior: f32,
    pub kl_posterior: f32,
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
    /// Env steps between checkpoints (taken at the next evaluation).
    pub save_every: u64,
    /// `None`: Q trains on replay batches of `batch` transitions.
    pub model: Option<ModelPlan>,
    /// Present exactly when `model` is.
    pub rollouts: Option<Rollouts>,
}

pub fn dqn_plan(exp: &CheckedExperiment, cell: &Cell) -> Result<DqnPlan, CompileError> {
    let agent = &cell.agent;
    let unsupported = |why: &str| CompileError::Unsupported {
        agent: agent.label.clone(),
        ctor: agent.ctor.name,
        why: why.to_string(),
    };
    if agent.ctor.name != "dqn" {
        return Err(unsupported(
            "only `dqn` agents compile (the SLBO loop is not built)",
        ));
    }
    let optimizer = agent
        .obj("optimizer")
        .ok_or_else(|| unsupported("no optimizer"))?;
    let (model, rollouts) = match (agent.obj("model"), agent.obj("planner")) {
        (None, None) => (None, None),
        (Some(model), Some(planner)) if planner.ctor.name == "model_rollouts" => {
            let rollouts = Rollouts {
                starts: count(planner, "starts"),
                length: count(planner, "length"),
            };
            let model = match model.ctor.name {
                "true_env" => ModelPlan::TrueEnv,
                _ => ModelPlan::Learned(
                    learned_plan(cell, model, planner, optimizer)
                        .map_err(|why| unsupported(&why))?,
                ),
            };
            (Some(model), Some(rollouts))
        }
        (Some(_), None) => return Err(unsupported("a model needs a `planner` to train Q on")),
        (None, Some(_)) => return Err(unsupported("a planner needs a `model` to roll out")),
        (Some(_), Some(p)) => {
            return Err(unsupported(&format!(
                "DQN agents plan with `model_rollouts`, not `{}`",
                p.ctor.name
            )))
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
        save_every: count(agent, "save_every").max(1) as u64,
        model,
        rollouts,
    })
}

fn learned_plan(
    cell: &Cell,
    model: &Obj,
    planner: &Obj,
    optimizer: &Obj,
) -> Result<LearnedPlan, String> {
    let agent = &cell.agent;
    let loss = agent
        .obj("model_loss")
        .ok_or("a learned model needs a `model_loss`")?;
    let n_actions = match cell.spaces.action {
        ActionSpace::Discrete(n) => n,
        ActionSpace::Continuous(_) => return Err("DQN needs discrete actions".into()),
    };
    let weight = |f: &str| loss.float(f).unwrap_or(1.0) as f32;
    let obs_head = match model.enum_("obs") {
        Some("gaussian") => ObsHead::Gaussian,
        _ => ObsHead::Bernoulli,
    };
    let kind = match (model.ctor.name, loss.ctor.name) {
        ("factored_model", "mle") => ModelKind::Factored { obs: obs_head },
        ("latent_model", "latent_kl") => {
            if obs_head != ObsHead::Bernoulli {
                return Err("latent models decode Bernoulli observations only".into());
            }
            let features = count(model, "features");
            ModelKind::Latent(match model.enum_("latent") {
                Some("categorical") => Latent::Categorical {
                    features,
                    width: count(model, "width"),
                },
                _ => Latent::Gaussian {
                    features,
                    min_std: model.float("min_std").unwrap_or(0.0) as f32,
                    sigmoid2: model.enum_("std_act") == Some("sigmoid2"),
                },
            })
        }
        (m, l) => return Err(format!("a `{m}` model cannot be fitted with a `{l}` loss")),
    };
    let continuation_weights = match planner.enum_("weighting") {
        Some("continuation") => true,
        Some("none") => false,
        _ => cell.spaces.episodic,
    };
    Ok(LearnedPlan {
        kind,
        obs_dim: cell.spaces.obs_dim,
        n_actions,
        hidden: model
            .ints("hidden")
            .unwrap_or_default()
            .iter()
            .map(|h| (*h).max(0) as usize)
            .collect(),
        activation: Activation::from_name(model.enum_("activation").unwrap_or("elu")),
        adam: adam_config(optimizer, agent.float("model_lr").unwrap_or(2e-4)),
        loss: ModelLoss {
            reward: weight("reward_weight"),
            continuation: weight("continuation_weight"),
            obs: weight("obs_weight"),
            kl_prior: loss.float("kl_prior").unwrap_or(0.8) as f32,
            kl_posterior: loss.float("kl_posterior").unwrap_or(0.2) as f32,
        },
        continuation_weights,
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
