//! Agents: the Young et al. DQN family, the SLBO loop, and a random baseline.

use crate::schema::{Ctor, Default as D, Field, Kind, Ty};
use crate::syntax::ast::Unit;

const fn eval_every(default: i64) -> Field {
    Field::new(
        "eval_every",
        Ty::Int,
        D::Int(default),
        "env steps between evaluations",
    )
    .unit(Unit::Steps)
    .min(1.0)
}

pub(super) static CTORS: &[Ctor] = &[
    Ctor {
        name: "dqn",
        kind: Kind::Agent,
        doc: "DQN with softmax exploration; trains Q on replay, true-env or learned-model rollouts",
        fields: &[
            Field::new("q", Ty::Ref(Kind::Model), D::Ctor("mlp"), "the Q network"),
            Field::new("model", Ty::Ref(Kind::Model), D::Absent, "a dynamics model for rollouts"),
            Field::new("model_loss", Ty::Ref(Kind::Loss), D::Absent, "the loss that fits the model"),
            Field::new(
                "planner",
                Ty::Ref(Kind::Planner),
                D::Absent,
                "where Q's training data comes from; absent = experience replay",
            ),
            Field::new("lr", Ty::Float, D::Float(1e-4), "Q step size").above(0.0),
            Field::new("model_lr", Ty::Float, D::Float(2e-4), "model step size").above(0.0),
            Field::new("temperature", Ty::Float, D::Float(0.1), "softmax exploration temperature")
                .above(0.0),
            Field::new("gamma", Ty::Float, D::Float(0.9), "discount").min(0.0).max(1.0),
            Field::new("batch", Ty::Int, D::Int(320), "transitions sampled from the buffer per update")
                .min(1.0),
            Field::new("buffer", Ty::Int, D::Int(100_000), "replay capacity per seed").min(1.0),
            Field::new("steps", Ty::Int, D::Int(1_000_000), "env steps of training")
                .unit(Unit::Steps)
                .min(1.0),
            Field::new("learning_starts", Ty::Int, D::Int(1000), "env steps before the first update")
                .unit(Unit::Steps)
                .min(0.0),
            Field::new("updates_per_step", Ty::Int, D::Int(1), "gradient updates per env step").min(1.0),
            Field::new(
                "target_update_every",
                Ty::Int,
                D::Int(100),
                "env steps between target-network syncs",
            )
            .unit(Unit::Steps)
            .min(1.0),
            Field::new("use_target", Ty::Bool, D::Bool(true), "bootstrap from a target network"),
            Field::new("double_dqn", Ty::Bool, D::Bool(false), "double-DQN targets"),
            Field::new(
                "exploration",
                Ty::Enum(&["softmax", "epsilon_greedy"]),
                D::Enum("softmax"),
                "behaviour policy",
            ),
            Field::new("epsilon", Ty::Float, D::Absent, "epsilon of epsilon-greedy").min(0.0).max(1.0),
            eval_every(500),
            Field::new("eval", Ty::Ref(Kind::Eval), D::Ctor("greedy_eval"), "evaluation protocol"),
            Field::new("optimizer", Ty::Ref(Kind::Optimizer), D::Ctor("adamw"), "Q and model optimizer"),
            Field::new("save_every", Ty::Int, D::Int(10_000), "env steps between checkpoints")
                .unit(Unit::Steps)
                .min(1.0),
        ],
        ..Ctor::PLAIN
    },
    Ctor {
        name: "slbo",
        kind: Kind::Agent,
        doc: "SLBO: fit a dynamics model on real data, improve a Gaussian policy by TRPO in the model",
        fields: &[
            Field::new("policy", Ty::Ref(Kind::Model), D::Required, "the Gaussian policy"),
            Field::new("value", Ty::Ref(Kind::Model), D::Required, "the value network V"),
            Field::new("model", Ty::Ref(Kind::Model), D::Required, "the dynamics model"),
            Field::new("model_loss", Ty::Ref(Kind::Loss), D::Required, "the model loss"),
            Field::new("planner", Ty::Ref(Kind::Planner), D::Ctor("virtual_rollouts"), "virtual rollouts for TRPO"),
            Field::new("stages", Ty::Int, D::Int(100), "outer stages").unit(Unit::Stages).min(1.0),
            Field::new("steps_per_stage", Ty::Int, D::Int(10_000), "real env steps collected per stage")
                .unit(Unit::Steps)
                .min(1.0),
            Field::new("iters", Ty::Int, D::Int(20), "model/policy iterations per stage")
                .unit(Unit::Iterations)
                .min(1.0),
            Field::new("model_iters", Ty::Int, D::Int(100), "model updates per iteration")
                .unit(Unit::Updates)
                .min(1.0),
            Field::new("policy_iters", Ty::Int, D::Int(40), "TRPO updates per iteration")
                .unit(Unit::Updates)
                .min(1.0),
            Field::new("model_batch", Ty::Int, D::Int(128), "model minibatch").min(1.0),
            Field::new("model_lr", Ty::Float, D::Float(1e-3), "model step size").above(0.0),
            Field::new("model_optimizer", Ty::Ref(Kind::Optimizer), D::Ctor("adam"), "model optimizer"),
            Field::new("buffer", Ty::Int, D::Int(200_000), "real-data FIFO capacity").min(1.0),
            Field::new(
                "value_refit_every",
                Ty::Int,
                D::Int(0),
                "refit V on fresh virtual rollouts every N model updates; 0 = off",
            )
            .unit(Unit::Updates)
            .min(0.0),
            Field::new("trpo", Ty::Ref(Kind::Trpo), D::Ctor("trpo"), "policy optimizer"),
            Field::new("noise", Ty::Ref(Kind::Noise), D::Ctor("ou"), "exploration noise when collecting"),
            Field::new("eval", Ty::Ref(Kind::Eval), D::Ctor("policy_eval"), "evaluation protocol"),
            Field::new(
                "eval_every",
                Ty::Int,
                D::Int(1),
                "stages between evaluations (and one before the first stage)",
            )
            .unit(Unit::Stages)
            .min(1.0),
            Field::new("save_every", Ty::Int, D::Int(1), "stages between checkpoints")
                .unit(Unit::Stages)
                .min(1.0),
        ],
        ..Ctor::PLAIN
    },
    Ctor {
        name: "random",
        kind: Kind::Agent,
        doc: "uniformly random actions: the baseline every learning curve is read against",
        fields: &[
            Field::new("steps", Ty::Int, D::Int(10_000), "env steps").unit(Unit::Steps).min(1.0),
            eval_every(500),
            Field::new("eval", Ty::Ref(Kind::Eval), D::Ctor("greedy_eval"), "evaluation protocol"),
        ],
        ..Ctor::PLAIN
    },
];
