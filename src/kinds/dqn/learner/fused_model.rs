//! The learned models' update on the CPU (young2022 spec §3.3-3.4), fused
//! per seed as Q's is ([`crate::tensor::fused`]): the forward passes of the
//! model's networks on flat parameters, the loss of
//! [`crate::kinds::dqn::learner::model`] with its gradient written out by hand (the
//! straight-through and reparameterised samples and KL balancing's
//! stop-gradients included), the backward passes and each network's Adam step.
//!
//! Invariants: computes what the taped loss in `runtime::model` computes
//! (tests compare the two) from the same random draws; a seed reads and
//! writes only its own slices.

use crate::kinds::dqn::{Latent, LearnedPlan, ModelKind, ModelLoss, ObsHead};
use crate::tensor::dist::{inverse_cdf, HALF_LN_2PI};
use crate::tensor::fused::{self, FlatNet};

/// Indices of a learned model's networks, in [`LearnedPlan::net_dims`]'s order.
pub(crate) const REWARD: usize = 0;
pub(crate) const CONTINUATION: usize = 1;
/// The factored model's next-obs head; the latent model's decoder.
pub(crate) const OBS: usize = 2;
pub(crate) const ENCODER: usize = 3;
pub(crate) const TRANSITION: usize = 4;

/// One seed's replay minibatch of `B` transitions.
pub struct SeedBatch<'a> {
    pub obs: &'a [f32],
    pub next_obs: &'a [f32],
    pub actions: &'a [usize],
    pub rewards: &'a [f32],
    /// 1 where the transition did not terminate.
    pub alive: &'a [f32],
}

/// One network's forward outputs and gradients.
#[derive(Default)]
struct Pass {
    acts: Vec<Vec<f32>>,
    d_out: Vec<f32>,
    grads: Vec<f32>,
}

impl Pass {
    fn out(&self) -> &[f32] {
        self.acts.last().expect("a network has layers")
    }
}

/// Buffers of one seed's model update, kept between updates.
#[derive(Default)]
pub struct Scratch {
    passes: Vec<Pass>,
    /// Network inputs: `[obs, one_hot(a)]` or `[phi, one_hot(a)]`; both obs.
    x: Vec<f32>,
    both: Vec<f32>,
    phi: Vec<f32>,
    /// The posterior sample's slope with respect to the encoder's output
    /// (Gaussian: `eps * dstd/dpre`; categorical: the probabilities).
    slope: Vec<f32>,
    d_x: Vec<f32>,
    d_phi: Vec<f32>,
    tmp: Vec<f32>,
}

thread_local! {
    static SCRATCH: std::cell::RefCell<Scratch> = std::cell::RefCell::new(Scratch::default());
}

fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}

/// `ln(1 + e^x)`, as dfdx's composition computes it.
fn softplus(x: f32) -> f32 {
    x.max(0.0) + ((-x.abs()).exp() + 1.0).ln()
}

/// A std activation and its slope: sigmoid2 (`2 sigmoid(x / 2)`) or softplus,
/// floored at 1e-6 (no slope below the floor).
fn std_of(pre: f32, sigmoid2: bool) -> (f32, f32) {
    let (raw, slope) = match sigmoid2 {
        true => {
            let s = sigmoid(pre * 0.5);
            (s * 2.0, s * (1.0 - s))
        }
        false => (softplus(pre), sigmoid(pre)),
    };
    match raw >= 1e-6 {
        true => (raw, slope),
        false => (1e-6, 0.0),
    }
}

/// Bernoulli NLL of `targets` under `logits` (summed), with `scale` times its
/// gradient written to `d`.
fn bernoulli(logits: &[f32], targets: &[f32], scale: f32, d: &mut [f32]) -> f32 {
    let mut nll = 0.0;
    for ((l, o), g) in logits.iter().zip(targets).zip(d) {
        nll += softplus(*l) - o * l;
        *g = scale * (sigmoid(*l) - o);
    }
    nll
}

/// `softmax` of each `width`-wide group of `logits` into `probs` and `log_probs`.
fn softmax_groups(logits: &[f32], width: usize, probs: &mut [f32], log_probs: &mut [f32]) {
    for ((l, p), lp) in logits
        .chunks(width)
        .zip(probs.chunks_mut(width))
        .zip(log_probs.chunks_mut(width))
    {
        let max = l.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
        let total: f32 = l.iter().map(|x| (x - max).exp()).sum();
        let log_total = total.ln();
        for ((x, p), lp) in l.iter().zip(p.iter_mut()).zip(lp.iter_mut()) {
            *lp = x - max - log_total;
            *p = lp.exp();
        }
    }
}

