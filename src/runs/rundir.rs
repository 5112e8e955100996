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
use crate::report::claims::Claim;
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
    /// `--out` is a file, cannot be written, or has a name too long.
    #[error(transparent)]
    #[diagnostic(transparent)]
    Unusable(UnusableOut),
    /// `--out` holds files and no run.
    #[error(transparent)]
    #[diagnostic(transparent)]
    Occupied(OccupiedOut),
    #[error(transparent)]
    #[diagnostic(transparent)]
    Locked(Locked),
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
        None => fresh_dir(&default_base(&exp.name, &hash)),
    };
    if dir.exists() && !dir.is_dir() {
        let error = std::io::Error::from(std::io::ErrorKind::NotADirectory);
        return Err(OpenError::Unusable(UnusableOut::new(&dir, error)));
    }
    // Checked before anything is written: the lock would write `RUN/lock`.
    match report::occupants(&dir) {
        Ok(names) if names.is_empty() => (),
        Ok(names) => {
            return Err(OpenError::Occupied(OccupiedOut {
                dir: dir.display().to_string(),
                names: names
                    .iter()
                    .map(|n| format!("`{n}`"))
                    .collect::<Vec<_>>()
                    .join(", "),
            }))
        }
        Err(error) => return Err(OpenError::Unusable(UnusableOut::new(&dir, error))),
    }
    if let Err(error) = std::fs::create_dir_all(&dir) {
        return Err(OpenError::Unusable(UnusableOut::new(&dir, error)));
    }
    let lock = lock::lock(&dir).map_err(|err| match err {
        LockError::Held { dir, holder } => OpenError::Locked(Locked {
            help: lock::holder_help(&holder),
            dir,
            holder,
        }),
        LockError::Io(_, e) => OpenError::Unusable(UnusableOut::new(&dir, e)),
    })?;
    // No other run writes here now: what a killed one left half-written goes.
    report::remove_orphaned_temporaries(&dir);
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
            previous_hash: previous.hash.clone(),
            help: format!("resuming needs the experiment the run started with; choose another `--out` to run this one, or restore the file (and the `--set` options the run started with, if any) ({what})"),
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
        budgets: plans.iter().map(Plan::env_steps).collect(),
        claims: exp.claims.clone(),
        scored: plans
            .iter()
            .map(|p| p.protocol.metric.describe().to_string())
            .collect(),
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
                    return Err(OpenError::ForeignCheckpoint(ForeignCheckpoint::new(why)))
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
#[diagnostic(code(mbrl::run::changed_experiment), help("{help}"))]
pub struct ChangedExperiment {
    pub dir: String,
    /// What differs, in words.
    pub what: String,
    /// What to do ([`ChangedExperiment::by_overrides`] rewrites it).
    pub help: String,
    /// The identity of the experiment the directory holds.
    pub previous_hash: String,
    #[source_code]
    source_code: miette::NamedSource<String>,
    #[label("this experiment differs from the one in `{dir}`")]
    span: miette::SourceSpan,
}

impl ChangedExperiment {
    /// The file as it is would resume the run: the `--set` options
    /// `overrides` make the difference.
    pub fn by_overrides(mut self, overrides: &[String]) -> ChangedExperiment {
        let sets: Vec<String> = overrides.iter().map(|o| format!("`--set {o}`")).collect();
        self.help = format!(
            "the file still holds the experiment the run started with; {} changed it ({}): drop or change the `--set` to resume this run, or choose another `--out` to run this one",
            sets.join(", "),
            self.what
        );
        self
    }
}

/// Another process uses the run directory.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
#[error("`{dir}` is in use by {holder}")]
#[diagnostic(code(mbrl::run::locked), help("{help}"))]
pub struct Locked {
    pub dir: String,
    pub holder: String,
    /// How to tell the holder is alive, and what to do.
    pub help: String,
}

/// `--out` cannot be a run directory: a file, a place this user cannot
/// write, a name too long.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
#[error("cannot use `{dir}` as a run directory: {why}")]
#[diagnostic(code(mbrl::run::unusable_out), help("{help}"))]
pub struct UnusableOut {
    pub dir: String,
    pub why: String,
    pub help: String,
}

