//! SLBO's real-data buffer (vaslbo spec §1.2): a FIFO ring of transitions
//! with their `done` and `timeout` flags, sampled as multi-step sequences.

use crate::seeds::Stream;

/// One seed's transitions, stored flat in a ring.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Fifo {
    capacity: usize,
    obs_dim: usize,
    act_dim: usize,
    states: Vec<f32>,
    actions: Vec<f32>,
    next_states: Vec<f32>,
    rewards: Vec<f32>,
    dones: Vec<bool>,
    timeouts: Vec<bool>,
    /// Where the next transition goes, and how many are held.
    next: usize,
    len: usize,
}

/// `horizon` consecutive steps of `rows` sequences: `states[h]` holds the
/// rows' states at step h, and so on. `masks[h]` is 0 where step h ended an
/// episode or a chunk (`done | timeout`): the model must not roll through it.
#[derive(Clone, Debug, Default)]
pub struct Sequences {
    pub rows: usize,
    pub states: Vec<Vec<f32>>,
    pub actions: Vec<Vec<f32>>,
    pub next_states: Vec<Vec<f32>>,
    pub masks: Vec<Vec<f32>>,
}

impl Fifo {
    pub fn new(capacity: usize, obs_dim: usize, act_dim: usize) -> Fifo {
        Fifo {
            capacity,
            obs_dim,
            act_dim,
            states: Vec::new(),
            actions: Vec::new(),
            next_states: Vec::new(),
            rewards: Vec::new(),
            dones: Vec::new(),
            timeouts: Vec::new(),
            next: 0,
            len: 0,
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Adds a transition, overwriting the oldest when full.
    #[allow(clippy::too_many_arguments)]
    pub fn add(
        &mut self,
        state: &[f32],
        action: &[f32],
        next_state: &[f32],
        reward: f32,
        done: bool,
        timeout: bool,
    ) {
        let (d, a) = (self.obs_dim, self.act_dim);
        if self.len < self.capacity {
            self.states.extend_from_slice(state);
            self.actions.extend_from_slice(action);
            self.next_states.extend_from_slice(next_state);
            self.rewards.push(reward);
            self.dones.push(done);
            self.timeouts.push(timeout);
            self.len += 1;
        } else {
            let i = self.next;
            self.states[i * d..(i + 1) * d].copy_from_slice(state);
            self.actions[i * a..(i + 1) * a].copy_from_slice(action);
            self.next_states[i * d..(i + 1) * d].copy_from_slice(next_state);
            self.rewards[i] = reward;
            self.dones[i] = done;
            self.timeouts[i] = timeout;
        }
        self.next = (self.next + 1) % self.capacity;
    }

    /// Marks the transition added last as the end of a chunk (a timeout):
    /// multi-step sequences never cross from one stage's data into the next.
    pub fn end_chunk(&mut self) {
        if self.len > 0 {
            let last = (self.next + self.capacity - 1) % self.capacity;
            self.timeouts[last] = true;
        }
    }

    /// A stored state, for virtual episodes that start from real data.
    pub fn state(&self, i: usize) -> &[f32] {
        &self.states[i * self.obs_dim..(i + 1) * self.obs_dim]
    }

    /// `rows` sequences of `horizon` steps: starts uniform over the held
    /// items, step h is item `(start + h) % len` in storage order (the
    /// released `sample_multi_step`).
    pub fn sample(&self, rows: usize, horizon: usize, rng: &mut Stream) -> Sequences {
        let (d, a) = (self.obs_dim, self.act_dim);
        let starts: Vec<usize> = (0..rows).map(|_| rng.below(self.len)).collect();
        let mut out = Sequences {
            rows,
            ..Sequences::default()
        };
        for h in 0..horizon {
            let (mut s, mut act, mut next, mut mask) = (
                Vec::with_capacity(rows * d),
                Vec::with_capacity(rows * a),
                Vec::with_capacity(rows * d),
                Vec::with_capacity(rows),
            );
            for start in &starts {
                let i = (start + h) % self.len;
                s.extend_from_slice(&self.states[i * d..(i + 1) * d]);
                act.extend_from_slice(&self.actions[i * a..(i + 1) * a]);
                next.extend_from_slice(&self.next_states[i * d..(i + 1) * d]);
                mask.push(f32::from(u8::from(!(self.dones[i] || self.timeouts[i]))));
            }
            out.states.push(s);
            out.actions.push(act);
            out.next_states.push(next);
            out.masks.push(mask);
        }
        out
    }
}
