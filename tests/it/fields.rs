//! Every field the language accepts takes effect or is refused by `check`:
//! a generic sweep over the schema (each field of each block a runnable cell
//! uses, set to another valid value, changes the compiled plan or draws a
//! coded diagnostic), and for each newly honoured field a test of the
//! difference it makes.

use mbrl::check::{Obj, Value};
use mbrl::diagnostics::Code;
use mbrl::resolve::FsLoader;
use mbrl::schema::Ty;
use mbrl::seeds::{Purpose, Stream};
use mbrl::source::Origin;
use mbrl::tensor::mlp::{Activation, Init};
use mbrl::tensor::optim::AdamConfig;
use mbrl::tensor::Dev;

/// The plan of cell 0 and every diagnostic (code and message), for `text` with `overrides`.
fn compiled(text: &str, overrides: &[String]) -> (Option<String>, Vec<(Code, String)>) {
    let out = mbrl::check_source(
        Origin::Inline("sweep.exp".into()),
        text.to_string(),
        overrides,
        &FsLoader,
    );
    let codes: Vec<(Code, String)> = out
        .diags
        .iter()
        .map(|d| (d.code, d.message.clone()))
        .collect();
    if out.has_errors() {
        return (None, codes);
    }
    let checked = out.checked.expect("parsed");
    let exp = &checked.experiments[0];
    let plan = mbrl::compile::compile(&mbrl::graph::cell_graph(exp, &exp.cells[0]), 1.0)
        .expect("a clean cell compiles");
    (Some(format!("{plan:?}")), codes)
}

/// Another valid value for a field of type `ty` whose value is `current`.
fn alternatives(field: &mbrl::schema::Field, current: Option<&Value>) -> Vec<String> {
    let fits = |x: f64| field.range.contains(x);
    match (field.ty, current) {
        (Ty::Int, Some(Value::Int(v))) => {
            let v = *v;
            [if v == 0 { 1 } else { 2 * v }, v / 2, v + 1]
                .into_iter()
                .find(|x| *x != v && fits(*x as f64))
                .map(|x| vec![x.to_string()])
                .unwrap_or_default()
        }
        (Ty::Int, None) => vec!["7".into()],
        (Ty::Float, Some(Value::Float(v))) => {
            let v = *v;
            [if v == 0.0 { 0.5 } else { v * 0.5 }, v * 2.0]
                .into_iter()
                .find(|x| *x != v && fits(*x))
                .map(|x| vec![format!("{x:e}")])
                .unwrap_or_default()
        }
        (Ty::Float, None) => vec!["0.1".into()],
        (Ty::Bool, Some(Value::Bool(b))) => vec![(!b).to_string()],
        (Ty::Enum(variants), Some(Value::Enum(v))) => variants
            .iter()
            .filter(|x| **x != v)
            .map(|x| x.to_string())
            .collect(),
        (Ty::List(Ty::Int), Some(Value::List(items))) => {
            let doubled: Vec<String> = items
                .iter()
                .filter_map(|i| match i.value {
                    Value::Int(x) => Some((2 * x).to_string()),
                    _ => None,
                })
                .collect();
            vec![format!("[{}]", doubled.join(", "))]
        }
        _ => Vec::new(),
    }
}

/// The blocks of a cell: `(override path, block)`, nested blocks included.
fn blocks(path: &str, obj: &Obj, out: &mut Vec<(String, Obj)>) {
    out.push((path.to_string(), obj.clone()));
    for (name, field) in &obj.fields {
        if let Value::Obj(inner) = &field.value {
            blocks(&format!("{path}.{name}"), inner, out);
        }
    }
}

/// Settings that mean the same as the base's value in its env: not ignored,
/// equivalent. Each says why.
const EQUIVALENT: &[(&str, &str, &str)] = &[
    // `auto` is the reward rate on a continuing env and the episode return on an episodic one.
    ("metric", "reward_rate", "flute"),
    ("metric", "episode_return", "maze"),
    // `auto` weights rollouts by continuation on episodic envs only.
    ("weighting", "none", "flute"),
    ("weighting", "continuation", "maze"),
];

