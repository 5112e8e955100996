//! OpenGrid (young2022 spec §1.4): an empty grid, goal in the far corner,
//! reward -1 per step, termination as in ProcMaze, spontaneous teleports.

use crate::envs::grid::{self, Cell};
use crate::envs::{Actions, Layout};
use crate::schema::{ActionSpace, EnvSpaces, ObsKind};
use crate::seeds::Stream;

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Params {
    pub grid_size: usize,
    pub spontaneous_termination: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct State {
    pub pos: Cell,
}

pub struct OpenGrid {
    params: Params,
    states: Vec<State>,
    rngs: Vec<Stream>,
}

/// `0.1 / g` per step.
pub fn p_goal(g: usize) -> f64 {
    0.1 / g as f64
}

impl OpenGrid {
    pub fn new(params: Params, layout: &Layout) -> OpenGrid {
        let g = params.grid_size;
        let mut rngs = layout.streams();
        let states = rngs
            .iter_mut()
            .map(|rng| State {
                pos: [rng.below(g) as i32, rng.below(g) as i32],
            })
            .collect();
        OpenGrid {
            params,
            states,
            rngs,
        }
    }

    pub fn spaces(&self) -> EnvSpaces {
        let g = self.params.grid_size;
        EnvSpaces {
            obs_dim: g * g,
            obs: ObsKind::Binary,
            action: ActionSpace::Discrete(5),
            episodic: true,
            horizon: None,
        }
    }

    pub fn len(&self) -> usize {
        self.states.len()
    }

    fn goal(&self) -> Cell {
        let g = self.params.grid_size as i32;
        [g - 1, g - 1]
    }

    pub fn reset(&mut self, i: usize) {
        let g = self.params.grid_size;
        let rng = &mut self.rngs[i];
        self.states[i].pos = [rng.below(g) as i32, rng.below(g) as i32];
    }

    pub fn step(&mut self, actions: Actions, rewards: &mut [f32], terminals: &mut [bool]) {
        let Actions::Discrete(actions) = actions else {
            unreachable!("OpenGrid has discrete actions")
        };
        let g = self.params.grid_size;
        let goal = self.goal();
        for (i, state) in self.states.iter_mut().enumerate() {
            terminals[i] = state.pos == goal;
            rewards[i] = -1.0;
            state.pos = grid::moved(state.pos, actions[i], g);
            if self.params.spontaneous_termination && self.rngs[i].bernoulli(p_goal(g)) {
                state.pos = goal;
            }
        }
    }

    /// The player channel only.
    pub fn observe(&self, i: usize, out: &mut [f32]) {
        out.fill(0.0);
        out[grid::flat(self.states[i].pos, self.params.grid_size)] = 1.0;
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
