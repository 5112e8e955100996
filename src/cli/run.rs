//! `mbrl run FILE [--out DIR] [--scale F] [--threads N] [--set P=V]`: runs
//! every cell of every experiment (the DQN family, SLBO and the random
//! agent), seeds batched and sharded, into a run directory with
//! checkpoints. Before anything is allocated, the memory the largest cell
//! needs is checked against what the machine has. Running again on the same
//! directory resumes; a changed experiment is refused. Ctrl-C checkpoints
//! every seed at its next evaluation and exits.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use clap::Args;

use crate::check::{Cell, CheckedExperiment, Value};
use crate::compile::{self, Plan, Protocol};
use crate::envs::Layout;
use crate::report::{self, Band, MetricRow, ReportSpec};
use crate::runtime::driver::{Point, Session, EVAL};
use crate::runtime::evaluate::{self, RandomPolicy};
use crate::seeds::Purpose;

use super::progress::{Progress, Record};
use super::rundir::{self, CellCheckpoints, RunDir};

#[derive(Args)]
pub struct RunArgs {
    pub file: PathBuf,
    /// The run directory (default `runs/EXPERIMENT-HASH`).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Multiply every step budget by F > 0 (rounded to whole evaluation intervals).
    #[arg(long, default_value_t = 1.0, value_parser = super::positive_finite)]
    pub scale: f64,
    /// Worker threads (seed shards), at least 1; default: the machine's cores.
    #[arg(long, value_parser = super::at_least_one)]
    pub threads: Option<usize>,
    #[arg(long = "set", value_name = "PATH=VALUE")]
    pub overrides: Vec<String>,
    /// Move damaged checkpoints aside and train their seeds again from the start.
    #[arg(long)]
    pub recompute_damaged: bool,
    /// Run part I of N of the experiment's (cell, seed) units into `--out`
    /// (`mbrl merge` combines the parts).
    #[arg(long, value_name = "I/N", value_parser = parse_shard)]
    pub shard: Option<(usize, usize)>,
    /// Refuse to run unless the experiment's identity is this hash (the
    /// experiment a Slurm job was written for).
    #[arg(long, value_name = "HASH")]
    pub expect_hash: Option<String>,
    /// Memory the run may use, in GiB (default: what the machine has available).
    #[arg(long, value_name = "GIB", value_parser = super::positive_finite)]
    pub memory: Option<f64>,
    /// Behave as if Ctrl-C were pressed when a seed reaches env step N (for testing resume).
    #[arg(long, hide = true, value_name = "N")]
    pub stop_at: Option<u64>,
}

/// More memory than the machine has (or than `--memory` allows).
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
#[error("experiment `{experiment}` needs about {need:.2} GiB for its largest cell ({what}), but {have:.2} GiB {source_of_limit}")]
#[diagnostic(
    code(mbrl::run::insufficient_memory),
    help("lower `seeds`, `buffer` or the network sizes (`mbrl check --cost` shows the estimate), or pass `--memory GIB` to allow more on purpose")
)]
struct InsufficientMemory {
    experiment: String,
    need: f64,
    what: String,
    have: f64,
    source_of_limit: String,
}

/// A file with no experiment in it.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
#[error("`{file}` defines no experiment to run")]
#[diagnostic(
    code(mbrl::run::no_experiment),
    help(
        "add `experiment NAME {{ env: ..., agent: ... }}`, or `use` this file from one that does"
    )
)]
struct NoExperiment {
    file: String,
}

/// `I/N` with `0 <= I < N`.
fn parse_shard(s: &str) -> Result<(usize, usize), String> {
    let (i, n) = s
        .split_once('/')
        .ok_or("write the shard as I/N, e.g. 0/4")?;
    let (i, n): (usize, usize) = (
        i.trim().parse().map_err(|e| format!("{e}"))?,
        n.trim().parse().map_err(|e| format!("{e}"))?,
    );
    match i < n {
        true => Ok((i, n)),
        false => Err(format!("shard {i} of {n}: I must be below N")),
    }
}

