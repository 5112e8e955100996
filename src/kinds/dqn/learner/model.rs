//! Learned models of the Young et al. agents (young2022 spec §3.3-3.4),
//! seed-batched: the factored "simple" model and the feed-forward latent
//! models (categorical or Gaussian), their losses and one Adam step on a
//! replay minibatch, encoding observations, and rollouts of Q's softmax
//! policy inside the model that give Q its training batch.
//!
//! On the CPU the networks live as flat per-seed parameters and the update
//! runs fused ([`crate::kinds::dqn::learner::fused_model`]); on the GPU it runs taped
//! through dfdx, with the same draws. Tests compare the two.
//!
//! Invariants: touches no env; every random draw comes from a per-seed
//! stream, drawn in seed order, so that a seed's numbers do not depend on the
//! other seeds of its batch.

use dfdx::prelude::*;

use crate::kinds::dqn::learner::fused_model::{
    self, CONTINUATION, ENCODER, OBS, REWARD, TRANSITION,
};
use crate::kinds::dqn::learner::q::{explore, QLearner};
use crate::kinds::dqn::{Exploration, Latent, LearnedPlan, ModelKind, ObsHead, Rollouts};
use crate::runtime::replay::Sample;
use crate::seeds::Stream;
use crate::tensor::dist::{
    bernoulli_nll, categorical_kl, categorical_kl_to, categorical_straight_through, gaussian_kl,
    gaussian_kl_to, gaussian_nll_unit, gaussian_params, reparameterize, stop_gradient,
};
use crate::tensor::fused::{self, FlatNet};
use crate::tensor::losses::TdRows;
use crate::tensor::mlp::{Init, Mlp, NetId};
use crate::tensor::optim::MlpMoments;
use crate::tensor::{Dev, Precision, Tape, T2, T3};

/// A learned model of a batch of seeds with its optimizer state.
pub struct LearnedModel {
    pub plan: LearnedPlan,
    /// Reward mean, continuation logit, obs head; then, for latent models,
    /// encoder and transition prior (on the CPU, stale: `flat` holds the
    /// current values).
    nets: Vec<Mlp>,
    moments: Vec<MlpMoments>,
    /// On the CPU, the networks as flat per-seed parameters with their Adam
    /// moments, which the fused update trains ([`crate::kinds::dqn::learner::fused_model`]).
    flat: Option<Vec<FlatNet>>,
    /// The arithmetic of the networks' products on the CPU.
    precision: Precision,
}

/// What a checkpoint keeps of a model: per network, its tensors in
/// [`Mlp::save`]'s order and its moments in [`MlpMoments::save`]'s.
pub type ModelState = (Vec<Vec<Vec<f32>>>, Vec<Vec<Vec<f32>>>);

/// How a rollout draws next observations from Bernoulli logits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BitSampling {
    /// `P(bit) = sigmoid(logit)`.
    Sigmoid,
    /// The reference's `bernoulli(key, logit)`: `P(bit) = clip(logit, 0, 1)`
    /// (young2022 spec §8, quirk 2).
    LogitAsProbability,
}

impl LearnedModel {
    pub fn new(dev: &Dev, root: u64, seeds: &[u64], plan: &LearnedPlan) -> LearnedModel {
        let shapes = plan.net_dims();
        let nets: Vec<Mlp> = shapes
            .iter()
            .enumerate()
            .map(|(i, dims)| {
                let id = NetId(1 + i as u64);
                Mlp::new(dev, root, seeds, id, dims, plan.activation, Init::Haiku)
            })
            .collect();
        let mut model = LearnedModel {
            plan: plan.clone(),
            moments: nets.iter().map(MlpMoments::zeros).collect(),
            nets,
            flat: None,
            precision: Precision::Fp32,
        };
        if !cfg!(feature = "cuda") {
            model.flat = Some(model.flat_from_networks());
        }
        model
    }

    fn flat_from_networks(&self) -> Vec<FlatNet> {
        self.nets
            .iter()
            .zip(&self.moments)
            .map(|(net, m)| FlatNet::new(net, m, self.precision))
            .collect()
    }

    /// Multiplies at `precision` from now on (the fused CPU update).
    pub fn set_precision(&mut self, precision: Precision) {
        self.precision = precision;
        for flat in self.flat.iter_mut().flatten() {
            flat.set_precision(precision);
        }
    }

