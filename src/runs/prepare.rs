//! An experiment made ready to run: every cell compiled (a cell this build
//! cannot run refused before anything starts), its identity, the part of
//! its (cell, seed) units a directory runs, and the refusals that come
//! before anything is allocated: an experiment that is not the one a job
//! was written for, and a run that would not fit in memory.
//!
//! Invariants: prints nothing, writes nothing.

use crate::check::CheckedExperiment;
use crate::compile::{self, Plan};
use crate::report::Part;

/// Cells that cannot run: one line per cell (`cell N [LABEL]: why`).
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
#[error("{}", .cells.join("; "))]
pub struct CellsRefused {
    pub cells: Vec<String>,
}

/// Every cell's plan: its dataflow graph compiled at `scale`; the cells
/// that cannot run (or whose env this build cannot run) are refused.
pub fn compile_cells(exp: &CheckedExperiment, scale: f64) -> Result<Vec<Plan>, CellsRefused> {
    let mut plans = Vec::new();
    let mut refused = Vec::new();
    for cell in &exp.cells {
        match compile::compile(&crate::graph::cell_graph(exp, cell), scale) {
            Ok(plan) => plans.push(plan),
            Err(err) => refused.push(format!("cell {} [{}]: {err}", cell.index, cell.label())),
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
            refused.push(format!("cell {} [{}]: {}", cell.index, cell.label(), err.0));
        }
    }
    match refused.is_empty() {
        true => Ok(plans),
        false => Err(CellsRefused { cells: refused }),
    }
}

/// An experiment compiled for one run directory.
#[derive(Clone, Debug)]
pub struct Compiled {
    /// Every cell's plan, with all its seeds.
    pub all: Vec<Plan>,
    /// The experiment's identity ([`super::identity`] of `all`).
    pub hash: String,
    /// The part of the experiment's (cell, seed) units this run holds.
    pub part: Option<Part>,
    /// One entry per cell: its plan with the seeds this run holds, `None`
    /// for a cell of other parts only.
    pub plans: Vec<Option<Plan>>,
}

impl Compiled {
    /// `exp`'s cells, `all`, for part `shard = (I, N)` of it or all of it.
    pub fn new(exp: &CheckedExperiment, all: Vec<Plan>, shard: Option<(usize, usize)>) -> Compiled {
        let hash = super::identity(exp, &all);
        let part = shard.map(|(i, n)| {
            let seeds: Vec<Vec<u64>> = all.iter().map(|p| p.seeds.clone()).collect();
            Part::of(i, n, &seeds)
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
        Compiled {
            all,
            hash,
            part,
            plans,
        }
    }

    /// The plans this run runs.
    pub fn running(&self) -> Vec<Plan> {
        self.plans.iter().flatten().cloned().collect()
    }

    /// Refuses an experiment whose identity is not `expected` (the one a
    /// Slurm job was written for).
    pub fn expect_hash(
        &self,
        exp: &CheckedExperiment,
        expected: &str,
    ) -> Result<(), NotTheJobsExperiment> {
        match self.hash == expected {
            true => Ok(()),
            false => Err(NotTheJobsExperiment {
                experiment: exp.name.clone(),
                found: self.hash.clone(),
                expected: expected.to_string(),
            }),
        }
    }
}

/// More memory than the machine has (or than `--memory` allows).
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
#[error("experiment `{experiment}` needs about {need:.2} GiB for its largest cell ({what}), but {have:.2} GiB {source_of_limit}")]
#[diagnostic(
    code(mbrl::run::insufficient_memory),
    help("lower `seeds`, `buffer` or the network sizes (`mbrl check --cost` shows the estimate), or pass `--memory GIB` to allow more on purpose")
)]
pub struct InsufficientMemory {
    pub experiment: String,
    pub need: f64,
    pub what: String,
    pub have: f64,
    pub source_of_limit: String,
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
pub struct NoExperiment {
    pub file: String,
}

/// A file with several experiments and one run directory (`--out`) for them.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
#[error("`{file}` declares {count} experiments ({names}) and `--out` names one run directory")]
#[diagnostic(
    code(mbrl::run::several_experiments),
    help("a run directory holds one experiment: pick one with `--experiment NAME` (e.g. `--experiment {first} --out DIR`), or leave out `--out` to run each into its own directory under `runs/`")
)]
pub struct SeveralExperiments {
    pub file: String,
    pub count: usize,
    /// Their names, quoted and comma-separated.
    pub names: String,
    pub first: String,
}

/// `--experiment` names no experiment of the file.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
#[error("`{file}` declares no experiment `{name}`")]
#[diagnostic(
    code(mbrl::run::unknown_experiment),
    help("its experiments are {names}")
)]
pub struct UnknownExperiment {
    pub file: String,
    pub name: String,
    /// The file's experiments, quoted and comma-separated.
    pub names: String,
}

