//! Where Q's training transitions come from (young2022 spec §3): replay
//! batches (ER), rollouts of the true env from stored states (the perfect
//! model), or rollouts of a learned model fitted to replay.

use crate::envs::{Actions, Batch, EnvSnapshot, EnvState};
use crate::kinds::dqn::learner::model::LearnedModel;
use crate::kinds::dqn::learner::q::{explore, QLearner};
use crate::kinds::dqn::DqnPlan;
use crate::runtime::replay::{Replay, Sample};
use crate::seeds::Stream;
use crate::tensor::fused;
use crate::tensor::losses::TdRows;
use crate::tensor::Dev;

/// Q's training data source, per seed of a group.
pub enum Data {
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

/// What a checkpoint keeps of a [`Data`].
#[derive(serde::Serialize, serde::Deserialize)]
pub enum DataState {
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

impl Data {
    /// The replay buffers that real transitions go to, if Q's data needs them.
    pub fn replays(&mut self) -> Option<&mut Vec<Replay>> {
        match self {
            Data::Replay(replays) | Data::Learned { replays, .. } => Some(replays),
            Data::Rollouts { .. } => None,
        }
    }

    pub fn model(&self) -> Option<&LearnedModel> {
        match self {
            Data::Learned { model, .. } => Some(model),
            _ => None,
        }
    }

    pub fn save(&mut self) -> DataState {
        match self {
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
        }
    }

    pub fn restore(&mut self, state: DataState) -> Result<(), String> {
        match (self, state) {
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
}

/// The rollout start observations: per seed, the first `starts` of its `batch`
/// sampled rows (cycling when `starts > batch`).
pub fn start_rows(obs: &[f32], d: usize, batch: usize, starts: usize) -> Vec<f32> {
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
pub struct StateBuffer {
    states: Vec<EnvState>,
    capacity: usize,
    location: usize,
}

impl StateBuffer {
    pub fn new(capacity: usize) -> StateBuffer {
        StateBuffer {
            states: Vec::new(),
            capacity,
            location: 0,
        }
    }

    pub fn add(&mut self, state: EnvState) {
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

/// The true-env rollouts' inputs.
pub struct RolloutSources<'a> {
    pub states: &'a [StateBuffer],
    pub env: &'a mut Batch,
    pub action_rngs: &'a mut [Stream],
    pub replay_rngs: &'a mut [Stream],
}

/// `starts` stored states per seed rolled `length` steps through the true env
/// under the behaviour policy (fresh random events, no reset). A step's
/// weight is 0 once an earlier step of its rollout was terminal (young2022
/// spec §3.2). Q's passes that chose the actions are appended to `q_record`.
pub fn rollout_batch(
    q: &QLearner,
    dev: &Dev,
    src: RolloutSources,
    plan: &DqnPlan,
    q_record: &mut fused::Recorded,
) -> TdRows {
    let r = plan
        .rollouts
        .expect("rollout batches come from rollout plans");
    let d = plan.obs_dim;
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
        let values = q.q_values_recorded(dev, &o, r.starts, Some(q_record));
        explore(&values, r.starts, plan.exploration, src.action_rngs, &mut a);
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
    TdRows {
        n_seeds,
        d,
        obs,
        next_obs: next,
        actions,
        rewards,
        discounts,
        weights,
    }
}

/// `batch` transitions per seed sampled from its replay, as Q's TD inputs
/// in `rows` (its buffers reused: the sample's are swapped in, not copied).
pub fn replay_batch(
    replays: &[Replay],
    rngs: &mut [Stream],
    sample: &mut Sample,
    plan: &DqnPlan,
    rows: &mut TdRows,
) {
    sample.clear();
    for (replay, rng) in replays.iter().zip(rngs.iter_mut()) {
        replay.sample_into(plan.batch, rng, sample);
    }
    rows.n_seeds = replays.len();
    rows.d = plan.obs_dim;
    std::mem::swap(&mut rows.obs, &mut sample.obs);
    std::mem::swap(&mut rows.next_obs, &mut sample.next_obs);
    std::mem::swap(&mut rows.actions, &mut sample.actions);
    std::mem::swap(&mut rows.rewards, &mut sample.rewards);
    let gamma = plan.gamma as f32;
    rows.discounts.clear();
    rows.discounts.extend(
        sample
            .terminals
            .iter()
            .map(|t| if *t { 0.0 } else { gamma }),
    );
    rows.weights.clear();
    rows.weights.resize(rows.actions.len(), 1.0);
}
