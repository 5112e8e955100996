//! Q and its seed-batched update (young2022 spec §3.1): TD loss on a batch
//! per seed, target network on `s'` (double DQN optional), reference Adam.
//! Each seed's parameters only ever see that seed's gradient. Also the
//! behaviour policies that act on Q's values.
//!
//! On the CPU the update runs fused ([`crate::tensor::fused`]) on flat
//! per-seed parameters, which are then the source of truth (acting and
//! evaluation read them too); the dfdx networks are brought up to date only
//! when something asks for them ([`QLearner::networks`], checkpoints, the
//! switch to the taped path). On the GPU the update runs taped on the dfdx
//! networks.

use dfdx::prelude::*;

use crate::kinds::dqn::Exploration;
use crate::seeds::Stream;
use crate::tensor::fused;
use crate::tensor::kernels::argmax;
use crate::tensor::losses::{td_loss, TdRows};
use crate::tensor::mlp::{Activation, Init, Mlp, NetId};
use crate::tensor::optim::{AdamConfig, MlpMoments};
use crate::tensor::{Dev, Precision};

pub struct QLearner {
    /// Q and its target network (on the CPU, mirrors of `flat`, up to date
    /// only after [`QLearner::networks`]).
    q: Mlp,
    target: Mlp,
    moments: MlpMoments,
    pub adam: AdamConfig,
    /// The Adam step counter (shared with a model optimizer in model-based agents).
    pub t: u64,
    /// The TD target takes the target's value at the online network's argmax on `s'`.
    pub double_dqn: bool,
    /// The arithmetic of Q's products on the CPU ([`QLearner::set_precision`]).
    precision: Precision,
    flat: Option<Flat>,
}

/// The CPU learner's state: Q's flat parameters and moments, and the target.
struct Flat {
    net: fused::FlatNet,
    target: Vec<f32>,
    /// Reused buffer for mirroring several seeds into one tensor.
    gather: Vec<f32>,
    /// Whether `q` and `target` lag behind the flat state.
    stale: bool,
    /// Each seed's target weights packed, from sync to sync (Q's own are
    /// kept in `net`).
    target_packs: Vec<fused::PackCache>,
}

/// What a checkpoint keeps of a learner, per tensor in [`Mlp::save`] order.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct QState {
    pub q: Vec<Vec<f32>>,
    pub target: Vec<Vec<f32>>,
    pub moments: Vec<Vec<f32>>,
    pub t: u64,
}

impl QLearner {
    pub fn new(
        dev: &Dev,
        root: u64,
        seeds: &[u64],
        dims: &[usize],
        activation: Activation,
        init: Init,
        adam: AdamConfig,
    ) -> QLearner {
        let q = Mlp::new(dev, root, seeds, NetId(0), dims, activation, init);
        let target = q.clone();
        let mut learner = QLearner {
            moments: MlpMoments::zeros(&q),
            q,
            target,
            adam,
            t: 0,
            double_dqn: false,
            precision: Precision::Fp32,
            flat: None,
        };
        if !cfg!(feature = "cuda") {
            learner.flat = Some(learner.flat_from_networks());
        }
        learner
    }

    /// Multiplies at `precision` from now on (the fused CPU update; the
    /// taped path is FP32 only, and a bf16 plan never runs on it).
    pub fn set_precision(&mut self, precision: Precision) {
        self.precision = precision;
        if let Some(flat) = self.flat.as_mut() {
            flat.net.set_precision(precision);
            flat.target_packs
                .iter_mut()
                .for_each(fused::PackCache::clear);
        }
    }

    /// The flat state read from the dfdx networks and moments.
    fn flat_from_networks(&self) -> Flat {
        let net = fused::FlatNet::new(&self.q, &self.moments, self.precision);
        Flat {
            target: fused::flatten(&net.layout, self.q.n_seeds(), &self.target.save()),
            target_packs: (0..net.n_seeds())
                .map(|_| fused::PackCache::default())
                .collect(),
            net,
            gather: Vec::new(),
            stale: false,
        }
    }

    /// Q and its target network as dfdx networks, up to date (on the CPU
    /// they are mirrored from the flat state first).
    pub fn networks(&mut self) -> (&Mlp, &Mlp) {
        if let Some(flat) = self.flat.as_mut().filter(|flat| flat.stale) {
            let n = self.q.n_seeds();
            mirror(
                &flat.net.layout,
                n,
                &flat.net.params,
                &mut self.q,
                &mut flat.gather,
            );
            mirror(
                &flat.net.layout,
                n,
                &flat.target,
                &mut self.target,
                &mut flat.gather,
            );
            flat.stale = false;
        }
        (&self.q, &self.target)
    }