const BASES: &[(&str, &str)] = &[
    ("er", "flute"),
    ("perfect_model", "maze"),
    ("simple_model", "maze"),
    ("categorical_latent", "flute"),
    ("gaussian_latent", "maze"),
    ("random", "flute"),
    ("slbo_l2", "mbbl_pendulum"),
    ("slbo_mle", "mbbl_pendulum"),
    ("slbo_ma_l1", "mbbl_pendulum"),
];

/// For each runnable agent of young2022 and each field of each block its
/// cell uses (env and experiment fields too), every other valid value either
/// changes the compiled plan or is answered by a coded diagnostic; none is
/// silently ignored.
#[test]
fn every_accepted_field_takes_effect_or_is_refused() {
    let refusals = [
        Code::IgnoredField,
        Code::UnsupportedValue,
        Code::ShapeMismatch,
        Code::EvalInterval,
        Code::NoUpdates,
        Code::BatchExceedsBuffer,
        Code::EpisodicOnly,
        Code::MissingField,
        Code::ObservationSpace,
        Code::UnequalUpdateBatch,
        Code::HorizonMismatch,
    ];
    let mut ignored = Vec::new();
    let mut tried = 0;
    for (agent, env) in BASES {
        let budget = match *agent {
            "random" => "steps: 2000 steps, eval_every: 500 steps",
            a if a.starts_with("slbo") => {
                "stages: 4 stages, steps_per_stage: 400 steps, planner: virtual_rollouts { envs: 2, length: 200 steps }"
            }
            _ => "steps: 2000 steps, eval_every: 500 steps, learning_starts: 100 steps",
        };
        let text = format!(
            "use young2022::*\nuse slbo::*\nexperiment e {{\n  seeds: 2\n  env: {env}\n  agent: {agent} {{ {budget} }}\n}}\n"
        );
        let (base_plan, base_codes) = compiled(&text, &[]);
        let base_plan = base_plan.unwrap_or_else(|| panic!("{agent}: {base_codes:?}"));
        let out = mbrl::check_source(Origin::Inline("b".into()), text.clone(), &[], &FsLoader);
        let checked = out.checked.unwrap();
        let cell = &checked.experiments[0].cells[0];
        let mut all = Vec::new();
        blocks("agent", &cell.agent, &mut all);
        blocks("env", &cell.env, &mut all);
        for (path, obj) in &all {
            for field in obj.ctor.fields {
                if matches!(field.ty, Ty::Ref(_)) {
                    continue;
                }
                let current = obj.get(field.name).map(|f| &f.value);
                for value in alternatives(field, current) {
                    if EQUIVALENT
                        .iter()
                        .any(|(f, v, e)| *f == field.name && *v == value && e == env)
                    {
                        continue;
                    }
                    tried += 1;
                    let set = format!("{path}.{}={value}", field.name);
                    let (plan, codes) = compiled(&text, std::slice::from_ref(&set));
                    let new: Vec<&(Code, String)> =
                        codes.iter().filter(|c| !base_codes.contains(c)).collect();
                    if let Some(bad) = new.iter().find(|c| !refusals.contains(&c.0)) {
                        panic!("{agent}: `--set {set}` is not a valid mutation ({bad:?})");
                    }
                    if new.is_empty() && plan.as_deref() == Some(&base_plan) {
                        ignored.push(format!("{agent} on {env}: --set {set}"));
                    }
                }
            }
        }
        let other_compat = match agent.starts_with("slbo") {
            true => "vaslbo",
            false => "young2022",
        };
        for (field, value) in [("seeds", "3"), ("seed", "5"), ("compat", other_compat)] {
            tried += 1;
            let set = format!("experiment.{field}={value}");
            let (plan, codes) = compiled(&text, std::slice::from_ref(&set));
            let changed = plan.as_deref() != Some(&base_plan);
            let refused = codes.iter().any(|c| !base_codes.contains(c));
            if !changed && !refused {
                ignored.push(format!("{agent}: --set {set}"));
            }
        }
    }
    assert!(tried > 250, "only {tried} mutations tried");
    assert!(
        ignored.is_empty(),
        "settings accepted without effect:\n{}",
        ignored.join("\n")
    );
}

