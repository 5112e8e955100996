//! Environments, seed-batched: one value holds every instance of a cell
//! (seeds x envs per seed) and one call steps them all.
//!
//! Instance `i = seed * envs_per_seed + env` draws from its own stream
//! (root seed, seed index, purpose, env), so a seed's trajectory does not
//! depend on the rest of the batch. Every env's state can be saved and
//! restored (the perfect-model agent rolls out the true env from stored
//! states). Episodic envs do not reset themselves: the caller decides when
//! (the reference's stale-observation quirk depends on it).
//!
//! Invariants: no AST, no tensors; rules follow the specs cited per file.

pub mod buttongrid;
pub mod control;
pub mod grid;
#[cfg(feature = "mujoco")]
pub mod halfcheetah;
pub mod opengrid;
pub mod panflute;
pub mod procmaze;

use crate::schema::EnvSpaces;
use crate::seeds::{Purpose, Stream};

pub use buttongrid::ButtonGrid;
pub use control::{Control, Task};
pub use opengrid::OpenGrid;
pub use panflute::PanFlute;
pub use procmaze::ProcMaze;

/// Which streams a batch draws from.
#[derive(Clone, Debug)]
pub struct Layout {
    pub root_seed: u64,
    /// The seed index of each seed in the batch (a shard may hold seeds 8..16).
    pub seeds: Vec<u64>,
    pub envs_per_seed: usize,
    pub purpose: Purpose,
    /// Separates repeated uses of one purpose (evaluation round k uses fresh envs).
    pub round: u64,
}

impl Layout {
    pub fn n_instances(&self) -> usize {
        self.seeds.len() * self.envs_per_seed
    }

    pub fn streams(&self) -> Vec<Stream> {
        let mut out = Vec::with_capacity(self.n_instances());
        for seed in &self.seeds {
            for env in 0..self.envs_per_seed {
                let instance = self.round * self.envs_per_seed as u64 + env as u64;
                out.push(Stream::new(self.root_seed, *seed, self.purpose, instance));
            }
        }
        out
    }
}

/// Actions for every instance: an index each, or `act_dim` floats in `[-1, 1]` each.
#[derive(Clone, Copy, Debug)]
pub enum Actions<'a> {
    Discrete(&'a [usize]),
    Continuous(&'a [f32]),
}

/// An env's parameters (`compile` reads them from the graph's env node).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub enum EnvConfig {
    ProcMaze(procmaze::Params),
    ButtonGrid(buttongrid::Params),
    PanFlute(panflute::Params),
    OpenGrid(opengrid::Params),
    Control(Task, usize),
    HalfCheetah(usize),
}

/// The env's own reward and termination of a transition `(obs, action in
/// [-1, 1], next obs)`, for rollouts in a learned model (SLBO's `mb_step`);
/// `None` for envs without such functions (the grid worlds).
pub fn known_reward(
    config: &EnvConfig,
    obs: &[f32],
    action: &[f32],
    next_obs: &[f32],
) -> Option<(f32, bool)> {
    match config {
        EnvConfig::Control(task, _) => Some((
            control::reward(*task, obs, action, next_obs),
            control::terminal(*task, obs, action, next_obs),
        )),
        #[cfg(feature = "mujoco")]
        EnvConfig::HalfCheetah(_) => Some((halfcheetah::reward(obs, action, next_obs), false)),
        _ => None,
    }
}

/// The best reward rate an agent can reach, for envs where it is known in
/// closed form: PanFlute, `1/N` plus the spontaneous rewards of the other
/// steps, `p (1 - 1/N)` (young2022 spec §1.3).
pub fn known_optimal_rate(config: &EnvConfig) -> Option<f64> {
    match config {
        EnvConfig::PanFlute(p) => {
            let n = p.pipes as f64;
            let spontaneous = match p.spontaneous_reward {
                true => panflute::p_spontaneous(p.pipes) * (1.0 - 1.0 / n),
                false => 0.0,
            };
            Some(1.0 / n + spontaneous)
        }
        _ => None,
    }
}

/// A saved instance state of any env.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum EnvState {
    ProcMaze(procmaze::State),
    ButtonGrid(buttongrid::State),
    PanFlute(panflute::State),
    OpenGrid(opengrid::State),
    Control(control::State),
    #[cfg(feature = "mujoco")]
    HalfCheetah(halfcheetah::State),
}

/// A batch of instances of one env.
/// The states and random streams of a [`Batch`]: restoring it continues the
/// batch exactly where it was.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct EnvSnapshot {
    pub states: Vec<EnvState>,
    pub streams: Vec<Stream>,
}

pub enum Batch {
    ProcMaze(ProcMaze),
    ButtonGrid(ButtonGrid),
    PanFlute(PanFlute),
    OpenGrid(OpenGrid),
    Control(Control),
    #[cfg(feature = "mujoco")]
    HalfCheetah(halfcheetah::HalfCheetah),
}

