//! The DQN learner of Young et al. for a group of seeds (young2022 spec
//! §2-3). Its unit of work is one env step: act with the behaviour policy
//! (softmax or epsilon-greedy), store the transition, and from
//! `learning_starts` sync the target network on schedule and run
//! `updates_per_step` updates. Q trains on replay (ER, §3.1), on rollouts of
//! the true env from stored states (perfect model, §3.2), or on rollouts of
//! a learned model fitted to replay (simple and latent models, §3.3-3.4).
//! It evaluates greedily (a latent agent at a fresh sample of its encoder).
//!
//! Invariants: every draw comes from the group's per-seed streams; seeds
//! never exchange data.

mod data;
pub mod fused_model;
pub mod model;
pub mod q;
#[cfg(test)]
pub(crate) mod tests;

use crate::compile::Plan;
use crate::envs::{Actions, Batch, EnvConfig, EnvSnapshot, Layout};
use crate::kinds::dqn::{DqnPlan, Metric, ModelPlan};
use crate::runtime::driver::{self, Agent, Learner, Losses};
use crate::runtime::evaluate::{ActionBuf, Policy};
use crate::runtime::phases::{self, Phase};
use crate::runtime::replay::{Replay, Sample};
use crate::seeds::{Purpose, Stream};
use crate::tensor::fused;
use crate::tensor::kernels::argmax;
use crate::tensor::losses::TdRows;
use crate::tensor::Dev;

use data::{Data, DataState, RolloutSources, StateBuffer};
use model::{BitSampling, LearnedModel};
use q::{explore, QLearner, QState};

/// A compiled DQN cell, as the driver builds it.
pub struct Dqn<'p> {
    pub plan: &'p Plan,
    pub dqn: &'p DqnPlan,
}

impl<'p> Agent for Dqn<'p> {
    type Learner = DqnLearner<'p>;

    fn build(&self, seeds: &[u64], dev: &Dev) -> DqnLearner<'p> {
        DqnLearner::new(self.plan, self.dqn, seeds, dev)
    }
}

/// The state of a group of seeds: env instances, Q, its data source and streams.
pub struct DqnLearner<'p> {
    plan: &'p DqnPlan,
    root_seed: u64,
    dev: Dev,
    seeds: Vec<u64>,
    env: Batch,
    q: QLearner,
    data: Data,
    action_rngs: Vec<Stream>,
    replay_rngs: Vec<Stream>,
    obs: Vec<f32>,
    post: Vec<f32>,
    actions: Vec<usize>,
    rewards: Vec<f32>,
    terminals: Vec<bool>,
    sample: Sample,
    /// Q's training batch, its buffers reused from update to update.
    rows: TdRows,
    /// Q's layer outputs during this update's rollouts, which its update reuses.
    q_record: fused::Recorded,
}

/// Everything of a [`DqnLearner`] that a resumed run needs to continue exactly.
#[derive(serde::Serialize, serde::Deserialize)]
pub struct DqnState {
    env: EnvSnapshot,
    obs: Vec<f32>,
    action_rngs: Vec<Stream>,
    replay_rngs: Vec<Stream>,
    q: QState,
    data: DataState,
}

