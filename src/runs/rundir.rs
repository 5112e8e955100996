//! A run directory as a run uses it: opened for one experiment (identified
//! by its name and compiled plans, not by how it is written), locked for
//! this process, its manifest verified and rewritten, and its checkpoints
//! sealed with their identity and checksum and verified before anything
//! changes. Every refusal is a typed error ([`OpenError`]) whose coded
//! diagnostics name the file and the way out.
//!
//! Invariants: prints nothing; what it moves aside (`--recompute-damaged`)
//! it tells the caller's [`Watch`]. Runs nothing: [`super::cells`] does.

use std::path::{Path, PathBuf};

use crate::check::CheckedExperiment;
use crate::compile::Plan;
use crate::report::lock::{self, LockError, RunLock};
use crate::report::sealed::{self, Identity, Unsealed};
use crate::report::{self, Manifest, ManifestError};
use crate::runtime::driver::{Checkpoints, LoadError};

use super::watch::{MovedAside, Watch};

/// A run directory opened for one experiment.
pub struct RunDir {
    pub dir: PathBuf,
    pub threads: usize,
    /// It held a run of this experiment already.
    pub resuming: bool,
    /// The experiment's identity: checkpoints and metrics carry it.
    pub hash: String,
    /// Damaged checkpoints are moved aside and their seeds trained again.
    pub recompute: bool,
    manifest: Manifest,
    _lock: RunLock,
}

impl RunDir {
    /// Records in the manifest that every cell ran to its end, and the
    /// checkpoints the directory holds (what a merge of a part must find).
    pub fn finish(&self) -> std::io::Result<()> {
        let manifest = Manifest {
            finished: true,
            checkpoints: Some(report::checkpoints_in(&self.dir)?),
            ..self.manifest.clone()
        };
        report::write_manifest(&self.dir, &manifest)
    }

    /// The checkpoints of `cell` in this directory.
    pub fn checkpoints<'a>(&self, cell: usize, watch: &'a dyn Watch) -> CellCheckpoints<'a> {
        CellCheckpoints {
            dir: self.dir.join("checkpoints").join(format!("cell-{cell}")),
            experiment: self.hash.clone(),
            cell,
            recompute: self.recompute,
            watch,
        }
    }
}

/// An experiment's identity: a hash of the canonical text (field names and
/// values, [`crate::compile::canonical`]) of its name and of what its cells
/// compile to (seeds, envs, protocols, schedules at `--scale`, each agent's
/// kind and typed plan), so that the same values written differently are the
/// same experiment.
///
/// The identity may change only when what a run computes changes (a plan
/// field added or given another meaning, a default that changes results);
/// a change of wording, of field order in the source or of a Rust type's
/// name leaves it alone. `runs::identity_of_the_quickstart_is_pinned` holds
/// it: a change that moves it must say so in its commit, as it makes every
/// unfinished run refuse to resume (`mbrl::run::changed_experiment`).
pub fn identity(exp: &CheckedExperiment, plans: &[Plan]) -> String {
    #[derive(serde::Serialize)]
    struct Identity<'a> {
        experiment: &'a str,
        cells: &'a [Plan],
    }
    let identity = Identity {
        experiment: &exp.name,
        cells: plans,
    };
    report::hash(&crate::compile::canonical(&identity))
}

/// What a run directory is opened for.
pub struct Opening<'a> {
    pub out_dir: Option<&'a Path>,
    pub threads: Option<usize>,
    pub source: &'a Path,
    pub scale: f64,
    pub recompute: bool,
    /// The experiment's identity ([`identity`] of all its cells' plans).
    pub hash: String,
    /// The part of a sharded run this directory holds.
    pub part: Option<report::Part>,
}

/// Why a run directory cannot be opened. Nothing in it was changed (but
/// what `recompute` moved aside, which the watch was told of).
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum OpenError {
    #[error("cannot create `{dir}`: {error}")]
    Create { dir: String, error: std::io::Error },
    #[error(transparent)]
    #[diagnostic(transparent)]
    Locked(Locked),
    #[error("cannot lock `{0}`: {1}")]
    Lock(String, std::io::Error),
    #[error(transparent)]
    #[diagnostic(transparent)]
    DamagedFile(DamagedFile),
    #[error("{0}")]
    Manifest(ManifestError),
    /// The directory holds another experiment, or another part of this one.
    #[error(transparent)]
    #[diagnostic(transparent)]
    Changed(Box<ChangedExperiment>),
    /// What the manifest records besides the run could not be computed.
    #[error("{0}")]
    Extra(String),
    #[error(transparent)]
    #[diagnostic(transparent)]
    DamagedCheckpoint(DamagedCheckpoint),
    #[error(transparent)]
    #[diagnostic(transparent)]
    ForeignCheckpoint(ForeignCheckpoint),
    /// A checkpoint could not be read or moved aside.
    #[error("{0}")]
    Checkpoint(String),
    #[error("cannot write the manifest: {0}")]
    WriteManifest(std::io::Error),
}