/// Rows of `[x, one_hot(a)]` into `out`.
pub(crate) fn write_with_one_hot(
    x: &[f32],
    d: usize,
    actions: &[usize],
    n_actions: usize,
    out: &mut Vec<f32>,
) {
    out.clear();
    for (row, a) in x.chunks(d).zip(actions) {
        out.extend_from_slice(row);
        out.extend((0..n_actions).map(|k| f32::from(k == *a)));
    }
}

/// One model step of seed `s` on its minibatch (`t` is the shared Adam
/// counter); `draws` are its `B x features` normal (Gaussian) or uniform
/// (categorical) draws. Returns the seed's loss before the step.
pub fn train_step(
    plan: &LearnedPlan,
    nets: &mut [FlatNet],
    s: usize,
    t: u64,
    batch: &SeedBatch,
    draws: &[f32],
) -> f32 {
    SCRATCH.with(|scratch| {
        let scratch = &mut *scratch.borrow_mut();
        scratch.passes.resize_with(nets.len(), Pass::default);
        let loss = match plan.kind {
            ModelKind::Factored { obs } => factored(plan, nets, s, batch, obs, scratch),
            ModelKind::Latent(latent) => latent_loss(plan, nets, s, batch, latent, draws, scratch),
        };
        for (net, pass) in nets.iter_mut().zip(&scratch.passes) {
            net.step(s, &plan.adam, t, &pass.grads);
        }
        loss
    })
}

/// Runs network `i` forward on `x` (`rows` rows) into its pass.
fn forward(
    plan: &LearnedPlan,
    nets: &[FlatNet],
    s: usize,
    i: usize,
    x: &[f32],
    rows: usize,
    pass: &mut Pass,
) {
    let net = &nets[i];
    fused::forward(
        &net.layout,
        &net.params[net.seed(s)],
        plan.activation,
        x,
        rows,
        &mut pass.acts,
    );
}

/// Network `i`'s backward pass from its `d_out`; with `d_x`, also the input's gradient.
#[allow(clippy::too_many_arguments)]
fn backward(
    plan: &LearnedPlan,
    nets: &[FlatNet],
    s: usize,
    i: usize,
    x: &[f32],
    pass: &mut Pass,
    tmp: &mut Vec<f32>,
    d_x: Option<&mut Vec<f32>>,
) {
    let net = &nets[i];
    pass.grads.resize(net.layout.n_params, 0.0);
    fused::backward(
        &net.layout,
        &net.params[net.seed(s)],
        plan.activation,
        x,
        &pass.acts,
        &mut pass.d_out,
        tmp,
        &mut pass.grads,
        d_x,
    );
}

/// The reward (unit-Gaussian NLL) and continuation (Bernoulli NLL) heads'
/// per-row losses, weighted, with their output gradients set.
fn reward_and_continuation(
    plan: &LearnedPlan,
    batch: &SeedBatch,
    passes: &mut [Pass],
    per_row: &mut [f32],
) {
    let b = batch.actions.len() as f32;
    let w = plan.loss;
    let (reward, rest) = passes.split_at_mut(CONTINUATION);
    let (reward, cont) = (&mut reward[REWARD], &mut rest[0]);
    let rows = batch.actions.len();
    reward.d_out.resize(rows, 0.0);
    cont.d_out.resize(rows, 0.0);
    for i in 0..rows {
        let err = reward.out()[i] - batch.rewards[i];
        reward.d_out[i] = w.reward * err / b;
        let c = batch.alive[i];
        let l = cont.out()[i];
        cont.d_out[i] = w.continuation * (sigmoid(l) - c) / b;
        per_row[i] +=
            w.reward * (0.5 * err * err + HALF_LN_2PI) + w.continuation * (softplus(l) - c * l);
    }
}