    /// Everything a checkpoint needs to continue this model exactly.
    pub fn state(&self) -> ModelState {
        match &self.flat {
            Some(flat) => flat.iter().map(|f| (f.tensors(), f.moments())).unzip(),
            None => self
                .nets
                .iter()
                .zip(&self.moments)
                .map(|(n, m)| (n.save(), m.save()))
                .unzip(),
        }
    }

    /// Continues from a [`LearnedModel::state`] of a model of the same shape.
    pub fn restore(&mut self, (nets, moments): &ModelState) -> Result<(), String> {
        if nets.len() != self.nets.len() || moments.len() != self.moments.len() {
            return Err("it holds another model".into());
        }
        for (net, saved) in self.nets.iter_mut().zip(nets) {
            net.load(saved)?;
        }
        for (m, saved) in self.moments.iter_mut().zip(moments) {
            m.load(saved)?;
        }
        if self.flat.is_some() {
            self.flat = Some(self.flat_from_networks());
        }
        Ok(())
    }

    /// Trains through dfdx's tape (always on a CUDA build).
    pub fn is_taped(&self) -> bool {
        self.flat.is_none()
    }

    /// Trains through dfdx's tape from now on (tests compare it with the
    /// fused update; `mbrl bench --taped`).
    pub fn use_taped(&mut self) {
        if let Some(flat) = self.flat.take() {
            for ((net, m), f) in self.nets.iter_mut().zip(&mut self.moments).zip(&flat) {
                net.load(&f.tensors()).expect("the same shapes");
                m.load(&f.moments()).expect("the same shapes");
            }
        }
    }

    /// Network `net` on `per_seed` rows per seed, no gradient.
    fn predict(&self, dev: &Dev, net: usize, x: &[f32], per_seed: usize) -> Vec<f32> {
        let activation = self.plan.activation;
        match &self.flat {
            Some(flat) => flat[net].predict(activation, x, per_seed, None),
            None => {
                let mlp = &self.nets[net];
                let d = mlp.weights[0].shape().1;
                let n_seeds = x.len() / (per_seed * d);
                mlp.forward(dev.tensor_from_vec(x.to_vec(), (n_seeds, per_seed, d)))
                    .as_vec()
            }
        }
    }

    /// The size of what Q sees: the observation, or a latent sample.
    pub fn feature_dim(&self) -> usize {
        match self.plan.kind {
            ModelKind::Factored { .. } => self.plan.obs_dim,
            ModelKind::Latent(l) => l.dim(),
        }
    }

    /// One model step on a replay minibatch of `n_seeds` x `B` transitions
    /// (`t` is the shared Adam counter); returns each seed's loss.
    pub fn update(
        &mut self,
        dev: &Dev,
        sample: &Sample,
        n_seeds: usize,
        t: u64,
        rngs: &mut [Stream],
    ) -> Vec<f32> {
        if let Some(flat) = &mut self.flat {
            return fused_update(&self.plan, flat, sample, n_seeds, t, rngs);
        }
        let (loss, per_seed) = match self.plan.kind {
            ModelKind::Factored { obs } => self.factored_loss(dev, sample, n_seeds, obs),
            ModelKind::Latent(latent) => self.latent_loss(dev, sample, n_seeds, latent, rngs),
        };
        let grads = loss.backward();
        for (net, moments) in self.nets.iter_mut().zip(&mut self.moments) {
            moments.step(&self.plan.adam, t, net, &grads);
        }
        per_seed
    }

