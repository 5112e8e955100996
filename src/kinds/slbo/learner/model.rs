//! SLBO's dynamics model and value network on one seed (vaslbo spec §1.3,
//! §2.1, §2.3, §4): the shared running normalizers, the deterministic model
//! `s' = s + denorm_diff(f(norm(s), clip(a)))` clipped in normalized space,
//! its losses (the multi-step loss rolled through the model with its gradient
//! written out; MLE, the value-aware losses through the frozen V and any
//! loss written as an expression differentiated on the tape,
//! [`crate::autodiff`]), and V's minibatch fits.
//!
//! Invariants: the value-aware loss's gradient reaches the model through V's
//! input and never V's parameters; every draw comes from the caller's streams.

use crate::kinds::slbo::learner::buffer::Sequences;
use crate::kinds::slbo::learner::net::{Net, Pass};
use crate::kinds::slbo::{DynamicsPlan, Predicts, SlboAdam};
use crate::seeds::Stream;
use crate::tensor::slbo::Normalizer;

/// The running normalizers of states and of state deltas, shared by the
/// policy, V and the model and updated once per stage (spec §1.3).
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Norms {
    pub state: Normalizer,
    pub diff: Normalizer,
}

impl Norms {
    pub fn new(dim: usize) -> Norms {
        Norms {
            state: Normalizer::new(dim),
            diff: Normalizer::new(dim),
        }
    }

    /// Merges a stage's data: its states and deltas `s' - s`.
    pub fn update(&mut self, states: &[f32], next_states: &[f32]) {
        let deltas: Vec<f32> = next_states.iter().zip(states).map(|(n, s)| n - s).collect();
        self.state.update(states);
        self.diff.update(&deltas);
    }
}

/// `x` through `norm` when the network normalizes its input.
pub(super) fn input_of(x: &[f32], norm: &Normalizer, on: bool) -> Vec<f32> {
    match on {
        true => norm.normalize(x),
        false => x.to_vec(),
    }
}

/// `1 / max(sigma, 1e-8)` per dimension, or 1 without normalization.
pub(super) fn inv_scale(norm: &Normalizer, on: bool) -> Vec<f32> {
    norm.std
        .iter()
        .map(|s| if on { (1.0 / s.max(1e-8)) as f32 } else { 1.0 })
        .collect()
}

/// The value network `V(s) = net(norm(s))`.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Value {
    pub net: Net,
    pub normalize: bool,
}

impl Value {
    pub fn values(&self, states: &[f32], norms: &Norms) -> Vec<f32> {
        let d = self.net.input_dim();
        self.net.predict(
            &input_of(states, &norms.state, self.normalize),
            states.len() / d,
        )
    }

    /// `epochs` passes of shuffled minibatches of `batch` (the remainder of
    /// each epoch dropped) on `mean (V(s) - R)^2`; returns the loss on all
    /// rows after fitting.
    pub fn fit(
        &mut self,
        states: &[f32],
        returns: &[f32],
        norms: &Norms,
        epochs: usize,
        batch: usize,
        opt: &SlboAdam,
        rng: &mut Stream,
    ) -> f32 {
        let d = self.net.input_dim();
        let n = returns.len();
        let x = input_of(states, &norms.state, self.normalize);
        let mut order: Vec<usize> = (0..n).collect();
        let mut pass = Pass::default();
        let (mut xb, mut rb) = (Vec::new(), Vec::new());
        for _ in 0..epochs {
            shuffle(&mut order, rng);
            for chunk in order.chunks_exact(batch) {
                xb.clear();
                rb.clear();
                for &i in chunk {
                    xb.extend_from_slice(&x[i * d..(i + 1) * d]);
                    rb.push(returns[i]);
                }
                self.net.forward(&xb, batch, &mut pass);
                let scale = 2.0 / batch as f32;
                let mut d_out: Vec<f32> = pass
                    .out()
                    .iter()
                    .zip(&rb)
                    .map(|(v, r)| scale * (v - r))
                    .collect();
                let mut grads = vec![0f32; self.net.n_params()];
                self.net.backward(&xb, &pass, &mut d_out, &mut grads, None);
                self.net.adam(&mut grads, opt);
            }
        }
        let v = self.net.predict(&x, n);
        v.iter()
            .zip(returns)
            .map(|(v, r)| (v - r).powi(2))
            .sum::<f32>()
            / n.max(1) as f32
    }
}

/// Fisher-Yates with draws from `rng`.
pub fn shuffle(order: &mut [usize], rng: &mut Stream) {
    for i in (1..order.len()).rev() {
        order.swap(i, rng.below(i + 1));
    }
}

