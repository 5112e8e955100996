//! TRPO on one seed (vaslbo spec §3): GAE with a bootstrap at timeouts, the
//! surrogate `mean(ratio A) + ent_coef mean(sum_d H_limited)` and its
//! gradient, Fisher-vector products (the Gauss-Newton form of the mean KL's
//! Hessian, exact at the old policy), conjugate gradient, and the
//! backtracking line search under the KL bound.

use crate::kinds::slbo::learner::net::Pass;
use crate::kinds::slbo::learner::policy::Policy;
use crate::kinds::slbo::TrpoPlan;
use crate::tensor::fused;
use crate::tensor::gaussian::{kl, limited_entropy, log_density};

/// GAE over `[T, E]` rows (row `t E + e`): `delta_t = r_t + gamma V'_t (1 -
/// done_t) - V_t`, `A_t = delta_t + gamma lambda A_{t+1} (1 - (done_t |
/// timeout_t))`, where `V'_t` is the value bootstrapped after row t.
#[allow(clippy::too_many_arguments)]
pub fn gae(
    rewards: &[f32],
    values: &[f32],
    next_values: &[f32],
    dones: &[bool],
    timeouts: &[bool],
    envs: usize,
    gamma: f64,
    lambda: f64,
) -> Vec<f32> {
    let steps = rewards.len() / envs;
    let mut adv = vec![0f32; rewards.len()];
    for e in 0..envs {
        let mut last = 0.0f64;
        for t in (0..steps).rev() {
            let i = t * envs + e;
            let keep_v = if dones[i] { 0.0 } else { 1.0 };
            let keep_a = if dones[i] || timeouts[i] { 0.0 } else { 1.0 };
            let delta =
                rewards[i] as f64 + gamma * next_values[i] as f64 * keep_v - values[i] as f64;
            last = delta + gamma * lambda * last * keep_a;
            adv[i] = last as f32;
        }
    }
    adv
}

/// `(A - mean) / max(std, 1e-8)`.
pub fn standardize(adv: &[f32]) -> Vec<f32> {
    let n = adv.len() as f64;
    let mean = adv.iter().map(|a| *a as f64).sum::<f64>() / n;
    let var = adv.iter().map(|a| (*a as f64 - mean).powi(2)).sum::<f64>() / n;
    let std = var.sqrt().max(1e-8);
    adv.iter()
        .map(|a| ((*a as f64 - mean) / std) as f32)
        .collect()
}

/// Conjugate gradient for `A x = b` from `x = 0`: at most `iters`
/// iterations, stopping once the squared residual is below `tol`.
pub fn conjugate_gradient(
    apply: &mut dyn FnMut(&[f64]) -> Vec<f64>,
    b: &[f64],
    iters: usize,
    tol: f64,
) -> Vec<f64> {
    let mut x = vec![0.0; b.len()];
    let mut r = b.to_vec();
    let mut p = b.to_vec();
    let mut rr = dot(&r, &r);
    for _ in 0..iters {
        let z = apply(&p);
        let alpha = rr / dot(&p, &z);
        x.iter_mut().zip(&p).for_each(|(x, p)| *x += alpha * p);
        r.iter_mut().zip(&z).for_each(|(r, z)| *r -= alpha * z);
        let new = dot(&r, &r);
        if new < tol {
            break;
        }
        let mu = new / rr;
        p.iter_mut().zip(&r).for_each(|(p, r)| *p = r + mu * *p);
        rr = new;
    }
    x
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// One TRPO batch: the mean network's inputs, the actions taken and the
/// standardized advantages.
pub struct Batch<'a> {
    pub x: &'a [f32],
    pub actions: &'a [f32],
    pub advantages: &'a [f32],
}

/// What a TRPO step did.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct StepReport {
    /// A step was taken (else the policy is unchanged).
    pub accepted: bool,
    /// Mean KL(old || new) of the step taken (0 without one).
    pub kl: f64,
    /// The surrogate's improvement (0 without a step).
    pub gain: f64,
    /// The old policy's mean limited entropy (summed over action dims).
    pub entropy: f64,
    /// The gradient was zero: nothing was done, V is not fitted either (as released).
    pub zero_gradient: bool,
}

