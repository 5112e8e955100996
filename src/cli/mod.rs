//! The command line: argument parsing and dispatch, one file per subcommand.
//!
//! Invariants: the only module that prints, reads the process environment,
//! decides exit codes, or renders diagnostics for a terminal.

mod bench;
mod check;
mod describe;
mod eval;
mod graph;
mod run;

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::check::CheckedExperiment;
use crate::compile::{self, Plan};

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
    /// Run an experiment's cells (the DQN family and random agents) into a resumable run directory.
    Run(run::RunArgs),
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
    Explain { code: String },
}

/// Exit codes: 0 clean, 1 diagnostics with errors, 2 usage or IO errors.
pub fn main() -> ExitCode {
    let args = Args::parse();
    let result = match args.command {
        Command::Check(args) => check::run(&args),
        Command::Run(args) => run::run(&args),
        Command::Plot { run } => match crate::report::plots::plot_run(&run) {
            Ok(paths) => {
                paths.iter().for_each(|p| println!("{}", p.display()));
                0
            }
            Err(err) => {
                eprintln!("error: {err}");
                2
            }
        },
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
            eprintln!("error: cannot read `{}`: {err}", file.display());
            return Err(2);
        }
    };
    if !out.diags.is_empty() {
        eprint!("{}", render(&out));
    }
    match out.has_errors() {
        true => Err(1),
        false => Ok(out),
    }
}

/// Mean and sample standard deviation (NaN for no values).
fn mean_sd(xs: &[f64]) -> (f64, f64) {
    if xs.is_empty() {
        return (f64::NAN, f64::NAN);
    }
    let n = xs.len() as f64;
    let mean = xs.iter().sum::<f64>() / n;
    let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0).max(1.0);
    (mean, var.sqrt())
}

/// Every cell's plan: its dataflow graph compiled at `scale`; a cell that
/// cannot run is reported and the run refused (exit 2).
fn compile_cells(exp: &CheckedExperiment, scale: f64) -> Result<Vec<Plan>, u8> {
    let mut plans = Vec::new();
    let mut failed = false;
    for cell in &exp.cells {
        match compile::compile(&crate::graph::cell_graph(exp, cell), scale) {
            Ok(plan) => plans.push(plan),
            Err(err) => {
                eprintln!("error: cell {} [{}]: {err}", cell.index, cell.label());
                failed = true;
            }
        }
    }
    // An env this build cannot run (HalfCheetah without MuJoCo) stops the run before it starts.
    for (cell, plan) in exp.cells.iter().zip(&plans) {
        let probe = crate::envs::Layout {
            root_seed: plan.root_seed,
            seeds: vec![0],
            envs_per_seed: 1,
            purpose: crate::seeds::Purpose::Env,
            round: 0,
        };
        if let Err(err) = crate::envs::Batch::new(plan.env, &probe) {
            eprintln!("error: cell {} [{}]: {}", cell.index, cell.label(), err.0);
            failed = true;
        }
    }
    match failed {
        true => Err(2),
        false => Ok(plans),
    }
}

/// Measured on the 2-core development machine (`mbrl bench`, 30 seeds, 2
/// threads, the fused CPU update: 62-85 GFLOP/s, typically 70).
const CPU_GFLOPS: f64 = 70.0;

/// The compute and memory of an experiment's compiled cells, in words.
fn cost_line(name: &str, plans: &[Plan]) -> String {
    let cost = compile::total_cost(plans);
    let hours = cost.flops / (CPU_GFLOPS * 1e9) / 3600.0;
    format!(
        "cost of `{name}`: {:.2e} FLOP of gradient updates (~{hours:.1} h at {CPU_GFLOPS} GFLOP/s, a 2-core CPU), {:.2} GiB of replay and parameters for the largest cell",
        cost.flops,
        cost.bytes / (1u64 << 30) as f64
    )
}
