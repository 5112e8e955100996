//! ButtonGrid (young2022 spec §1.2): move onto buttons to toggle them; reward 1
//! on the step after all are on, and then the whole grid is reset.

use crate::envs::grid::{self, Cell};
use crate::envs::{Actions, Layout};
use crate::schema::{ActionSpace, EnvSpaces, ObsKind};
use crate::seeds::Stream;

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Params {
    pub grid_size: usize,
    pub buttons: usize,
    pub spontaneous_reset: bool,
    pub activate_on_reset: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct State {
    pub pos: Cell,
    pub buttons: Vec<Cell>,
    pub on: Vec<bool>,
}

pub struct ButtonGrid {
    params: Params,
    states: Vec<State>,
    rngs: Vec<Stream>,
}

/// `1 / (10 g^2)` per step (g=10: 0.001).
pub fn p_spontaneous(g: usize) -> f64 {
    1.0 / (10 * g * g) as f64
}

impl ButtonGrid {
    pub fn new(params: Params, layout: &Layout) -> ButtonGrid {
        let mut rngs = layout.streams();
        let states = rngs.iter_mut().map(|rng| generate(&params, rng)).collect();
        ButtonGrid {
            params,
            states,
            rngs,
        }
    }

    pub fn spaces(&self) -> EnvSpaces {
        let g = self.params.grid_size;
        EnvSpaces {
            obs_dim: 3 * g * g,
            obs: ObsKind::Binary,
            action: ActionSpace::Discrete(5),
            episodic: false,
            horizon: None,
        }
    }

    pub fn len(&self) -> usize {
        self.states.len()
    }

    pub fn reset(&mut self, i: usize) {
        self.states[i] = generate(&self.params, &mut self.rngs[i]);
    }

    /// Success is read before anything moves; only a move onto a button
    /// toggles it; a success replaces the whole state with a fresh reset.
    pub fn step(&mut self, actions: Actions, rewards: &mut [f32], terminals: &mut [bool]) {
        let Actions::Discrete(actions) = actions else {
            unreachable!("ButtonGrid has discrete actions")
        };
        let g = self.params.grid_size;
        let p = p_spontaneous(g);
        for i in 0..self.states.len() {
            let rng = &mut self.rngs[i];
            let state = &mut self.states[i];
            let success = state.on.iter().all(|b| *b);
            let new = grid::moved(state.pos, actions[i], g);
            let moved = new != state.pos;
            state.pos = new;
            for (loc, on) in state.buttons.iter().zip(state.on.iter_mut()) {
                if moved && *loc == state.pos {
                    *on = !*on;
                }
            }
            let spontaneous = self.params.spontaneous_reset && rng.bernoulli(p);
            let mut reset = success;
            if spontaneous {
                match self.params.activate_on_reset {
                    true => state.on.iter_mut().for_each(|b| *b = true),
                    // Without activation, the event resets the grid.
                    false => reset = true,
                }
            }
            if reset {
                *state = generate(&self.params, rng);
            }
            rewards[i] = success as u8 as f32;
            terminals[i] = false;
        }
    }

    /// Channels player, button on, button off at `(row*g + col)*3 + channel`.
    pub fn observe(&self, i: usize, out: &mut [f32]) {
        let g = self.params.grid_size;
        let state = &self.states[i];
        out.fill(0.0);
        out[grid::flat(state.pos, g) * 3] = 1.0;
        for (loc, on) in state.buttons.iter().zip(&state.on) {
            let channel = if *on { 1 } else { 2 };
            out[grid::flat(*loc, g) * 3 + channel] = 1.0;
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

/// Uniform position; buttons at distinct uniform cells (the player may stand on one); all off.
fn generate(params: &Params, rng: &mut Stream) -> State {
    let g = params.grid_size;
    let pos = [rng.below(g) as i32, rng.below(g) as i32];
    let mut cells: Vec<usize> = Vec::with_capacity(params.buttons);
    while cells.len() < params.buttons {
        let c = rng.below(g * g);
        if !cells.contains(&c) {
            cells.push(c);
        }
    }
    let buttons = cells.into_iter().map(|c| grid::unflat(c, g)).collect();
    State {
        pos,
        buttons,
        on: vec![false; params.buttons],
    }
}
