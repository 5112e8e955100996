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

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use clap::Args;
use serde::{Deserialize, Serialize};

use crate::check::CheckedExperiment;
use crate::compile::{self, Plan};
use crate::report::{self, ManifestError, Part};

use super::rundir;

/// The batch script's name in the job directory.
pub const SCRIPT: &str = "job.sh";
/// The job record's name in the job directory.
const RECORD: &str = "slurm.ron";

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

/// What a job directory runs, and what was submitted for it.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct JobRecord {
    experiment: String,
    hash: String,
    shards: usize,
    source: String,
    scale: f64,
    overrides: Vec<String>,
    /// Slurm job ids, with the parts each was submitted for.
    submitted: Vec<(String, Vec<usize>)>,
}

/// `sbatch` is not on this machine.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
#[error("cannot run `sbatch`: {why}")]
#[diagnostic(
    code(mbrl::slurm::no_sbatch),
    help("submit from a machine with Slurm (a login node): `sbatch {script}`, or run the parts here with `mbrl run --shard I/N`; the script was written")
)]
struct NoSbatch {
    why: String,
    script: String,
}

/// `sbatch` refused the job.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
#[error("sbatch refused the job: {why}")]
#[diagnostic(
    code(mbrl::slurm::rejected),
    help("fix what Slurm says (partition, time, memory or account: `--partition`, `--time`, `--sbatch=OPTION`) and run the command again")
)]
struct Rejected {
    why: String,
}

/// The job directory holds a job of another experiment or cut.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
#[error("`{dir}` holds a job for {what}")]
#[diagnostic(
    code(mbrl::slurm::changed_job),
    help("a job directory keeps one experiment cut one way, so that its parts can be merged; choose another `--out` for this one")
)]
struct ChangedJob {
    dir: String,
    what: String,
}