/// The simple model (spec §3.3): three networks on `[obs, one_hot(a)]`.
fn factored(
    plan: &LearnedPlan,
    nets: &[FlatNet],
    s: usize,
    batch: &SeedBatch,
    head: ObsHead,
    scratch: &mut Scratch,
) -> f32 {
    let (d, a) = (plan.obs_dim, plan.n_actions);
    let rows = batch.actions.len();
    let b = rows as f32;
    write_with_one_hot(batch.obs, d, batch.actions, a, &mut scratch.x);
    for i in [REWARD, CONTINUATION, OBS] {
        forward(plan, nets, s, i, &scratch.x, rows, &mut scratch.passes[i]);
    }
    let mut per_row = vec![0f32; rows];
    reward_and_continuation(plan, batch, &mut scratch.passes, &mut per_row);
    let obs = &mut scratch.passes[OBS];
    obs.d_out.resize(rows * d, 0.0);
    let acts = obs.acts.last().expect("layers");
    for i in 0..rows {
        let alive = batch.alive[i];
        let scale = plan.loss.obs * alive / b;
        let (l, o) = (
            &acts[i * d..(i + 1) * d],
            &batch.next_obs[i * d..(i + 1) * d],
        );
        let g = &mut obs.d_out[i * d..(i + 1) * d];
        let nll = match head {
            ObsHead::Bernoulli => bernoulli(l, o, scale, g),
            ObsHead::Gaussian => {
                let mut nll = 0.0;
                for ((l, o), g) in l.iter().zip(o).zip(g.iter_mut()) {
                    nll += 0.5 * (l - o) * (l - o) + HALF_LN_2PI;
                    *g = scale * (l - o);
                }
                nll
            }
        };
        per_row[i] += plan.loss.obs * nll * alive;
    }
    for i in [REWARD, CONTINUATION, OBS] {
        backward(
            plan,
            nets,
            s,
            i,
            &scratch.x,
            &mut scratch.passes[i],
            &mut scratch.tmp,
            None,
        );
    }
    per_row.iter().sum::<f32>() / b
}

/// The latent models (spec §3.4): encoder on `s` and `s'`, a posterior sample
/// `phi` of `s`, transition prior, reward and continuation on `[phi, a]`,
/// decoder of `s` from `phi`, KL balancing between the posterior of `s'` and
/// the prior, and (with `entropy` weight) the posterior of `s`'s KL to the
/// base distribution.
#[allow(clippy::too_many_arguments)]
fn latent_loss(
    plan: &LearnedPlan,
    nets: &[FlatNet],
    s: usize,
    batch: &SeedBatch,
    latent: Latent,
    draws: &[f32],
    scratch: &mut Scratch,
) -> f32 {
    let a = plan.n_actions;
    let rows = batch.actions.len();
    let b = rows as f32;
    let (z, p) = (latent.dim(), latent.params_dim());
    let w = plan.loss;
    scratch.both.clear();
    scratch.both.extend_from_slice(batch.obs);
    scratch.both.extend_from_slice(batch.next_obs);
    forward(
        plan,
        nets,
        s,
        ENCODER,
        &scratch.both,
        2 * rows,
        &mut scratch.passes[ENCODER],
    );
    let Scratch {
        passes,
        x,
        both,
        phi,
        slope,
        d_x,
        d_phi,
        tmp,
    } = scratch;
    let enc = passes[ENCODER].out().to_vec();
    posterior_sample(latent, &enc[..rows * p], draws, phi, slope);
    write_with_one_hot(phi, z, batch.actions, a, x);
    for i in [REWARD, CONTINUATION, TRANSITION] {
        forward(plan, nets, s, i, x, rows, &mut passes[i]);
    }
    forward(plan, nets, s, OBS, phi, rows, &mut passes[OBS]);
    let mut per_row = vec![0f32; rows];
    reward_and_continuation(plan, batch, passes, &mut per_row);
    reconstruction(plan, batch, &mut passes[OBS], &mut per_row);
    let mut d_enc = vec![0f32; 2 * rows * p];
    {
        let prior = passes[TRANSITION].out().to_vec();
        let d_prior = &mut passes[TRANSITION].d_out;
        d_prior.resize(rows * p, 0.0);
        let (post_next, d_post_next) = (&enc[rows * p..], &mut d_enc[rows * p..]);
        kl_balancing(
            latent,
            &w,
            b,
            &prior,
            post_next,
            d_prior,
            d_post_next,
            &mut per_row,
        );
    }
    // Backward: the heads on `[phi, a]` and the decoder give phi's gradient.
    d_phi.clear();
    d_phi.resize(rows * z, 0.0);
    for i in [REWARD, CONTINUATION, TRANSITION] {
        backward(plan, nets, s, i, x, &mut passes[i], tmp, Some(d_x));
        for (g, row) in d_phi.chunks_mut(z).zip(d_x.chunks(z + a)) {
            g.iter_mut().zip(row).for_each(|(g, d)| *g += d);
        }
    }
    backward(plan, nets, s, OBS, phi, &mut passes[OBS], tmp, Some(d_x));
    d_phi.iter_mut().zip(d_x.iter()).for_each(|(g, d)| *g += d);
    let (post, d_post) = (&enc[..rows * p], &mut d_enc[..rows * p]);
    phi_to_encoder(latent, d_phi, slope, d_post);
    if w.entropy != 0.0 {
        let kl = posterior_to_base(latent, post, w.entropy / b, d_post);
        for (row, kl) in per_row.iter_mut().zip(kl) {
            *row += w.entropy * kl;
        }
    }
    passes[ENCODER].d_out = d_enc;
    backward(
        plan,
        nets,
        s,
        ENCODER,
        both,
        &mut passes[ENCODER],
        tmp,
        None,
    );
    per_row.iter().sum::<f32>() / b
}