    /// Q's values for `per_seed` rows of features per seed (no gradient).
    pub fn q_values(&self, dev: &Dev, x: &[f32], per_seed: usize) -> Vec<f32> {
        self.q_values_recorded(dev, x, per_seed, None)
    }

    /// [`QLearner::q_values`] that, on the CPU, also appends Q's layer
    /// outputs to `record`, for an update on these rows before Q changes
    /// ([`QLearner::update_recorded`]).
    pub fn q_values_recorded(
        &self,
        dev: &Dev,
        x: &[f32],
        per_seed: usize,
        record: Option<&mut fused::Recorded>,
    ) -> Vec<f32> {
        match &self.flat {
            Some(flat) => flat.net.predict(self.q.activation, x, per_seed, record),
            None => {
                let d = self.q.weights[0].shape().1;
                let n_seeds = x.len() / (per_seed * d);
                let x = dev.tensor_from_vec(x.to_vec(), (n_seeds, per_seed, d));
                self.q.forward(x).as_vec()
            }
        }
    }

    /// Everything a checkpoint needs to continue this learner exactly.
    pub fn state(&self) -> QState {
        let (q, target, moments) = match &self.flat {
            None => (self.q.save(), self.target.save(), self.moments.save()),
            Some(flat) => (
                flat.net.tensors(),
                fused::unflatten(&flat.net.layout, flat.net.n_seeds(), &flat.target),
                flat.net.moments(),
            ),
        };
        QState {
            q,
            target,
            moments,
            t: self.t,
        }
    }

    /// Continues from a [`QLearner::state`] of a learner of the same shape.
    pub fn restore(&mut self, state: &QState) -> Result<(), String> {
        self.q.load(&state.q)?;
        self.target.load(&state.target)?;
        self.moments.load(&state.moments)?;
        self.t = state.t;
        if self.flat.is_some() {
            self.flat = Some(self.flat_from_networks());
        }
        Ok(())
    }

    /// One update on `rows` (`S` seeds' transitions); returns each seed's loss.
    pub fn update(&mut self, rows: &TdRows) -> Vec<f32> {
        self.update_recorded(rows, None)
    }

    /// [`QLearner::update`] reusing Q's layer outputs on `rows.obs`,
    /// recorded by [`QLearner::q_values_recorded`] since Q last changed, in
    /// their row order (the GPU path ignores them).
    pub fn update_recorded(
        &mut self,
        rows: &TdRows,
        recorded: Option<&fused::Recorded>,
    ) -> Vec<f32> {
        let Some(flat) = self.flat.as_mut() else {
            return self.update_taped(rows);
        };
        let (n, b, d) = (rows.n_seeds, rows.per_seed(), rows.d);
        let mut losses = Vec::with_capacity(n);
        for s in 0..n {
            let at = s * b..(s + 1) * b;
            let inputs = fused::TdInputs {
                obs: &rows.obs[s * b * d..(s + 1) * b * d],
                next_obs: &rows.next_obs[s * b * d..(s + 1) * b * d],
                actions: &rows.actions[at.clone()],
                rewards: &rows.rewards[at.clone()],
                discounts: &rows.discounts[at.clone()],
                weights: &rows.weights[at],
                double_dqn: self.double_dqn,
            };
            let params = flat.net.seed(s);
            // Q's packs were made for acting on these parameters (or are
            // made now); the target's last from sync to sync.
            let layout = &flat.net.layout;
            let online = flat.net.packs(s);
            let target = flat.target_packs[s].get(layout, &flat.target[params.clone()]);
            let seed = fused::SeedState {
                params: &mut flat.net.params[params.clone()],
                target: &flat.target[params.clone()],
                packs: fused::Packed2 {
                    online: Some(&online),
                    target: Some(&target),
                },
                m: &mut flat.net.m[params.clone()],
                v: &mut flat.net.v[params],
            };
            losses.push(fused::train_step(
                &flat.net.layout,
                self.q.activation,
                &self.adam,
                self.t,
                seed,
                &inputs,
                recorded.map(|r| r.seed(s)),
            ));
        }
        flat.net.forget_packs();
        flat.stale = true;
        self.t += 1;
        losses
    }

