//! The tensor building blocks: gradients against finite differences, the
//! reference Adam, batch invariance of training, and NaN isolation per seed.

use dfdx::prelude::*;

use mbrl::kinds::dqn::learner::q::QLearner;
use mbrl::runtime::shard;
use mbrl::seeds::{Purpose, Stream};
use mbrl::tensor::losses::{td_loss, TdRows};
use mbrl::tensor::mlp::{self, Activation, Init, Mlp, NetId};
use mbrl::tensor::optim::{AdamConfig, Moments};
use mbrl::tensor::{Dev, T3};

fn randn(rng: &mut Stream, n: usize, scale: f64) -> Vec<f32> {
    (0..n).map(|_| (rng.normal() * scale) as f32).collect()
}

/// Central differences of `loss` in each of `k` sampled parameters of every
/// layer, against the backward gradient.
/// A loss of a network: its value, and its gradients when asked (`true`).
type LossFn<'a> = dyn Fn(&Mlp, bool) -> (f32, Option<Vec<Vec<f32>>>) + 'a;

fn check_mlp_gradients(net: &Mlp, loss: &LossFn<'_>) {
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
        let approx = mbrl::tensor::kernels::exp_nonpositive(x) as f64;
        let exact = (x as f64).exp();
        worst = worst.max((approx - exact).abs() / exact);
    }
    assert!(worst < 4e-7, "worst relative error {worst}");
    assert_eq!(mbrl::tensor::kernels::exp_nonpositive(0.0), 1.0);
    assert_eq!(
        mbrl::tensor::kernels::exp_nonpositive(-1000.0),
        mbrl::tensor::kernels::exp_nonpositive(-87.0)
    );
}

pub(crate) fn td_batch(seeds: &[u64], b: usize, actions: usize, round: u64) -> TdRows {
    let mut rows = TdRows {
        n_seeds: seeds.len(),
        d: 4,
        ..TdRows::default()
    };
    for seed in seeds {
        let mut rng = Stream::new(7, *seed, Purpose::Replay, round);
        rows.obs.extend((0..b * 4).map(|_| rng.below(2) as f32));
        rows.next_obs
            .extend((0..b * 4).map(|_| rng.below(2) as f32));
        rows.actions.extend((0..b).map(|_| rng.below(actions)));
        rows.rewards.extend((0..b).map(|_| rng.normal() as f32));
        rows.discounts
            .extend((0..b).map(|_| 0.9 * rng.uniform() as f32));
        rows.weights.extend((0..b).map(|_| rng.below(2) as f32));
    }
    rows
}

