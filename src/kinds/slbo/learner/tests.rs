//! SLBO's pieces against their definitions: conjugate gradient, GAE, the
//! TRPO step's KL bound, the surrogate's gradient and Fisher-vector products
//! against the taped references, the model losses' gradients against finite
//! differences, the value-aware loss leaving V alone, refits every
//! `value_refit_every` model steps, and the normalizers' inverse.

use crate::compile::Plan;
use crate::kinds::dqn::learner::tests::plan_of;
use crate::kinds::slbo::learner::buffer::Sequences;
use crate::kinds::slbo::learner::model::{Dynamics, Norms, Value};
use crate::kinds::slbo::learner::net::Net;
use crate::kinds::slbo::learner::policy::Policy;
use crate::kinds::slbo::learner::trpo::{self, Batch};
use crate::kinds::slbo::learner::{Ctx, SlboLearner, StageReport};
use crate::kinds::slbo::{DynamicsPlan, NetPlan, Predicts, SlboLoss, SlboPlan, TrpoPlan};
use crate::runtime::driver::{Learner, Losses};
use crate::seeds::{Purpose, Stream};
use crate::tensor::mlp::{Activation, Init, NetId};
use crate::tensor::Precision;
use crate::tensor::{device, Dev};

fn randn(rng: &mut Stream, n: usize, scale: f64) -> Vec<f32> {
    (0..n).map(|_| (rng.normal() * scale) as f32).collect()
}

fn trpo_plan() -> TrpoPlan {
    let experiment = "use slbo::*\nexperiment e { env: mbbl_pendulum, agent: slbo_l2 }";
    slbo(&plan_of(experiment)).trpo
}

fn slbo(plan: &Plan) -> &SlboPlan {
    plan.agent
        .get()
        .unwrap_or_else(|| panic!("not SLBO: {:?}", plan.agent))
}

/// Conjugate gradient solves a symmetric positive-definite system.
#[test]
fn conjugate_gradient_solves_an_spd_system() {
    let a = [[4.0, 1.0, 0.5], [1.0, 3.0, 0.2], [0.5, 0.2, 2.0]];
    let x_true = [1.0, -2.0, 0.5];
    let b: Vec<f64> = (0..3)
        .map(|i| (0..3).map(|j| a[i][j] * x_true[j]).sum())
        .collect();
    let mut apply = |v: &[f64]| -> Vec<f64> {
        (0..3)
            .map(|i| (0..3).map(|j| a[i][j] * v[j]).sum())
            .collect()
    };
    let x = trpo::conjugate_gradient(&mut apply, &b, 10, 1e-20);
    for (got, want) in x.iter().zip(x_true) {
        assert!((got - want).abs() < 1e-10, "{x:?}");
    }
    // Three iterations suffice for a 3 x 3 system.
    let x = trpo::conjugate_gradient(&mut apply, &b, 3, 0.0);
    assert!((x[1] + 2.0).abs() < 1e-9);
}

/// GAE on two envs over three steps, by hand: env 0 times out at its last
/// step (bootstrapped, not continued), env 1 ends (done) at step 1 and
/// starts again.
#[test]
fn gae_matches_a_hand_computed_case() {
    let (g, l) = (0.9, 0.5);
    // Rows t * 2 + e.
    let rewards = [1.0, 2.0, 0.5, 1.0, -1.0, 3.0];
    let values = [0.2, 0.4, 0.1, 0.3, 0.5, 0.6];
    let next_values = [0.1, 7.0, 0.5, 0.6, 0.8, 0.9];
    let dones = [false, false, false, true, false, false];
    let timeouts = [false, false, false, false, true, true];
    let adv = trpo::gae(&rewards, &values, &next_values, &dones, &timeouts, 2, g, l);
    // Env 0: t = 2 times out, bootstrapped with V' = 0.8.
    let d2 = -1.0 + g * 0.8 - 0.5;
    let d1 = 0.5 + g * 0.5 - 0.1;
    let d0 = 1.0 + g * 0.1 - 0.2;
    let a2 = d2;
    let a1 = d1 + g * l * a2;
    let a0 = d0 + g * l * a1;
    // Env 1: t = 1 is done (no bootstrap, no continuation); t = 2 times out.
    let e2 = 3.0 + g * 0.9 - 0.6;
    let e1 = 1.0 - 0.3;
    let e0 = 2.0 + g * 7.0 - 0.4 + g * l * e1;
    let want = [a0, e0, a1, e1, a2, e2];
    for (got, want) in adv.iter().zip(want) {
        assert!((*got as f64 - want).abs() < 1e-5, "{adv:?} vs {want}");
    }
}

