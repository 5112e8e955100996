//! The DQN agent loop of Young et al., run for a batch of seeds (young2022
//! spec §2-3): softmax exploration, target syncs, `updates_per_step` updates
//! per env step from `learning_starts`, and the greedy evaluation protocol
//! every `eval_every` steps. Q trains on replay (ER, §3.1), on rollouts of the
//! true env from stored states (perfect model, §3.2), or on rollouts of a
//! learned model fitted to replay (simple and latent models, §3.3-3.4).
//!
//! Each worker runs the whole loop for its shard of seeds; seeds never
//! exchange data, so every seed's run is the same in any shard layout.

use std::sync::atomic::{AtomicBool, Ordering};

use crate::compile::{DqnPlan, ModelPlan};
use crate::envs::{Actions, Batch, EnvConfig, EnvSnapshot, EnvState, Layout, Unavailable};
use crate::runtime::dqn::{non_finite, softmax_actions, DqnLearner, LearnerState, NonFinite};
use crate::runtime::evaluate::{self, ActionBuf, Policy, Protocol};
use crate::runtime::model::{BitSampling, LearnedModel};
use crate::runtime::replay::{Replay, Sample};
use crate::seeds::{Purpose, Stream};
use crate::runtime::shard;
use crate::tensor::fused;
use crate::tensor::losses::TdBatch;
use crate::tensor::{device, Dev, DeviceError, T3};

/// The reference's quirks that change results (young2022 spec §8).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Compat {
    /// After a terminal step, act from the old episode's last observation (quirk 1).
    pub stale_obs_after_reset: bool,
    /// The simple model samples next-obs bits with `P = clip(logit, 0, 1)` (quirk 2).
    pub logits_as_probabilities: bool,
}

impl Compat {
    /// The corrected behaviour (`compat` absent), or the reference's (`young2022`).
    pub fn named(name: &str) -> Compat {
        let young = name == "young2022";
        Compat {
            stale_obs_after_reset: young,
            logits_as_probabilities: young,
        }
    }
}

/// One measurement of one seed.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct EvalPoint {
    pub seed: u64,
    /// Env steps taken when it was measured.
    pub step: u64,
    pub metric: Metric,
    pub value: f64,
}

/// What a point measures.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Metric {
    /// The evaluation protocol's score.
    Eval,
    /// Q's mean TD loss over the updates since the last evaluation.
    QLoss,
    /// The learned model's mean loss over the updates since the last evaluation.
    ModelLoss,
}

impl Metric {
    pub fn name(self) -> &'static str {
        match self {
            Metric::Eval => "eval",
            Metric::QLoss => "q_loss",
            Metric::ModelLoss => "model_loss",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("{0}")]
    Device(#[from] DeviceError),
    #[error("{}", .0 .0)]
    Env(Unavailable),
    #[error("checkpoint `{key}`: {why}")]
    Checkpoint { key: String, why: String },
}

/// Where a run keeps its checkpoints: one blob per group of seeds, written
/// atomically by the implementation.
pub trait Checkpoints: Sync {
    fn load(&self, key: &str) -> std::io::Result<Option<Vec<u8>>>;
    fn save(&self, key: &str, bytes: &[u8]) -> std::io::Result<()>;
}

/// How a run is persisted and stopped.
#[derive(Clone, Copy)]
pub struct Session<'a> {
    pub checkpoints: Option<&'a dyn Checkpoints>,
    /// Set (by a Ctrl-C handler) to checkpoint every seed at its next
    /// evaluation and return.
    pub stop: &'a AtomicBool,
    /// Behave as if `stop` were set once a seed that started (or resumed)
    /// before this env step reaches it.
    pub stop_at: Option<u64>,
}

/// What a run produced.
#[derive(Debug, Default)]
pub struct Outcome {
    /// Evaluations, ordered by step then seed (including those restored from checkpoints).
    pub points: Vec<EvalPoint>,
    pub failures: Vec<NonFinite>,
    /// Stopped early; every unfinished seed has a checkpoint to resume from.
    pub interrupted: bool,
}

