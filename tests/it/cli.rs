//! The `mbrl` binary as a user runs it: exit codes, summaries, graphs.

use std::process::{Command, Output};

pub(crate) fn mbrl(args: &[&str]) -> Output {
    mbrl_with(args, &[])
}

/// `mbrl` with these environment variables; a user's own rates table
/// (`~/.config/mbrl/rates.ron`) is out of sight unless they name one.
pub(crate) fn mbrl_with(args: &[&str], env: &[(&str, &std::path::Path)]) -> Output {
    let mut cmd = Command::new(crate::bin());
    cmd.args(args)
        .current_dir(crate::root())
        .env("NO_COLOR", "1")
        .env_remove("MBRL_RATES")
        .env(
            "XDG_CONFIG_HOME",
            crate::root().join("target/no-user-config"),
        );
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("run mbrl")
}

pub(crate) fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub(crate) fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Every stdlib module and shipped experiment passes `mbrl check`.
#[test]
fn stdlib_and_experiments_pass_check() {
    let mut files = Vec::new();
    for dir in ["stdlib", "experiments"] {
        for entry in std::fs::read_dir(crate::root().join(dir)).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "exp") {
                files.push(format!(
                    "{dir}/{}",
                    path.file_name().unwrap().to_string_lossy()
                ));
            }
        }
    }
    assert!(
        files.len() >= 5,
        "expected the stdlib and experiment files, found {files:?}"
    );
    let args: Vec<&str> = std::iter::once("check")
        .chain(files.iter().map(String::as_str))
        .collect();
    let out = mbrl(&args);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    assert!(
        stderr(&out).is_empty(),
        "warnings in shipped files:\n{}",
        stderr(&out)
    );
}

#[test]
fn fig4_summary_counts_cells_seeds_and_steps() {
    let out = mbrl(&["check", "experiments/fig4.exp"]);
    assert_eq!(out.status.code(), Some(0));
    // 5 agents x 3 envs x 2 regimes; (15 x 1M + 15 x 100k) steps x 30 seeds.
    let text = stdout(&out);
    assert!(
        text.contains("30 cells x 30 seeds, 4.95e8 env steps"),
        "{text}"
    );
}