    /// Simple-model loss per transition (spec §3.3): unit-Gaussian reward NLL,
    /// Bernoulli continuation NLL, next-obs NLL masked on terminal transitions.
    fn factored_loss(
        &self,
        dev: &Dev,
        sample: &Sample,
        n_seeds: usize,
        head: ObsHead,
    ) -> (Tensor<(), f32, Dev, Tape>, Vec<f32>) {
        let (d, a) = (self.plan.obs_dim, self.plan.n_actions);
        let b = sample.actions.len() / n_seeds;
        let x = dev
            .tensor_from_vec(
                with_one_hot(&sample.obs, d, &sample.actions, a),
                (n_seeds, b, d + a),
            )
            .traced(Gradients::leaky());
        let targets = Targets::new(dev, sample, n_seeds);
        let next = dev.tensor_from_vec(sample.next_obs.clone(), (n_seeds, b, d));
        let w = self.plan.loss;
        let reward = gaussian_nll_unit(
            self.nets[REWARD].forward(x.retaped::<Tape>()),
            &targets.rewards,
        );
        let cont = bernoulli_nll(
            self.nets[CONTINUATION].forward(x.retaped::<Tape>()),
            &targets.continuations,
        );
        let out = self.nets[OBS].forward(x);
        let obs = match head {
            ObsHead::Bernoulli => bernoulli_nll(out, &next),
            ObsHead::Gaussian => gaussian_nll_unit(out, &next),
        } * targets.alive.clone();
        per_seed_mean(reward * w.reward + cont * w.continuation + obs * w.obs)
    }

    /// Latent-model loss per transition (spec §3.4): reconstruct the current
    /// obs from a sample of the posterior (masked on terminal transitions),
    /// reward and continuation from `[phi, a]`, and KL balancing between the
    /// posterior of the next obs and the transition prior.
    fn latent_loss(
        &self,
        dev: &Dev,
        sample: &Sample,
        n_seeds: usize,
        latent: Latent,
        rngs: &mut [Stream],
    ) -> (Tensor<(), f32, Dev, Tape>, Vec<f32>) {
        let (d, a) = (self.plan.obs_dim, self.plan.n_actions);
        let b = sample.actions.len() / n_seeds;
        // Both observations through the encoder in one pass: rows `0..B` are
        // `s`, rows `B..2B` are `s'`, per seed.
        let mut both = Vec::with_capacity(2 * sample.obs.len());
        for s in 0..n_seeds {
            both.extend_from_slice(&sample.obs[s * b * d..(s + 1) * b * d]);
            both.extend_from_slice(&sample.next_obs[s * b * d..(s + 1) * b * d]);
        }
        let x = dev
            .tensor_from_vec(both, (n_seeds, 2 * b, d))
            .traced(Gradients::leaky());
        let encoded = self.nets[ENCODER].forward(x);
        let post = encoded.retaped::<Tape>().slice((.., 0..b, ..));
        let post_next = encoded.slice((.., b..2 * b, ..));
        let targets = Targets::new(dev, sample, n_seeds);
        let obs = dev.tensor_from_vec(sample.obs.clone(), (n_seeds, b, d));
        let one_hot = dev.tensor_from_vec(one_hot(&sample.actions, a), (n_seeds, b, a));
        let w = self.plan.loss;
        let entropy = w.entropy != 0.0;
        let (phi, kl_post, kl_prior, to_base) = match latent {
            Latent::Categorical { features: f, width } => {
                let rows = (n_seeds, b * f, width);
                let uniforms = draws(rngs, b * f, Stream::uniform);
                let post = post.reshape_like(&rows);
                // The posterior's KL to uniform classes (`entropy` weight).
                let to_base = entropy.then(|| {
                    categorical_kl(post.retaped::<Tape>(), &dev.zeros_like(&rows))
                        .reshape_like(&(n_seeds, b, f))
                        .sum::<(usize, usize), Axis<2>>()
                });
                let phi = categorical_straight_through(post, &uniforms).reshape_like(&(
                    n_seeds,
                    b,
                    f * width,
                ));
                let xa = (phi.retaped::<Tape>(), one_hot.clone()).concat_along(Axis::<2>);
                let prior = self.nets[TRANSITION].forward(xa).reshape_like(&rows);
                let post_next = post_next.reshape_like(&rows);
                let prior_fixed = stop_gradient(&prior);
                let post_fixed = stop_gradient(&post_next);
                let per_feature = (n_seeds, b, f);
                let kl_post = categorical_kl(post_next, &prior_fixed)
                    .reshape_like(&per_feature)
                    .sum::<(usize, usize), Axis<2>>();
                let kl_prior = categorical_kl_to(prior, &post_fixed)
                    .reshape_like(&per_feature)
                    .sum::<(usize, usize), Axis<2>>();
                (phi, kl_post, kl_prior, to_base)
            }
            Latent::Gaussian {
                features: f,
                min_std,
                sigmoid2,
            } => {
                let eps = dev.tensor_from_vec(draws(rngs, b * f, normal), (n_seeds, b, f));
                let (mean, std) = gaussian_params(post, min_std, sigmoid2);
                // The posterior's KL to unit Gaussians (`entropy` weight), from the
                // same mean and std tensors: dfdx's CPU slice backward writes its
                // input's gradient rather than adding to it, so slicing `post` a
                // second time would drop one branch's gradient.
                let to_base = entropy.then(|| {
                    let unit = (
                        dev.zeros_like(&(n_seeds, b, f)),
                        dev.ones_like(&(n_seeds, b, f)),
                    );
                    gaussian_kl(
                        mean.retaped::<Tape>(),
                        std.retaped::<Tape>(),
                        &unit.0,
                        &unit.1,
                    )
                });
                let phi = reparameterize(mean, std, &eps);
                let xa = (phi.retaped::<Tape>(), one_hot.clone()).concat_along(Axis::<2>);
                let (pm, ps) = gaussian_params(self.nets[TRANSITION].forward(xa), 0.0, sigmoid2);
                let (qm, qs) = gaussian_params(post_next, min_std, sigmoid2);
                let (pm_fixed, ps_fixed) = (stop_gradient(&pm), stop_gradient(&ps));
                let (qm_fixed, qs_fixed) = (stop_gradient(&qm), stop_gradient(&qs));
                let kl_post = gaussian_kl(qm, qs, &pm_fixed, &ps_fixed);
                let kl_prior = gaussian_kl_to(pm, ps, &qm_fixed, &qs_fixed);
                (phi, kl_post, kl_prior, to_base)
            }
        };
        let recon = bernoulli_nll(self.nets[OBS].forward(phi.retaped::<Tape>()), &obs)
            * targets.alive.clone();
        let xa = (phi, one_hot).concat_along(Axis::<2>);
        let reward = gaussian_nll_unit(
            self.nets[REWARD].forward(xa.retaped::<Tape>()),
            &targets.rewards,
        );
        let cont = bernoulli_nll(self.nets[CONTINUATION].forward(xa), &targets.continuations);
        let total = kl_post * w.kl_posterior
            + kl_prior * w.kl_prior
            + reward * w.reward
            + cont * w.continuation
            + recon * w.obs;
        per_seed_mean(match to_base {
            Some(kl) => total + kl * w.entropy,
            None => total,
        })
    }

