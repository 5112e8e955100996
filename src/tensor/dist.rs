//! Heads and distributions of the Young et al. models (young2022 spec §3.3-3.4):
//! Bernoulli logits, unit-variance Gaussian means, straight-through categorical
//! latents, reparameterised Gaussian latents with the sigmoid2 std, and the
//! KL divergences between them with the stop-gradients of KL balancing.
//!
//! Shapes are `[S, B, D]`; per-sample results are `[S, B]` (summed over `D`).
//! A stop-gradient argument is passed as a tape-free tensor (`&T3`); the
//! traced argument always comes first, as dfdx merges tapes from the left.

use dfdx::prelude::*;

use crate::tensor::{Dev, T2, T3};

/// `ln(2 pi) / 2`, the unit Gaussian NLL's constant.
pub const HALF_LN_2PI: f32 = 0.918_938_5;

/// A copy of `x` outside every tape: a stop-gradient.
///
/// `retaped::<NoneTape>()` alone is not one. The copy keeps `x`'s id, and
/// dfdx's binary ops accumulate the gradient of both operands by id whatever
/// the operand's tape, so the gradient would still reach `x`.
pub fn stop_gradient<T: Tape<f32, Dev>>(x: &T3<T>) -> T3 {
    x.retaped::<NoneTape>() * 1.0
}

/// `ln(1 + e^x) = max(x, 0) + ln(1 + e^-|x|)`, with `max(x, 0)` written as
/// `(x + |x|) / 2` (the same value) so that the slope at exactly 0 is 1/2:
/// dfdx's `relu` and `abs` both have slope 0 there.
pub fn softplus<T: Tape<f32, Dev> + Merge<NoneTape> + Merge<T>>(x: T3<T>) -> T3<T> {
    let positive = (x.retaped::<T>() + x.retaped::<T>().abs()) * 0.5;
    positive + (x.abs().negate().exp() + 1.0).ln()
}

/// `-[o ln s(l) + (1-o) ln s(-l)] = softplus(l) - o l`, summed over the last axis.
pub fn bernoulli_nll<T: Tape<f32, Dev> + Merge<NoneTape>>(logits: T3<T>, targets: &T3) -> T2<T> {
    let linear = logits.retaped::<T>() * targets.clone();
    let softplus = softplus(logits);
    (softplus - linear).sum::<(usize, usize), Axis<2>>()
}

/// `0.5 (x - mu)^2 + 0.5 ln 2pi` (sigma fixed at 1), summed over the last axis.
pub fn gaussian_nll_unit<T: Tape<f32, Dev> + Merge<NoneTape>>(mean: T3<T>, targets: &T3) -> T2<T> {
    let d = mean.shape().2 as f32;
    ((mean - targets.clone()).square() * 0.5).sum::<(usize, usize), Axis<2>>() + HALF_LN_2PI * d
}

/// A straight-through one-hot sample per row of `[S, N, W]` logits,
/// `x = p + sg(onehot - p)`; `uniforms` holds one U(0,1) draw per row.
pub fn categorical_straight_through<T: Tape<f32, Dev> + Merge<NoneTape>>(
    logits: T3<T>,
    uniforms: &[f32],
) -> T3<T> {
    let probs = logits.softmax::<Axis<2>>();
    let shape = *probs.shape();
    let p = probs.retaped::<NoneTape>().as_vec();
    let mut shift = vec![0f32; p.len()];
    for ((row, out), u) in p
        .chunks(shape.2)
        .zip(shift.chunks_mut(shape.2))
        .zip(uniforms)
    {
        let pick = inverse_cdf(row, *u);
        for (k, (o, pk)) in out.iter_mut().zip(row).enumerate() {
            *o = f32::from(k == pick) - pk;
        }
    }
    let shift = probs.device().tensor_from_vec(shift, shape);
    probs + shift
}

/// The index whose cumulative probability first exceeds `u`.
pub fn inverse_cdf(probs: &[f32], u: f32) -> usize {
    let mut acc = 0.0;
    for (k, p) in probs.iter().enumerate() {
        acc += p;
        if u < acc {
            return k;
        }
    }
    probs.len() - 1
}