/// Why the experiments of a file cannot be run as asked.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum PickError {
    #[error(transparent)]
    #[diagnostic(transparent)]
    None(NoExperiment),
    #[error(transparent)]
    #[diagnostic(transparent)]
    Several(SeveralExperiments),
    #[error(transparent)]
    #[diagnostic(transparent)]
    Unknown(UnknownExperiment),
}

/// The experiments of `file` to run: the one named `pick`, or all of them.
/// Several into one run directory (`one_dir`: `--out` given) are refused
/// before anything runs, since a run directory holds one experiment.
pub fn pick_experiments<'a>(
    file: &str,
    experiments: &'a [CheckedExperiment],
    pick: Option<&str>,
    one_dir: bool,
) -> Result<Vec<&'a CheckedExperiment>, PickError> {
    let names = || {
        experiments
            .iter()
            .map(|e| format!("`{}`", e.name))
            .collect::<Vec<_>>()
            .join(", ")
    };
    if experiments.is_empty() {
        return Err(PickError::None(NoExperiment {
            file: file.to_string(),
        }));
    }
    match pick {
        Some(name) => match experiments.iter().find(|e| e.name == name) {
            Some(exp) => Ok(vec![exp]),
            None => Err(PickError::Unknown(UnknownExperiment {
                file: file.to_string(),
                name: name.to_string(),
                names: names(),
            })),
        },
        None if one_dir && experiments.len() > 1 => Err(PickError::Several(SeveralExperiments {
            file: file.to_string(),
            count: experiments.len(),
            names: names(),
            first: experiments[0].name.clone(),
        })),
        None => Ok(experiments.iter().collect()),
    }
}

/// The experiment changed since a Slurm job was written for it.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
#[error("experiment `{experiment}` is not the one this job was written for (hash {found}, expected {expected})")]
#[diagnostic(
    code(mbrl::run::changed_experiment),
    help("the file or an override changed after `mbrl slurm` wrote the job; restore it, or write and submit a new job")
)]
pub struct NotTheJobsExperiment {
    pub experiment: String,
    pub found: String,
    pub expected: String,
}

/// The memory available to new processes, in bytes (Linux's `MemAvailable`).
fn available_memory() -> Option<f64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024.0)
}

/// bf16 products asked for on a build or machine without a unit for them.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
#[error("experiment `{experiment}` asks for bf16 products in {cells}, but {why}")]
#[diagnostic(
    code(mbrl::run::bf16_unavailable),
    help("run it on a CPU with Intel AMX (`amx_bf16` and `amx_tile` in /proc/cpuinfo: Xeon 4th generation or later) and Linux 5.16 or later, or set `precision: fp32` (`mbrl bench` says what this machine has)")
)]
pub struct Bf16Unavailable {
    pub experiment: String,
    pub cells: String,
    pub why: String,
}

/// Refuses, before anything is allocated, an experiment whose cells ask
/// for a precision this build on this machine cannot multiply in. `all`
/// is every cell's plan, in the experiment's order.
pub fn check_precision(exp: &CheckedExperiment, all: &[Plan]) -> Result<(), Bf16Unavailable> {
    let wanting: Vec<String> = exp
        .cells
        .iter()
        .zip(all)
        .filter(|(_, plan)| plan.agent.precision() != crate::tensor::Precision::Fp32)
        .map(|(cell, _)| format!("cell {} [{}]", cell.index, cell.label()))
        .collect();
    if wanting.is_empty() {
        return Ok(());
    }
    match crate::tensor::Precision::Bf16.available() {
        Ok(()) => Ok(()),
        Err(why) => Err(Bf16Unavailable {
            experiment: exp.name.clone(),
            cells: match wanting.len() {
                1..=3 => wanting.join(", "),
                n => format!("{}, ... ({n} cells)", wanting[..2].join(", ")),
            },
            why,
        }),
    }
}

/// Refuses a run whose largest cell would not fit in memory, before
/// anything is allocated: the estimate of `mbrl check --cost` (replay and
/// parameters with optimizer state, all seeds) plus a margin for the
/// process itself, against `limit` GiB or what the machine has available.
pub fn check_memory(
    exp: &CheckedExperiment,
    plans: &[Plan],
    limit: Option<f64>,
) -> Result<(), InsufficientMemory> {
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
    Err(InsufficientMemory {
        experiment: exp.name.clone(),
        need: need / GIB,
        what: "replay buffers and parameters with their Adam moments, all seeds, plus 0.25 GiB"
            .into(),
        have: have / GIB,
        source_of_limit,
    })
}
