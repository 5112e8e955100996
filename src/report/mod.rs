//! Report: run directories. A manifest (`manifest.ron`: the resolved
//! experiment, its hash, the mbrl version, device and host), long-format
//! metrics (`metrics.csv`: `cell,seed,step,metric,value`, with its checksum
//! and identity in `metrics.sum`), sealed checkpoints ([`sealed`]) and the
//! directory's lock ([`lock`]). Every file is written atomically (a
//! temporary file beside it, fsync, rename; the temporary removed on
//! failure), and every file read back is verified before it is used.
//!
//! Invariants: formats, writes and verifies results; computes nothing that
//! changes them.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub mod claims;
pub mod lock;
pub mod merge;
pub mod plots;
pub mod sealed;
pub mod stats;
pub mod summary;

/// Why a run cannot be plotted or summarized (its plots and its report
/// read the same files).
#[derive(Debug, thiserror::Error)]
pub enum PlotError {
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    #[error("`{0}` has no manifest: it is not a run directory")]
    NoManifest(String),
    #[error(transparent)]
    Damaged(#[from] Damaged),
    #[error("the run has no evaluations yet")]
    Empty,
    #[error("cannot draw `{0}`: {1}")]
    Draw(String, String),
}

/// What a run directory records about its run.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Manifest {
    pub experiment: String,
    pub source: String,
    /// FNV-1a hash of the resolved cells, in hex: a changed experiment has another hash.
    pub hash: String,
    pub mbrl_version: String,
    pub device: String,
    pub host: String,
    pub threads: usize,
    pub seeds: u64,
    pub scale: f64,
    /// One line per cell: its coordinates and every resolved agent and env field.
    pub cells: Vec<String>,
    /// Each cell's grid coordinates, `(axis, value)`.
    pub coords: Vec<Vec<(String, String)>>,
    /// How `mbrl plot` draws the run (the experiment's `report` block).
    #[serde(default)]
    pub report: ReportSpec,
    /// Per cell, `(learning_starts, updates per env step)`: the gradient
    /// updates done by an env step, for `x: updates`.
    #[serde(default)]
    pub updates: Vec<(u64, f64)>,
    /// Per cell, the reference levels the report asks for: `(name, value)`.
    #[serde(default)]
    pub references: Vec<Vec<(String, f64)>>,
    /// Per cell, its metric names in the order a step's rows are written.
    #[serde(default)]
    pub metrics: Vec<Vec<String>>,
    /// Set when the directory holds one part of a sharded run.
    #[serde(default)]
    pub part: Option<Part>,
    /// Every cell ran to its end (written last, after the final metrics).
    #[serde(default)]
    pub finished: bool,
    /// The checkpoints the directory held when it finished, as `(cell, key)`
    /// (`checkpoints/cell-CELL/KEY.bin`): what a merge must find. `None`
    /// before the run finished (and in manifests of older versions).
    #[serde(default)]
    pub checkpoints: Option<Vec<(usize, String)>>,
    /// Per cell, the env steps it runs (after `--scale`): where a claim's
    /// `final(..)` window ends.
    #[serde(default)]
    pub budgets: Vec<u64>,
    /// The experiment's claims (`expect`), resolved against its cells.
    #[serde(default)]
    pub claims: Vec<claims::Claim>,
    /// Per cell, what its evaluation scores (`reward rate`, `episode return`): the plots' y axis.
    #[serde(default)]
    pub scored: Vec<String>,
}

/// The sealed checkpoints `dir` holds, as `(cell, key)`, by cell and key
/// (files set aside as damaged are not checkpoints).
pub fn checkpoints_in(dir: &Path) -> std::io::Result<Vec<(usize, String)>> {
    let root = dir.join("checkpoints");
    let entries = match std::fs::read_dir(&root) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut out = Vec::new();
    for entry in entries {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(cell) = name.strip_prefix("cell-").and_then(|c| c.parse().ok()) else {
            continue;
        };
        for key in sealed::keys(&entry.path())? {
            out.push((cell, key));
        }
    }
    out.sort();
    Ok(out)
}

/// One part of a sharded run: its index among `count` parts and the
/// `(cell, seed)` units it runs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Part {
    pub index: usize,
    pub count: usize,
    pub units: Vec<(usize, u64)>,
}