/// A small policy with random parameters and a batch for it.
fn policy_and_batch(seed: u64) -> (Policy, Vec<f32>, Vec<f32>, Vec<f32>) {
    let dev = Dev::default();
    let plan = crate::kinds::slbo::PolicyPlan {
        mean: NetPlan {
            dims: vec![3, 8, 8, 2],
            activation: Activation::Tanh,
            init: Init::Normc {
                hidden: 1.0,
                last: 0.5,
            },
            normalize: false,
            precision: Precision::Fp32,
        },
        init_std: 0.8,
    };
    let policy = Policy::new(&dev, 1, seed, &plan);
    let mut rng = Stream::new(3, seed, Purpose::Replay, 0);
    let n = 40;
    let x = randn(&mut rng, n * 3, 1.0);
    let actions = randn(&mut rng, n * 2, 1.0);
    let adv = trpo::standardize(&randn(&mut rng, n, 1.0));
    (policy, x, actions, adv)
}

/// Every accepted TRPO step keeps the mean KL(old || new) within
/// `kl_tolerance x max_kl`, and improves the surrogate.
#[test]
fn accepted_trpo_steps_satisfy_the_kl_bound() {
    let plan = trpo_plan();
    let mut accepted = 0;
    for seed in 0..12 {
        let (mut policy, x, actions, adv) = policy_and_batch(seed);
        let batch = Batch {
            x: &x,
            actions: &actions,
            advantages: &adv,
        };
        let before_mu = policy.mean.predict(&x, adv.len());
        let before_ls = policy.log_std.clone();
        let report = trpo::step(&mut policy, &batch, &plan, 0.005);
        let after_mu = policy.mean.predict(&x, adv.len());
        let mut kl = 0.0;
        for (i, (m0, m1)) in before_mu.iter().zip(&after_mu).enumerate() {
            let k = i % 2;
            kl += crate::tensor::gaussian::kl(
                *m0 as f64,
                before_ls[k] as f64,
                *m1 as f64,
                policy.log_std[k] as f64,
            );
        }
        kl /= adv.len() as f64;
        match report.accepted {
            true => {
                accepted += 1;
                assert!(
                    kl <= plan.kl_tolerance * plan.max_kl + 1e-9,
                    "seed {seed}: KL {kl}"
                );
                assert!((kl - report.kl).abs() < 1e-6 && report.gain >= 0.0);
            }
            false => assert_eq!(kl, 0.0, "a rejected step restores the policy"),
        }
    }
    assert!(accepted >= 10, "{accepted} of 12 steps accepted");
}