/// Runs every seed of `plan` over `threads` workers, resuming from the
/// session's checkpoints where there are any; `progress` hears each worker's
/// points: those restored from checkpoints (`true`) and new ones (`false`).
pub fn run(
    plan: &DqnPlan,
    env: EnvConfig,
    protocol: Protocol,
    compat: Compat,
    threads: usize,
    session: Session,
    progress: &(dyn Fn(&[EvalPoint], bool) + Sync),
) -> Result<Outcome, RunError> {
    device()?;
    Batch::new(env, &layout(plan, &plan.seeds[..1], Purpose::Env)).map_err(RunError::Env)?;
    let results = shard::run(&plan.seeds, threads, |seeds| {
        let worker = Worker {
            plan,
            env,
            protocol,
            compat,
            session,
        };
        worker.run(seeds, progress)
    });
    let mut outcome = Outcome::default();
    for result in results {
        let part = result?;
        outcome.points.extend(part.points);
        outcome.failures.extend(part.failures);
        outcome.interrupted |= part.interrupted;
    }
    outcome
        .points
        .sort_by_key(|p| (p.step, p.seed, p.metric as u8));
    Ok(outcome)
}

fn layout(plan: &DqnPlan, seeds: &[u64], purpose: Purpose) -> Layout {
    Layout {
        root_seed: plan.root_seed,
        seeds: seeds.to_vec(),
        envs_per_seed: 1,
        purpose,
        round: 0,
    }
}

/// Seeds trained together as one batch on a worker: on the CPU one seed each
/// (a `[1, B, d]` update keeps its activations in cache, measured 25% faster
/// than `[15, B, d]`); on the GPU a worker's whole shard.
fn micro_batch(shard: usize) -> usize {
    match cfg!(feature = "cuda") {
        true => shard.max(1),
        false => 1,
    }
}

/// A group's checkpoint: finished (only its evaluations), or its whole state.
#[derive(serde::Serialize, serde::Deserialize)]
enum Checkpoint {
    Done {
        points: Vec<EvalPoint>,
        failures: Vec<NonFinite>,
    },
    Running(Box<GroupState>),
}

/// The checkpoint key of a group of seeds.
fn group_key(seeds: &[u64]) -> String {
    match seeds {
        [one] => format!("seed-{one}"),
        _ => format!("seeds-{}-{}", seeds[0], seeds[seeds.len() - 1]),
    }
}

/// One worker's share of a run.
struct Worker<'a> {
    plan: &'a DqnPlan,
    env: EnvConfig,
    protocol: Protocol,
    compat: Compat,
    session: Session<'a>,
}