/// The run directory: `--out`, or a fresh one named after the experiment.
/// An existing one must hold this experiment (and the same part of it;
/// else [`OpenError::Changed`]) and not be in use; its checkpoints are
/// verified, then its manifest is written. `plans` holds every cell of the
/// experiment; `manifest_extra` adds what the manifest records besides the
/// run (see [`super::references::manifest_extra`]).
pub fn open(
    opening: Opening,
    out: &crate::CheckOutput,
    exp: &CheckedExperiment,
    plans: &[Plan],
    manifest_extra: impl FnOnce(&mut Manifest) -> Result<(), String>,
    watch: &dyn Watch,
) -> Result<RunDir, OpenError> {
    let Opening {
        out_dir,
        threads,
        source,
        scale,
        recompute,
        hash,
        part,
    } = opening;
    let cells = cell_lines(exp);
    let dir = match out_dir {
        Some(dir) => dir.to_path_buf(),
        None => fresh_dir(&format!("runs/{}-{}", exp.name, &hash[..8])),
    };
    if let Err(error) = std::fs::create_dir_all(&dir) {
        return Err(OpenError::Create {
            dir: dir.display().to_string(),
            error,
        });
    }
    let lock = lock::lock(&dir).map_err(|err| match err {
        LockError::Held { dir, holder } => OpenError::Locked(Locked { dir, holder }),
        LockError::Io(path, e) => OpenError::Lock(path, e),
    })?;
    let previous = match report::read_manifest(&dir) {
        Ok(previous) => previous,
        Err(ManifestError::Damaged(d)) => {
            return Err(OpenError::DamagedFile(DamagedFile::manifest(d)))
        }
        Err(err) => return Err(OpenError::Manifest(err)),
    };
    if let Some(previous) = previous
        .as_ref()
        .filter(|p| p.hash != hash || p.part != part)
    {
        let what = match previous.hash == hash {
            true => format!(
                "it holds {}, this is {}",
                part_name(&previous.part),
                part_name(&part)
            ),
            false => changed_part(previous, &cells, exp, scale),
        };
        let file = out.sources.get(exp.span.file);
        return Err(OpenError::Changed(Box::new(ChangedExperiment {
            dir: dir.display().to_string(),
            what,
            source_code: miette::NamedSource::new(file.name(), file.text.clone()),
            span: exp.span.range().into(),
        })));
    }
    // A resumed run keeps its thread count: on the GPU it decides how seeds are grouped.
    let threads = threads
        .or(previous.as_ref().map(|p| p.threads))
        .unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1)
        });
    let mut manifest = Manifest {
        source: source.display().to_string(),
        hash: hash.clone(),
        threads,
        scale,
        part,
        ..manifest_for(exp, cells, plans)
    };
    manifest_extra(&mut manifest).map_err(OpenError::Extra)?;
    let run = RunDir {
        dir,
        threads,
        resuming: previous.is_some(),
        hash,
        recompute,
        manifest: manifest.clone(),
        _lock: lock,
    };
    // Checkpoints are verified before the manifest claims the directory.
    verify_checkpoints(&run, plans.len(), watch)?;
    report::write_manifest(&run.dir, &manifest).map_err(OpenError::WriteManifest)?;
    Ok(run)
}

/// One line per cell: its coordinates and every resolved env and agent field.
fn cell_lines(exp: &CheckedExperiment) -> Vec<String> {
    exp.cells
        .iter()
        .map(|c| {
            format!(
                "{} env={} agent={}",
                c.label(),
                c.env.describe(),
                c.agent.describe()
            )
        })
        .collect()
}

