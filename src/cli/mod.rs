//! The command line: argument parsing and dispatch, one file per subcommand.
//!
//! Invariants: the only module that prints, reads the process environment,
//! decides exit codes, or renders diagnostics for a terminal. Runs, run
//! directories, merges and Slurm jobs are `crate::runs`'s: a subcommand
//! parses its arguments, calls it, and renders what it returns (an error
//! with a code as miette renders it, any other as `error: MESSAGE`).

/// `println!` that ends quietly when stdout is closed (piped into `head`):
/// a reader that stopped reading is not an error, and a run goes on.
macro_rules! outln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}

/// `print!` that ends quietly when stdout is closed.
macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = write!(std::io::stdout(), $($arg)*);
    }};
}

/// `eprintln!` that ends quietly when stderr is closed.
macro_rules! errln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), $($arg)*);
    }};
}

/// `eprint!` that ends quietly when stderr is closed.
macro_rules! err {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = write!(std::io::stderr(), $($arg)*);
    }};
}

mod bench;
mod check;
mod describe;
mod eval;
mod graph;
mod merge;
mod progress;
mod run;
mod slurm;

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::check::CheckedExperiment;
use crate::compile::{self, Plan};
use crate::runs::mean_sd;
use crate::runs::rates::{self, Rates};
use crate::runs::rundir::DamagedFile;

#[derive(Parser)]
#[command(
    name = "mbrl",
    version,
    about = "A declarative experiment language for model-based RL"
)]
struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Check experiment files statically: every problem, before anything runs.
    Check(check::CheckArgs),
    /// Run an experiment's cells (the DQN family, SLBO and random agents) into a resumable run directory.
    Run(run::RunArgs),
    /// Run an experiment as a Slurm job array, one part of its (cell, seed) units per task.
    Slurm(slurm::SlurmArgs),
    /// Combine the parts of a sharded run (`run --shard`, `slurm`) into one verified run directory.
    Merge(merge::MergeArgs),
    /// Check a run's claims (`expect`) and summarize its cells over seeds into RUN/claims.csv and RUN/report.md.
    Report {
        /// The run directory (finished, or still being written: its rows so far).
        run: std::path::PathBuf,
        /// Exit with status 1 when a claim fails.
        #[arg(long)]
        strict: bool,
    },
    /// Draw a run's evaluation curves (mean, 95% bootstrap band over seeds) into RUN/plots.
    Plot {
        /// The run directory.
        run: std::path::PathBuf,
    },
    /// Print the dataflow graph of an experiment cell (text or DOT).
    Graph(graph::GraphArgs),
    /// Evaluate the cells whose agent needs no training (`random`) with their protocol.
    Eval(eval::EvalArgs),
    /// List every environment with its parameters and spaces.
    Envs,
    /// Benchmark the seed-batched DQN update (updates/s, GFLOP/s).
    Bench(bench::BenchArgs),
    /// Describe a block kind (`agent`) or a constructor (`dqn`) from the schema.
    Describe {
        /// A kind (`env`, `agent`, ...) or a constructor name (`procmaze`, `dqn`, ...).
        name: String,
    },
    /// Explain a diagnostic code, e.g. `mbrl explain mbrl::check::eval_interval`.
    Explain {
        /// A code in full (`mbrl::run::locked`) or its last part (`locked`).
        code: String,
    },
}

/// Exit codes: 0 clean, 1 diagnostics with errors, 2 usage or IO errors.
pub fn main() -> ExitCode {
    let args = Args::parse();
    let result = match args.command {
        Command::Check(args) => check::run(&args),
        Command::Run(args) => run::run(&args),
        Command::Slurm(args) => slurm::run(&args),
        Command::Merge(args) => merge::run(&args),
        Command::Report { run, strict } => verdicts(&run, strict),
        Command::Plot { run } => plot(&run),
        Command::Graph(args) => graph::run(&args),
        Command::Eval(args) => eval::run(&args),
        Command::Envs => describe::envs(),
        Command::Bench(args) => bench::run(&args),
        Command::Describe { name } => describe::describe(&name),
        Command::Explain { code } => describe::explain(&code),
    };
    ExitCode::from(result)
}

/// Renders diagnostics for stderr, in colour when it is a terminal.
fn render(out: &crate::CheckOutput) -> String {
    let color = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    crate::diagnostics::render(&out.diags, &out.sources, 100, color)
}

/// Checks `file` for a command that needs a clean experiment: prints the
/// diagnostics, and gives the exit code to stop with on an unreadable file (2)
/// or errors (1).
fn load_checked(file: &std::path::Path, overrides: &[String]) -> Result<crate::CheckOutput, u8> {
    let out = match crate::check_file(file, overrides) {
        Ok(out) => out,
        Err(err) => {
            errln!("error: cannot read `{}`: {err}", file.display());
            return Err(2);
        }
    };
    if !out.diags.is_empty() {
        err!("{}", render(&out));
    }
    match out.has_errors() {
        true => Err(1),
        false => Ok(out),
    }
}