impl Worker<'_> {
    fn run(
        &self,
        seeds: &[u64],
        progress: &(dyn Fn(&[EvalPoint], bool) + Sync),
    ) -> Result<Outcome, RunError> {
        let plan = self.plan;
        let dev = device().expect("the device opened before the workers started");
        let mut outcome = Outcome::default();
        let mut groups = Vec::new();
        for chunk in seeds.chunks(micro_batch(seeds.len())) {
            let key = group_key(chunk);
            let mut group = match self.load(&key)? {
                Some(Checkpoint::Done { points, failures }) => {
                    progress(&points, true);
                    outcome.points.extend(points);
                    outcome.failures.extend(failures);
                    continue;
                }
                Some(Checkpoint::Running(state)) => {
                    let mut group = Group::new(plan, self.env, chunk, &dev);
                    group.restore(*state).map_err(|why| RunError::Checkpoint {
                        key: key.clone(),
                        why,
                    })?;
                    group
                }
                None => Group::new(plan, self.env, chunk, &dev),
            };
            group.key = key;
            groups.push(group);
        }
        while let Some(t) = groups.iter().filter(|g| !g.finished).map(|g| g.t).min() {
            for group in groups.iter_mut().filter(|g| !g.finished && g.t == t) {
                let failures = group.step(t, plan, self.compat, &dev);
                group.failures.extend(failures);
                group.t += 1;
                if group.t % plan.eval_every != 0 && group.t != plan.steps {
                    continue;
                }
                let values = evaluate_greedy(group, plan, self.env, self.protocol, group.round);
                group.round += 1;
                let new = group.points_at_eval(values);
                progress(&new, false);
                group.points.extend(new);
                let stop = self.session.stop.load(Ordering::Relaxed)
                    || self
                        .session
                        .stop_at
                        .is_some_and(|s| group.t >= s && group.resumed_at < s);
                if group.t >= plan.steps {
                    group.finished = true;
                    self.save(group, true)?;
                } else if stop {
                    group.finished = true;
                    outcome.interrupted = true;
                    self.save(group, false)?;
                } else if group.t - group.last_save >= plan.save_every {
                    group.last_save = group.t;
                    self.save(group, false)?;
                }
            }
        }
        for group in groups {
            outcome.points.extend(group.points);
            outcome.failures.extend(group.failures);
        }
        Ok(outcome)
    }

    fn load(&self, key: &str) -> Result<Option<Checkpoint>, RunError> {
        let Some(store) = self.session.checkpoints else {
            return Ok(None);
        };
        let err = |why: String| RunError::Checkpoint {
            key: key.to_string(),
            why,
        };
        match store.load(key).map_err(|e| err(e.to_string()))? {
            None => Ok(None),
            Some(bytes) => bincode::deserialize(&bytes)
                .map(Some)
                .map_err(|e| err(format!("unreadable ({e})"))),
        }
    }

    fn save(&self, group: &mut Group, done: bool) -> Result<(), RunError> {
        let Some(store) = self.session.checkpoints else {
            return Ok(());
        };
        let checkpoint = match done {
            true => Checkpoint::Done {
                points: group.points.clone(),
                failures: group.failures.clone(),
            },
            false => Checkpoint::Running(Box::new(group.save())),
        };
        let err = |why: String| RunError::Checkpoint {
            key: group.key.clone(),
            why,
        };
        let bytes = bincode::serialize(&checkpoint).map_err(|e| err(e.to_string()))?;
        store
            .save(&group.key, &bytes)
            .map_err(|e| err(e.to_string()))
    }
}

/// The state of a batch of seeds: env instances, Q learner, replay and streams.
struct Group {
    seeds: Vec<u64>,
    env: Batch,
    learner: DqnLearner,
    data: Data,
    action_rngs: Vec<Stream>,
    replay_rngs: Vec<Stream>,
    obs: Vec<f32>,
    post: Vec<f32>,
    actions: Vec<usize>,
    rewards: Vec<f32>,
    terminals: Vec<bool>,
    sample: Sample,
    /// Q's layer outputs during this update's rollouts, which its update reuses.
    q_record: fused::Recorded,
    /// The checkpoint key.
    key: String,
    /// The next env step, the next evaluation round, the step of the last checkpoint.
    t: u64,
    round: u64,
    last_save: u64,
    /// The step this process started the group at.
    resumed_at: u64,
    /// Done, or stopped at a checkpoint.
    finished: bool,
    points: Vec<EvalPoint>,
    failures: Vec<NonFinite>,
    /// Per seed: sums of Q and model losses since the last evaluation, and their count.
    q_loss: Vec<f64>,
    model_loss: Vec<f64>,
    losses_seen: u64,
}

/// Everything of a [`Group`] that a resumed run needs to continue exactly.
#[derive(serde::Serialize, serde::Deserialize)]
struct GroupState {
    seeds: Vec<u64>,
    t: u64,
    round: u64,
    points: Vec<EvalPoint>,
    failures: Vec<NonFinite>,
    env: EnvSnapshot,
    obs: Vec<f32>,
    action_rngs: Vec<Stream>,
    replay_rngs: Vec<Stream>,
    learner: LearnerState,
    data: DataState,
}

#[derive(serde::Serialize, serde::Deserialize)]
enum DataState {
    Replay(Vec<Replay>),
    Rollouts {
        states: Vec<StateBuffer>,
        env: EnvSnapshot,
        action_rngs: Vec<Stream>,
    },
    Learned {
        replays: Vec<Replay>,
        nets: Vec<Vec<Vec<f32>>>,
        moments: Vec<Vec<Vec<f32>>>,
        action_rngs: Vec<Stream>,
        model_rngs: Vec<Stream>,
        rollout_rngs: Vec<Stream>,
    },
}