/// A file with several experiments.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
#[error("`{file}` declares {count} experiments; a Slurm job runs one")]
#[diagnostic(
    code(mbrl::slurm::several_experiments),
    help("put each experiment in a file of its own and write a job for each")
)]
struct SeveralExperiments {
    file: String,
    count: usize,
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
            return rundir::show(SeveralExperiments {
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
    let hash = rundir::identity(exp, &plans);
    let dir = args
        .out
        .clone()
        .unwrap_or_else(|| PathBuf::from(format!("runs/{}-{}-slurm", exp.name, &hash[..8])));
    let io = |what: &str, e: std::io::Error| {
        errln!("error: cannot write {what}: {e}");
        2
    };
    std::fs::create_dir_all(dir.join("logs")).map_err(|e| io("the job directory", e))?;
    let dir = dir.canonicalize().map_err(|e| io("the job directory", e))?;
    let source = args
        .file
        .canonicalize()
        .map_err(|e| io("the job (the experiment file's path)", e))?;
    let record_path = dir.join(RECORD);
    let mut record = job_record(args, exp, &dir, &source, &hash)?;
    let seeds: Vec<Vec<u64>> = plans.iter().map(|p| p.seeds.clone()).collect();
    let parts: Vec<Part> = (0..args.shards)
        .map(|i| Part::of(i, args.shards, &seeds))
        .collect();
    let pending: Vec<usize> = (0..args.shards)
        .filter(|&i| !finished(&dir, i, &hash))
        .collect();
    let empty = parts.iter().filter(|p| p.units.is_empty()).count();
    if empty > 0 {
        errln!(
            "note: {empty} of the {} parts hold no (cell, seed) unit (the experiment has {} units); they finish at once",
            args.shards,
            parts.iter().map(|p| p.units.len()).sum::<usize>()
        );
    }
    let script = script(args, exp, &plans, &parts, &pending, &dir, &source, &hash)?;
    let script_path = dir.join(SCRIPT);
    report::write_atomic(&script_path, script.as_bytes()).map_err(|e| io("the script", e))?;
    report::write_sealed_ron(&record_path, &record).map_err(|e| io("the job record", e))?;
    outln!(
        "job `{}`: {} parts of {} (cell, seed) units, {} unfinished -> {}",
        exp.name,
        args.shards,
        parts.iter().map(|p| p.units.len()).sum::<usize>(),
        pending.len(),
        script_path.display()
    );
    if pending.is_empty() {
        outln!("every part has finished");
        if !args.wait {
            outln!("`mbrl merge {}` combines them", dir.display());
        }
    } else if args.submit || args.wait {
        let id = submit(&script_path, args.wait)?;
        record.submitted.push((id.clone(), pending.clone()));
        report::write_sealed_ron(&record_path, &record).map_err(|e| io("the job record", e))?;
        outln!("submitted job {id} (array tasks {})", ranges(&pending));
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
    merge_finished(&dir, args.shards, &hash)
}

/// The job's record in `dir`: new, or the one there when it is this
/// experiment cut into as many parts.
fn job_record(
    args: &SlurmArgs,
    exp: &CheckedExperiment,
    dir: &Path,
    source: &Path,
    hash: &str,
) -> Result<JobRecord, u8> {
    match report::read_sealed_ron::<JobRecord>(&dir.join(RECORD), "a Slurm job record") {
        Ok(Some(record)) if record.hash == hash && record.shards == args.shards => Ok(record),
        Ok(Some(record)) => Err(rundir::show(ChangedJob {
            dir: dir.display().to_string(),
            what: match record.hash == hash {
                true => format!(
                    "this experiment cut into {} parts, not {}",
                    record.shards, args.shards
                ),
                false => format!(
                    "experiment `{}` (hash {}), not `{}` (hash {hash})",
                    record.experiment, record.hash, exp.name
                ),
            },
        })),
        Ok(None) => Ok(JobRecord {
            experiment: exp.name.clone(),
            hash: hash.to_string(),
            shards: args.shards,
            source: source.display().to_string(),
            scale: args.scale,
            overrides: args.overrides.clone(),
            submitted: Vec::new(),
        }),
        Err(ManifestError::Damaged(d)) => Err(rundir::show(rundir::DamagedFile {
            damaged: d,
            help: "nothing was changed; remove the job record to write the job again (finished parts are kept)".into(),
        })),
        Err(err) => {
            errln!("error: {err}");
            Err(2)
        }
    }
}

/// Merges the job's parts into `DIR/merged` once every one has finished.
fn merge_finished(dir: &Path, shards: usize, hash: &str) -> Result<(), u8> {
    let unfinished: Vec<usize> = (0..shards).filter(|&i| !finished(dir, i, hash)).collect();
    if !unfinished.is_empty() {
        errln!(
            "error: parts {} did not finish (their logs are in `{}`); run this command again to resubmit them",
            ranges(&unfinished),
            dir.join("logs").display()
        );
        return Err(2);
    }
    let dirs: Vec<PathBuf> = (0..shards).map(|i| part_dir(dir, i)).collect();
    let merged = dir.join("merged");
    super::merge::merge_into(&dirs, &merged)?;
    match super::plot(&merged) {
        0 => Ok(()),
        code => Err(code),
    }
}

fn part_dir(dir: &Path, index: usize) -> PathBuf {
    dir.join(format!("part-{index}"))
}

/// Part `index` has run to its end for the experiment `hash`.
fn finished(dir: &Path, index: usize, hash: &str) -> bool {
    matches!(
        report::read_manifest(&part_dir(dir, index)),
        Ok(Some(m)) if m.finished && m.hash == hash && m.part.as_ref().is_some_and(|p| p.index == index)
    )
}

/// `0-3,5,7-8`.
fn ranges(indices: &[usize]) -> String {
    let mut out = Vec::new();
    let mut i = 0;
    while i < indices.len() {
        let mut j = i;
        while j + 1 < indices.len() && indices[j + 1] == indices[j] + 1 {
            j += 1;
        }
        out.push(match i == j {
            true => indices[i].to_string(),
            false => format!("{}-{}", indices[i], indices[j]),
        });
        i = j + 1;
    }
    out.join(",")
}

/// `text` quoted for the shell.
fn quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', "'\\''"))
}

/// Slurm's `[D-]HH:MM:SS`.
fn slurm_time(seconds: f64) -> String {
    let s = seconds.ceil().max(60.0) as u64;
    let (d, h, m, s) = (s / 86400, s / 3600 % 24, s / 60 % 60, s % 60);
    match d {
        0 => format!("{h:02}:{m:02}:{s:02}"),
        d => format!("{d}-{h:02}:{m:02}:{s:02}"),
    }
}

/// The batch script: an array over the `pending` parts, each running its
/// part of the experiment into `DIR/part-I` with this mbrl.
#[allow(clippy::too_many_arguments)]
fn script(
    args: &SlurmArgs,
    exp: &CheckedExperiment,
    plans: &[Plan],
    parts: &[Part],
    pending: &[usize],
    dir: &Path,
    source: &Path,
    hash: &str,
) -> Result<String, u8> {
    let exe = std::env::current_exe().map_err(|e| {
        errln!("error: cannot find this mbrl's path for the script: {e}");
        2
    })?;
    // The largest part sets the limits every task gets.
    let part_plans = |part: &Part| -> Vec<Plan> {
        plans
            .iter()
            .enumerate()
            .filter_map(|(cell, plan)| {
                let seeds = part.seeds_of(cell);
                (!seeds.is_empty()).then(|| Plan {
                    seeds,
                    ..plan.clone()
                })
            })
            .collect()
    };
    let costs: Vec<compile::Cost> = parts
        .iter()
        .map(|p| compile::total_cost(&part_plans(p)))
        .collect();
    let flops = costs.iter().map(|c| c.flops).fold(0.0, f64::max);
    let bytes = costs.iter().map(|c| c.bytes).fold(0.0, f64::max);
    let per_cpu = super::CPU_GFLOPS * 1e9 / 2.0;
    let estimate = flops / (per_cpu * args.cpus_per_task as f64);
    let time = args
        .time
        .clone()
        .unwrap_or_else(|| slurm_time(3.0 * estimate + 900.0));
    let mem_mib = ((bytes + 512.0 * (1u64 << 20) as f64) / (1u64 << 20) as f64).ceil() as u64;

    let mut s = String::from("#!/bin/bash\n");
    let _ = writeln!(
        s,
        "# Written by mbrl {} for experiment `{}` (hash {hash}): part I of {} of its (cell, seed) units per array task.",
        env!("CARGO_PKG_VERSION"),
        exp.name,
        args.shards
    );
    let _ = writeln!(
        s,
        "# `mbrl slurm` rewrites it for the parts that have not finished; `mbrl merge {}` combines the parts.",
        dir.display()
    );
    let _ = writeln!(s, "#SBATCH --job-name=mbrl-{}", exp.name);
    let _ = writeln!(s, "#SBATCH --array={}", ranges(pending));
    let _ = writeln!(s, "#SBATCH --cpus-per-task={}", args.cpus_per_task);
    let _ = writeln!(s, "#SBATCH --mem={mem_mib}M");
    let _ = writeln!(s, "#SBATCH --time={time}");
    let _ = writeln!(s, "#SBATCH --output={}/logs/part-%a.log", dir.display());
    let _ = writeln!(s, "#SBATCH --open-mode=append");
    // Checkpoint two minutes before the time limit; a requeued task resumes.
    let _ = writeln!(s, "#SBATCH --signal=B:INT@120");
    let _ = writeln!(s, "#SBATCH --requeue");
    if let Some(p) = &args.partition {
        let _ = writeln!(s, "#SBATCH --partition={p}");
    }
    for option in &args.sbatch {
        let _ = writeln!(s, "#SBATCH {option}");
    }
    s.push_str("set -eu\n");
    let _ = write!(
        s,
        "exec {} run {} --shard \"$SLURM_ARRAY_TASK_ID/{}\" --out {}/part-\"$SLURM_ARRAY_TASK_ID\" --threads \"${{SLURM_CPUS_PER_TASK:-1}}\" --scale {} --expect-hash {hash}",
        quote(&exe.display().to_string()),
        quote(&source.display().to_string()),
        args.shards,
        quote(&dir.display().to_string()),
        args.scale,
    );
    for o in &args.overrides {
        let _ = write!(s, " --set {}", quote(o));
    }
    s.push('\n');
    Ok(s)
}

/// Submits `script`; the job id. With `wait`, returns when every task has ended.
fn submit(script: &Path, wait: bool) -> Result<String, u8> {
    let mut cmd = Command::new("sbatch");
    cmd.arg("--parsable");
    if wait {
        cmd.arg("--wait");
    }
    cmd.arg(script);
    let output = cmd.output().map_err(|e| {
        rundir::show(NoSbatch {
            why: e.to_string(),
            script: script.display().to_string(),
        })
    })?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let id = stdout
        .lines()
        .next()
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_string();
    // `--wait` exits non-zero when a task failed; the job id was printed first.
    if id.is_empty() || (!output.status.success() && !wait) {
        let why = String::from_utf8_lossy(&output.stderr).trim().to_string();
        return Err(rundir::show(Rejected {
            why: match why.is_empty() {
                true => format!("exit status {}", output.status),
                false => why,
            },
        }));
    }
    Ok(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn array_ranges_and_times_are_written_as_slurm_reads_them() {
        assert_eq!(ranges(&[0, 1, 2, 3, 5, 7, 8]), "0-3,5,7-8");
        assert_eq!(ranges(&[4]), "4");
        assert_eq!(slurm_time(59.0), "00:01:00");
        assert_eq!(slurm_time(3.0 * 3600.0 + 61.0), "03:01:01");
        assert_eq!(slurm_time(26.0 * 3600.0), "1-02:00:00");
        assert_eq!(quote("it's"), "'it'\\''s'");
    }
}