    /// What Q sees for `obs` (`n_seeds` x `per_seed` rows): the obs itself,
    /// or a fresh sample of the latent posterior (acting and evaluation, spec §3.4).
    pub fn features(
        &self,
        dev: &Dev,
        obs: &[f32],
        per_seed: usize,
        rngs: &mut [Stream],
    ) -> Vec<f32> {
        match self.plan.kind {
            ModelKind::Factored { .. } => obs.to_vec(),
            ModelKind::Latent(latent) => {
                let out = self.predict(dev, ENCODER, obs, per_seed);
                sample_latent(latent, &out, per_seed, true, rngs)
            }
        }
    }

    /// Q's training batch: `starts` per seed rolled `length` steps through the
    /// model under the behaviour policy (spec §3.3-3.4). A step stores `(x, a, r, x',
    /// c, w)` with the mean reward `r`, continuation probability `c` (which
    /// multiplies gamma), and weight `w_k = w_{k-1} c_{k-1}` when weighting by
    /// continuation, else 1. A seed's rows are ordered step by step, and Q's
    /// passes that chose the actions are appended to `q_record`.
    #[allow(clippy::too_many_arguments)]
    pub fn rollouts(
        &self,
        dev: &Dev,
        q: &QLearner,
        start_features: Vec<f32>,
        r: Rollouts,
        exploration: Exploration,
        gamma: f64,
        bits: BitSampling,
        action_rngs: &mut [Stream],
        rngs: &mut [Stream],
        q_record: &mut fused::Recorded,
    ) -> TdRows {
        let (starts, length) = (r.starts, r.length);
        let a_n = self.plan.n_actions;
        let z = self.feature_dim();
        let n = start_features.len() / z;
        let n_seeds = n / starts;
        let per_seed = starts * length;
        let total = n_seeds * per_seed;
        let mut feats = vec![0f32; total * z];
        let mut next_feats = vec![0f32; total * z];
        let mut actions = vec![0usize; total];
        let mut rewards = vec![0f32; total];
        let mut discounts = vec![0f32; total];
        let mut weights = vec![0f32; total];
        let mut state = start_features;
        let mut weight = vec![1f32; n];
        let mut a = vec![0usize; n];
        for k in 0..length {
            let values = q.q_values_recorded(dev, &state, starts, Some(q_record));
            explore(&values, starts, exploration, action_rngs, &mut a);
            let x = with_one_hot(&state, z, &a, a_n);
            let r = self.predict(dev, REWARD, &x, starts);
            let mut c = self.predict(dev, CONTINUATION, &x, starts);
            c.iter_mut().for_each(|l| *l = 1.0 / (1.0 + (-*l).exp()));
            let next = match self.plan.kind {
                ModelKind::Factored {
                    obs: ObsHead::Bernoulli,
                } => {
                    let logits = self.predict(dev, OBS, &x, starts);
                    sample_bits(&logits, z * starts, bits, rngs)
                }
                ModelKind::Factored {
                    obs: ObsHead::Gaussian,
                } => self.predict(dev, OBS, &x, starts),
                ModelKind::Latent(latent) => {
                    let out = self.predict(dev, TRANSITION, &x, starts);
                    sample_latent(latent, &out, starts, false, rngs)
                }
            };
            for i in 0..n {
                // A seed's rows step by step, as Q's passes were recorded.
                let (s, j) = (i / starts, i % starts);
                let at = s * per_seed + k * starts + j;
                feats[at * z..(at + 1) * z].copy_from_slice(&state[i * z..(i + 1) * z]);
                next_feats[at * z..(at + 1) * z].copy_from_slice(&next[i * z..(i + 1) * z]);
                actions[at] = a[i];
                rewards[at] = r[i];
                discounts[at] = gamma as f32 * c[i];
                weights[at] = weight[i];
                if self.plan.continuation_weights {
                    weight[i] *= c[i];
                }
            }
            state = next;
        }
        TdRows {
            n_seeds,
            d: z,
            obs: feats,
            next_obs: next_feats,
            actions,
            rewards,
            discounts,
            weights,
        }
    }
}

