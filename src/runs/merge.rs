//! Merging the parts of a sharded run (`mbrl run --shard I/N`, or the
//! array tasks of a Slurm job) into one run directory: which directories
//! are parts (a job directory stands for its `part-*`, read through
//! [`super::job`]'s layout), where the merged run goes, and every refusal
//! of `report::merge` as a coded diagnostic.
//!
//! Invariants: prints nothing and draws no plots (the caller does);
//! the merge itself, and what it verifies, is `report::merge`'s.

use std::path::{Path, PathBuf};

pub use crate::report::merge::Merged;
use crate::report::merge::{self, MergeError};

use super::job::{self, Job};

/// Why parts were not merged. Nothing was written.
#[derive(Debug, thiserror::Error)]
pub enum MergeFailed {
    /// Every directory given was a job directory without parts yet.
    #[error("no parts to merge: no `part-*` directory has been written yet")]
    NoParts,
    /// No `--out`, and no job directory to merge into.
    #[error("say where the merged run goes with `--out DIR`")]
    NoOut,
    /// A job's parts that have not finished.
    #[error("parts {parts} did not finish (their logs are in `{logs}`); run this command again to resubmit them")]
    Unfinished { parts: String, logs: String },
    /// The parts were refused: `code` says why.
    #[error("{message}")]
    Refused {
        message: String,
        code: &'static str,
        help: String,
    },
    #[error("{0}")]
    Io(String),
}

impl miette::Diagnostic for MergeFailed {
    fn code<'a>(&'a self) -> Option<Box<dyn std::fmt::Display + 'a>> {
        match self {
            MergeFailed::Refused { code, .. } => Some(Box::new(*code)),
            _ => None,
        }
    }

    fn help<'a>(&'a self) -> Option<Box<dyn std::fmt::Display + 'a>> {
        match self {
            MergeFailed::Refused { help, .. } => Some(Box::new(help)),
            _ => None,
        }
    }
}

/// The directories to merge and where: each of `given` is a part, or a
/// job directory standing for its `part-*` (by index); the output is
/// `out`, or `merged/` in the first job directory given.
pub fn parts_and_out(
    given: &[PathBuf],
    out: Option<&Path>,
) -> Result<(Vec<PathBuf>, PathBuf), MergeFailed> {
    let mut dirs = Vec::new();
    let mut job_dir = None;
    for dir in given {
        match job::parts_in(dir) {
            Some(parts) => {
                job_dir.get_or_insert(dir.clone());
                dirs.extend(parts);
            }
            None => dirs.push(dir.clone()),
        }
    }
    if dirs.is_empty() {
        return Err(MergeFailed::NoParts);
    }
    let out = match (out, &job_dir) {
        (Some(out), _) => out.to_path_buf(),
        (None, Some(dir)) => dir.join(job::MERGED),
        (None, None) => return Err(MergeFailed::NoOut),
    };
    Ok((dirs, out))
}

/// Merges `dirs` into `out`, verified (see `report::merge`).
pub fn merge_into(dirs: &[PathBuf], out: &Path) -> Result<Merged, MergeFailed> {
    merge::merge(dirs, out).map_err(refused)
}

/// Merges a job's parts into `DIR/merged` once every one has finished.
pub fn merge_job(job: &Job) -> Result<Merged, MergeFailed> {
    let unfinished = job.unfinished();
    if !unfinished.is_empty() {
        return Err(MergeFailed::Unfinished {
            parts: job::ranges(&unfinished),
            logs: job.dir.join(job::LOGS).display().to_string(),
        });
    }
    merge_into(&job.part_dirs(), &job.dir.join(job::MERGED))
}

/// A merge refusal with its code; an IO error in words.
fn refused(err: MergeError) -> MergeFailed {
    let message = err.to_string();
    let (code, help) = match &err {
        MergeError::NotAPart { .. } => (
            "mbrl::merge::not_a_part",
            "give the directories `mbrl run --shard I/N --out DIR` wrote, or the directory `mbrl slurm` wrote".to_string(),
        ),
        MergeError::Damaged(_) => (
            "mbrl::merge::damaged_part",
            "nothing was written. Run that part again with the same command (`mbrl run ... --shard I/N --out PART`; add `--recompute-damaged` for a damaged checkpoint), or resubmit it with `mbrl slurm FILE --submit`".to_string(),
        ),
        MergeError::Foreign { .. } => (
            "mbrl::merge::foreign_part",
            "merge only the parts of one experiment, cut into the same number of parts".to_string(),
        ),
        MergeError::Overlapping { .. } => (
            "mbrl::merge::overlapping_parts",
            "give each part once: remove the copy".to_string(),
        ),
        MergeError::Missing { .. } => (
            "mbrl::merge::missing_part",
            "run the missing parts (`mbrl run FILE --shard I/N --out PART`), or resubmit with `mbrl slurm FILE --submit`, which submits only the parts that have not finished".to_string(),
        ),
        MergeError::Unfinished { .. } => (
            "mbrl::merge::unfinished_part",
            "wait for it to end, or resume it: the same `mbrl run` command continues from its checkpoints (`mbrl slurm FILE --submit` resubmits unfinished parts)".to_string(),
        ),
        MergeError::InUse { .. } => (
            "mbrl::run::locked",
            "a part still running cannot be merged; wait for it to end".to_string(),
        ),
        MergeError::Merging { .. } => (
            "mbrl::run::locked",
            "another `mbrl merge` is reading these parts or writing this output; wait for it to end (it writes the same run)".to_string(),
        ),
        MergeError::MissingCheckpoints { .. } => (
            "mbrl::merge::missing_checkpoint",
            "nothing was written. Restore the files from a copy, or run that part again into a new directory (`mbrl run ... --shard I/N --out PART`)".to_string(),
        ),
        MergeError::Occupied { .. } => (
            "mbrl::merge::occupied_out",
            "choose another `--out`, or remove the directory".to_string(),
        ),
        MergeError::Io(why) => return MergeFailed::Io(why.clone()),
    };
    MergeFailed::Refused {
        message,
        code,
        help,
    }
}