/// `KL(softmax(p) || softmax(q))` per row of `[S, N, W]`, gradient to `p` only.
pub fn categorical_kl<T: Tape<f32, Dev> + Merge<NoneTape>>(p: T3<T>, q_fixed: &T3) -> T2<T> {
    let log_p = p.log_softmax::<Axis<2>>();
    let probs = log_p.retaped::<T>().exp();
    let log_q = q_fixed.clone().log_softmax::<Axis<2>>();
    (probs * (log_p - log_q)).sum::<(usize, usize), Axis<2>>()
}

/// `KL(softmax(p) || softmax(q))` per row, gradient to `q` only:
/// `sum p ln p - sum p ln q` with `p` fixed.
pub fn categorical_kl_to<T: Tape<f32, Dev> + Merge<NoneTape>>(q: T3<T>, p_fixed: &T3) -> T2<T> {
    let log_p = p_fixed.clone().log_softmax::<Axis<2>>();
    let probs = log_p.clone().exp();
    let neg_entropy = (probs.clone() * log_p).sum::<(usize, usize), Axis<2>>();
    let cross = (q.log_softmax::<Axis<2>>() * probs).sum::<(usize, usize), Axis<2>>();
    cross.negate() + neg_entropy
}

/// The Gaussian latent head: `[S, B, 2F]` -> (mean, std) with
/// `std = max(sigmoid2(pre), 1e-6) + min_std`, `sigmoid2(x) = 2 sigmoid(x / 2)`.
pub fn gaussian_head<T: Tape<f32, Dev> + Merge<NoneTape>>(
    out: T3<T>,
    min_std: f32,
) -> (T3<T>, T3<T>) {
    gaussian_params(out, min_std, true)
}

/// [`gaussian_head`] with the std activation chosen: sigmoid2, or softplus
/// (`ln(1 + e^x)`, the reference latent agent's default `std_act`).
pub fn gaussian_params<T: Tape<f32, Dev> + Merge<NoneTape>>(
    out: T3<T>,
    min_std: f32,
    sigmoid2: bool,
) -> (T3<T>, T3<T>) {
    let (s, b, two_f) = *out.shape();
    let f = two_f / 2;
    let mean = out.retaped::<T>().slice((.., .., 0..f));
    let pre = out.slice((.., .., f..two_f));
    debug_assert_eq!(*mean.shape(), (s, b, f));
    let raw = match sigmoid2 {
        true => (pre * 0.5).sigmoid() * 2.0,
        false => softplus(pre),
    };
    let std = raw.clamp(1e-6, f32::MAX) + min_std;
    (mean, std)
}

/// `mean + std * eps` with `eps ~ N(0, 1)` drawn by the caller.
pub fn reparameterize<T: Tape<f32, Dev> + Merge<T>>(mean: T3<T>, std: T3<T>, eps: &T3) -> T3<T> {
    mean + std * eps.clone()
}

/// `KL(N(m1, s1) || N(m2, s2))` summed over the last axis, gradient to the first only:
/// `ln s2 - ln s1 + (s1^2 + (m1 - m2)^2) / (2 s2^2) - 1/2`.
pub fn gaussian_kl<T: Tape<f32, Dev> + Merge<NoneTape> + Merge<T>>(
    m1: T3<T>,
    s1: T3<T>,
    m2: &T3,
    s2: &T3,
) -> T2<T> {
    let d = m1.shape().2 as f32;
    let inv_var2 = (s2.clone().square() * 2.0).recip();
    let log_ratio = s1.retaped::<T>().ln().negate() + s2.clone().ln();
    let spread = (s1.square() + (m1 - m2.clone()).square()) * inv_var2;
    (log_ratio + spread).sum::<(usize, usize), Axis<2>>() - 0.5 * d
}

/// `KL(N(m1, s1) || N(m2, s2))` with gradient to the second only.
pub fn gaussian_kl_to<T: Tape<f32, Dev> + Merge<NoneTape> + Merge<T>>(
    m2: T3<T>,
    s2: T3<T>,
    m1: &T3,
    s1: &T3,
) -> T2<T> {
    let d = m2.shape().2 as f32;
    let var2x2 = s2.retaped::<T>().square() * 2.0;
    let numerator = m2.negate() + m1.clone();
    let spread = (numerator.square() + s1.clone().square()) / var2x2;
    let log_ratio = s2.ln() - s1.clone().ln();
    (log_ratio + spread).sum::<(usize, usize), Axis<2>>() - 0.5 * d
}