impl Part {
    /// Part `index` of `count` of an experiment whose cells have these
    /// seeds: the experiment's `(cell, seed)` units, cell by cell, cut into
    /// `count` contiguous runs of near-equal length.
    pub fn of(index: usize, count: usize, seeds: &[Vec<u64>]) -> Part {
        let units: Vec<(usize, u64)> = seeds
            .iter()
            .enumerate()
            .flat_map(|(cell, s)| s.iter().map(move |seed| (cell, *seed)))
            .collect();
        let (n, count_) = (units.len(), count.max(1));
        let (from, to) = (index * n / count_, (index + 1) * n / count_);
        Part {
            index,
            count,
            units: units[from..to].to_vec(),
        }
    }

    /// The seeds of `cell` this part runs.
    pub fn seeds_of(&self, cell: usize) -> Vec<u64> {
        self.units
            .iter()
            .filter(|(c, _)| *c == cell)
            .map(|(_, s)| *s)
            .collect()
    }
}

/// The `report` block, resolved: what `mbrl plot` draws.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ReportSpec {
    /// The y axis: `auto`, `eval_return` or `reward_rate`.
    pub metric: String,
    /// The x axis: `env_steps` or `updates`.
    pub x: String,
    pub band: Band,
    /// One panel per value of these axes; a line per value of the others.
    pub facet: Vec<String>,
    /// Moving-average window over evaluations (1: none).
    pub smooth: usize,
    /// Reference lines: `random`, `optimum`.
    #[serde(default)]
    pub lines: Vec<String>,
}

/// The uncertainty band over seeds.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub enum Band {
    /// Percentile bootstrap CI of the mean.
    Bootstrap { level: f64, resamples: usize },
    /// Mean plus and minus one standard error.
    Stderr,
}

impl Default for ReportSpec {
    /// The schema's defaults: a 95% bootstrap band, a panel per env and regime.
    fn default() -> ReportSpec {
        ReportSpec {
            metric: "auto".into(),
            x: "env_steps".into(),
            band: Band::Bootstrap {
                level: 0.95,
                resamples: 1000,
            },
            facet: vec!["env".into(), "regime".into()],
            smooth: 1,
            lines: Vec::new(),
        }
    }
}

/// One row of `metrics.csv`.
#[derive(Clone, Debug, PartialEq)]
pub struct MetricRow {
    pub cell: usize,
    pub seed: u64,
    pub step: u64,
    pub metric: String,
    pub value: f64,
}

/// 64-bit FNV-1a of `text`, in hex.
pub fn hash(text: &str) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in text.bytes() {
        h ^= byte as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("{h:016x}")
}

/// The format of the files this version writes; a reader refuses others.
pub const FORMAT: u32 = 1;

/// A file of a run directory that failed its verification.
#[derive(Debug, PartialEq, thiserror::Error)]
#[error("`{path}` {why}")]
pub struct Damaged {
    pub path: String,
    pub why: String,
}

fn damaged(path: &Path, why: impl Into<String>) -> Damaged {
    Damaged {
        path: path.display().to_string(),
        why: why.into(),
    }
}

/// The CRC-32 of `bytes`, in hex.
pub fn crc32(bytes: &[u8]) -> String {
    format!("{:08x}", crc32fast::hash(bytes))
}

/// The last line of `manifest.ron` (and other sealed RON files): a RON
/// comment with the CRC-32 of the text before it.
const MANIFEST_SEAL: &str = "// crc32 ";

pub fn write_manifest(dir: &Path, manifest: &Manifest) -> std::io::Result<()> {
    write_sealed_ron(&dir.join("manifest.ron"), manifest)
}

/// Writes `value` as RON with a last line holding the CRC-32 of the text
/// before it (a RON comment), atomically.
pub fn write_sealed_ron<T: Serialize>(path: &Path, value: &T) -> std::io::Result<()> {
    let config = ron::ser::PrettyConfig::new();
    let mut text = ron::ser::to_string_pretty(value, config).map_err(std::io::Error::other)?;
    text.push('\n');
    let seal = format!("{MANIFEST_SEAL}{}\n", crc32(text.as_bytes()));
    text.push_str(&seal);
    write_atomic(path, text.as_bytes())
}

/// Why a run directory's manifest cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("cannot read `{0}`: {1}")]
    Io(String, std::io::Error),
    #[error(transparent)]
    Damaged(#[from] Damaged),
}

/// The manifest of an existing run directory, if it has one, verified
/// against its checksum line.
pub fn read_manifest(dir: &Path) -> Result<Option<Manifest>, ManifestError> {
    read_sealed_ron(&dir.join("manifest.ron"), "a manifest")
}

