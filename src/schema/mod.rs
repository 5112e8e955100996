//! The schema registry: the single source of truth for every block kind.
//!
//! Each constructor (`procmaze`, `dqn`, `value_aware`, ...) lists its fields
//! with type, unit, range, default and a one-line doc. `check`, `mbrl envs`,
//! `mbrl describe` and the runtime all read these tables; nothing else in the
//! crate hard-codes a field name's meaning without going through here.
//!
//! Invariants: pure data and pure functions. No IO, no diagnostics, nothing
//! about syntax.

mod envs;
mod misc;
mod models;

use std::fmt;

use crate::syntax::ast::Unit;

pub use envs::{ActionSpace, EnvSpaces, ObsKind};

/// A kind of block. The declarable ones can start a definition (`env x = ...`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    Env,
    Model,
    Loss,
    Planner,
    Agent,
    Regime,
    Table,
    Optimizer,
    Eval,
    Noise,
    Trpo,
    Report,
    Band,
    Experiment,
}

impl Kind {
    pub const DECLARABLE: &'static [Kind] = &[
        Kind::Env,
        Kind::Model,
        Kind::Loss,
        Kind::Planner,
        Kind::Agent,
        Kind::Regime,
        Kind::Table,
        Kind::Optimizer,
        Kind::Eval,
        Kind::Noise,
        Kind::Trpo,
        Kind::Report,
        Kind::Band,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Kind::Env => "env",
            Kind::Model => "model",
            Kind::Loss => "loss",
            Kind::Planner => "planner",
            Kind::Agent => "agent",
            Kind::Regime => "regime",
            Kind::Table => "table",
            Kind::Optimizer => "optimizer",
            Kind::Eval => "eval",
            Kind::Noise => "noise",
            Kind::Trpo => "trpo",
            Kind::Report => "report",
            Kind::Band => "band",
            Kind::Experiment => "experiment",
        }
    }

    pub fn from_name(name: &str) -> Option<Kind> {
        Kind::DECLARABLE.iter().copied().find(|k| k.name() == name)
    }

    /// "an env", "a model": for "expected X, found Y" messages.
    pub fn article(self) -> String {
        let name = self.name();
        match name.starts_with(['a', 'e', 'i', 'o', 'u']) {
            true => format!("an {name}"),
            false => format!("a {name}"),
        }
    }
}

/// The type of a field's value.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Ty {
    Int,
    Float,
    Bool,
    Str,
    /// One of a fixed set of bare names, e.g. `relu`.
    Enum(&'static [&'static str]),
    /// A block of the given kind: a definition or an inline constructor.
    Ref(Kind),
    List(&'static Ty),
    /// A bare name taken literally (the axes of a tuned table).
    Name,
    /// Any expression, interpreted by a dedicated rule (rows of a tuned table).
    Any,
}

impl fmt::Display for Ty {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Ty::Int => f.write_str("an integer"),
            Ty::Float => f.write_str("a number"),
            Ty::Bool => f.write_str("`true` or `false`"),
            Ty::Str => f.write_str("a string"),
            Ty::Enum(opts) => {
                let quoted: Vec<String> = opts.iter().map(|o| format!("`{o}`")).collect();
                write!(f, "one of {}", quoted.join(", "))
            }
            Ty::Ref(kind) => f.write_str(&kind.article()),
            Ty::List(inner) => write!(f, "a list of {}", plural(inner)),
            Ty::Name => f.write_str("a name"),
            Ty::Any => f.write_str("a value"),
        }
    }
}

fn plural(ty: &Ty) -> String {
    match ty {
        Ty::Int => "integers".into(),
        Ty::Float => "numbers".into(),
        Ty::Ref(kind) => format!("{}s", kind.name()),
        Ty::Name => "names".into(),
        other => format!("({other})"),
    }
}