/// The deterministic dynamics model.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Dynamics {
    pub net: Net,
}

/// What a model step reports: the loss minimized, its raw term (the
/// value-aware loss before its coefficient), and the L2 regulariser.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct ModelLosses {
    pub loss: f32,
    pub term: f32,
    pub reg: f32,
}

/// One pass of the model on a batch, kept for the backward pass.
pub(super) struct Step {
    x: Vec<f32>,
    pass: Pass,
    /// The next state, and 1 where its normalized value lay inside the clip.
    pub(super) next: Vec<f32>,
    inside: Vec<f32>,
}

impl Dynamics {
    /// The network's input rows: `[norm(s), clip(a)]`.
    fn input(
        &self,
        plan: &DynamicsPlan,
        states: &[f32],
        actions: &[f32],
        norms: &Norms,
    ) -> Vec<f32> {
        let d = norms.state.mean.len();
        let a = self.net.input_dim() - d;
        let s = input_of(states, &norms.state, plan.net.normalize);
        let mut x = Vec::with_capacity(s.len() / d * (d + a));
        for (row, act) in s.chunks(d).zip(actions.chunks(a)) {
            x.extend_from_slice(row);
            x.extend(
                act.iter()
                    .map(|v| v.clamp(-plan.action_clip, plan.action_clip)),
            );
        }
        x
    }

    /// The next state from the network's output, clipped to `+-clip` in
    /// state-normalized units; with 1 in `inside` where it was not clipped.
    fn next_state(
        plan: &DynamicsPlan,
        states: &[f32],
        out: &[f32],
        norms: &Norms,
        inside: &mut Vec<f32>,
    ) -> Vec<f32> {
        let (sn, dn) = (&norms.state, &norms.diff);
        let on = plan.net.normalize;
        let d = sn.mean.len();
        inside.clear();
        let mut next = Vec::with_capacity(out.len());
        for (i, (o, s)) in out.iter().zip(states).enumerate() {
            let k = i % d;
            let (mu, sd) = match on {
                true => (sn.mean[k], sn.std[k]),
                false => (0.0, 1.0),
            };
            let raw = match plan.predicts {
                Predicts::Delta => match on {
                    true => *s as f64 + *o as f64 * dn.std[k] + dn.mean[k],
                    false => (*s + *o) as f64,
                },
                Predicts::NextState => *o as f64 * sd + mu,
            };
            let z = (raw - mu) / sd.max(1e-8);
            let clip = plan.clip as f64;
            inside.push(f32::from(u8::from(z.abs() <= clip)));
            next.push((z.clamp(-clip, clip) * sd + mu) as f32);
        }
        next
    }

    /// `f(s, a)` for rows of states and actions, no gradient.
    pub fn predict(
        &self,
        plan: &DynamicsPlan,
        states: &[f32],
        actions: &[f32],
        norms: &Norms,
    ) -> Vec<f32> {
        let d = norms.state.mean.len();
        let x = self.input(plan, states, actions, norms);
        let out = self.net.predict(&x, states.len() / d);
        Dynamics::next_state(plan, states, &out, norms, &mut Vec::new())
    }

    pub(super) fn step(
        &self,
        plan: &DynamicsPlan,
        states: &[f32],
        actions: &[f32],
        norms: &Norms,
    ) -> Step {
        let d = norms.state.mean.len();
        let x = self.input(plan, states, actions, norms);
        let mut pass = Pass::default();
        self.net.forward(&x, states.len() / d, &mut pass);
        let mut inside = Vec::new();
        let next = Dynamics::next_state(plan, states, pass.out(), norms, &mut inside);
        Step {
            x,
            pass,
            next,
            inside,
        }
    }

