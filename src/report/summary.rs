//! A run's report: the verdicts of its claims and each cell's statistics
//! over seeds, from the verified metrics (a finished run's, or the rows
//! written so far), printed and written to `claims.csv` and `report.md`
//! (each atomically). The end of `mbrl run`, `mbrl merge` and `mbrl report
//! RUN` all call [`report_run`], so they print the same text.
//!
//! Invariants: reads the run directory and writes only `claims.csv` and
//! `report.md`; never changes metrics, checkpoints or the manifest.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use crate::report::claims::{self, scale, Outcome, Summary, Verdict};
use crate::report::plots::PlotError;
use crate::report::stats::{self, Aggregate, Method};
use crate::report::{Manifest, MetricRow};

/// Resamples behind each cell's intervals (rliable's default is 50,000 for
/// aggregates; cells have one task, so fewer give the same precision).
const RESAMPLES: usize = 5_000;

/// A statistic of bootstrap groups of tasks of runs.
type Statistic = dyn Fn(&[Vec<Vec<f64>>]) -> f64;

/// What [`report_run`] found and wrote.
#[derive(Debug)]
pub struct Reported {
    pub outcomes: Vec<Outcome>,
    /// The text printed: the claims table (empty without claims).
    pub text: String,
    pub paths: Vec<PathBuf>,
}

impl Reported {
    pub fn failed(&self) -> usize {
        self.outcomes
            .iter()
            .filter(|o| o.verdict == Verdict::Fails)
            .count()
    }
}

/// Evaluates the run's claims and cell statistics and writes them beside its metrics.
pub fn report_run(dir: &Path) -> Result<Reported, PlotError> {
    let manifest = crate::report::read_manifest(dir)?
        .ok_or_else(|| PlotError::NoManifest(dir.display().to_string()))?;
    let rows: Vec<MetricRow> = crate::report::read_rows(dir, &manifest.hash)?
        .into_iter()
        .filter(|r| r.metric == "eval" && r.value.is_finite())
        .collect();
    let outcomes = claims::evaluate(&manifest, &rows);
    let text = text(&manifest, &outcomes);
    let csv_path = dir.join("claims.csv");
    let md_path = dir.join("report.md");
    let write = |path: &Path, body: &str| {
        crate::report::write_atomic(path, body.as_bytes())
            .map_err(|e| PlotError::Draw(path.display().to_string(), e.to_string()))
    };
    write(&csv_path, &claims::csv(&outcomes))?;
    write(&md_path, &markdown(&manifest, &rows, &outcomes, &text))?;
    Ok(Reported {
        outcomes,
        text,
        paths: vec![csv_path, md_path],
    })
}

/// The claims table as printed (and as `report.md` shows it).
fn text(manifest: &Manifest, outcomes: &[Outcome]) -> String {
    if outcomes.is_empty() {
        return String::new();
    }
    let state = match manifest.finished {
        true => "",
        false => " (unfinished: the seeds whose window is complete so far)",
    };
    format!(
        "claims of `{}`{state}:\n{}",
        manifest.experiment,
        claims::table(outcomes)
    )
}

fn markdown(manifest: &Manifest, rows: &[MetricRow], outcomes: &[Outcome], text: &str) -> String {
    let mut out = format!(
        "# {}\n\n{} seeds per cell, experiment hash `{}`{}.\n\n",
        manifest.experiment,
        manifest.seeds,
        manifest.hash,
        match manifest.finished {
            true => "",
            false => "; the run is unfinished and these are its rows so far",
        }
    );
    if !outcomes.is_empty() {
        out.push_str("## Claims\n\n");
        out.push_str(text.split_once('\n').map_or("", |(_, t)| t));
        out.push_str(
            "\nA claim holds when its whole interval (a stratified bootstrap over seeds, expanded percentile) \
             lies beyond its margin in the claimed direction, fails when it lies wholly on the other side, \
             and is inconclusive otherwise.\n\n",
        );
    }
    out.push_str("## Cells\n\n");
    out.push_str(&cells(manifest, rows));
    let aggregates = aggregates(manifest, rows);
    if !aggregates.is_empty() {
        out.push_str("\n## Aggregates\n\n");
        out.push_str(&aggregates);
    }
    out
}

