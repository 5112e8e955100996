//! `mbrl run FILE [--out DIR] [--scale F] [--threads N] [--set P=V]`: runs
//! every cell of every experiment whose agent can run so far (ER DQN and the
//! random agent), seeds batched and sharded, into a run directory.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Instant;

use clap::Args;

use crate::check::{Cell, CheckedExperiment};
use crate::compile::{self, DqnPlan};
use crate::envs::{EnvConfig, Layout};
use crate::report::{self, Manifest, MetricRow};
use crate::runtime::er::{self, Compat, EvalPoint};
use crate::runtime::evaluate::{self, Protocol, RandomPolicy};
use crate::runtime::seeds::Purpose;

#[derive(Args)]
pub struct RunArgs {
    pub file: PathBuf,
    /// The run directory (default `runs/EXPERIMENT-HASH`).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Multiply every step budget by F (rounded to whole evaluation intervals).
    #[arg(long, default_value_t = 1.0)]
    pub scale: f64,
    /// Worker threads (seed shards); default: the machine's cores.
    #[arg(long)]
    pub threads: Option<usize>,
    #[arg(long = "set", value_name = "PATH=VALUE")]
    pub overrides: Vec<String>,
}

enum Job {
    Er(Box<DqnPlan>),
    Random,
}

pub fn run(args: &RunArgs) -> u8 {
    let out = match super::load_checked(&args.file, &args.overrides) {
        Ok(out) => out,
        Err(code) => return code,
    };
    if !(args.scale > 0.0) {
        eprintln!("error: `--scale` must be positive, found {}", args.scale);
        return 2;
    }
    let checked = out
        .checked
        .as_ref()
        .expect("no errors means the file parsed");
    let threads = args.threads.unwrap_or_else(|| {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    });
    for exp in &checked.experiments {
        let status = run_experiment(args, exp, threads);
        if status != 0 {
            return status;
        }
    }
    0
}

fn run_experiment(args: &RunArgs, exp: &CheckedExperiment, threads: usize) -> u8 {
    let mut jobs = Vec::new();
    let mut failed = false;
    for cell in &exp.cells {
        match job(exp, cell, args.scale) {
            Ok(job) => jobs.push(job),
            Err(err) => {
                eprintln!("error: cell {} [{}]: {err}", cell.index, cell.label());
                failed = true;
            }
        }
    }
    if failed {
        return 2;
    }
    let cells: Vec<String> = exp
        .cells
        .iter()
        .map(|c| {
            format!(
                "{} env={} agent={}",
                c.label(),
                c.env.describe(),
                c.agent.describe()
            )
        })
        .collect();
    let hash = report::hash(&format!(
        "{}|{}|{}|{}|{:?}",
        exp.seeds, exp.root_seed, exp.compat, args.scale, cells
    ));
    let dir = match &args.out {
        Some(dir) => dir.clone(),
        None => fresh_dir(&format!("runs/{}-{}", exp.name, &hash[..8])),
    };
    if dir.join("manifest.ron").exists() {
        eprintln!("error: `{}` already holds a run; resuming is not supported yet, choose another `--out`", dir.display());
        return 2;
    }
    if let Err(err) = std::fs::create_dir_all(&dir) {
        eprintln!("error: cannot create `{}`: {err}", dir.display());
        return 2;
    }
    let manifest = Manifest {
        experiment: exp.name.clone(),
        source: args.file.display().to_string(),
        hash,
        mbrl_version: env!("CARGO_PKG_VERSION").to_string(),
        device: device_name(),
        host: std::fs::read_to_string("/etc/hostname")
            .map(|h| h.trim().to_string())
            .unwrap_or_default(),
        threads,
        seeds: exp.seeds,
        scale: args.scale,
        cells,
        coords: exp.cells.iter().map(|c| c.coords.clone()).collect(),
    };
    if let Err(err) = report::write_manifest(&dir, &manifest) {
        eprintln!("error: cannot write the manifest: {err}");
        return 2;
    }
    println!(
        "run `{}`: {} cells x {} seeds on {} ({} threads) -> {}",
        exp.name,
        exp.cells.len(),
        exp.seeds,
        manifest.device,
        threads,
        dir.display()
    );
    let mut rows = Vec::new();
    for (cell, job) in exp.cells.iter().zip(&jobs) {
        let start = Instant::now();
        let points = match run_cell(exp, cell, job, threads) {
            Ok(points) => points,
            Err(err) => {
                eprintln!("error: cell {} [{}]: {err}", cell.index, cell.label());
                return 2;
            }
        };
        let last = points.iter().map(|p| p.step).max().unwrap_or(0);
        let finals: Vec<f64> = points
            .iter()
            .filter(|p| p.step == last)
            .map(|p| p.value)
            .collect();
        let (mean, sd) = super::mean_sd(&finals);
        println!(
            "cell {} [{}]: final eval {mean:.4} ± {sd:.4} at step {last} ({:.1} s)",
            cell.index,
            cell.label(),
            start.elapsed().as_secs_f64()
        );
        rows.extend(points.iter().map(|p| MetricRow {
            cell: cell.index,
            seed: p.seed,
            step: p.step,
            metric: "eval",
            value: p.value,
        }));
        if let Err(err) = report::write_metrics(&dir, &rows) {
            eprintln!("error: cannot write metrics: {err}");
            return 2;
        }
    }
    match report::plots::plot_run(&dir) {
        Ok(paths) => {
            let names: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
            println!("plots: {}", names.join(", "));
            0
        }
        Err(err) => {
            eprintln!("error: cannot plot: {err}");
            2
        }
    }
}

