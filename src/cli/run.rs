//! `mbrl run FILE [--out DIR] [--scale F] [--threads N] [--set P=V]`: runs
//! every cell of every experiment (the DQN family, SLBO and the random
//! agent), seeds batched and sharded, into a run directory with
//! checkpoints. Before anything is allocated, the memory the largest cell
//! needs is checked against what the machine has. Running again on the same
//! directory resumes (without `--out`, on the default directory: an
//! unfinished run resumes, a finished one is reported; `--fresh` starts
//! another); a changed experiment is refused. Ctrl-C checkpoints every seed
//! at its next evaluation and exits.
//!
//! The run itself is `crate::runs`'s; this file parses the arguments,
//! handles Ctrl-C, prints progress and chooses the exit status.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};

use clap::Args;

use crate::check::{Cell, CheckedExperiment};
use crate::compile::Plan;
use crate::runs::cells::{CellEnd, Ran, Stop, Watch};
use crate::runs::rundir::{self, OpenError};
use crate::runs::watch::MovedAside;
use crate::runs::{self as runs, Compiled};
use crate::runtime::driver::{NonFinite, Point, EVAL};

use super::progress::Progress;

#[derive(Args)]
pub struct RunArgs {
    /// The experiment file (`.exp`); every experiment it declares runs, one run directory each.
    pub file: PathBuf,
    /// The run directory: new, empty, or one a run of this experiment wrote
    /// (which the run resumes). Default `runs/EXPERIMENT-HASH` (HASH: the
    /// first 8 hex digits of the experiment's identity), where the same
    /// command again resumes an unfinished run, or says where a finished
    /// one's results are.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Without `--out`: start a new run in the next free `runs/EXPERIMENT-HASH-N`
    /// instead of resuming (or reporting) the last one.
    #[arg(long, conflicts_with = "out")]
    pub fresh: bool,
    /// Run only the experiment of this name (a file may declare several; `--out` holds one).
    #[arg(long, value_name = "NAME")]
    pub experiment: Option<String>,
    /// Multiply every step budget by F > 0 (rounded to whole evaluation intervals).
    #[arg(long, default_value_t = 1.0, value_parser = super::positive_finite)]
    pub scale: f64,
    /// Worker threads (seed shards), at least 1; default: the machine's cores.
    #[arg(long, value_parser = super::at_least_one)]
    pub threads: Option<usize>,
    /// Override a field, as `mbrl check --set` does: `--set experiment.seeds=5`, `--set er.lr=1e-4` (repeatable).
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
    /// Exit with status 1 when a claim (`expect`) fails at the end of the run.
    #[arg(long)]
    pub strict: bool,
    /// Behave as if Ctrl-C were pressed when a seed reaches env step N (for testing resume).
    #[arg(long, hide = true, value_name = "N")]
    pub stop_at: Option<u64>,
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
    let one_dir = args.out.is_some();
    let experiments = match runs::prepare::pick_experiments(
        &args.file.display().to_string(),
        &checked.experiments,
        args.experiment.as_deref(),
        one_dir,
    ) {
        Ok(experiments) => experiments,
        Err(refused) => return super::show(refused),
    };
    install_interrupt_handler();
    for exp in experiments {
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
    if let Err(refused) = runs::check_precision(exp, &all) {
        return super::show(refused);
    }
    let compiled = Compiled::new(exp, all, args.shard);
    if let Some(expected) = &args.expect_hash {
        if let Err(refused) = compiled.expect_hash(exp, expected) {
            super::show(refused);
            return 1;
        }
    }
    let running = compiled.running();
    if let Err(refused) = runs::check_memory(exp, &running, args.memory) {
        return super::show(refused);
    }
    let out_dir = match &args.out {
        Some(dir) => dir.clone(),
        None => match rundir::default_dir(&exp.name, &compiled.hash, &compiled.part, args.fresh) {
            Ok(dir) => dir,
            Err(finished) => {
                let dir = &finished.dir;
                outln!(
                    "run `{}` is finished: its results are in `{}` (`metrics.csv`, `plots/eval.png`); `--fresh` runs it again into a new directory",
                    exp.name,
                    dir.display()
                );
                // The claims as the file states them today, on the run's results.
                match rundir::restate_claims(dir, &exp.claims) {
                    Ok(true) => outln!("its claims changed since it ran: checked on its results"),
                    Ok(false) => (),
                    Err(e) => {
                        errln!("error: {e}");
                        return 2;
                    }
                }
                if exp.claims.is_empty() {
                    return 0;
                }
                return super::verdicts(dir, args.strict);
            }
        },
    };
    let opening = runs::Opening {
        out_dir: Some(&out_dir),
        threads: args.threads,
        source: &args.file,
        scale: args.scale,
        recompute: args.recompute_damaged,
        hash: compiled.hash.clone(),
        part: compiled.part.clone(),
    };
    let extra = runs::references::manifest_extra(exp, &compiled.all);
    let printer = Printer::default();
    let run = match runs::open(opening, out, exp, &compiled.all, extra, &printer) {
        Ok(run) => run,
        Err(OpenError::Changed(changed)) => {
            let changed = match by_overrides(args, exp, &changed) {
                true => changed.by_overrides(&args.overrides),
                false => *changed,
            };
            super::show(changed);
            return 1;
        }
        Err(err) => return super::show(err),
    };
    let what = match &compiled.part {
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
    match super::cost_line(&exp.name, &running, Some(run.threads)) {
        Ok(line) => outln!("  {line}"),
        // The run needs no estimate: it goes on, saying why there is none.
        Err(err) => errln!("warning: no time estimate: {err}"),
    }
    let stop = Stop {
        flag: &STOP,
        at: args.stop_at,
    };
    match run.run_cells(exp, &compiled.plans, stop, &printer) {
        Ok(Ran::Finished) => (),
        Ok(Ran::Stopped) => {
            let dir = &run.dir;
            outln!(
                "stopped: every seed is checkpointed in `{}`; run the same command with `--out {}` to resume",
                dir.join("checkpoints").display(),
                dir.display()
            );
            return 130;
        }
        Err(err) => return super::show(err),
    }
    match &compiled.part {
        Some(p) => {
            outln!(
                "part {} of {} finished; `mbrl merge` combines the parts into one run",
                p.index,
                p.count
            );
            0
        }
        None => super::finish(&run.dir, args.strict),
    }
}

/// Whether the `--set` options alone make the experiment differ from the
/// run in the directory: the file without them is the run's experiment.
fn by_overrides(
    args: &RunArgs,
    exp: &CheckedExperiment,
    changed: &rundir::ChangedExperiment,
) -> bool {
    if args.overrides.is_empty() {
        return false;
    }
    let Ok(plain) = crate::check_file(&args.file, &[]) else {
        return false;
    };
    if plain.has_errors() {
        return false;
    }
    let Some(plain_exp) = plain
        .clean()
        .experiments
        .iter()
        .find(|e| e.name == exp.name)
    else {
        return false;
    };
    let Ok(plans) = runs::compile_cells(plain_exp, args.scale) else {
        return false;
    };
    let hash = Compiled::new(plain_exp, plans, args.shard).hash;
    changed.previous_hash == hash
}

/// What `mbrl run` prints as a run goes: damaged checkpoints moved aside,
/// a line per evaluation of every seed, non-finite losses, each cell's
/// final evaluation.
#[derive(Default)]
struct Printer {
    /// The running cell's progress lines.
    progress: std::sync::Mutex<Option<std::sync::Arc<Progress>>>,
}

/// How many non-finite losses of a cell are shown one by one.
const NON_FINITE_SHOWN: usize = 5;

impl Watch for Printer {
    fn moved_aside(&self, moved: &MovedAside) {
        errln!("note: {moved}");
    }

    fn cell<'a>(
        &'a self,
        cell: &Cell,
        plan: &Plan,
        resuming: bool,
    ) -> Box<dyn Fn(&[Point], bool) + Sync + 'a> {
        let progress = std::sync::Arc::new(Progress::new(plan, cell, resuming));
        *self.progress.lock().expect("printer lock") = Some(progress.clone());
        Box::new(move |points: &[Point], restored: bool| progress.record(points, restored))
    }

    fn non_finite(&self, cell: &Cell, plan: &Plan, failures: &[NonFinite]) {
        for f in failures.iter().take(NON_FINITE_SHOWN) {
            errln!(
                "warning: cell {} [{}] seed {}: non-finite {} at env step {}",
                cell.index,
                cell.label(),
                f.seed,
                plan.metrics()[f.metric],
                f.step
            );
        }
        if failures.len() > NON_FINITE_SHOWN {
            errln!(
                "warning: cell {} [{}]: {} non-finite losses in all (the first {NON_FINITE_SHOWN} above)",
                cell.index,
                cell.label(),
                failures.len()
            );
        }
    }

    fn cell_stopped(&self, _cell: &Cell, _end: &CellEnd) {
        if let Some(progress) = self.progress.lock().expect("printer lock").take() {
            progress.flush();
        }
    }

    fn cell_finished(&self, cell: &Cell, end: &CellEnd) {
        let points = &end.points;
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
            end.elapsed.as_secs_f64()
        );
    }
}