/// The decoder's reconstruction of the current obs (Bernoulli NLL, masked on
/// terminal transitions): adds each row's weighted loss, sets its gradient.
fn reconstruction(plan: &LearnedPlan, batch: &SeedBatch, dec: &mut Pass, per_row: &mut [f32]) {
    let d = plan.obs_dim;
    let rows = batch.actions.len();
    let (w, b) = (plan.loss.obs, rows as f32);
    dec.d_out.resize(rows * d, 0.0);
    let acts = dec.acts.last().expect("layers");
    for i in 0..rows {
        let alive = batch.alive[i];
        let g = &mut dec.d_out[i * d..(i + 1) * d];
        let nll = bernoulli(
            &acts[i * d..(i + 1) * d],
            &batch.obs[i * d..(i + 1) * d],
            w * alive / b,
            g,
        );
        per_row[i] += w * nll * alive;
    }
}

/// The posterior sample `phi` of the encoder's rows `post` and its slope
/// with respect to them (Gaussian: `eps * dstd/dpre`; categorical: the
/// probabilities, through which the straight-through gradient flows).
fn posterior_sample(
    latent: Latent,
    post: &[f32],
    draws: &[f32],
    phi: &mut Vec<f32>,
    slope: &mut Vec<f32>,
) {
    let p = latent.params_dim();
    let rows = post.len() / p;
    phi.clear();
    slope.clear();
    match latent {
        Latent::Gaussian {
            features: f,
            min_std,
            sigmoid2,
        } => {
            for i in 0..rows {
                for k in 0..f {
                    let (std, dstd) = std_of(post[i * p + f + k], sigmoid2);
                    let eps = draws[i * f + k];
                    phi.push(post[i * p + k] + (std + min_std) * eps);
                    slope.push(eps * dstd);
                }
            }
        }
        Latent::Categorical { width, .. } => {
            slope.resize(rows * p, 0.0);
            let mut log_probs = vec![0f32; rows * p];
            softmax_groups(post, width, slope, &mut log_probs);
            for (probs, u) in slope.chunks(width).zip(draws) {
                let pick = inverse_cdf(probs, *u);
                // `p + (onehot - p)`, rounded as the taped path rounds it.
                phi.extend(
                    probs
                        .iter()
                        .enumerate()
                        .map(|(k, pk)| pk + (f32::from(k == pick) - pk)),
                );
            }
        }
    }
}

