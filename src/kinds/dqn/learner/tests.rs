//! The DQN learner's timing rules against young2022 spec §2-3, on tiny
//! plans compiled from `.exp` text: the first update, target syncs (with and
//! without a target network), rollout weights, and the stale-observation
//! quirk under `compat: young2022` only.

use crate::compile::{self, Plan};
use crate::kinds::dqn::learner::DqnLearner;
use crate::runtime::driver::{Learner, Losses};
use crate::source::Origin;
use crate::tensor::device;

/// The first cell of `experiment` (with `use young2022::*` prepended), compiled.
pub(crate) fn plan_of(experiment: &str) -> Plan {
    let text = format!("use young2022::*\n{experiment}");
    let out = crate::check_source(
        Origin::Inline("test.exp".into()),
        text,
        &[],
        &crate::resolve::FsLoader,
    );
    let errors: Vec<_> = out.diags.iter().filter(|d| d.is_error()).collect();
    assert!(errors.is_empty(), "{errors:?}");
    let checked = out.checked.expect("parsed");
    let exp = &checked.experiments[0];
    compile::compile(&crate::graph::cell_graph(exp, &exp.cells[0]), 1.0).expect("compiles")
}

fn learner<'p>(plan: &Plan, dqn: &'p crate::kinds::dqn::DqnPlan, seeds: &[u64]) -> DqnLearner<'p> {
    DqnLearner::new(plan, dqn, seeds, &device().expect("cpu"))
}

fn dqn(plan: &Plan) -> &crate::kinds::dqn::DqnPlan {
    plan.agent
        .get()
        .unwrap_or_else(|| panic!("not DQN: {:?}", plan.agent))
}

fn losses(seeds: usize) -> Losses {
    Losses::new(&(0..seeds as u64).collect::<Vec<_>>(), 3)
}

const TINY: &str = "q: mlp { hidden: [8] }, eval: greedy_eval { envs: 2, steps: 5 steps }";

/// The first update happens at env step `learning_starts` (spec §2: `train`
/// is on from the chunk that starts there), and then `updates_per_step` per step.
#[test]
fn the_first_update_is_at_learning_starts() {
    let plan = plan_of(&format!(
        "experiment e {{ env: flute, agent: er {{ {TINY}, batch: 4, learning_starts: 30 steps, updates_per_step: 3, steps: 100 steps, eval_every: 50 steps }} }}"
    ));
    let dqn = dqn(&plan);
    let mut l = learner(&plan, dqn, &[0]);
    let mut sink = losses(1);
    for t in 0..30 {
        l.advance(t, &mut sink);
        assert_eq!(l.q.t, 0, "no update before step 30 (step {t})");
    }
    l.advance(30, &mut sink);
    assert_eq!(l.q.t, 3);
    l.advance(31, &mut sink);
    assert_eq!(l.q.t, 6);
}

/// The target network is synced before the step's updates at every step
/// `t >= learning_starts` with `t % target_update_every == 0`, and only then.
#[test]
fn target_syncs_every_target_update_every_steps() {
    let plan = plan_of(&format!(
        "experiment e {{ env: flute, agent: er {{ {TINY}, batch: 4, learning_starts: 10 steps, target_update_every: 7 steps, steps: 100 steps, eval_every: 50 steps }} }}"
    ));
    let dqn = dqn(&plan);
    let mut l = learner(&plan, dqn, &[0]);
    let mut sink = losses(1);
    let mut synced = Vec::new();
    for t in 0..40 {
        let before_target = l.q.networks().1.params_of_seed(0);
        let before_q = l.q.networks().0.params_of_seed(0);
        l.advance(t, &mut sink);
        let after = l.q.networks().1.params_of_seed(0);
        if after != before_target {
            assert_eq!(
                after, before_q,
                "a sync copies Q as it was before the step's update"
            );
            synced.push(t);
        }
    }
    assert_eq!(
        synced,
        vec![14, 21, 28, 35],
        "t = 7 is before learning starts; Q is unchanged at 10"
    );
}

/// `use_target: false`: Q bootstraps from itself: before each step's update
/// the target is the online network (with one update per step, the TD
/// target is computed from the online network being trained).
#[test]
fn without_a_target_network_q_bootstraps_from_itself() {
    let plan = plan_of(&format!(
        "experiment e {{ env: flute, agent: er {{ {TINY}, batch: 4, learning_starts: 10 steps, use_target: false, steps: 100 steps, eval_every: 50 steps }} }}"
    ));
    let dqn = dqn(&plan);
    assert!(!dqn.use_target);
    let mut l = learner(&plan, dqn, &[0]);
    let mut sink = losses(1);
    for t in 0..30 {
        let q_before = l.q.networks().0.params_of_seed(0);
        l.advance(t, &mut sink);
        if t >= 10 {
            assert_eq!(l.q.networks().1.params_of_seed(0), q_before, "step {t}");
            assert_ne!(
                l.q.networks().0.params_of_seed(0),
                q_before,
                "Q trains at step {t}"
            );
        }
    }
}

