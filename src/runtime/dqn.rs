//! The seed-batched DQN update (young2022 spec §3.1): TD loss on a batch per
//! seed, target network on `s'`, reference Adam. Each seed's parameters only
//! ever see that seed's gradient.

use dfdx::prelude::*;

use crate::runtime::seeds::Stream;
use crate::tensor::losses::{td_loss, TdBatch};
use crate::tensor::mlp::{Activation, Init, Mlp, NetId};
use crate::tensor::optim::{AdamConfig, MlpMoments};
use crate::tensor::{Dev, T3};

pub struct DqnLearner {
    pub q: Mlp,
    pub target: Mlp,
    pub moments: MlpMoments,
    pub adam: AdamConfig,
    /// The Adam step counter (shared with a model optimizer in model-based agents).
    pub t: u64,
}

impl DqnLearner {
    pub fn new(
        dev: &Dev,
        root: u64,
        seeds: &[u64],
        dims: &[usize],
        activation: Activation,
        adam: AdamConfig,
    ) -> DqnLearner {
        let q = Mlp::new(dev, root, seeds, NetId(0), dims, activation, Init::Haiku);
        let target = q.clone();
        DqnLearner {
            moments: MlpMoments::zeros(&q),
            q,
            target,
            adam,
            t: 0,
        }
    }

    /// One update on `obs -> next_obs` transitions (`[S, B, d]` each); returns each seed's loss.
    pub fn update(&mut self, obs: T3, next_obs: T3, batch: &TdBatch) -> Vec<f32> {
        let q_next = self.target.forward(next_obs);
        let q = self.q.forward(obs.traced(Gradients::leaky()));
        let (loss, per_seed) = td_loss(q, q_next, batch);
        let grads = loss.backward();
        self.moments.step(&self.adam, self.t, &mut self.q, &grads);
        self.t += 1;
        per_seed
    }

    pub fn sync_target(&mut self) {
        self.target.copy_from(&self.q);
    }
}

/// A seed whose loss stopped being finite, for the report: the other seeds'
/// parameters never see its gradient, so they carry on unaffected.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct NonFinite {
    pub seed: u64,
    pub update: u64,
}

/// The seeds of `seeds` whose `losses` are NaN or infinite at `update`.
pub fn non_finite(seeds: &[u64], losses: &[f32], update: u64) -> Vec<NonFinite> {
    seeds
        .iter()
        .zip(losses)
        .filter(|(_, l)| !l.is_finite())
        .map(|(seed, _)| NonFinite {
            seed: *seed,
            update,
        })
        .collect()
}

/// `a ~ softmax(Q(s) / T)` for `per_seed` observations per seed, each seed's
/// rows through its own Q and drawn from its own stream.
#[allow(clippy::too_many_arguments)]
pub fn softmax_actions(
    q: &Mlp,
    dev: &Dev,
    obs: &[f32],
    d: usize,
    per_seed: usize,
    temperature: f64,
    rngs: &mut [Stream],
    out: &mut [usize],
) {
    let n = out.len();
    let x = dev.tensor_from_vec(obs.to_vec(), (n / per_seed, per_seed, d));
    let values = q.forward(x).as_vec();
    let k = values.len() / n;
    for (i, row) in values.chunks(k).enumerate() {
        let max = row.iter().cloned().fold(f32::MIN, f32::max) as f64;
        let weights: Vec<f64> = row
            .iter()
            .map(|v| ((*v as f64 - max) / temperature).exp())
            .collect();
        let total: f64 = weights.iter().sum();
        let u = rngs[i / per_seed].uniform() * total;
        let mut acc = 0.0;
        out[i] = k - 1;
        for (a, w) in weights.iter().enumerate() {
            acc += w;
            if u < acc {
                out[i] = a;
                break;
            }
        }
    }
}