/// [`LearnedModel::update`] on the CPU, seed by seed, each drawing its
/// latent samples from its own stream as the taped loss does.
fn fused_update(
    plan: &LearnedPlan,
    flat: &mut [FlatNet],
    sample: &Sample,
    n_seeds: usize,
    t: u64,
    rngs: &mut [Stream],
) -> Vec<f32> {
    let d = plan.obs_dim;
    let b = sample.actions.len() / n_seeds;
    let alive: Vec<f32> = sample.terminals.iter().map(|t| f32::from(!*t)).collect();
    let mut draws = Vec::new();
    (0..n_seeds)
        .map(|s| {
            draws.clear();
            if let ModelKind::Latent(latent) = plan.kind {
                let rng = &mut rngs[s];
                let f = match latent {
                    Latent::Categorical { features, .. } | Latent::Gaussian { features, .. } => {
                        features
                    }
                };
                let draw = match latent {
                    Latent::Categorical { .. } => Stream::uniform,
                    Latent::Gaussian { .. } => normal,
                };
                draws.extend((0..b * f).map(|_| draw(rng) as f32));
            }
            let rows = s * b..(s + 1) * b;
            let batch = fused_model::SeedBatch {
                obs: &sample.obs[rows.start * d..rows.end * d],
                next_obs: &sample.next_obs[rows.start * d..rows.end * d],
                actions: &sample.actions[rows.clone()],
                rewards: &sample.rewards[rows.clone()],
                alive: &alive[rows],
            };
            fused_model::train_step(plan, flat, s, t, &batch, &draws)
        })
        .collect()
}

/// The per-transition targets of the reward and continuation heads.
struct Targets {
    /// `[S, B, 1]`.
    rewards: T3,
    /// `[S, B, 1]`: 1 where the transition did not terminate.
    continuations: T3,
    /// `[S, B]`: the same, as the mask of the observation loss.
    alive: T2,
}

