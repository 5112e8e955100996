//! Numeric building blocks on dfdx tensors, seed-batched: every per-seed
//! quantity has a leading seed axis (`[S, in, out]` weights, `[S, B, d]`
//! activations), and every loss is a per-seed mean summed over seeds, so each
//! seed's gradient is exactly its own.
//!
//! Invariants: with `runtime`, the only place that knows dfdx; no AST; all
//! randomness from `runtime::seeds` streams, drawn per seed so that a seed's
//! numbers do not depend on the rest of its batch.

pub mod dist;
pub mod losses;
pub mod mlp;
pub mod optim;
pub mod slbo;
pub mod trpo;

use dfdx::prelude::*;

/// The CPU device; `Cuda` joins behind the `cuda` feature.
pub type Dev = Cpu;

pub type T2<T = NoneTape> = Tensor<(usize, usize), f32, Dev, T>;
pub type T3<T = NoneTape> = Tensor<(usize, usize, usize), f32, Dev, T>;
pub type Tape = OwnedTape<f32, Dev>;
