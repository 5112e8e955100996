//! SLBO's plan (vaslbo spec §1-4): the policy, value and dynamics networks,
//! the model loss and its optimizer, virtual rollouts, TRPO with its value
//! fit, the exploration noise, and the stage loop's sizes.

use crate::compile::{need, CompileError, Cost, Schedule, Settings};
use crate::graph::{Graph, Node};
use crate::tensor::mlp::{Activation, Init};
use crate::tensor::Precision;

/// A network's sizes and settings.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct NetPlan {
    /// `[in, hidden..., out]`.
    pub dims: Vec<usize>,
    pub activation: Activation,
    pub init: Init,
    /// The input goes through the running state normalizer.
    pub normalize: bool,
    /// The arithmetic of its products (absent from an FP32 plan's
    /// canonical text, so FP32 runs keep their identity).
    #[serde(skip_serializing_if = "Precision::is_fp32")]
    pub precision: Precision,
}

/// The Gaussian policy: a mean network and a state-independent log-std.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct PolicyPlan {
    pub mean: NetPlan,
    pub init_std: f64,
}

/// What the dynamics network's output means.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub enum Predicts {
    /// The state delta in diff-normalized units: `s' = s + out sigma_d + mu_d`.
    Delta,
    /// The next state in state-normalized units: `s' = out sigma_s + mu_s`.
    NextState,
}

/// The deterministic dynamics model (vaslbo spec §2.1).
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct DynamicsPlan {
    pub net: NetPlan,
    pub predicts: Predicts,
    /// Clip of the predicted next state in state-normalized units.
    pub clip: f32,
    /// Actions are clipped to `+-action_clip` before the network.
    pub action_clip: f32,
}

/// The model loss (vaslbo spec §4), over sequences of `horizon` steps.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub enum SlboLoss {
    /// The SLBO multi-step loss: per step the L2 norm (or with `squared` its
    /// square) of the diff-normalized delta error, summed (or averaged, `mean`)
    /// over state dims, rolled `horizon` steps through the model.
    MultiStep {
        horizon: usize,
        squared: bool,
        mean: bool,
    },
    /// `sum_d (f(s, a) - s')^2` on `horizon x batch` independent one-step samples.
    Mle { horizon: usize },
    /// `coeff * mean |V(s') - V(f(s, a))|^p` through the frozen V (p = 1 or 2).
    ValueAware {
        horizon: usize,
        squared: bool,
        coeff: f32,
    },
    /// A loss written as an expression, differentiated by [`crate::autodiff`].
    Expr {
        horizon: usize,
        term: std::sync::Arc<crate::autodiff::Term>,
    },
}

impl SlboLoss {
    /// The expression this loss computes, for the built-ins the tape
    /// carries: MLE is `stdlib/slbo.exp`'s `mle_twin`, the value-aware
    /// losses `ma_l1_twin` and `vaml_twin` (the same terms, so the same
    /// operations in the same order; a test holds them equal). SLBO's
    /// multi-step loss keeps its hand-written gradient (`None`): its twin
    /// sums the rollout in another order, so runs started with it would not
    /// resume bit for bit.
    pub fn expression(&self) -> Option<std::sync::Arc<crate::autodiff::Term>> {
        use crate::autodiff::{Axis, Func, Op, Term};
        use crate::syntax::ast::BinOp;
        // Built here, not written: no source span to point at.
        let nowhere = crate::source::Span::new(crate::source::FileId(0), 0..0);
        let t = |op: Op, args: Vec<Term>| Term::new(op, args, nowhere);
        let input = |name: &str| t(Op::Input(name.into()), vec![]);
        let model = || t(Op::Call("model".into()), vec![input("s"), input("a")]);
        let term = match self {
            SlboLoss::Expr { term, .. } => return Some(term.clone()),
            SlboLoss::MultiStep { .. } => return None,
            // mean(sum_sq(model(s, a) - s_next, state))
            SlboLoss::Mle { .. } => {
                let err = t(Op::Bin(BinOp::Sub), vec![model(), input("s_next")]);
                let sq = t(Op::Func(Func::Square), vec![err]);
                let per_row = t(
                    Op::Reduce {
                        mean: false,
                        axes: vec![Axis::State],
                    },
                    vec![sq],
                );
                t(
                    Op::Reduce {
                        mean: true,
                        axes: vec![],
                    },
                    vec![per_row],
                )
            }
            // coeff * mean(abs|square(V(s_next) - V(model(s, a))))
            SlboLoss::ValueAware { squared, coeff, .. } => {
                let v = |x: Term| t(Op::Call("V".into()), vec![x]);
                let gap = t(Op::Bin(BinOp::Sub), vec![v(input("s_next")), v(model())]);
                let f = if *squared { Func::Square } else { Func::Abs };
                let mean = t(
                    Op::Reduce {
                        mean: true,
                        axes: vec![],
                    },
                    vec![t(Op::Func(f), vec![gap])],
                );
                // The coefficient as written (0.01), not its f32 widened.
                let c: f64 = coeff.to_string().parse().unwrap_or(*coeff as f64);
                t(Op::Bin(BinOp::Mul), vec![t(Op::Const(c), vec![]), mean])
            }
        };
        Some(std::sync::Arc::new(term))
    }