/// The old policy on a batch: its means, log-std, log-densities of the
/// actions, surrogate and mean limited entropy.
struct Old {
    mu: Vec<f32>,
    log_std: Vec<f32>,
    log_prob: Vec<f64>,
    surrogate: f64,
    entropy: f64,
}

/// `(surrogate, mean KL(old || new), mean entropy)` of a policy with means `mu`.
fn evaluate(
    batch: &Batch,
    old: Option<&Old>,
    mu: &[f32],
    log_std: &[f32],
    ent_coef: f64,
    limit: f64,
) -> (f64, f64, f64, Vec<f64>) {
    let a = log_std.len();
    let n = batch.advantages.len();
    let (mut surrogate, mut total_kl, mut entropy) = (0.0, 0.0, 0.0);
    let mut log_probs = Vec::with_capacity(n);
    for r in 0..n {
        let mut lp = 0.0;
        for k in 0..a {
            let i = r * a + k;
            lp += log_density(batch.actions[i] as f64, mu[i] as f64, log_std[k] as f64);
            entropy += limited_entropy(mu[i] as f64, log_std[k] as f64, limit).0;
            if let Some(old) = old {
                total_kl += kl(
                    old.mu[i] as f64,
                    old.log_std[k] as f64,
                    mu[i] as f64,
                    log_std[k] as f64,
                );
            }
        }
        let ratio = match old {
            Some(old) => (lp - old.log_prob[r]).exp(),
            None => 1.0,
        };
        surrogate += ratio * batch.advantages[r] as f64;
        log_probs.push(lp);
    }
    let nf = n as f64;
    (
        surrogate / nf + ent_coef * entropy / nf,
        total_kl / nf,
        entropy / nf,
        log_probs,
    )
}

/// The old policy's outputs on a batch, the surrogate's gradient there
/// (`[mean-network parameters, log-std]`), and the forward pass it came from.
pub struct AtOld {
    old: Old,
    pub grad: Vec<f64>,
    pass: Pass,
}

/// The surrogate's value and gradient at the current policy (the ratio is
/// 1 there): `d/dmu = (A (a - mu) / sigma^2 + ent_coef dH/dmu) / N`, through
/// the mean network, and `d/d log_std = sum (A (z^2 - 1) + ent_coef dH/d log_std) / N`.
pub fn at_old(policy: &Policy, batch: &Batch, plan: &TrpoPlan, ent_coef: f64) -> AtOld {
    let net = &policy.mean;
    let a = policy.act_dim();
    let n = batch.advantages.len();
    let mut pass = Pass::default();
    net.forward(batch.x, n, &mut pass);
    let mu = pass.out().to_vec();
    let (surrogate, _, entropy, log_prob) =
        evaluate(batch, None, &mu, &policy.log_std, ent_coef, plan.ent_limit);
    let old = Old {
        mu,
        log_std: policy.log_std.clone(),
        log_prob,
        surrogate,
        entropy,
    };
    let nf = n as f64;
    let mut d_mu = vec![0f32; n * a];
    let mut d_ls = vec![0f64; a];
    for r in 0..n {
        let adv = batch.advantages[r] as f64;
        for k in 0..a {
            let i = r * a + k;
            let ls = old.log_std[k] as f64;
            let z = (batch.actions[i] as f64 - old.mu[i] as f64) * (-ls).exp();
            let (_, h_mu, h_ls) = limited_entropy(old.mu[i] as f64, ls, plan.ent_limit);
            d_mu[i] = ((adv * z * (-ls).exp() + ent_coef * h_mu) / nf) as f32;
            d_ls[k] += (adv * (z * z - 1.0) + ent_coef * h_ls) / nf;
        }
    }
    let mut grad = vec![0f32; net.n_params()];
    net.backward(batch.x, &pass, &mut d_mu, &mut grad, None);
    let mut g: Vec<f64> = grad.iter().map(|x| *x as f64).collect();
    g.extend(&d_ls);
    AtOld { old, grad: g, pass }
}