/// A learned model's rollouts weight step k by the product of the predicted
/// continuations before it on episodic envs (spec §3.3), and every step 1
/// under `weighting: none`.
#[test]
fn rollout_weights_follow_predicted_continuations() {
    for (weighting, product) in [("auto", true), ("none", false)] {
        let plan = plan_of(&format!(
            "experiment e {{ env: procmaze(grid_size: 2), agent: simple_model {{ {TINY}, batch: 4, learning_starts: 5 steps, steps: 100 steps, eval_every: 50 steps, model: factored_model {{ hidden: [8] }}, planner: model_rollouts {{ starts: 3, length: 4 steps, weighting: {weighting} }} }} }}"
        ));
        let dqn = dqn(&plan);
        let gamma = dqn.gamma as f32;
        let mut l = learner(&plan, dqn, &[0, 1]);
        let mut sink = losses(2);
        for t in 0..6 {
            l.advance(t, &mut sink);
        }
        // One more batch exactly as the update builds it.
        l.q_batch(&mut sink);
        let (w, disc) = (&l.rows.weights, &l.rows.discounts);
        let (starts, length) = (3, 4);
        for s in 0..2 {
            for j in 0..starts {
                let row = |k: usize| s * starts * length + k * starts + j;
                assert_eq!(w[row(0)], 1.0);
                for k in 1..length {
                    let expected = match product {
                        true => w[row(k - 1)] * disc[row(k - 1)] / gamma,
                        false => 1.0,
                    };
                    assert!(
                        (w[row(k)] - expected).abs() < 1e-6,
                        "{weighting}: seed {s} start {j} step {k}: {} vs {expected}",
                        w[row(k)]
                    );
                }
            }
        }
        if product {
            assert!(w.iter().any(|x| *x < 1.0), "some continuation below 1");
        }
    }
}

/// The perfect model's rollouts weight every step after a terminal one 0
/// (spec §3.2) and keep the terminal step itself.
#[test]
fn true_env_rollouts_stop_counting_after_a_terminal() {
    let plan = plan_of(&format!(
        "experiment e {{ env: procmaze(grid_size: 2), agent: perfect_model {{ {TINY}, learning_starts: 5 steps, steps: 100 steps, eval_every: 50 steps, planner: model_rollouts {{ starts: 16, length: 6 steps }} }} }}"
    ));
    let dqn = dqn(&plan);
    let mut l = learner(&plan, dqn, &[0]);
    let mut sink = losses(1);
    for t in 0..6 {
        l.advance(t, &mut sink);
    }
    l.q_batch(&mut sink);
    let (w, disc) = (&l.rows.weights, &l.rows.discounts);
    let (starts, length) = (16, 6);
    let mut cut = 0;
    for j in 0..starts {
        let row = |k: usize| k * starts + j;
        let mut alive = true;
        for k in 0..length {
            assert_eq!(w[row(k)], f32::from(u8::from(alive)), "start {j} step {k}");
            if disc[row(k)] == 0.0 {
                cut += usize::from(alive && k + 1 < length);
                alive = false;
            }
        }
    }
    assert!(cut > 0, "some rollout ended before its last step");
}

/// After a terminal step the agent acts from the new episode's first
/// observation, except under `compat: young2022`, where it acts from (and
/// stores) the old episode's last one (spec §8, quirk 1).
#[test]
fn stale_observations_only_under_young2022() {
    for compat in ["none", "young2022"] {
        let plan = plan_of(&format!(
            "experiment e {{ compat: {compat}, env: procmaze(grid_size: 2), agent: er {{ {TINY}, batch: 4, learning_starts: 1000 steps, steps: 2000 steps, eval_every: 1000 steps }} }}"
        ));
        let dqn = dqn(&plan);
        let mut l = learner(&plan, dqn, &[0]);
        let mut sink = losses(1);
        let d = dqn.obs_dim;
        let (mut terminals, mut stale) = (0, 0);
        for t in 0..300 {
            l.advance(t, &mut sink);
            if !l.terminals[0] {
                continue;
            }
            terminals += 1;
            let mut fresh = vec![0f32; d];
            l.env.observe(0, &mut fresh);
            // The transition just stored ends in the terminal step's observation.
            let last = l.data.replays().expect("ER stores transitions")[0]
                .last_next_obs()
                .to_vec();
            match compat {
                "none" => assert_eq!(l.obs, fresh, "step {t}: acts from the reset obs"),
                _ => {
                    assert_eq!(l.obs, last, "step {t}: acts from the terminal obs");
                    stale += usize::from(l.obs != fresh);
                }
            }
        }
        assert!(terminals > 5, "{compat}: {terminals} terminals");
        if compat == "young2022" {
            assert!(
                stale > 0,
                "the stale observation differs from the reset one"
            );
        }
    }
}

