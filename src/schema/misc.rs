//! The supporting kinds: optimizers, evaluation protocols, noise, TRPO,
//! reports, regimes and tuned tables, and the experiment block's fields.

use crate::schema::{Ctor, Default as D, Field, Kind, Ty};
use crate::syntax::ast::Unit;

pub(super) static CTORS: &[Ctor] = &[
    Ctor {
        name: "adamw",
        kind: Kind::Optimizer,
        doc: "Young et al. Adam: decoupled weight decay x -= wd*x, not scaled by the step size",
        fields: &[
            Field::new("b1", Ty::Float, D::Float(0.9), "first-moment decay").min(0.0).below(1.0),
            Field::new("b2", Ty::Float, D::Float(0.99), "second-moment decay").min(0.0).below(1.0),
            Field::new("eps", Ty::Float, D::Float(1e-5), "denominator epsilon").above(0.0),
            Field::new("weight_decay", Ty::Float, D::Float(1e-6), "decay per update, biases too").min(0.0),
            Field::new(
                "shared_counter",
                Ty::Bool,
                D::Bool(true),
                "Q and model share one bias-correction step counter",
            ),
        ],
        ..Ctor::PLAIN
    },
    Ctor {
        name: "adam",
        kind: Kind::Optimizer,
        doc: "Adam with an L2 regulariser l2 * sum |theta|^2 / 2 and optional global-norm clipping (SLBO)",
        fields: &[
            Field::new("b1", Ty::Float, D::Float(0.9), "first-moment decay").min(0.0).below(1.0),
            Field::new("b2", Ty::Float, D::Float(0.999), "second-moment decay").min(0.0).below(1.0),
            Field::new("eps", Ty::Float, D::Float(1e-8), "denominator epsilon").above(0.0),
            Field::new("l2", Ty::Float, D::Float(0.0), "L2 regulariser coefficient").min(0.0),
            Field::new("grad_clip", Ty::Float, D::Absent, "global gradient-norm clip").above(0.0),
        ],
        ..Ctor::PLAIN
    },
    Ctor {
        name: "greedy_eval",
        kind: Kind::Eval,
        doc: "per seed: fresh eval envs run with the greedy policy; mean return or reward rate",
        fields: &[
            Field::new("envs", Ty::Int, D::Int(32), "eval envs per seed").min(1.0),
            Field::new("steps", Ty::Int, D::Int(100), "steps per eval env").unit(Unit::Steps).min(1.0),
            Field::new(
                "metric",
                Ty::Enum(&["auto", "episode_return", "reward_rate"]),
                D::Enum("auto"),
                "auto = episode return on episodic envs, reward rate on continuing ones",
            ),
        ],
        ..Ctor::PLAIN
    },
    Ctor {
        name: "policy_eval",
        kind: Kind::Eval,
        doc: "per seed: real envs run with the stochastic policy (no exploration noise); mean episode return",
        fields: &[
            Field::new("envs", Ty::Int, D::Int(4), "eval envs per seed").min(1.0),
            Field::new("steps", Ty::Int, D::Int(2500), "steps per eval env").unit(Unit::Steps).min(1.0),
            Field::new("stochastic", Ty::Bool, D::Bool(true), "sample actions instead of the mean"),
        ],
        ..Ctor::PLAIN
    },
    Ctor {
        name: "ou",
        kind: Kind::Noise,
        doc: "Ornstein-Uhlenbeck action noise x += theta (mu - x) + sigma N(0, I)",
        fields: &[
            Field::new("theta", Ty::Float, D::Float(0.15), "mean reversion").min(0.0),
            Field::new("sigma", Ty::Float, D::Float(0.3), "noise scale").min(0.0),
            Field::new("mu", Ty::Float, D::Float(0.0), "the level the noise reverts to"),
        ],
        ..Ctor::PLAIN
    },
    Ctor {
        name: "no_noise",
        kind: Kind::Noise,
        doc: "collect with the policy's own sampling only",
        fields: &[],
        ..Ctor::PLAIN
    },
    Ctor {
        name: "trpo",
        kind: Kind::Trpo,
        doc: "TRPO with GAE, conjugate gradient on Fisher-vector products, backtracking line search",
        fields: &[
            Field::new("max_kl", Ty::Float, D::Float(0.01), "trust-region size").above(0.0),
            Field::new("cg_iters", Ty::Int, D::Int(10), "conjugate-gradient iterations").min(1.0),
            Field::new("cg_damping", Ty::Float, D::Float(0.1), "Fisher damping").min(0.0),
            Field::new("cg_tol", Ty::Float, D::Float(1e-10), "conjugate gradient stops below this squared residual")
                .min(0.0),
            Field::new("line_search_steps", Ty::Int, D::Int(10), "backtracking halvings").min(0.0),
            Field::new("kl_tolerance", Ty::Float, D::Float(1.5), "accept KL up to this x max_kl").min(1.0),
            Field::new("gamma", Ty::Float, D::Float(0.99), "discount").min(0.0).max(1.0),
            Field::new("lambda", Ty::Float, D::Float(0.95), "GAE lambda").min(0.0).max(1.0),
            Field::new("ent_coef", Ty::Float, D::Float(0.005), "entropy bonus").min(0.0),
            Field::new("ent_off_stage", Ty::Int, D::Int(50), "stage from which the entropy bonus is 0")
                .unit(Unit::Stages)
                .min(0.0),
            Field::new(
                "ent_limit",
                Ty::Float,
                D::Float(2.0),
                "the bonus is the entropy restricted to [-limit, limit] (SLBO's LimitedEntNormal)",
            )
            .above(0.0),
            Field::new("vf_lr", Ty::Float, D::Float(1e-3), "value step size").above(0.0),
            Field::new("vf_epochs", Ty::Int, D::Int(5), "value epochs per TRPO step").min(1.0),
            Field::new("vf_batch", Ty::Int, D::Int(64), "value minibatch").min(1.0),
            Field::new("vf_grad_clip", Ty::Float, D::Float(2.0), "value global-norm clip").above(0.0),
        ],
        ..Ctor::PLAIN
    },
    Ctor {
        name: "report",
        kind: Kind::Report,
        doc: "how `mbrl plot` draws the run: metric against x, a band over seeds, one panel per facet",
        fields: &[
            Field::new(
                "metric",
                Ty::Enum(&["eval_return", "reward_rate", "auto"]),
                D::Enum("auto"),
                "the y axis; auto follows each env's eval metric",
            ),
            Field::new("x", Ty::Enum(&["env_steps", "updates"]), D::Enum("env_steps"), "the x axis"),
            Field::new("band", Ty::Ref(Kind::Band), D::Ctor("bootstrap"), "uncertainty band over seeds"),
            Field::new("facet", Ty::List(&Ty::Name), D::Names(&["env", "regime"]), "one panel per value of these axes"),
            Field::new("smooth", Ty::Int, D::Int(1), "moving-average window in evaluations").min(1.0),
            Field::new(
                "lines",
                Ty::List(&Ty::Name),
                D::Names(&[]),
                "reference lines: `random` (the random agent's score under each cell's protocol) and `optimum` (where the env has a known one)",
            ),
        ],
        ..Ctor::PLAIN
    },
    Ctor {
        name: "bootstrap",
        kind: Kind::Band,
        doc: "percentile bootstrap confidence interval of the mean over seeds",
        fields: &[
            Field::new("level", Ty::Float, D::Float(0.95), "confidence level").above(0.0).below(1.0),
            Field::new("resamples", Ty::Int, D::Int(1000), "bootstrap resamples").min(1.0),
        ],
        positional: &["level"],
        ..Ctor::PLAIN
    },
    Ctor {
        name: "stderr",
        kind: Kind::Band,
        doc: "mean +- one standard error over seeds",
        fields: &[],
        ..Ctor::PLAIN
    },
    Ctor {
        name: "overrides",
        kind: Kind::Regime,
        doc: "a named set of agent fields (a data regime); checked against each agent it is applied to",
        fields: &[],
        open: true,
        ..Ctor::PLAIN
    },
    Ctor {
        name: "tuned",
        kind: Kind::Table,
        doc: "per-cell agent settings keyed by grid axes: rows of key values then settings",
        fields: &[
            Field::new("key", Ty::List(&Ty::Name), D::Required, "the experiment axes that select a row"),
            Field::new("set", Ty::List(&Ty::Name), D::Required, "the agent fields each row sets"),
            Field::new("rows", Ty::List(&Ty::Any), D::Required, "one `[key..., value...]` list per cell"),
        ],
        ..Ctor::PLAIN
    },
];