/// KL balancing: `KL(q || sg(p))` trains the encoder's rows of `s'` and
/// `KL(sg(q) || p)` the transition prior (and through phi the encoder).
/// Writes both output gradients and adds each row's weighted KL to `per_row`.
#[allow(clippy::too_many_arguments)]
fn kl_balancing(
    latent: Latent,
    w: &ModelLoss,
    b: f32,
    prior: &[f32],
    post_next: &[f32],
    d_prior: &mut [f32],
    d_post: &mut [f32],
    per_row: &mut [f32],
) {
    let p = latent.params_dim();
    let rows = prior.len() / p;
    let (c_prior, c_post) = (w.kl_prior / b, w.kl_posterior / b);
    match latent {
        Latent::Gaussian {
            features: f,
            min_std,
            sigmoid2,
        } => {
            for i in 0..rows {
                let mut kl = 0.0;
                for k in 0..f {
                    let (pm, (ps, dps)) =
                        (prior[i * p + k], std_of(prior[i * p + f + k], sigmoid2));
                    let (qm, (qs, dqs)) = (
                        post_next[i * p + k],
                        std_of(post_next[i * p + f + k], sigmoid2),
                    );
                    let qs = qs + min_std;
                    let var = ps * ps;
                    let spread = qs * qs + (qm - pm) * (qm - pm);
                    kl += ps.ln() - qs.ln() + spread / (2.0 * var) - 0.5;
                    d_prior[i * p + k] = c_prior * (pm - qm) / var;
                    d_prior[i * p + f + k] = c_prior * (1.0 / ps - spread / (var * ps)) * dps;
                    d_post[i * p + k] = c_post * (qm - pm) / var;
                    d_post[i * p + f + k] = c_post * (qs / var - 1.0 / qs) * dqs;
                }
                per_row[i] += (w.kl_prior + w.kl_posterior) * kl;
            }
        }
        Latent::Categorical { width, .. } => {
            let n = rows * p;
            let (mut pp, mut log_pp) = (vec![0f32; n], vec![0f32; n]);
            let (mut q, mut log_q) = (vec![0f32; n], vec![0f32; n]);
            softmax_groups(prior, width, &mut pp, &mut log_pp);
            softmax_groups(post_next, width, &mut q, &mut log_q);
            for g in 0..n / width {
                let r = g * width..(g + 1) * width;
                let kl: f32 = r.clone().map(|j| q[j] * (log_q[j] - log_pp[j])).sum();
                for j in r {
                    d_prior[j] = c_prior * (pp[j] - q[j]);
                    d_post[j] = c_post * q[j] * (log_q[j] - log_pp[j] - kl);
                }
                per_row[g * width / p] += (w.kl_prior + w.kl_posterior) * kl;
            }
        }
    }
}

/// phi's gradient `d_phi` back to the encoder's rows of `s` (`d_post`,
/// overwritten): through the reparameterisation, or straight through to the
/// probabilities and then the softmax's slope.
fn phi_to_encoder(latent: Latent, d_phi: &[f32], slope: &[f32], d_post: &mut [f32]) {
    let p = latent.params_dim();
    match latent {
        Latent::Gaussian { features: f, .. } => {
            for i in 0..d_post.len() / p {
                for k in 0..f {
                    let g = d_phi[i * f + k];
                    d_post[i * p + k] = g;
                    d_post[i * p + f + k] = g * slope[i * f + k];
                }
            }
        }
        Latent::Categorical { width, .. } => {
            for ((d, g), probs) in d_post
                .chunks_mut(width)
                .zip(d_phi.chunks(width))
                .zip(slope.chunks(width))
            {
                let dot: f32 = g.iter().zip(probs).map(|(g, p)| g * p).sum();
                for ((d, g), p) in d.iter_mut().zip(g).zip(probs) {
                    *d = p * (g - dot);
                }
            }
        }
    }
}

/// The posterior's KL to the base distribution (a unit Gaussian, or uniform
/// classes), summed over features, per row of the encoder's output `post`;
/// adds `scale` times its gradient to `d_post`.
fn posterior_to_base(latent: Latent, post: &[f32], scale: f32, d_post: &mut [f32]) -> Vec<f32> {
    let p = latent.params_dim();
    let rows = post.len() / p;
    let mut per_row = vec![0f32; rows];
    match latent {
        Latent::Gaussian {
            features: f,
            min_std,
            sigmoid2,
        } => {
            for i in 0..rows {
                for k in 0..f {
                    let m = post[i * p + k];
                    let (raw, dstd) = std_of(post[i * p + f + k], sigmoid2);
                    let std = raw + min_std;
                    // KL(N(m, std) || N(0, 1)) = -ln std + (std^2 + m^2) / 2 - 1/2.
                    per_row[i] += -std.ln() + 0.5 * (std * std + m * m) - 0.5;
                    d_post[i * p + k] += scale * m;
                    d_post[i * p + f + k] += scale * (std - 1.0 / std) * dstd;
                }
            }
        }
        Latent::Categorical { width, .. } => {
            let mut probs = vec![0f32; post.len()];
            let mut log_probs = vec![0f32; post.len()];
            softmax_groups(post, width, &mut probs, &mut log_probs);
            let ln_width = (width as f32).ln();
            for g in 0..post.len() / width {
                let r = g * width..(g + 1) * width;
                // KL(q || uniform) = sum q ln q + ln W; its logits' gradient is q (ln q - sum q ln q).
                let neg_entropy: f32 = r.clone().map(|j| probs[j] * log_probs[j]).sum();
                for j in r {
                    d_post[j] += scale * probs[j] * (log_probs[j] - neg_entropy);
                }
                per_row[g * width / p] += neg_entropy + ln_width;
            }
        }
    }
    per_row
}