/// The error of an env that cannot be built in this binary.
#[derive(Debug, PartialEq)]
pub struct Unavailable(pub String);

macro_rules! each {
    ($self:expr, $env:ident => $body:expr) => {
        match $self {
            Batch::ProcMaze($env) => $body,
            Batch::ButtonGrid($env) => $body,
            Batch::PanFlute($env) => $body,
            Batch::OpenGrid($env) => $body,
            Batch::Control($env) => $body,
            #[cfg(feature = "mujoco")]
            Batch::HalfCheetah($env) => $body,
        }
    };
}

impl Batch {
    pub fn new(config: EnvConfig, layout: &Layout) -> Result<Batch, Unavailable> {
        let batch = match config {
            EnvConfig::ProcMaze(p) => Batch::ProcMaze(ProcMaze::new(p, layout)),
            EnvConfig::ButtonGrid(p) => Batch::ButtonGrid(ButtonGrid::new(p, layout)),
            EnvConfig::PanFlute(p) => Batch::PanFlute(PanFlute::new(p, layout)),
            EnvConfig::OpenGrid(p) => Batch::OpenGrid(OpenGrid::new(p, layout)),
            EnvConfig::Control(task, horizon) => {
                Batch::Control(Control::new(task, horizon, layout))
            }
            #[cfg(feature = "mujoco")]
            EnvConfig::HalfCheetah(horizon) => {
                Batch::HalfCheetah(halfcheetah::HalfCheetah::new(horizon, layout)?)
            }
            #[cfg(not(feature = "mujoco"))]
            EnvConfig::HalfCheetah(_) => {
                let msg = "halfcheetah needs MuJoCo: build with `--features mujoco`";
                return Err(Unavailable(msg.into()));
            }
        };
        Ok(batch)
    }

    pub fn spaces(&self) -> EnvSpaces {
        each!(self, env => env.spaces())
    }

    pub fn len(&self) -> usize {
        each!(self, env => env.len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A fresh episode for instance `i`.
    pub fn reset(&mut self, i: usize) {
        each!(self, env => env.reset(i))
    }

    /// Steps every instance; `rewards` and `terminals` get one entry each.
    pub fn step(&mut self, actions: Actions, rewards: &mut [f32], terminals: &mut [bool]) {
        each!(self, env => env.step(actions, rewards, terminals))
    }

    /// Writes instance `i`'s observation (`obs_dim` floats).
    pub fn observe(&self, i: usize, out: &mut [f32]) {
        each!(self, env => env.observe(i, out))
    }

    /// Observations of every instance, row-major `[n, obs_dim]`.
    pub fn observe_all(&self, out: &mut [f32]) {
        let d = self.spaces().obs_dim;
        for (i, row) in out.chunks_mut(d).enumerate() {
            self.observe(i, row);
        }
    }

    pub fn state(&self, i: usize) -> EnvState {
        match self {
            Batch::ProcMaze(env) => EnvState::ProcMaze(env.state(i).clone()),
            Batch::ButtonGrid(env) => EnvState::ButtonGrid(env.state(i).clone()),
            Batch::PanFlute(env) => EnvState::PanFlute(env.state(i).clone()),
            Batch::OpenGrid(env) => EnvState::OpenGrid(env.state(i).clone()),
            Batch::Control(env) => EnvState::Control(*env.state(i)),
            #[cfg(feature = "mujoco")]
            Batch::HalfCheetah(env) => EnvState::HalfCheetah(env.state(i)),
        }
    }

    /// Restores a state saved from an env of the same kind and parameters.
    /// Every instance's state and random stream, for a checkpoint.
    pub fn snapshot(&mut self) -> EnvSnapshot {
        EnvSnapshot {
            states: (0..self.len()).map(|i| self.state(i)).collect(),
            streams: each!(self, env => env.streams_mut().clone()),
        }
    }

    /// Puts back a [`Batch::snapshot`] of a batch with the same layout.
    pub fn restore(&mut self, snapshot: &EnvSnapshot) {
        for (i, state) in snapshot.states.iter().enumerate() {
            self.set_state(i, state);
        }
        each!(self, env => *env.streams_mut() = snapshot.streams.clone());
    }

    pub fn set_state(&mut self, i: usize, state: &EnvState) {
        match (self, state) {
            (Batch::ProcMaze(env), EnvState::ProcMaze(s)) => env.set_state(i, s),
            (Batch::ButtonGrid(env), EnvState::ButtonGrid(s)) => env.set_state(i, s),
            (Batch::PanFlute(env), EnvState::PanFlute(s)) => env.set_state(i, s),
            (Batch::OpenGrid(env), EnvState::OpenGrid(s)) => env.set_state(i, s),
            (Batch::Control(env), EnvState::Control(s)) => env.set_state(i, s),
            #[cfg(feature = "mujoco")]
            (Batch::HalfCheetah(env), EnvState::HalfCheetah(s)) => env.set_state(i, s),
            _ => unreachable!("a state is restored into the env kind it was saved from"),
        }
    }
}
