//! ProcMaze (young2022 spec §1.1): a fresh random maze every episode, reward
//! -1 per step, termination on the step taken from the goal, and spontaneous
//! teleports to the goal.

use crate::envs::grid::{self, Cell, MOVES};
use crate::envs::{Actions, Layout};
use crate::schema::{ActionSpace, EnvSpaces, ObsKind};
use crate::seeds::Stream;

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Params {
    pub grid_size: usize,
    pub spontaneous_termination: bool,
    pub teleport_on_termination: bool,
}

/// One maze: goal, walls, and the agent's position.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct State {
    pub goal: Cell,
    pub walls: Vec<bool>,
    pub pos: Cell,
}

pub struct ProcMaze {
    params: Params,
    states: Vec<State>,
    rngs: Vec<Stream>,
}

/// `0.1 / ((g+1) ceil(g/2) - g%2)`: a tenth of the rate implied by the optimal
/// time to solve the worst-case maze (g=4: 0.01).
pub fn p_goal(g: usize) -> f64 {
    0.1 / ((g + 1) * g.div_ceil(2) - g % 2) as f64
}

impl ProcMaze {
    pub fn new(params: Params, layout: &Layout) -> ProcMaze {
        let mut rngs = layout.streams();
        let states = rngs
            .iter_mut()
            .map(|rng| generate(params.grid_size, rng))
            .collect();
        ProcMaze {
            params,
            states,
            rngs,
        }
    }

    pub fn spaces(&self) -> EnvSpaces {
        let g = self.params.grid_size;
        EnvSpaces {
            obs_dim: 4 * g * g,
            obs: ObsKind::Binary,
            action: ActionSpace::Discrete(5),
            episodic: true,
            horizon: None,
        }
    }

    pub fn len(&self) -> usize {
        self.states.len()
    }

    pub fn reset(&mut self, i: usize) {
        self.states[i] = generate(self.params.grid_size, &mut self.rngs[i]);
    }

    /// One step of every instance, in the spec's order: terminal from the
    /// pre-step position, reward -1, move unless into a wall, then the
    /// spontaneous event.
    pub fn step(&mut self, actions: Actions, rewards: &mut [f32], terminals: &mut [bool]) {
        let Actions::Discrete(actions) = actions else {
            unreachable!("ProcMaze has discrete actions")
        };
        let g = self.params.grid_size;
        let p = p_goal(g);
        for (i, state) in self.states.iter_mut().enumerate() {
            let mut terminal = state.pos == state.goal;
            rewards[i] = -1.0;
            let new = grid::moved(state.pos, actions[i], g);
            if !state.walls[grid::flat(new, g)] {
                state.pos = new;
            }
            if self.params.spontaneous_termination && self.rngs[i].bernoulli(p) {
                match self.params.teleport_on_termination {
                    true => state.pos = state.goal,
                    // Without teleporting, the event ends the episode at once.
                    false => terminal = true,
                }
            }
            terminals[i] = terminal;
        }
    }

    /// Channels player, goal, wall, empty at `(row*g + col)*4 + channel`.
    pub fn observe(&self, i: usize, out: &mut [f32]) {
        let g = self.params.grid_size;
        let state = &self.states[i];
        out.fill(0.0);
        for cell in 0..g * g {
            let wall = state.walls[cell];
            out[cell * 4 + 2] = wall as u8 as f32;
            out[cell * 4 + 3] = !wall as u8 as f32;
        }
        out[grid::flat(state.pos, g) * 4] = 1.0;
        out[grid::flat(state.goal, g) * 4 + 1] = 1.0;
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

/// A maze by randomized depth-first search over cells: a tree of open cells
/// with no loops and no 2x2 open block; start and goal uniform and independent.
pub fn generate(g: usize, rng: &mut Stream) -> State {
    let mut walls = vec![true; g * g];
    let mut visited = vec![false; g * g];
    let start = [rng.below(g) as i32, rng.below(g) as i32];
    walls[grid::flat(start, g)] = false;
    visited[grid::flat(start, g)] = true;
    let mut stack = vec![start];
    let mut expandable = Vec::with_capacity(5);
    while let Some(curr) = stack.pop() {
        expandable.clear();
        for d in MOVES {
            let n = [curr[0] + d[0], curr[1] + d[1]];
            if grid::on_grid(n, g)
                && !visited[grid::flat(n, g)]
                && visited_neighbours(n, &visited, g) == 1
            {
                expandable.push(n);
            }
        }
        if expandable.is_empty() {
            continue;
        }
        let next = expandable[rng.below(expandable.len())];
        stack.push(curr);
        stack.push(next);
        walls[grid::flat(next, g)] = false;
        visited[grid::flat(next, g)] = true;
    }
    let open: Vec<usize> = (0..g * g).filter(|c| !walls[*c]).collect();
    let pos = grid::unflat(open[rng.below(open.len())], g);
    let goal = grid::unflat(open[rng.below(open.len())], g);
    State { goal, walls, pos }
}

/// Visited cells among `n + MOVES` on the grid (n itself is unvisited).
fn visited_neighbours(n: Cell, visited: &[bool], g: usize) -> usize {
    MOVES
        .iter()
        .map(|d| [n[0] + d[0], n[1] + d[1]])
        .filter(|c| grid::on_grid(*c, g) && visited[grid::flat(*c, g)])
        .count()
}