/// The manifest of a fresh, unfinished run of `exp` (the caller sets the
/// source, hash, threads, scale and part).
fn manifest_for(exp: &CheckedExperiment, cells: Vec<String>, plans: &[Plan]) -> Manifest {
    Manifest {
        experiment: exp.name.clone(),
        source: String::new(),
        hash: String::new(),
        mbrl_version: env!("CARGO_PKG_VERSION").to_string(),
        device: device_name(),
        host: std::fs::read_to_string("/etc/hostname")
            .map(|h| h.trim().to_string())
            .unwrap_or_default(),
        threads: 1,
        seeds: exp.seeds,
        scale: 1.0,
        cells,
        coords: exp.cells.iter().map(|c| c.coords.clone()).collect(),
        report: Default::default(),
        updates: plans.iter().map(Plan::updates_per_step).collect(),
        references: Vec::new(),
        metrics: plans
            .iter()
            .map(|p| p.metrics().iter().map(|n| n.to_string()).collect())
            .collect(),
        part: None,
        finished: false,
        checkpoints: None,
    }
}

/// `part 2 of 4`, or `the whole experiment`.
fn part_name(part: &Option<report::Part>) -> String {
    match part {
        Some(p) => format!("part {} of {}", p.index, p.count),
        None => "the whole experiment".into(),
    }
}

/// Checkpoints of one cell under `RUN/checkpoints/cell-N/`, sealed with
/// the run's identity and written atomically. With `recompute`, a damaged
/// one is moved aside (`*.damaged`, the watch told) and its seeds start
/// again.
pub struct CellCheckpoints<'a> {
    pub dir: PathBuf,
    pub experiment: String,
    pub cell: usize,
    pub recompute: bool,
    pub watch: &'a dyn Watch,
}

impl CellCheckpoints<'_> {
    fn identity(&self, key: &str) -> Identity {
        Identity {
            experiment: self.experiment.clone(),
            cell: self.cell,
            key: key.to_string(),
        }
    }

    fn path(&self, key: &str) -> PathBuf {
        self.dir.join(format!("{key}.bin"))
    }
}

/// Verifies every checkpoint of the run before any cell runs, so that a
/// damaged or foreign one is refused before anything changes (with
/// `recompute`, damaged ones are moved aside now).
fn verify_checkpoints(run: &RunDir, cells: usize, watch: &dyn Watch) -> Result<(), OpenError> {
    for cell in 0..cells {
        let store = run.checkpoints(cell, watch);
        let Ok(keys) = sealed::keys(&store.dir) else {
            continue;
        };
        for key in keys {
            match store.load(&key) {
                Ok(_) => (),
                Err(LoadError::Damaged(why)) => {
                    return Err(OpenError::DamagedCheckpoint(DamagedCheckpoint { why }))
                }
                Err(LoadError::Foreign(why)) => {
                    return Err(OpenError::ForeignCheckpoint(ForeignCheckpoint { why }))
                }
                Err(LoadError::Io(why)) => return Err(OpenError::Checkpoint(why)),
            }
        }
    }
    Ok(())
}

impl Checkpoints for CellCheckpoints<'_> {
    fn load(&self, key: &str) -> Result<Option<Vec<u8>>, LoadError> {
        let path = self.path(key);
        let bytes = match std::fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => {
                return Err(LoadError::Io(format!(
                    "cannot read `{}`: {e}",
                    path.display()
                )))
            }
        };
        let named = |why: String| format!("checkpoint `{}` {why}", path.display());
        match sealed::unseal(&bytes, &self.identity(key)) {
            Ok(payload) => Ok(Some(payload.to_vec())),
            Err(Unsealed::Damaged(why)) if self.recompute => {
                let aside = path.with_extension("bin.damaged");
                std::fs::rename(&path, &aside).map_err(|e| {
                    LoadError::Io(format!("cannot move `{}` aside: {e}", path.display()))
                })?;
                self.watch.moved_aside(&MovedAside {
                    why: named(why),
                    aside,
                });
                Ok(None)
            }
            Err(Unsealed::Damaged(why)) => Err(LoadError::Damaged(named(why))),
            Err(Unsealed::Foreign(why)) => Err(LoadError::Foreign(named(why))),
        }
    }

    fn save(&self, key: &str, bytes: &[u8]) -> std::io::Result<()> {
        std::fs::create_dir_all(&self.dir)?;
        let sealed = sealed::seal(&self.identity(key), bytes);
        report::write_atomic(&self.path(key), &sealed)
    }
}