/// Per agent (the values of the `agent` axis, in grid order), its cells'
/// seeds' `final(10%)` scores normalized from the random agent (0) to the
/// optimum (1), one task per cell with scores; `None` unless every cell has
/// both reference levels (raw scores of different envs do not average).
pub fn normalized_tasks(
    manifest: &Manifest,
    rows: &[MetricRow],
) -> Option<Vec<(String, Vec<Vec<f64>>)>> {
    let agents: Vec<String> = manifest
        .coords
        .iter()
        .filter_map(|c| c.iter().find(|(a, _)| a == "agent").map(|(_, v)| v.clone()))
        .fold(Vec::new(), |mut seen, v| {
            if !seen.contains(&v) {
                seen.push(v);
            }
            seen
        });
    let all_scaled = (0..manifest.coords.len()).all(|c| scale(manifest, c).is_some());
    if agents.is_empty() || !all_scaled {
        return None;
    }
    let out: Vec<(String, Vec<Vec<f64>>)> = agents
        .into_iter()
        .map(|agent| {
            let tasks = (0..manifest.coords.len())
                .filter(|c| {
                    manifest.coords[*c]
                        .iter()
                        .any(|(a, v)| a == "agent" && *v == agent)
                })
                .filter_map(|c| {
                    let (r, o) = scale(manifest, c)?;
                    let scores = claims::summaries(manifest, rows, c, Summary::Final(0.1));
                    (!scores.is_empty()).then(|| scores.iter().map(|x| (x - r) / (o - r)).collect())
                })
                .collect();
            (agent, tasks)
        })
        .filter(|(_, tasks): &(String, Vec<Vec<f64>>)| !tasks.is_empty())
        .collect();
    (!out.is_empty()).then_some(out)
}

/// Per agent (the values of the `agent` axis), rliable's aggregates over its
/// cells (each cell a task): mean, median, IQM and optimality gap of the
/// seeds' normalized `final(10%)` scores with 95% stratified-bootstrap
/// percentile intervals. Only where every cell has both reference levels
/// (raw scores of different envs do not average); empty otherwise.
pub fn aggregates(manifest: &Manifest, rows: &[MetricRow]) -> String {
    let Some(agents) = normalized_tasks(manifest, rows) else {
        return String::new();
    };
    let mut out = String::from(
        "Scores normalized from the random agent (0) to the optimum (1); each cell a task, its \
         seeds resampled within it (rliable's stratified bootstrap, 95% percentile intervals).\n\n\
         | agent | cells | mean | median | IQM | optimality gap |\n| --- | --- | --- | --- | --- | --- |\n",
    );
    let head = |a: &str| -> String {
        a.chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect()
    };
    for (i, (agent, tasks)) in agents.iter().enumerate() {
        // An agent by its name, unless another shares it.
        let name = match agents
            .iter()
            .filter(|(a, _)| head(a) == head(agent))
            .count()
        {
            1 => head(agent),
            _ => agent.clone(),
        };
        let shown = |agg: Aggregate| {
            let x = stats::aggregate_interval(agg, tasks, 0.95, RESAMPLES, 1000 + i as u64);
            format!("{:.3} [{:.3}, {:.3}]", x.estimate, x.lo, x.hi)
        };
        let _ = writeln!(
            out,
            "| {name} | {} | {} | {} | {} | {} |",
            tasks.len(),
            shown(Aggregate::Mean),
            shown(Aggregate::Median),
            shown(Aggregate::Iqm),
            shown(Aggregate::OptimalityGap),
        );
    }
    out
}

/// Per cell: the seeds' `final(10%)` scores, their mean, median and IQM with
/// 95% percentile stratified-bootstrap intervals (rliable's estimators), and
/// the normalized mean where the cell has both reference levels.
pub fn cells(manifest: &Manifest, rows: &[MetricRow]) -> String {
    let mut out = String::from(
        "Each seed's score is its mean evaluation over the last 10% of the steps; intervals are 95% \
         percentile bootstrap intervals over seeds.\n\n\
         | cell | seeds | mean | median | IQM | normalized mean |\n| --- | --- | --- | --- | --- | --- |\n",
    );
    for cell in 0..manifest.coords.len() {
        let label: Vec<String> = manifest.coords[cell]
            .iter()
            .map(|(a, v)| format!("{a}={v}"))
            .collect();
        let scores = claims::summaries(manifest, rows, cell, Summary::Final(0.1));
        if scores.is_empty() {
            let _ = writeln!(out, "| {} | 0 | - | - | - | - |", label.join(" "));
            continue;
        }
        let tasks = [scores.clone()];
        let seed = cell as u64;
        let shown = |stat: &Statistic| {
            let i = stats::bootstrap(&[&tasks], stat, 0.95, RESAMPLES, Method::Percentile, seed);
            format!("{:.3} [{:.3}, {:.3}]", i.estimate, i.lo, i.hi)
        };
        let normalized = match scale(manifest, cell) {
            Some((r, o)) => format!("{:.3}", (stats::mean(&scores) - r) / (o - r)),
            None => "-".into(),
        };
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {normalized} |",
            label.join(" "),
            scores.len(),
            shown(&|g| stats::mean(&g[0][0])),
            shown(&|g| stats::median(&g[0][0])),
            shown(&|g| Aggregate::Iqm.of(&g[0])),
        );
    }
    out
}
