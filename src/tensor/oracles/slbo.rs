//! Taped references of SLBO's model losses and clipped Adam (vaslbo spec
//! §2, §4), through dfdx's tape: what the tests check the learner's
//! gradients (hand-written, or from its own tape) against.

use dfdx::prelude::*;

use crate::tensor::mlp::Mlp;
use crate::tensor::{Dev, T2, T3};

/// Reduction of the multi-step loss over state dimensions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reduce {
    /// VA-SLBO: `sqrt(sum_d w_d^2)`.
    Sum,
    /// Upstream SLBO: `sqrt(mean_d w_d^2)`.
    Mean,
}

/// One step of the SLBO multi-step loss: the L2 norm of the predicted minus
/// the true state delta, each dimension divided by `max(diff_std, 1e-6)`
/// (`[S, D]`, one row per seed). Returns `[S, B]`.
pub fn delta_norm<T: Tape<f32, Dev> + Merge<NoneTape>>(
    pred_next: T3<T>,
    cur: &T3,
    true_delta: &T3,
    diff_std: &T2,
    reduce: Reduce,
) -> T2<T> {
    let shape = *pred_next.shape();
    let inv_std = diff_std
        .clone()
        .clamp(1e-6, f32::MAX)
        .recip()
        .broadcast_like::<_, Axis<1>>(&shape);
    let err = (pred_next - cur.clone() - true_delta.clone()) * inv_std;
    let sq = err.square();
    let summed = match reduce {
        Reduce::Sum => sq.sum::<(usize, usize), Axis<2>>(),
        Reduce::Mean => sq.mean::<(usize, usize), Axis<2>>(),
    };
    // A tiny floor keeps the gradient of the square root finite at a perfect prediction.
    (summed + 1e-12).sqrt()
}

/// The intended MLE loss (vaslbo spec §4.2, §9.2): `sum_d (f(s, a) - s')^2`, `[S, B]`.
pub fn next_state_mse<T: Tape<f32, Dev> + Merge<NoneTape>>(
    pred_next: T3<T>,
    true_next: &T3,
) -> T2<T> {
    (pred_next - true_next.clone())
        .square()
        .sum::<(usize, usize), Axis<2>>()
}

/// The value-aware loss per sample: `|V(s') - V(f(s, a))|` (l1, MA-L1) or its
/// square (l2, VAML). `v_pred` is the frozen V applied to the prediction, so
/// the gradient reaches the model through V's input.
pub fn value_aware<T: Tape<f32, Dev> + Merge<NoneTape>>(
    v_pred: T2<T>,
    v_true: &T2,
    squared: bool,
) -> T2<T> {
    let diff = v_pred - v_true.clone();
    match squared {
        true => diff.square(),
        false => diff.abs(),
    }
}

/// Adam (TF defaults) on `loss + l2 * sum |theta|^2 / 2`, with each seed's
/// gradient clipped to a global norm (vaslbo spec §2.1).
#[derive(Clone, Debug)]
pub struct ClippedAdam {
    pub lr: f64,
    pub l2: f64,
    pub clip: Option<f64>,
    pub t: u64,
    moments: Vec<LayerMoments>,
}

/// Adam's moments of one layer: its weights' and its biases'.
type LayerMoments = (
    crate::tensor::optim::Moments<(usize, usize, usize)>,
    crate::tensor::optim::Moments<(usize, usize)>,
);

impl ClippedAdam {
    pub fn new(net: &Mlp, lr: f64, l2: f64, clip: Option<f64>) -> ClippedAdam {
        use crate::tensor::optim::Moments;
        let moments = net
            .weights
            .iter()
            .zip(&net.biases)
            .map(|(w, b)| (Moments::zeros(w), Moments::zeros(b)))
            .collect();
        ClippedAdam {
            lr,
            l2,
            clip,
            t: 0,
            moments,
        }
    }

    /// One step from the gradients of `net`'s parameters.
    pub fn step(&mut self, net: &mut Mlp, grads: &Gradients<f32, Dev>) {
        let cfg = crate::tensor::optim::AdamConfig {
            lr: self.lr,
            b1: 0.9,
            b2: 0.999,
            eps: 1e-8,
            weight_decay: 0.0,
        };
        let mut gw: Vec<T3> = Vec::new();
        let mut gb: Vec<T2> = Vec::new();
        for (w, b) in net.weights.iter().zip(&net.biases) {
            gw.push(grads.get(w) + w.clone() * self.l2 as f32);
            gb.push(grads.get(b) + b.clone() * self.l2 as f32);
        }
        if let Some(clip) = self.clip {
            clip_by_global_norm(&mut gw, &mut gb, clip);
        }
        for (i, (mw, mb)) in self.moments.iter_mut().enumerate() {
            mw.step(&cfg, self.t, &mut net.weights[i], &gw[i]);
            mb.step(&cfg, self.t, &mut net.biases[i], &gb[i]);
        }
        self.t += 1;
    }
}

/// Scales each seed's gradients (`[S, ...]` weights and biases) by
/// `min(1, clip / norm_s)`, `norm_s` the global norm of that seed's gradients,
/// as `tf.clip_by_global_norm` does for one model.
pub fn clip_by_global_norm(weights: &mut [T3], biases: &mut [T2], clip: f64) {
    let n_seeds = weights[0].shape().0;
    let mut sq: Tensor<(usize,), f32, Dev> = weights[0].device().zeros_like(&(n_seeds,));
    for (w, b) in weights.iter().zip(biases.iter()) {
        sq = sq
            + w.clone().square().sum::<(usize,), Axes2<1, 2>>()
            + b.clone().square().sum::<(usize,), Axis<1>>();
    }
    let scale = (sq.sqrt().clamp(clip as f32, f32::MAX).recip() * clip as f32).clamp(0.0, 1.0);
    for w in weights.iter_mut() {
        let shape = *w.shape();
        *w = w.clone() * scale.clone().broadcast_like::<_, Axes2<1, 2>>(&shape);
    }
    for b in biases.iter_mut() {
        let shape = *b.shape();
        *b = b.clone() * scale.clone().broadcast_like::<_, Axis<1>>(&shape);
    }
}
