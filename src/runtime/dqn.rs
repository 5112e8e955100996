//! The seed-batched DQN update (young2022 spec §3.1): TD loss on a batch per
//! seed, target network on `s'`, reference Adam. Each seed's parameters only
//! ever see that seed's gradient.

use dfdx::prelude::*;

use crate::tensor::losses::{td_loss, TdBatch};
use crate::tensor::mlp::{Activation, Init, Mlp, NetId};
use crate::tensor::optim::{AdamConfig, Moments};
use crate::tensor::{Dev, T3};

pub struct DqnLearner {
    pub q: Mlp,
    pub target: Mlp,
    weight_moments: Vec<Moments<(usize, usize, usize)>>,
    bias_moments: Vec<Moments<(usize, usize)>>,
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
        let weight_moments = q.weights.iter().map(Moments::zeros).collect();
        let bias_moments = q.biases.iter().map(Moments::zeros).collect();
        DqnLearner {
            q,
            target,
            weight_moments,
            bias_moments,
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
        for (w, m) in self.q.weights.iter_mut().zip(&mut self.weight_moments) {
            let g = grads.get(&*w);
            m.step(&self.adam, self.t, w, &g);
        }
        for (b, m) in self.q.biases.iter_mut().zip(&mut self.bias_moments) {
            let g = grads.get(&*b);
            m.step(&self.adam, self.t, b, &g);
        }
        self.t += 1;
        per_seed
    }

    pub fn sync_target(&mut self) {
        self.target.copy_from(&self.q);
    }
}

/// A seed whose loss stopped being finite, for the report: the other seeds'
/// parameters never see its gradient, so they carry on unaffected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
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