/// A field's default.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Default {
    /// Must be given.
    Required,
    /// May be left out; then the field is absent (a feature switched off).
    Absent,
    Int(i64),
    Float(f64),
    Bool(bool),
    Enum(&'static str),
    Ints(&'static [i64]),
    Names(&'static [&'static str]),
    /// The named constructor of the field's kind, with its own defaults.
    Ctor(&'static str),
}

/// An inclusive or exclusive bound of a numeric range.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Bound {
    pub value: f64,
    pub inclusive: bool,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Range {
    pub lo: Option<Bound>,
    pub hi: Option<Bound>,
}

impl Range {
    pub const ANY: Range = Range { lo: None, hi: None };

    pub fn contains(&self, x: f64) -> bool {
        let above = match self.lo {
            None => true,
            Some(b) if b.inclusive => x >= b.value,
            Some(b) => x > b.value,
        };
        let below = match self.hi {
            None => true,
            Some(b) if b.inclusive => x <= b.value,
            Some(b) => x < b.value,
        };
        above && below
    }
}

impl fmt::Display for Range {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let lo = self
            .lo
            .map(|b| format!("{}{}", if b.inclusive { "[" } else { "(" }, num(b.value)));
        let hi = self
            .hi
            .map(|b| format!("{}{}", num(b.value), if b.inclusive { "]" } else { ")" }));
        match (lo, hi) {
            (Some(lo), Some(hi)) => write!(f, "{lo}, {hi}"),
            (Some(lo), None) => write!(f, "{lo}, ∞)"),
            (None, Some(hi)) => write!(f, "(-∞, {hi}"),
            (None, None) => f.write_str("any"),
        }
    }
}

/// Formats a number the way a user would write it.
pub fn num(x: f64) -> String {
    match x.fract() == 0.0 && x.abs() < 1e15 {
        true => format!("{}", x as i64),
        false => format!("{x}"),
    }
}

/// One field of a constructor.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Field {
    pub name: &'static str,
    pub ty: Ty,
    pub default: Default,
    pub unit: Option<Unit>,
    pub range: Range,
    pub doc: &'static str,
}

impl Field {
    pub const fn new(name: &'static str, ty: Ty, default: Default, doc: &'static str) -> Field {
        Field {
            name,
            ty,
            default,
            unit: None,
            range: Range::ANY,
            doc,
        }
    }

    pub const fn unit(self, unit: Unit) -> Field {
        Field {
            unit: Some(unit),
            ..self
        }
    }

    /// `lo <= x`.
    pub const fn min(self, lo: f64) -> Field {
        let range = Range {
            lo: Some(Bound {
                value: lo,
                inclusive: true,
            }),
            hi: self.range.hi,
        };
        Field { range, ..self }
    }

    /// `lo < x`.
    pub const fn above(self, lo: f64) -> Field {
        let range = Range {
            lo: Some(Bound {
                value: lo,
                inclusive: false,
            }),
            hi: self.range.hi,
        };
        Field { range, ..self }
    }

    /// `x <= hi`.
    pub const fn max(self, hi: f64) -> Field {
        let range = Range {
            lo: self.range.lo,
            hi: Some(Bound {
                value: hi,
                inclusive: true,
            }),
        };
        Field { range, ..self }
    }

    /// `x < hi`.
    pub const fn below(self, hi: f64) -> Field {
        let range = Range {
            lo: self.range.lo,
            hi: Some(Bound {
                value: hi,
                inclusive: false,
            }),
        };
        Field { range, ..self }
    }
}

/// A constructor: a named variant of a kind with its fields.
#[derive(Debug)]
pub struct Ctor {
    pub name: &'static str,
    pub kind: Kind,
    pub doc: &'static str,
    pub fields: &'static [Field],
    /// Field names that positional arguments bind to, in order: `bootstrap(0.95)`.
    pub positional: &'static [&'static str],
    /// Accepts any field; the fields are checked where they are applied (regimes).
    pub open: bool,
    /// For envs: observation and action spaces as a function of the fields.
    pub spaces: Option<SpacesFn>,
}

/// An env's spaces from its integer fields (`get(name)`: the value set, or the default).
pub type SpacesFn = fn(get: &dyn Fn(&str) -> i64) -> EnvSpaces;

impl Ctor {
    /// The defaults of a constructor literal: no positional arguments, closed,
    /// no env spaces. Every table entry names its own `name`, `kind`, `doc`
    /// and `fields` and takes the rest from here with `..Ctor::PLAIN`.
    pub const PLAIN: Ctor = Ctor {
        name: "",
        kind: Kind::Env,
        doc: "",
        fields: &[],
        positional: &[],
        open: false,
        spaces: None,
    };