impl<'p> DqnLearner<'p> {
    fn new(run: &Plan, plan: &'p DqnPlan, seeds: &[u64], dev: &Dev) -> DqnLearner<'p> {
        let n = seeds.len();
        let layout = |purpose, envs_per_seed| Layout {
            envs_per_seed,
            ..driver::layout(run, seeds, purpose, 0)
        };
        let env = batch(run.env, &layout(Purpose::Env, 1));
        let d = plan.obs_dim;
        let mut q = QLearner::new(
            dev,
            run.root_seed,
            seeds,
            &plan.q_dims,
            plan.activation,
            plan.init,
            plan.adam,
        );
        q.double_dqn = plan.double_dqn;
        q.set_precision(plan.precision);
        let stream = |purpose| {
            seeds
                .iter()
                .map(|s| Stream::new(run.root_seed, *s, purpose, 0))
                .collect()
        };
        let mut obs = vec![0f32; n * d];
        env.observe_all(&mut obs);
        let replays = || (0..n).map(|_| Replay::new(plan.buffer, d)).collect();
        let data = match (&plan.model, plan.rollouts) {
            (Some(ModelPlan::TrueEnv), Some(r)) => Data::Rollouts {
                states: (0..n).map(|_| StateBuffer::new(plan.buffer)).collect(),
                env: batch(run.env, &layout(Purpose::Rollout, r.starts)),
                action_rngs: stream(Purpose::RolloutAction),
            },
            (Some(ModelPlan::Learned(model)), Some(_)) => Data::Learned {
                replays: replays(),
                model: Box::new({
                    let mut learned = LearnedModel::new(dev, run.root_seed, seeds, model);
                    learned.set_precision(plan.precision);
                    learned
                }),
                action_rngs: stream(Purpose::RolloutAction),
                model_rngs: stream(Purpose::Model),
                rollout_rngs: stream(Purpose::Rollout),
            },
            _ => Data::Replay(replays()),
        };
        let mut learner = DqnLearner {
            plan,
            root_seed: run.root_seed,
            dev: dev.clone(),
            seeds: seeds.to_vec(),
            env,
            q,
            data,
            action_rngs: stream(Purpose::Action),
            replay_rngs: stream(Purpose::Replay),
            obs,
            post: vec![0f32; n * d],
            actions: vec![0; n],
            rewards: vec![0.0; n],
            terminals: vec![false; n],
            sample: Sample::default(),
            rows: TdRows::default(),
            q_record: fused::Recorded::default(),
        };
        if plan.taped {
            learner.use_taped();
        }
        learner
    }

    /// Trains Q and the learned model through dfdx's tape from now on, as a
    /// CUDA build always does ([`DqnPlan::taped`](crate::kinds::dqn::DqnPlan::taped)).
    pub fn use_taped(&mut self) {
        self.q.use_taped();
        if let Data::Learned { model, .. } = &mut self.data {
            model.use_taped();
        }
    }

    /// Every seed acts once and its transition is stored; a terminal step
    /// resets the env (and, unless the reference's quirk 1 is on, the next
    /// action is chosen from the new episode's first observation).
    fn act(&mut self) {
        let d = self.plan.obs_dim;
        if let Data::Rollouts { states, .. } = &mut self.data {
            // The perfect model stores the env state at the top of each step.
            for (i, buffer) in states.iter_mut().enumerate() {
                buffer.add(self.env.state(i));
            }
        }
        let features = match &self.data {
            Data::Learned { model, .. } => {
                model.features(&self.dev, &self.obs, 1, &mut self.action_rngs)
            }
            _ => self.obs.clone(),
        };
        let values = self.q.q_values(&self.dev, &features, 1);
        explore(
            &values,
            1,
            self.plan.exploration,
            &mut self.action_rngs,
            &mut self.actions,
        );
        self.env.step(
            Actions::Discrete(&self.actions),
            &mut self.rewards,
            &mut self.terminals,
        );
        self.env.observe_all(&mut self.post);
        for i in 0..self.seeds.len() {
            let row = i * d..(i + 1) * d;
            if let Some(replays) = self.data.replays() {
                replays[i].add(
                    &self.obs[row.clone()],
                    self.actions[i],
                    self.rewards[i],
                    &self.post[row.clone()],
                    self.terminals[i],
                );
            }
            if self.terminals[i] {
                self.env.reset(i);
                if !self.plan.compat.stale_obs_after_reset {
                    self.env.observe(i, &mut self.post[row]);
                }
            }
        }
        std::mem::swap(&mut self.obs, &mut self.post);
    }

    /// One update: Q's batch, then Q's step.
    fn update(&mut self, losses: &mut Losses) {
        self.q_record.clear();
        self.q_batch(losses);
        let recorded = match self.data {
            Data::Replay(_) => None,
            Data::Rollouts { .. } | Data::Learned { .. } => Some(&self.q_record),
        };
        let q_losses = phases::time(Phase::QUpdate, || {
            self.q.update_recorded(&self.rows, recorded)
        });
        losses.add(Metric::QLoss.index(), &q_losses);
    }

    /// Q's training batch from its data source: a replay sample, true-env
    /// rollouts, or (after the learned model's step on a replay sample)
    /// rollouts in the model. Q's passes that chose rollout actions go to
    /// `q_record`. The batch goes to `rows`.
    fn q_batch(&mut self, losses: &mut Losses) {
        let plan = self.plan;
        let dev = &self.dev;
        match &mut self.data {
            Data::Replay(replays) => phases::time(Phase::Data, || {
                let rngs = &mut self.replay_rngs;
                data::replay_batch(replays, rngs, &mut self.sample, plan, &mut self.rows)
            }),
            Data::Rollouts {
                states,
                env,
                action_rngs,
            } => {
                let sources = RolloutSources {
                    states,
                    env,
                    action_rngs,
                    replay_rngs: &mut self.replay_rngs,
                };
                self.rows = phases::time(Phase::Data, || {
                    data::rollout_batch(&self.q, dev, sources, plan, &mut self.q_record)
                })
            }
            Data::Learned {
                replays,
                model,
                action_rngs,
                model_rngs,
                rollout_rngs,
            } => {
                let r = plan.rollouts.expect("learned models roll out");
                self.sample.clear();
                for (replay, rng) in replays.iter().zip(self.replay_rngs.iter_mut()) {
                    replay.sample_into(plan.batch, rng, &mut self.sample);
                }
                let n = self.seeds.len();
                let model_losses = phases::time(Phase::ModelUpdate, || {
                    model.update(dev, &self.sample, n, self.q.t, model_rngs)
                });
                losses.add(Metric::ModelLoss.index(), &model_losses);
                self.rows = phases::time(Phase::Data, || {
                    let d = plan.obs_dim;
                    let starts = data::start_rows(&self.sample.obs, d, plan.batch, r.starts);
                    let starts = model.features(dev, &starts, r.starts, rollout_rngs);
                    let bits = match plan.compat.logits_as_probabilities {
                        true => BitSampling::LogitAsProbability,
                        false => BitSampling::Sigmoid,
                    };
                    model.rollouts(
                        dev,
                        &self.q,
                        starts,
                        r,
                        plan.exploration,
                        plan.gamma,
                        bits,
                        action_rngs,
                        rollout_rngs,
                        &mut self.q_record,
                    )
                })
            }
        }
    }
}

/// The env batch of a layout the driver has already built once.
fn batch(config: EnvConfig, layout: &Layout) -> Batch {
    Batch::new(config, layout).expect("the env was built before the workers started")
}

impl Learner for DqnLearner<'_> {
    type State = DqnState;