/// The experiment changed since a Slurm job was written for it.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
#[error("experiment `{experiment}` is not the one this job was written for (hash {found}, expected {expected})")]
#[diagnostic(
    code(mbrl::run::changed_experiment),
    help("the file or an override changed after `mbrl slurm` wrote the job; restore it, or write and submit a new job")
)]
struct NotTheJobsExperiment {
    experiment: String,
    found: String,
    expected: String,
}

/// The memory available to new processes, in bytes (Linux's `MemAvailable`).
fn available_memory() -> Option<f64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024.0)
}

/// Refuses a run whose largest cell would not fit in memory, before
/// anything is allocated: the estimate of `mbrl check --cost` (replay and
/// parameters with optimizer state, all seeds) plus a margin for the
/// process itself, against `--memory` or what the machine has available.
fn check_memory(exp: &CheckedExperiment, plans: &[Plan], limit: Option<f64>) -> Result<(), u8> {
    const GIB: f64 = (1u64 << 30) as f64;
    const MARGIN: f64 = 256.0 * (1u64 << 20) as f64;
    let need = compile::total_cost(plans).bytes + MARGIN;
    let (have, source_of_limit) = match limit {
        Some(gib) => (gib * GIB, "is allowed by `--memory`".to_string()),
        None => match available_memory() {
            Some(bytes) => (bytes, "is available on this machine".to_string()),
            None => return Ok(()),
        },
    };
    if need <= have {
        return Ok(());
    }
    Err(rundir::show(InsufficientMemory {
        experiment: exp.name.clone(),
        need: need / GIB,
        what: "replay buffers and parameters with their Adam moments, all seeds, plus 0.25 GiB"
            .into(),
        have: have / GIB,
        source_of_limit,
    }))
}

/// Set by Ctrl-C: checkpoint and stop.
static STOP: AtomicBool = AtomicBool::new(false);

/// The first Ctrl-C asks the workers to checkpoint and stop; the second exits at once.
fn install_interrupt_handler() {
    let _ = ctrlc::set_handler(|| {
        if STOP.swap(true, Ordering::SeqCst) {
            errln!("\ninterrupted again: exiting without a checkpoint");
            std::process::exit(130);
        }
        errln!("\ninterrupt: checkpointing every seed at its next evaluation (Ctrl-C again to exit now)");
    });
}

pub fn run(args: &RunArgs) -> u8 {
    let out = match super::load_checked(&args.file, &args.overrides) {
        Ok(out) => out,
        Err(code) => return code,
    };
    let checked = out.clean();
    if checked.experiments.is_empty() {
        return rundir::show(NoExperiment {
            file: args.file.display().to_string(),
        });
    }
    install_interrupt_handler();
    for exp in &checked.experiments {
        let status = run_experiment(args, &out, exp);
        if status != 0 {
            return status;
        }
    }
    0
}

