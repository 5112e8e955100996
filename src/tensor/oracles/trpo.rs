//! What TRPO needs for a Gaussian MLP policy (vaslbo spec §2.2, §3): the
//! policy-gradient surrogate and Fisher-vector products.
//!
//! dfdx has no double backward, so the Fisher-vector product uses the
//! Gauss-Newton form of the KL Hessian at the current policy:
//! `F v = (1/B) J^T diag(1/sigma^2) J v_mean + 2 v_logstd + damping v`,
//! where `J` is the Jacobian of the policy mean over the batch. `J v` is an
//! exact forward-mode pass (tangents pushed through the MLP) and `J^T u` one
//! ordinary backward pass.

use dfdx::prelude::*;

use crate::tensor::dist::HALF_LN_2PI;
use crate::tensor::mlp::{Activation, Mlp};
use crate::tensor::{Dev, T2, T3};

/// `N(mean(s), diag(exp(log_std)^2))` with a state-independent `[S, A]` log-std.
#[derive(Clone, Debug)]
pub struct GaussianPolicy {
    pub mean: Mlp,
    pub log_std: T2,
}

/// A vector in the policy's parameter space, shaped like its parameters.
#[derive(Clone, Debug)]
pub struct PolicyVec {
    pub weights: Vec<T3>,
    pub biases: Vec<T2>,
    pub log_std: T2,
}

impl PolicyVec {
    /// Per-seed dot products `[S]`.
    pub fn dot(&self, other: &PolicyVec) -> Vec<f32> {
        let n = self.log_std.shape().0;
        let mut acc: Tensor<(usize,), f32, Dev> = self.log_std.device().zeros_like(&(n,));
        for (a, b) in self.weights.iter().zip(&other.weights) {
            acc = acc + (a.clone() * b.clone()).sum::<(usize,), Axes2<1, 2>>();
        }
        for (a, b) in self.biases.iter().zip(&other.biases) {
            acc = acc + (a.clone() * b.clone()).sum::<(usize,), Axis<1>>();
        }
        acc = acc + (self.log_std.clone() * other.log_std.clone()).sum::<(usize,), Axis<1>>();
        acc.as_vec()
    }
}

/// `sum_a log N(a; mean, sigma)` per sample, `[S, B]`.
pub fn log_prob<T>(mean: T3<T>, log_std: T2<T>, actions: &T3) -> T2<T>
where
    T: Tape<f32, Dev> + Merge<NoneTape> + Merge<T>,
{
    let shape = *mean.shape();
    let log_std = log_std.broadcast_like::<_, Axis<1>>(&shape);
    let inv_std = log_std.retaped::<T>().negate().exp();
    let z = (mean.negate() + actions.clone()) * inv_std;
    let per_dim = z.square() * -0.5 - log_std - HALF_LN_2PI;
    per_dim.sum::<(usize, usize), Axis<2>>()
}

/// `J v` and the mean itself: tangents pushed through the mean network.
pub fn jvp(net: &Mlp, x: &T3, v: &PolicyVec) -> (T3, T3) {
    let mut h = x.clone();
    let mut dh: T3 = x.device().zeros_like(x.shape());
    let last = net.weights.len() - 1;
    for (layer, (w, b)) in net.weights.iter().zip(&net.biases).enumerate() {
        let shape = (h.shape().0, h.shape().1, w.shape().2);
        let z = h.clone().matmul(w.clone()) + b.clone().broadcast_like::<_, Axis<1>>(&shape);
        let dz = dh.matmul(w.clone())
            + h.matmul(v.weights[layer].clone())
            + v.biases[layer].clone().broadcast_like::<_, Axis<1>>(&shape);
        if layer == last {
            return (z, dz);
        }
        let (act, slope) = activation_and_slope(z, net.activation);
        h = act;
        dh = dz * slope;
    }
    unreachable!("an MLP has at least one layer")
}

fn activation_and_slope(z: T3, activation: Activation) -> (T3, T3) {
    match activation {
        Activation::Tanh => {
            let a = z.tanh();
            let slope = a.clone().square().negate() + 1.0;
            (a, slope)
        }
        Activation::Relu => {
            let a = z.clone().relu();
            let positive = z.clone().gt(0.0);
            let slope = z.device().ones_like(z.shape());
            let zero = z.device().zeros_like(z.shape());
            (a, positive.choose(slope, zero))
        }
        Activation::Elu => {
            let positive = z.clone().gt(0.0);
            let e = z.clone().exp();
            let a = positive.clone().choose(z.clone(), e.clone() - 1.0);
            (a, positive.choose(z.device().ones_like(z.shape()), e))
        }
    }
}

/// `F v` per seed, with the Fisher of `mean_s sum_a KL(pi_old || pi)` in Gauss-Newton form.
pub fn fisher_vector_product(
    policy: &GaussianPolicy,
    states: &T3,
    v: &PolicyVec,
    damping: f32,
) -> PolicyVec {
    let (_, jv) = jvp(&policy.mean, states, v);
    let shape = *jv.shape();
    let inv_var = (policy.log_std.clone() * -2.0)
        .exp()
        .broadcast_like::<_, Axis<1>>(&shape);
    let u = jv * inv_var * (1.0 / shape.1 as f32);
    let out = policy
        .mean
        .forward(states.clone().traced(Gradients::leaky()));
    let grads = (out * u).sum::<(), _>().backward();
    let weights = policy
        .mean
        .weights
        .iter()
        .zip(&v.weights)
        .map(|(w, vw)| grads.get(w) + vw.clone() * damping)
        .collect();
    let biases = policy
        .mean
        .biases
        .iter()
        .zip(&v.biases)
        .map(|(b, vb)| grads.get(b) + vb.clone() * damping)
        .collect();
    let log_std = v.log_std.clone() * (2.0 + damping);
    PolicyVec {
        weights,
        biases,
        log_std,
    }
}

/// The TRPO surrogate `mean_B exp(log pi - log pi_old) A`, per seed summed
/// over seeds, with the gradient to the policy's mean parameters and log-std.
pub fn surrogate_gradient(
    policy: &GaussianPolicy,
    states: &T3,
    actions: &T3,
    old_log_prob: &T2,
    advantages: &T2,
) -> (Vec<f32>, PolicyVec) {
    let mean = policy
        .mean
        .forward(states.clone().traced(Gradients::leaky()));
    let log_std = policy.log_std.retaped::<crate::tensor::Tape>();
    let ratio = (log_prob(mean, log_std, actions) - old_log_prob.clone()).exp();
    let per_seed = (ratio * advantages.clone()).mean::<(usize,), Axis<1>>();
    let values = per_seed.retaped::<NoneTape>().as_vec();
    let grads = per_seed.sum::<(), _>().backward();
    let weights = policy.mean.weights.iter().map(|w| grads.get(w)).collect();
    let biases = policy.mean.biases.iter().map(|b| grads.get(b)).collect();
    (
        values,
        PolicyVec {
            weights,
            biases,
            log_std: grads.get(&policy.log_std),
        },
    )
}