    /// The schema default of an integer field (0 when it has none): what an
    /// env's spaces are computed from when a field is not set.
    pub fn default_int(&self, name: &str) -> i64 {
        match self.field(name).map(|f| f.default) {
            Some(Default::Int(i)) => i,
            _ => 0,
        }
    }

    pub fn field(&self, name: &str) -> Option<&'static Field> {
        self.fields.iter().find(|f| f.name == name)
    }
}

/// Every constructor, across all kinds.
/// Every constructor, across all kinds. The agents' come from the registry
/// of agent kinds ([`crate::kinds`]), each kind's from its own folder.
pub fn ctors() -> impl Iterator<Item = &'static Ctor> {
    envs::CTORS
        .iter()
        .chain(models::CTORS)
        .chain(crate::kinds::all().map(|kind| kind.schema()))
        .chain(misc::CTORS)
}

/// The reference lines a report can draw: the `random` agent's score (named
/// after its kind) and the env's known optimum.
pub const REFERENCE_LINES: [&str; 2] = [crate::kinds::random::NAME, "optimum"];

/// The `eval_every` field of the agents that count it in env steps.
pub const fn eval_every(default: i64) -> Field {
    Field::new(
        "eval_every",
        Ty::Int,
        Default::Int(default),
        "env steps between evaluations",
    )
    .unit(Unit::Steps)
    .min(1.0)
}

/// The `precision` field of the agents that train networks: the
/// arithmetic of every matrix product of their networks.
pub const fn precision() -> Field {
    Field::new(
        "precision",
        Ty::Enum(&["fp32", "bf16"]),
        Default::Enum("fp32"),
        "matrix products in fp32, or in bf16 on the CPU's AMX units (FP32 accumulation and master weights)",
    )
}

pub fn ctor(kind: Kind, name: &str) -> Option<&'static Ctor> {
    ctors().find(|c| c.kind == kind && c.name == name)
}

/// Any constructor with this name, of any kind.
pub fn ctor_any_kind(name: &str) -> Option<&'static Ctor> {
    ctors().find(|c| c.name == name)
}

pub fn ctors_of(kind: Kind) -> impl Iterator<Item = &'static Ctor> {
    ctors().filter(move |c| c.kind == kind)
}

/// The fields of an experiment block (it has no constructor of its own).
pub fn experiment_fields() -> &'static [Field] {
    misc::EXPERIMENT_FIELDS
}

/// Looks up an experiment field.
pub fn experiment_field(name: &str) -> Option<&'static Field> {
    misc::EXPERIMENT_FIELDS.iter().find(|f| f.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every default must have the field's type; every `Ctor` default must name
    /// a constructor of the field's kind.
    #[test]
    fn defaults_fit_their_fields() {
        for ctor in ctors() {
            for field in ctor.fields {
                let ok = match (field.default, field.ty) {
                    (Default::Required | Default::Absent, _) => true,
                    (Default::Int(x), Ty::Int | Ty::Float) => field.range.contains(x as f64),
                    (Default::Float(x), Ty::Float) => field.range.contains(x),
                    (Default::Bool(_), Ty::Bool) => true,
                    (Default::Enum(e), Ty::Enum(opts)) => opts.contains(&e),
                    (Default::Ints(_), Ty::List(Ty::Int)) => true,
                    (Default::Names(_), Ty::List(Ty::Name)) => true,
                    (Default::Ctor(name), Ty::Ref(kind)) => super::ctor(kind, name).is_some(),
                    _ => false,
                };
                assert!(
                    ok,
                    "{}.{} has a default that does not fit",
                    ctor.name, field.name
                );
            }
        }
    }

    #[test]
    fn constructor_names_are_unique_per_kind() {
        let all: Vec<_> = ctors().collect();
        for (i, a) in all.iter().enumerate() {
            for b in &all[i + 1..] {
                assert!(
                    !(a.kind == b.kind && a.name == b.name),
                    "duplicate {}",
                    a.name
                );
            }
        }
    }
}