/// The largest absolute difference between two parameter lists.
fn worst(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0f32, f32::max)
}

/// Every parameter of a learner's Q and (learned) model, seed `s` for Q,
/// all seeds for the model.
fn parameters(l: &mut DqnLearner, s: usize) -> (Vec<f32>, Vec<f32>) {
    let q = l.q.networks().0.params_of_seed(s);
    let model = match &l.data {
        super::Data::Learned { model, .. } => model.state().0.concat().concat(),
        _ => Vec::new(),
    };
    (q, model)
}

/// Every Figure 4 agent on the taped path, the one a CUDA build always
/// takes: it acts, fits its model and updates Q as the fused CPU path does,
/// and resumes from its checkpoint exactly. The step sizes are large and the
/// agents make 40 updates, so that Q and the model move by at least 100x
/// the tolerance their taped and fused parameters must agree within; ER
/// runs once with each activation.
#[test]
fn every_agent_runs_and_resumes_on_the_taped_path() {
    const TOL: f32 = 1e-4;
    let rollouts = "planner: model_rollouts { starts: 3, length: 3 steps }";
    let fast = "lr: 1e-2, model_lr: 1e-2";
    let agents = [
        ("er", "elu", "batch: 6".to_string()),
        ("er", "relu", "batch: 6".to_string()),
        ("er", "tanh", "batch: 6".to_string()),
        ("perfect_model", "elu", rollouts.to_string()),
        ("simple_model", "elu", format!("batch: 4, {rollouts}, model: factored_model {{ hidden: [8], activation: tanh }}")),
        ("categorical_latent", "relu", format!("batch: 4, {rollouts}, model: latent_model {{ latent: categorical, features: 4, width: 3, hidden: [8] }}")),
        ("gaussian_latent", "elu", format!("batch: 4, {rollouts}, model: latent_model {{ latent: gaussian, features: 4, min_std: 0.1, std_act: sigmoid2, hidden: [8] }}")),
    ];
    let seeds = [0u64, 1];
    for (agent, activation, settings) in agents {
        let plan = plan_of(&format!(
            "experiment e {{ env: panflute(pipes: 3), agent: {agent} {{ q: mlp {{ hidden: [8], activation: {activation} }}, eval: greedy_eval {{ envs: 2, steps: 5 steps }}, {fast}, {settings}, learning_starts: 10 steps, steps: 100 steps, eval_every: 50 steps }} }}"
        ));
        let agent = format!("{agent} ({activation} Q)");
        let fused_plan = dqn(&plan).clone();
        let taped_plan = crate::kinds::dqn::DqnPlan {
            taped: true,
            ..fused_plan.clone()
        };
        let mut fused = learner(&plan, &fused_plan, &seeds);
        let mut taped = learner(&plan, &taped_plan, &seeds);
        assert!(taped.q.is_taped() && !fused.q.is_taped() || cfg!(feature = "cuda"));
        if let super::Data::Learned { model, .. } = &taped.data {
            assert!(model.is_taped(), "{agent}: the model trains taped too");
        }
        let start: Vec<_> = (0..seeds.len())
            .map(|s| parameters(&mut fused, s))
            .collect();
        let mut sink = losses(seeds.len());
        for t in 0..50 {
            fused.advance(t, &mut sink);
            taped.advance(t, &mut sink);
        }
        assert_eq!(taped.q.t, 40, "{agent}: Q trains");
        for (s, (q0, model0)) in start.iter().enumerate() {
            let (qf, model_f) = parameters(&mut fused, s);
            let (qt, model_t) = parameters(&mut taped, s);
            let moved = worst(q0, &qf);
            assert!(
                moved > 100.0 * TOL,
                "{agent}: seed {s}: Q moved only {moved}"
            );
            let differ = worst(&qf, &qt);
            assert!(
                differ < TOL,
                "{agent}: seed {s}: taped and fused Q differ by {differ}"
            );
            if !model0.is_empty() {
                let moved = worst(model0, &model_f);
                assert!(moved > 100.0 * TOL, "{agent}: the model moved only {moved}");
                let differ = worst(&model_f, &model_t);
                assert!(
                    differ < TOL,
                    "{agent}: taped and fused models differ by {differ}"
                );
            }
        }
        // A resumed taped learner continues exactly.
        let state = taped.save();
        let mut resumed = learner(&plan, &taped_plan, &seeds);
        resumed.restore(state).expect("restores");
        for t in 50..57 {
            taped.advance(t, &mut sink);
            resumed.advance(t, &mut sink);
        }
        for s in 0..seeds.len() {
            let q = taped.q.networks().0.params_of_seed(s);
            assert!(q.iter().all(|x| x.is_finite()), "{agent}: finite Q");
            assert_eq!(
                q,
                resumed.q.networks().0.params_of_seed(s),
                "{agent}: resumed exactly"
            );
        }
    }
}