fn run_experiment(args: &RunArgs, out: &crate::CheckOutput, exp: &CheckedExperiment) -> u8 {
    let all = match super::compile_cells(exp, args.scale) {
        Ok(plans) => plans,
        Err(code) => return code,
    };
    let hash = rundir::identity(exp, &all);
    if let Some(expected) = args.expect_hash.as_ref().filter(|e| **e != hash) {
        rundir::show(NotTheJobsExperiment {
            experiment: exp.name.clone(),
            found: hash,
            expected: expected.clone(),
        });
        return 1;
    }
    let part = args.shard.map(|(i, n)| {
        let seeds: Vec<Vec<u64>> = all.iter().map(|p| p.seeds.clone()).collect();
        report::Part::of(i, n, &seeds)
    });
    // The cells this directory runs, with the seeds of its part.
    let plans: Vec<Option<Plan>> = all
        .iter()
        .enumerate()
        .map(|(cell, plan)| match &part {
            None => Some(plan.clone()),
            Some(part) => {
                let seeds = part.seeds_of(cell);
                (!seeds.is_empty()).then(|| Plan {
                    seeds,
                    ..plan.clone()
                })
            }
        })
        .collect();
    let running: Vec<Plan> = plans.iter().flatten().cloned().collect();
    if let Err(code) = check_memory(exp, &running, args.memory) {
        return code;
    }
    let report = report_spec(exp);
    let manifest_extra = |manifest: &mut report::Manifest| -> Result<(), String> {
        manifest.references = references(&all, &report.lines)?;
        manifest.report = report.clone();
        Ok(())
    };
    let opening = rundir::Opening {
        out_dir: args.out.as_deref(),
        threads: args.threads,
        source: &args.file,
        scale: args.scale,
        recompute: args.recompute_damaged,
        hash,
        part: part.clone(),
    };
    let run = match rundir::open(opening, out, exp, &all, manifest_extra) {
        Ok(run) => run,
        Err(code) => return code,
    };
    let what = match &part {
        Some(p) => format!(
            "part {} of {} ({} cell-seed units)",
            p.index,
            p.count,
            p.units.len()
        ),
        None => format!("{} cells x {} seeds", exp.cells.len(), exp.seeds),
    };
    outln!(
        "run `{}`: {what} on {} ({} threads) -> {}{}",
        exp.name,
        rundir::device_name(),
        run.threads,
        run.dir.display(),
        if run.resuming {
            " (resuming from its checkpoints)"
        } else {
            ""
        }
    );
    outln!("  {}", super::cost_line(&exp.name, &running));
    let status = run_cells(args, exp, &plans, &run);
    if status != 0 {
        return status;
    }
    if let Err(err) = run.finish() {
        errln!("error: cannot write the manifest: {err}");
        return 2;
    }
    match &part {
        Some(p) => {
            outln!(
                "part {} of {} finished; `mbrl merge` combines the parts into one run",
                p.index,
                p.count
            );
            0
        }
        None => super::plot(&run.dir),
    }
}

/// Runs the cells one after the other, rewriting `metrics.csv` after each;
/// 0 when all finished, 130 when stopped with checkpoints, 2 on an error.
fn run_cells(args: &RunArgs, exp: &CheckedExperiment, plans: &[Option<Plan>], run: &RunDir) -> u8 {
    let dir = &run.dir;
    let mut rows = Vec::new();
    for (cell, plan) in exp.cells.iter().zip(plans) {
        let Some(plan) = plan else {
            continue;
        };
        let start = Instant::now();
        let store = CellCheckpoints {
            dir: dir.join("checkpoints").join(format!("cell-{}", cell.index)),
            experiment: run.hash.clone(),
            cell: cell.index,
            recompute: args.recompute_damaged,
        };
        let session = Session {
            checkpoints: Some(&store),
            stop: &STOP,
            stop_at: args.stop_at,
        };
        let record = Record {
            dir: dir.clone(),
            hash: run.hash.clone(),
            done: rows.clone(),
            cell: cell.index,
        };
        let resuming = store.dir.exists();
        let (points, interrupted) =
            match run_cell(cell, plan, run.threads, resuming, session, record) {
                Ok(result) => result,
                Err(err) => {
                    let label = format!("cell {} [{}]", cell.index, cell.label());
                    return rundir::show_run_error(&label, err);
                }
            };
        rows.extend(points.iter().map(|p| metric_row(cell.index, plan, p)));
        if let Err(err) = report::write_metrics(dir, &run.hash, &rows) {
            errln!("error: cannot write metrics: {err}");
            return 2;
        }
        if interrupted {
            outln!(
                "stopped: every seed is checkpointed in `{}`; run the same command with `--out {}` to resume",
                dir.join("checkpoints").display(),
                dir.display()
            );
            return 130;
        }
        let last = points.iter().map(|p| p.step).max().unwrap_or(0);
        let finals: Vec<f64> = points
            .iter()
            .filter(|p| p.step == last && p.metric == EVAL)
            .map(|p| p.value)
            .collect();
        let (mean, sd) = super::mean_sd(&finals);
        outln!(
            "cell {} [{}]: final eval {mean:.4} ± {sd:.4} at step {last} ({:.1} s)",
            cell.index,
            cell.label(),
            start.elapsed().as_secs_f64()
        );
    }
    0
}

