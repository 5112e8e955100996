//! Model losses as differentiable expressions, below the language: the
//! checked terms a loss expression becomes and what a learner offers them
//! ([`ir`]), and reverse-mode differentiation of those terms over named-axis
//! tensors, with the learner's networks as opaque callables ([`tape`]).
//!
//! Invariants: knows no learner and no syntax; a learner binds the names
//! (`s`, `model`, `V`) and the checker turns [`ir::Problem`]s into diagnostics.

pub mod ir;
pub mod tape;

pub use ir::{Axis, Func, Op, Signature, Term};
pub use tape::{Bindings, Tape, Tensor};

#[cfg(test)]
mod tests;
