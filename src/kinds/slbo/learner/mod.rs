//! The SLBO learner (vaslbo spec §1) for a group of seeds. Its unit of work
//! is one stage: collect `steps_per_stage` real steps with the policy plus
//! OU noise into the FIFO buffer (the chunk's last transition marked a
//! timeout), update the running normalizers from the stage's data, then
//! `iters` times: `model_iters` model steps on multi-step batches (refitting
//! V on fresh virtual rollouts every `value_refit_every` of them) and
//! `policy_iters` TRPO steps, each on `envs x length` virtual steps rolled
//! out in the model with the env's own reward, followed by V's fit. The
//! entropy bonus is off from `ent_off_stage`. It evaluates the policy (its
//! samples, or its mean) in the real env.
//!
//! Invariants: seeds never exchange data, each seed's draws come from its
//! own streams, and each seed's virtual envs step as one batch.

mod buffer;
pub mod expr;
pub mod model;
pub mod net;
pub mod policy;
#[cfg(test)]
mod tests;
pub mod trpo;

use crate::compile::Plan;
use crate::envs::{self, Actions, Batch, EnvConfig, EnvSnapshot, Layout};
use crate::kinds::slbo::{Metric, Noise, SlboPlan, Start};
use crate::runtime::driver::{self, Agent, Learner, Losses};
use crate::runtime::evaluate::{ActionBuf, Policy as EvalPolicy};
use crate::runtime::phases::{self, Phase};
use crate::seeds::{Purpose, Stream};
use crate::tensor::mlp::NetId;
use crate::tensor::Dev;

use buffer::Fifo;
use model::{Dynamics, Norms, Value};
use net::Net;
use policy::Policy;

/// A compiled SLBO cell, as the driver builds it.
pub struct Slbo<'p> {
    pub plan: &'p Plan,
    pub slbo: &'p SlboPlan,
}

impl<'p> Agent for Slbo<'p> {
    type Learner = SlboLearner<'p>;

    fn build(&self, seeds: &[u64], dev: &Dev) -> SlboLearner<'p> {
        SlboLearner::new(self.plan, self.slbo, seeds, dev)
    }
}

/// One seed's state: networks, normalizers, buffer, noise and streams.
#[derive(Clone, serde::Serialize, serde::Deserialize)]
pub struct SeedState {
    pub policy: Policy,
    pub value: Value,
    pub dynamics: Dynamics,
    pub norms: Norms,
    buffer: Fifo,
    /// The OU process's state (one per action dim).
    ou: Vec<f64>,
    /// Real collection: the current observation, steps into its episode, its return so far.
    obs: Vec<f32>,
    episode_steps: usize,
    episode_return: f64,
    /// The same for the released code's dev-set collection (`compat: vaslbo`).
    dev_obs: Vec<f32>,
    dev_steps: usize,
    action_rng: Stream,
    noise_rng: Stream,
    rollout_rng: Stream,
    replay_rng: Stream,
    minibatch_rng: Stream,
}

/// The state of a group of seeds.
pub struct SlboLearner<'p> {
    plan: &'p SlboPlan,
    env_config: EnvConfig,
    seeds: Vec<u64>,
    /// The real env, one instance per seed; the dev-set env under `compat: vaslbo`.
    env: Batch,
    dev_env: Option<Batch>,
    /// Real-env instances whose resets give virtual episodes their first states.
    starts: Batch,
    per_seed: Vec<SeedState>,
    /// The evaluation samples the policy (`policy_eval { stochastic: true }`).
    stochastic: bool,
}

/// What a checkpoint keeps of an [`SlboLearner`].
#[derive(serde::Serialize, serde::Deserialize)]
pub struct SlboState {
    env: EnvSnapshot,
    dev_env: Option<EnvSnapshot>,
    starts: EnvSnapshot,
    per_seed: Vec<SeedState>,
}