/// Seed `s`'s Q and model parameters in a learner of `n` seeds (a model's
/// state holds every seed's tensors, seed by seed).
fn seed_parameters(l: &mut DqnLearner, s: usize, n: usize) -> (Vec<f32>, Vec<f32>) {
    let q = l.q.networks().0.params_of_seed(s);
    let model = match &l.data {
        super::Data::Learned { model, .. } => model
            .state()
            .0
            .iter()
            .flatten()
            .flat_map(|t| {
                t.chunks(t.len() / n)
                    .nth(s)
                    .expect("a seed's part")
                    .to_vec()
            })
            .collect(),
        _ => Vec::new(),
    };
    (q, model)
}

/// Every Figure 4 agent with `precision: bf16`: its products run on the
/// AMX tiles (the parameters differ from an fp32 run's, the setting takes
/// effect), a seed's parameters do not depend on the seed beside it (alone
/// and in a pair, the same bits), and a learner resumed from its checkpoint
/// continues exactly.
#[test]
#[ignore = "needs AMX (amx_tile, amx_bf16 in /proc/cpuinfo): scripts/test.sh runs it where the CPU has it"]
fn every_agent_in_bf16_is_batch_invariant_and_resumes_exactly() {
    crate::tensor::Precision::Bf16
        .available()
        .expect("this test needs AMX");
    let rollouts = "planner: model_rollouts { starts: 3, length: 3 steps }";
    let agents = [
        ("er", "batch: 40".to_string()),
        ("perfect_model", rollouts.to_string()),
        ("simple_model", format!("batch: 20, {rollouts}, model: factored_model {{ hidden: [40] }}")),
        ("categorical_latent", format!("batch: 20, {rollouts}, model: latent_model {{ latent: categorical, features: 4, width: 3, hidden: [40] }}")),
        ("gaussian_latent", format!("batch: 20, {rollouts}, model: latent_model {{ latent: gaussian, features: 4, min_std: 0.1, std_act: sigmoid2, hidden: [40] }}")),
    ];
    for (agent, settings) in agents {
        let text = |precision: &str| {
            format!(
                "experiment e {{ env: panflute(pipes: 3), agent: {agent} {{ q: mlp {{ hidden: [40, 40] }}, eval: greedy_eval {{ envs: 2, steps: 5 steps }}, lr: 1e-3, model_lr: 1e-3, {settings}, learning_starts: 10 steps, steps: 100 steps, eval_every: 50 steps, precision: {precision} }} }}"
            )
        };
        let (plan, fp32) = (plan_of(&text("bf16")), plan_of(&text("fp32")));
        let bf16_plan = dqn(&plan);
        assert_eq!(bf16_plan.precision, crate::tensor::Precision::Bf16);
        let mut pair = learner(&plan, bf16_plan, &[0, 1]);
        let mut alone = learner(&plan, bf16_plan, &[1]);
        let mut full = learner(&fp32, dqn(&fp32), &[1]);
        let (mut two, mut one) = (losses(2), losses(1));
        for t in 0..40 {
            pair.advance(t, &mut two);
            alone.advance(t, &mut one);
            full.advance(t, &mut one);
        }
        let (q_pair, model_pair) = seed_parameters(&mut pair, 1, 2);
        let (q_alone, model_alone) = seed_parameters(&mut alone, 0, 1);
        let first = |a: &[f32], b: &[f32]| a.iter().zip(b).position(|(x, y)| x != y);
        assert_eq!(
            (first(&q_pair, &q_alone), first(&model_pair, &model_alone)),
            (None, None),
            "{agent}: seed 1 alone and beside seed 0 (first differing Q and model parameters)"
        );
        let (q16, model16) = seed_parameters(&mut alone, 0, 1);
        let (q32, model32) = seed_parameters(&mut full, 0, 1);
        assert!(q16.iter().all(|x| x.is_finite()), "{agent}: finite Q");
        assert_ne!(q16, q32, "{agent}: bf16 products change Q");
        if !model32.is_empty() {
            assert_ne!(model16, model32, "{agent}: bf16 products change the model");
        }
        let state = alone.save();
        let mut resumed = learner(&plan, bf16_plan, &[1]);
        resumed.restore(state).expect("restores");
        for t in 40..60 {
            alone.advance(t, &mut one);
            resumed.advance(t, &mut one);
        }
        assert_eq!(
            seed_parameters(&mut alone, 0, 1),
            seed_parameters(&mut resumed, 0, 1),
            "{agent}: resumed exactly"
        );
    }
}