    /// [`QLearner::update`] through dfdx's tape (the GPU path, and the CPU reference in tests).
    pub fn update_taped(&mut self, rows: &TdRows) -> Vec<f32> {
        let (obs, next_obs, batch) = rows.tensors(self.q.weights[0].device());
        let online_next = self.double_dqn.then(|| self.q.forward(next_obs.clone()));
        let q_next = self.target.forward(next_obs);
        let q = self.q.forward(obs.traced(Gradients::leaky()));
        let (loss, per_seed) = td_loss(q, q_next, online_next, &batch);
        let grads = loss.backward();
        self.moments.step(&self.adam, self.t, &mut self.q, &grads);
        self.t += 1;
        per_seed
    }

    pub fn sync_target(&mut self) {
        match &mut self.flat {
            Some(flat) => {
                flat.target.copy_from_slice(&flat.net.params);
                flat.target_packs
                    .iter_mut()
                    .for_each(fused::PackCache::clear);
                flat.stale = true;
            }
            None => self.target.copy_from(&self.q),
        }
    }

    /// Trains through dfdx's tape (always on a CUDA build).
    pub fn is_taped(&self) -> bool {
        self.flat.is_none()
    }

    /// Runs the taped update from now on (tests compare it with the fused
    /// one; `mbrl bench --taped`).
    pub fn use_taped(&mut self) {
        self.networks();
        if let Some(flat) = self.flat.take() {
            let moments = flat.net.moments();
            self.moments.load(&moments).expect("the same shapes");
        }
    }
}

/// Writes `[S, P]` flat parameters into `net` without allocating (one seed's
/// layer is a contiguous slice; several seeds are gathered into `buf`).
fn mirror(layout: &fused::Layout, n_seeds: usize, flat: &[f32], net: &mut Mlp, buf: &mut Vec<f32>) {
    let layers = layout.dims.len() - 1;
    let p = layout.n_params;
    let mut at = 0;
    for l in 0..layers {
        let (i, o) = (layout.dims[l], layout.dims[l + 1]);
        let (w, b) = (at..at + i * o, at + i * o..at + i * o + o);
        at += i * o + o;
        if n_seeds == 1 {
            net.weights[l].copy_from(&flat[w]);
            net.biases[l].copy_from(&flat[b]);
            continue;
        }
        buf.clear();
        (0..n_seeds).for_each(|s| buf.extend_from_slice(&flat[s * p + w.start..s * p + w.end]));
        net.weights[l].copy_from(buf);
        buf.clear();
        (0..n_seeds).for_each(|s| buf.extend_from_slice(&flat[s * p + b.start..s * p + b.end]));
        net.biases[l].copy_from(buf);
    }
}

/// `a ~ softmax(Q(s) / T)` per row of `values` (`per_seed` rows per seed),
/// each seed's draws from its own stream.
pub fn softmax_actions(
    values: &[f32],
    per_seed: usize,
    temperature: f64,
    rngs: &mut [Stream],
    out: &mut [usize],
) {
    let n = out.len();
    let k = values.len() / n;
    for (i, row) in values.chunks(k).enumerate() {
        let max = row.iter().cloned().fold(f32::MIN, f32::max) as f64;
        let weights: Vec<f64> = row
            .iter()
            .map(|v| ((*v as f64 - max) / temperature).exp())
            .collect();
        let total: f64 = weights.iter().sum();
        let u = rngs[i / per_seed].uniform() * total;
        let mut acc = 0.0;
        out[i] = k - 1;
        for (a, w) in weights.iter().enumerate() {
            acc += w;
            if u < acc {
                out[i] = a;
                break;
            }
        }
    }
}

/// The behaviour policy's actions from Q's values: `per_seed` rows per seed,
/// each seed's draws from its own stream.
pub fn explore(
    values: &[f32],
    per_seed: usize,
    exploration: Exploration,
    rngs: &mut [Stream],
    out: &mut [usize],
) {
    match exploration {
        Exploration::Softmax { temperature } => {
            softmax_actions(values, per_seed, temperature, rngs, out)
        }
        Exploration::EpsilonGreedy { epsilon } => {
            epsilon_greedy_actions(values, per_seed, epsilon, rngs, out)
        }
    }
}

/// A uniformly random action with probability `epsilon` (it may be the
/// greedy one), else `argmax Q` (the reference's `epsilon_greedy`).
pub fn epsilon_greedy_actions(
    values: &[f32],
    per_seed: usize,
    epsilon: f64,
    rngs: &mut [Stream],
    out: &mut [usize],
) {
    let k = values.len() / out.len();
    for (i, row) in values.chunks(k).enumerate() {
        let rng = &mut rngs[i / per_seed];
        out[i] = match rng.uniform() < epsilon {
            true => rng.below(k),
            false => argmax(row),
        };
    }
}