/// The flat policy's surrogate gradient (entropy bonus off) and
/// Fisher-vector products equal the taped references of `tensor::oracles::trpo`.
#[test]
fn surrogate_gradient_and_fisher_products_match_the_taped_references() {
    use crate::tensor::fused::unflatten;
    use crate::tensor::mlp::Mlp;
    use crate::tensor::oracles::trpo::{
        fisher_vector_product, surrogate_gradient, GaussianPolicy, PolicyVec,
    };
    use dfdx::prelude::*;
    let plan = trpo_plan();
    let (policy, x, actions, adv) = policy_and_batch(5);
    let n = adv.len();
    let batch = Batch {
        x: &x,
        actions: &actions,
        advantages: &adv,
    };
    let at = trpo::at_old(&policy, &batch, &plan, 0.0);
    let dev = Dev::default();
    let layout = &policy.mean.layout;
    let mut mean = Mlp::new(
        &dev,
        1,
        &[5],
        NetId(10),
        &layout.dims,
        Activation::Tanh,
        Init::Haiku,
    );
    mean.load(&unflatten(layout, 1, policy.mean.params()))
        .unwrap();
    let taped = GaussianPolicy {
        mean,
        log_std: dev.tensor_from_vec(policy.log_std.clone(), (1, 2)),
    };
    let states = dev.tensor_from_vec(x.clone(), (1, n, 3));
    let acts = dev.tensor_from_vec(actions.clone(), (1, n, 2));
    let old_lp: Vec<f32> = (0..n)
        .map(|r| {
            let mu = policy.mean.predict(&x[r * 3..(r + 1) * 3], 1);
            (0..2)
                .map(|k| {
                    crate::tensor::gaussian::log_density(
                        actions[r * 2 + k] as f64,
                        mu[k] as f64,
                        policy.log_std[k] as f64,
                    ) as f32
                })
                .sum()
        })
        .collect();
    let (_, g) = surrogate_gradient(
        &taped,
        &states,
        &acts,
        &dev.tensor_from_vec(old_lp, (1, n)),
        &dev.tensor_from_vec(adv.clone(), (1, n)),
    );
    let flat = |v: &PolicyVec| -> Vec<f64> {
        let mut t = Vec::new();
        for w in &v.weights {
            t.push(w.as_vec());
        }
        for b in &v.biases {
            t.push(b.as_vec());
        }
        let mut out: Vec<f64> = crate::tensor::fused::flatten(layout, 1, &t)
            .iter()
            .map(|x| *x as f64)
            .collect();
        out.extend(v.log_std.as_vec().iter().map(|x| *x as f64));
        out
    };
    let close = |a: &[f64], b: &[f64], what: &str| {
        let scale = b.iter().map(|x| x.abs()).fold(0.0, f64::max);
        for (x, y) in a.iter().zip(b) {
            assert!(
                (x - y).abs() <= 1e-4 * scale.max(1e-3),
                "{what}: {x} vs {y}"
            );
        }
    };
    close(&at.grad, &flat(&g), "surrogate gradient");
    let mut rng = Stream::new(9, 0, Purpose::Replay, 0);
    let v: Vec<f64> = randn(&mut rng, at.grad.len(), 1.0)
        .iter()
        .map(|x| *x as f64)
        .collect();
    let ours = trpo::fisher_vector_product(&policy, &batch, &at, 0.1, &v);
    let p = policy.mean.n_params();
    let v32: Vec<f32> = v.iter().map(|x| *x as f32).collect();
    let tensors = unflatten(layout, 1, &v32[..p]);
    let layers = tensors.len() / 2;
    let pv = PolicyVec {
        weights: (0..layers)
            .map(|l| {
                dev.tensor_from_vec(tensors[l].clone(), (1, layout.dims[l], layout.dims[l + 1]))
            })
            .collect(),
        biases: (0..layers)
            .map(|l| dev.tensor_from_vec(tensors[layers + l].clone(), (1, layout.dims[l + 1])))
            .collect(),
        log_std: dev.tensor_from_vec(v32[p..].to_vec(), (1, 2)),
    };
    let reference = fisher_vector_product(&taped, &states, &pv, 0.1);
    close(&ours, &flat(&reference), "Fisher-vector product");
}

/// With the entropy bonus on, the surrogate's gradient matches central
/// differences of the surrogate (the limited entropy's gradient included).
#[test]
fn surrogate_gradient_with_entropy_matches_finite_differences() {
    let plan = trpo_plan();
    let (policy, x, actions, adv) = policy_and_batch(7);
    let batch = Batch {
        x: &x,
        actions: &actions,
        advantages: &adv,
    };
    let ent = 0.5;
    let at = trpo::at_old(&policy, &batch, &plan, ent);
    let theta = policy.flat();
    let h = 1e-3;
    let p = policy.mean.n_params();
    for i in [0, 5, 17, p - 3, p - 1, p, p + 1] {
        let mut probe = policy.clone();
        let mut at_theta = |delta: f64| {
            let mut t = theta.clone();
            t[i] += delta as f32;
            probe.set_flat(&t);
            trpo::surrogate(&probe, &batch, &at, ent, plan.ent_limit)
        };
        let fd = (at_theta(h) - at_theta(-h)) / (2.0 * h);
        assert!(
            (fd - at.grad[i]).abs() < 2e-3 * fd.abs().max(0.1),
            "param {i}: {fd} vs {}",
            at.grad[i]
        );
    }
}

/// A dynamics plan with weights large enough to give gradients.
fn dynamics_plan() -> DynamicsPlan {
    DynamicsPlan {
        net: NetPlan {
            dims: vec![4, 16, 3],
            activation: Activation::Tanh,
            init: Init::TruncatedNormal(0.3),
            normalize: true,
            precision: Precision::Fp32,
        },
        predicts: Predicts::Delta,
        clip: 100.0,
        action_clip: 1.0,
    }
}