/// A 4-16-16-3 Q learner, seeded.
fn learner(dev: &Dev, seeds: &[u64]) -> mbrl::kinds::dqn::learner::q::QLearner {
    mbrl::kinds::dqn::learner::q::QLearner::new(
        dev,
        5,
        seeds,
        &[4, 16, 16, 3],
        Activation::Elu,
        Init::Haiku,
        AdamConfig::young(1e-2),
    )
}

/// `double_dqn: true`: the TD target takes the target network's value at the
/// online network's argmax on `s'` (not the target's max), on the fused CPU
/// path and on the taped path alike.
#[test]
fn double_dqn_targets_use_the_online_argmax() {
    let dev = Dev::default();
    let seeds = [0u64, 1];
    for taped in [false, true] {
        let mut q = learner(&dev, &seeds);
        if taped {
            q.use_taped();
        }
        // Let Q drift from its target so that the two disagree.
        for u in 0..20 {
            q.update(&super::numerics::td_batch(&seeds, 8, 3, u));
        }
        let rows = super::numerics::td_batch(&seeds, 8, 3, 77);
        let (obs, next, _) = rows.tensors(&dev);
        let (online_net, target_net) = q.networks();
        let online = online_net.forward(obs).as_vec();
        let online_next = online_net.forward(next.clone()).as_vec();
        let target_next = target_net.forward(next).as_vec();
        let (a, r) = (&rows.actions, &rows.rewards);
        let (disc, w) = (&rows.discounts, &rows.weights);
        let expected = |double: bool| -> Vec<f32> {
            (0..2)
                .map(|s| {
                    let mut sum = 0.0;
                    for i in s * 8..(s + 1) * 8 {
                        let row = |v: &[f32]| v[i * 3..(i + 1) * 3].to_vec();
                        let t = row(&target_next);
                        let next_value = match double {
                            true => t[mbrl::tensor::kernels::argmax(&row(&online_next))],
                            false => t.iter().cloned().fold(f32::MIN, f32::max),
                        };
                        let err = online[i * 3 + a[i]] - (r[i] + disc[i] * next_value);
                        sum += w[i] * err * err;
                    }
                    sum / 8.0
                })
                .collect()
        };
        let (plain, double) = (expected(false), expected(true));
        assert!(
            plain.iter().zip(&double).any(|(x, y)| (x - y).abs() > 1e-3),
            "the two targets differ here"
        );
        q.double_dqn = true;
        let losses = q.update(&rows);
        for (got, want) in losses.iter().zip(&double) {
            assert!(
                (got - want).abs() <= 1e-5 * want.abs().max(1.0),
                "taped {taped}: {got} vs {want}"
            );
        }
    }
}

/// `exploration: epsilon_greedy`: with probability epsilon a uniformly
/// random action (possibly the greedy one), else the argmax.
#[test]
fn epsilon_greedy_picks_uniformly_with_probability_epsilon() {
    use mbrl::kinds::dqn::learner::q::epsilon_greedy_actions;
    let values: Vec<f32> = [0.1f32, -0.4, 0.9, 0.3].repeat(20_000);
    let n = 20_000;
    for epsilon in [0.0, 0.3, 1.0] {
        let mut rngs = vec![Stream::new(1, 0, Purpose::Action, 0)];
        let mut out = vec![0usize; n];
        epsilon_greedy_actions(&values, n, epsilon, &mut rngs, &mut out);
        let mut counts = [0usize; 4];
        out.iter().for_each(|a| counts[*a] += 1);
        for (a, c) in counts.iter().enumerate() {
            let p = epsilon / 4.0 + if a == 2 { 1.0 - epsilon } else { 0.0 };
            let share = *c as f64 / n as f64;
            assert!(
                (share - p).abs() < 0.012,
                "epsilon {epsilon}, action {a}: {share} vs {p}"
            );
        }
    }
}