/// Draws a run's plots, saying what was left out; exit status 0 or 2.
fn plot(dir: &std::path::Path) -> u8 {
    use crate::report::plots::plot_run;
    match plot_run(dir) {
        Ok(plotted) => {
            if plotted.skipped.non_finite > 0 {
                errln!(
                    "note: {} non-finite evaluation(s) left out of the plots",
                    plotted.skipped.non_finite
                );
            }
            let names: Vec<String> = plotted
                .paths
                .iter()
                .map(|p| p.display().to_string())
                .collect();
            outln!("plots: {}", names.join(", "));
            0
        }
        Err(err) => unreadable(err),
    }
}

/// Renders why a run directory could not be read or written for a plot or report.
fn unreadable(err: crate::report::plots::PlotError) -> u8 {
    use crate::report::plots::PlotError;
    match err {
        PlotError::Damaged(d) => show(DamagedFile::metrics(d)),
        PlotError::Manifest(crate::report::ManifestError::Damaged(d)) => {
            show(DamagedFile::manifest(d))
        }
        err => {
            errln!("error: {err}");
            2
        }
    }
}

/// Checks a run's claims and writes its report; prints the claims table.
/// Status 1 when `strict` and a claim fails, 2 when the run cannot be read.
fn verdicts(dir: &std::path::Path, strict: bool) -> u8 {
    match crate::report::summary::report_run(dir) {
        Ok(reported) => {
            out!("{}", reported.text);
            let names: Vec<String> = reported
                .paths
                .iter()
                .map(|p| p.display().to_string())
                .collect();
            outln!("report: {}", names.join(", "));
            match (strict, reported.failed()) {
                (true, n) if n > 0 => {
                    errln!("error: {n} claim(s) failed (`--strict`)");
                    1
                }
                _ => 0,
            }
        }
        Err(err) => unreadable(err),
    }
}

/// Plots a finished run, then checks its claims: the worst status of the two.
fn finish(dir: &std::path::Path, strict: bool) -> u8 {
    let plotted = plot(dir);
    let checked = verdicts(dir, strict);
    plotted.max(checked)
}

/// A value parser for counts that must be at least 1.
fn at_least_one(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(n) if n >= 1 => Ok(n),
        Ok(_) => Err("must be at least 1".into()),
        Err(e) => Err(e.to_string()),
    }
}

/// A value parser for finite positive numbers.
fn positive_finite(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(x) if x.is_finite() && x > 0.0 => Ok(x),
        Ok(x) => Err(format!("must be a finite number above 0, found {x}")),
        Err(e) => Err(e.to_string()),
    }
}

/// Every cell's plan ([`crate::runs::compile_cells`]); the cells that
/// cannot run are reported and the run refused (exit 2).
fn compile_cells(exp: &CheckedExperiment, scale: f64) -> Result<Vec<Plan>, u8> {
    crate::runs::compile_cells(exp, scale).map_err(|refused| {
        for line in &refused.cells {
            errln!("error: {line}");
        }
        2
    })
}

/// Prints an error of the library: a coded diagnostic as miette renders
/// it, any other as `error: MESSAGE`; returns the exit status for it (2).
fn show<D: miette::Diagnostic + Send + Sync + 'static>(diag: D) -> u8 {
    let coded = diag.code().is_some();
    match coded {
        true => errln!("{:?}", miette::Report::new(diag)),
        false => errln!("error: {diag}"),
    }
    2
}

/// The compute and memory of an experiment's compiled cells, in words, and
/// its training time at the measured rates of [`Rates::current`] (which it
/// names) on `workers` threads (default: the machine's cores); a damaged
/// rates table is an error.
fn cost_line(
    name: &str,
    plans: &[Plan],
    workers: Option<usize>,
) -> Result<String, rates::RatesError> {
    let cost = compile::total_cost(plans);
    let (table, source) = Rates::current()?;
    let (secs, missing) = table.thread_seconds(plans);
    let (workers, on) = match workers {
        Some(n) => (n, format!("on the run's {n} thread(s)")),
        None => {
            let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
            (cores, format!("on this machine's {cores}"))
        }
    };
    let missing = match missing.is_empty() {
        true => String::new(),
        false => format!(
            "; the table has no rate for {} (a bf16 class takes its fp32 rate, any other the table's slowest)",
            missing.join(", ")
        ),
    };
    Ok(format!(
        "cost of `{name}`: {:.2e} FLOP of gradient updates, {:.2} GiB of replay and parameters for the largest cell; \
         training ~{} of one core (~{} {on}, seeds side by side; evaluation not counted) \
         at the rates of {}{missing}",
        cost.flops,
        cost.bytes / (1u64 << 30) as f64,
        rates::duration(secs),
        rates::duration(table.wall_seconds(plans, workers)),
        table.describe(&source),
    ))
}
