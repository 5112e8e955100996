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

/// Q's training transitions on the host, flat: `[S, B, d]` observations and
/// next observations, and `[S, B]` TD inputs. The fused CPU update reads
/// them in place; the taped update turns them into tensors
/// ([`TdRows::tensors`]).
#[derive(Clone, Debug, Default)]
pub struct TdRows {
    pub n_seeds: usize,
    /// The width of an observation (or feature) row.
    pub d: usize,
    pub obs: Vec<f32>,
    pub next_obs: Vec<f32>,
    pub actions: Vec<usize>,
    pub rewards: Vec<f32>,
    /// Discount multipliers `gamma * continuation`.
    pub discounts: Vec<f32>,
    /// Per-sample weights (rollout masks; 1 for replay).
    pub weights: Vec<f32>,
}

impl TdRows {
    /// Rows per seed.
    pub fn per_seed(&self) -> usize {
        self.actions.len() / self.n_seeds
    }

    /// The rows as tensors on `dev`: `[S, B, d]` observations and next
    /// observations, and the TD inputs.
    pub fn tensors(&self, dev: &Dev) -> (T3, T3, TdBatch) {
        let (s, b, d) = (self.n_seeds, self.per_seed(), self.d);
        let batch = TdBatch {
            actions: dev.tensor_from_vec(self.actions.clone(), (s, b)),
            rewards: dev.tensor_from_vec(self.rewards.clone(), (s, b)),
            discounts: dev.tensor_from_vec(self.discounts.clone(), (s, b)),
            weights: dev.tensor_from_vec(self.weights.clone(), (s, b)),
        };
        (
            dev.tensor_from_vec(self.obs.clone(), (s, b, d)),
            dev.tensor_from_vec(self.next_obs.clone(), (s, b, d)),
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
