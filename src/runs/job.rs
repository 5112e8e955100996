//! The Slurm job directory: an experiment that outgrows one machine run as
//! a job array, each array task running one part of the experiment's
//! (cell, seed) units (`mbrl run --shard I/N`) into its own run directory.
//!
//! Its layout, which [`super::merge`] reads too (this module imports no
//! merge code): `job.sh` (the batch script, [`SCRIPT`]), `slurm.ron` (what
//! the job runs and the submissions, sealed, [`RECORD`]), `logs/`,
//! `part-I/` (one run directory per task, [`part_dir`]) and `merged/`
//! ([`MERGED`]). Writing the job again rewrites the script for the parts
//! that have not finished, so that submitting it resubmits only those: a
//! task killed, timed out or preempted resumes from its checkpoints.
//!
//! Invariants: prints nothing; runs no process but `sbatch`, whose
//! failures are typed errors ([`JobError::NoSbatch`], [`JobError::Rejected`]).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde::{Deserialize, Serialize};

use crate::check::CheckedExperiment;
use crate::compile::{self, Plan};
use crate::report::{self, ManifestError, Part};

use super::rundir::DamagedFile;

/// The batch script's name in the job directory.
pub const SCRIPT: &str = "job.sh";
/// The job record's name in the job directory.
pub const RECORD: &str = "slurm.ron";
/// The tasks' logs, in the job directory.
pub const LOGS: &str = "logs";
/// Where the parts are merged, in the job directory.
pub const MERGED: &str = "merged";

/// The run directory of part `index` in the job directory `dir`.
pub fn part_dir(dir: &Path, index: usize) -> PathBuf {
    dir.join(format!("part-{index}"))
}

/// The job directory when none is given: `runs/EXPERIMENT-HASH-slurm`.
pub fn default_dir(experiment: &str, hash: &str) -> PathBuf {
    PathBuf::from(format!("runs/{}-{}-slurm", experiment, &hash[..8]))
}

/// The part directories a job directory holds, by index; `None` when
/// `dir` is not one (it has a manifest, or neither `part-*` nor a script).
pub fn parts_in(dir: &Path) -> Option<Vec<PathBuf>> {
    if dir.join("manifest.ron").exists() {
        return None;
    }
    let mut parts: Vec<(usize, PathBuf)> = std::fs::read_dir(dir)
        .ok()?
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let index = name.strip_prefix("part-")?.parse().ok()?;
            Some((index, e.path()))
        })
        .collect();
    parts.sort();
    (!parts.is_empty() || dir.join(SCRIPT).exists())
        .then(|| parts.into_iter().map(|(_, p)| p).collect())
}

/// Part `index` has run to its end for the experiment `hash`.
pub fn finished(dir: &Path, index: usize, hash: &str) -> bool {
    matches!(
        report::read_manifest(&part_dir(dir, index)),
        Ok(Some(m)) if m.finished && m.hash == hash && m.part.as_ref().is_some_and(|p| p.index == index)
    )
}

/// What a job is written for: the experiment file and how it is cut, and
/// what each task asks Slurm for.
#[derive(Clone, Debug)]
pub struct JobSpec {
    /// The experiment file.
    pub file: PathBuf,
    /// The job directory (default [`default_dir`]).
    pub out: Option<PathBuf>,
    /// Parts to cut the experiment's (cell, seed) units into: one array task each.
    pub shards: usize,
    pub scale: f64,
    /// `--set` overrides, passed on to every task.
    pub overrides: Vec<String>,
    /// CPUs per task (the run's worker threads).
    pub cpus_per_task: usize,
    pub partition: Option<String>,
    /// Wall-clock limit per task; default: three times the estimate from
    /// the experiment's cost, plus 15 minutes.
    pub time: Option<String>,
    /// More `#SBATCH` options.
    pub sbatch: Vec<String>,
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

/// Why a job cannot be written or submitted.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum JobError {
    /// `what`: the job directory, the script, the job record, ...
    #[error("cannot write {what}: {error}")]
    Write {
        what: &'static str,
        error: std::io::Error,
    },
    #[error(transparent)]
    #[diagnostic(transparent)]
    Changed(ChangedJob),
    #[error(transparent)]
    #[diagnostic(transparent)]
    DamagedRecord(DamagedFile),
    #[error("{0}")]
    Record(ManifestError),
    #[error(transparent)]
    #[diagnostic(transparent)]
    NoSbatch(NoSbatch),
    #[error(transparent)]
    #[diagnostic(transparent)]
    Rejected(Rejected),
    /// The rates table a time request is estimated from is unusable.
    #[error(transparent)]
    Rates(super::rates::RatesError),
}