/// A stage's means of what the learner reports, per seed.
#[derive(Clone, Copy, Debug, Default)]
struct StageReport {
    model_loss: f64,
    model_term: f64,
    model_reg: f64,
    model_steps: f64,
    value_loss: f64,
    fits: f64,
    kl: f64,
    accepted: f64,
    entropy: f64,
    gain: f64,
    trpo_steps: f64,
    virtual_return: f64,
    train_return: f64,
    episodes: f64,
}

fn batch_of(config: EnvConfig, layout: &Layout) -> Batch {
    Batch::new(config, layout).expect("the env was built before the workers started")
}

impl<'p> SlboLearner<'p> {
    fn new(run: &Plan, plan: &'p SlboPlan, seeds: &[u64], dev: &Dev) -> SlboLearner<'p> {
        let root = run.root_seed;
        let layout = |purpose, envs_per_seed, round| Layout {
            envs_per_seed,
            ..driver::layout(run, seeds, purpose, round)
        };
        let env = batch_of(run.env, &layout(Purpose::Env, 1, 0));
        // The dev set's env: the training env's streams, a later round.
        let dev_env = plan
            .compat
            .dev_set
            .then(|| batch_of(run.env, &layout(Purpose::Env, 1, 1)));
        let starts = batch_of(run.env, &layout(Purpose::Rollout, plan.envs, 0));
        let d = plan.obs_dim;
        let per_seed = seeds
            .iter()
            .enumerate()
            .map(|(i, seed)| {
                let stream = |purpose| Stream::new(root, *seed, purpose, 0);
                let mut obs = vec![0f32; d];
                env.observe(i, &mut obs);
                let mut dev_obs = vec![0f32; d];
                if let Some(dev_env) = &dev_env {
                    dev_env.observe(i, &mut dev_obs);
                }
                SeedState {
                    policy: Policy::new(dev, root, *seed, &plan.policy),
                    value: Value {
                        net: Net::new(dev, root, *seed, NetId(11), &plan.value),
                        normalize: plan.value.normalize,
                    },
                    dynamics: Dynamics {
                        net: Net::new(dev, root, *seed, NetId(12), &plan.dynamics.net),
                    },
                    norms: Norms::new(d),
                    buffer: Fifo::new(plan.buffer, d, plan.act_dim),
                    ou: vec![0.0; plan.act_dim],
                    obs,
                    episode_steps: 0,
                    episode_return: 0.0,
                    dev_obs,
                    dev_steps: 0,
                    action_rng: stream(Purpose::Action),
                    noise_rng: stream(Purpose::Noise),
                    rollout_rng: stream(Purpose::RolloutAction),
                    replay_rng: stream(Purpose::Replay),
                    minibatch_rng: stream(Purpose::Minibatch),
                }
            })
            .collect();
        SlboLearner {
            plan,
            env_config: run.env,
            seeds: seeds.to_vec(),
            env,
            dev_env,
            starts,
            per_seed,
            stochastic: run.protocol.stochastic,
        }
    }

    /// `steps_per_stage` real steps of every seed with its policy's samples
    /// plus its OU noise; each transition goes to the seed's buffer (when
    /// `store`), an episode ends at the env's horizon. Returns per seed the
    /// stage's data.
    fn collect(&mut self, store: bool) -> Vec<StageData> {
        let plan = self.plan;
        let (d, a, n) = (plan.obs_dim, plan.act_dim, self.seeds.len());
        let mut data = vec![StageData::default(); n];
        let mut actions = vec![0f32; n * a];
        let (mut rewards, mut dones) = (vec![0f32; n], vec![false; n]);
        let mut next = vec![0f32; d];
        let env = match store {
            true => &mut self.env,
            false => self.dev_env.as_mut().expect("a dev env under compat"),
        };
        for _ in 0..plan.steps_per_stage {
            for (i, seed) in self.per_seed.iter_mut().enumerate() {
                let obs = if store { &seed.obs } else { &seed.dev_obs };
                let mut act = seed.policy.sample(obs, &seed.norms, &mut seed.action_rng);
                if let Noise::Ou { theta, sigma, mu } = plan.noise {
                    for (x, ou) in act.iter_mut().zip(seed.ou.iter_mut()) {
                        *ou += theta * (mu - *ou) + sigma * seed.noise_rng.normal();
                        *x += *ou as f32;
                    }
                }
                actions[i * a..(i + 1) * a].copy_from_slice(&act);
            }
            env.step(Actions::Continuous(&actions), &mut rewards, &mut dones);
            for (i, seed) in self.per_seed.iter_mut().enumerate() {
                env.observe(i, &mut next);
                let (obs, steps) = match store {
                    true => (&mut seed.obs, &mut seed.episode_steps),
                    false => (&mut seed.dev_obs, &mut seed.dev_steps),
                };
                *steps += 1;
                let timeout = *steps == plan.horizon;
                if store {
                    let act = &actions[i * a..(i + 1) * a];
                    seed.buffer
                        .add(obs, act, &next, rewards[i], dones[i], timeout);
                    seed.episode_return += rewards[i] as f64;
                    data[i].states.extend_from_slice(obs);
                    data[i].next_states.extend_from_slice(&next);
                }
                if dones[i] || timeout {
                    env.reset(i);
                    env.observe(i, obs);
                    *steps = 0;
                    if store {
                        data[i].returns.push(seed.episode_return);
                        seed.episode_return = 0.0;
                    }
                } else {
                    obs.copy_from_slice(&next);
                }
            }
        }
        if store {
            for seed in &mut self.per_seed {
                seed.buffer.end_chunk();
            }
        }
        data
    }
}

/// One seed's real data of a stage.
#[derive(Clone, Default)]
struct StageData {
    states: Vec<f32>,
    next_states: Vec<f32>,
    /// Returns of the episodes completed.
    returns: Vec<f64>,
}

/// Virtual rollouts of one seed: `envs x length` rows, row `t envs + e`.
pub struct Rollout {
    pub states: Vec<f32>,
    pub actions: Vec<f32>,
    pub next_states: Vec<f32>,
    pub rewards: Vec<f32>,
    pub dones: Vec<bool>,
    pub timeouts: Vec<bool>,
}

/// What one seed's stage work needs besides its own state.
struct Ctx<'a> {
    plan: &'a SlboPlan,
    env_config: EnvConfig,
    /// The reset env's instances of this seed: `first..first + envs`.
    starts: &'a mut Batch,
    first: usize,
}