fn norms(rng: &mut Stream) -> Norms {
    let mut norms = Norms::new(3);
    let states = randn(rng, 60, 2.0);
    let next: Vec<f32> = states.iter().map(|s| s * 0.9 + 0.1).collect();
    norms.update(&states, &next);
    norms
}

fn sequences(rng: &mut Stream, rows: usize, horizon: usize) -> Sequences {
    let mut out = Sequences {
        rows,
        ..Sequences::default()
    };
    for h in 0..horizon {
        let states = randn(rng, rows * 3, 1.5);
        let noise = randn(rng, rows * 3, 0.3);
        out.next_states.push(
            states
                .iter()
                .zip(&noise)
                .map(|(s, e)| 0.9 * s + 0.1 + e)
                .collect(),
        );
        out.states.push(states);
        out.actions.push(randn(rng, rows, 0.8));
        out.masks.push(
            (0..rows)
                .map(|r| f32::from(u8::from((r + h) % 3 != 0)))
                .collect(),
        );
    }
    out
}

fn value_net(dev: &Dev) -> Value {
    let plan = NetPlan {
        dims: vec![3, 8, 1],
        activation: Activation::Tanh,
        init: Init::Normc {
            hidden: 1.0,
            last: 1.0,
        },
        normalize: true,
        precision: Precision::Fp32,
    };
    Value {
        net: Net::new(dev, 2, 0, NetId(11), &plan),
        normalize: true,
    }
}

/// The built-in model losses' gradients against central differences: the
/// multi-step loss's hand-written one (norm and square, summed and
/// averaged, masks rolled through), and MLE and value-aware L1 and L2
/// through V as the tape differentiates their terms.
#[test]
fn model_loss_gradients_match_finite_differences() {
    let dev = device().unwrap();
    let plan = dynamics_plan();
    let mut rng = Stream::new(4, 0, Purpose::Replay, 0);
    let norms = norms(&mut rng);
    let batch = sequences(&mut rng, 6, 3);
    let value = value_net(&dev);
    let losses = [
        SlboLoss::MultiStep {
            horizon: 3,
            squared: false,
            mean: false,
        },
        SlboLoss::MultiStep {
            horizon: 3,
            squared: false,
            mean: true,
        },
        SlboLoss::MultiStep {
            horizon: 3,
            squared: true,
            mean: false,
        },
        SlboLoss::MultiStep {
            horizon: 1,
            squared: true,
            mean: false,
        },
        SlboLoss::MultiStep {
            horizon: 3,
            squared: true,
            mean: true,
        },
        SlboLoss::Mle { horizon: 3 },
        SlboLoss::ValueAware {
            horizon: 3,
            squared: false,
            coeff: 0.5,
        },
        SlboLoss::ValueAware {
            horizon: 3,
            squared: true,
            coeff: 0.5,
        },
    ];
    for loss in losses {
        let model = Dynamics {
            net: Net::new(&dev, 3, 0, NetId(12), &plan.net),
        };
        check_gradient(
            &format!("{loss:?}"),
            &model,
            &plan,
            &loss,
            &batch,
            &value,
            &norms,
        );
    }
}

/// Every 7th parameter's gradient of `loss` against its central difference.
/// The loss is an f32 sum: its rounding, divided by 2h, is the noise floor
/// of the difference quotient; h = 5e-3 keeps it and the truncation error
/// small. At least 4 of the parameters checked must have a gradient.
fn check_gradient(
    name: &str,
    model: &Dynamics,
    plan: &DynamicsPlan,
    loss: &SlboLoss,
    batch: &Sequences,
    value: &Value,
    norms: &Norms,
) {
    let (_, grads) = model.loss_and_grad(plan, loss, batch, value, norms);
    let h = 5e-3f32;
    let mut checked = 0;
    for i in (0..model.net.n_params()).step_by(7) {
        let at = |delta: f32| {
            let mut probe = model.clone();
            probe.net.params_mut()[i] += delta;
            probe.loss_and_grad(plan, loss, batch, value, norms).0.loss as f64
        };
        let fd = (at(h) - at(-h)) / (2.0 * h as f64);
        let g = grads[i] as f64;
        assert!(
            (fd - g).abs() <= 1e-2 * fd.abs().max(g.abs()) + 1e-4,
            "{name} param {i}: finite difference {fd}, gradient {g}"
        );
        checked += usize::from(g.abs() > 1e-5);
    }
    assert!(
        checked > 3,
        "{name}: only {checked} parameters with a gradient"
    );
}

