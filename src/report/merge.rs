//! Merging the parts of a sharded run (`mbrl run --shard I/N`, one per
//! Slurm array task) into one run directory, as if one machine had run the
//! whole experiment: the same metrics, byte for byte, and every checkpoint.
//!
//! Nothing is trusted unread: every part is locked while it is read, must
//! hold the same experiment cut into the same number of parts, be finished,
//! and pass the checks of its manifest, metrics and sealed checkpoints; the
//! parts must cover every index once, and each must hold every checkpoint
//! its manifest lists. Only then is the merged directory written: first a
//! marker (`merging`, naming the experiment), then the checkpoints and
//! metrics, the manifest last and then the marker removed, so that a merge
//! stopped halfway leaves no directory that claims to be finished, and the
//! next merge of the same experiment into it resumes (rewrites it whole).
//!
//! Invariants: reads and writes run directories; runs nothing, prints nothing.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use super::lock::{self, LockError, RunLock};
use super::sealed::{self, Identity, Unsealed};
use super::{read_manifest, read_rows, write_atomic, write_manifest, write_metrics};
use super::{Damaged, Manifest, ManifestError, MetricRow, Part};

/// Why parts cannot be merged. Nothing was written when one is returned.
#[derive(Debug, thiserror::Error)]
pub enum MergeError {
    #[error("{0}")]
    Io(String),
    /// The directory has no manifest, or holds a whole run.
    #[error("`{dir}` {why}")]
    NotAPart { dir: String, why: String },
    /// A manifest, metrics file or checkpoint failed its verification.
    #[error(transparent)]
    Damaged(#[from] Damaged),
    /// A part of another experiment, or of the experiment cut differently.
    #[error("`{dir}` {why}")]
    Foreign { dir: String, why: String },
    /// Two directories hold the same part, or parts that share units.
    #[error("`{first}` and `{second}` {what}")]
    Overlapping {
        first: String,
        second: String,
        what: String,
    },
    /// Indices that no directory holds.
    #[error("parts {missing:?} of {count} are missing")]
    Missing { missing: Vec<usize>, count: usize },
    /// A part whose run has not ended (still running, stopped or failed).
    #[error("`{dir}` holds part {index} of {count}, which has not finished")]
    Unfinished {
        dir: String,
        index: usize,
        count: usize,
    },
    /// A part (or the output) is in use by a running process.
    #[error("`{dir}` is in use by {holder}")]
    InUse { dir: String, holder: String },
    /// A finished part, or the output, is held by another process: another
    /// merge of the same parts (a run of a part holds it only while running).
    #[error("`{dir}` is held by another merge ({holder})")]
    Merging { dir: String, holder: String },
    /// A finished part lacks checkpoints its manifest lists.
    #[error("`{dir}` lacks {} of the checkpoints its manifest lists: {}", missing.len(), missing.join(", "))]
    MissingCheckpoints { dir: String, missing: Vec<String> },
    /// The output directory holds something else.
    #[error("`{dir}` {why}")]
    Occupied { dir: String, why: String },
}

/// What a merge wrote.
#[derive(Debug)]
pub struct Merged {
    pub dir: PathBuf,
    pub parts: usize,
    pub rows: usize,
    pub checkpoints: usize,
    pub manifest: Manifest,
    /// It completed a merge into `dir` that had been stopped halfway.
    pub resumed: bool,
}

/// The marker of a merge in progress in its output directory: it holds the
/// experiment's hash, and is removed once the manifest is written.
pub const MARKER: &str = "merging";

/// One part, read and locked.
struct Read {
    dir: PathBuf,
    manifest: Manifest,
    part: Part,
    _lock: RunLock,
}

fn shown(path: &Path) -> String {
    path.display().to_string()
}

fn locked(dir: &Path) -> Result<RunLock, MergeError> {
    lock::lock(dir).map_err(|err| match err {
        LockError::Held { dir, holder } => MergeError::InUse { dir, holder },
        LockError::Io(path, e) => MergeError::Io(format!("cannot lock `{path}`: {e}")),
    })
}

/// Reads and locks the part in `dir`.
fn read_part(dir: &Path) -> Result<Read, MergeError> {
    if !dir.join("manifest.ron").is_file() {
        return Err(MergeError::NotAPart {
            dir: shown(dir),
            why: "holds no run (it has no `manifest.ron`)".into(),
        });
    }
    let lock = locked(dir).map_err(|err| match err {
        // A finished part is held only by a merge reading it.
        MergeError::InUse {
            dir: shown_dir,
            holder,
        } if matches!(read_manifest(dir), Ok(Some(m)) if m.finished) => MergeError::Merging {
            dir: shown_dir,
            holder,
        },
        err => err,
    })?;
    let manifest = match read_manifest(dir) {
        Ok(Some(m)) => m,
        Ok(None) => {
            return Err(MergeError::NotAPart {
                dir: shown(dir),
                why: "holds no run (it has no `manifest.ron`)".into(),
            })
        }
        Err(ManifestError::Damaged(d)) => return Err(d.into()),
        Err(ManifestError::Io(path, e)) => {
            return Err(MergeError::Io(format!("cannot read `{path}`: {e}")))
        }
    };
    let Some(part) = manifest.part.clone() else {
        return Err(MergeError::NotAPart {
            dir: shown(dir),
            why: "holds a whole run, not a part of a sharded one".into(),
        });
    };
    Ok(Read {
        dir: dir.to_path_buf(),
        manifest,
        part,
        _lock: lock,
    })
}

/// Merges the parts in `dirs` into `out`.
pub fn merge(dirs: &[PathBuf], out: &Path) -> Result<Merged, MergeError> {
    let parts = read_set(dirs)?;
    let (first, hash) = (&parts[0], &parts[0].manifest.hash);
    let mut rows = Vec::new();
    let mut checkpoints = Vec::new();
    for p in &parts {
        rows.extend(part_rows(p)?);
        checkpoints.extend(part_checkpoints(p)?);
    }
    // The order a whole run writes: by cell, then step, seed and metric.
    let order = &first.manifest.metrics;
    let metric_index = |r: &MetricRow| {
        order
            .get(r.cell)
            .and_then(|names| names.iter().position(|n| *n == r.metric))
            .unwrap_or(usize::MAX)
    };
    rows.sort_by_key(|r| (r.cell, r.step, r.seed, metric_index(r)));

    let (out_lock, resumed) = open_out(out, &parts, hash)?;
    let io = |what: &str, e: std::io::Error| MergeError::Io(format!("cannot write {what}: {e}"));
    write_atomic(&out.join(MARKER), format!("{hash}\n").as_bytes())
        .map_err(|e| io("the merge's marker", e))?;
    for (cell, key, bytes) in &checkpoints {
        let dir = out.join("checkpoints").join(format!("cell-{cell}"));
        std::fs::create_dir_all(&dir).map_err(|e| io("the checkpoints", e))?;
        write_atomic(&dir.join(format!("{key}.bin")), bytes)
            .map_err(|e| io("the checkpoints", e))?;
    }
    write_metrics(out, hash, &rows).map_err(|e| io("the metrics", e))?;
    let mut hosts: Vec<String> = parts.iter().map(|p| p.manifest.host.clone()).collect();
    hosts.sort();
    hosts.dedup();
    let manifest = Manifest {
        part: None,
        finished: true,
        host: hosts.join(", "),
        threads: parts.iter().map(|p| p.manifest.threads).max().unwrap_or(1),
        checkpoints: Some(
            checkpoints
                .iter()
                .map(|(c, k, _)| (*c, k.clone()))
                .collect(),
        ),
        ..first.manifest.clone()
    };
    write_manifest(out, &manifest).map_err(|e| io("the manifest", e))?;
    std::fs::remove_file(out.join(MARKER)).map_err(|e| io("the merge's marker", e))?;
    drop(out_lock);
    Ok(Merged {
        dir: out.to_path_buf(),
        parts: parts.len(),
        rows: rows.len(),
        checkpoints: checkpoints.len(),
        manifest,
        resumed,
    })
}

/// The parts in `dirs`, locked and by index, once they form one whole:
/// distinct directories, one experiment cut one way, every index once,
/// each finished, no (cell, seed) twice.
fn read_set(dirs: &[PathBuf]) -> Result<Vec<Read>, MergeError> {
    let mut seen: BTreeMap<PathBuf, &Path> = BTreeMap::new();
    for dir in dirs {
        let key = dir.canonicalize().unwrap_or_else(|_| dir.clone());
        if let Some(first) = seen.insert(key, dir) {
            return Err(MergeError::Overlapping {
                first: shown(first),
                second: shown(dir),
                what: "are the same directory".into(),
            });
        }
    }
    let mut parts = dirs
        .iter()
        .map(|d| read_part(d))
        .collect::<Result<Vec<_>, _>>()?;
    parts.sort_by_key(|p| p.part.index);
    let Some(first) = parts.first() else {
        return Err(MergeError::Missing {
            missing: Vec::new(),
            count: 0,
        });
    };
    let (hash, count) = (&first.manifest.hash, first.part.count);
    for p in &parts {
        let why = if p.manifest.hash != *hash {
            format!(
                "holds a part of experiment `{}` (hash {}), not of `{}` (hash {hash})",
                p.manifest.experiment, p.manifest.hash, first.manifest.experiment
            )
        } else if p.part.count != count {
            format!(
                "holds part {} of {}, while `{}` was cut into {count} parts",
                p.part.index,
                p.part.count,
                shown(&first.dir)
            )
        } else {
            continue;
        };
        return Err(MergeError::Foreign {
            dir: shown(&p.dir),
            why,
        });
    }
    for pair in parts.windows(2) {
        if pair[0].part.index == pair[1].part.index {
            return Err(MergeError::Overlapping {
                first: shown(&pair[0].dir),
                second: shown(&pair[1].dir),
                what: format!("both hold part {} of {count}", pair[0].part.index),
            });
        }
    }
    let held: BTreeSet<usize> = parts.iter().map(|p| p.part.index).collect();
    let missing: Vec<usize> = (0..count).filter(|i| !held.contains(i)).collect();
    if !missing.is_empty() {
        return Err(MergeError::Missing { missing, count });
    }
    if let Some(p) = parts.iter().find(|p| !p.manifest.finished) {
        return Err(MergeError::Unfinished {
            dir: shown(&p.dir),
            index: p.part.index,
            count,
        });
    }
    let mut owner: BTreeMap<(usize, u64), &Path> = BTreeMap::new();
    for p in &parts {
        for unit in &p.part.units {
            if let Some(other) = owner.insert(*unit, &p.dir) {
                return Err(MergeError::Overlapping {
                    first: shown(other),
                    second: shown(&p.dir),
                    what: format!("both hold seed {} of cell {}", unit.1, unit.0),
                });
            }
        }
    }
    Ok(parts)
}

/// A part's metrics, verified, each row one of its units', every unit present.
fn part_rows(p: &Read) -> Result<Vec<MetricRow>, MergeError> {
    let rows = read_rows(&p.dir, &p.manifest.hash)?;
    let units: BTreeSet<(usize, u64)> = p.part.units.iter().copied().collect();
    let path = p.dir.join("metrics.csv");
    if let Some(r) = rows.iter().find(|r| !units.contains(&(r.cell, r.seed))) {
        return Err(Damaged {
            path: shown(&path),
            why: format!(
                "has rows of seed {} of cell {}, which part {} does not run",
                r.seed, r.cell, p.part.index
            ),
        }
        .into());
    }
    let seen: BTreeSet<(usize, u64)> = rows.iter().map(|r| (r.cell, r.seed)).collect();
    if let Some((cell, seed)) = units.difference(&seen).next() {
        return Err(Damaged {
            path: shown(&path),
            why: format!(
                "has no rows of seed {seed} of cell {cell}, which part {} runs",
                p.part.index
            ),
        }
        .into());
    }
    Ok(rows)
}

/// A part's checkpoints `(cell, key, sealed bytes)`, each verified against
/// its identity. Files set aside as damaged are left behind.
fn part_checkpoints(p: &Read) -> Result<Vec<(usize, String, Vec<u8>)>, MergeError> {
    let mut out = Vec::new();
    let root = p.dir.join("checkpoints");
    let cells: BTreeSet<usize> = p.part.units.iter().map(|u| u.0).collect();
    for cell in cells {
        let dir = root.join(format!("cell-{cell}"));
        let keys = match sealed::keys(&dir) {
            Ok(keys) => keys,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => {
                return Err(MergeError::Io(format!(
                    "cannot read `{}`: {e}",
                    shown(&dir)
                )))
            }
        };
        for key in keys {
            let path = dir.join(format!("{key}.bin"));
            let bytes = std::fs::read(&path)
                .map_err(|e| MergeError::Io(format!("cannot read `{}`: {e}", shown(&path))))?;
            let identity = Identity {
                experiment: p.manifest.hash.clone(),
                cell,
                key: key.clone(),
            };
            match sealed::unseal(&bytes, &identity) {
                Ok(_) => out.push((cell, key, bytes)),
                Err(Unsealed::Damaged(why)) => {
                    return Err(Damaged {
                        path: shown(&path),
                        why,
                    }
                    .into())
                }
                Err(Unsealed::Foreign(why)) => {
                    return Err(MergeError::Foreign {
                        dir: shown(&path),
                        why,
                    })
                }
            }
        }
    }
    // What the part held when it finished must all be here (a manifest of
    // an older version lists nothing, and only what is present is merged).
    let missing: Vec<String> = p
        .manifest
        .checkpoints
        .iter()
        .flatten()
        .filter(|(cell, key)| !out.iter().any(|(c, k, _)| c == cell && k == key))
        .map(|(cell, key)| format!("checkpoints/cell-{cell}/{key}.bin"))
        .collect();
    if !missing.is_empty() {
        return Err(MergeError::MissingCheckpoints {
            dir: shown(&p.dir),
            missing,
        });
    }
    Ok(out)
}

/// Creates and locks the output: new, empty, an earlier merge of this
/// experiment, or one stopped halfway (then `true`: it is resumed); never
/// one of the parts. The temporaries a killed merge left in it are removed.
fn open_out(out: &Path, parts: &[Read], hash: &str) -> Result<(RunLock, bool), MergeError> {
    let same = |a: &Path, b: &Path| match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    };
    if parts.iter().any(|p| same(&p.dir, out)) {
        return Err(MergeError::Occupied {
            dir: shown(out),
            why: "is one of the parts being merged".into(),
        });
    }
    std::fs::create_dir_all(out)
        .map_err(|e| MergeError::Io(format!("cannot create `{}`: {e}", shown(out))))?;
    let lock = locked(out).map_err(|err| match err {
        MergeError::InUse { dir, holder } => MergeError::Merging { dir, holder },
        err => err,
    })?;
    // No other merge writes here now: what a killed one left half-written goes.
    super::remove_orphaned_temporaries(out);
    let marker = std::fs::read_to_string(out.join(MARKER)).ok();
    let occupied = |why: String| MergeError::Occupied {
        dir: shown(out),
        why,
    };
    match read_manifest(out) {
        Ok(Some(m)) if m.hash == hash && m.part.is_none() => Ok((lock, marker.is_some())),
        Ok(Some(m)) => Err(occupied(format!(
            "holds a run of experiment `{}` (hash {}{})",
            m.experiment,
            m.hash,
            match m.part {
                Some(p) => format!(", part {} of {}", p.index, p.count),
                None => String::new(),
            }
        ))),
        Ok(None) => {
            let others = std::fs::read_dir(out)
                .map_err(|e| MergeError::Io(format!("cannot read `{}`: {e}", shown(out))))?
                .filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                // The lock, and the marker's temporary of a merge killed while writing it.
                .any(|n| {
                    n != "lock" && !(n.starts_with(&format!(".{MARKER}.")) && n.ends_with(".tmp"))
                });
            match (others, marker.as_deref().map(str::trim)) {
                (_, Some(h)) if h == hash => Ok((lock, true)),
                (_, Some(h)) => Err(occupied(format!(
                    "holds a merge of another experiment (hash {h}) that was stopped halfway"
                ))),
                (true, None) => Err(occupied("is not empty and holds no run".into())),
                (false, None) => Ok((lock, false)),
            }
        }
        Err(ManifestError::Damaged(d)) => Err(d.into()),
        Err(ManifestError::Io(path, e)) => {
            Err(MergeError::Io(format!("cannot read `{path}`: {e}")))
        }
    }
}