impl Ctx<'_> {
    /// A virtual episode's first state: a real reset, or a stored state.
    fn start(&mut self, seed: &mut SeedState, e: usize, out: &mut [f32]) {
        match self.plan.start {
            Start::Reset => {
                self.starts.reset(self.first + e);
                self.starts.observe(self.first + e, out);
            }
            Start::Buffer => {
                let i = seed.replay_rng.below(seed.buffer.len());
                out.copy_from_slice(seed.buffer.state(i));
            }
        }
    }

    /// `length` steps of `envs` virtual envs from fresh starts: the policy's
    /// samples, the model's next states, the env's own reward and
    /// termination; an env that ends (or times out at `length`) restarts.
    fn rollout(&mut self, seed: &mut SeedState) -> Rollout {
        let plan = self.plan;
        let (d, a, envs) = (plan.obs_dim, plan.act_dim, plan.envs);
        let rows = envs * plan.length;
        let mut out = Rollout {
            states: Vec::with_capacity(rows * d),
            actions: Vec::with_capacity(rows * a),
            next_states: Vec::with_capacity(rows * d),
            rewards: Vec::with_capacity(rows),
            dones: Vec::with_capacity(rows),
            timeouts: Vec::with_capacity(rows),
        };
        let mut states = vec![0f32; envs * d];
        for e in 0..envs {
            self.start(seed, e, &mut states[e * d..(e + 1) * d]);
        }
        let mut steps = vec![0usize; envs];
        for _ in 0..plan.length {
            let actions = seed
                .policy
                .sample(&states, &seed.norms, &mut seed.rollout_rng);
            let next = seed
                .dynamics
                .predict(&plan.dynamics, &states, &actions, &seed.norms);
            out.states.extend_from_slice(&states);
            out.actions.extend_from_slice(&actions);
            out.next_states.extend_from_slice(&next);
            for e in 0..envs {
                let (s, act, n) = (
                    &states[e * d..(e + 1) * d],
                    &actions[e * a..(e + 1) * a],
                    &next[e * d..(e + 1) * d],
                );
                let (r, done) = envs::known_reward(&self.env_config, s, act, n)
                    .expect("SLBO runs on envs with a known reward");
                steps[e] += 1;
                let timeout = steps[e] == plan.length;
                out.rewards.push(r);
                out.dones.push(done);
                out.timeouts.push(timeout);
            }
            states.copy_from_slice(&next);
            for e in 0..envs {
                let i = out.dones.len() - envs + e;
                if out.dones[i] || out.timeouts[i] {
                    steps[e] = 0;
                    let mut fresh = vec![0f32; d];
                    self.start(seed, e, &mut fresh);
                    states[e * d..(e + 1) * d].copy_from_slice(&fresh);
                }
            }
        }
        out
    }

    /// GAE on a rollout with the seed's current V: advantages and the
    /// value targets `A + V`. A timeout bootstraps with V of the timed-out
    /// state's successor; `compat: vaslbo`, with V of the next row's state.
    fn advantages(&self, seed: &SeedState, r: &Rollout) -> (Vec<f32>, Vec<f32>) {
        let envs = self.plan.envs;
        let values = seed.value.values(&r.states, &seed.norms);
        let after = seed.value.values(&r.next_states, &seed.norms);
        let next_values: Vec<f32> = match self.plan.compat.next_row_bootstrap {
            false => after,
            true => (0..values.len())
                .map(|i| {
                    if i + envs < values.len() {
                        values[i + envs]
                    } else {
                        after[i]
                    }
                })
                .collect(),
        };
        let t = self.plan.trpo;
        let adv = trpo::gae(
            &r.rewards,
            &values,
            &next_values,
            &r.dones,
            &r.timeouts,
            envs,
            t.gamma,
            t.lambda,
        );
        let returns = adv.iter().zip(&values).map(|(a, v)| a + v).collect();
        (adv, returns)
    }

    /// A fresh virtual rollout, then V fitted to its GAE targets (no policy step).
    fn refit(&mut self, seed: &mut SeedState) -> f32 {
        let rollout = self.rollout(seed);
        let (_, returns) = self.advantages(seed, &rollout);
        self.fit(seed, &rollout, &returns)
    }

    fn fit(&self, seed: &mut SeedState, rollout: &Rollout, returns: &[f32]) -> f32 {
        let t = self.plan.trpo;
        seed.value.fit(
            &rollout.states,
            returns,
            &seed.norms,
            t.vf_epochs,
            t.vf_batch,
            &t.vf,
            &mut seed.minibatch_rng,
        )
    }

    /// `model_iters` model steps, refitting V every `value_refit_every`;
    /// returns the model steps after which V was refitted (0-based).
    fn model_phase(&mut self, seed: &mut SeedState, report: &mut StageReport) -> Vec<usize> {
        let plan = self.plan;
        let mut refits = Vec::new();
        for k in 0..plan.model_iters {
            let batch =
                seed.buffer
                    .sample(plan.model_batch, plan.loss.horizon(), &mut seed.replay_rng);
            // The model's gradient steps alone are its phase; a refit (model
            // rollouts and V's fit) is the value's.
            let losses = phases::time(Phase::ModelUpdate, || {
                seed.dynamics.train_step(
                    &plan.dynamics,
                    &plan.loss,
                    &batch,
                    &seed.value,
                    &seed.norms,
                    &plan.model_adam,
                )
            });
            report.model_loss += losses.loss as f64;
            report.model_term += losses.term as f64;
            report.model_reg += losses.reg as f64;
            report.model_steps += 1.0;
            let every = plan.value_refit_every;
            if every > 0 && (k + 1) % every == 0 {
                report.value_loss += phases::time(Phase::QUpdate, || self.refit(seed)) as f64;
                report.fits += 1.0;
                refits.push(k);
            }
        }
        refits
    }

    /// `policy_iters` TRPO steps, each on a fresh virtual rollout, each
    /// followed by V's fit (unless the surrogate's gradient was zero).
    fn policy_phase(&mut self, seed: &mut SeedState, ent_coef: f64, report: &mut StageReport) {
        let plan = self.plan;
        for _ in 0..plan.policy_iters {
            let rollout = phases::time(Phase::Data, || self.rollout(seed));
            report.virtual_return +=
                rollout.rewards.iter().map(|r| *r as f64).sum::<f64>() / plan.envs as f64;
            let (adv, returns) = self.advantages(seed, &rollout);
            let adv = trpo::standardize(&adv);
            let x = seed.policy.input(&rollout.states, &seed.norms);
            let batch = trpo::Batch {
                x: &x,
                actions: &rollout.actions,
                advantages: &adv,
            };
            let step = phases::time(Phase::QUpdate, || {
                trpo::step(&mut seed.policy, &batch, &plan.trpo, ent_coef)
            });
            report.trpo_steps += 1.0;
            report.entropy += step.entropy;
            report.kl += step.kl;
            report.gain += step.gain;
            report.accepted += f64::from(u8::from(step.accepted));
            if !step.zero_gradient {
                let fit = phases::time(Phase::QUpdate, || self.fit(seed, &rollout, &returns));
                report.value_loss += fit as f64;
                report.fits += 1.0;
            }
        }
    }

    /// One seed's learning after its stage's data: normalizers, then the
    /// model and policy phases `iters` times.
    fn learn(&mut self, seed: &mut SeedState, stage: u64, report: &mut StageReport) {
        let t = self.plan.trpo;
        let ent_coef = if stage >= t.ent_off_stage {
            0.0
        } else {
            t.ent_coef
        };
        for _ in 0..self.plan.iters {
            self.model_phase(seed, report);
            self.policy_phase(seed, ent_coef, report);
        }
    }
}