/// The value-aware losses train the model through V's input and never
/// change V's parameters.
#[test]
fn value_aware_gradients_reach_the_model_and_never_v() {
    let dev = device().unwrap();
    let plan = dynamics_plan();
    let mut rng = Stream::new(6, 0, Purpose::Replay, 0);
    let norms = norms(&mut rng);
    let batch = sequences(&mut rng, 8, 1);
    let value = value_net(&dev);
    let frozen = value.clone();
    let mut model = Dynamics {
        net: Net::new(&dev, 3, 0, NetId(12), &plan.net),
    };
    let before = model.net.params().to_vec();
    let opt = crate::kinds::slbo::SlboAdam {
        lr: 1e-3,
        b1: 0.9,
        b2: 0.999,
        eps: 1e-8,
        l2: 0.0,
        grad_clip: Some(2.0),
    };
    for squared in [false, true] {
        let loss = SlboLoss::ValueAware {
            horizon: 1,
            squared,
            coeff: 0.01,
        };
        let (_, grads) = model.loss_and_grad(&plan, &loss, &batch, &value, &norms);
        assert!(
            grads.iter().any(|g| g.abs() > 1e-6),
            "the model has a gradient"
        );
        model.train_step(&plan, &loss, &batch, &value, &norms, &opt);
    }
    assert_ne!(model.net.params(), &before[..]);
    assert_eq!(value, frozen, "V's parameters and Adam state are untouched");
}

/// The running normalizer's inverse returns the input.
#[test]
fn normalizer_inverse_round_trips() {
    let mut rng = Stream::new(8, 0, Purpose::Replay, 0);
    let norms = norms(&mut rng);
    let x = randn(&mut rng, 30, 3.0);
    let back = norms.state.denormalize(&norms.state.normalize(&x));
    for (a, b) in x.iter().zip(&back) {
        assert!((a - b).abs() < 1e-5, "{a} vs {b}");
    }
}

/// V is refit after exactly every `value_refit_every` model steps of an
/// outer iteration (never when the interval exceeds `model_iters`).
#[test]
fn refits_happen_every_value_refit_every_model_steps() {
    for (every, want) in [
        (3usize, vec![2usize, 5, 8]),
        (4, vec![3, 7]),
        (0, vec![]),
        (20, vec![]),
    ] {
        let run = plan_of(&format!(
            "use slbo::*\nexperiment e {{ env: mbbl_pendulum, agent: slbo_l2 {{ steps_per_stage: 200 steps, model_iters: 10 updates, value_refit_every: {every} updates, model: dynamics {{ hidden: [8] }}, planner: virtual_rollouts {{ envs: 2, length: 200 steps }} }} }}"
        ));
        let plan = slbo(&run);
        let dev = device().unwrap();
        let mut learner = SlboLearner::new(&run, plan, &[0], &dev);
        let data = learner.collect(true);
        learner.per_seed[0]
            .norms
            .update(&data[0].states, &data[0].next_states);
        let mut seed = learner.per_seed[0].clone();
        let mut ctx = Ctx {
            plan,
            env_config: learner.env_config,
            starts: &mut learner.starts,
            first: 0,
        };
        let mut report = StageReport::default();
        let refits = ctx.model_phase(&mut seed, &mut report);
        assert_eq!(refits, want, "every {every}");
        assert_eq!(report.fits as usize, want.len());
    }
}

/// A stage reports every metric, each seed's numbers do not depend on the
/// seeds beside it, and a stage resumed from a saved state continues exactly.
#[test]
fn stages_are_batch_invariant_and_resume_exactly() {
    let run = plan_of(
        "use slbo::*\nexperiment e { seeds: 2, env: mbbl_pendulum, agent: slbo_ma_l1 { steps_per_stage: 200 steps, iters: 1 iterations, model_iters: 4 updates, policy_iters: 2 updates, value_refit_every: 2 updates, model: dynamics { hidden: [8] }, planner: virtual_rollouts { envs: 2, length: 200 steps } } }",
    );
    let plan = slbo(&run);
    let dev = device().unwrap();
    let metrics = run.metrics().len();
    let mut pair = SlboLearner::new(&run, plan, &[0, 1], &dev);
    let mut single = SlboLearner::new(&run, plan, &[1], &dev);
    let mut sink = Losses::new(&[0, 1], metrics);
    let mut one = Losses::new(&[1], metrics);
    pair.advance(0, &mut sink);
    single.advance(0, &mut one);
    assert_eq!(
        serde_json_like(&pair.per_seed[1]),
        serde_json_like(&single.per_seed[0]),
        "seed 1 alone and beside seed 0"
    );
    resumes_exactly(&run, plan, &mut single, &mut one);
}

