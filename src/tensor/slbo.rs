//! The numeric parts of SLBO (vaslbo spec §1.3, §2, §4): running normalizers,
//! the three model losses, and Adam with an L2 regulariser and per-seed
//! global-norm gradient clipping.

use dfdx::prelude::*;

use crate::tensor::mlp::Mlp;
use crate::tensor::{Dev, T2, T3};

/// SLBO's running Gaussian normalizer, one per seed, merged batch by batch:
/// `d = mean(x - mu)`, `n' = n + m`, `mu' = mu + d m / n'`,
/// `sigma'^2 = (sigma^2 n + var(x - mu) m + d^2 n m / n') / n'`.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Normalizer {
    pub mean: Vec<f64>,
    pub std: Vec<f64>,
    pub count: f64,
}

impl Normalizer {
    pub fn new(dim: usize) -> Normalizer {
        Normalizer {
            mean: vec![0.0; dim],
            std: vec![1.0; dim],
            count: 0.0,
        }
    }

    /// Merges a batch of rows (`rows.len()` a multiple of the dimension).
    pub fn update(&mut self, rows: &[f32]) {
        let dim = self.mean.len();
        let m = (rows.len() / dim) as f64;
        if m == 0.0 || self.count.is_infinite() {
            return;
        }
        let n = self.count;
        let total = n + m;
        for d in 0..dim {
            let centred: Vec<f64> = rows
                .chunks(dim)
                .map(|r| r[d] as f64 - self.mean[d])
                .collect();
            let delta = centred.iter().sum::<f64>() / m;
            let var = centred.iter().map(|c| (c - delta).powi(2)).sum::<f64>() / m;
            let merged =
                (self.std[d].powi(2) * n + var * m + delta * delta * n * m / total) / total;
            self.mean[d] += delta * m / total;
            self.std[d] = merged.sqrt();
        }
        self.count = total;
    }

    /// The identity: mean 0 and std 1 that no update changes (`normalize: none`).
    pub fn identity(dim: usize) -> Normalizer {
        Normalizer {
            count: f64::INFINITY,
            ..Normalizer::new(dim)
        }
    }

    /// `x sigma + mu`, the inverse of [`Normalizer::normalize`] (for
    /// `sigma >= 1e-8`).
    pub fn denormalize(&self, x: &[f32]) -> Vec<f32> {
        let dim = self.mean.len();
        x.chunks(dim)
            .flat_map(|r| {
                r.iter()
                    .enumerate()
                    .map(|(d, v)| (*v as f64 * self.std[d] + self.mean[d]) as f32)
            })
            .collect()
    }

    /// `(x - mu) / max(sigma, 1e-8)`.
    pub fn normalize(&self, x: &[f32]) -> Vec<f32> {
        let dim = self.mean.len();
        x.chunks(dim)
            .flat_map(|r| {
                r.iter()
                    .enumerate()
                    .map(|(d, v)| ((*v as f64 - self.mean[d]) / self.std[d].max(1e-8)) as f32)
            })
            .collect()
    }
}

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