/// `sbatch` is not on this machine.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
#[error("cannot run `sbatch`: {why}")]
#[diagnostic(
    code(mbrl::slurm::no_sbatch),
    help("submit from a machine with Slurm (a login node): `sbatch {script}`, or run the parts here with `mbrl run --shard I/N`; the script was written")
)]
pub struct NoSbatch {
    pub why: String,
    pub script: String,
}

/// `sbatch` refused the job.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
#[error("sbatch refused the job: {why}")]
#[diagnostic(
    code(mbrl::slurm::rejected),
    help("fix what Slurm says (partition, time, memory or account: `--partition`, `--time`, `--sbatch=OPTION`) and run the command again")
)]
pub struct Rejected {
    pub why: String,
}

/// The job directory holds a job of another experiment or cut.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
#[error("`{dir}` holds a job for {what}")]
#[diagnostic(
    code(mbrl::slurm::changed_job),
    help("a job directory keeps one experiment cut one way, so that its parts can be merged; choose another `--out` for this one")
)]
pub struct ChangedJob {
    pub dir: String,
    pub what: String,
}

/// A file with several experiments.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
#[error("`{file}` declares {count} experiments; a Slurm job runs one")]
#[diagnostic(
    code(mbrl::slurm::several_experiments),
    help("put each experiment in a file of its own and write a job for each")
)]
pub struct SeveralExperiments {
    pub file: String,
    pub count: usize,
}

/// A job directory opened for one experiment cut into `spec.shards` parts.
pub struct Job {
    /// The job directory, canonical.
    pub dir: PathBuf,
    /// The experiment file, canonical.
    pub source: PathBuf,
    pub experiment: String,
    /// The experiment's identity: every task refuses another.
    pub hash: String,
    pub spec: JobSpec,
    /// Every part, by index.
    pub parts: Vec<Part>,
    /// The parts that have not finished.
    pub pending: Vec<usize>,
    plans: Vec<Plan>,
    record: JobRecord,
    /// The measured rates the time request is estimated from.
    rates: (super::rates::Rates, super::rates::Source),
}

impl Job {
    /// Creates (or reopens) the job directory for `exp`, whose cells
    /// compile to `plans`: an existing one must hold this experiment cut
    /// into as many parts. Writes nothing but the directory.
    pub fn open(spec: JobSpec, exp: &CheckedExperiment, plans: Vec<Plan>) -> Result<Job, JobError> {
        let hash = super::identity(exp, &plans);
        let dir = spec
            .out
            .clone()
            .unwrap_or_else(|| default_dir(&exp.name, &hash));
        let io = |what: &'static str| move |error| JobError::Write { what, error };
        std::fs::create_dir_all(dir.join(LOGS)).map_err(io("the job directory"))?;
        let dir = dir.canonicalize().map_err(io("the job directory"))?;
        let source = spec
            .file
            .canonicalize()
            .map_err(io("the job (the experiment file's path)"))?;
        let record = job_record(&spec, exp, &dir, &source, &hash)?;
        let rates = super::rates::Rates::current().map_err(JobError::Rates)?;
        let seeds: Vec<Vec<u64>> = plans.iter().map(|p| p.seeds.clone()).collect();
        let parts: Vec<Part> = (0..spec.shards)
            .map(|i| Part::of(i, spec.shards, &seeds))
            .collect();
        let pending: Vec<usize> = (0..spec.shards)
            .filter(|&i| !finished(&dir, i, &hash))
            .collect();
        Ok(Job {
            dir,
            source,
            experiment: exp.name.clone(),
            hash,
            spec,
            parts,
            pending,
            plans,
            record,
            rates,
        })
    }

    /// The experiment's (cell, seed) units, over all parts.
    pub fn units(&self) -> usize {
        self.parts.iter().map(|p| p.units.len()).sum()
    }

    /// The parts that hold no unit (more parts than units): they finish at once.
    pub fn empty_parts(&self) -> usize {
        self.parts.iter().filter(|p| p.units.is_empty()).count()
    }

    pub fn script_path(&self) -> PathBuf {
        self.dir.join(SCRIPT)
    }

    /// Writes the batch script (for the pending parts, each task running
    /// `exe`) and the job record.
    pub fn write(&self, exe: &Path) -> Result<(), JobError> {
        let script = self.script(exe);
        report::write_atomic(&self.script_path(), script.as_bytes()).map_err(|error| {
            JobError::Write {
                what: "the script",
                error,
            }
        })?;
        self.write_record()
    }

    fn write_record(&self) -> Result<(), JobError> {
        report::write_sealed_ron(&self.dir.join(RECORD), &self.record).map_err(|error| {
            JobError::Write {
                what: "the job record",
                error,
            }
        })
    }