impl Targets {
    fn new(dev: &Dev, sample: &Sample, n_seeds: usize) -> Targets {
        let b = sample.actions.len() / n_seeds;
        let alive: Vec<f32> = sample.terminals.iter().map(|t| f32::from(!*t)).collect();
        Targets {
            rewards: dev.tensor_from_vec(sample.rewards.clone(), (n_seeds, b, 1)),
            continuations: dev.tensor_from_vec(alive.clone(), (n_seeds, b, 1)),
            alive: dev.tensor_from_vec(alive, (n_seeds, b)),
        }
    }
}

/// Mean over the batch axis per seed, summed over seeds, with the per-seed values.
fn per_seed_mean(per_sample: T2<Tape>) -> (Tensor<(), f32, Dev, Tape>, Vec<f32>) {
    let per_seed = per_sample.mean::<(usize,), Axis<1>>();
    let values = per_seed.retaped::<NoneTape>().as_vec();
    (per_seed.sum::<(), Axis<0>>(), values)
}

/// Rows of `[x, one_hot(a)]`.
fn with_one_hot(x: &[f32], d: usize, actions: &[usize], n_actions: usize) -> Vec<f32> {
    let mut out = Vec::with_capacity(actions.len() * (d + n_actions));
    fused_model::write_with_one_hot(x, d, actions, n_actions, &mut out);
    out
}

fn one_hot(actions: &[usize], n_actions: usize) -> Vec<f32> {
    actions
        .iter()
        .flat_map(|a| (0..n_actions).map(move |k| f32::from(k == *a)))
        .collect()
}

/// `per_seed` draws from each seed's stream, seed after seed.
fn draws(rngs: &mut [Stream], per_seed: usize, draw: fn(&mut Stream) -> f64) -> Vec<f32> {
    let mut out = Vec::with_capacity(rngs.len() * per_seed);
    for rng in rngs {
        out.extend((0..per_seed).map(|_| draw(rng) as f32));
    }
    out
}

fn normal(rng: &mut Stream) -> f64 {
    rng.normal()
}

/// A latent sample per row of distribution parameters (`per_seed` rows per
/// seed): a one-hot per categorical feature, or `mean + std * eps`. The
/// encoder's std includes `min_std`, the transition prior's does not.
fn sample_latent(
    latent: Latent,
    params: &[f32],
    per_seed: usize,
    encoder: bool,
    rngs: &mut [Stream],
) -> Vec<f32> {
    let p = latent.params_dim();
    let mut out = Vec::with_capacity(params.len() / p * latent.dim());
    // A group's exponentials, reused from group to group.
    let mut e = Vec::new();
    for (i, row) in params.chunks(p).enumerate() {
        let rng = &mut rngs[i / per_seed];
        match latent {
            Latent::Categorical { width, .. } => {
                for logits in row.chunks(width) {
                    let max = logits.iter().cloned().fold(f32::MIN, f32::max);
                    e.clear();
                    e.extend(logits.iter().map(|l| (l - max).exp()));
                    let total: f32 = e.iter().sum();
                    let u = rng.uniform() as f32;
                    let mut acc = 0.0;
                    let mut pick = width - 1;
                    for (k, ek) in e.iter().enumerate() {
                        acc += ek / total;
                        if u < acc {
                            pick = k;
                            break;
                        }
                    }
                    out.extend((0..width).map(|k| f32::from(k == pick)));
                }
            }
            Latent::Gaussian {
                features,
                min_std,
                sigmoid2,
            } => {
                for k in 0..features {
                    let pre = row[features + k];
                    let raw = match sigmoid2 {
                        true => 2.0 / (1.0 + (-pre / 2.0).exp()),
                        false => pre.max(0.0) + (-pre.abs()).exp().ln_1p(),
                    };
                    let std = raw.max(1e-6) + if encoder { min_std } else { 0.0 };
                    out.push(row[k] + std * rng.normal() as f32);
                }
            }
        }
    }
    out
}

/// One bit per logit, `per_seed` logits per seed.
fn sample_bits(
    logits: &[f32],
    per_seed: usize,
    bits: BitSampling,
    rngs: &mut [Stream],
) -> Vec<f32> {
    logits
        .iter()
        .enumerate()
        .map(|(i, l)| {
            let p = match bits {
                BitSampling::Sigmoid => 1.0 / (1.0 + (-l).exp()),
                BitSampling::LogitAsProbability => l.clamp(0.0, 1.0),
            };
            f32::from((rngs[i / per_seed].uniform() as f32) < p)
        })
        .collect()
}
