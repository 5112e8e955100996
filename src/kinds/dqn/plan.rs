//! The DQN family's plan (young2022 spec §2-3): Q and its optimizer, the
//! behaviour policy, the TD target, the data Q trains on (replay, or
//! rollouts of the true env or of a learned model) and the loop's timing.

use crate::compile::{need, CompileError, Cost, Schedule, Settings};
use crate::graph::{Graph, Node};
use crate::tensor::mlp::{Activation, Init};
use crate::tensor::optim::AdamConfig;
use crate::tensor::Precision;

crate::kinds::metrics! {
    /// The metrics a DQN learner reports, in column order.
    pub enum Metric {
        /// Q's mean TD loss over the interval's updates.
        QLoss = "q_loss",
        /// The learned model's mean loss (empty without one).
        ModelLoss = "model_loss",
    }
}

/// The reference's quirks that change results (young2022 spec §8).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Compat {
    /// After a terminal step, act from the old episode's last observation (quirk 1).
    pub stale_obs_after_reset: bool,
    /// The simple model samples next-obs bits with `P = clip(logit, 0, 1)` (quirk 2).
    pub logits_as_probabilities: bool,
}

impl Compat {
    /// The corrected behaviour (`compat` absent), or the reference's (`young2022`).
    pub fn named(name: &str) -> Compat {
        let young = name == "young2022";
        Compat {
            stale_obs_after_reset: young,
            logits_as_probabilities: young,
        }
    }
}

/// How actions are chosen from Q's values when acting and in rollouts.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize)]
pub enum Exploration {
    /// `a ~ softmax(Q / temperature)`.
    Softmax { temperature: f64 },
    /// A uniformly random action with probability `epsilon`, else `argmax Q`.
    EpsilonGreedy { epsilon: f64 },
}

/// Q's training data from model rollouts: `starts` start states x `length`
/// steps per update (young2022 spec §3.2-3.4).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Rollouts {
    pub starts: usize,
    pub length: usize,
}

/// The model Q's rollouts run in.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub enum ModelPlan {
    /// The env itself from stored states (the perfect model, spec §3.2).
    TrueEnv,
    /// A model fitted to replay (spec §3.3-3.4).
    Learned(LearnedPlan),
}

/// A learned model: its networks, its loss and its optimizer.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
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

#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize)]
pub enum ModelKind {
    /// Reward, continuation and next-obs MLPs on `[obs, one_hot(a)]` (spec §3.3).
    Factored { obs: ObsHead },
    /// Encoder, transition prior, reward, continuation and decoder (spec §3.4).
    Latent(Latent),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub enum ObsHead {
    /// Per-bit logits; rollouts sample bits.
    Bernoulli,
    /// The mean of a unit-variance Gaussian; rollouts use the mean.
    Gaussian,
}

#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize)]
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
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize)]
pub struct ModelLoss {
    pub reward: f32,
    pub continuation: f32,
    pub obs: f32,
    pub kl_prior: f32,
    pub kl_posterior: f32,
    /// Weight of the posterior's KL to the fixed base distribution (a unit
    /// Gaussian, or uniform classes): the reference's `posterior_entropy_weight`.
    pub entropy: f32,
}

impl LearnedPlan {
    /// `[in, hidden..., out]` of each network, in the order
    /// reward, continuation, obs head (decoder), then for latent models
    /// encoder and transition prior.
    pub fn net_dims(&self) -> Vec<Vec<usize>> {
        let (d, a) = (self.obs_dim, self.n_actions);
        let dims = |input: usize, output: usize| {
            let mut dims = vec![input];
            dims.extend(&self.hidden);
            dims.push(output);
            dims
        };
        match self.kind {
            ModelKind::Factored { .. } => vec![dims(d + a, 1), dims(d + a, 1), dims(d + a, d)],
            ModelKind::Latent(l) => {
                let (z, p) = (l.dim(), l.params_dim());
                vec![
                    dims(z + a, 1),
                    dims(z + a, 1),
                    dims(z, d),
                    dims(d, p),
                    dims(z + a, p),
                ]
            }
        }
    }
}

/// A DQN cell: Q trained on replay (ER, spec §3.1), on true-env rollouts
/// (§3.2) or on learned-model rollouts (§3.3-3.4).
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct DqnPlan {
    /// The size of an observation.
    pub obs_dim: usize,
    /// `[features, hidden..., actions]`: Q reads the observation, or a latent model's features.
    pub q_dims: Vec<usize>,
    pub activation: Activation,
    pub init: Init,
    pub adam: AdamConfig,
    pub gamma: f64,
    /// The TD target takes the target network's value at the online network's argmax.
    pub double_dqn: bool,
    /// The arithmetic of every network's products (absent from an FP32
    /// plan's canonical text, so FP32 runs keep their identity).
    #[serde(skip_serializing_if = "Precision::is_fp32")]
    pub precision: Precision,
    pub exploration: Exploration,
    pub batch: usize,
    pub buffer: usize,
    pub learning_starts: u64,
    pub updates_per_step: u64,
    /// With a target network, synced every `target_update_every` env steps;
    /// without one, Q bootstraps from its own values at the start of each
    /// env step's updates (the reference's `use_target: false`).
    pub use_target: bool,
    pub target_update_every: u64,
    pub compat: Compat,
    /// `None`: Q trains on replay batches of `batch` transitions.
    pub model: Option<ModelPlan>,
    /// Present exactly when `model` is.
    pub rollouts: Option<Rollouts>,
    /// Train through dfdx's tape on the CPU too, the path a CUDA build always
    /// takes (`mbrl bench --taped`, and `scripts/gpu-check.sh` on the CPU);
    /// nothing in the language sets it.
    pub taped: bool,
}

