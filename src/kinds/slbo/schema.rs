//! The `slbo` constructor: its fields, types, units, ranges and defaults (vaslbo spec).

use crate::schema::{precision, Ctor, Default as D, Field, Kind, Ty};
use crate::syntax::ast::Unit;

pub(super) static CTOR: Ctor = Ctor {
    name: "slbo",
    kind: Kind::Agent,
    doc: "SLBO: fit a dynamics model on real data, improve a Gaussian policy by TRPO in the model",
    fields: &[
        Field::new(
            "policy",
            Ty::Ref(Kind::Model),
            D::Required,
            "the Gaussian policy",
        ),
        Field::new(
            "value",
            Ty::Ref(Kind::Model),
            D::Required,
            "the value network V",
        ),
        Field::new(
            "model",
            Ty::Ref(Kind::Model),
            D::Required,
            "the dynamics model",
        ),
        Field::new(
            "model_loss",
            Ty::Ref(Kind::Loss),
            D::Required,
            "the model loss",
        ),
        Field::new(
            "planner",
            Ty::Ref(Kind::Planner),
            D::Ctor("virtual_rollouts"),
            "virtual rollouts for TRPO",
        ),
        Field::new("stages", Ty::Int, D::Int(100), "outer stages")
            .unit(Unit::Stages)
            .min(1.0),
        Field::new(
            "steps_per_stage",
            Ty::Int,
            D::Int(10_000),
            "real env steps collected per stage",
        )
        .unit(Unit::Steps)
        .min(1.0),
        Field::new(
            "iters",
            Ty::Int,
            D::Int(20),
            "model/policy iterations per stage",
        )
        .unit(Unit::Iterations)
        .min(1.0),
        Field::new(
            "model_iters",
            Ty::Int,
            D::Int(100),
            "model updates per iteration",
        )
        .unit(Unit::Updates)
        .min(1.0),
        Field::new(
            "policy_iters",
            Ty::Int,
            D::Int(40),
            "TRPO updates per iteration",
        )
        .unit(Unit::Updates)
        .min(1.0),
        Field::new("model_batch", Ty::Int, D::Int(128), "model minibatch").min(1.0),
        Field::new("model_lr", Ty::Float, D::Float(1e-3), "model step size").above(0.0),
        Field::new(
            "model_optimizer",
            Ty::Ref(Kind::Optimizer),
            D::Ctor("adam"),
            "model optimizer",
        ),
        Field::new(
            "buffer",
            Ty::Int,
            D::Int(200_000),
            "real-data FIFO capacity",
        )
        .min(1.0),
        Field::new(
            "value_refit_every",
            Ty::Int,
            D::Int(0),
            "refit V on fresh virtual rollouts every N model updates; 0 = off",
        )
        .unit(Unit::Updates)
        .min(0.0),
        Field::new(
            "trpo",
            Ty::Ref(Kind::Trpo),
            D::Ctor("trpo"),
            "policy optimizer",
        ),
        Field::new(
            "noise",
            Ty::Ref(Kind::Noise),
            D::Ctor("ou"),
            "exploration noise when collecting",
        ),
        Field::new(
            "eval",
            Ty::Ref(Kind::Eval),
            D::Ctor("policy_eval"),
            "evaluation protocol",
        ),
        Field::new(
            "eval_every",
            Ty::Int,
            D::Int(1),
            "stages between evaluations (and one before the first stage)",
        )
        .unit(Unit::Stages)
        .min(1.0),
        Field::new(
            "save_every",
            Ty::Int,
            D::Int(1),
            "stages between checkpoints",
        )
        .unit(Unit::Stages)
        .min(1.0),
        precision(),
    ],
    ..Ctor::PLAIN
};