    /// Backpropagates `d_next` (the loss's gradient with respect to a step's
    /// next state) through the clip and the network; adds the parameters'
    /// gradient to `grads` and returns the gradient with respect to the
    /// step's input state.
    pub(super) fn backward(
        &self,
        plan: &DynamicsPlan,
        step: &Step,
        d_next: &[f32],
        norms: &Norms,
        grads: &mut [f32],
        want_input: bool,
    ) -> Option<Vec<f32>> {
        let (sn, dn) = (&norms.state, &norms.diff);
        let on = plan.net.normalize;
        let d = sn.mean.len();
        let d_raw: Vec<f32> = d_next
            .iter()
            .zip(&step.inside)
            .map(|(g, m)| g * m)
            .collect();
        let mut d_out: Vec<f32> = d_raw
            .iter()
            .enumerate()
            .map(|(i, g)| {
                let k = i % d;
                let scale = match (plan.predicts, on) {
                    (_, false) => 1.0,
                    (Predicts::Delta, true) => dn.std[k],
                    (Predicts::NextState, true) => sn.std[k],
                };
                g * scale as f32
            })
            .collect();
        let mut d_x = Vec::new();
        self.net.backward(
            &step.x,
            &step.pass,
            &mut d_out,
            grads,
            want_input.then_some(&mut d_x),
        );
        if !want_input {
            return None;
        }
        let inv = inv_scale(sn, on);
        let a = self.net.input_dim() - d;
        let mut d_state = vec![0f32; d_raw.len()];
        for (r, row) in d_x.chunks(d + a).enumerate() {
            for k in 0..d {
                let residual = match plan.predicts {
                    Predicts::Delta => d_raw[r * d + k],
                    Predicts::NextState => 0.0,
                };
                d_state[r * d + k] = row[k] * inv[k] + residual;
            }
        }
        Some(d_state)
    }

    /// The multi-step loss (spec §4.1): from the true first state, each step
    /// predicts the next and scores the diff-normalized error of its delta by
    /// its norm; the next step starts from the true state plus the masked
    /// prediction error. `mean_B sum_h loss_h / H`, gradient through all steps.
    pub(super) fn multi_step(
        &self,
        plan: &DynamicsPlan,
        batch: &Sequences,
        norms: &Norms,
        squared: bool,
        mean: bool,
        grads: &mut [f32],
    ) -> f32 {
        let d = norms.state.mean.len();
        let (b, horizon) = (batch.rows, batch.states.len());
        let inv_diff: Vec<f32> = norms
            .diff
            .std
            .iter()
            .map(|s| (1.0 / s.max(1e-6)) as f32)
            .collect();
        let reduce = if mean { d as f32 } else { 1.0 };
        let mut steps = Vec::with_capacity(horizon);
        let mut d_diffs = Vec::with_capacity(horizon);
        let mut total = 0.0f64;
        let mut cur = batch.states[0].clone();
        for h in 0..horizon {
            let step = self.step(plan, &cur, &batch.actions[h], norms);
            let mut d_diff = vec![0f32; b * d];
            for r in 0..b {
                let row = r * d..(r + 1) * d;
                let w: Vec<f32> = row
                    .clone()
                    .map(|i| {
                        let k = i % d;
                        let diff = (step.next[i] - cur[i])
                            - (batch.next_states[h][i] - batch.states[h][i]);
                        diff * inv_diff[k]
                    })
                    .collect();
                let sq = w.iter().map(|x| x * x).sum::<f32>() / reduce;
                let value = if squared { sq } else { sq.sqrt() };
                total += value as f64;
                // d value / d w_k, then d w_k / d diff_k = inv_diff_k; scaled by 1 / (B H).
                let scale = 1.0 / (b * horizon) as f32;
                for (k, wk) in w.iter().enumerate() {
                    let dv = match squared {
                        true => 2.0 * wk / reduce,
                        false => wk / (reduce * value.max(1e-12)),
                    };
                    d_diff[r * d + k] = scale * dv * inv_diff[k];
                }
            }
            if h + 1 < horizon {
                let (s1, mask) = (&batch.states[h + 1], &batch.masks[h]);
                cur = s1
                    .iter()
                    .zip(&step.next)
                    .enumerate()
                    .map(|(i, (s, n))| s + mask[i / d] * (n - s))
                    .collect();
            }
            steps.push(step);
            d_diffs.push(d_diff);
        }
        // Backward through the steps: d cur_{h+1} reaches step h's prediction
        // through the mask; each prediction's error reaches its input state.
        let mut d_cur_next: Option<Vec<f32>> = None;
        for h in (0..horizon).rev() {
            let mut d_next = d_diffs[h].clone();
            if let Some(dc) = &d_cur_next {
                let mask = &batch.masks[h];
                for (i, g) in d_next.iter_mut().enumerate() {
                    *g += mask[i / d] * dc[i];
                }
            }
            let d_input = self.backward(plan, &steps[h], &d_next, norms, grads, h > 0);
            d_cur_next = d_input.map(|mut dc| {
                dc.iter_mut().zip(&d_diffs[h]).for_each(|(g, dd)| *g -= dd);
                dc
            });
        }
        (total / b as f64) as f32 / horizon as f32
    }
}