impl Learner for SlboLearner<'_> {
    type State = SlboState;

    /// One stage of every seed.
    fn advance(&mut self, stage: u64, losses: &mut Losses) {
        let plan = self.plan;
        let data = phases::time(Phase::Acting, || self.collect(true));
        if self.dev_env.is_some() {
            phases::time(Phase::Acting, || self.collect(false));
        }
        let mut reports = Vec::with_capacity(self.seeds.len());
        let env_config = self.env_config;
        for (i, (seed, data)) in self.per_seed.iter_mut().zip(data).enumerate() {
            seed.norms.update(&data.states, &data.next_states);
            let mut report = StageReport {
                episodes: data.returns.len() as f64,
                train_return: data.returns.iter().sum(),
                ..StageReport::default()
            };
            let mut ctx = Ctx {
                plan,
                env_config,
                starts: &mut self.starts,
                first: i * plan.envs,
            };
            ctx.learn(seed, stage, &mut report);
            reports.push(report);
        }
        report_stage(&reports, losses);
    }

    fn policy<'a>(&'a self, layout: &Layout) -> Box<dyn EvalPolicy + 'a> {
        let rngs = Layout {
            purpose: Purpose::EvalAction,
            ..layout.clone()
        }
        .streams();
        Box::new(Evaluation {
            seeds: &self.per_seed,
            envs: layout.envs_per_seed,
            stochastic: self.stochastic,
            rngs,
        })
    }

    fn save(&mut self) -> SlboState {
        SlboState {
            env: self.env.snapshot(),
            dev_env: self.dev_env.as_mut().map(Batch::snapshot),
            starts: self.starts.snapshot(),
            per_seed: self.per_seed.clone(),
        }
    }

    fn restore(&mut self, state: SlboState) -> Result<(), String> {
        if state.per_seed.len() != self.per_seed.len()
            || state.dev_env.is_some() != self.dev_env.is_some()
        {
            return Err("it holds other seeds or another compatibility mode".into());
        }
        self.env.restore(&state.env);
        if let (Some(env), Some(saved)) = (self.dev_env.as_mut(), state.dev_env.as_ref()) {
            env.restore(saved);
        }
        self.starts.restore(&state.starts);
        self.per_seed = state.per_seed;
        // A checkpoint holds no precision: the plan's is the run's.
        let plan = self.plan;
        for seed in &mut self.per_seed {
            seed.policy.mean.set_precision(plan.policy.mean.precision);
            seed.value.net.set_precision(plan.value.precision);
            seed.dynamics.net.set_precision(plan.dynamics.net.precision);
        }
        Ok(())
    }
}