impl Group {
    /// The evaluation `values` and the mean losses since the last evaluation,
    /// as points at the current step; resets the loss sums.
    fn points_at_eval(&mut self, values: Vec<f64>) -> Vec<EvalPoint> {
        let point = |seed: u64, metric, value| EvalPoint {
            seed,
            step: self.t,
            metric,
            value,
        };
        let mut out: Vec<EvalPoint> = self
            .seeds
            .iter()
            .zip(values)
            .map(|(s, v)| point(*s, Metric::Eval, v))
            .collect();
        if self.losses_seen > 0 {
            let n = self.losses_seen as f64;
            for (i, seed) in self.seeds.iter().enumerate() {
                out.push(point(*seed, Metric::QLoss, self.q_loss[i] / n));
                if self.data.model().is_some() {
                    out.push(point(*seed, Metric::ModelLoss, self.model_loss[i] / n));
                }
            }
        }
        self.q_loss.iter_mut().for_each(|l| *l = 0.0);
        self.model_loss.iter_mut().for_each(|l| *l = 0.0);
        self.losses_seen = 0;
        out
    }

    fn save(&mut self) -> GroupState {
        let data = match &mut self.data {
            Data::Replay(replays) => DataState::Replay(replays.clone()),
            Data::Rollouts {
                states,
                env,
                action_rngs,
            } => DataState::Rollouts {
                states: states.clone(),
                env: env.snapshot(),
                action_rngs: action_rngs.clone(),
            },
            Data::Learned {
                replays,
                model,
                action_rngs,
                model_rngs,
                rollout_rngs,
            } => {
                let (nets, moments) = model.state();
                DataState::Learned {
                    replays: replays.clone(),
                    nets,
                    moments,
                    action_rngs: action_rngs.clone(),
                    model_rngs: model_rngs.clone(),
                    rollout_rngs: rollout_rngs.clone(),
                }
            }
        };
        GroupState {
            seeds: self.seeds.clone(),
            t: self.t,
            round: self.round,
            points: self.points.clone(),
            failures: self.failures.clone(),
            env: self.env.snapshot(),
            obs: self.obs.clone(),
            action_rngs: self.action_rngs.clone(),
            replay_rngs: self.replay_rngs.clone(),
            learner: self.learner.state(),
            data,
        }
    }

    /// Continues from a [`Group::save`] of a group of the same seeds and plan.
    fn restore(&mut self, state: GroupState) -> Result<(), String> {
        if state.seeds != self.seeds || state.obs.len() != self.obs.len() {
            return Err("it holds other seeds or another env".into());
        }
        self.t = state.t;
        self.round = state.round;
        self.last_save = state.t;
        self.resumed_at = state.t;
        self.points = state.points;
        self.failures = state.failures;
        self.env.restore(&state.env);
        self.obs = state.obs;
        self.action_rngs = state.action_rngs;
        self.replay_rngs = state.replay_rngs;
        self.learner.restore(&state.learner)?;
        match (&mut self.data, state.data) {
            (Data::Replay(replays), DataState::Replay(saved)) => *replays = saved,
            (
                Data::Rollouts {
                    states,
                    env,
                    action_rngs,
                },
                DataState::Rollouts {
                    states: s,
                    env: e,
                    action_rngs: a,
                },
            ) => {
                *states = s;
                env.restore(&e);
                *action_rngs = a;
            }
            (
                Data::Learned {
                    replays,
                    model,
                    action_rngs,
                    model_rngs,
                    rollout_rngs,
                },
                DataState::Learned {
                    replays: r,
                    nets,
                    moments,
                    action_rngs: a,
                    model_rngs: m,
                    rollout_rngs: o,
                },
            ) => {
                model.restore(&(nets, moments))?;
                *replays = r;
                *action_rngs = a;
                *model_rngs = m;
                *rollout_rngs = o;
            }
            _ => return Err("it holds another kind of agent".into()),
        }
        Ok(())
    }

