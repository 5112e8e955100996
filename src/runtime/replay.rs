//! Replay buffers, one per seed: circular, uniform sampling with replacement
//! from the filled part (young2022 spec §2).

use crate::seeds::Stream;

/// Transitions of one seed, stored flat.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct Replay {
    capacity: usize,
    obs_dim: usize,
    obs: Vec<f32>,
    next_obs: Vec<f32>,
    actions: Vec<usize>,
    rewards: Vec<f32>,
    terminals: Vec<bool>,
    location: usize,
    full: bool,
}

/// A sampled minibatch, appended to by [`Replay::sample_into`].
#[derive(Clone, Debug, Default)]
pub struct Sample {
    pub obs: Vec<f32>,
    pub next_obs: Vec<f32>,
    pub actions: Vec<usize>,
    pub rewards: Vec<f32>,
    pub terminals: Vec<bool>,
}

impl Sample {
    pub fn clear(&mut self) {
        self.obs.clear();
        self.next_obs.clear();
        self.actions.clear();
        self.rewards.clear();
        self.terminals.clear();
    }
}

impl Replay {
    pub fn new(capacity: usize, obs_dim: usize) -> Replay {
        Replay {
            capacity,
            obs_dim,
            obs: vec![0.0; capacity * obs_dim],
            next_obs: vec![0.0; capacity * obs_dim],
            actions: vec![0; capacity],
            rewards: vec![0.0; capacity],
            terminals: vec![false; capacity],
            location: 0,
            full: false,
        }
    }

    pub fn len(&self) -> usize {
        if self.full {
            self.capacity
        } else {
            self.location
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn add(
        &mut self,
        obs: &[f32],
        action: usize,
        reward: f32,
        next_obs: &[f32],
        terminal: bool,
    ) {
        let at = self.location;
        let d = self.obs_dim;
        self.obs[at * d..(at + 1) * d].copy_from_slice(obs);
        self.next_obs[at * d..(at + 1) * d].copy_from_slice(next_obs);
        self.actions[at] = action;
        self.rewards[at] = reward;
        self.terminals[at] = terminal;
        self.location = (at + 1) % self.capacity;
        self.full |= self.location == 0;
    }

    /// The next observation of the transition stored last.
    #[cfg(test)]
    pub(crate) fn last_next_obs(&self) -> &[f32] {
        let at = (self.location + self.capacity - 1) % self.capacity;
        &self.next_obs[at * self.obs_dim..(at + 1) * self.obs_dim]
    }

    /// Appends `n` transitions drawn uniformly with replacement.
    pub fn sample_into(&self, n: usize, rng: &mut Stream, out: &mut Sample) {
        let d = self.obs_dim;
        for _ in 0..n {
            let i = rng.below(self.len());
            out.obs.extend_from_slice(&self.obs[i * d..(i + 1) * d]);
            out.next_obs
                .extend_from_slice(&self.next_obs[i * d..(i + 1) * d]);
            out.actions.push(self.actions[i]);
            out.rewards.push(self.rewards[i]);
            out.terminals.push(self.terminals[i]);
        }
    }
}
