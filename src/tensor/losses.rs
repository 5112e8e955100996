//! Losses, each a per-seed mean summed over seeds (so each seed's gradient is
//! its own), returned with the per-seed values for logging and NaN checks.

use dfdx::prelude::*;

use crate::tensor::kernels::argmax;
use crate::tensor::{Dev, Tape, T2, T3};

/// The inputs of a TD loss for `S` seeds and `B` samples each.
pub struct TdBatch {
    /// `[S, B]` action indices.
    pub actions: Tensor<(usize, usize), usize, Dev>,
    /// `[S, B]` rewards.
    pub rewards: T2,
    /// `[S, B]` discount multipliers `gamma * continuation` (`gamma * (1 - terminal)` for replay).
    pub discounts: T2,
    /// `[S, B]` per-sample weights (rollout masks; 1 for replay).
    pub weights: T2,
}

impl TdBatch {
    /// Q's training transitions from flat per-seed rows: `[S, B, d]`
    /// observations and next observations, and the TD inputs.
    #[allow(clippy::too_many_arguments)]
    pub fn from_rows(
        dev: &Dev,
        n_seeds: usize,
        d: usize,
        obs: Vec<f32>,
        next_obs: Vec<f32>,
        actions: Vec<usize>,
        rewards: Vec<f32>,
        discounts: Vec<f32>,
        weights: Vec<f32>,
    ) -> (T3, T3, TdBatch) {
        let b = actions.len() / n_seeds;
        let batch = TdBatch {
            actions: dev.tensor_from_vec(actions, (n_seeds, b)),
            rewards: dev.tensor_from_vec(rewards, (n_seeds, b)),
            discounts: dev.tensor_from_vec(discounts, (n_seeds, b)),
            weights: dev.tensor_from_vec(weights, (n_seeds, b)),
        };
        (
            dev.tensor_from_vec(obs, (n_seeds, b, d)),
            dev.tensor_from_vec(next_obs, (n_seeds, b, d)),
            batch,
        )
    }
}

/// `mean_B w (Q(s)[a] - (r + discount * max_a' Q'(s')))^2`, summed over seeds.
/// `q` is the online Q on `s` (traced); `q_next` the target Q on `s'` (no
/// tape). With `online_next`, the online Q on `s'`, the target is double
/// DQN's `Q'(s')[argmax_a' Q(s')]` instead of the max.
pub fn td_loss(
    q: T3<Tape>,
    q_next: T3,
    online_next: Option<T3>,
    batch: &TdBatch,
) -> (Tensor<(), f32, Dev, Tape>, Vec<f32>) {
    let q_sa: T2<Tape> = q.select(batch.actions.clone());
    let max_next: T2 = match online_next {
        None => q_next.max::<(usize, usize), Axis<2>>(),
        Some(online) => {
            let (s, b, k) = *online.shape();
            let values = online.as_vec();
            let choice: Vec<usize> = values.chunks(k).map(argmax).collect();
            q_next.select(online.device().tensor_from_vec(choice, (s, b)))
        }
    };
    let target = batch.rewards.clone() + batch.discounts.clone() * max_next;
    let err = (q_sa - target).square() * batch.weights.clone();
    let per_seed = err.mean::<(usize,), Axis<1>>();
    let values = per_seed.retaped::<NoneTape>().as_vec();
    (per_seed.sum::<(), Axis<0>>(), values)
}