pub(super) static EXPERIMENT_FIELDS: &[Field] = &[
    Field::new(
        "env",
        Ty::Ref(Kind::Env),
        D::Required,
        "the environment (or `vary env`)",
    ),
    Field::new(
        "agent",
        Ty::Ref(Kind::Agent),
        D::Required,
        "the agent (or `vary agent`)",
    ),
    Field::new(
        "regime",
        Ty::Ref(Kind::Regime),
        D::Absent,
        "agent overrides for a data regime",
    ),
    Field::new(
        "seeds",
        Ty::Int,
        D::Int(1),
        "seeds per cell, run as one batch",
    )
    .min(1.0)
    .max(100_000.0),
    Field::new(
        "seed",
        Ty::Int,
        D::Int(0),
        "root seed of every random stream",
    )
    .min(0.0),
    Field::new(
        "compat",
        Ty::Enum(&["none", "young2022", "vaslbo"]),
        D::Enum("none"),
        "reproduce a reference codebase's quirks exactly (see README)",
    ),
    Field::new(
        "tuned",
        Ty::Ref(Kind::Table),
        D::Absent,
        "per-cell agent settings",
    ),
    Field::new(
        "report",
        Ty::Ref(Kind::Report),
        D::Ctor("report"),
        "plotting",
    ),
];