impl DqnPlan {
    /// Env steps between target syncs: every step without a target network.
    pub fn target_sync_every(&self) -> u64 {
        match self.use_target {
            true => self.target_update_every.max(1),
            false => 1,
        }
    }
}

pub(super) fn compile(graph: &Graph) -> Result<(Schedule, DqnPlan), CompileError> {
    let schedule = need(graph, "schedule")?;
    let env = need(graph, "env")?;
    let q = need(graph, "Q")?;
    let opt = need(graph, "optimizer")?;
    let policy = need(graph, "policy")?;
    let td = need(graph, "td")?;
    let unsupported = |why: &str| CompileError::Unsupported {
        agent: schedule.name.clone(),
        ctor: "dqn",
        why: why.to_string(),
    };
    let n_actions = env
        .int("actions")
        .ok_or_else(|| unsupported("DQN needs discrete actions"))? as usize;
    let q_dims: Vec<usize> = dims(q)?;
    let exploration = match policy.need_text("exploration")? {
        "epsilon_greedy" => Exploration::EpsilonGreedy {
            epsilon: policy.need_float("epsilon")?,
        },
        _ => Exploration::Softmax {
            temperature: policy.need_float("temperature")?,
        },
    };
    let (model, rollouts) = match (graph.find("model"), graph.find("planner")) {
        (None, None) => (None, None),
        (Some(model), Some(planner)) => {
            let rollouts = Rollouts {
                starts: planner.need_count("starts")? as usize,
                length: planner.need_count("length")? as usize,
            };
            let model = match model.need_text("ctor")? {
                "true_env" => ModelPlan::TrueEnv,
                _ => ModelPlan::Learned(learned(
                    graph,
                    model,
                    planner,
                    opt,
                    env,
                    n_actions,
                    &unsupported,
                )?),
            };
            (Some(model), Some(rollouts))
        }
        _ => return Err(unsupported("a model and a planner go together")),
    };
    let buffer = graph
        .find("replay")
        .or_else(|| graph.find("state buffer"))
        .ok_or_else(|| CompileError::Incomplete {
            what: "buffer node".into(),
        })?;
    let plan = DqnPlan {
        obs_dim: env.need_count("obs_dim")? as usize,
        activation: q.need_choice("activation", Activation::NAMED)?,
        init: q.need_choice("init", MLP_INITS)?,
        q_dims,
        adam: adam_config(opt, opt.need_float("lr")?)?,
        gamma: td.need_float("gamma")?,
        double_dqn: td.need_flag("double_dqn")?,
        precision: q.need_choice("precision", Precision::CHOICES)?,
        exploration,
        // The perfect model's state buffer is not sampled in batches.
        batch: match model {
            Some(ModelPlan::TrueEnv) => 0,
            _ => buffer.need_count("batch")? as usize,
        },
        buffer: buffer.need_count("buffer")? as usize,
        learning_starts: schedule.need_count("learning_starts")?,
        updates_per_step: schedule.need_count("updates_per_step")?,
        use_target: schedule.need_flag("use_target")?,
        target_update_every: schedule.need_count("target_update_every")?,
        compat: Compat::named(&graph.run.compat),
        model,
        rollouts,
        taped: false,
    };
    let every = |f: &str| schedule.need_count(f).map(|n| n.max(1));
    let sched = Schedule {
        units: schedule.need_count("steps")?,
        steps_per_unit: 1,
        eval_every: every("eval_every")?,
        save_every: every("save_every")?,
        eval_at_start: false,
    };
    Ok((sched, plan))
}

