//! PanFlute (young2022 spec §1.3): N pipes of lengths 1..N; blowing pipe i
//! shifts every pipe and sets the first cell of pipe i; reward when every
//! pipe's last cell is set. `pipe_i[k]` at step t is `[a_{t-1-k} == i]`, so
//! playing N-1, ..., 1, 0 cyclically earns a reward every N steps.

use crate::envs::{Actions, Layout};
use crate::schema::{ActionSpace, EnvSpaces, ObsKind};
use crate::seeds::Stream;

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Params {
    pub pipes: usize,
    pub spontaneous_reward: bool,
}

/// The concatenated pipes: pipe i occupies `offset(i)..offset(i) + i + 1`.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct State {
    pub bits: Vec<bool>,
}

pub struct PanFlute {
    params: Params,
    states: Vec<State>,
    rngs: Vec<Stream>,
}

/// `1 / N^2` per step (N=5: 0.04).
pub fn p_spontaneous(n: usize) -> f64 {
    1.0 / (n * n) as f64
}

fn offset(i: usize) -> usize {
    i * (i + 1) / 2
}

impl PanFlute {
    pub fn new(params: Params, layout: &Layout) -> PanFlute {
        let n = params.pipes;
        let rngs = layout.streams();
        let states = vec![
            State {
                bits: vec![false; n * (n + 1) / 2]
            };
            rngs.len()
        ];
        PanFlute {
            params,
            states,
            rngs,
        }
    }

    pub fn spaces(&self) -> EnvSpaces {
        let n = self.params.pipes;
        EnvSpaces {
            obs_dim: n * (n + 1) / 2,
            obs: ObsKind::Binary,
            action: ActionSpace::Discrete(n),
            episodic: false,
            horizon: None,
        }
    }

    pub fn len(&self) -> usize {
        self.states.len()
    }

    /// All pipes empty (deterministic).
    pub fn reset(&mut self, i: usize) {
        self.states[i].bits.fill(false);
    }

    pub fn step(&mut self, actions: Actions, rewards: &mut [f32], terminals: &mut [bool]) {
        let Actions::Discrete(actions) = actions else {
            unreachable!("PanFlute has discrete actions")
        };
        let n = self.params.pipes;
        let p = p_spontaneous(n);
        for (i, state) in self.states.iter_mut().enumerate() {
            let reward = (0..n).all(|pipe| state.bits[offset(pipe) + pipe]);
            let spontaneous = self.params.spontaneous_reward && self.rngs[i].bernoulli(p);
            for pipe in 0..n {
                let cells = &mut state.bits[offset(pipe)..offset(pipe) + pipe + 1];
                cells.rotate_right(1);
                cells[0] = pipe == actions[i];
                if spontaneous {
                    cells[pipe] = true;
                }
            }
            rewards[i] = reward as u8 as f32;
            terminals[i] = false;
        }
    }

    pub fn observe(&self, i: usize, out: &mut [f32]) {
        for (o, b) in out.iter_mut().zip(&self.states[i].bits) {
            *o = *b as u8 as f32;
        }
    }

    pub fn state(&self, i: usize) -> &State {
        &self.states[i]
    }

    /// The instances' random streams (for checkpoints).
    pub fn streams_mut(&mut self) -> &mut Vec<Stream> {
        &mut self.rngs
    }

    pub fn set_state(&mut self, i: usize, state: &State) {
        self.states[i].clone_from(state);
    }
}