/// With `precision: bf16` (every network's products on the AMX tiles) a
/// stage's seed does not depend on the seed beside it, a resumed stage
/// continues exactly, and the numbers differ from fp32's (it takes effect).
#[test]
#[ignore = "needs AMX (amx_tile, amx_bf16 in /proc/cpuinfo): scripts/test.sh runs it where the CPU has it"]
fn bf16_stages_are_batch_invariant_and_resume_exactly() {
    Precision::Bf16.available().expect("this test needs AMX");
    let text = |precision: &str| {
        format!("use slbo::*\nexperiment e {{ seeds: 2, env: mbbl_pendulum, agent: slbo_mle {{ steps_per_stage: 200 steps, iters: 1 iterations, model_iters: 4 updates, policy_iters: 2 updates, value_refit_every: 2 updates, model: dynamics {{ hidden: [40] }}, planner: virtual_rollouts {{ envs: 2, length: 200 steps }}, precision: {precision} }} }}")
    };
    let (run, fp32) = (plan_of(&text("bf16")), plan_of(&text("fp32")));
    let plan = slbo(&run);
    assert_eq!(plan.dynamics.net.precision, Precision::Bf16);
    let dev = device().unwrap();
    let metrics = run.metrics().len();
    let mut pair = SlboLearner::new(&run, plan, &[0, 1], &dev);
    let mut single = SlboLearner::new(&run, plan, &[1], &dev);
    let mut full = SlboLearner::new(&fp32, slbo(&fp32), &[1], &dev);
    let mut sink = Losses::new(&[0, 1], metrics);
    let mut one = Losses::new(&[1], metrics);
    pair.advance(0, &mut sink);
    single.advance(0, &mut one);
    full.advance(0, &mut Losses::new(&[1], metrics));
    assert_eq!(
        serde_json_like(&pair.per_seed[1]),
        serde_json_like(&single.per_seed[0]),
        "seed 1 alone and beside seed 0"
    );
    assert_ne!(
        serde_json_like(&full.per_seed[0]),
        serde_json_like(&single.per_seed[0]),
        "bf16 products change the stage"
    );
    resumes_exactly(&run, plan, &mut single, &mut one);
}

/// `learner` (seed 1 alone, one stage done), saved and restored into a new
/// learner, runs its next stage to the same bits as `learner` itself.
fn resumes_exactly(run: &Plan, plan: &SlboPlan, learner: &mut SlboLearner, losses: &mut Losses) {
    let dev = device().unwrap();
    let bytes = bincode::serialize(&learner.save()).unwrap();
    let mut restored = SlboLearner::new(run, plan, &[1], &dev);
    restored
        .restore(bincode::deserialize(&bytes).unwrap())
        .unwrap();
    learner.advance(1, losses);
    restored.advance(1, &mut Losses::new(&[1], run.metrics().len()));
    assert_eq!(
        serde_json_like(&learner.per_seed[0]),
        serde_json_like(&restored.per_seed[0])
    );
}

/// A seed's state as bytes, for comparisons.
fn serde_json_like(seed: &crate::kinds::slbo::learner::SeedState) -> Vec<u8> {
    bincode::serialize(seed).unwrap()
}

/// A stdlib loss written as an expression, as SLBO compiles it.
fn stdlib_loss(name: &str) -> SlboLoss {
    let experiment = format!(
        "use slbo::*\nexperiment e {{ env: mbbl_pendulum, agent: slbo_l2 {{ model_loss: {name} }} }}"
    );
    slbo(&plan_of(&experiment)).loss.clone()
}

