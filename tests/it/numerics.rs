//! The tensor building blocks: gradients against finite differences, the
//! reference Adam, batch invariance of training, and NaN isolation per seed.

use dfdx::prelude::*;

use mbrl::runtime::dqn::DqnLearner;
use mbrl::runtime::seeds::{Purpose, Stream};
use mbrl::runtime::shard;
use mbrl::tensor::losses::{td_loss, TdBatch};
use mbrl::tensor::mlp::{self, Activation, Init, Mlp, NetId};
use mbrl::tensor::optim::{AdamConfig, Moments};
use mbrl::tensor::{Dev, T3};

fn randn(rng: &mut Stream, n: usize, scale: f64) -> Vec<f32> {
    (0..n).map(|_| (rng.normal() * scale) as f32).collect()
}

/// Central differences of `loss` in each of `k` sampled parameters of every
/// layer, against the backward gradient.
fn check_mlp_gradients(net: &Mlp, loss: &dyn Fn(&Mlp, bool) -> (f32, Option<Vec<Vec<f32>>>)) {
    let (_, grads) = loss(net, true);
    let grads = grads.unwrap();
    let eps = 1e-3f32;
    let mut rng = Stream::new(9, 0, Purpose::Init, 99);
    for (layer, w) in net.weights.iter().enumerate() {
        let base = w.as_vec();
        for _ in 0..6 {
            let idx = rng.below(base.len());
            let eval = |delta: f32| {
                let mut perturbed = net.clone();
                let mut data = base.clone();
                data[idx] += delta;
                perturbed.weights[layer] = w.device().tensor_from_vec(data, *w.shape());
                loss(&perturbed, false).0
            };
            let fd = (eval(eps) - eval(-eps)) / (2.0 * eps);
            let g = grads[layer][idx];
            assert!(
                (fd - g).abs() <= 2e-2 * g.abs().max(fd.abs()) + 2e-3,
                "layer {layer} idx {idx}: fd {fd} vs backward {g}"
            );
        }
    }
}

fn small_net(activation: Activation) -> Mlp {
    Mlp::new(
        &Dev::default(),
        1,
        &[0, 1],
        NetId(0),
        &[4, 6, 5, 3],
        activation,
        Init::Haiku,
    )
}

fn weight_grads(net: &Mlp, grads: &Gradients<f32, Dev>) -> Vec<Vec<f32>> {
    net.weights.iter().map(|w| grads.get(w).as_vec()).collect()
}

#[test]
fn mlp_gradients_match_finite_differences() {
    let dev = Dev::default();
    let mut rng = Stream::new(3, 0, Purpose::Init, 0);
    let x: T3 = dev.tensor_from_vec(randn(&mut rng, 2 * 7 * 4, 1.5), (2, 7, 4));
    let c: T3 = dev.tensor_from_vec(randn(&mut rng, 2 * 7 * 3, 1.0), (2, 7, 3));
    for activation in [Activation::Elu, Activation::Relu, Activation::Tanh] {
        let net = small_net(activation);
        let loss = |net: &Mlp, grad: bool| {
            let out = net.forward(x.clone().traced(Gradients::leaky()));
            let l = (out * c.clone()).sum::<(), _>();
            let value = l.array();
            let grads = grad.then(|| weight_grads(net, &l.backward()));
            (value, grads)
        };
        check_mlp_gradients(&net, &loss);
    }
}

/// The fused ELU equals the composed dfdx version in value and gradient.
#[test]
fn fused_elu_matches_composed_elu() {
    let dev = Dev::default();
    let mut rng = Stream::new(4, 0, Purpose::Init, 0);
    let data = randn(&mut rng, 2 * 5 * 9, 3.0);
    let x: T3 = dev.tensor_from_vec(data.clone(), (2, 5, 9));
    let w: T3 = dev.tensor_from_vec(randn(&mut rng, 90, 1.0), (2, 5, 9));
    let run = |fused: bool| {
        let t = x.clone().traced(Gradients::leaky());
        let y = if fused {
            mlp::elu(t)
        } else {
            mlp::elu_composed(t)
        };
        let values = y.retaped::<NoneTape>().as_vec();
        let g = (y * w.clone()).sum::<(), _>().backward();
        (values, g.get(&x).as_vec())
    };
    let (yf, gf) = run(true);
    let (yc, gc) = run(false);
    for i in 0..yf.len() {
        assert!(
            (yf[i] - yc[i]).abs() < 1e-6,
            "value at {} ({}): {} vs {}",
            i,
            data[i],
            yf[i],
            yc[i]
        );
        assert!(
            (gf[i] - gc[i]).abs() < 1e-5,
            "grad at {i}: {} vs {}",
            gf[i],
            gc[i]
        );
    }
}

#[test]
fn exp_approximation_is_accurate() {
    let mut worst: f64 = 0.0;
    for k in 0..=87_000 {
        let x = -(k as f32) / 1000.0;
        let approx = mlp::exp_nonpositive(x) as f64;
        let exact = (x as f64).exp();
        worst = worst.max((approx - exact).abs() / exact);
    }
    assert!(worst < 4e-7, "worst relative error {worst}");
    assert_eq!(mlp::exp_nonpositive(0.0), 1.0);
    assert_eq!(mlp::exp_nonpositive(-1000.0), mlp::exp_nonpositive(-87.0));
}