impl UnusableOut {
    /// Why `dir` could not be created, locked or written, and what to do.
    pub fn new(dir: &Path, error: std::io::Error) -> UnusableOut {
        use std::io::ErrorKind as K;
        let shown = dir.display().to_string();
        let (why, help) = match error.kind() {
            _ if dir.exists() && !dir.is_dir() => (
                "it is a file, not a directory".to_string(),
                format!("`--out` names a directory (new, empty, or holding a run): choose another path, e.g. `{shown}.run`"),
            ),
            K::NotADirectory | K::AlreadyExists => (
                format!("a part of the path is a file, not a directory ({error})"),
                "`--out` names a directory: choose a path whose parents are directories".to_string(),
            ),
            K::PermissionDenied | K::ReadOnlyFilesystem => (
                format!("this user cannot write there ({error})"),
                "choose an `--out` in a directory you can write, or give yourself write permission there".to_string(),
            ),
            K::InvalidFilename => (
                format!("a name in the path is too long ({error})"),
                "choose a shorter `--out`: most filesystems allow names of at most 255 bytes".to_string(),
            ),
            _ => (error.to_string(), "choose another `--out`".to_string()),
        };
        UnusableOut {
            dir: shown,
            why,
            help,
        }
    }
}

/// `--out` holds something else than a run.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
#[error("`{dir}` is not empty and holds no run (it holds {names})")]
#[diagnostic(
    code(mbrl::run::occupied_out),
    help("nothing was changed. `--out` takes a new or empty directory, or one a run wrote; choose another `--out`, or move those files away")
)]
pub struct OccupiedOut {
    pub dir: String,
    /// What it holds, quoted and comma-separated.
    pub names: String,
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

/// An intact checkpoint of another experiment, or of this one's other
/// cell or seed group (moved, copied or swapped).
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
#[error("{why}")]
#[diagnostic(code(mbrl::run::foreign_checkpoint), help("{help}"))]
pub struct ForeignCheckpoint {
    pub why: String,
    pub help: &'static str,
}

impl ForeignCheckpoint {
    /// The refusal of the checkpoint `why` names, with the way out that fits.
    pub fn new(why: String) -> ForeignCheckpoint {
        let help = match why.contains(sealed::MISPLACED) {
            true => "nothing was changed. The file was moved, copied or swapped within this run: put it back where its cell and seed group belong (`checkpoints/cell-CELL/GROUP.bin`), or move it out of `checkpoints` to train its seeds again",
            false => "the directory holds another experiment's checkpoints; choose another `--out` for this one",
        };
        ForeignCheckpoint { why, help }
    }
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

/// `runs/EXPERIMENT-HASH`: a run's default directory (HASH: the first 8
/// hex digits of its identity).
fn default_base(name: &str, hash: &str) -> String {
    format!("runs/{name}-{}", &hash[..hash.len().min(8)])
}

/// The default directory already holds this experiment's finished run
/// (see [`default_dir`]).
#[derive(Debug, thiserror::Error)]
#[error("`{}` holds a finished run of this experiment", dir.display())]
pub struct FinishedRun {
    pub dir: PathBuf,
}

/// Where a run of the experiment `name` with identity `hash` goes without
/// `--out`: the last of `runs/NAME-HASH`, `runs/NAME-HASH-2`, ... that
/// exists (or the first, when none does), so that the same command again
/// resumes the run it started. When that one holds this experiment's run
/// (of `part`) to its end, [`FinishedRun`]; with `fresh`, the next new one
/// instead.
pub fn default_dir(
    name: &str,
    hash: &str,
    part: &Option<report::Part>,
    fresh: bool,
) -> Result<PathBuf, FinishedRun> {
    let base = default_base(name, hash);
    if fresh {
        return Ok(fresh_dir(&base));
    }
    let mut last = PathBuf::from(&base);
    for n in 2.. {
        let next = PathBuf::from(format!("{base}-{n}"));
        if !next.exists() {
            break;
        }
        last = next;
    }
    match report::read_manifest(&last) {
        Ok(Some(m)) if m.finished && m.hash == hash && m.part == *part => {
            Err(FinishedRun { dir: last })
        }
        // Anything else is for `open` to resume or refuse.
        _ => Ok(last),
    }
}

/// Restates the claims a finished run is checked against: `claims` (those
/// of the experiment file as it reads now) replace the manifest's when they
/// differ, under the run's lock. Claims are not part of a run's identity,
/// so a claim written after the run is checked on its results without
/// running anything again. Returns whether the claims changed.
pub fn restate_claims(dir: &Path, claims: &[Claim]) -> Result<bool, String> {
    let _lock = lock::lock(dir).map_err(|e| e.to_string())?;
    let mut manifest = match report::read_manifest(dir) {
        Ok(Some(m)) => m,
        Ok(None) => return Err(format!("`{}` has no manifest", dir.display())),
        Err(e) => return Err(e.to_string()),
    };
    if manifest.claims == claims {
        return Ok(false);
    }
    manifest.claims = claims.to_vec();
    report::write_manifest(dir, &manifest)
        .map_err(|e| format!("cannot write the manifest of `{}`: {e}", dir.display()))?;
    Ok(true)
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
