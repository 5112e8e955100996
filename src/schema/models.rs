//! Networks and dynamics models, model losses, and planners (rollout generators).

use crate::schema::{Ctor, Default as D, Field, Kind, Ty};
use crate::syntax::ast::Unit;

const ACTIVATIONS: &[&str] = &["elu", "relu", "tanh"];
const INITS: &[&str] = &["haiku", "normc", "glorot", "truncated_normal"];
const NORMALIZE: &[&str] = &["none", "running"];

const fn hidden(default: &'static [i64]) -> Field {
    Field::new(
        "hidden",
        Ty::List(&Ty::Int),
        D::Ints(default),
        "widths of the hidden layers",
    )
}

const fn activation(default: &'static str) -> Field {
    Field::new(
        "activation",
        Ty::Enum(ACTIVATIONS),
        D::Enum(default),
        "hidden-layer nonlinearity",
    )
}

const fn obs_head() -> Field {
    Field::new(
        "obs",
        Ty::Enum(&["bernoulli", "gaussian"]),
        D::Enum("bernoulli"),
        "observation head: per-bit Bernoulli logits (binary obs) or Gaussian mean",
    )
}

const LOSS_WEIGHTS: [Field; 3] = [
    Field::new(
        "reward_weight",
        Ty::Float,
        D::Float(1.0),
        "weight of the reward NLL",
    )
    .min(0.0),
    Field::new(
        "continuation_weight",
        Ty::Float,
        D::Float(1.0),
        "weight of the continuation NLL",
    )
    .min(0.0),
    Field::new(
        "obs_weight",
        Ty::Float,
        D::Float(1.0),
        "weight of the observation NLL",
    )
    .min(0.0),
];