    /// One env step of every seed, then from `learning_starts` the target
    /// sync (every `target_update_every` steps, or every step without a
    /// target network) and the step's updates.
    fn advance(&mut self, t: u64, losses: &mut Losses) {
        phases::time(Phase::Acting, || self.act());
        if t < self.plan.learning_starts {
            return;
        }
        if t.is_multiple_of(self.plan.target_sync_every()) {
            self.q.sync_target();
        }
        for _ in 0..self.plan.updates_per_step {
            self.update(losses);
        }
    }

    fn policy<'a>(&'a self, layout: &Layout) -> Box<dyn Policy + 'a> {
        let rngs = layout
            .seeds
            .iter()
            .map(|s| Stream::new(self.root_seed, *s, Purpose::EvalAction, layout.round))
            .collect();
        Box::new(Greedy {
            q: &self.q,
            model: self.data.model(),
            rngs,
            dev: self.dev.clone(),
            envs: layout.envs_per_seed,
        })
    }

    fn save(&mut self) -> DqnState {
        DqnState {
            env: self.env.snapshot(),
            obs: self.obs.clone(),
            action_rngs: self.action_rngs.clone(),
            replay_rngs: self.replay_rngs.clone(),
            q: self.q.state(),
            data: self.data.save(),
        }
    }

    fn restore(&mut self, state: DqnState) -> Result<(), String> {
        if state.obs.len() != self.obs.len() {
            return Err("it holds another env".into());
        }
        self.env.restore(&state.env);
        self.obs = state.obs;
        self.action_rngs = state.action_rngs;
        self.replay_rngs = state.replay_rngs;
        self.q.restore(&state.q)?;
        self.data.restore(state.data)
    }
}

/// The greedy policy of a group's Q networks over its eval envs; a latent
/// agent takes the argmax at a fresh sample of its encoder (spec §3.4).
struct Greedy<'q> {
    q: &'q QLearner,
    model: Option<&'q LearnedModel>,
    rngs: Vec<Stream>,
    dev: Dev,
    envs: usize,
}

impl Policy for Greedy<'_> {
    fn act(&mut self, obs: &[f32], actions: &mut ActionBuf) {
        let ActionBuf::Discrete(out, k) = actions else {
            unreachable!("DQN acts in discrete spaces")
        };
        let features = match self.model {
            Some(model) => model.features(&self.dev, obs, self.envs, &mut self.rngs),
            None => obs.to_vec(),
        };
        let values = self.q.q_values(&self.dev, &features, self.envs);
        for (a, row) in out.iter_mut().zip(values.chunks(*k)) {
            *a = argmax(row);
        }
    }
}