#[test]
fn check_states_the_cost() {
    let out = mbrl(&["check", "--cost", "experiments/fig4.exp"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(
        stdout(&out).contains("cost of `fig4`: 7.61e17 FLOP"),
        "{}",
        stdout(&out)
    );
}

/// Times are estimated from a table of measured rates, which the line
/// names: the built-in one, or the one `$MBRL_RATES` names; every class at
/// twice the rate takes half the time; a damaged table is refused with its
/// path, never replaced by another.
#[test]
fn cost_estimates_come_from_a_named_table_of_measured_rates() {
    use mbrl::runs::rates::Rates;
    let out = mbrl(&["check", "--cost", "experiments/fig4.exp"]);
    assert!(
        stdout(&out).contains("at the rates of the built-in table (stdlib/rates.ron), measured on"),
        "{}",
        stdout(&out)
    );
    let built_in = Rates::read(&crate::root().join("stdlib/rates.ron")).unwrap();
    let mut doubled = built_in.clone();
    doubled.gflops.values_mut().for_each(|r| *r *= 2.0);
    let path = &crate::root().join("experiments/fig4.exp");
    let checked = mbrl::check_file(path, &[]).unwrap().checked.unwrap();
    let exp = &checked.experiments[0];
    let plans: Vec<_> = exp
        .cells
        .iter()
        .map(|c| mbrl::compile::compile(&mbrl::graph::cell_graph(exp, c), 1.0).unwrap())
        .collect();
    let (slow, missing) = built_in.thread_seconds(&plans);
    assert!(missing.is_empty() && slow > 0.0, "{missing:?}");
    let fast = doubled.thread_seconds(&plans).0;
    assert!((fast - slow / 2.0).abs() <= 1e-9 * slow, "{fast} vs {slow}");

    let dir = temp_dir("rates");
    let table = dir.join("rates.ron");
    doubled.save(&table).unwrap();
    let out = mbrl_with(
        &["check", "--cost", "experiments/fig4.exp"],
        &[("MBRL_RATES", &table)],
    );
    assert_eq!(out.status.code(), Some(0));
    assert!(
        stdout(&out).contains(&format!("at the rates of the table `{}`", table.display())),
        "{}",
        stdout(&out)
    );
    std::fs::write(&table, "(format: 1, cpu: ").unwrap();
    let out = mbrl_with(
        &["check", "--cost", "experiments/fig4.exp"],
        &[("MBRL_RATES", &table)],
    );
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(
        err.contains("is damaged") && err.contains(&*table.to_string_lossy()),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn overrides_change_the_experiment() {
    let out = mbrl(&[
        "check",
        "experiments/fig4.exp",
        "--set",
        "experiment.seeds=5",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("30 cells x 5 seeds"),
        "{}",
        stdout(&out)
    );
}

#[test]
fn bad_override_points_into_the_override() {
    let out = mbrl(&["check", "experiments/fig4.exp", "--set", "agent.gamma=2"]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains("mbrl::check::out_of_range") && err.contains("--set #1"),
        "{err}"
    );
}

#[test]
fn errors_exit_1_and_usage_exits_2() {
    let out = mbrl(&["check", "tests/ui/check/unknown_field.exp"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stdout(&out).contains("1 error(s)"));
    assert_eq!(mbrl(&["check"]).status.code(), Some(2));
    assert_eq!(mbrl(&["check", "no/such/file.exp"]).status.code(), Some(2));
}

/// ER on ProcMaze g=4: Q is 64 -> 200 -> 200 -> 200 -> 5, 94,405 parameters (spec §3.1).
#[test]
fn graph_shows_inferred_shapes() {
    let out = mbrl(&["graph", "experiments/fig4.exp", "--cell", "0"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.contains("64->200->200->200->5 elu, 94405 params/seed"),
        "{text}"
    );
    assert!(
        text.contains("replay -> td: batch [S=30, 320, 64]"),
        "{text}"
    );
    let dot = stdout(&mbrl(&[
        "graph",
        "experiments/fig4.exp",
        "--dot",
        "--cell",
        "5",
    ]));
    assert!(dot.starts_with("digraph") && dot.contains("->"), "{dot}");
}

#[test]
fn envs_lists_spaces() {
    let text = stdout(&mbrl(&["envs"]));
    assert!(text.contains("procmaze(grid_size=10"), "{text}");
    assert!(
        text.contains("obs 15 bits, actions Discrete(5), continuing"),
        "{text}"
    );
    assert!(
        text.contains("obs 24 reals, actions Box([-1, 1]^6)"),
        "{text}"
    );
}

#[test]
fn describe_reads_the_registry() {
    let text = stdout(&mbrl(&["describe", "value_aware"]));
    assert!(
        text.contains("norm") && text.contains("l1 (MA-L1) or l2 (VAML)"),
        "{text}"
    );
    assert_eq!(mbrl(&["describe", "nonsense"]).status.code(), Some(2));
}

/// `mbrl eval` runs the protocol with the random agent: on PanFlute (5 pipes)
/// the reward rate is about the spontaneous rate 1/25.
#[test]
fn eval_runs_the_random_agent() {
    let out = mbrl(&["eval", "experiments/random_baselines.exp"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    let line = text
        .lines()
        .find(|l| l.contains("env=flute"))
        .expect("a PanFlute line");
    let mean: f64 = line
        .split("RewardRate ")
        .nth(1)
        .unwrap()
        .split(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!((0.035..0.045).contains(&mean), "{line}");
    let maze = text
        .lines()
        .find(|l| l.contains("env=maze"))
        .expect("a ProcMaze line");
    assert!(maze.contains("EpisodeReturn -"), "{maze}");
}

/// A tiny ER run: metrics for every seed at every evaluation, a manifest, the
/// same numbers on a second run, and an existing run directory refused.
#[test]
fn run_writes_metrics_and_is_deterministic() {
    let dir = std::env::temp_dir().join(format!("mbrl-run-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let file = dir.join("tiny.exp");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        &file,
        "use young2022::*\nregime tiny_budget = overrides { steps: 300 steps, eval_every: 100 steps, learning_starts: 100 steps, q: mlp { hidden: [16, 16] }, eval: greedy_eval { envs: 4, steps: 20 steps } }\nexperiment tiny {\n  seeds: 2\n  env: panflute(pipes: 3)\n  regime: tiny_budget\n  vary agent: [er { batch: 16 }, perfect_model { planner: model_rollouts { starts: 4, length: 4 steps } }]\n}\n",
    )
    .unwrap();
    let file = file.to_str().unwrap().to_string();
    let (a, b) = (dir.join("a"), dir.join("b"));
    for out in [&a, &b] {
        let res = mbrl(&[
            "run",
            &file,
            "--out",
            out.to_str().unwrap(),
            "--threads",
            "2",
        ]);
        assert_eq!(
            res.status.code(),
            Some(0),
            "{}{}",
            stdout(&res),
            stderr(&res)
        );
    }
    let metrics = std::fs::read_to_string(a.join("metrics.csv")).unwrap();
    let rows: Vec<&str> = metrics.lines().skip(1).collect();
    let evals = rows.iter().filter(|r| r.contains(",eval,")).count();
    assert_eq!(evals, 2 * 2 * 3, "{metrics}");
    // Q's mean TD loss is recorded for every evaluation interval with updates.
    for step in [200, 300] {
        assert!(
            rows.iter()
                .any(|r| r.starts_with(&format!("0,1,{step},q_loss,"))),
            "{metrics}"
        );
    }
    for cell in [0, 1] {
        for step in [100, 200, 300] {
            for seed in [0, 1] {
                let prefix = format!("{cell},{seed},{step},eval,");
                assert!(rows.iter().any(|r| r.starts_with(&prefix)), "{metrics}");
            }
        }
    }
    assert_eq!(
        metrics,
        std::fs::read_to_string(b.join("metrics.csv")).unwrap(),
        "same seeds, same numbers"
    );
    let manifest = std::fs::read_to_string(a.join("manifest.ron")).unwrap();
    assert!(
        manifest.contains("hash:") && manifest.contains("lr=5e-5"),
        "{manifest}"
    );
    for plot in ["eval.png", "eval.svg"] {
        let meta = std::fs::metadata(a.join("plots").join(plot)).unwrap();
        assert!(meta.len() > 1000, "{plot} is drawn");
    }
    std::fs::remove_dir_all(a.join("plots")).unwrap();
    let replot = mbrl(&["plot", a.to_str().unwrap()]);
    assert_eq!(replot.status.code(), Some(0), "{}", stderr(&replot));
    assert!(a.join("plots/eval.svg").exists());
    // The same command on a finished run resumes it: nothing to do, same numbers.
    let again = mbrl(&["run", &file, "--out", a.to_str().unwrap()]);
    assert_eq!(again.status.code(), Some(0), "{}", stderr(&again));
    assert!(stdout(&again).contains("resuming"), "{}", stdout(&again));
    assert_eq!(
        metrics,
        std::fs::read_to_string(a.join("metrics.csv")).unwrap()
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// Every agent of Figure 4 at toy sizes: 3 pipes, 16-unit networks, short rollouts.
const ALL_AGENTS: &str = "use young2022::*
planner short = model_rollouts { starts: 4, length: 3 steps }
regime toy_budget = overrides {
    steps: 400 steps, eval_every: 100 steps, learning_starts: 100 steps, save_every: 100 steps
    q: mlp { hidden: [16, 16] }, eval: greedy_eval { envs: 4, steps: 20 steps }
}
experiment toy {
  seeds: 2
  env: panflute(pipes: 3)
  regime: toy_budget
  vary agent: [
    er { batch: 12 },
    perfect_model { planner: short },
    simple_model { planner: short, batch: 4, model: factored_model { hidden: [16] } },
    categorical_latent { planner: short, batch: 4, model: latent_model { latent: categorical, features: 4, width: 3, hidden: [16] } },
    gaussian_latent { planner: short, batch: 4, model: latent_model { latent: gaussian, features: 4, min_std: 0.1, std_act: sigmoid2, hidden: [16] } },
  ]
}
";

pub(crate) fn temp_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("mbrl-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Runs `file` into `out` with `--stop-at STOP_AT` until it finishes,
/// requiring every stop to make progress (at most `max_stops` of them);
/// returns what each stopped run printed.
fn run_in_pieces(
    file: &str,
    out: &std::path::Path,
    stop_at: &str,
    max_stops: usize,
) -> Vec<String> {
    let mut stopped = Vec::new();
    loop {
        let res = mbrl(&[
            "run",
            file,
            "--out",
            out.to_str().unwrap(),
            "--stop-at",
            stop_at,
        ]);
        match res.status.code() {
            Some(130) => stopped.push(stdout(&res)),
            Some(0) => return stopped,
            other => panic!("exit {other:?}: {}", stderr(&res)),
        }
        assert!(stopped.len() <= max_stops, "every stop makes progress");
    }
}

/// A run stopped in every cell in turn (as Ctrl-C would stop it) and resumed
/// each time ends with exactly the numbers of an uninterrupted run: every
/// evaluation, Q loss and model loss, for all five agents.
#[test]
fn resumed_runs_equal_uninterrupted_runs() {
    let dir = temp_dir("resume");
    let file = dir.join("toy.exp");
    std::fs::write(&file, ALL_AGENTS).unwrap();
    let file = file.to_str().unwrap();
    let (whole, pieces) = (dir.join("whole"), dir.join("pieces"));
    let res = mbrl(&["run", file, "--out", whole.to_str().unwrap()]);
    assert_eq!(res.status.code(), Some(0), "{}", stderr(&res));
    let stopped = run_in_pieces(file, &pieces, "150", 5);
    for out in &stopped {
        assert!(out.contains("to resume"), "{out}");
    }
    assert_eq!(
        stopped.len(),
        5,
        "each of the five training cells stopped once"
    );
    let expected = std::fs::read_to_string(whole.join("metrics.csv")).unwrap();
    assert!(expected.contains(",model_loss,"), "{expected}");
    assert_eq!(
        expected,
        std::fs::read_to_string(pieces.join("metrics.csv")).unwrap()
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// A run killed outright (SIGKILL, no chance to save) resumes from its last
/// periodic checkpoint and still gives the uninterrupted run's numbers.
#[test]
fn killed_runs_resume_from_their_last_checkpoint() {
    let dir = temp_dir("kill");
    let file = dir.join("er.exp");
    std::fs::write(
        &file,
        "use young2022::*\nexperiment er_only {\n  seeds: 2\n  env: panflute(pipes: 3)\n  agent: er { batch: 16, steps: 3000 steps, eval_every: 100 steps, save_every: 100 steps, learning_starts: 100 steps, q: mlp { hidden: [16, 16] }, eval: greedy_eval { envs: 4, steps: 20 steps } }\n}\n",
    )
    .unwrap();
    let file = file.to_str().unwrap();
    let (whole, killed) = (dir.join("whole"), dir.join("killed"));
    let res = mbrl(&["run", file, "--out", whole.to_str().unwrap()]);
    assert_eq!(res.status.code(), Some(0), "{}", stderr(&res));
    let mut child = Command::new(crate::bin())
        .args([
            "run",
            file,
            "--out",
            killed.to_str().unwrap(),
            "--threads",
            "1",
        ])
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Kill once the first checkpoints exist, well before the end.
    let ckpt = killed.join("checkpoints/cell-0/seed-1.bin");
    let start = std::time::Instant::now();
    while !ckpt.exists() && start.elapsed().as_secs() < 120 {
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let metrics = killed.join("metrics.csv");
    assert!(!metrics.exists(), "killed before the cell finished");
    let res = mbrl(&["run", file, "--out", killed.to_str().unwrap()]);
    assert_eq!(res.status.code(), Some(0), "{}", stderr(&res));
    assert!(stdout(&res).contains("resuming"));
    assert_eq!(
        std::fs::read_to_string(whole.join("metrics.csv")).unwrap(),
        std::fs::read_to_string(metrics).unwrap()
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// Rerunning a directory with a changed experiment is refused with a
/// diagnostic that says what changed, and nothing in the run is touched.
#[test]
fn a_changed_experiment_is_refused() {
    let dir = temp_dir("changed");
    let file = dir.join("toy.exp");
    let small = ALL_AGENTS.replace("er { batch: 12 },\n    perfect", "perfect");
    let small = small.replace("steps: 400 steps", "steps: 200 steps");
    std::fs::write(&file, &small).unwrap();
    let file = file.to_str().unwrap();
    let out = dir.join("run");
    let res = mbrl(&[
        "run",
        file,
        "--out",
        out.to_str().unwrap(),
        "--stop-at",
        "100",
    ]);
    assert_eq!(res.status.code(), Some(130), "{}", stderr(&res));
    let before = std::fs::read_to_string(out.join("metrics.csv")).unwrap();
    std::fs::write(
        file,
        small.replace("starts: 4, length: 3", "starts: 4, length: 5"),
    )
    .unwrap();
    let res = mbrl(&["run", file, "--out", out.to_str().unwrap()]);
    assert_eq!(res.status.code(), Some(1));
    let err = stderr(&res);
    assert!(err.contains("mbrl::run::changed_experiment"), "{err}");
    assert!(
        err.contains("holds a run of a different experiment"),
        "{err}"
    );
    let flat = err.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(
        flat.contains("in cell 0, `length=3` is now `length=5`"),
        "{err}"
    );
    assert!(
        err.contains("experiment toy"),
        "the span points at the experiment: {err}"
    );
    assert_eq!(
        before,
        std::fs::read_to_string(out.join("metrics.csv")).unwrap()
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// Cells this build cannot run (HalfCheetah without the `mujoco` feature)
/// are refused before anything starts.
#[cfg(not(feature = "mujoco"))]
#[test]
fn run_refuses_cells_this_build_cannot_run() {
    let out = std::env::temp_dir().join(format!("mbrl-refused-{}", std::process::id()));
    let res = mbrl(&[
        "run",
        "experiments/va_slbo.exp",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(res.status.code(), Some(2));
    assert!(stderr(&res).contains("mujoco"), "{}", stderr(&res));
    assert!(!out.exists(), "nothing is written when a cell cannot run");
}

/// Learning, end to end: the perfect-model agent on PanFlute (5 pipes) at a
/// small budget ends far above the random agent (about 0.04; the optimum is
/// 0.232) on every seed.
#[test]
fn the_perfect_model_agent_learns_panflute() {
    let dir = temp_dir("learns");
    let file = dir.join("learn.exp");
    std::fs::write(
        &file,
        "use young2022::*
experiment learn {
    seeds: 2
    env: flute
    vary agent: [
        perfect_model { lr: 1e-3, temperature: 0.1, q: mlp { hidden: [64, 64] }, steps: 4k steps, eval_every: 1000 steps, learning_starts: 500 steps },
        random { steps: 4k steps, eval_every: 1000 steps },
    ]
}
",
    )
    .unwrap();
    let out = dir.join("run");
    let res = mbrl(&[
        "run",
        file.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(res.status.code(), Some(0), "{}", stderr(&res));
    let metrics = std::fs::read_to_string(out.join("metrics.csv")).unwrap();
    let finals = |cell: usize| -> Vec<f64> {
        metrics
            .lines()
            .filter(|l| l.starts_with(&format!("{cell},")) && l.contains(",4000,eval,"))
            .map(|l| l.rsplit(',').next().unwrap().parse().unwrap())
            .collect()
    };
    let (learned, random) = (finals(0), finals(1));
    assert_eq!((learned.len(), random.len()), (2, 2), "{metrics}");
    let random_mean = random.iter().sum::<f64>() / 2.0;
    assert!(random_mean < 0.06, "random agent {random:?}");
    for value in &learned {
        assert!(
            *value > 0.15 && *value > 3.0 * random_mean,
            "perfect model {learned:?} vs random {random:?}"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// The four SLBO model losses on MBBL Pendulum at toy sizes: 3 stages of
/// 200 real steps, one outer iteration of 4 model and 2 TRPO steps.
const SLBO_LOSSES: &str = "use slbo::*
regime toy = overrides {
    stages: 3 stages, steps_per_stage: 200 steps, iters: 1 iterations
    model_iters: 4 updates, policy_iters: 2 updates, value_refit_every: 2 updates
    model: dynamics { hidden: [16] }
    planner: virtual_rollouts { envs: 2, length: 200 steps }
    eval: policy_eval { envs: 2, steps: 200 steps }
}
experiment toy_slbo {
  seeds: 2
  env: mbbl_pendulum
  regime: toy
  vary agent: [slbo_l2, slbo_mle, slbo_ma_l1, slbo_vaml]
}
";

/// SLBO with each model loss runs to completion, names each loss term in
/// its metrics, and a run stopped in every cell and resumed ends with the
/// uninterrupted run's numbers, bit for bit.
#[test]
fn slbo_runs_every_loss_and_resumes_exactly() {
    let dir = temp_dir("slbo");
    let file = dir.join("slbo.exp");
    std::fs::write(&file, SLBO_LOSSES).unwrap();
    let file = file.to_str().unwrap();
    let (whole, pieces) = (dir.join("whole"), dir.join("pieces"));
    let res = mbrl(&["run", file, "--out", whole.to_str().unwrap()]);
    assert_eq!(res.status.code(), Some(0), "{}", stderr(&res));
    let metrics = std::fs::read_to_string(whole.join("metrics.csv")).unwrap();
    for (cell, term) in [
        "model_multi_step",
        "model_mse",
        "model_va_l1",
        "model_va_l2",
    ]
    .iter()
    .enumerate()
    {
        for metric in [
            "eval",
            "model_loss",
            term,
            "model_reg",
            "value_loss",
            "policy_kl",
            "policy_entropy",
            "virtual_return",
            "train_return",
        ] {
            let row = format!("{cell},1,600,{metric},");
            assert!(metrics.contains(&row), "no `{row}` in\n{metrics}");
        }
    }
    // Evaluations before the first stage and after every stage.
    assert!(metrics.contains("\n0,0,0,eval,") && metrics.contains("\n3,1,600,eval,"));
    let stopped = run_in_pieces(file, &pieces, "400", 4);
    assert_eq!(stopped.len(), 4, "each cell stopped once");
    assert_eq!(
        metrics,
        std::fs::read_to_string(pieces.join("metrics.csv")).unwrap()
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// SLBO with model losses written as expressions (a built-in's twin and the
/// two new losses) runs to completion with the expression's term in its
/// metrics, gives the same numbers on one worker and on two (each seed its
/// own computation), and, stopped in every cell and resumed, ends with the
/// uninterrupted run's numbers bit for bit.
#[test]
fn slbo_runs_expression_losses_and_resumes_exactly() {
    let dir = temp_dir("slbo-expr");
    let file = dir.join("slbo.exp");
    let text = SLBO_LOSSES.replace(
        "vary agent: [slbo_l2, slbo_mle, slbo_ma_l1, slbo_vaml]",
        "vary agent: [slbo_l2 { model_loss: slbo_twin }, slbo_l2 { model_loss: vagram }, slbo_l2 { model_loss: mle_ma_l1 }]",
    );
    std::fs::write(&file, text).unwrap();
    let file = file.to_str().unwrap();
    let (whole, one, pieces) = (dir.join("whole"), dir.join("one"), dir.join("pieces"));
    let res = mbrl(&[
        "run",
        file,
        "--out",
        whole.to_str().unwrap(),
        "--threads",
        "2",
    ]);
    assert_eq!(res.status.code(), Some(0), "{}", stderr(&res));
    let metrics = std::fs::read_to_string(whole.join("metrics.csv")).unwrap();
    for cell in 0..3 {
        for metric in ["eval", "model_loss", "model_expression", "value_loss"] {
            let row = format!("{cell},1,600,{metric},");
            assert!(metrics.contains(&row), "no `{row}` in\n{metrics}");
        }
    }
    let res = mbrl(&[
        "run",
        file,
        "--out",
        one.to_str().unwrap(),
        "--threads",
        "1",
    ]);
    assert_eq!(res.status.code(), Some(0), "{}", stderr(&res));
    assert_eq!(
        metrics,
        std::fs::read_to_string(one.join("metrics.csv")).unwrap()
    );
    let stopped = run_in_pieces(file, &pieces, "400", 3);
    assert_eq!(stopped.len(), 3, "each cell stopped once");
    assert_eq!(
        metrics,
        std::fs::read_to_string(pieces.join("metrics.csv")).unwrap()
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// Every diagnostic code in the source is explained by `mbrl explain` and
/// listed in the README's table.
#[test]
fn every_code_is_explained_and_documented() {
    let root = crate::root().display().to_string();
    let readme = std::fs::read_to_string(format!("{root}/README.md")).unwrap();
    let mut codes = std::collections::BTreeSet::new();
    let mut stack = vec![std::path::PathBuf::from(format!("{root}/src"))];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let text = std::fs::read_to_string(&path).unwrap();
                for (at, _) in text.match_indices("mbrl::") {
                    let code: String = text[at..]
                        .chars()
                        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == ':')
                        .collect();
                    if code.split("::").count() == 3 && !code.ends_with(':') {
                        codes.insert(code);
                    }
                }
            }
        }
    }
    // Codes are `mbrl::STAGE::NAME`; other paths are modules.
    let stages = ["syntax", "resolve", "check", "run", "merge", "slurm"];
    codes.retain(|c| stages.contains(&c.split("::").nth(1).unwrap()) && c != "mbrl::check::agents");
    assert!(codes.len() > 60, "found only {codes:?}");
    for code in &codes {
        let out = mbrl(&["explain", code]);
        assert!(out.status.success(), "`mbrl explain {code}` fails");
        assert!(
            readme.contains(&format!("`{code}`")),
            "the README's code table lacks `{code}`"
        );
    }
}

/// `mbrl bench` reports the update's throughput against the machine's
/// measured peak, with how the peak was found.
#[test]
fn bench_reports_throughput_against_the_measured_peak() {
    let out = mbrl(&["bench", "--seeds", "2", "--threads", "1", "--updates", "2"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.contains("seed-updates/s") && text.contains("GFLOP/s"),
        "{text}"
    );
    #[cfg(all(target_arch = "x86_64", not(feature = "cuda")))]
    if std::arch::is_x86_feature_detected!("fma") {
        assert!(text.contains("% of the FP32 FMA peak"), "{text}");
        assert!(text.contains("measured with all cores busy"), "{text}");
        assert!(text.contains("an FMA-only loop reaches"), "{text}");
    }
}

/// `mbrl bench --taped` trains through dfdx's tape, the path of the CUDA
/// binary (what `scripts/gpu-check.sh` runs on the CPU), and says so; an
/// SLBO agent, which has one path, refuses it.
#[test]
fn bench_times_the_taped_path_on_request() {
    let out = mbrl(&[
        "bench",
        "--taped",
        "--seeds",
        "2",
        "--threads",
        "1",
        "--updates",
        "2",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains(match cfg!(feature = "cuda") {
            true => "taped on the GPU",
            false => "taped through dfdx on the CPU",
        }),
        "{}",
        stdout(&out)
    );
    let out = mbrl(&["bench", "--taped", "--agent", "slbo_mle"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("`--taped` applies to Figure 4's agents"),
        "{}",
        stderr(&out)
    );
}