/// `F v + damping v` for the mean KL's Fisher at the old policy: `J^T
/// diag(1/sigma^2) J v_mean / N` for the mean network (`J v` by forward
/// mode, `J^T u` by a backward pass) and `2 v_log_std` for the log-std.
pub fn fisher_vector_product(
    policy: &Policy,
    batch: &Batch,
    at: &AtOld,
    damping: f64,
    v: &[f64],
) -> Vec<f64> {
    let net = &policy.mean;
    let a = policy.act_dim();
    let n = batch.advantages.len();
    let p = net.n_params();
    let tangent: Vec<f32> = v[..p].iter().map(|x| *x as f32).collect();
    let (_, jv) = fused::jvp(
        &net.layout,
        net.params(),
        &tangent,
        net.activation,
        batch.x,
        n,
    );
    let mut u: Vec<f32> = jv
        .iter()
        .enumerate()
        .map(|(i, x)| {
            let inv_var = (-2.0 * at.old.log_std[i % a] as f64).exp();
            (*x as f64 * inv_var / n as f64) as f32
        })
        .collect();
    let mut jtu = vec![0f32; p];
    net.backward(batch.x, &at.pass, &mut u, &mut jtu, None);
    let mut out: Vec<f64> = jtu
        .iter()
        .zip(v)
        .map(|(j, v)| *j as f64 + damping * v)
        .collect();
    out.extend(v[p..].iter().map(|v| (2.0 + damping) * v));
    out
}

/// One TRPO step of `policy` on `batch` (the natural gradient of the
/// surrogate by conjugate gradient, scaled to the KL bound, then halved
/// until the KL is within `kl_tolerance x max_kl` and the surrogate does not
/// fall; without such a step the policy is restored).
pub fn step(policy: &mut Policy, batch: &Batch, plan: &TrpoPlan, ent_coef: f64) -> StepReport {
    let n = batch.advantages.len();
    let at = at_old(policy, batch, plan, ent_coef);
    let report = StepReport {
        entropy: at.old.entropy,
        ..StepReport::default()
    };
    if at.grad.iter().all(|x| x.abs() <= 1e-8) {
        return StepReport {
            zero_gradient: true,
            ..report
        };
    }
    let frozen = policy.clone();
    let mut fvp = |v: &[f64]| fisher_vector_product(&frozen, batch, &at, plan.cg_damping, v);
    let dir = conjugate_gradient(&mut fvp, &at.grad, plan.cg_iters, plan.cg_tol);
    let shs = dot(&dir, &fvp(&dir));
    if !shs.is_finite() || shs <= 0.0 {
        return report;
    }
    let mut size = (2.0 * plan.max_kl / shs).sqrt();
    let theta = policy.flat();
    for _ in 0..plan.line_search_steps {
        let candidate: Vec<f32> = theta
            .iter()
            .zip(&dir)
            .map(|(t, d)| (*t as f64 + size * d) as f32)
            .collect();
        policy.set_flat(&candidate);
        let mu = policy.mean.predict(batch.x, n);
        let (value, mean_kl, _, _) = evaluate(
            batch,
            Some(&at.old),
            &mu,
            &policy.log_std,
            ent_coef,
            plan.ent_limit,
        );
        let gain = value - at.old.surrogate;
        let within = mean_kl <= plan.kl_tolerance * plan.max_kl;
        if value.is_finite() && mean_kl.is_finite() && within && gain >= 0.0 {
            return StepReport {
                accepted: true,
                kl: mean_kl,
                gain,
                ..report
            };
        }
        size *= 0.5;
    }
    policy.set_flat(&theta);
    report
}

/// The surrogate (with the entropy bonus) of `policy` against the old one of `at`.
pub fn surrogate(policy: &Policy, batch: &Batch, at: &AtOld, ent_coef: f64, limit: f64) -> f64 {
    let mu = policy.mean.predict(batch.x, batch.advantages.len());
    evaluate(batch, Some(&at.old), &mu, &policy.log_std, ent_coef, limit).0
}