/// The value [`write_sealed_ron`] wrote to `path`, if the file exists,
/// verified against its checksum line; `what` names it in errors.
pub fn read_sealed_ron<T: serde::de::DeserializeOwned>(
    path: &Path,
    what: &str,
) -> Result<Option<T>, ManifestError> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(ManifestError::Io(path.display().to_string(), e)),
    };
    let body_end = text.rfind(MANIFEST_SEAL).ok_or_else(|| {
        damaged(
            path,
            "has no checksum line: it was not written by this mbrl, or was cut short",
        )
    })?;
    let (body, seal) = text.split_at(body_end);
    let recorded = seal[MANIFEST_SEAL.len()..].trim();
    if recorded != crc32(body.as_bytes()) {
        return Err(damaged(
            path,
            "does not match its checksum: it was changed or damaged",
        )
        .into());
    }
    ron::from_str(body)
        .map(Some)
        .map_err(|e| damaged(path, format!("is not {what} ({e})")).into())
}

/// `metrics.csv`'s companion: the identity and checksum of its contents.
fn metrics_seal(hash: &str, rows: usize, text: &[u8]) -> String {
    format!(
        "mbrl-metrics format={FORMAT} experiment={hash} rows={rows} crc32={}\n",
        crc32(text)
    )
}

/// Writes `metrics.csv` and then `metrics.sum`, both atomically.
pub fn write_metrics(dir: &Path, hash: &str, rows: &[MetricRow]) -> std::io::Result<()> {
    let mut text = String::from("cell,seed,step,metric,value\n");
    for r in rows {
        let _ = writeln!(
            text,
            "{},{},{},{},{}",
            r.cell, r.seed, r.step, r.metric, r.value
        );
    }
    write_atomic(&dir.join("metrics.csv"), text.as_bytes())?;
    let seal = metrics_seal(hash, rows.len(), text.as_bytes());
    write_atomic(&dir.join("metrics.sum"), seal.as_bytes())
}

/// What a reader of `metrics.csv` left out, to be reported.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Skipped {
    /// Rows whose value is NaN or infinite.
    pub non_finite: usize,
}

/// The rows of a run's `metrics.csv`, verified against `metrics.sum` and
/// the run's experiment `hash`; rows with a non-finite value are left out and counted.
pub fn read_metrics(dir: &Path, hash: &str) -> Result<(Vec<MetricRow>, Skipped), Damaged> {
    let all = read_rows(dir, hash)?;
    let mut skipped = Skipped::default();
    let rows = all
        .into_iter()
        .filter(|r| match r.value.is_finite() {
            true => true,
            false => {
                skipped.non_finite += 1;
                false
            }
        })
        .collect();
    Ok((rows, skipped))
}

/// Every row of a run's `metrics.csv` (non-finite values included),
/// verified against `metrics.sum` and the run's experiment `hash`.
pub fn read_rows(dir: &Path, hash: &str) -> Result<Vec<MetricRow>, Damaged> {
    let path = dir.join("metrics.csv");
    let sum_path = dir.join("metrics.sum");
    let bytes =
        std::fs::read(&path).map_err(|e| damaged(&path, format!("cannot be read ({e})")))?;
    let seal = std::fs::read_to_string(&sum_path).map_err(|e| {
        damaged(
            &sum_path,
            format!("cannot be read ({e}): the metrics cannot be verified"),
        )
    })?;
    let text = String::from_utf8(bytes).map_err(|_| damaged(&path, "is not text"))?;
    let rows_n = text.lines().count().saturating_sub(1);
    if seal != metrics_seal(hash, rows_n, text.as_bytes()) {
        let why = match seal.contains(&format!("experiment={hash} ")) {
            true => "does not match its checksum in `metrics.sum`: it was changed or damaged",
            false => "was written for another experiment than this run directory's manifest names",
        };
        return Err(damaged(&path, why));
    }
    let mut rows = Vec::new();
    for (n, line) in text.lines().enumerate().skip(1) {
        let f: Vec<&str> = line.split(',').collect();
        let parse = || -> Option<MetricRow> {
            if f.len() != 5 {
                return None;
            }
            Some(MetricRow {
                cell: f[0].parse().ok()?,
                seed: f[1].parse().ok()?,
                step: f[2].parse().ok()?,
                metric: f[3].to_string(),
                value: f[4].parse().ok()?,
            })
        };
        let row = parse()
            .ok_or_else(|| damaged(&path, format!("line {}: malformed row `{line}`", n + 1)))?;
        rows.push(row);
    }
    Ok(rows)
}