fn learned(
    graph: &Graph,
    model: &Node,
    planner: &Node,
    opt: &Node,
    env: &Node,
    n_actions: usize,
    unsupported: &dyn Fn(&str) -> CompileError,
) -> Result<LearnedPlan, CompileError> {
    let loss = graph
        .find("model loss")
        .ok_or_else(|| unsupported("a learned model needs a `model_loss`"))?;
    let weight = |f: &str| loss.need_float(f).map(|w| w as f32);
    // The KL terms of `latent_kl`; a factored model has no latent to weigh.
    let latent_weight = |f: &str| match loss.need_text("ctor")? {
        "latent_kl" => weight(f),
        _ => Ok(0.0),
    };
    let obs_head = model.need_choice(
        "obs",
        &[
            ("bernoulli", ObsHead::Bernoulli),
            ("gaussian", ObsHead::Gaussian),
        ],
    )?;
    let kind = match (model.text("ctor"), loss.text("ctor")) {
        (Some("factored_model"), Some("mle")) => ModelKind::Factored { obs: obs_head },
        (Some("latent_model"), Some("latent_kl")) => {
            if obs_head != ObsHead::Bernoulli {
                return Err(unsupported(
                    "latent models decode Bernoulli observations only",
                ));
            }
            let features = model.need_count("features")? as usize;
            ModelKind::Latent(match model.need_text("latent")? {
                "categorical" => Latent::Categorical {
                    features,
                    width: model.need_count("width")? as usize,
                },
                _ => Latent::Gaussian {
                    features,
                    min_std: model.need_float("min_std")? as f32,
                    sigmoid2: model
                        .need_choice("std_act", &[("softplus", false), ("sigmoid2", true)])?,
                },
            })
        }
        (m, l) => {
            return Err(unsupported(&format!(
                "a `{}` model cannot be fitted with a `{}` loss",
                m.unwrap_or("?"),
                l.unwrap_or("?")
            )))
        }
    };
    let continuation_weights = match planner.need_text("weighting")? {
        "continuation" => true,
        "none" => false,
        _ => env.need_flag("episodic")?,
    };
    Ok(LearnedPlan {
        kind,
        obs_dim: env.need_count("obs_dim")? as usize,
        n_actions,
        hidden: model
            .ints("hidden")
            .ok_or_else(|| unsupported("a learned model needs `hidden` layer sizes"))?
            .iter()
            .map(|h| (*h).max(0) as usize)
            .collect(),
        activation: model.need_choice("activation", Activation::NAMED)?,
        adam: adam_config(opt, opt.need_float("model_lr")?)?,
        loss: ModelLoss {
            reward: weight("reward_weight")?,
            continuation: weight("continuation_weight")?,
            obs: weight("obs_weight")?,
            kl_prior: latent_weight("kl_prior")?,
            kl_posterior: latent_weight("kl_posterior")?,
            entropy: latent_weight("entropy")?,
        },
        continuation_weights,
    })
}

fn adam_config(optimizer: &Node, lr: f64) -> Result<AdamConfig, CompileError> {
    Ok(AdamConfig {
        lr,
        b1: optimizer.need_float("b1")?,
        b2: optimizer.need_float("b2")?,
        eps: optimizer.need_float("eps")?,
        weight_decay: optimizer.need_float("weight_decay")?,
    })
}

/// The inits an `mlp` of Q or of a learned model can have.
const MLP_INITS: &[(&str, Init)] = &[
    ("haiku", Init::Haiku),
    (
        "normc",
        Init::Normc {
            hidden: 1.0,
            last: 1.0,
        },
    ),
    ("glorot", Init::Glorot),
];

/// A network node's `[in, hidden..., out]`.
fn dims(net: &Node) -> Result<Vec<usize>, CompileError> {
    net.ints("dims")
        .map(|d| d.iter().map(|x| (*x).max(0) as usize).collect())
        .ok_or_else(|| CompileError::Incomplete {
            what: format!("layer sizes on `{}`", net.name),
        })
}

/// Multiply-adds of one forward pass of `[in, hidden..., out]` for one sample.
fn macs(dims: &[usize]) -> f64 {
    dims.windows(2).map(|w| (w[0] * w[1]) as f64).sum()
}

/// Weights and biases of `[in, hidden..., out]`.
fn params(dims: &[usize]) -> f64 {
    dims.windows(2).map(|w| ((w[0] + 1) * w[1]) as f64).sum()
}

/// One seed's cost: Q forward and backward (3x) and target forward (1x) per
/// update, 2 FLOPs per multiply-add; rollouts run Q and the model forward,
/// the model trains on its minibatch; replay holds `2 obs + 3` floats per
/// transition; parameters count with two Adam moments and a gradient.
pub(super) fn cost(plan: &DqnPlan, schedule: &Schedule) -> Cost {
    let q = macs(&plan.q_dims);
    let model_nets = match &plan.model {
        Some(ModelPlan::Learned(m)) => m.net_dims(),
        _ => Vec::new(),
    };
    let model: f64 = model_nets.iter().map(|d| macs(d)).sum();
    let mut per_update = match plan.rollouts {
        Some(r) => {
            let rows = (r.starts * r.length) as f64;
            8.0 * rows * q + 2.0 * rows * (q + model) + 6.0 * plan.batch as f64 * model
        }
        None => 8.0 * plan.batch as f64 * q,
    };
    if plan.double_dqn {
        let rows = plan.rollouts.map_or(plan.batch, |r| r.starts * r.length) as f64;
        per_update += 2.0 * rows * q;
    }
    let updates = schedule.units.saturating_sub(plan.learning_starts) * plan.updates_per_step;
    let q_params = params(&plan.q_dims) * if plan.use_target { 2.0 } else { 1.0 };
    let all_params = q_params + model_nets.iter().map(|d| params(d)).sum::<f64>();
    let transition = (2 * plan.obs_dim + 3) as f64 * 4.0;
    Cost {
        flops: per_update * updates as f64,
        bytes: plan.buffer as f64 * transition + all_params * 16.0,
    }
}
