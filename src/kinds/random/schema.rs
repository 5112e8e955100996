//! The `random` constructor: its fields and defaults.

use crate::schema::{eval_every, Ctor, Default as D, Field, Kind, Ty};
use crate::syntax::ast::Unit;

pub(super) static CTOR: Ctor = Ctor {
    name: "random",
    kind: Kind::Agent,
    doc: "uniformly random actions: the baseline every learning curve is read against",
    fields: &[
        Field::new("steps", Ty::Int, D::Int(10_000), "env steps")
            .unit(Unit::Steps)
            .min(1.0),
        eval_every(500),
        Field::new(
            "eval",
            Ty::Ref(Kind::Eval),
            D::Ctor("greedy_eval"),
            "evaluation protocol",
        ),
    ],
    ..Ctor::PLAIN
};
