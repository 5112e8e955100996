//! `mbrl slurm FILE --shards N [--submit] [--wait]`: runs an experiment
//! that outgrows one machine as a Slurm job array. Each array task runs one
//! part of the experiment's (cell, seed) units (`mbrl run --shard I/N`) into
//! its own run directory; `mbrl merge` combines the parts into the run one
//! machine would have written.
//!
//! The job directory (`--out`, default `runs/EXPERIMENT-HASH-slurm`) holds
//! `job.sh` (the batch script), `slurm.ron` (what the job runs and the
//! submissions, sealed), `logs/` and `part-*/`. Running the command again
//! rewrites the script for the parts that have not finished and, with
//! `--submit`, submits only those: a task killed, timed out or preempted
//! resumes from its checkpoints.
//!
//! The job directory, its record and script, `sbatch` and the merge are
//! `crate::runs::{job, merge}`'s; this file parses the arguments, prints
//! what was written and submitted, and chooses the exit status.

use std::path::PathBuf;

use clap::Args;

use crate::check::CheckedExperiment;
use crate::runs::job::{self, Job, JobSpec, SeveralExperiments};
use crate::runs::merge;

#[derive(Args)]
pub struct SlurmArgs {
    pub file: PathBuf,
    /// Parts to cut the experiment's (cell, seed) units into: one array task each.
    #[arg(long, value_parser = super::at_least_one)]
    pub shards: usize,
    /// The job directory (default `runs/EXPERIMENT-HASH-slurm`).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Multiply every step budget by F > 0, as `mbrl run --scale`.
    #[arg(long, default_value_t = 1.0, value_parser = super::positive_finite)]
    pub scale: f64,
    #[arg(long = "set", value_name = "PATH=VALUE")]
    pub overrides: Vec<String>,
    /// CPUs per task (the run's worker threads).
    #[arg(long, default_value_t = 2, value_parser = super::at_least_one)]
    pub cpus_per_task: usize,
    /// The Slurm partition.
    #[arg(long)]
    pub partition: Option<String>,
    /// Wall-clock limit per task (`sbatch --time`, e.g. `4:00:00`); default:
    /// three times the estimate from the experiment's cost, plus 15 minutes.
    #[arg(long)]
    pub time: Option<String>,
    /// Another `#SBATCH` option, e.g. `--sbatch=--account=rl` (repeatable).
    #[arg(long = "sbatch", value_name = "OPTION", allow_hyphen_values = true)]
    pub sbatch: Vec<String>,
    /// Submit the unfinished parts with `sbatch`.
    #[arg(long)]
    pub submit: bool,
    /// Submit, wait for every task to end (`sbatch --wait`), then merge into `DIR/merged`.
    #[arg(long)]
    pub wait: bool,
}

pub fn run(args: &SlurmArgs) -> u8 {
    let out = match super::load_checked(&args.file, &args.overrides) {
        Ok(out) => out,
        Err(code) => return code,
    };
    let checked = out.clean();
    let exp = match checked.experiments.as_slice() {
        [exp] => exp,
        [] => {
            errln!(
                "error: `{}` declares no experiment to run",
                args.file.display()
            );
            return 1;
        }
        many => {
            return super::show(SeveralExperiments {
                file: args.file.display().to_string(),
                count: many.len(),
            })
        }
    };
    match job(args, exp) {
        Ok(()) => 0,
        Err(code) => code,
    }
}

fn job(args: &SlurmArgs, exp: &CheckedExperiment) -> Result<(), u8> {
    let plans = super::compile_cells(exp, args.scale)?;
    let spec = JobSpec {
        file: args.file.clone(),
        out: args.out.clone(),
        shards: args.shards,
        scale: args.scale,
        overrides: args.overrides.clone(),
        cpus_per_task: args.cpus_per_task,
        partition: args.partition.clone(),
        time: args.time.clone(),
        sbatch: args.sbatch.clone(),
    };
    let mut job = Job::open(spec, exp, plans).map_err(super::show)?;
    let empty = job.empty_parts();
    if empty > 0 {
        errln!(
            "note: {empty} of the {} parts hold no (cell, seed) unit (the experiment has {} units); they finish at once",
            args.shards,
            job.units()
        );
    }
    let exe = std::env::current_exe().map_err(|e| {
        errln!("error: cannot find this mbrl's path for the script: {e}");
        2
    })?;
    job.write(&exe).map_err(super::show)?;
    let script_path = job.script_path();
    outln!(
        "job `{}`: {} parts of {} (cell, seed) units, {} unfinished -> {}",
        job.experiment,
        args.shards,
        job.units(),
        job.pending.len(),
        script_path.display()
    );
    let dir = job.dir.clone();
    if job.pending.is_empty() {
        outln!("every part has finished");
        if !args.wait {
            outln!("`mbrl merge {}` combines them", dir.display());
        }
    } else if args.submit || args.wait {
        let id = job.submit(args.wait).map_err(super::show)?;
        outln!(
            "submitted job {id} (array tasks {})",
            job::ranges(&job.pending)
        );
        if !args.wait {
            outln!(
                "when it ends: `mbrl merge {}`; to resubmit what did not finish, run this command again",
                dir.display()
            );
            return Ok(());
        }
    } else {
        outln!(
            "submit it with `sbatch {}`, or run this command with `--submit`",
            script_path.display()
        );
        return Ok(());
    }
    if !args.wait {
        return Ok(());
    }
    let merged = merge::merge_job(&job).map_err(super::show)?;
    super::merge::report(&merged);
    match super::plot(&merged.dir) {
        0 => Ok(()),
        code => Err(code),
    }
}