fn metric_row(cell: usize, plan: &Plan, p: &Point) -> MetricRow {
    MetricRow {
        cell,
        seed: p.seed,
        step: p.step,
        metric: plan.metrics()[p.metric].to_string(),
        value: p.value,
    }
}

/// The experiment's `report` block as `mbrl plot` reads it.
fn report_spec(exp: &CheckedExperiment) -> ReportSpec {
    let Some(r) = &exp.report else {
        return ReportSpec::default();
    };
    let default = ReportSpec::default();
    let band = match r.obj("band") {
        Some(b) if b.ctor.name == "stderr" => Band::Stderr,
        Some(b) => Band::Bootstrap {
            level: b.float("level").unwrap_or(0.95),
            resamples: b.int("resamples").unwrap_or(1000).max(1) as usize,
        },
        None => default.band,
    };
    let names = |field: &str| -> Option<Vec<String>> {
        match r.get(field).map(|f| &f.value) {
            Some(Value::List(items)) => Some(
                items
                    .iter()
                    .filter_map(|i| match &i.value {
                        Value::Name(n) => Some(n.clone()),
                        _ => None,
                    })
                    .collect(),
            ),
            _ => None,
        }
    };
    ReportSpec {
        metric: r.enum_("metric").unwrap_or("auto").to_string(),
        x: r.enum_("x").unwrap_or("env_steps").to_string(),
        band,
        facet: names("facet").unwrap_or(default.facet),
        smooth: r.int("smooth").unwrap_or(1).max(1) as usize,
        lines: names("lines").unwrap_or_default(),
    }
}

/// Each cell's reference levels for the plot: the random agent's mean
/// score under the cell's protocol (the first evaluation round's envs), and
/// the env's known optimum where its protocol scores the reward rate.
fn references(plans: &[Plan], lines: &[String]) -> Result<Vec<Vec<(String, f64)>>, String> {
    let mut out = Vec::new();
    for plan in plans {
        let mut levels = Vec::new();
        for line in lines {
            match line.as_str() {
                crate::kinds::random::NAME => {
                    let (_, values) = evaluate_random(plan)?;
                    levels.push((line.clone(), super::mean_sd(&values).0));
                }
                "optimum" => {
                    let rate = crate::envs::known_optimal_rate(&plan.env)
                        .filter(|_| plan.protocol.metric == crate::compile::EvalMetric::RewardRate);
                    if let Some(rate) = rate {
                        levels.push((line.clone(), rate));
                    }
                }
                _ => (),
            }
        }
        out.push(levels);
    }
    Ok(out)
}

/// The random agent's score per seed under the cell's protocol: one
/// evaluation, the first round of a run's.
pub(super) fn evaluate_random(plan: &Plan) -> Result<(Protocol, Vec<f64>), String> {
    let layout = Layout {
        root_seed: plan.root_seed,
        seeds: plan.seeds.clone(),
        envs_per_seed: 1,
        purpose: Purpose::EvalEnv,
        round: 0,
    };
    let mut make = |l: &Layout| Box::new(RandomPolicy::new(l)) as Box<dyn evaluate::Policy>;
    let values =
        evaluate::evaluate(plan.env, plan.protocol, &layout, &mut make).map_err(|e| e.0)?;
    Ok((plan.protocol, values))
}

/// The cell's points, and whether it stopped early.
fn run_cell(
    cell: &Cell,
    plan: &Plan,
    threads: usize,
    resuming: bool,
    session: Session,
    record: Record,
) -> Result<(Vec<Point>, bool), crate::runtime::driver::RunError> {
    let progress = Progress::new(plan, cell, resuming, record);
    let report = |points: &[Point], restored: bool| progress.record(points, restored);
    let outcome = crate::runtime::run(plan, threads, session, &report)?;
    for f in outcome.failures.iter().take(5) {
        errln!(
            "warning: cell {} [{}] seed {}: non-finite {} at env step {}",
            cell.index,
            cell.label(),
            f.seed,
            plan.metrics()[f.metric],
            f.step
        );
    }
    Ok((outcome.points, outcome.interrupted))
}