/// Writes `bytes` to `path` so that readers see the old file or the new
/// one, never a part: a temporary file beside it (named after this
/// process), fsync, rename, and the directory fsynced. On failure the
/// temporary file is removed and `path` is as it was.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = temporary(path);
    let written = (|| {
        let mut file = std::fs::File::create(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written?;
    if let Some(parent) = path.parent() {
        if let Ok(dir) = std::fs::File::open(parent) {
            let _ = dir.sync_all();
        }
    }
    Ok(())
}

/// The temporary name [`write_atomic`] writes `path` under first.
pub fn temporary(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!(".{name}.{}.tmp", std::process::id()))
}

/// The pid of the process that writes the temporary `name` (a
/// [`temporary`]'s file name, `.NAME.PID.tmp`).
fn temporary_writer(name: &str) -> Option<u32> {
    let stem = name.strip_prefix('.')?.strip_suffix(".tmp")?;
    let (_, pid) = stem.rsplit_once('.')?;
    pid.parse().ok()
}

/// Whether process `pid` may be alive: this process, or one `/proc` lists
/// (where there is no `/proc` to ask, every process may be).
fn may_be_alive(pid: u32) -> bool {
    pid == std::process::id()
        || !Path::new("/proc/self").exists()
        || Path::new(&format!("/proc/{pid}")).exists()
}

/// Removes the temporaries [`write_atomic`] left under `dir` (in it and
/// the folders below, three levels deep) when their writer was killed: the
/// `.NAME.PID.tmp` files whose process is gone. A live writer's are left
/// alone. Returns what it removed. Call it with the directory locked.
pub fn remove_orphaned_temporaries(dir: &Path) -> Vec<PathBuf> {
    let mut removed = Vec::new();
    let mut stack = vec![(dir.to_path_buf(), 0)];
    while let Some((d, depth)) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for entry in entries.filter_map(|e| e.ok()) {
            let path = entry.path();
            let is_dir = entry.file_type().is_ok_and(|t| t.is_dir());
            if is_dir && depth < 2 {
                stack.push((path, depth + 1));
            } else if !is_dir {
                let name = entry.file_name().to_string_lossy().into_owned();
                let orphan = temporary_writer(&name).is_some_and(|pid| !may_be_alive(pid));
                if orphan && std::fs::remove_file(&path).is_ok() {
                    removed.push(path);
                }
            }
        }
    }
    removed.sort();
    removed
}

/// What in `dir` keeps it from being a run directory: nothing when it is
/// new, empty, or holds a run (a manifest, or checkpoints whose manifest
/// was lost, which their seals then judge); else the names of what it
/// holds besides mbrl's own lock and temporary files.
pub fn occupants(dir: &Path) -> std::io::Result<Vec<String>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut names = Vec::new();
    for entry in entries {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        match name.as_str() {
            "manifest.ron" | "checkpoints" => return Ok(Vec::new()),
            "lock" => {
                let text = std::fs::read_to_string(entry.path()).unwrap_or_default();
                if !(text.is_empty() || text.starts_with(lock::HOLDER_PREFIX)) {
                    names.push(name);
                }
            }
            _ if temporary_writer(&name).is_some() => (),
            _ => names.push(name),
        }
    }
    names.sort();
    Ok(names)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_is_stable_and_sensitive() {
        assert_eq!(hash(""), "cbf29ce484222325");
        assert_ne!(hash("lr=1e-4"), hash("lr=2e-4"));
    }
}

#[cfg(test)]
pub(crate) mod tests_support {
    use super::*;

    /// A manifest of `cells` cells of `seeds` seeds with these step budgets.
    pub fn manifest_with(cells: usize, seeds: u64, budgets: Vec<u64>) -> Manifest {
        Manifest {
            experiment: "e".into(),
            source: "e.exp".into(),
            hash: "0".into(),
            mbrl_version: "0".into(),
            device: "cpu".into(),
            host: "h".into(),
            threads: 1,
            seeds,
            scale: 1.0,
            cells: vec![String::new(); cells],
            coords: vec![Vec::new(); cells],
            report: ReportSpec::default(),
            updates: vec![(0, 1.0); cells],
            references: vec![Vec::new(); cells],
            metrics: vec![vec!["eval".into()]; cells],
            part: None,
            finished: true,
            checkpoints: None,
            budgets,
            claims: Vec::new(),
            scored: vec!["reward rate".into(); cells],
        }
    }
}