    fn new(plan: &DqnPlan, env_config: EnvConfig, seeds: &[u64], dev: &Dev) -> Group {
        let n = seeds.len();
        let env = Batch::new(env_config, &layout(plan, seeds, Purpose::Env))
            .expect("the env was built before");
        let d = env.spaces().obs_dim;
        let learner = DqnLearner::new(
            dev,
            plan.root_seed,
            seeds,
            &plan.q_dims,
            plan.activation,
            plan.adam,
        );
        let stream = |purpose| {
            seeds
                .iter()
                .map(|s| Stream::new(plan.root_seed, *s, purpose, 0))
                .collect()
        };
        let mut obs = vec![0f32; n * d];
        env.observe_all(&mut obs);
        let replays = || (0..n).map(|_| Replay::new(plan.buffer, d)).collect();
        let data = match (&plan.model, plan.rollouts) {
            (Some(ModelPlan::TrueEnv), Some(r)) => Data::Rollouts {
                states: (0..n).map(|_| StateBuffer::new(plan.buffer)).collect(),
                env: Batch::new(
                    env_config,
                    &Layout {
                        envs_per_seed: r.starts,
                        ..layout(plan, seeds, Purpose::Rollout)
                    },
                )
                .expect("the env was built before"),
                action_rngs: stream(Purpose::RolloutAction),
            },
            (Some(ModelPlan::Learned(model)), Some(_)) => Data::Learned {
                replays: replays(),
                model: Box::new(LearnedModel::new(dev, plan.root_seed, seeds, model)),
                action_rngs: stream(Purpose::RolloutAction),
                model_rngs: stream(Purpose::Model),
                rollout_rngs: stream(Purpose::Rollout),
            },
            _ => Data::Replay(replays()),
        };
        Group {
            seeds: seeds.to_vec(),
            env,
            learner,
            data,
            action_rngs: stream(Purpose::Action),
            replay_rngs: stream(Purpose::Replay),
            obs,
            post: vec![0f32; n * d],
            actions: vec![0; n],
            rewards: vec![0.0; n],
            terminals: vec![false; n],
            sample: Sample::default(),
            q_record: fused::Recorded::default(),
            key: String::new(),
            t: 0,
            round: 0,
            last_save: 0,
            resumed_at: 0,
            finished: false,
            points: Vec::new(),
            failures: Vec::new(),
            q_loss: vec![0.0; n],
            model_loss: vec![0.0; n],
            losses_seen: 0,
        }
    }

    /// One env step of every seed, then the step's updates; returns non-finite losses.
    fn step(&mut self, t: u64, plan: &DqnPlan, compat: Compat, dev: &Dev) -> Vec<NonFinite> {
        let d = self.env.spaces().obs_dim;
        if let Data::Rollouts { states, .. } = &mut self.data {
            // The perfect model stores the env state at the top of each step.
            for (i, buffer) in states.iter_mut().enumerate() {
                buffer.add(self.env.state(i));
            }
        }
        let features = match &self.data {
            Data::Learned { model, .. } => model.features(dev, &self.obs, 1, &mut self.action_rngs),
            _ => self.obs.clone(),
        };
        let values = self.learner.q_values(dev, &features, 1);
        softmax_actions(
            &values,
            1,
            plan.temperature,
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
                if !compat.stale_obs_after_reset {
                    self.env.observe(i, &mut self.post[row]);
                }
            }
        }
        std::mem::swap(&mut self.obs, &mut self.post);
        let mut failures = Vec::new();
        if t < plan.learning_starts {
            return failures;
        }
        if t % plan.target_update_every == 0 {
            self.learner.sync_target();
        }
        for _ in 0..plan.updates_per_step {
            self.q_record.clear();
            let (obs, next, batch) = match &mut self.data {
                Data::Replay(replays) => replay_batch(
                    dev,
                    replays,
                    &mut self.replay_rngs,
                    &mut self.sample,
                    plan,
                    d,
                ),
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
                    rollout_batch(&self.learner, dev, sources, plan, d, &mut self.q_record)
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
                    let losses = model.update(dev, &self.sample, n, self.learner.t, model_rngs);
                    failures.extend(non_finite(&self.seeds, &losses, self.learner.t));
                    for (sum, l) in self.model_loss.iter_mut().zip(&losses) {
                        *sum += *l as f64;
                    }
                    let starts = start_rows(&self.sample.obs, d, plan.batch, r.starts);
                    let starts = model.features(dev, &starts, r.starts, rollout_rngs);
                    let bits = match compat.logits_as_probabilities {
                        true => BitSampling::LogitAsProbability,
                        false => BitSampling::Sigmoid,
                    };
                    model.rollouts(
                        dev,
                        &self.learner,
                        starts,
                        r.starts,
                        r.length,
                        plan.temperature,
                        plan.gamma,
                        bits,
                        action_rngs,
                        rollout_rngs,
                        &mut self.q_record,
                    )
                }
            };
            let recorded = match self.data {
                Data::Replay(_) => None,
                Data::Rollouts { .. } | Data::Learned { .. } => Some(&self.q_record),
            };
            let losses = self.learner.update_recorded(obs, next, &batch, recorded);
            failures.extend(non_finite(&self.seeds, &losses, self.learner.t - 1));
            for (sum, l) in self.q_loss.iter_mut().zip(&losses) {
                *sum += *l as f64;
            }
            self.losses_seen += 1;
        }
        failures
    }
}

