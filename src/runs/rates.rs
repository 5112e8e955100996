//! Measured rates: how fast each agent class trains on a kind of machine,
//! in counted GFLOP/s of one worker thread ([`crate::compile::Cost`]'s
//! FLOPs over the thread-seconds of the training loop, evaluation left
//! out), as `mbrl bench --all --save-rates` measures them. `check --cost`
//! and `mbrl slurm`'s time request turn an experiment's FLOPs into time
//! with them, and say which table they used.
//!
//! The table is read from `$MBRL_RATES` when set, else the user's
//! `$XDG_CONFIG_HOME/mbrl/rates.ron` (`~/.config/mbrl/rates.ron`) when it
//! exists, else the table measured for this repository
//! (`stdlib/rates.ron`, built into the binary). A table read back is
//! verified (its format, every rate finite and above 0, the classes
//! known) before any estimate uses it; a damaged one is refused, never
//! replaced silently by another.
//!
//! Invariants: measures nothing itself (`mbrl bench` does); the only
//! writer is [`Rates::save`], atomically.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::compile::Plan;

/// The classes a table may rate: the agents `mbrl bench --all` times.
pub const CLASSES: [&str; 9] = [
    "er",
    "perfect_model",
    "simple_model",
    "gaussian_latent",
    "categorical_latent",
    "slbo_l2",
    "slbo_mle",
    "slbo_ma_l1",
    "slbo_vaml",
];

/// The suffix of a class's rate with bf16 products (`er_bf16`): measured by
/// `mbrl bench --all --precision bf16 --save-rates`; where a table lacks
/// it, the class's fp32 rate stands in (bf16 is not slower), and says so.
pub const BF16: &str = "_bf16";

/// Whether `class` is a class a table may rate: one of [`CLASSES`], plain
/// or with [`BF16`].
fn known(class: &str) -> bool {
    CLASSES.contains(&class.strip_suffix(BF16).unwrap_or(class))
}

/// The table's format version (a table of another is refused).
const FORMAT: u32 = 1;

/// A table of measured rates, one per agent class.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Rates {
    pub format: u32,
    /// The CPU it was measured on (`/proc/cpuinfo`'s model name) and its cores.
    pub cpu: String,
    pub cores: usize,
    /// When (UTC date), by which mbrl, with which command.
    pub measured: String,
    pub mbrl_version: String,
    pub command: String,
    /// GFLOP/s of one worker thread, by class ([`CLASSES`]).
    pub gflops: BTreeMap<String, f64>,
}

/// Where a table came from, for the line that states it.
#[derive(Clone, Debug, PartialEq)]
pub enum Source {
    /// The table built into the binary (`stdlib/rates.ron`).
    BuiltIn,
    /// A file: `$MBRL_RATES` or the user's configuration.
    File(PathBuf),
}

/// Why a rates table cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum RatesError {
    #[error("cannot read the rates table `{path}`: {err}")]
    Read { path: String, err: std::io::Error },
    #[error("the rates table `{path}` is damaged: {why}; measure it again with `mbrl bench --all --save-rates {path}`")]
    Damaged { path: String, why: String },
    #[error("cannot write the rates table `{path}`: {err}")]
    Write { path: String, err: std::io::Error },
}

/// The table built into the binary.
const BUILT_IN: &str = include_str!("../../stdlib/rates.ron");

impl Rates {
    /// The table every estimate uses now, and where it came from.
    pub fn current() -> Result<(Rates, Source), RatesError> {
        if let Some(path) = std::env::var_os("MBRL_RATES") {
            let path = PathBuf::from(path);
            return Ok((Rates::read(&path)?, Source::File(path)));
        }
        if let Some(path) = user_table().filter(|p| p.exists()) {
            return Ok((Rates::read(&path)?, Source::File(path)));
        }
        Ok((Rates::parse(BUILT_IN, "stdlib/rates.ron")?, Source::BuiltIn))
    }

    /// A table from a file, verified.
    pub fn read(path: &Path) -> Result<Rates, RatesError> {
        let text = std::fs::read_to_string(path).map_err(|err| RatesError::Read {
            path: path.display().to_string(),
            err,
        })?;
        Rates::parse(&text, &path.display().to_string())
    }