/// A loss that uses others runs at the longest of their horizons unless it
/// states its own: `mle_twin`'s 2 is not dropped by a sum that names none.
#[test]
fn a_sum_of_losses_runs_at_its_parts_horizon_or_its_own() {
    let mix = "use slbo::*\nloss mix = mle_twin + ma_l1_twin\nexperiment e { env: mbbl_pendulum, agent: slbo_l2 { model_loss: mix } }";
    assert_eq!(slbo(&plan_of(mix)).loss.horizon(), 2);
    assert_eq!(stdlib_loss("mle_ma_l1").horizon(), 1);
    assert_eq!(stdlib_loss("ma_l1_twin").horizon(), 1);
}

/// Each built-in loss and its expression twin in `stdlib/slbo.exp` give the
/// same loss and the same gradient on random batches (within 1e-5 relative):
/// MLE and the value-aware losses run their twin's very term (equal
/// canonical text, equal bits); the multi-step loss its hand-written
/// gradient.
#[test]
fn expression_twins_match_the_built_in_losses() {
    let dev = device().unwrap();
    let plan = dynamics_plan();
    let value = value_net(&dev);
    let cases = [
        (
            SlboLoss::MultiStep {
                horizon: 2,
                squared: false,
                mean: false,
            },
            "slbo_twin",
        ),
        (SlboLoss::Mle { horizon: 2 }, "mle_twin"),
        (
            SlboLoss::ValueAware {
                horizon: 1,
                squared: false,
                coeff: 0.01,
            },
            "ma_l1_twin",
        ),
        (
            SlboLoss::ValueAware {
                horizon: 1,
                squared: true,
                coeff: 0.01,
            },
            "vaml_twin",
        ),
    ];
    for (seed, (builtin, name)) in cases.into_iter().enumerate() {
        let twin = stdlib_loss(name);
        let SlboLoss::Expr { term, .. } = &twin else {
            panic!("{name} is not an expression: {twin:?}");
        };
        let carried = builtin.expression();
        if let Some(own) = &carried {
            assert_eq!(own.describe(), term.describe(), "{name}");
        }
        assert_eq!(twin.horizon(), builtin.horizon(), "{name}");
        for draw in 0..3u64 {
            let mut rng = Stream::new(40 + seed as u64, draw, Purpose::Replay, 0);
            let norms = norms(&mut rng);
            let mut batch = sequences(&mut rng, 16, builtin.horizon());
            // Some sequences end after their first step: the mask matters.
            for m in batch.masks[0].iter_mut().step_by(3) {
                *m = 0.0;
            }
            let model = Dynamics {
                net: Net::new(&dev, 3 + draw, 0, NetId(12), &plan.net),
            };
            let (want, gw) = model.loss_and_grad(&plan, &builtin, &batch, &value, &norms);
            let (got, gg) = model.loss_and_grad(&plan, &twin, &batch, &value, &norms);
            let rel = ((got.loss - want.loss) / want.loss.abs().max(1e-12)).abs();
            assert!(
                rel < 1e-5,
                "{name}: loss {} vs built-in {}",
                got.loss,
                want.loss
            );
            let scale = gw.iter().fold(0f32, |m, g| m.max(g.abs()));
            let worst = gw
                .iter()
                .zip(&gg)
                .fold(0f32, |m, (a, b)| m.max((a - b).abs()));
            assert!(scale > 0.0, "{name}: no gradient");
            if carried.is_some() {
                assert_eq!(
                    (got.loss, &gg),
                    (want.loss, &gw),
                    "{name}: not the same bits"
                );
            }
            assert!(
                worst <= 1e-5 * scale,
                "{name}: gradients differ by {worst} (largest {scale})"
            );
        }
    }
}

/// The expression losses' gradients (the twins, and the two new losses)
/// against central differences of their own values.
#[test]
fn expression_loss_gradients_match_finite_differences() {
    let dev = device().unwrap();
    let plan = dynamics_plan();
    let value = value_net(&dev);
    for name in [
        "slbo_twin",
        "mle_twin",
        "ma_l1_twin",
        "vaml_twin",
        "mle_ma_l1",
        "vagram",
    ] {
        let loss = stdlib_loss(name);
        let mut rng = Stream::new(9, 0, Purpose::Replay, 0);
        let norms = norms(&mut rng);
        let batch = sequences(&mut rng, 6, loss.horizon());
        let model = Dynamics {
            net: Net::new(&dev, 3, 0, NetId(12), &plan.net),
        };
        check_gradient(name, &model, &plan, &loss, &batch, &value, &norms);
    }
}
