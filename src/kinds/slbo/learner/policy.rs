//! SLBO's Gaussian policy on one seed (vaslbo spec §2.2): a tanh MLP mean on
//! the normalized state and a state-independent log-std; sampling, its
//! parameters as one flat vector for TRPO, and the policy evaluations use.

use crate::kinds::slbo::learner::model::Norms;
use crate::kinds::slbo::learner::net::Net;
use crate::kinds::slbo::PolicyPlan;
use crate::seeds::Stream;
use crate::tensor::mlp::NetId;
use crate::tensor::Dev;

#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Policy {
    pub mean: Net,
    pub log_std: Vec<f32>,
    pub normalize: bool,
}

impl Policy {
    pub fn new(dev: &Dev, root: u64, seed: u64, plan: &PolicyPlan) -> Policy {
        let act_dim = *plan.mean.dims.last().expect("a network has layers");
        Policy {
            mean: Net::new(dev, root, seed, NetId(10), &plan.mean),
            log_std: vec![plan.init_std.ln() as f32; act_dim],
            normalize: plan.mean.normalize,
        }
    }

    pub fn act_dim(&self) -> usize {
        self.log_std.len()
    }

    /// The mean network's input rows for `states`.
    pub fn input(&self, states: &[f32], norms: &Norms) -> Vec<f32> {
        match self.normalize {
            true => norms.state.normalize(states),
            false => states.to_vec(),
        }
    }

    /// The action means for rows of states.
    pub fn means(&self, states: &[f32], norms: &Norms) -> Vec<f32> {
        let d = self.mean.input_dim();
        self.mean
            .predict(&self.input(states, norms), states.len() / d)
    }

    /// `a = mean + exp(log_std) eps`, one `eps ~ N(0, 1)` per action entry from `rng`.
    pub fn sample(&self, states: &[f32], norms: &Norms, rng: &mut Stream) -> Vec<f32> {
        let mut actions = self.means(states, norms);
        let a = self.act_dim();
        for (i, x) in actions.iter_mut().enumerate() {
            *x += self.log_std[i % a].exp() * rng.normal() as f32;
        }
        actions
    }

    /// The mean network's parameters followed by the log-std.
    pub fn flat(&self) -> Vec<f32> {
        let mut v = self.mean.params().to_vec();
        v.extend_from_slice(&self.log_std);
        v
    }

    pub fn set_flat(&mut self, v: &[f32]) {
        let n = self.mean.n_params();
        self.mean.params_mut().copy_from_slice(&v[..n]);
        self.log_std.copy_from_slice(&v[n..]);
    }
}