/// Where Q's training transitions come from.
enum Data {
    /// One replay buffer per seed (ER).
    Replay(Vec<Replay>),
    /// Stored env states per seed, and the env batch that rolls them out (perfect model).
    Rollouts {
        states: Vec<StateBuffer>,
        env: Batch,
        action_rngs: Vec<Stream>,
    },
    /// One replay buffer per seed that fits a learned model, and the model
    /// Q's rollouts run in.
    Learned {
        replays: Vec<Replay>,
        model: Box<LearnedModel>,
        action_rngs: Vec<Stream>,
        model_rngs: Vec<Stream>,
        rollout_rngs: Vec<Stream>,
    },
}

impl Data {
    fn replays(&mut self) -> Option<&mut Vec<Replay>> {
        match self {
            Data::Replay(replays) | Data::Learned { replays, .. } => Some(replays),
            Data::Rollouts { .. } => None,
        }
    }

    fn model(&self) -> Option<&LearnedModel> {
        match self {
            Data::Learned { model, .. } => Some(model),
            _ => None,
        }
    }
}

/// The rollout start observations: per seed, the first `starts` of its `batch`
/// sampled rows (cycling when `starts > batch`).
fn start_rows(obs: &[f32], d: usize, batch: usize, starts: usize) -> Vec<f32> {
    let n_seeds = obs.len() / (batch * d);
    let mut out = Vec::with_capacity(n_seeds * starts * d);
    for s in 0..n_seeds {
        for j in 0..starts {
            let row = s * batch + j % batch;
            out.extend_from_slice(&obs[row * d..(row + 1) * d]);
        }
    }
    out
}

/// A circular buffer of env states (young2022 spec §2's "state buffer").
#[derive(Clone, serde::Serialize, serde::Deserialize)]
struct StateBuffer {
    states: Vec<EnvState>,
    capacity: usize,
    location: usize,
}

impl StateBuffer {
    fn new(capacity: usize) -> StateBuffer {
        StateBuffer {
            states: Vec::new(),
            capacity,
            location: 0,
        }
    }

    fn add(&mut self, state: EnvState) {
        match self.states.len() < self.capacity {
            true => self.states.push(state),
            false => self.states[self.location] = state,
        }
        self.location = (self.location + 1) % self.capacity;
    }

    fn sample(&self, rng: &mut Stream) -> &EnvState {
        &self.states[rng.below(self.states.len())]
    }
}

struct RolloutSources<'a> {
    states: &'a [StateBuffer],
    env: &'a mut Batch,
    action_rngs: &'a mut [Stream],
    replay_rngs: &'a mut [Stream],
}