/// `base`, or `base-2`, `base-3`, ... : the first that does not exist yet.
fn fresh_dir(base: &str) -> PathBuf {
    let mut dir = PathBuf::from(base);
    let mut n = 2;
    while dir.exists() {
        dir = PathBuf::from(format!("{base}-{n}"));
        n += 1;
    }
    dir
}

fn device_name() -> String {
    match cfg!(feature = "cuda") {
        true => "cuda:0".to_string(),
        false => "cpu".to_string(),
    }
}

fn job(exp: &CheckedExperiment, cell: &Cell, scale: f64) -> Result<Job, String> {
    match cell.agent.ctor.name {
        "random" => Ok(Job::Random),
        _ => {
            let mut plan = compile::dqn_plan(exp, cell).map_err(|e| e.to_string())?;
            let every = plan.eval_every.max(1);
            let scaled = ((plan.steps as f64 * scale) / every as f64).round() as u64 * every;
            plan.steps = scaled.max(every);
            Ok(Job::Er(Box::new(plan)))
        }
    }
}

/// The cell's env and evaluation protocol (on the spaces `check` inferred).
pub(super) fn env_and_protocol(
    exp: &CheckedExperiment,
    cell: &Cell,
) -> Result<(EnvConfig, Layout, Protocol), String> {
    let env = EnvConfig::from_obj(&cell.env);
    let layout = Layout {
        root_seed: exp.root_seed,
        seeds: (0..exp.seeds).collect(),
        envs_per_seed: 1,
        purpose: Purpose::EvalEnv,
        round: 0,
    };
    let eval = cell
        .agent
        .obj("eval")
        .ok_or("the agent has no evaluation protocol")?;
    let protocol = Protocol::from_obj(eval, &cell.spaces);
    Ok((env, layout, protocol))
}

/// The random agent's score per seed under the cell's protocol.
pub(super) fn evaluate_random(
    exp: &CheckedExperiment,
    cell: &Cell,
) -> Result<(Protocol, Vec<f64>), String> {
    let (env, layout, protocol) = env_and_protocol(exp, cell)?;
    let mut make = |l: &Layout| Box::new(RandomPolicy::new(l)) as Box<dyn evaluate::Policy>;
    let values = evaluate::evaluate(env, protocol, &layout, &mut make).map_err(|e| e.0)?;
    Ok((protocol, values))
}

fn run_cell(
    exp: &CheckedExperiment,
    cell: &Cell,
    job: &Job,
    threads: usize,
) -> Result<Vec<EvalPoint>, String> {
    match job {
        Job::Random => {
            let (_, values) = evaluate_random(exp, cell)?;
            Ok(values
                .into_iter()
                .enumerate()
                .map(|(s, value)| EvalPoint {
                    seed: s as u64,
                    step: 0,
                    value,
                })
                .collect())
        }
        Job::Er(plan) => {
            let (env, _, protocol) = env_and_protocol(exp, cell)?;
            let compat = Compat {
                stale_obs_after_reset: exp.compat == "young2022",
            };
            let progress = Progress::new(plan.seeds.len(), plan.steps, cell);
            let report = |points: &[EvalPoint]| progress.record(points);
            let (points, failures) = er::run(plan, env, protocol, compat, threads, &report)
                .map_err(|e| e.to_string())?;
            for f in failures.iter().take(5) {
                eprintln!(
                    "warning: cell {} [{}] seed {}: non-finite loss at update {}",
                    cell.index,
                    cell.label(),
                    f.seed,
                    f.update
                );
            }
            Ok(points)
        }
    }
}

/// Prints a line when every seed has reported an evaluation.
struct Progress {
    n_seeds: usize,
    steps: u64,
    label: String,
    start: Instant,
    pending: Mutex<BTreeMap<u64, Vec<f64>>>,
}

impl Progress {
    fn new(n_seeds: usize, steps: u64, cell: &Cell) -> Progress {
        let label = format!("cell {} [{}]", cell.index, cell.label());
        Progress {
            n_seeds,
            steps,
            label,
            start: Instant::now(),
            pending: Mutex::new(BTreeMap::new()),
        }
    }

    fn record(&self, points: &[EvalPoint]) {
        let mut pending = self.pending.lock().expect("progress lock");
        for p in points {
            pending.entry(p.step).or_default().push(p.value);
        }
        let complete: Vec<u64> = pending
            .iter()
            .filter(|(_, v)| v.len() == self.n_seeds)
            .map(|(k, _)| *k)
            .collect();
        for step in complete {
            let values = pending.remove(&step).unwrap_or_default();
            let (mean, _) = super::mean_sd(&values);
            let secs = self.start.elapsed().as_secs_f64();
            let rate = step as f64 / secs;
            let eta = (self.steps - step) as f64 / rate.max(1e-9);
            println!(
                "  {} step {step}/{}: eval {mean:.4} ({rate:.0} steps/s, ETA {eta:.0} s)",
                self.label, self.steps
            );
        }
    }
}