    /// Submits the written script with `sbatch` and records the
    /// submission; the job id. With `wait`, returns when every task has ended.
    pub fn submit(&mut self, wait: bool) -> Result<String, JobError> {
        let id = submit(&self.script_path(), wait)?;
        self.record
            .submitted
            .push((id.clone(), self.pending.clone()));
        self.write_record()?;
        Ok(id)
    }

    /// The parts that have not run to their end now.
    pub fn unfinished(&self) -> Vec<usize> {
        (0..self.spec.shards)
            .filter(|&i| !finished(&self.dir, i, &self.hash))
            .collect()
    }

    /// Every part's run directory, by index.
    pub fn part_dirs(&self) -> Vec<PathBuf> {
        (0..self.spec.shards)
            .map(|i| part_dir(&self.dir, i))
            .collect()
    }

    /// The batch script: an array over the pending parts, each running its
    /// part of the experiment into `DIR/part-I` with `exe`.
    pub fn script(&self, exe: &Path) -> String {
        let args = &self.spec;
        let (plans, parts, pending) = (&self.plans, &self.parts, &self.pending);
        let (dir, source, hash) = (&self.dir, &self.source, &self.hash);
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
        let bytes = costs.iter().map(|c| c.bytes).fold(0.0, f64::max);
        // The slowest part's training at the measured rates, its seeds over
        // the task's CPUs; three times that and 15 minutes are asked for.
        let (rates, table) = (&self.rates.0, self.rates.0.describe(&self.rates.1));
        let estimate = parts
            .iter()
            .map(|p| rates.wall_seconds(&part_plans(p), args.cpus_per_task))
            .fold(0.0, f64::max);
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
            self.experiment,
            args.shards
        );
        let _ = writeln!(
            s,
            "# `mbrl slurm` rewrites it for the parts that have not finished; `mbrl merge {}` combines the parts.",
            dir.display()
        );
        let _ = writeln!(
            s,
            "# The largest part's training is estimated at ~{} on {} CPUs at the rates of {table}; the time asked for is {}.",
            super::rates::duration(estimate),
            args.cpus_per_task,
            match args.time {
                Some(_) => "as given (`--time`)",
                None => "3 x that + 15 min",
            }
        );
        let _ = writeln!(s, "#SBATCH --job-name=mbrl-{}", self.experiment);
        let _ = writeln!(s, "#SBATCH --array={}", ranges(pending));
        let _ = writeln!(s, "#SBATCH --cpus-per-task={}", args.cpus_per_task);
        let _ = writeln!(s, "#SBATCH --mem={mem_mib}M");
        let _ = writeln!(s, "#SBATCH --time={time}");
        let _ = writeln!(s, "#SBATCH --output={}/{LOGS}/part-%a.log", dir.display());
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
        s
    }
}

/// The job's record in `dir`: new, or the one there when it is this
/// experiment cut into as many parts.
fn job_record(
    spec: &JobSpec,
    exp: &CheckedExperiment,
    dir: &Path,
    source: &Path,
    hash: &str,
) -> Result<JobRecord, JobError> {
    match report::read_sealed_ron::<JobRecord>(&dir.join(RECORD), "a Slurm job record") {
        Ok(Some(record)) if record.hash == hash && record.shards == spec.shards => Ok(record),
        Ok(Some(record)) => Err(JobError::Changed(ChangedJob {
            dir: dir.display().to_string(),
            what: match record.hash == hash {
                true => format!(
                    "this experiment cut into {} parts, not {}",
                    record.shards, spec.shards
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
            shards: spec.shards,
            source: source.display().to_string(),
            scale: spec.scale,
            overrides: spec.overrides.clone(),
            submitted: Vec::new(),
        }),
        Err(ManifestError::Damaged(d)) => Err(JobError::DamagedRecord(DamagedFile {
            damaged: d,
            help: "nothing was changed; remove the job record to write the job again (finished parts are kept)".into(),
        })),
        Err(err) => Err(JobError::Record(err)),
    }
}

/// `0-3,5,7-8`.
pub fn ranges(indices: &[usize]) -> String {
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

/// Submits `script`; the job id. With `wait`, returns when every task has ended.
fn submit(script: &Path, wait: bool) -> Result<String, JobError> {
    let mut cmd = Command::new("sbatch");
    cmd.arg("--parsable");
    if wait {
        cmd.arg("--wait");
    }
    cmd.arg(script);
    let output = cmd.output().map_err(|e| {
        JobError::NoSbatch(NoSbatch {
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
        return Err(JobError::Rejected(Rejected {
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