pub(super) static CTORS: &[Ctor] = &[
    // ------------------------------------------------------------ networks
    Ctor {
        name: "mlp",
        kind: Kind::Model,
        doc: "multilayer perceptron with a linear head; input and output sizes are inferred",
        fields: &[
            hidden(&[200, 200, 200]),
            activation("elu"),
            Field::new("init", Ty::Enum(INITS), D::Enum("haiku"), "weight init (biases are 0)"),
            Field::new("input", Ty::Int, D::Absent, "declared input size, checked against inference")
                .min(1.0),
            Field::new("output", Ty::Int, D::Absent, "declared output size, checked against inference")
                .min(1.0),
            Field::new("normalize", Ty::Enum(NORMALIZE), D::Enum("none"), "input normalizer"),
        ],
        ..Ctor::PLAIN
    },
    Ctor {
        name: "gaussian_policy",
        kind: Kind::Model,
        doc: "Gaussian MLP policy with a state-independent learned log-std (SLBO, TRPO)",
        fields: &[
            hidden(&[32, 32]),
            activation("tanh"),
            Field::new("init", Ty::Enum(INITS), D::Enum("normc"), "hidden-layer init"),
            Field::new("output_init_scale", Ty::Float, D::Float(0.01), "normc scale of the mean head")
                .above(0.0),
            Field::new("init_std", Ty::Float, D::Float(1.0), "initial action standard deviation")
                .above(0.0),
            Field::new("normalize", Ty::Enum(NORMALIZE), D::Enum("running"), "state normalizer"),
        ],
        ..Ctor::PLAIN
    },
    Ctor {
        name: "dynamics",
        kind: Kind::Model,
        doc: "deterministic MLP dynamics s' = s + denorm(f(norm(s), clip(a))) (SLBO)",
        fields: &[
            hidden(&[500, 500]),
            activation("relu"),
            Field::new(
                "predicts",
                Ty::Enum(&["delta", "next_state"]),
                D::Enum("delta"),
                "the network output: a normalized state delta, or the next state",
            ),
            Field::new("normalize", Ty::Enum(NORMALIZE), D::Enum("running"), "state and delta normalizers"),
            Field::new("init_std", Ty::Float, D::Float(1e-5), "std of the truncated-normal weight init")
                .above(0.0),
            Field::new("clip", Ty::Float, D::Float(100.0), "clip of the prediction in normalized space")
                .above(0.0),
            Field::new("action_clip", Ty::Float, D::Float(1.0), "actions are clipped to +-this").above(0.0),
        ],
        ..Ctor::PLAIN
    },
    Ctor {
        name: "factored_model",
        kind: Kind::Model,
        doc: "three MLPs on [obs, one_hot(a)]: reward mean, continuation logit, next-obs head (Young et al. simple model)",
        fields: &[hidden(&[200, 200, 200]), activation("elu"), obs_head()],
        ..Ctor::PLAIN
    },
    Ctor {
        name: "latent_model",
        kind: Kind::Model,
        doc: "feed-forward latent model: encoder, transition prior, reward, continuation and decoder heads",
        fields: &[
            Field::new(
                "latent",
                Ty::Enum(&["categorical", "gaussian"]),
                D::Required,
                "straight-through categorical features, or reparameterised Gaussian",
            ),
            Field::new("features", Ty::Int, D::Int(32), "number of latent features").min(1.0),
            Field::new("width", Ty::Int, D::Int(32), "classes per categorical feature").min(2.0),
            Field::new("min_std", Ty::Float, D::Float(0.0), "added to the encoder std (Gaussian)").min(0.0),
            Field::new(
                "std_act",
                Ty::Enum(&["softplus", "sigmoid2"]),
                D::Enum("softplus"),
                "std activation (Gaussian); sigmoid2(x) = 2 sigmoid(x/2)",
            ),
            hidden(&[200, 200, 200]),
            activation("elu"),
            obs_head(),
        ],
        positional: &["latent"],
        ..Ctor::PLAIN
    },
    Ctor {
        name: "true_env",
        kind: Kind::Model,
        doc: "the environment itself, rolled out from stored states (the perfect model)",
        fields: &[],
        ..Ctor::PLAIN
    },
    // -------------------------------------------------------------- losses
    Ctor {
        name: "mle",
        kind: Kind::Loss,
        doc: "maximum likelihood: NLL of each model head (MSE on the next state for deterministic dynamics)",
        fields: &[
            LOSS_WEIGHTS[0],
            LOSS_WEIGHTS[1],
            LOSS_WEIGHTS[2],
            Field::new(
                "horizon",
                Ty::Int,
                D::Int(1),
                "steps H per sampled sequence for dynamics models, each an independent one-step sample",
            )
            .min(1.0),
        ],
        ..Ctor::PLAIN
    },
    Ctor {
        name: "multi_step",
        kind: Kind::Loss,
        doc: "SLBO multi-step loss: norm of the diff-normalized delta error, rolled through the model",
        fields: &[
            Field::new("horizon", Ty::Int, D::Int(2), "steps H rolled through the model").min(1.0),
            Field::new("norm", Ty::Enum(&["l2", "mse"]), D::Enum("l2"), "the L2 norm itself, or its square"),
            Field::new(
                "reduce",
                Ty::Enum(&["sum", "mean"]),
                D::Enum("sum"),
                "over state dims: sum (VA-SLBO) or mean (upstream SLBO)",
            ),
        ],
        ..Ctor::PLAIN
    },
    Ctor {
        name: "value_aware",
        kind: Kind::Loss,
        doc: "value-aware model loss coeff * mean |V(s') - V(f(s,a))|^p through the frozen value network",
        fields: &[
            Field::new("norm", Ty::Enum(&["l1", "l2"]), D::Required, "l1 (MA-L1) or l2 (VAML)"),
            Field::new("coeff", Ty::Float, D::Float(0.01), "scale of the loss").above(0.0),
            Field::new("horizon", Ty::Int, D::Int(1), "steps H of the multi-step batch").min(1.0),
        ],
        positional: &["norm"],
        ..Ctor::PLAIN
    },
    Ctor {
        name: "expression",
        kind: Kind::Loss,
        doc: "a loss written as an expression (`loss NAME(horizon: int = 2) = mean(...)`) over what the learner provides; differentiated automatically",
        fields: &[
            Field::new("horizon", Ty::Int, D::Int(1), "steps H per sampled sequence (the loss's `horizon` parameter)").min(1.0),
            Field::new("body", Ty::Any, D::Required, "the expression, written as arithmetic after `=`"),
        ],
        ..Ctor::PLAIN
    },
    Ctor {
        name: "latent_kl",
        kind: Kind::Loss,
        doc: "latent-model loss: KL balancing between posterior and prior plus head NLLs",
        fields: &[
            Field::new("kl_prior", Ty::Float, D::Float(0.8), "weight of KL(sg(q) || p)").min(0.0),
            Field::new("kl_posterior", Ty::Float, D::Float(0.2), "weight of KL(q || sg(p))").min(0.0),
            Field::new("entropy", Ty::Float, D::Float(0.0), "weight of the posterior entropy term")
                .min(0.0),
            LOSS_WEIGHTS[0],
            LOSS_WEIGHTS[1],
            LOSS_WEIGHTS[2],
        ],
        ..Ctor::PLAIN
    },
    // ------------------------------------------------------------ planners
    Ctor {
        name: "model_rollouts",
        kind: Kind::Planner,
        doc: "Dyna rollouts: from sampled buffer states, roll the model forward under the softmax policy",
        fields: &[
            Field::new("starts", Ty::Int, D::Int(32), "rollout start states per update").min(1.0),
            Field::new("length", Ty::Int, D::Int(10), "steps per rollout").unit(Unit::Steps).min(1.0),
            Field::new(
                "weighting",
                Ty::Enum(&["auto", "continuation", "none"]),
                D::Enum("auto"),
                "weight steps by predicted continuation; auto = only on episodic envs",
            ),
        ],
        ..Ctor::PLAIN
    },
    Ctor {
        name: "virtual_rollouts",
        kind: Kind::Planner,
        doc: "SLBO virtual envs: full-length rollouts of the policy in the learned model",
        fields: &[
            Field::new("envs", Ty::Int, D::Int(4), "parallel virtual envs").min(1.0),
            Field::new("length", Ty::Int, D::Int(1000), "steps per virtual episode")
                .unit(Unit::Steps)
                .min(1.0),
            Field::new(
                "start",
                Ty::Enum(&["reset", "buffer"]),
                D::Enum("reset"),
                "start from real reset states or from buffer states",
            ),
        ],
        ..Ctor::PLAIN
    },
];