    pub fn horizon(&self) -> usize {
        match *self {
            SlboLoss::MultiStep { horizon, .. }
            | SlboLoss::Mle { horizon }
            | SlboLoss::ValueAware { horizon, .. }
            | SlboLoss::Expr { horizon, .. } => horizon,
        }
    }
}

/// Adam (TF defaults) with an L2 regulariser and global-norm clipping.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize)]
pub struct SlboAdam {
    pub lr: f64,
    pub b1: f64,
    pub b2: f64,
    pub eps: f64,
    /// `l2 * sum |theta|^2 / 2` is added to the loss.
    pub l2: f64,
    pub grad_clip: Option<f64>,
}

/// TRPO, GAE and the value fit (vaslbo spec §3).
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize)]
pub struct TrpoPlan {
    pub max_kl: f64,
    pub cg_iters: usize,
    pub cg_damping: f64,
    pub cg_tol: f64,
    pub line_search_steps: usize,
    pub kl_tolerance: f64,
    pub gamma: f64,
    pub lambda: f64,
    pub ent_coef: f64,
    /// From this stage on the entropy bonus is 0.
    pub ent_off_stage: u64,
    pub ent_limit: f64,
    pub vf: SlboAdam,
    pub vf_epochs: usize,
    pub vf_batch: usize,
}

/// Exploration noise added to the policy's samples when collecting real data.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize)]
pub enum Noise {
    /// Ornstein-Uhlenbeck: `x += theta (mu - x) + sigma N(0, I)`, one process per seed.
    Ou {
        theta: f64,
        sigma: f64,
        mu: f64,
    },
    None,
}

/// Where virtual episodes start.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub enum Start {
    /// States drawn from the real env's reset distribution.
    Reset,
    /// States drawn uniformly from the real-data buffer.
    Buffer,
}

/// The released code's behaviour where it differs and still runs (vaslbo spec §9).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct SlboCompat {
    /// GAE bootstraps a mid-buffer timeout with V of the next row's state (§9.8).
    pub next_row_bootstrap: bool,
    /// Each stage also collects an unused dev set with the shared OU noise (§9.8).
    pub dev_set: bool,
}

/// An SLBO cell.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct SlboPlan {
    pub obs_dim: usize,
    pub act_dim: usize,
    /// Episode length of the real env: collection resets after it.
    pub horizon: usize,
    pub policy: PolicyPlan,
    pub value: NetPlan,
    pub dynamics: DynamicsPlan,
    pub loss: SlboLoss,
    pub model_adam: SlboAdam,
    pub model_batch: usize,
    pub buffer: usize,
    pub steps_per_stage: usize,
    pub iters: usize,
    pub model_iters: usize,
    pub policy_iters: usize,
    /// Refit V on fresh virtual rollouts every this many model steps (0: never).
    pub value_refit_every: usize,
    pub trpo: TrpoPlan,
    pub noise: Noise,
    /// Virtual envs per TRPO update, each rolled `length` steps.
    pub envs: usize,
    pub length: usize,
    pub start: Start,
    pub compat: SlboCompat,
}

