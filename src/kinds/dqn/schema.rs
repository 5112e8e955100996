//! The `dqn` constructor: its fields, types, units, ranges and defaults (young2022 spec §2-3).

use crate::schema::{eval_every, precision, Ctor, Default as D, Field, Kind, Ty};
use crate::syntax::ast::Unit;

pub(super) static CTOR: Ctor = Ctor {
    name: "dqn",
    kind: Kind::Agent,
    doc: "DQN with softmax exploration; trains Q on replay, true-env or learned-model rollouts",
    fields: &[
        Field::new("q", Ty::Ref(Kind::Model), D::Ctor("mlp"), "the Q network"),
        Field::new(
            "model",
            Ty::Ref(Kind::Model),
            D::Absent,
            "a dynamics model for rollouts",
        ),
        Field::new(
            "model_loss",
            Ty::Ref(Kind::Loss),
            D::Absent,
            "the loss that fits the model",
        ),
        Field::new(
            "planner",
            Ty::Ref(Kind::Planner),
            D::Absent,
            "where Q's training data comes from; absent = experience replay",
        ),
        Field::new("lr", Ty::Float, D::Float(1e-4), "Q step size").above(0.0),
        Field::new("model_lr", Ty::Float, D::Float(2e-4), "model step size").above(0.0),
        Field::new(
            "temperature",
            Ty::Float,
            D::Float(0.1),
            "softmax exploration temperature",
        )
        .above(0.0),
        Field::new("gamma", Ty::Float, D::Float(0.9), "discount")
            .min(0.0)
            .max(1.0),
        Field::new(
            "batch",
            Ty::Int,
            D::Int(320),
            "transitions sampled from the buffer per update",
        )
        .min(1.0),
        Field::new(
            "buffer",
            Ty::Int,
            D::Int(100_000),
            "replay capacity per seed",
        )
        .min(1.0),
        Field::new("steps", Ty::Int, D::Int(1_000_000), "env steps of training")
            .unit(Unit::Steps)
            .min(1.0),
        Field::new(
            "learning_starts",
            Ty::Int,
            D::Int(1000),
            "env steps before the first update",
        )
        .unit(Unit::Steps)
        .min(0.0),
        Field::new(
            "updates_per_step",
            Ty::Int,
            D::Int(1),
            "gradient updates per env step",
        )
        .min(1.0),
        Field::new(
            "target_update_every",
            Ty::Int,
            D::Int(100),
            "env steps between target-network syncs",
        )
        .unit(Unit::Steps)
        .min(1.0),
        Field::new(
            "use_target",
            Ty::Bool,
            D::Bool(true),
            "bootstrap from a target network",
        ),
        Field::new("double_dqn", Ty::Bool, D::Bool(false), "double-DQN targets"),
        Field::new(
            "exploration",
            Ty::Enum(&["softmax", "epsilon_greedy"]),
            D::Enum("softmax"),
            "behaviour policy",
        ),
        Field::new("epsilon", Ty::Float, D::Absent, "epsilon of epsilon-greedy")
            .min(0.0)
            .max(1.0),
        eval_every(500),
        Field::new(
            "eval",
            Ty::Ref(Kind::Eval),
            D::Ctor("greedy_eval"),
            "evaluation protocol",
        ),
        Field::new(
            "optimizer",
            Ty::Ref(Kind::Optimizer),
            D::Ctor("adamw"),
            "Q and model optimizer",
        ),
        Field::new(
            "save_every",
            Ty::Int,
            D::Int(10_000),
            "env steps between checkpoints",
        )
        .unit(Unit::Steps)
        .min(1.0),
        precision(),
    ],
    ..Ctor::PLAIN
};
