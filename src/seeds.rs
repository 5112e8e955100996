//! Random streams: one counter-based stream per (root seed, seed index, purpose).
//!
//! Every random draw in mbrl comes from a [`Stream`]. A stream is a ChaCha8
//! generator keyed by the root seed, the seed index and the purpose, with the
//! ChaCha stream id selecting one of several parallel instances (env `e` of a
//! seed). A seed's draws therefore never depend on how many other seeds run
//! beside it or in which shard: that is what makes batching invariant.

use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// What a stream is used for. Adding a purpose never changes existing streams.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Purpose {
    /// Training env instances: resets and spontaneous events.
    Env = 1,
    /// Evaluation env instances, one stream per evaluation round.
    EvalEnv = 2,
    /// Action sampling of the behaviour policy.
    Action = 3,
    /// Evaluation actions (a random agent's, or ties).
    EvalAction = 4,
    /// Parameter initialisation.
    Init = 5,
    /// Replay sampling.
    Replay = 6,
    /// Model rollouts (true-env or learned): env events.
    Rollout = 7,
    /// Actions taken inside model rollouts.
    RolloutAction = 8,
    /// Draws of a learned model's training step (latent samples).
    Model = 9,
    /// Exploration noise added to actions (SLBO's OU process).
    Noise = 10,
    /// Shuffles into minibatches (SLBO's value fits).
    Minibatch = 11,
}

/// A random stream; implements `rand::RngCore`.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct Stream(ChaCha8Rng);

impl Stream {
    /// The stream of `instance` for (root seed, seed index, purpose).
    pub fn new(root: u64, seed_idx: u64, purpose: Purpose, instance: u64) -> Stream {
        let key =
            mix(mix(mix(root) ^ seed_idx.wrapping_mul(0x9E37_79B9_7F4A_7C15)) ^ purpose as u64);
        let mut rng = ChaCha8Rng::seed_from_u64(key);
        rng.set_stream(instance);
        Stream(rng)
    }

    /// A uniform float in [0, 1).
    pub fn uniform(&mut self) -> f64 {
        (self.0.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// True with probability `p`.
    pub fn bernoulli(&mut self, p: f64) -> bool {
        self.uniform() < p
    }

    /// A uniform integer in `0..n` (n > 0), without modulo bias.
    pub fn below(&mut self, n: usize) -> usize {
        debug_assert!(n > 0);
        let n = n as u64;
        let zone = u64::MAX - u64::MAX % n;
        loop {
            let x = self.0.next_u64();
            if x < zone {
                return (x % n) as usize;
            }
        }
    }

    /// A standard normal draw (Box-Muller).
    pub fn normal(&mut self) -> f64 {
        let u1 = 1.0 - self.uniform();
        let u2 = self.uniform();
        (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
    }

    /// A uniform float in `[lo, hi)`.
    pub fn range(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.uniform()
    }
}

impl RngCore for Stream {
    fn next_u32(&mut self) -> u32 {
        self.0.next_u32()
    }

    fn next_u64(&mut self) -> u64 {
        self.0.next_u64()
    }

    fn fill_bytes(&mut self, dest: &mut [u8]) {
        self.0.fill_bytes(dest)
    }

    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rand::Error> {
        self.0.try_fill_bytes(dest)
    }
}

/// SplitMix64 finaliser: spreads nearby integers over the key space.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streams_are_independent_of_each_other_and_reproducible() {
        let a: Vec<u64> = (0..4)
            .map(|_| Stream::new(7, 3, Purpose::Env, 0).next_u64())
            .collect();
        assert!(a.windows(2).all(|w| w[0] == w[1]), "same key, same draws");
        let mut seen = std::collections::HashSet::new();
        for seed in 0..4 {
            for purpose in [Purpose::Env, Purpose::Action] {
                for inst in 0..4 {
                    assert!(seen.insert(Stream::new(7, seed, purpose, inst).next_u64()));
                }
            }
        }
    }

    #[test]
    fn below_is_uniform() {
        let mut s = Stream::new(1, 0, Purpose::Env, 0);
        let mut counts = [0usize; 5];
        for _ in 0..50_000 {
            counts[s.below(5)] += 1;
        }
        for c in counts {
            assert!((c as f64 - 10_000.0).abs() < 400.0, "{counts:?}");
        }
    }
}
