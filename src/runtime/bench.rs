//! `mbrl bench`: the ER DQN update of young2022 spec §3.1 at the reference's
//! size (Q 64 -> 200 -> 200 -> 200 -> 5, ELU, batch 320, target forward, Adam)
//! for a batch of seeds sharded over worker threads.

use std::time::Instant;

use crate::kinds::dqn::learner::q::QLearner;
use crate::runtime::shard;
use crate::seeds::{Purpose, Stream};
use crate::tensor::losses::TdRows;
use crate::tensor::mlp::{Activation, Init};
use crate::tensor::optim::AdamConfig;
use crate::tensor::Precision;

pub struct DqnBench {
    pub seeds: usize,
    pub threads: usize,
    pub updates: usize,
    pub obs_dim: usize,
    pub hidden: Vec<usize>,
    pub actions: usize,
    pub batch: usize,
    /// Seeds per batched update within a worker.
    pub micro_batch: usize,
    /// Through dfdx's tape (always so on a CUDA build), not the fused CPU update.
    pub taped: bool,
    /// The arithmetic of the fused update's products.
    pub precision: Precision,
}

pub struct BenchResult {
    pub seconds: f64,
    /// Seed-updates per second (one update of one seed's Q).
    pub seed_updates_per_s: f64,
    /// Batched updates per second (all seeds once).
    pub updates_per_s: f64,
    pub gflops: f64,
}

impl DqnBench {
    /// The reference ER configuration on ProcMaze g=4.
    pub fn reference(seeds: usize, threads: usize, updates: usize) -> DqnBench {
        DqnBench {
            seeds,
            threads,
            updates,
            obs_dim: 64,
            hidden: vec![200, 200, 200],
            actions: 5,
            batch: 320,
            micro_batch: 1,
            taped: false,
            precision: Precision::Fp32,
        }
    }

    fn dims(&self) -> Vec<usize> {
        let mut dims = vec![self.obs_dim];
        dims.extend(&self.hidden);
        dims.push(self.actions);
        dims
    }

    /// FLOPs of one seed-update (see [`q_update_flops`]).
    pub fn flops_per_seed_update(&self) -> f64 {
        q_update_flops(&self.dims(), self.batch, false)
    }

    pub fn run(&self) -> Result<BenchResult, crate::tensor::DeviceError> {
        crate::tensor::device()?;
        let seeds: Vec<u64> = (0..self.seeds as u64).collect();
        let dims = self.dims();
        // Only the updates are timed: every worker builds its learners and
        // batches, runs one warm-up update, then waits for the others.
        let ready = std::sync::Barrier::new(shard::shards(seeds.len(), self.threads).len());
        let spans = shard::run(&seeds, self.threads, |shard| {
            let dev = crate::tensor::device().expect("the device opened above");
            // One learner per micro-batch of seeds, as the agent loop groups them.
            let mut groups: Vec<_> = shard
                .chunks(self.micro_batch.max(1))
                .map(|seeds| {
                    let mut learner = QLearner::new(
                        &dev,
                        0,
                        seeds,
                        &dims,
                        Activation::Elu,
                        Init::Haiku,
                        AdamConfig::young(5e-5),
                    );
                    if self.taped {
                        learner.use_taped();
                    }
                    learner.set_precision(self.precision);
                    let rows = random_batch(seeds, self.batch, self.obs_dim, self.actions);
                    (learner, rows)
                })
                .collect();
            for (learner, rows) in &mut groups {
                learner.sync_target();
                learner.update(rows);
            }
            ready.wait();
            let start = Instant::now();
            for u in 0..self.updates {
                for (learner, rows) in &mut groups {
                    if u % 100 == 99 {
                        learner.sync_target();
                    }
                    learner.update(rows);
                }
            }
            (start, Instant::now())
        });
        let start = spans
            .iter()
            .map(|s| s.0)
            .min()
            .expect("one worker at least");
        let end = spans
            .iter()
            .map(|s| s.1)
            .max()
            .expect("one worker at least");
        let seconds = (end - start).as_secs_f64();
        let seed_updates = (self.seeds * self.updates) as f64;
        Ok(BenchResult {
            seconds,
            seed_updates_per_s: seed_updates / seconds,
            updates_per_s: self.updates as f64 / seconds,
            gflops: seed_updates * self.flops_per_seed_update() / seconds / 1e9,
        })
    }
}

/// FLOPs of one seed's Q update on `rows` rows with layer widths `dims`, as
/// computed: the target's forward pass, Q's forward pass (unless it is
/// reused from the rollouts that chose the actions, `forward_reused`), and
/// the backward pass's weight gradients and input gradients (none for the
/// first layer's input, which nothing needs).
pub fn q_update_flops(dims: &[usize], rows: usize, forward_reused: bool) -> f64 {
    let macs: Vec<usize> = dims.windows(2).map(|w| w[0] * w[1]).collect();
    let all: usize = macs.iter().sum();
    let passes = if forward_reused { 3 } else { 4 };
    2.0 * (rows * (passes * all - macs[0])) as f64
}

/// A fixed batch of binary observations and random actions and rewards, per seed.
pub fn random_batch(seeds: &[u64], batch: usize, obs_dim: usize, actions: usize) -> TdRows {
    let s = seeds.len();
    let mut rows = TdRows {
        n_seeds: s,
        d: obs_dim,
        discounts: vec![0.9; s * batch],
        weights: vec![1.0; s * batch],
        ..TdRows::default()
    };
    for seed in seeds {
        let mut rng = Stream::new(0, *seed, Purpose::Replay, 0);
        rows.obs
            .extend((0..batch * obs_dim).map(|_| rng.below(2) as f32));
        rows.next_obs
            .extend((0..batch * obs_dim).map(|_| rng.below(2) as f32));
        rows.actions.extend((0..batch).map(|_| rng.below(actions)));
        rows.rewards
            .extend((0..batch).map(|_| -(rng.below(2) as f32)));
    }
    rows
}
