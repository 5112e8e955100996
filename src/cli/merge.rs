//! `mbrl merge PART... [--out DIR]`: combines the parts of a sharded run
//! (`mbrl run --shard I/N`, or the array tasks of `mbrl slurm`) into one
//! run directory, verified, then plots it. A directory written by
//! `mbrl slurm` stands for its `part-*` directories and merges into its
//! `merged/`.
//!
//! Which directories are parts and the merge are `crate::runs::merge`'s;
//! this file prints what was merged and plots it.

use std::path::PathBuf;

use clap::Args;

use crate::runs::merge::{self, Merged};

#[derive(Args)]
pub struct MergeArgs {
    /// Part directories, or a directory written by `mbrl slurm` (its `part-*`).
    #[arg(required = true)]
    pub parts: Vec<PathBuf>,
    /// The merged run directory (default: `merged/` in the `mbrl slurm` directory).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Exit with status 1 when a claim (`expect`) fails.
    #[arg(long)]
    pub strict: bool,
}

pub fn run(args: &MergeArgs) -> u8 {
    let (dirs, out) = match merge::parts_and_out(&args.parts, args.out.as_deref()) {
        Ok(found) => found,
        Err(err) => return super::show(err),
    };
    match merge::merge_into(&dirs, &out) {
        Ok(merged) => {
            report(&merged);
            super::finish(&out, args.strict)
        }
        Err(err) => super::show(err),
    }
}

/// Prints what was merged.
pub fn report(merged: &Merged) {
    if merged.resumed {
        outln!(
            "resuming the merge into {} that was stopped halfway",
            merged.dir.display()
        );
    }
    outln!(
        "merged {} parts of `{}` into {}: {} metric rows, {} checkpoints",
        merged.parts,
        merged.manifest.experiment,
        merged.dir.display(),
        merged.rows,
        merged.checkpoints
    );
}
