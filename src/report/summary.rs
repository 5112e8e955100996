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
use crate::report::stats::{self, Aggregate, Method};
use crate::report::PlotError;
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

/// The groups of cells aggregated together: all of them, and, where the
/// grid varies an axis other than `agent` and `env` (a data regime, say),
/// the cells of each combination of those axes' values, labelled
/// `regime=low_data`. Each group's envs are its tasks.
pub fn groups(manifest: &Manifest) -> Vec<(String, Vec<usize>)> {
    let cells: Vec<usize> = (0..manifest.coords.len()).collect();
    let mut axes: Vec<(String, Vec<String>)> = Vec::new();
    for coords in &manifest.coords {
        for (axis, value) in coords {
            if axis == "agent" || axis == "env" {
                continue;
            }
            match axes.iter_mut().find(|(a, _)| a == axis) {
                Some((_, values)) if !values.contains(value) => values.push(value.clone()),
                Some(_) => (),
                None => axes.push((axis.clone(), vec![value.clone()])),
            }
        }
    }
    let varying: Vec<&str> = axes
        .iter()
        .filter(|(_, v)| v.len() > 1)
        .map(|(a, _)| a.as_str())
        .collect();
    let mut out = vec![("all cells".to_string(), cells.clone())];
    if varying.is_empty() {
        return out;
    }
    let key = |cell: usize| -> String {
        manifest.coords[cell]
            .iter()
            .filter(|(a, _)| varying.contains(&a.as_str()))
            .map(|(a, v)| format!("{a}={v}"))
            .collect::<Vec<_>>()
            .join(" ")
    };
    let mut by: Vec<(String, Vec<usize>)> = Vec::new();
    for cell in cells {
        let k = key(cell);
        match by.iter_mut().find(|(label, _)| *label == k) {
            Some((_, members)) => members.push(cell),
            None => by.push((k, vec![cell])),
        }
    }
    out.extend(by);
    out
}

/// Per agent (the values of the `agent` axis, in grid order), the seeds'
/// `final(10%)` scores of its cells among `cells`, normalized from the
/// random agent (0) to the optimum (1), one task per cell with scores;
/// `None` unless every one of `cells` has both reference levels (raw
/// scores of different envs do not average).
pub fn normalized_tasks(
    manifest: &Manifest,
    rows: &[MetricRow],
    cells: &[usize],
) -> Option<Vec<(String, Vec<Vec<f64>>)>> {
    let agents: Vec<String> = cells
        .iter()
        .filter_map(|c| {
            manifest.coords[*c]
                .iter()
                .find(|(a, _)| a == "agent")
                .map(|(_, v)| v.clone())
        })
        .fold(Vec::new(), |mut seen, v| {
            if !seen.contains(&v) {
                seen.push(v);
            }
            seen
        });
    let all_scaled = cells.iter().all(|c| scale(manifest, *c).is_some());
    if agents.is_empty() || !all_scaled {
        return None;
    }
    let out: Vec<(String, Vec<Vec<f64>>)> = agents
        .into_iter()
        .map(|agent| {
            let tasks = cells
                .iter()
                .copied()
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

/// Per group of cells ([`groups`]) and agent, rliable's aggregates over
/// the group's cells (each cell a task): mean, median, IQM and optimality
/// gap of the seeds' normalized `final(10%)` scores with 95%
/// stratified-bootstrap percentile intervals. Only where every cell has
/// both reference levels (raw scores of different envs do not average);
/// empty otherwise.
pub fn aggregates(manifest: &Manifest, rows: &[MetricRow]) -> String {
    let groups = groups(manifest);
    let several = groups.len() > 1;
    let mut out = String::new();
    for (label, cells) in &groups {
        let Some(agents) = normalized_tasks(manifest, rows, cells) else {
            continue;
        };
        if out.is_empty() {
            out.push_str(
                "Scores normalized from the random agent (0) to the optimum (1); each cell a task, its \
                 seeds resampled within it (rliable's stratified bootstrap, 95% percentile intervals).\n\n",
            );
        }
        if several {
            let _ = writeln!(out, "### {label}\n");
        }
        out.push_str(&aggregate_table(&agents));
        out.push('\n');
    }
    out.truncate(out.trim_end().len());
    if !out.is_empty() {
        out.push('\n');
    }
    out
}

/// One group's aggregates table, an agent a row.
fn aggregate_table(agents: &[(String, Vec<Vec<f64>>)]) -> String {
    let mut out = String::from(
        "| agent | cells | mean | median | IQM | optimality gap |\n| --- | --- | --- | --- | --- | --- |\n",
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::tests_support::manifest_with;

    /// Two agents x two regimes x two envs; ER scores 0.2 of the way to the
    /// optimum everywhere, the model 0.8 in the low-data regime, 0.4 in the high.
    fn grid() -> (Manifest, Vec<MetricRow>) {
        let mut m = manifest_with(8, 3, vec![100; 8]);
        let mut rows = Vec::new();
        let mut cell = 0;
        for agent in ["er", "model"] {
            for regime in ["high_data", "low_data"] {
                for env in ["a", "b"] {
                    m.coords[cell] = vec![
                        ("agent".into(), agent.into()),
                        ("env".into(), env.into()),
                        ("regime".into(), regime.into()),
                    ];
                    let top = if env == "a" { 1.0 } else { 10.0 };
                    m.references[cell] = vec![("random".into(), 0.0), ("optimum".into(), top)];
                    let share = match (agent, regime) {
                        ("er", _) => 0.2,
                        (_, "low_data") => 0.8,
                        _ => 0.4,
                    };
                    for seed in 0..3 {
                        rows.push(MetricRow {
                            cell,
                            seed,
                            step: 100,
                            metric: "eval".into(),
                            value: share * top,
                        });
                    }
                    cell += 1;
                }
            }
        }
        (m, rows)
    }

    #[test]
    fn aggregates_over_all_cells_and_per_regime() {
        let (m, rows) = grid();
        let groups = groups(&m);
        let labels: Vec<&str> = groups.iter().map(|(l, _)| l.as_str()).collect();
        assert_eq!(labels, ["all cells", "regime=high_data", "regime=low_data"]);
        assert_eq!(groups[2].1, vec![2, 3, 6, 7]);
        let text = aggregates(&m, &rows);
        let section = |label: &str| -> String {
            let at = text.find(&format!("### {label}\n")).expect(label);
            text[at..]
                .lines()
                .skip(1)
                .take_while(|l| !l.starts_with("###"))
                .collect::<Vec<_>>()
                .join("\n")
        };
        // The model's mean: 0.6 over all cells, 0.4 and 0.8 per regime; ER 0.2
        // throughout (seeds tie within each cell: the stratified intervals are points).
        assert!(
            section("all cells").contains("| model | 4 | 0.600 [0.600, 0.600]"),
            "{text}"
        );
        assert!(
            section("regime=high_data").contains("| model | 2 | 0.400 [0.400, 0.400]"),
            "{text}"
        );
        assert!(
            section("regime=low_data").contains("| model | 2 | 0.800 [0.800, 0.800]"),
            "{text}"
        );
        assert!(
            section("regime=low_data").contains("| er | 2 | 0.200 [0.200, 0.200]"),
            "{text}"
        );
    }

    #[test]
    fn one_group_without_other_axes_and_none_without_references() {
        let (mut m, rows) = grid();
        for c in &mut m.coords {
            c.retain(|(a, _)| a != "regime");
        }
        assert_eq!(groups(&m).len(), 1);
        assert!(!aggregates(&m, &rows).contains("###"));
        m.references[5].clear();
        assert!(aggregates(&m, &rows).is_empty());
    }
}