/// Rerunning on a directory that holds a run of another experiment.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
#[error("`{dir}` holds a run of a different experiment")]
#[diagnostic(
    code(mbrl::run::changed_experiment),
    help("resuming needs the experiment the run started with; choose another `--out` to run this one, or restore the file ({what})")
)]
pub struct ChangedExperiment {
    pub dir: String,
    /// What differs, in words.
    pub what: String,
    #[source_code]
    source_code: miette::NamedSource<String>,
    #[label("this experiment differs from the one in `{dir}`")]
    span: miette::SourceSpan,
}

/// Another process uses the run directory.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
#[error("`{dir}` is in use by {holder}")]
#[diagnostic(
    code(mbrl::run::locked),
    help("wait for that run to end (or stop it with Ctrl-C), or choose another `--out`")
)]
pub struct Locked {
    pub dir: String,
    pub holder: String,
}

/// A checkpoint failed its verification.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
#[error("{why}")]
#[diagnostic(
    code(mbrl::run::damaged_checkpoint),
    help("nothing was changed. Rerun with `--recompute-damaged` to move the damaged checkpoint aside and train its seeds again from the start (the other seeds and cells are kept), or restore the file from a copy")
)]
pub struct DamagedCheckpoint {
    pub why: String,
}

/// An intact checkpoint of another experiment.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
#[error("{why}")]
#[diagnostic(
    code(mbrl::run::foreign_checkpoint),
    help(
        "the directory holds another experiment's checkpoints; choose another `--out` for this one"
    )
)]
pub struct ForeignCheckpoint {
    pub why: String,
}

/// A manifest or metrics file failed its verification.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
#[error("{damaged}")]
#[diagnostic(code(mbrl::run::damaged_file), help("{help}"))]
pub struct DamagedFile {
    pub damaged: report::Damaged,
    pub help: String,
}

impl DamagedFile {
    pub fn manifest(damaged: report::Damaged) -> DamagedFile {
        DamagedFile {
            damaged,
            help:
                "nothing was changed; restore the manifest from a copy, or choose another `--out`"
                    .into(),
        }
    }

    pub fn metrics(damaged: report::Damaged) -> DamagedFile {
        DamagedFile {
            damaged,
            help: "rerun `mbrl run` with the same experiment and `--out`: it rewrites the metrics from the checkpoints".into(),
        }
    }
}

/// What differs between a run directory's experiment and this one, in words.
fn changed_part(
    previous: &Manifest,
    cells: &[String],
    exp: &CheckedExperiment,
    scale: f64,
) -> String {
    if previous.experiment != exp.name {
        return format!(
            "the experiment was named `{}`, now `{}`",
            previous.experiment, exp.name
        );
    }
    if previous.seeds != exp.seeds {
        return format!("seeds were {}, now {}", previous.seeds, exp.seeds);
    }
    if previous.scale != scale {
        return format!("`--scale` was {}, now {scale}", previous.scale);
    }
    if previous.cells.len() != cells.len() {
        return format!("{} cells, now {}", previous.cells.len(), cells.len());
    }
    for (i, (was, now)) in previous.cells.iter().zip(cells).enumerate() {
        if was != now {
            let split = |s: &str| -> Vec<String> {
                s.split([' ', ',', '{', '}'])
                    .filter(|t| !t.is_empty())
                    .map(str::to_string)
                    .collect()
            };
            let (a, b) = (split(was), split(now));
            let at = a.iter().zip(&b).take_while(|(x, y)| x == y).count();
            let token = |t: &[String]| t.get(at).cloned().unwrap_or_default();
            return format!("in cell {i}, `{}` is now `{}`", token(&a), token(&b));
        }
    }
    "the root seed, the compatibility mode or a resolved setting changed".to_string()
}

/// `base`, or `base-2`, `base-3`, ... : the first that does not exist yet.
fn fresh_dir(base: &str) -> PathBuf {
    let mut dir = PathBuf::from(base);
    let mut n = 2;
    while dir.exists() {
        dir = PathBuf::from(format!("{base}-{n}"));
        n += 1;
    }
    dir
}

/// The device runs use: `cuda:0` in a CUDA build, else `cpu`.
pub fn device_name() -> String {
    match cfg!(feature = "cuda") {
        true => "cuda:0".to_string(),
        false => "cpu".to_string(),
    }
}