pub(super) fn compile(graph: &Graph) -> Result<(Schedule, SlboPlan), CompileError> {
    let schedule = need(graph, "schedule")?;
    let env = need(graph, "env")?;
    let unsupported = |why: &str| CompileError::Unsupported {
        agent: schedule.name.clone(),
        ctor: "slbo",
        why: why.to_string(),
    };
    let act_dim = env
        .int("act_dim")
        .ok_or_else(|| unsupported("SLBO needs continuous actions"))? as usize;
    let horizon = env
        .int("horizon")
        .ok_or_else(|| unsupported("SLBO needs an env with fixed-length episodes"))?
        as usize;
    let policy = need(graph, "policy")?;
    let value = need(graph, "value")?;
    let dynamics = need(graph, "dynamics")?;
    let loss = need(graph, "model loss")?;
    let planner = need(graph, "planner")?;
    let trpo = need(graph, "trpo")?;
    let model_opt = need(graph, "model optimizer")?;
    let buffer = need(graph, "buffer")?;
    let plan = SlboPlan {
        obs_dim: env.need_count("obs_dim")? as usize,
        act_dim,
        horizon,
        policy: PolicyPlan {
            mean: net(
                policy,
                Init::Normc {
                    hidden: 1.0,
                    last: policy.need_float("output_init_scale")?,
                },
            )?,
            init_std: policy.need_float("init_std")?,
        },
        value: net(value, init_of(value)?)?,
        dynamics: DynamicsPlan {
            net: net(
                dynamics,
                Init::TruncatedNormal(dynamics.need_float("init_std")?),
            )?,
            predicts: dynamics.need_choice(
                "predicts",
                &[
                    ("delta", Predicts::Delta),
                    ("next_state", Predicts::NextState),
                ],
            )?,
            clip: dynamics.need_float("clip")? as f32,
            action_clip: dynamics.need_float("action_clip")? as f32,
        },
        loss: model_loss(loss, &unsupported)?,
        model_adam: adam(model_opt, model_opt.need_float("model_lr")?)?,
        model_batch: buffer.need_count("model_batch")? as usize,
        buffer: buffer.need_count("buffer")? as usize,
        steps_per_stage: schedule.need_count("steps_per_stage")? as usize,
        iters: schedule.need_count("iters")? as usize,
        model_iters: schedule.need_count("model_iters")? as usize,
        policy_iters: schedule.need_count("policy_iters")? as usize,
        value_refit_every: schedule.need_count("value_refit_every")? as usize,
        trpo: trpo_plan(trpo)?,
        noise: match graph.find("noise") {
            None => Noise::None,
            Some(n) => match n.need_text("ctor")? {
                "ou" => Noise::Ou {
                    theta: n.need_float("theta")?,
                    sigma: n.need_float("sigma")?,
                    mu: n.need_float("mu")?,
                },
                _ => n.need_choice("ctor", &[("no_noise", Noise::None)])?,
            },
        },
        envs: planner.need_count("envs")? as usize,
        length: planner.need_count("length")? as usize,
        start: planner.need_choice(
            "start",
            &[("reset", Start::Reset), ("buffer", Start::Buffer)],
        )?,
        compat: SlboCompat {
            next_row_bootstrap: graph.run.compat == "vaslbo",
            dev_set: graph.run.compat == "vaslbo",
        },
    };
    let every = |f: &str| schedule.need_count(f).map(|n| n.max(1));
    let sched = Schedule {
        units: schedule.need_count("stages")?,
        steps_per_unit: plan.steps_per_stage as u64,
        eval_every: every("eval_every")?,
        save_every: every("save_every")?,
        eval_at_start: true,
    };
    Ok((sched, plan))
}

/// A network node's sizes and settings.
fn net(node: &Node, init: Init) -> Result<NetPlan, CompileError> {
    let dims = node
        .ints("dims")
        .ok_or_else(|| CompileError::Incomplete {
            what: format!("layer sizes on `{}`", node.name),
        })?
        .iter()
        .map(|d| (*d).max(0) as usize)
        .collect();
    Ok(NetPlan {
        dims,
        activation: node.need_choice("activation", Activation::NAMED)?,
        init,
        normalize: node.need_choice("normalize", &[("none", false), ("running", true)])?,
        precision: node.need_choice("precision", Precision::CHOICES)?,
    })
}