/// The weighted, continuation-discounted TD loss against finite differences.
#[test]
fn td_loss_gradients_match_finite_differences() {
    let dev = Dev::default();
    let (obs, next, batch) = td_batch(&[0, 1], 9, 3, 0).tensors(&dev);
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
        let (l, _) = td_loss(q, target.forward(next.clone()), None, &batch);
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
    let mut learner = QLearner::new(
        &dev,
        5,
        seeds,
        &[4, 16, 16, 3],
        Activation::Elu,
        Init::Haiku,
        AdamConfig::young(1e-3),
    );
    for u in 0..updates {
        if u % 10 == 0 {
            learner.sync_target();
        }
        let mut rows = td_batch(seeds, 8, 3, u);
        if let Some(bad) = nan_seed.and_then(|b| seeds.iter().position(|s| *s == b)) {
            rows.rewards[bad * 8] = f32::NAN;
        }
        let losses = learner.update(&rows);
        let reported: Vec<u64> = seeds
            .iter()
            .zip(&losses)
            .filter(|(_, l)| !l.is_finite())
            .map(|(s, _)| *s)
            .collect();
        let expected: Vec<u64> = nan_seed.filter(|b| seeds.contains(b)).into_iter().collect();
        assert_eq!(
            reported, expected,
            "the NaN shows in its seed's loss, and only there"
        );
    }
    (0..seeds.len())
        .map(|s| learner.networks().0.params_of_seed(s))
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

type Scalar = Tensor<(), f32, Dev, mbrl::tensor::Tape>;

/// Central differences of `f` in sampled entries of `x` against its backward gradient.
fn check_input_gradient(x: &T3, f: &dyn Fn(T3<mbrl::tensor::Tape>) -> Scalar) {
    let g = f(x.clone().traced(Gradients::leaky()))
        .backward()
        .get(x)
        .as_vec();
    let base = x.as_vec();
    // f32 sums of O(10) lose ~1e-6 absolute; 1e-2 keeps the difference well above it.
    let eps = 1e-2f32;
    let mut rng = Stream::new(21, 0, Purpose::Init, 0);
    for _ in 0..12 {
        let idx = rng.below(base.len());
        let eval = |delta: f32| {
            let mut data = base.clone();
            data[idx] += delta;
            f(x.device()
                .tensor_from_vec(data, *x.shape())
                .traced(Gradients::leaky()))
            .array()
        };
        let fd = (eval(eps) - eval(-eps)) / (2.0 * eps);
        assert!(
            (fd - g[idx]).abs() <= 2e-2 * g[idx].abs().max(fd.abs()) + 2e-3,
            "idx {idx}: fd {fd} vs backward {}",
            g[idx]
        );
    }
}

fn tensor3(seed: u64, shape: (usize, usize, usize), scale: f64) -> T3 {
    let mut rng = Stream::new(30, seed, Purpose::Init, 0);
    Dev::default().tensor_from_vec(randn(&mut rng, shape.0 * shape.1 * shape.2, scale), shape)
}

fn weighted_sum(x: mbrl::tensor::T2<mbrl::tensor::Tape>, seed: u64) -> Scalar {
    let shape = *x.shape();
    let mut rng = Stream::new(31, seed, Purpose::Init, 0);
    let w = Dev::default().tensor_from_vec(randn(&mut rng, shape.0 * shape.1, 1.0), shape);
    (x * w).sum::<(), _>()
}

#[test]
fn bernoulli_and_gaussian_nll() {
    use mbrl::tensor::dist::{bernoulli_nll, gaussian_nll_unit};
    let dev = Dev::default();
    let logits = tensor3(1, (2, 3, 4), 3.0);
    let bits: Vec<f32> = (0..24).map(|i| (i % 3 == 0) as u8 as f32).collect();
    let targets: T3 = dev.tensor_from_vec(bits.clone(), (2, 3, 4));
    let nll = bernoulli_nll(logits.clone(), &targets).as_vec();
    let l = logits.as_vec();
    let sig = |x: f32| 1.0 / (1.0 + (-x).exp());
    let direct: f32 = (0..4)
        .map(|k| -(bits[k] * sig(l[k]).ln() + (1.0 - bits[k]) * sig(-l[k]).ln()))
        .sum();
    assert!((nll[0] - direct).abs() < 1e-4, "{} vs {direct}", nll[0]);
    check_input_gradient(&logits, &|x| weighted_sum(bernoulli_nll(x, &targets), 0));
    let mean = tensor3(2, (2, 3, 2), 1.0);
    let value = gaussian_nll_unit(mean.clone(), &targets.clone().slice((.., .., 0..2))).as_vec();
    let m = mean.as_vec();
    let expected = 0.5 * (m[0] - bits[0]).powi(2)
        + 0.5 * (m[1] - bits[1]).powi(2)
        + (2.0 * std::f32::consts::PI).ln();
    assert!((value[0] - expected).abs() < 1e-5);
    let t2 = targets.clone().slice((.., .., 0..2));
    check_input_gradient(&mean, &|x| weighted_sum(gaussian_nll_unit(x, &t2), 1));
}

/// The sample is one-hot; the gradient is that of the softmax probabilities.
#[test]
fn straight_through_categorical() {
    use mbrl::tensor::dist::categorical_straight_through;
    let logits = tensor3(3, (2, 5, 4), 2.0);
    let uniforms: Vec<f32> = (0..10).map(|i| (i as f32 + 0.5) / 10.0).collect();
    let sample = categorical_straight_through(logits.clone(), &uniforms).as_vec();
    for row in sample.chunks(4) {
        assert!((row.iter().sum::<f32>() - 1.0).abs() < 1e-6);
        assert!(
            row.iter().all(|x| x.abs() < 1e-6 || (x - 1.0).abs() < 1e-6),
            "{row:?}"
        );
    }
    let w = tensor3(4, (2, 5, 4), 1.0);
    let st = |x: T3<mbrl::tensor::Tape>| {
        (categorical_straight_through(x, &uniforms) * w.clone()).sum::<(), _>()
    };
    let soft = |x: T3<mbrl::tensor::Tape>| (x.softmax::<Axis<2>>() * w.clone()).sum::<(), _>();
    let g_st = st(logits.clone().traced(Gradients::leaky()))
        .backward()
        .get(&logits)
        .as_vec();
    check_input_gradient(&logits, &soft);
    let g_soft = soft(logits.clone().traced(Gradients::leaky()))
        .backward()
        .get(&logits)
        .as_vec();
    assert_eq!(g_st, g_soft);
}

#[test]
fn categorical_kl_balancing_gradients() {
    use mbrl::tensor::dist::{categorical_kl, categorical_kl_to};
    let p = tensor3(5, (2, 3, 4), 1.5);
    let q = tensor3(6, (2, 3, 4), 1.5);
    let kl = categorical_kl(p.clone(), &q).as_vec();
    let kl_to = categorical_kl_to(q.clone(), &p).as_vec();
    let (pv, qv) = (p.as_vec(), q.as_vec());
    let softmax = |x: &[f32]| {
        let m = x.iter().cloned().fold(f32::MIN, f32::max);
        let e: Vec<f32> = x.iter().map(|v| (v - m).exp()).collect();
        let z: f32 = e.iter().sum();
        e.into_iter().map(|v| v / z).collect::<Vec<f32>>()
    };
    let (pp, qq) = (softmax(&pv[..4]), softmax(&qv[..4]));
    let direct: f32 = (0..4).map(|k| pp[k] * (pp[k].ln() - qq[k].ln())).sum();
    assert!(
        (kl[0] - direct).abs() < 1e-5 && (kl_to[0] - direct).abs() < 1e-5,
        "{} {} {direct}",
        kl[0],
        kl_to[0]
    );
    check_input_gradient(&p, &|x| weighted_sum(categorical_kl(x, &q), 2));
    check_input_gradient(&q, &|x| weighted_sum(categorical_kl_to(x, &p), 3));
}

#[test]
fn gaussian_latents_and_kl_gradients() {
    use mbrl::tensor::dist::{gaussian_head, gaussian_kl, gaussian_kl_to, reparameterize};
    let out = tensor3(7, (2, 3, 8), 1.0);
    let eps = tensor3(8, (2, 3, 4), 1.0);
    let (m2, s2) = gaussian_head(tensor3(9, (2, 3, 8), 1.0), 0.0);
    let (m2, s2) = (m2.retaped::<NoneTape>(), s2.retaped::<NoneTape>());
    let (_, std) = gaussian_head(out.clone(), 0.1);
    let pre = out.as_vec()[4];
    let expected = (2.0 / (1.0 + (-pre / 2.0).exp())).max(1e-6) + 0.1;
    assert!((std.as_vec()[0] - expected).abs() < 1e-6);
    check_input_gradient(&out, &|x| {
        let (m, s) = gaussian_head(x, 0.1);
        (reparameterize(m, s, &eps) * eps.clone()).sum::<(), _>()
    });
    check_input_gradient(&out, &|x| {
        let (m, s) = gaussian_head(x, 0.1);
        weighted_sum(gaussian_kl(m, s, &m2, &s2), 4)
    });
    check_input_gradient(&out, &|x| {
        let (m, s) = gaussian_head(x, 0.0);
        weighted_sum(gaussian_kl_to(m, s, &m2, &s2), 5)
    });
    // Both directions agree on the value, and KL(p || p) = 0.
    let (m1, s1) = gaussian_head(out.clone(), 0.1);
    let a = gaussian_kl(m1.clone(), s1.clone(), &m2, &s2).as_vec();
    let b = gaussian_kl_to(m2.clone(), s2.clone(), &m1, &s1).as_vec();
    assert!(
        a.iter().zip(&b).all(|(x, y)| (x - y).abs() < 1e-4),
        "{a:?} {b:?}"
    );
    assert!(gaussian_kl(m1.clone(), s1.clone(), &m1, &s1)
        .as_vec()
        .iter()
        .all(|x| x.abs() < 1e-5));
}

/// Merging batches one by one gives the statistics of all the data (vaslbo spec §1.3).
#[test]
fn running_normalizer_merges_batches() {
    use mbrl::tensor::slbo::Normalizer;
    let mut rng = Stream::new(40, 0, Purpose::Init, 0);
    let data: Vec<f32> = (0..3 * 50)
        .map(|i| (rng.normal() * (1.0 + (i % 3) as f64) + i as f64 % 3.0) as f32)
        .collect();
    let mut norm = Normalizer::new(3);
    for chunk in data.chunks(3 * 7) {
        norm.update(chunk);
    }
    for d in 0..3 {
        let col: Vec<f64> = data.chunks(3).map(|r| r[d] as f64).collect();
        let mean = col.iter().sum::<f64>() / 50.0;
        let std = (col.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / 50.0).sqrt();
        assert!((norm.mean[d] - mean).abs() < 1e-9 && (norm.std[d] - std).abs() < 1e-9);
    }
    let z = norm.normalize(&data[..3]);
    assert!((z[0] as f64 - (data[0] as f64 - norm.mean[0]) / norm.std[0]).abs() < 1e-5);
}

#[test]
fn slbo_model_losses() {
    use mbrl::tensor::oracles::slbo::{delta_norm, next_state_mse, value_aware, Reduce};
    let dev = Dev::default();
    let pred = tensor3(50, (2, 3, 4), 1.0);
    let cur = tensor3(51, (2, 3, 4), 1.0);
    let delta = tensor3(52, (2, 3, 4), 0.3);
    let std: mbrl::tensor::T2 =
        dev.tensor_from_vec(vec![0.5, 2.0, 1.0, 1e-9, 1.0, 1.0, 3.0, 0.1], (2, 4));
    let sum = delta_norm(pred.clone(), &cur, &delta, &std, Reduce::Sum).as_vec();
    let mean = delta_norm(pred.clone(), &cur, &delta, &std, Reduce::Mean).as_vec();
    let (p, c, dl, sd) = (pred.as_vec(), cur.as_vec(), delta.as_vec(), std.as_vec());
    let direct = (0..4)
        .map(|k| ((p[k] - c[k] - dl[k]) / sd[k].max(1e-6)).powi(2))
        .sum::<f32>()
        .sqrt();
    assert!(
        (sum[0] - direct).abs() < 1e-3 * direct,
        "{} vs {direct}",
        sum[0]
    );
    assert!(
        (mean[0] * 2.0 - sum[0]).abs() < 1e-3 * sum[0],
        "mean is sum / sqrt(d)"
    );
    // The 1e-9 std (clamped to 1e-6) would swamp an f32 finite difference; use moderate stds here.
    let std_fd: mbrl::tensor::T2 =
        dev.tensor_from_vec(vec![0.5, 2.0, 1.0, 0.7, 1.0, 1.0, 3.0, 0.1], (2, 4));
    check_input_gradient(&pred, &|x| {
        weighted_sum(delta_norm(x, &cur, &delta, &std_fd, Reduce::Sum), 6)
    });
    check_input_gradient(&pred, &|x| weighted_sum(next_state_mse(x, &cur), 7));
    // Value-aware: the gradient reaches the prediction through the frozen V.
    // Targets lie beyond V's range (|V| <= sqrt(8)), away from the kink of |.|.
    let v = Mlp::new(
        &dev,
        3,
        &[0, 1],
        NetId(2),
        &[4, 8, 1],
        Activation::Tanh,
        Init::Normc {
            hidden: 1.0,
            last: 1.0,
        },
    );
    let v_true: mbrl::tensor::T2 =
        dev.tensor_from_vec(vec![5.0, -5.0, 6.0, -6.0, 5.5, -5.5], (2, 3));
    for squared in [false, true] {
        check_input_gradient(&pred, &|x| {
            let vp = v.forward(x).reshape_like(&(2usize, 3usize));
            weighted_sum(value_aware(vp, &v_true, squared), 8)
        });
    }
}

/// Each seed's gradient is clipped to the global norm on its own.
#[test]
fn global_norm_clipping_is_per_seed() {
    use mbrl::tensor::oracles::slbo::clip_by_global_norm;
    let dev = Dev::default();
    let mut w = vec![dev.tensor_from_vec(
        vec![3.0, 0.0, 0.0, 4.0, 0.3, 0.0, 0.0, 0.4],
        (2usize, 2usize, 2usize),
    )];
    let mut b = vec![dev.tensor_from_vec(vec![0.0, 0.0, 0.0, 0.0], (2usize, 2usize))];
    clip_by_global_norm(&mut w, &mut b, 2.0);
    let got = w[0].as_vec();
    let expected = [1.2, 0.0, 0.0, 1.6, 0.3, 0.0, 0.0, 0.4];
    assert!(
        got.iter().zip(&expected).all(|(g, e)| (g - e).abs() < 1e-6),
        "{got:?}"
    );
}

/// normc: every output column has norm equal to the scale.
#[test]
fn normc_init_columns() {
    let net = Mlp::new(
        &Dev::default(),
        0,
        &[0, 1],
        NetId(1),
        &[5, 7, 2],
        Activation::Tanh,
        Init::Normc {
            hidden: 1.0,
            last: 0.01,
        },
    );
    for (layer, scale) in [(0usize, 1.0f32), (1, 0.01)] {
        let w = net.weights[layer].as_vec();
        let (_, i, o) = *net.weights[layer].shape();
        for s in 0..2 {
            for col in 0..o {
                let norm: f32 = (0..i)
                    .map(|r| w[s * i * o + r * o + col].powi(2))
                    .sum::<f32>()
                    .sqrt();
                assert!(
                    (norm - scale).abs() < 1e-5 * scale.max(1.0),
                    "layer {layer} col {col}: {norm}"
                );
            }
        }
    }
}

fn random_policy_vec(net: &Mlp, seed: u64) -> mbrl::tensor::oracles::trpo::PolicyVec {
    let dev = Dev::default();
    let mut rng = Stream::new(60, seed, Purpose::Init, 0);
    let weights = net
        .weights
        .iter()
        .map(|w| dev.tensor_from_vec(randn(&mut rng, w.shape().num_elements(), 1.0), *w.shape()))
        .collect();
    let biases = net
        .biases
        .iter()
        .map(|b| dev.tensor_from_vec(randn(&mut rng, b.shape().num_elements(), 1.0), *b.shape()))
        .collect();
    let log_std = dev.tensor_from_vec(randn(&mut rng, 2 * 2, 1.0), (2, 2));
    mbrl::tensor::oracles::trpo::PolicyVec {
        weights,
        biases,
        log_std,
    }
}

fn shifted(net: &Mlp, v: &mbrl::tensor::oracles::trpo::PolicyVec, eps: f32) -> Mlp {
    let mut out = net.clone();
    for (w, d) in out.weights.iter_mut().zip(&v.weights) {
        *w = w.clone() + d.clone() * eps;
    }
    for (b, d) in out.biases.iter_mut().zip(&v.biases) {
        *b = b.clone() + d.clone() * eps;
    }
    out
}

/// Forward-mode `J v` equals the directional finite difference of the mean.
#[test]
fn jvp_matches_finite_differences() {
    use mbrl::tensor::oracles::trpo::jvp;
    let x = tensor3(61, (2, 5, 3), 1.0);
    for activation in [Activation::Tanh, Activation::Elu, Activation::Relu] {
        let net = Mlp::new(
            &Dev::default(),
            4,
            &[0, 1],
            NetId(3),
            &[3, 6, 2],
            activation,
            Init::Normc {
                hidden: 1.0,
                last: 1.0,
            },
        );
        let v = random_policy_vec(&net, 0);
        let (out, jv) = jvp(&net, &x, &v);
        let forward = net.forward(x.clone()).as_vec();
        assert!(out
            .as_vec()
            .iter()
            .zip(&forward)
            .all(|(a, b)| (a - b).abs() < 1e-5));
        let eps = 1e-2;
        let plus = shifted(&net, &v, eps).forward(x.clone()).as_vec();
        let minus = shifted(&net, &v, -eps).forward(x.clone()).as_vec();
        for (i, j) in jv.as_vec().iter().enumerate() {
            let fd = (plus[i] - minus[i]) / (2.0 * eps);
            assert!(
                (fd - j).abs() < 2e-2 * j.abs().max(1.0),
                "{activation:?} {i}: fd {fd} vs jvp {j}"
            );
        }
    }
}

/// `v^T F v = (1/B) |J v / sigma|^2 + 2 |v_logstd|^2 + damping |v|^2` per seed, and F is symmetric.
#[test]
fn fisher_vector_product_is_the_gauss_newton_fisher() {
    use mbrl::tensor::oracles::trpo::{fisher_vector_product, jvp, GaussianPolicy};
    let dev = Dev::default();
    let x = tensor3(62, (2, 7, 3), 1.0);
    let mean = Mlp::new(
        &dev,
        5,
        &[0, 1],
        NetId(4),
        &[3, 6, 2],
        Activation::Tanh,
        Init::Normc {
            hidden: 1.0,
            last: 0.01,
        },
    );
    let log_std = dev.tensor_from_vec(vec![0.1, -0.3, 0.0, 0.2], (2, 2));
    let policy = GaussianPolicy {
        mean: mean.clone(),
        log_std: log_std.clone(),
    };
    let (u, v) = (random_policy_vec(&mean, 1), random_policy_vec(&mean, 2));
    let damping = 0.1;
    let fv = fisher_vector_product(&policy, &x, &v, damping);
    let fu = fisher_vector_product(&policy, &x, &u, damping);
    let (vfv, ufv, vfu) = (v.dot(&fv), u.dot(&fv), v.dot(&fu));
    let (_, jv) = jvp(&mean, &x, &v);
    let (jv, ls, vls) = (jv.as_vec(), log_std.as_vec(), v.log_std.as_vec());
    let vv = v.dot(&v);
    for s in 0..2 {
        let mut quad = 0.0;
        for b in 0..7 {
            for a in 0..2 {
                quad += (jv[s * 14 + b * 2 + a] * (-ls[s * 2 + a]).exp()).powi(2) / 7.0;
            }
        }
        let expected = quad + 2.0 * (vls[s * 2].powi(2) + vls[s * 2 + 1].powi(2)) + damping * vv[s];
        assert!(
            (vfv[s] - expected).abs() < 1e-3 * expected,
            "seed {s}: {} vs {expected}",
            vfv[s]
        );
        assert!(
            (ufv[s] - vfu[s]).abs() < 1e-3 * ufv[s].abs().max(1.0),
            "symmetry {s}: {} vs {}",
            ufv[s],
            vfu[s]
        );
    }
}

/// The surrogate's gradient against finite differences in the log-std and the mean weights.
#[test]
fn surrogate_gradient_matches_finite_differences() {
    use mbrl::tensor::oracles::trpo::{log_prob, surrogate_gradient, GaussianPolicy};
    let dev = Dev::default();
    let x = tensor3(63, (2, 6, 3), 1.0);
    let actions = tensor3(64, (2, 6, 2), 1.0);
    let mean = Mlp::new(
        &dev,
        6,
        &[0, 1],
        NetId(5),
        &[3, 5, 2],
        Activation::Tanh,
        Init::Normc {
            hidden: 1.0,
            last: 1.0,
        },
    );
    let log_std: mbrl::tensor::T2 = dev.tensor_from_vec(vec![0.1, -0.3, 0.0, 0.2], (2, 2));
    let old = log_prob(mean.forward(x.clone()), log_std.clone(), &actions);
    let adv: mbrl::tensor::T2 = tensor3(65, (2, 6, 1), 1.0).reshape_like(&(2usize, 6usize));
    let policy = GaussianPolicy {
        mean: mean.clone(),
        log_std: log_std.clone(),
    };
    let (values, grad) = surrogate_gradient(&policy, &x, &actions, &old, &adv);
    let a = adv.as_vec();
    assert!(
        (values[0] - a[..6].iter().sum::<f32>() / 6.0).abs() < 1e-5,
        "ratio is 1 at the old policy"
    );
    let v = random_policy_vec(&mean, 3);
    let eps = 1e-2;
    let total = |sign: f32| {
        let p = GaussianPolicy {
            mean: shifted(&mean, &v, sign * eps),
            log_std: log_std.clone() + v.log_std.clone() * (sign * eps),
        };
        surrogate_gradient(&p, &x, &actions, &old, &adv).0
    };
    let (plus, minus) = (total(1.0), total(-1.0));
    let directional = grad.dot(&v);
    for s in 0..2 {
        let fd = (plus[s] - minus[s]) / (2.0 * eps);
        assert!(
            (fd - directional[s]).abs() < 2e-2 * fd.abs().max(0.1),
            "seed {s}: fd {fd} vs {}",
            directional[s]
        );
    }
}

/// The ER agent of fig4's first cell compiles to the reference's sizes and constants.
#[test]
fn er_cell_compiles_to_the_reference_plan() {
    let out = mbrl::check_file(&crate::root().join("experiments/fig4.exp"), &[]).unwrap();
    let checked = out.checked.unwrap();
    let exp = &checked.experiments[0];
    let compiled = |cell: usize| compile_cell(exp, cell);
    let whole = compiled(0);
    let plan = dqn(&whole);
    assert_eq!(plan.q_dims, vec![64, 200, 200, 200, 5]);
    assert_eq!(plan.activation, Activation::Elu);
    assert_eq!(
        plan.adam,
        AdamConfig {
            lr: 5e-5,
            b1: 0.9,
            b2: 0.99,
            eps: 1e-5,
            weight_decay: 1e-6
        }
    );
    assert_eq!(
        (
            plan.batch,
            plan.buffer,
            whole.schedule.units,
            plan.learning_starts
        ),
        (320, 100_000, 1_000_000, 1000)
    );
    assert_eq!(
        (
            plan.updates_per_step,
            plan.target_update_every,
            whole.schedule.eval_every
        ),
        (1, 100, 500)
    );
    assert_eq!(whole.seeds.len(), 30);
    assert_eq!((plan.rollouts, plan.model.clone()), (None, None));
    assert_eq!(plan.exploration, Exploration::Softmax { temperature: 0.1 });
    assert!(plan.use_target && !plan.double_dqn);
    assert_eq!(plan.compat, mbrl::kinds::dqn::Compat::named("young2022"));
    // The perfect-model agent (cell 6) rolls out 32 stored states for 10 steps.
    use mbrl::kinds::dqn::{Exploration, Latent, ModelKind, ModelPlan, ObsHead, Rollouts};
    let perfect = dqn(&compiled(6));
    let dyna = Some(Rollouts {
        starts: 32,
        length: 10,
    });
    assert_eq!(perfect.rollouts, dyna);
    assert_eq!(perfect.model, Some(ModelPlan::TrueEnv));
    assert_eq!(perfect.adam.lr, 1e-4);
    assert_eq!(
        perfect.exploration,
        Exploration::Softmax { temperature: 0.4 }
    );
    // The learned models (cells 12, 18, 24) with their own step size, the
    // shared Adam constants and continuation weights on the episodic maze.
    let learned = |cell: usize| {
        let plan = dqn(&compiled(cell));
        assert_eq!(plan.rollouts, dyna);
        let Some(ModelPlan::Learned(model)) = plan.model else {
            panic!("cell {cell} has a learned model")
        };
        assert_eq!(model.hidden, vec![200, 200, 200]);
        assert_eq!((model.adam.lr, model.adam.weight_decay), (2e-4, 1e-6));
        assert!(model.continuation_weights);
        assert_eq!((model.obs_dim, model.n_actions), (64, 5));
        (plan.q_dims, model.kind, model.loss)
    };
    let (q, kind, loss) = learned(12);
    assert_eq!(q[0], 64);
    assert_eq!(
        kind,
        ModelKind::Factored {
            obs: ObsHead::Bernoulli
        }
    );
    assert_eq!((loss.reward, loss.continuation, loss.obs), (1.0, 1.0, 1.0));
    let (q, kind, loss) = learned(18);
    assert_eq!(q[0], 1024, "Q reads 32 one-hot features of width 32");
    assert_eq!(
        kind,
        ModelKind::Latent(Latent::Categorical {
            features: 32,
            width: 32
        })
    );
    assert_eq!((loss.kl_prior, loss.kl_posterior), (0.8, 0.2));
    let (q, kind, _) = learned(24);
    assert_eq!(q[0], 32);
    assert_eq!(
        kind,
        ModelKind::Latent(Latent::Gaussian {
            features: 32,
            min_std: 0.1,
            sigmoid2: true
        })
    );
}

/// Cell `cell` of `exp` compiled from its dataflow graph.
fn compile_cell(exp: &mbrl::check::CheckedExperiment, cell: usize) -> mbrl::compile::Plan {
    mbrl::compile::compile(&mbrl::graph::cell_graph(exp, &exp.cells[cell]), 1.0).unwrap()
}

/// The DQN part of a compiled plan.
fn dqn(plan: &mbrl::compile::Plan) -> mbrl::kinds::dqn::DqnPlan {
    plan.agent
        .get::<mbrl::kinds::dqn::DqnPlan>()
        .unwrap_or_else(|| panic!("not a DQN plan: {:?}", plan.agent))
        .clone()
}

/// `mbrl check --cost`: ER on ProcMaze g=4 costs 8 x 320 x 93,800 FLOP per update for
/// 999,000 updates, and its replay holds 100k transitions of 2 x 64 + 3 floats.
#[test]
fn cost_of_the_er_cell() {
    let path = &crate::root().join("experiments/fig4.exp");
    let checked = mbrl::check_file(path, &[]).unwrap().checked.unwrap();
    let cost = compile_cell(&checked.experiments[0], 0).cost();
    assert_eq!(cost.flops, 8.0 * 320.0 * 93_800.0 * 999_000.0);
    let params = 2.0 * 94_405.0;
    assert_eq!(
        cost.bytes,
        100_000.0 * (2.0 * 64.0 + 3.0) * 4.0 + params * 16.0
    );
}

/// A Q learner of 4-16-16-3 ELU with Adam at 1e-3.
fn small_learner(dev: &Dev, root: u64, seeds: &[u64]) -> QLearner {
    QLearner::new(
        dev,
        root,
        seeds,
        &[4, 16, 16, 3],
        Activation::Elu,
        Init::Haiku,
        AdamConfig::young(1e-3),
    )
}

/// An update that reuses Q's layer outputs recorded while choosing rollout
/// actions (passes of a few rows, step after step) computes what an update
/// running its own forward pass computes.
#[test]
fn an_update_on_recorded_activations_matches_a_fresh_one() {
    use mbrl::tensor::fused::Recorded;
    let dev = Dev::default();
    let seeds = [0u64, 1];
    let make = || small_learner(&dev, 6, &seeds);
    let (mut fresh, mut reuse) = (make(), make());
    let mut record = Recorded::default();
    for u in 0..5 {
        // 12 rows per seed, recorded as 3 passes of 4 rows.
        let batch = td_batch(&seeds, 12, 3, u);
        let x = &batch.obs;
        record.clear();
        for pass in 0..3 {
            let rows: Vec<f32> = (0..seeds.len())
                .flat_map(|s| x[(s * 12 + pass * 4) * 4..(s * 12 + pass * 4 + 4) * 4].to_vec())
                .collect();
            reuse.q_values_recorded(&dev, &rows, 4, Some(&mut record));
        }
        let a = fresh.update(&batch);
        let b = reuse.update_recorded(&batch, Some(&record));
        assert_eq!(a, b, "update {u}");
    }
    for s in 0..seeds.len() {
        assert_eq!(
            fresh.networks().0.params_of_seed(s),
            reuse.networks().0.params_of_seed(s)
        );
    }
}

/// A replay-like minibatch of `b` binary transitions per seed, each seed's from its own stream.
pub(crate) fn model_sample(
    seeds: &[u64],
    b: usize,
    d: usize,
    actions: usize,
) -> mbrl::runtime::replay::Sample {
    let mut sample = mbrl::runtime::replay::Sample::default();
    for seed in seeds {
        let mut rng = Stream::new(11, *seed, Purpose::Replay, 0);
        for _ in 0..b {
            let obs: Vec<f32> = (0..d).map(|_| rng.below(2) as f32).collect();
            let a = rng.below(actions);
            // The next obs flips the bit the action names: a learnable model.
            let mut next = obs.clone();
            next[a] = 1.0 - next[a];
            sample.obs.extend(&obs);
            sample.next_obs.extend(&next);
            sample.actions.push(a);
            sample.rewards.push(obs[0] * 2.0 - 1.0);
            sample.terminals.push(rng.below(8) == 0);
        }
    }
    sample
}

/// Every learned model (simple, categorical and Gaussian latent) fits a
/// fixed minibatch, and a seed's parameters after 150 updates are
/// bit-identical whether it trains alone or beside another seed.
#[test]
fn learned_models_fit_and_each_seed_trains_alone() {
    use mbrl::kinds::dqn::learner::model::LearnedModel;
    use mbrl::kinds::dqn::{Latent, LearnedPlan, ModelKind, ModelLoss, ObsHead};
    let dev = mbrl::tensor::device().unwrap();
    let kinds = [
        ModelKind::Factored {
            obs: ObsHead::Bernoulli,
        },
        ModelKind::Latent(Latent::Categorical {
            features: 4,
            width: 3,
        }),
        ModelKind::Latent(Latent::Gaussian {
            features: 4,
            min_std: 0.1,
            sigmoid2: true,
        }),
    ];
    for kind in kinds {
        let plan = LearnedPlan {
            kind,
            obs_dim: 6,
            n_actions: 3,
            hidden: vec![32],
            activation: Activation::Elu,
            adam: AdamConfig::young(3e-3),
            loss: ModelLoss {
                reward: 1.0,
                continuation: 1.0,
                obs: 1.0,
                kl_prior: 0.8,
                kl_posterior: 0.2,
                entropy: 0.0,
            },
            continuation_weights: true,
        };
        let rngs = |seeds: &[u64]| -> Vec<Stream> {
            seeds
                .iter()
                .map(|s| Stream::new(3, *s, Purpose::Model, 0))
                .collect()
        };
        let (both, alone) = ([0u64, 1], [1u64]);
        let mut pair = LearnedModel::new(&dev, 3, &both, &plan);
        let mut single = LearnedModel::new(&dev, 3, &alone, &plan);
        let (mut pair_rngs, mut single_rngs) = (rngs(&both), rngs(&alone));
        let (pair_batch, single_batch) = (
            model_sample(&both, 16, 6, 3),
            model_sample(&alone, 16, 6, 3),
        );
        let mut first = Vec::new();
        let mut last = Vec::new();
        for t in 0..150 {
            last = pair.update(&dev, &pair_batch, 2, t, &mut pair_rngs);
            single.update(&dev, &single_batch, 1, t, &mut single_rngs);
            if t == 0 {
                first = last.clone();
            }
        }
        for s in 0..2 {
            assert!(
                last[s] < 0.7 * first[s],
                "{kind:?} seed {s}: loss {} -> {}",
                first[s],
                last[s]
            );
        }
        // Per network, per tensor: seed 1 of the pair is the single seed.
        let (pair_nets, single_nets) = (pair.state().0, single.state().0);
        for (p, q) in pair_nets.iter().zip(&single_nets) {
            for (p, q) in p.iter().zip(q) {
                assert_eq!(&p[p.len() / 2..], &q[..], "{kind:?}");
            }
        }
    }
}

/// The CPU's fused model update (losses and gradients written out by hand)
/// and the taped dfdx update the GPU runs compute the same losses and
/// parameters for every learned model, and a checkpoint restores exactly.
#[test]
fn fused_model_update_matches_the_taped_update() {
    use mbrl::kinds::dqn::learner::model::LearnedModel;
    use mbrl::kinds::dqn::{Latent, LearnedPlan, ModelKind, ModelLoss, ObsHead};
    let dev = Dev::default();
    let kinds = [
        ModelKind::Factored {
            obs: ObsHead::Bernoulli,
        },
        ModelKind::Factored {
            obs: ObsHead::Gaussian,
        },
        ModelKind::Latent(Latent::Categorical {
            features: 4,
            width: 3,
        }),
        // One-hot features sparse enough for the fused path's sparse first layers.
        ModelKind::Latent(Latent::Categorical {
            features: 2,
            width: 16,
        }),
        ModelKind::Latent(Latent::Gaussian {
            features: 4,
            min_std: 0.1,
            sigmoid2: true,
        }),
        ModelKind::Latent(Latent::Gaussian {
            features: 3,
            min_std: 0.0,
            sigmoid2: false,
        }),
    ];
    let seeds = [0u64, 1, 2];
    for kind in kinds {
        let plan = LearnedPlan {
            kind,
            obs_dim: 6,
            n_actions: 3,
            hidden: vec![16, 16],
            activation: Activation::Elu,
            adam: AdamConfig::young(1e-3),
            loss: ModelLoss {
                reward: 1.0,
                continuation: 0.7,
                obs: 1.3,
                kl_prior: 0.8,
                kl_posterior: 0.2,
                // The posterior entropy term, on for the latent models.
                entropy: if matches!(kind, ModelKind::Latent(_)) {
                    0.4
                } else {
                    0.0
                },
            },
            continuation_weights: true,
        };
        let rngs = || -> Vec<Stream> {
            seeds
                .iter()
                .map(|s| Stream::new(4, *s, Purpose::Model, 0))
                .collect()
        };
        let mut fused = LearnedModel::new(&dev, 4, &seeds, &plan);
        let mut taped = LearnedModel::new(&dev, 4, &seeds, &plan);
        taped.use_taped();
        let (mut fused_rngs, mut taped_rngs) = (rngs(), rngs());
        // It holds all-zero observations, on which an encoder at its
        // initial (zero) biases outputs exactly 0, where a softplus std must
        // still have slope 1/2.
        let batch = model_sample(&seeds, 8, 6, 3);
        assert!(batch.obs.chunks(6).any(|row| row.iter().all(|x| *x == 0.0)));
        for t in 0..30 {
            let a = fused.update(&dev, &batch, seeds.len(), t, &mut fused_rngs);
            let b = taped.update(&dev, &batch, seeds.len(), t, &mut taped_rngs);
            for (x, y) in a.iter().zip(&b) {
                assert!(
                    (x - y).abs() <= 1e-4 * y.abs().max(1.0),
                    "{kind:?} update {t}: loss {x} vs {y}"
                );
            }
        }
        let (x, y) = (fused.state(), taped.state());
        for (net, (x, y)) in x.0.iter().zip(&y.0).enumerate() {
            let worst = x
                .iter()
                .flatten()
                .zip(y.iter().flatten())
                .map(|(a, b)| (a - b).abs())
                .fold(0.0, f32::max);
            assert!(
                worst < 1e-4,
                "{kind:?} net {net}: parameters differ by {worst}"
            );
        }
        let mut restored = LearnedModel::new(&dev, 9, &seeds, &plan);
        restored.restore(&fused.state()).unwrap();
        let mut again = fused_rngs.clone();
        assert_eq!(
            fused.update(&dev, &batch, seeds.len(), 30, &mut fused_rngs),
            restored.update(&dev, &batch, seeds.len(), 30, &mut again),
            "{kind:?}"
        );
    }
}

/// The CPU's fused DQN update (flat buffers, bias in the GEMM, no tape) and
/// the taped dfdx update the GPU runs compute the same losses and parameters,
/// with plain and with double-DQN targets.
#[test]
fn fused_update_matches_the_taped_update() {
    for double in [false, true] {
        fused_matches_taped(double);
    }
}

fn fused_matches_taped(double_dqn: bool) {
    let dev = Dev::default();
    let seeds = [0u64, 1, 2];
    let make = || {
        let mut q = small_learner(&dev, 5, &seeds);
        q.double_dqn = double_dqn;
        q
    };
    let (mut fused, mut taped) = (make(), make());
    taped.use_taped();
    for u in 0..30 {
        if u % 10 == 0 {
            fused.sync_target();
            taped.sync_target();
        }
        let batch = td_batch(&seeds, 8, 3, u);
        let a = fused.update(&batch);
        let b = taped.update(&batch);
        for (x, y) in a.iter().zip(&b) {
            assert!(
                (x - y).abs() <= 1e-4 * y.abs().max(1.0),
                "update {u}: loss {x} vs {y}"
            );
        }
    }
    for s in 0..seeds.len() {
        let x = fused.networks().0.params_of_seed(s);
        let y = taped.networks().0.params_of_seed(s);
        let worst = x
            .iter()
            .zip(&y)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f32::max);
        assert!(worst < 1e-4, "seed {s}: parameters differ by {worst}");
    }
    // A checkpoint of the fused learner restores into a fresh one exactly.
    let mut restored = make();
    restored.restore(&fused.state()).unwrap();
    let batch = td_batch(&seeds, 8, 3, 99);
    assert_eq!(fused.update(&batch), restored.update(&batch));
    assert_eq!(
        fused.networks().0.params_of_seed(1),
        restored.networks().0.params_of_seed(1)
    );
}