/// `starts` stored states per seed rolled `length` steps through the true env
/// under `softmax(Q/T)` (fresh random events, no reset). A step's weight is 0
/// once an earlier step of its rollout was terminal (young2022 spec §3.2).
fn rollout_batch(
    learner: &DqnLearner,
    dev: &Dev,
    src: RolloutSources,
    plan: &DqnPlan,
    d: usize,
    q_record: &mut fused::Recorded,
) -> (T3, T3, TdBatch) {
    let r = plan
        .rollouts
        .expect("rollout batches come from rollout plans");
    let n_seeds = src.states.len();
    let n = n_seeds * r.starts;
    for (s, buffer) in src.states.iter().enumerate() {
        for j in 0..r.starts {
            src.env
                .set_state(s * r.starts + j, buffer.sample(&mut src.replay_rngs[s]));
        }
    }
    let per_seed = r.starts * r.length;
    let mut obs = vec![0f32; n_seeds * per_seed * d];
    let mut next = vec![0f32; n_seeds * per_seed * d];
    let mut actions = vec![0usize; n_seeds * per_seed];
    let mut rewards = vec![0f32; n_seeds * per_seed];
    let mut discounts = vec![0f32; n_seeds * per_seed];
    let mut weights = vec![0f32; n_seeds * per_seed];
    let mut alive = vec![true; n];
    let (mut o, mut o2) = (vec![0f32; n * d], vec![0f32; n * d]);
    let (mut a, mut rew, mut term) = (vec![0usize; n], vec![0f32; n], vec![false; n]);
    for k in 0..r.length {
        src.env.observe_all(&mut o);
        let values = learner.q_values_recorded(dev, &o, r.starts, Some(q_record));
        softmax_actions(&values, r.starts, plan.temperature, src.action_rngs, &mut a);
        src.env.step(Actions::Discrete(&a), &mut rew, &mut term);
        src.env.observe_all(&mut o2);
        for i in 0..n {
            // A seed's rows step by step, as Q's passes were recorded.
            let (s, j) = (i / r.starts, i % r.starts);
            let at = s * per_seed + k * r.starts + j;
            obs[at * d..(at + 1) * d].copy_from_slice(&o[i * d..(i + 1) * d]);
            next[at * d..(at + 1) * d].copy_from_slice(&o2[i * d..(i + 1) * d]);
            actions[at] = a[i];
            rewards[at] = rew[i];
            discounts[at] = if term[i] { 0.0 } else { plan.gamma as f32 };
            weights[at] = alive[i] as u8 as f32;
            alive[i] &= !term[i];
        }
    }
    TdBatch::from_rows(
        dev, n_seeds, d, obs, next, actions, rewards, discounts, weights,
    )
}

fn replay_batch(
    dev: &Dev,
    replays: &[Replay],
    rngs: &mut [Stream],
    sample: &mut Sample,
    plan: &DqnPlan,
    d: usize,
) -> (T3, T3, TdBatch) {
    sample.clear();
    for (replay, rng) in replays.iter().zip(rngs.iter_mut()) {
        replay.sample_into(plan.batch, rng, sample);
    }
    let (s, b) = (replays.len(), plan.batch);
    let discounts: Vec<f32> = sample
        .terminals
        .iter()
        .map(|t| if *t { 0.0 } else { plan.gamma as f32 })
        .collect();
    TdBatch::from_rows(
        dev,
        s,
        d,
        sample.obs.clone(),
        sample.next_obs.clone(),
        sample.actions.clone(),
        sample.rewards.clone(),
        discounts,
        vec![1.0; s * b],
    )
}

/// The greedy policy of a shard's Q networks over its eval envs; a latent
/// agent takes the argmax at a fresh sample of its encoder (spec §3.4).
struct Greedy<'q> {
    q: &'q DqnLearner,
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
            *a = row
                .iter()
                .enumerate()
                .fold(0, |best, (i, v)| if *v > row[best] { i } else { best });
        }
    }
}

fn evaluate_greedy(
    group: &Group,
    plan: &DqnPlan,
    env: EnvConfig,
    protocol: Protocol,
    round: u64,
) -> Vec<f64> {
    let layout = Layout {
        round,
        ..layout(plan, &group.seeds, Purpose::EvalEnv)
    };
    let dev = device().expect("the device opened before the workers started");
    let rngs = group
        .seeds
        .iter()
        .map(|s| Stream::new(plan.root_seed, *s, Purpose::EvalAction, round))
        .collect();
    let mut policy = Some(Greedy {
        q: &group.learner,
        model: group.data.model(),
        rngs,
        dev,
        envs: protocol.envs,
    });
    let mut make = |_: &Layout| {
        Box::new(policy.take().expect("one policy per evaluation")) as Box<dyn Policy + '_>
    };
    evaluate::evaluate(env, protocol, &layout, &mut make).expect("the env was built before")
}