fn td_batch(dev: &Dev, seeds: &[u64], b: usize, actions: usize, round: u64) -> (T3, T3, TdBatch) {
    let (mut obs, mut next, mut acts, mut rewards, mut disc, mut weights) =
        (vec![], vec![], vec![], vec![], vec![], vec![]);
    for seed in seeds {
        let mut rng = Stream::new(7, *seed, Purpose::Replay, round);
        obs.extend((0..b * 4).map(|_| rng.below(2) as f32));
        next.extend((0..b * 4).map(|_| rng.below(2) as f32));
        acts.extend((0..b).map(|_| rng.below(actions)));
        rewards.extend((0..b).map(|_| rng.normal() as f32));
        disc.extend((0..b).map(|_| 0.9 * rng.uniform() as f32));
        weights.extend((0..b).map(|_| rng.below(2) as f32));
    }
    let s = seeds.len();
    let batch = TdBatch {
        actions: dev.tensor_from_vec(acts, (s, b)),
        rewards: dev.tensor_from_vec(rewards, (s, b)),
        discounts: dev.tensor_from_vec(disc, (s, b)),
        weights: dev.tensor_from_vec(weights, (s, b)),
    };
    (
        dev.tensor_from_vec(obs, (s, b, 4)),
        dev.tensor_from_vec(next, (s, b, 4)),
        batch,
    )
}

/// The weighted, continuation-discounted TD loss against finite differences.
#[test]
fn td_loss_gradients_match_finite_differences() {
    let dev = Dev::default();
    let (obs, next, batch) = td_batch(&dev, &[0, 1], 9, 3, 0);
    let target = small_net(Activation::Elu);
    let net = Mlp::new(
        &dev,
        2,
        &[0, 1],
        NetId(0),
        &[4, 6, 5, 3],
        Activation::Elu,
        Init::Haiku,
    );
    let loss = |net: &Mlp, grad: bool| {
        let q = net.forward(obs.clone().traced(Gradients::leaky()));
        let (l, _) = td_loss(q, target.forward(next.clone()), &batch);
        let value = l.array();
        let grads = grad.then(|| weight_grads(net, &l.backward()));
        (value, grads)
    };
    check_mlp_gradients(&net, &loss);
}

/// One step of the reference Adam against its formula (young2022 spec §2).
#[test]
fn adam_matches_the_reference_formula() {
    let dev = Dev::default();
    let cfg = AdamConfig::young(1e-3);
    let x0 = [0.5f32, -1.0, 2.0];
    let g = [0.1f32, -0.3, 0.0];
    let mut p = dev.tensor_from_vec(x0.to_vec(), (3usize,));
    let mut m = Moments::zeros(&p);
    let grad = dev.tensor_from_vec(g.to_vec(), (3usize,));
    for t in 0..2 {
        m.step(&cfg, t, &mut p, &grad);
    }
    let got = p.as_vec();
    for i in 0..3 {
        let (mut x, mut mm, mut vv) = (x0[i] as f64, 0.0, 0.0);
        for t in 0..2 {
            let gi = g[i] as f64;
            mm = (1.0 - 0.9) * gi + 0.9 * mm;
            vv = (1.0 - 0.99) * gi * gi + 0.99 * vv;
            let mhat = mm / (1.0 - 0.9f64.powi(t + 1));
            let vhat = vv / (1.0 - 0.99f64.powi(t + 1));
            x = x - 1e-3 * mhat / (vhat.sqrt() + 1e-5) - 1e-6 * x;
        }
        assert!(
            (got[i] as f64 - x).abs() < 1e-6,
            "param {i}: {} vs {x}",
            got[i]
        );
    }
}

/// Trains the seeds of `shard` for `updates` steps on per-seed data; returns each seed's parameters.
fn train(seeds: &[u64], updates: u64, nan_seed: Option<u64>) -> Vec<Vec<f32>> {
    let dev = Dev::default();
    let mut learner = DqnLearner::new(
        &dev,
        5,
        seeds,
        &[4, 16, 16, 3],
        Activation::Elu,
        AdamConfig::young(1e-3),
    );
    for u in 0..updates {
        if u % 10 == 0 {
            learner.sync_target();
        }
        let (obs, next, mut batch) = td_batch(&dev, seeds, 8, 3, u);
        if let Some(bad) = nan_seed.and_then(|b| seeds.iter().position(|s| *s == b)) {
            let mut r = batch.rewards.as_vec();
            r[bad * 8] = f32::NAN;
            batch.rewards = dev.tensor_from_vec(r, (seeds.len(), 8));
        }
        let losses = learner.update(obs, next, &batch);
        for (s, l) in seeds.iter().zip(&losses) {
            assert_eq!(l.is_finite(), Some(*s) != nan_seed, "seed {s} loss {l}");
        }
    }
    (0..seeds.len())
        .map(|s| learner.q.params_of_seed(s))
        .collect()
}

/// Seed 3's parameters after 200 updates are bit-identical alone, in a batch
/// of 8, and sharded over 1 or 2 worker threads.
#[test]
fn training_is_batch_invariant() {
    let alone = train(&[3], 200, None).remove(0);
    let seeds: Vec<u64> = (0..8).collect();
    let batched = train(&seeds, 200, None);
    assert_eq!(alone, batched[3]);
    for threads in [1, 2] {
        let sharded: Vec<Vec<f32>> = shard::run(&seeds, threads, |s| train(s, 200, None))
            .into_iter()
            .flatten()
            .collect();
        assert_eq!(alone, sharded[3], "{threads} worker thread(s)");
    }
}

/// A NaN in one seed's data shows in that seed's loss only and leaves the other seeds untouched.
#[test]
fn nan_in_one_seed_does_not_touch_the_others() {
    let clean = train(&[0, 1, 2], 20, None);
    let poisoned = train(&[0, 1, 2], 20, Some(1));
    assert_eq!(clean[0], poisoned[0]);
    assert_eq!(clean[2], poisoned[2]);
    assert!(poisoned[1].iter().any(|x| !x.is_finite()));
}
