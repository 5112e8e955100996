//! `mbrl run FILE [--out DIR] [--scale F] [--threads N] [--set P=V]`: runs
//! every cell of every experiment (the DQN family and the random agent),
//! seeds batched and sharded, into a run directory with checkpoints. Running
//! again on the same directory resumes; a changed experiment is refused.
//! Ctrl-C checkpoints every seed at its next evaluation and exits.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use clap::Args;

use crate::check::{Cell, CheckedExperiment, Value};
use crate::compile::{Plan, Protocol};
use crate::envs::Layout;
use crate::report::{self, Band, Manifest, MetricRow, ReportSpec};
use crate::runtime::driver::{Checkpoints, Point, Session, EVAL};
use crate::runtime::evaluate::{self, RandomPolicy};
use crate::seeds::Purpose;

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
    /// Behave as if Ctrl-C were pressed when a seed reaches env step N (for testing resume).
    #[arg(long, hide = true, value_name = "N")]
    pub stop_at: Option<u64>,
}

/// Set by Ctrl-C: checkpoint and stop.
static STOP: AtomicBool = AtomicBool::new(false);

/// The first Ctrl-C asks the workers to checkpoint and stop; the second exits at once.
fn install_interrupt_handler() {
    let _ = ctrlc::set_handler(|| {
        if STOP.swap(true, Ordering::SeqCst) {
            eprintln!("\ninterrupted again: exiting without a checkpoint");
            std::process::exit(130);
        }
        eprintln!("\ninterrupt: checkpointing every seed at its next evaluation (Ctrl-C again to exit now)");
    });
}

/// Checkpoints of one cell under `RUN/checkpoints/cell-N/`, written atomically.
struct CellCheckpoints {
    dir: PathBuf,
}

impl Checkpoints for CellCheckpoints {
    fn load(&self, key: &str) -> std::io::Result<Option<Vec<u8>>> {
        match std::fs::read(self.dir.join(format!("{key}.bin"))) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn save(&self, key: &str, bytes: &[u8]) -> std::io::Result<()> {
        std::fs::create_dir_all(&self.dir)?;
        report::write_atomic(&self.dir.join(format!("{key}.bin")), bytes)
    }
}

/// Rerunning on a directory that holds a run of another experiment.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
#[error("`{dir}` holds a run of a different experiment")]
#[diagnostic(
    code(mbrl::run::changed_experiment),
    help("resuming needs the experiment the run started with; choose another `--out` to run this one, or restore the file ({what})")
)]
struct ChangedExperiment {
    dir: String,
    what: String,
    #[source_code]
    source_code: miette::NamedSource<String>,
    #[label("this experiment differs from the one in `{dir}`")]
    span: miette::SourceSpan,
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
    let plans = match super::compile_cells(exp, args.scale) {
        Ok(plans) => plans,
        Err(code) => return code,
    };
    let run = match open_run(args, out, exp, &plans) {
        Ok(run) => run,
        Err(code) => return code,
    };
    println!(
        "run `{}`: {} cells x {} seeds on {} ({} threads) -> {}{}",
        exp.name,
        exp.cells.len(),
        exp.seeds,
        device_name(),
        run.threads,
        run.dir.display(),
        if run.resuming {
            " (resuming from its checkpoints)"
        } else {
            ""
        }
    );
    println!("  {}", super::cost_line(&exp.name, &plans));
    let status = run_cells(args, exp, &plans, &run);
    if status != 0 {
        return status;
    }
    match report::plots::plot_run(&run.dir) {
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

/// A run directory opened for this experiment.
struct RunDir {
    dir: PathBuf,
    threads: usize,
    /// It held a run of this experiment already.
    resuming: bool,
}

/// The run directory: `--out`, or a fresh one named after the experiment;
/// an existing one must hold this experiment (else it is refused, exit 1).
/// Writes the manifest.
fn open_run(
    args: &RunArgs,
    out: &crate::CheckOutput,
    exp: &CheckedExperiment,
    plans: &[Plan],
) -> Result<RunDir, u8> {
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
    let previous = report::read_manifest(&dir).map_err(|err| {
        eprintln!("error: {err}");
        2u8
    })?;
    if let Some(previous) = previous.as_ref().filter(|p| p.hash != hash) {
        let what = changed_part(previous, &cells, exp, args.scale);
        let file = out.sources.get(exp.span.file);
        let report = miette::Report::new(ChangedExperiment {
            dir: dir.display().to_string(),
            what,
            source_code: miette::NamedSource::new(file.name(), file.text.clone()),
            span: exp.span.range().into(),
        });
        eprintln!("{report:?}");
        return Err(1);
    }
    // A resumed run keeps its thread count: on the GPU it decides how seeds are grouped.
    let threads = args
        .threads
        .or(previous.as_ref().map(|p| p.threads))
        .unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1)
        });
    if let Err(err) = std::fs::create_dir_all(&dir) {
        eprintln!("error: cannot create `{}`: {err}", dir.display());
        return Err(2);
    }
    let report = report_spec(exp);
    let references = references(plans, &report.lines).map_err(|err| {
        eprintln!("error: {err}");
        2u8
    })?;
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
        report,
        updates: plans.iter().map(Plan::updates_per_step).collect(),
        references,
    };
    if let Err(err) = report::write_manifest(&dir, &manifest) {
        eprintln!("error: cannot write the manifest: {err}");
        return Err(2);
    }
    Ok(RunDir {
        dir,
        threads,
        resuming: previous.is_some(),
    })
}