    /// A table from its text, verified; `path` names it in errors.
    pub fn parse(text: &str, path: &str) -> Result<Rates, RatesError> {
        let damaged = |why: String| RatesError::Damaged {
            path: path.to_string(),
            why,
        };
        let rates: Rates = ron::from_str(text).map_err(|e| damaged(e.to_string()))?;
        if rates.format != FORMAT {
            return Err(damaged(format!(
                "format {} (this mbrl reads {FORMAT})",
                rates.format
            )));
        }
        if rates.gflops.is_empty() {
            return Err(damaged("it rates no class".into()));
        }
        for (class, rate) in &rates.gflops {
            if !known(class) {
                return Err(damaged(format!(
                    "unknown class `{class}` (the classes are {}, each also with `{BF16}`)",
                    CLASSES.join(", ")
                )));
            }
            if !(rate.is_finite() && *rate > 0.0) {
                return Err(damaged(format!("`{class}` has rate {rate}")));
            }
        }
        Ok(rates)
    }

    /// Writes the table to `path` atomically (its folder made if missing).
    pub fn save(&self, path: &Path) -> Result<(), RatesError> {
        let write = |err| RatesError::Write {
            path: path.display().to_string(),
            err,
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(write)?;
        }
        let text = ron::ser::to_string_pretty(self, ron::ser::PrettyConfig::default())
            .expect("a rates table serializes");
        crate::report::write_atomic(path, format!("{text}\n").as_bytes()).map_err(write)
    }

    /// The rate of `class`: its own, or where the table lacks it the
    /// table's slowest (so a time request errs long), and whether it was;
    /// a bf16 class lacking takes its fp32 class's rate first.
    pub fn rate(&self, class: &str) -> (f64, bool) {
        match (self.gflops.get(class), class.strip_suffix(BF16)) {
            (Some(r), _) => (*r, false),
            (None, Some(fp32)) => (self.rate(fp32).0, true),
            (None, None) => (self.gflops.values().copied().fold(f64::MAX, f64::min), true),
        }
    }

    /// Seconds of one worker thread the plans' training takes (all their
    /// seeds), and the classes the table lacked.
    pub fn thread_seconds(&self, plans: &[Plan]) -> (f64, Vec<String>) {
        self.seconds(plans, None)
    }

    /// Wall seconds of the plans' training on `workers` threads: cells one
    /// after another, each cell's seeds shared out over the threads (the
    /// busiest thread holds `ceil(seeds / workers)` of them).
    pub fn wall_seconds(&self, plans: &[Plan], workers: usize) -> f64 {
        self.seconds(plans, Some(workers.max(1))).0
    }

    fn seconds(&self, plans: &[Plan], workers: Option<usize>) -> (f64, Vec<String>) {
        let mut missing = Vec::new();
        let mut secs = 0.0;
        for plan in plans {
            let Some(class) = Self::class_of(plan) else {
                continue;
            };
            let (rate, fallback) = self.rate(&class);
            if fallback && !missing.contains(&class) {
                missing.push(class);
            }
            let seeds = plan.seeds.len();
            let serial = match workers {
                None => seeds,
                Some(w) => seeds.div_ceil(w),
            };
            secs += serial as f64 * plan.cost().flops / (rate * 1e9);
        }
        (secs, missing)
    }

    /// The rate class a plan trains at: its kind's, with [`BF16`] where its
    /// products are bf16.
    pub fn class_of(plan: &Plan) -> Option<String> {
        let class = plan.agent.rate_class()?;
        Some(match plan.agent.precision() {
            crate::tensor::Precision::Fp32 => class.to_string(),
            crate::tensor::Precision::Bf16 => format!("{class}{BF16}"),
        })
    }

    /// The table named for a user: where it came from and what it measured.
    pub fn describe(&self, source: &Source) -> String {
        let from = match source {
            Source::BuiltIn => "the built-in table (stdlib/rates.ron)".to_string(),
            Source::File(p) => format!("the table `{}`", p.display()),
        };
        format!(
            "{from}, measured on {} ({} cores) on {} by mbrl {}",
            self.cpu, self.cores, self.measured, self.mbrl_version
        )
    }
}