/// The stage's means, per seed, to the driver (a metric only when every
/// seed has one).
fn report_stage(reports: &[StageReport], losses: &mut Losses) {
    let mut add = |metric: Metric, f: &dyn Fn(&StageReport) -> (f64, f64)| {
        let values: Vec<(f64, f64)> = reports.iter().map(f).collect();
        if values.iter().all(|(_, n)| *n > 0.0) {
            let means: Vec<f32> = values.iter().map(|(sum, n)| (sum / n) as f32).collect();
            losses.add(metric.index(), &means);
        }
    };
    add(Metric::ModelLoss, &|r| (r.model_loss, r.model_steps));
    add(Metric::ModelTerm, &|r| (r.model_term, r.model_steps));
    add(Metric::ModelReg, &|r| (r.model_reg, r.model_steps));
    add(Metric::ValueLoss, &|r| (r.value_loss, r.fits));
    add(Metric::PolicyKl, &|r| (r.kl, r.accepted));
    add(Metric::PolicyEntropy, &|r| (r.entropy, r.trpo_steps));
    add(Metric::SurrogateGain, &|r| (r.gain, r.trpo_steps));
    add(Metric::VirtualReturn, &|r| (r.virtual_return, r.trpo_steps));
    add(Metric::TrainReturn, &|r| (r.train_return, r.episodes));
}

/// The policies of a group over its eval envs: samples (with the eval
/// streams, one per instance) or means, never the OU noise.
struct Evaluation<'a> {
    seeds: &'a [SeedState],
    envs: usize,
    stochastic: bool,
    rngs: Vec<Stream>,
}

impl EvalPolicy for Evaluation<'_> {
    fn act(&mut self, obs: &[f32], actions: &mut ActionBuf) {
        let ActionBuf::Continuous(out, a) = actions else {
            unreachable!("SLBO acts in continuous spaces")
        };
        let a = *a;
        let d = obs.len() / (self.seeds.len() * self.envs);
        for (s, seed) in self.seeds.iter().enumerate() {
            let rows = s * self.envs..(s + 1) * self.envs;
            let states = &obs[rows.start * d..rows.end * d];
            let means = seed.policy.means(states, &seed.norms);
            for (j, row) in means.chunks(a).enumerate() {
                let inst = rows.start + j;
                for (k, mean) in row.iter().enumerate() {
                    let noise = match self.stochastic {
                        true => seed.policy.log_std[k].exp() * self.rngs[inst].normal() as f32,
                        false => 0.0,
                    };
                    out[inst * a + k] = mean + noise;
                }
            }
        }
    }
}
