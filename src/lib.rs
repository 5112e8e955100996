//! mbrl: a declarative experiment language for model-based RL.
//!
//! The pipeline, one module per stage, in reading order:
//! - `syntax`: `.exp` text to an AST whose nodes carry spans (pest);
//! - `resolve`: imports, scopes and `--set` overrides;
//! - `check`: schema, types, units, ranges, shapes and cross-field rules,
//!   the grid expanded into cells; every diagnostic in one pass;
//! - `graph`: each cell's dataflow graph (petgraph), whose nodes carry every
//!   setting the runtime will use: the intermediate form;
//! - `compile`: a cell's graph to a `Plan` (env, evaluation protocol,
//!   schedule, agent plan), the only bridge from the language to the runtime;
//! - `runtime`: the driver (seed shards and groups, schedule, evaluation,
//!   losses, checkpoints, resume) runs one learner per agent kind;
//! - `report`: run directories (manifest, metrics, sealed checkpoints,
//!   locks, merge) and plots: formats, writes and verifies, runs nothing;
//! - `runs`: the library API of a run: a run directory opened (created or
//!   resumed, locked, its checkpoints verified), cells run and resumed into
//!   it, the parts of a sharded run merged, the Slurm job directory (layout,
//!   record, script, `sbatch`); typed errors with the codes `mbrl` shows.
//!
//! Beside them, `kinds`: the registry of agent kinds (`dqn`, `slbo`,
//! `random`), one folder per kind with its schema entry, check rules,
//! lowering, typed plan and learner. The stages know no kind by name: they
//! look the agent's constructor up there, and each kind's code uses the
//! stages' building blocks.
//!
//! Below them, the building blocks every stage may use: `schema` (the
//! registry of block kinds and fields), `diagnostics`, `source`, `stdlib`,
//! `envs` (seed-batched environments), `tensor` (numeric kernels on dfdx)
//! and `seeds` (counter-based random streams). `cli` parses arguments, calls
//! `runs` and the stages, and renders what they return: it is the only
//! module that prints or chooses exit codes. No module imports a stage above
//! it.

pub mod autodiff;
pub mod check;
pub mod cli;
pub mod compile;
pub mod diagnostics;
pub mod envs;
pub mod graph;
pub mod kinds;
pub mod report;
pub mod resolve;
pub mod runs;
pub mod runtime;
pub mod schema;
pub mod seeds;
pub mod source;
pub mod stdlib;
pub mod syntax;
pub mod tensor;

use std::path::Path;

use crate::diagnostics::Diag;
use crate::resolve::Loader;
use crate::source::{Origin, SourceMap};

/// Everything `mbrl check` produces for one file.
pub struct CheckOutput {
    pub sources: SourceMap,
    /// `None` when the file did not parse.
    pub checked: Option<check::Checked>,
    pub diags: Vec<Diag>,
}

impl CheckOutput {
    /// The checked file of an output without errors (which always parsed).
    ///
    /// # Panics
    /// On an output with errors: callers check [`CheckOutput::has_errors`] first.
    pub fn clean(&self) -> &check::Checked {
        assert!(!self.has_errors(), "clean() on a file with errors");
        self.checked
            .as_ref()
            .expect("no errors means the file parsed")
    }

    pub fn has_errors(&self) -> bool {
        self.diags.iter().any(Diag::is_error)
    }
}

/// Runs syntax, resolve and check on one file's text.
pub fn check_source(
    origin: Origin,
    text: String,
    overrides: &[String],
    loader: &dyn Loader,
) -> CheckOutput {
    let mut diags = Vec::new();
    let Some(program) =
        resolve::resolve(origin.clone(), text.clone(), overrides, loader, &mut diags)
    else {
        let mut sources = SourceMap::new();
        sources.add(origin, text);
        return CheckOutput {
            sources,
            checked: None,
            diags,
        };
    };
    let (checked, check_diags) = check::check(&program);
    diags.extend(check_diags);
    diagnostics::sort(&mut diags);
    CheckOutput {
        sources: program.sources,
        checked: Some(checked),
        diags,
    }
}

/// Checks a file's bytes: UTF-8 text (a leading byte-order mark is
/// dropped), or one `mbrl::syntax::invalid_utf8` diagnostic at the first
/// byte that is not.
pub fn check_bytes(
    origin: Origin,
    bytes: Vec<u8>,
    overrides: &[String],
    loader: &dyn Loader,
) -> CheckOutput {
    let err = match String::from_utf8(bytes) {
        Ok(text) => return check_source(origin, text, overrides, loader),
        Err(err) => err,
    };
    let at = err.utf8_error().valid_up_to();
    let bytes = err.into_bytes();
    let byte = bytes[at];
    // The text as shown: the valid prefix is unchanged, so the offset holds.
    let text = String::from_utf8_lossy(&bytes).into_owned();
    let mut sources = SourceMap::new();
    let file = sources.add(origin, text);
    let msg =
        format!("the file is not UTF-8 text: byte 0x{byte:02X} at offset {at} is not valid UTF-8");
    let span = source::Span::new(file, at..at + '\u{fffd}'.len_utf8());
    let diag = Diag::error(diagnostics::Code::InvalidUtf8, msg, span, "not UTF-8")
        .with_help("save the file as UTF-8 (experiment files are text)");
    CheckOutput {
        sources,
        checked: None,
        diags: vec![diag],
    }
}

/// Reads and checks a file from disk (see [`check_bytes`]).
pub fn check_file(path: &Path, overrides: &[String]) -> std::io::Result<CheckOutput> {
    let bytes = std::fs::read(path)?;
    Ok(check_bytes(
        Origin::Path(path.to_path_buf()),
        bytes,
        overrides,
        &resolve::FsLoader,
    ))
}
