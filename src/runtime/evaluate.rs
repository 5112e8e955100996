//! The reference evaluation protocol (young2022 spec §2, vaslbo spec §10):
//! per seed, fresh eval envs run a policy for a fixed number of steps; the
//! per-seed score is the mean over those envs of
//! - the truncated episode return on episodic envs (no reset after the
//!   terminal step, whose reward counts),
//! - the reward rate `(1/T) sum_t r_t` on continuing envs,
//! - the mean return of the episodes completed (episodes end at the env's
//!   horizon) on time-limited envs.

use crate::compile::{EvalMetric as Metric, Protocol};
use crate::envs::{Actions, Batch, EnvConfig, Layout, Unavailable};
use crate::schema::ActionSpace;
use crate::seeds::{Purpose, Stream};

/// Chooses actions for every instance from their observations.
pub trait Policy {
    fn act(&mut self, obs: &[f32], actions: &mut ActionBuf);
}

/// Reusable action storage for a batch.
pub enum ActionBuf {
    Discrete(Vec<usize>, usize),
    Continuous(Vec<f32>, usize),
}

impl ActionBuf {
    pub fn new(space: ActionSpace, n: usize) -> ActionBuf {
        match space {
            ActionSpace::Discrete(k) => ActionBuf::Discrete(vec![0; n], k),
            ActionSpace::Continuous(d) => ActionBuf::Continuous(vec![0.0; n * d], d),
        }
    }

    pub fn as_actions(&self) -> Actions<'_> {
        match self {
            ActionBuf::Discrete(a, _) => Actions::Discrete(a),
            ActionBuf::Continuous(a, _) => Actions::Continuous(a),
        }
    }
}

/// Uniformly random actions, one stream per instance.
pub struct RandomPolicy {
    rngs: Vec<Stream>,
}

impl RandomPolicy {
    pub fn new(layout: &Layout) -> RandomPolicy {
        let layout = Layout {
            purpose: Purpose::EvalAction,
            ..layout.clone()
        };
        RandomPolicy {
            rngs: layout.streams(),
        }
    }
}

impl Policy for RandomPolicy {
    fn act(&mut self, _obs: &[f32], actions: &mut ActionBuf) {
        match actions {
            ActionBuf::Discrete(a, k) => {
                for (ai, rng) in a.iter_mut().zip(&mut self.rngs) {
                    *ai = rng.below(*k);
                }
            }
            ActionBuf::Continuous(a, d) => {
                for (row, rng) in a.chunks_mut(*d).zip(&mut self.rngs) {
                    row.iter_mut()
                        .for_each(|x| *x = rng.range(-1.0, 1.0) as f32);
                }
            }
        }
    }
}

/// Runs the protocol for the seeds of `layout` (its `envs_per_seed` is
/// replaced by the protocol's); returns one score per seed.
pub fn evaluate<'p>(
    config: EnvConfig,
    protocol: Protocol,
    layout: &Layout,
    policy: &mut dyn FnMut(&Layout) -> Box<dyn Policy + 'p>,
) -> Result<Vec<f64>, Unavailable> {
    let layout = Layout {
        envs_per_seed: protocol.envs,
        purpose: Purpose::EvalEnv,
        ..layout.clone()
    };
    let mut env = Batch::new(config, &layout)?;
    let mut policy = policy(&layout);
    let spaces = env.spaces();
    let n = env.len();
    let mut obs = vec![0f32; n * spaces.obs_dim];
    let mut actions = ActionBuf::new(spaces.action, n);
    let mut rewards = vec![0f32; n];
    let mut terminals = vec![false; n];
    let mut score = Score::new(protocol, spaces.horizon, n);
    for t in 0..protocol.steps {
        env.observe_all(&mut obs);
        policy.act(&obs, &mut actions);
        env.step(actions.as_actions(), &mut rewards, &mut terminals);
        score.record(t, &rewards, &terminals);
        if let Some(h) = spaces.horizon.filter(|h| (t + 1) % h == 0) {
            debug_assert!(h > 0);
            (0..n).for_each(|i| env.reset(i));
        }
    }
    let per_instance = score.finish();
    Ok(per_instance
        .chunks(protocol.envs)
        .map(|c| c.iter().sum::<f64>() / c.len() as f64)
        .collect())
}

/// Per-instance accumulators of the protocol's metric.
struct Score {
    protocol: Protocol,
    horizon: Option<usize>,
    total: Vec<f64>,
    current: Vec<f64>,
    episodes: Vec<usize>,
    done: Vec<bool>,
}

impl Score {
    fn new(protocol: Protocol, horizon: Option<usize>, n: usize) -> Score {
        Score {
            protocol,
            horizon,
            total: vec![0.0; n],
            current: vec![0.0; n],
            episodes: vec![0; n],
            done: vec![false; n],
        }
    }

    fn record(&mut self, t: usize, rewards: &[f32], terminals: &[bool]) {
        for i in 0..rewards.len() {
            match self.protocol.metric {
                Metric::EpisodeReturn => {
                    if !self.done[i] {
                        self.total[i] += rewards[i] as f64;
                    }
                    self.done[i] |= terminals[i];
                }
                Metric::RewardRate => self.total[i] += rewards[i] as f64,
                Metric::HorizonReturn => {
                    self.current[i] += rewards[i] as f64;
                    if self.horizon.is_some_and(|h| (t + 1).is_multiple_of(h)) {
                        self.total[i] += self.current[i];
                        self.current[i] = 0.0;
                        self.episodes[i] += 1;
                    }
                }
            }
        }
    }

    fn finish(self) -> Vec<f64> {
        let steps = self.protocol.steps as f64;
        (0..self.total.len())
            .map(|i| match self.protocol.metric {
                Metric::EpisodeReturn => self.total[i],
                Metric::RewardRate => self.total[i] / steps,
                // With no completed episode, the partial one is the best estimate.
                Metric::HorizonReturn => match self.episodes[i] {
                    0 => self.current[i],
                    k => self.total[i] / k as f64,
                },
            })
            .collect()
    }
}