/// Runs the cells one after the other, rewriting `metrics.csv` after each;
/// 0 when all finished, 130 when stopped with checkpoints, 2 on an error.
fn run_cells(args: &RunArgs, exp: &CheckedExperiment, plans: &[Plan], run: &RunDir) -> u8 {
    let dir = &run.dir;
    let mut rows = Vec::new();
    for (cell, plan) in exp.cells.iter().zip(plans) {
        let start = Instant::now();
        let store = CellCheckpoints {
            dir: dir.join("checkpoints").join(format!("cell-{}", cell.index)),
        };
        let session = Session {
            checkpoints: Some(&store),
            stop: &STOP,
            stop_at: args.stop_at,
        };
        let record = Record {
            dir: dir.clone(),
            done: rows.clone(),
            cell: cell.index,
        };
        let resuming = store.dir.exists();
        let (points, interrupted) =
            match run_cell(cell, plan, run.threads, resuming, session, record) {
                Ok(result) => result,
                Err(err) => {
                    eprintln!("error: cell {} [{}]: {err}", cell.index, cell.label());
                    return 2;
                }
            };
        rows.extend(points.iter().map(|p| metric_row(cell.index, plan, p)));
        if let Err(err) = report::write_metrics(dir, &rows) {
            eprintln!("error: cannot write metrics: {err}");
            return 2;
        }
        if interrupted {
            println!(
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
        println!(
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
        metric: plan.metrics()[p.metric],
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
                "random" => {
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

/// What differs between a run directory's experiment and this one, in words.
fn changed_part(
    previous: &Manifest,
    cells: &[String],
    exp: &CheckedExperiment,
    scale: f64,
) -> String {
    if previous.seeds != exp.seeds {
        return format!("seeds were {}, now {}", previous.seeds, exp.seeds);
    }
    if previous.scale != scale {
        return format!("`--scale` was {}, now {scale}", previous.scale);
    }
    if previous.cells.len() != cells.len() {
        return format!("{} cells, now {}", previous.cells.len(), cells.len());
    }
    for (i, (was, now)) in previous.cells.iter().zip(cells).enumerate() {
        if was != now {
            let split = |s: &str| -> Vec<String> {
                s.split([' ', ',', '{', '}'])
                    .filter(|t| !t.is_empty())
                    .map(str::to_string)
                    .collect()
            };
            let (a, b) = (split(was), split(now));
            let at = a.iter().zip(&b).take_while(|(x, y)| x == y).count();
            let token = |t: &[String]| t.get(at).cloned().unwrap_or_default();
            return format!("in cell {i}, `{}` is now `{}`", token(&a), token(&b));
        }
    }
    "the root seed or compatibility mode changed".to_string()
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
) -> Result<(Vec<Point>, bool), String> {
    let progress = Progress::new(plan, cell, resuming, record);
    let report = |points: &[Point], restored: bool| progress.record(points, restored);
    let outcome =
        crate::runtime::run(plan, threads, session, &report).map_err(|e| e.to_string())?;
    for f in outcome.failures.iter().take(5) {
        eprintln!(
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

/// The run's `metrics.csv` while a cell runs: the finished cells' rows and
/// the cell's index.
struct Record {
    dir: PathBuf,
    done: Vec<MetricRow>,
    cell: usize,
}

/// How often a running cell's points are written to `metrics.csv`.
const WRITE_EVERY_S: f64 = 30.0;

/// Prints a line when every seed has reported an evaluation, and keeps
/// `metrics.csv` current during long cells.
struct Progress {
    n_seeds: usize,
    steps: u64,
    metrics: &'static [&'static str],
    label: String,
    /// The step and time of the last line printed (unknown when resuming).
    last: Mutex<Option<(u64, Instant)>>,
    /// Where the metrics go, the cell's points so far, and when they were last written.
    record: Mutex<(Record, Vec<Point>, Instant)>,
    pending: Mutex<BTreeMap<u64, Vec<f64>>>,
}

impl Progress {
    /// Adds `points` to the cell's record; rewrites `metrics.csv` (finished
    /// cells and this cell so far) at most every [`WRITE_EVERY_S`] seconds.
    fn write_now_and_then(&self, points: &[Point]) {
        let mut guard = self.record.lock().expect("progress lock");
        let (record, all, last) = &mut *guard;
        all.extend_from_slice(points);
        if last.elapsed().as_secs_f64() < WRITE_EVERY_S {
            return;
        }
        *last = Instant::now();
        let mut sorted = all.clone();
        sorted.sort_by_key(|p| (p.step, p.seed, p.metric));
        let mut rows = record.done.clone();
        rows.extend(sorted.iter().map(|p| MetricRow {
            cell: record.cell,
            seed: p.seed,
            step: p.step,
            metric: self.metrics[p.metric],
            value: p.value,
        }));
        // A failed write leaves the previous file; the checkpoints hold the points.
        let _ = report::write_metrics(&record.dir, &rows);
    }

    fn new(plan: &Plan, cell: &Cell, resuming: bool, record: Record) -> Progress {
        let label = format!("cell {} [{}]", cell.index, cell.label());
        Progress {
            n_seeds: plan.seeds.len(),
            steps: plan.env_steps(),
            metrics: plan.metrics(),
            label,
            last: Mutex::new((!resuming).then(|| (0, Instant::now()))),
            record: Mutex::new((record, Vec::new(), Instant::now())),
            pending: Mutex::new(BTreeMap::new()),
        }
    }

    fn record(&self, points: &[Point], restored: bool) {
        self.write_now_and_then(points);
        if restored {
            return;
        }
        let mut pending = self.pending.lock().expect("progress lock");
        for p in points.iter().filter(|p| p.metric == EVAL) {
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
            // The rate of the last interval: steps before learning starts are far cheaper.
            // A resumed run's first line has no interval to measure.
            let mut last = self.last.lock().expect("progress lock");
            let speed = match *last {
                Some((since_step, _)) if step <= since_step => "before the first unit".to_string(),
                Some((since_step, since)) => {
                    let secs = since.elapsed().as_secs_f64();
                    let rate = step.saturating_sub(since_step) as f64 / secs.max(1e-9);
                    let eta = (self.steps - step) as f64 / rate.max(1e-9);
                    format!("{rate:.0} steps/s, ETA {eta:.0} s")
                }
                None => "resumed".to_string(),
            };
            *last = Some((step, Instant::now()));
            println!(
                "  {} step {step}/{}: eval {mean:.4} ({speed})",
                self.label, self.steps
            );
        }
    }
}
