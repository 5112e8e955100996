//! Runtime: executes compiled cells, seed-batched: the random streams, seed
//! sharding over worker threads, replay, the DQN update and the ER agent loop,
//! the evaluation protocol and the random agent.
//!
//! Invariants: never sees the AST; all randomness comes from
//! [`crate::seeds::Stream`]; prints nothing (progress and results go to the caller).

pub mod agent;
pub mod bench;
pub mod dqn;
pub mod evaluate;
pub mod fused_model;
pub mod model;
pub mod replay;
pub mod shard;
