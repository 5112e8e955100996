//! Report: run directories. A manifest (`manifest.ron`: the resolved
//! experiment, its hash, the mbrl version, device and host) and long-format
//! metrics (`metrics.csv`: `cell,seed,step,metric,value`), each written
//! atomically (write to a temporary file, fsync, rename).
//!
//! Invariants: formats and writes results; computes nothing that changes them.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub mod plots;

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
    pub metric: &'static str,
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

pub fn write_manifest(dir: &Path, manifest: &Manifest) -> std::io::Result<()> {
    let config = ron::ser::PrettyConfig::new();
    let text = ron::ser::to_string_pretty(manifest, config).map_err(std::io::Error::other)?;
    write_atomic(&dir.join("manifest.ron"), text.as_bytes())
}

/// The manifest of an existing run directory, if it has one.
pub fn read_manifest(dir: &Path) -> Result<Option<Manifest>, String> {
    let path = dir.join("manifest.ron");
    match std::fs::read_to_string(&path) {
        Ok(text) => ron::from_str(&text)
            .map(Some)
            .map_err(|e| format!("`{}` is not a manifest: {e}", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(format!("cannot read `{}`: {e}", path.display())),
    }
}

pub fn write_metrics(dir: &Path, rows: &[MetricRow]) -> std::io::Result<()> {
    let mut text = String::from("cell,seed,step,metric,value\n");
    for r in rows {
        let _ = writeln!(
            text,
            "{},{},{},{},{}",
            r.cell, r.seed, r.step, r.metric, r.value
        );
    }
    write_atomic(&dir.join("metrics.csv"), text.as_bytes())
}

/// Writes `bytes` to `path` so that readers see the old file or the new one, never a part.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp: PathBuf = path.with_extension("tmp");
    {
        let mut file = std::fs::File::create(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
    if let Some(parent) = path.parent() {
        if let Ok(dir) = std::fs::File::open(parent) {
            let _ = dir.sync_all();
        }
    }
    Ok(())
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
