//! Runtime: executes checked cells. So far: the random streams, the batched
//! evaluation protocol and the random agent; training lands with the tensor
//! engine.
//!
//! Invariants: never sees the AST; all randomness comes from
//! [`seeds::Stream`]; prints nothing (progress and results go to the caller).

pub mod bench;
pub mod dqn;
pub mod evaluate;
pub mod seeds;
pub mod shard;