/// `init`: Glorot-uniform weights lie within ±sqrt(6 / (in + out)) with the
/// uniform's variance; `normc` columns have unit norm; both differ from Haiku's.
#[test]
fn q_inits_follow_their_definitions() {
    let dev = Dev::default();
    let make = |init| {
        mbrl::tensor::mlp::Mlp::new(
            &dev,
            3,
            &[0],
            mbrl::tensor::mlp::NetId(0),
            &[40, 60, 5],
            Activation::Elu,
            init,
        )
    };
    let glorot = make(Init::Glorot).weights[0].as_vec();
    let limit = (6.0f32 / 100.0).sqrt();
    assert!(glorot.iter().all(|w| w.abs() <= limit));
    let var = glorot.iter().map(|w| w * w).sum::<f32>() / glorot.len() as f32;
    assert!(
        (var / (limit * limit / 3.0) - 1.0).abs() < 0.1,
        "variance {var}"
    );
    let normc = make(Init::Normc {
        hidden: 1.0,
        last: 1.0,
    })
    .weights[1]
        .as_vec();
    for col in 0..5 {
        let norm: f32 = (0..60)
            .map(|r| normc[r * 5 + col].powi(2))
            .sum::<f32>()
            .sqrt();
        assert!((norm - 1.0).abs() < 1e-5);
    }
    assert_ne!(make(Init::Haiku).weights[0].as_vec(), glorot);
}

/// `entropy` on `latent_kl`: the posterior's KL to the base distribution.
/// Weighted alone it trains the encoder and nothing else, and it falls.
#[test]
fn the_posterior_entropy_term_trains_the_encoder_only() {
    use mbrl::kinds::dqn::learner::model::LearnedModel;
    use mbrl::kinds::dqn::{Latent, LearnedPlan, ModelKind, ModelLoss};
    let dev = Dev::default();
    let seeds = [0u64, 1];
    let latents = [
        Latent::Categorical {
            features: 3,
            width: 4,
        },
        Latent::Gaussian {
            features: 3,
            min_std: 0.1,
            sigmoid2: true,
        },
    ];
    for latent in latents {
        let plan = LearnedPlan {
            kind: ModelKind::Latent(latent),
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
                kl_posterior: 0.0,
                entropy: 1.0,
            },
            continuation_weights: true,
        };
        for taped in [false, true] {
            let mut model = LearnedModel::new(&dev, 2, &seeds, &plan);
            if taped {
                model.use_taped();
            }
            let mut rngs: Vec<Stream> = seeds
                .iter()
                .map(|s| Stream::new(2, *s, Purpose::Model, 0))
                .collect();
            let batch = super::numerics::model_sample(&seeds, 8, 6, 3);
            let before = model.state().0;
            let first = model.update(&dev, &batch, 2, 0, &mut rngs);
            let after = model.state().0;
            for net in 0..5 {
                let changed = before[net] != after[net];
                assert_eq!(changed, net == 3, "{latent:?} taped {taped}: net {net}");
            }
            let mut last = first.clone();
            for t in 1..60 {
                last = model.update(&dev, &batch, 2, t, &mut rngs);
            }
            for s in 0..2 {
                assert!(
                    first[s] > 0.0 && last[s] < 0.5 * first[s],
                    "{latent:?} taped {taped}: {} -> {}",
                    first[s],
                    last[s]
                );
            }
        }
    }
}