/// The user's table: `$XDG_CONFIG_HOME/mbrl/rates.ron`, else `~/.config/mbrl/rates.ron`.
pub fn user_table() -> Option<PathBuf> {
    let config = std::env::var_os("XDG_CONFIG_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))?;
    Some(config.join("mbrl").join("rates.ron"))
}

/// A duration in words: seconds, minutes or hours, two significant figures.
pub fn duration(secs: f64) -> String {
    match secs {
        s if s < 90.0 => format!("{s:.0} s"),
        s if s < 5400.0 => format!("{:.0} min", s / 60.0),
        s if s < 360_000.0 => format!("{:.1} h", s / 3600.0),
        s => format!("{:.0} h", s / 3600.0),
    }
}

/// This machine's CPU model name (`/proc/cpuinfo`), or `unknown CPU`.
pub fn cpu_name() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|s| s.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(rates: &[(&str, f64)]) -> Rates {
        Rates {
            format: FORMAT,
            cpu: "test CPU".into(),
            cores: 2,
            measured: "2026-12-05".into(),
            mbrl_version: "0".into(),
            command: "test".into(),
            gflops: rates.iter().map(|(c, r)| (c.to_string(), *r)).collect(),
        }
    }

    /// The built-in table is a valid table rating every class.
    #[test]
    fn the_built_in_table_rates_every_class() {
        let rates = Rates::parse(BUILT_IN, "stdlib/rates.ron").unwrap();
        for class in CLASSES {
            assert!(!rates.rate(class).1, "{class} has no rate");
        }
    }

    /// A table written and read back is the same table; a damaged one (not
    /// RON, another format, an unknown class, a rate of 0 or NaN) is refused
    /// with its path.
    #[test]
    fn tables_round_trip_and_damaged_ones_are_refused() {
        let dir = std::env::temp_dir().join(format!("mbrl-rates-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let path = dir.join("sub").join("rates.ron");
        let t = table(&[("er", 50.0), ("slbo_mle", 20.0)]);
        t.save(&path).unwrap();
        assert_eq!(Rates::read(&path).unwrap(), t);
        let text = std::fs::read_to_string(&path).unwrap();
        for bad in [
            text.replace("50.0", "0.0"),
            text.replace("50.0", "NaN"),
            text.replace("\"er\"", "\"dreamer\""),
            text.replace("format: 1", "format: 2"),
            text[..text.len() / 2].to_string(),
        ] {
            std::fs::write(&path, &bad).unwrap();
            let err = Rates::read(&path).unwrap_err().to_string();
            assert!(
                err.contains("damaged") && err.contains("rates.ron"),
                "{err}"
            );
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// A class the table lacks takes its slowest rate, and says so.
    #[test]
    fn a_missing_class_takes_the_slowest_rate() {
        let t = table(&[("er", 50.0), ("slbo_mle", 20.0)]);
        assert_eq!(t.rate("er"), (50.0, false));
        assert_eq!(t.rate("gaussian_latent"), (20.0, true));
    }

    /// A bf16 class takes its own rate, or its fp32 class's where the table
    /// lacks it (saying so); a table may rate bf16 classes, not others.
    #[test]
    fn a_bf16_class_takes_its_own_or_its_fp32_rate() {
        let t = table(&[("er", 50.0), ("er_bf16", 90.0), ("slbo_mle", 20.0)]);
        assert_eq!(t.rate("er_bf16"), (90.0, false));
        assert_eq!(t.rate("slbo_mle_bf16"), (20.0, true));
        assert_eq!(t.rate("simple_model_bf16"), (20.0, true));
        let text = ron::to_string(&t).unwrap();
        assert!(Rates::parse(&text, "t").is_ok());
        let bad = text.replace("er_bf16", "er_fp16");
        assert!(Rates::parse(&bad, "t").is_err());
    }

    #[test]
    fn durations_read_in_their_unit() {
        assert_eq!(duration(12.0), "12 s");
        assert_eq!(duration(150.0), "2 min");
        assert_eq!(duration(36_000.0), "10.0 h");
        assert_eq!(duration(1e7), "2778 h");
    }
}