/// An `mlp`'s init: Haiku's, normc or Glorot.
fn init_of(node: &Node) -> Result<Init, CompileError> {
    let normc = Init::Normc {
        hidden: 1.0,
        last: 1.0,
    };
    node.need_choice(
        "init",
        &[
            ("haiku", Init::Haiku),
            ("normc", normc),
            ("glorot", Init::Glorot),
        ],
    )
}

fn model_loss(
    loss: &Node,
    unsupported: &dyn Fn(&str) -> CompileError,
) -> Result<SlboLoss, CompileError> {
    let horizon = loss.need_count("horizon")?.max(1) as usize;
    Ok(match loss.need_text("ctor")? {
        "multi_step" => SlboLoss::MultiStep {
            horizon,
            squared: loss.need_choice("norm", &[("l2", false), ("mse", true)])?,
            mean: loss.need_choice("reduce", &[("sum", false), ("mean", true)])?,
        },
        "mle" => SlboLoss::Mle { horizon },
        "expression" => match loss.attr("body") {
            Some(crate::graph::Attr::Term(t)) => SlboLoss::Expr {
                horizon,
                term: std::sync::Arc::new((**t).clone()),
            },
            _ => {
                return Err(CompileError::Incomplete {
                    what: "a loss expression's terms".into(),
                })
            }
        },
        "value_aware" => SlboLoss::ValueAware {
            horizon,
            squared: loss.need_choice("norm", &[("l1", false), ("l2", true)])?,
            coeff: loss.need_float("coeff")? as f32,
        },
        other => {
            return Err(unsupported(&format!(
                "SLBO cannot fit its model with `{other}`"
            )))
        }
    })
}

fn adam(node: &Node, lr: f64) -> Result<SlboAdam, CompileError> {
    Ok(SlboAdam {
        lr,
        b1: node.need_float("b1")?,
        b2: node.need_float("b2")?,
        eps: node.need_float("eps")?,
        l2: node.need_float("l2")?,
        grad_clip: node.float("grad_clip"),
    })
}

fn trpo_plan(t: &Node) -> Result<TrpoPlan, CompileError> {
    Ok(TrpoPlan {
        max_kl: t.need_float("max_kl")?,
        cg_iters: t.need_count("cg_iters")? as usize,
        cg_damping: t.need_float("cg_damping")?,
        cg_tol: t.need_float("cg_tol")?,
        line_search_steps: t.need_count("line_search_steps")? as usize,
        kl_tolerance: t.need_float("kl_tolerance")?,
        gamma: t.need_float("gamma")?,
        lambda: t.need_float("lambda")?,
        ent_coef: t.need_float("ent_coef")?,
        ent_off_stage: t.need_count("ent_off_stage")?,
        ent_limit: t.need_float("ent_limit")?,
        vf: SlboAdam {
            lr: t.need_float("vf_lr")?,
            b1: 0.9,
            b2: 0.999,
            eps: 1e-8,
            l2: 0.0,
            grad_clip: t.float("vf_grad_clip"),
        },
        vf_epochs: t.need_count("vf_epochs")? as usize,
        vf_batch: t.need_count("vf_batch")?.max(1) as usize,
    })
}

crate::kinds::metrics! {
    /// The metrics an SLBO learner reports, in column order: the model loss
    /// minimized, its raw term (named by the loss, [`SlboPlan::metric_names`]),
    /// the model's L2 regulariser, V's loss after each fit, the accepted TRPO
    /// steps' KL, the policy's (limited) entropy, the surrogate's gain, and
    /// the mean return of virtual and of real training episodes.
    pub enum Metric {
        ModelLoss = "model_loss",
        ModelTerm = "model_term",
        ModelReg = "model_reg",
        ValueLoss = "value_loss",
        PolicyKl = "policy_kl",
        PolicyEntropy = "policy_entropy",
        SurrogateGain = "surrogate_gain",
        VirtualReturn = "virtual_return",
        TrainReturn = "train_return",
    }
}

impl SlboLoss {
    /// The column of the loss's raw term.
    pub fn term_name(&self) -> &'static str {
        match self {
            SlboLoss::MultiStep { .. } => "model_multi_step",
            SlboLoss::Mle { .. } => "model_mse",
            SlboLoss::ValueAware { squared: false, .. } => "model_va_l1",
            SlboLoss::ValueAware { squared: true, .. } => "model_va_l2",
            SlboLoss::Expr { .. } => "model_expression",
        }
    }
}

