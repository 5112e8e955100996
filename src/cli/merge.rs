//! `mbrl merge PART... [--out DIR]`: combines the parts of a sharded run
//! (`mbrl run --shard I/N`, or the array tasks of `mbrl slurm`) into one
//! run directory, verified, then plots it. A directory written by
//! `mbrl slurm` stands for its `part-*` directories and merges into its
//! `merged/`.

use std::path::{Path, PathBuf};

use clap::Args;

use crate::report::merge::{self, MergeError};

#[derive(Args)]
pub struct MergeArgs {
    /// Part directories, or a directory written by `mbrl slurm` (its `part-*`).
    #[arg(required = true)]
    pub parts: Vec<PathBuf>,
    /// The merged run directory (default: `merged/` in the `mbrl slurm` directory).
    #[arg(long)]
    pub out: Option<PathBuf>,
}

/// The part directories a Slurm directory holds, by index; `None` when
/// `dir` is not one (it has a manifest, or no `part-*`).
pub fn slurm_parts(dir: &Path) -> Option<Vec<PathBuf>> {
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
    (!parts.is_empty() || dir.join(super::slurm::SCRIPT).exists())
        .then(|| parts.into_iter().map(|(_, p)| p).collect())
}

pub fn run(args: &MergeArgs) -> u8 {
    let mut dirs = Vec::new();
    let mut slurm_dir = None;
    for dir in &args.parts {
        match slurm_parts(dir) {
            Some(parts) => {
                slurm_dir.get_or_insert(dir.clone());
                dirs.extend(parts);
            }
            None => dirs.push(dir.clone()),
        }
    }
    if dirs.is_empty() {
        errln!("error: no parts to merge: no `part-*` directory has been written yet");
        return 2;
    }
    let out = match (&args.out, &slurm_dir) {
        (Some(out), _) => out.clone(),
        (None, Some(dir)) => dir.join("merged"),
        (None, None) => {
            errln!("error: say where the merged run goes with `--out DIR`");
            return 2;
        }
    };
    match merge_into(&dirs, &out) {
        Ok(()) => super::plot(&out),
        Err(code) => code,
    }
}

/// Merges `dirs` into `out`, reporting what was merged or why not.
pub fn merge_into(dirs: &[PathBuf], out: &Path) -> Result<(), u8> {
    match merge::merge(dirs, out) {
        Ok(merged) => {
            outln!(
                "merged {} parts of `{}` into {}: {} metric rows, {} checkpoints",
                merged.parts,
                merged.manifest.experiment,
                merged.dir.display(),
                merged.rows,
                merged.checkpoints
            );
            Ok(())
        }
        Err(err) => match diagnostic(err) {
            Ok(refused) => Err(super::rundir::show(refused)),
            Err(why) => {
                errln!("error: {why}");
                Err(2)
            }
        },
    }
}

/// A merge refusal as a coded diagnostic; an IO error in words.
fn diagnostic(err: MergeError) -> Result<Refused, String> {
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
        MergeError::Occupied { .. } => (
            "mbrl::merge::occupied_out",
            "choose another `--out`, or remove the directory".to_string(),
        ),
        MergeError::Io(why) => return Err(why.clone()),
    };
    Ok(Refused {
        message,
        code,
        help,
    })
}

/// A refused merge.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
struct Refused {
    message: String,
    code: &'static str,
    help: String,
}

impl miette::Diagnostic for Refused {
    fn code<'a>(&'a self) -> Option<Box<dyn std::fmt::Display + 'a>> {
        Some(Box::new(self.code))
    }

    fn help<'a>(&'a self) -> Option<Box<dyn std::fmt::Display + 'a>> {
        Some(Box::new(&self.help))
    }
}