/// KL balancing's stop-gradients hold on both paths: with only the
/// posterior's KL term weighted, one update leaves the transition prior (and
/// every head but the encoder) exactly as it was.
#[test]
fn the_posterior_kl_term_does_not_train_the_prior() {
    use mbrl::kinds::dqn::learner::model::LearnedModel;
    use mbrl::kinds::dqn::{Latent, LearnedPlan, ModelKind, ModelLoss};
    let dev = Dev::default();
    let seeds = [0u64, 1];
    for kind in [
        ModelKind::Latent(Latent::Gaussian {
            features: 3,
            min_std: 0.1,
            sigmoid2: true,
        }),
        ModelKind::Latent(Latent::Categorical {
            features: 2,
            width: 3,
        }),
    ] {
        let plan = LearnedPlan {
            kind,
            obs_dim: 6,
            n_actions: 3,
            hidden: vec![8],
            activation: Activation::Elu,
            adam: AdamConfig {
                weight_decay: 0.0,
                ..AdamConfig::young(1e-2)
            },
            loss: ModelLoss {
                reward: 0.0,
                continuation: 0.0,
                obs: 0.0,
                kl_prior: 0.0,
                kl_posterior: 1.0,
                entropy: 0.0,
            },
            continuation_weights: true,
        };
        for taped in [false, true] {
            let mut model = LearnedModel::new(&dev, 2, &seeds, &plan);
            if taped {
                model.use_taped();
            }
            let before = model.state().0;
            let mut rngs: Vec<Stream> = seeds
                .iter()
                .map(|s| Stream::new(2, *s, Purpose::Model, 0))
                .collect();
            model.update(&dev, &model_sample(&seeds, 8, 6, 3), 2, 0, &mut rngs);
            let after = model.state().0;
            // Networks: reward, continuation, decoder, encoder, transition.
            for net in [0, 1, 2, 4] {
                assert_eq!(before[net], after[net], "{kind:?} taped={taped} net {net}");
            }
            assert_ne!(
                before[3], after[3],
                "{kind:?} taped={taped}: the encoder trains"
            );
        }
    }
}