impl SlboPlan {
    /// The metric columns, `eval` first, the raw term named by the loss.
    pub fn metric_names(&self) -> Vec<&'static str> {
        let mut names = Metric::NAMES.to_vec();
        names[Metric::ModelTerm.index()] = self.loss.term_name();
        names
    }
}

/// Multiply-adds of one forward pass of `dims` for one row.
fn macs(dims: &[usize]) -> f64 {
    dims.windows(2).map(|w| (w[0] * w[1]) as f64).sum()
}

fn params(dims: &[usize]) -> f64 {
    dims.windows(2).map(|w| ((w[0] + 1) * w[1]) as f64).sum()
}

/// Multiply-adds of one step of a loss written as an expression: each
/// distinct network call on its rows (all `horizon x batch`, or a step's
/// `batch`), forward and, where a gradient passes, backward (twice the
/// forward); the elementwise work is small beside them and left out.
fn expression_macs(
    term: &crate::autodiff::Term,
    horizon: usize,
    batch: usize,
    model: f64,
    value: f64,
) -> f64 {
    use crate::autodiff::ir::{infer, Axis, Op};
    let sig = &super::check::LOSS_SIGNATURE;
    let mut seen = std::collections::HashSet::new();
    let mut total = 0.0;
    for t in term.post_order() {
        let Op::Call(name) = &t.op else { continue };
        if !seen.insert(t.describe()) {
            continue;
        }
        let whole = t
            .args
            .first()
            .and_then(|a| infer(a, sig, horizon).0)
            .is_some_and(|i| i.axes.contains(&Axis::Horizon));
        let rows = (batch * if whole { horizon } else { 1 }) as f64;
        let grad = infer(t, sig, horizon).0.is_some_and(|i| i.grad);
        let passes = if grad || name == "dV" { 3.0 } else { 1.0 };
        total += rows * passes * if name == "model" { model } else { value };
    }
    total
}

/// One seed's cost, from what a stage computes (2 FLOPs per multiply-add;
/// a backward pass costs twice a forward): the model's steps on `horizon x
/// batch` rows (through V too for value-aware losses), every virtual rollout
/// (policy and model forward per virtual step, V on its states), TRPO (the
/// surrogate's gradient, a Fisher-vector product per CG iteration and the
/// line search's evaluations) and the value fits; the buffer and parameters
/// with their Adam moments.
pub(super) fn cost(plan: &SlboPlan, schedule: &Schedule) -> Cost {
    let (model, policy, value) = (
        macs(&plan.dynamics.net.dims),
        macs(&plan.policy.mean.dims),
        macs(&plan.value.dims),
    );
    let horizon = plan.loss.horizon();
    // A loss with a term (MLE, value-aware, written as an expression) costs
    // its network calls; the multi-step loss the model's passes per step.
    let model_step = match plan.loss.expression() {
        Some(term) => 2.0 * expression_macs(&term, horizon, plan.model_batch, model, value),
        None => 2.0 * (horizon * plan.model_batch) as f64 * 3.0 * model,
    };
    let samples = (plan.envs * plan.length) as f64;
    let rollout = 2.0 * samples * (model + policy + 2.0 * value);
    let t = plan.trpo;
    let fit = 2.0 * 3.0 * value * t.vf_epochs as f64 * samples;
    let trpo_passes = 3.0 + 3.0 * (t.cg_iters + 1) as f64 + t.line_search_steps as f64;
    let trpo = 2.0 * samples * policy * trpo_passes;
    let refits = match plan.value_refit_every {
        0 => 0,
        n => plan.model_iters / n,
    } as f64;
    let iter = plan.model_iters as f64 * model_step
        + refits * (rollout + fit)
        + plan.policy_iters as f64 * (rollout + trpo + fit);
    let collect = 2.0 * plan.steps_per_stage as f64 * policy;
    let per_stage = plan.iters as f64 * iter + collect;
    let transition = (2 * plan.obs_dim + plan.act_dim + 3) as f64 * 4.0;
    let all_params = params(&plan.dynamics.net.dims)
        + params(&plan.policy.mean.dims)
        + plan.act_dim as f64
        + params(&plan.value.dims);
    Cost {
        flops: per_stage * schedule.units as f64,
        bytes: plan.buffer as f64 * transition + all_params * 16.0,
    }
}
