//! `mbrl plot`: mean evaluation curves over seeds with a band (by default
//! the 95% percentile bootstrap band the reference's seaborn plots show),
//! as the experiment's `report` block asks: one panel per value of its
//! `facet` axes, one line per value of the others, against env steps or
//! gradient updates, optionally smoothed; PNG and SVG.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Once;

use plotters::prelude::*;
use plotters::style::FontStyle;

use crate::report::{Band, Manifest, MetricRow, ReportSpec};
use crate::seeds::{Purpose, Stream};

const FONT: &[u8] = include_bytes!("DejaVuSans.ttf");
static REGISTER: Once = Once::new();

/// Mean and bootstrap band at each step of one series.
#[derive(Clone, Debug, PartialEq)]
pub struct Curve {
    pub label: String,
    pub points: Vec<(f64, f64, f64, f64)>,
}

/// One panel: its curves and its horizontal reference lines `(label, level)`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Panel {
    pub curves: Vec<Curve>,
    pub lines: Vec<(String, f64)>,
}

/// The percentile bootstrap CI of the mean: `resamples` resamples of the
/// values with replacement, drawn from a fixed stream (deterministic plots).
pub fn bootstrap_ci(values: &[f64], level: f64, resamples: usize, stream: u64) -> (f64, f64) {
    let n = values.len();
    let mut rng = Stream::new(0, stream, Purpose::EvalAction, 0);
    let mut means: Vec<f64> = (0..resamples)
        .map(|_| (0..n).map(|_| values[rng.below(n)]).sum::<f64>() / n as f64)
        .collect();
    means.sort_by(|a, b| a.partial_cmp(b).expect("finite means"));
    let lo = ((1.0 - level) / 2.0 * resamples as f64).floor() as usize;
    let hi = (((1.0 + level) / 2.0 * resamples as f64).ceil() as usize).min(resamples) - 1;
    (means[lo.min(resamples - 1)], means[hi])
}

/// Mean minus and plus one standard error.
fn stderr_band(values: &[f64]) -> (f64, f64) {
    let n = values.len() as f64;
    let mean = values.iter().sum::<f64>() / n;
    let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0).max(1.0);
    let se = (var / n).sqrt();
    (mean - se, mean + se)
}

/// Trailing moving averages over `window` points of each of mean and band.
fn smoothed(points: Vec<(f64, f64, f64, f64)>, window: usize) -> Vec<(f64, f64, f64, f64)> {
    if window <= 1 {
        return points;
    }
    (0..points.len())
        .map(|i| {
            let from = (i + 1).saturating_sub(window);
            let part = &points[from..=i];
            let n = part.len() as f64;
            let avg = |f: fn(&(f64, f64, f64, f64)) -> f64| part.iter().map(f).sum::<f64>() / n;
            (points[i].0, avg(|p| p.1), avg(|p| p.2), avg(|p| p.3))
        })
        .collect()
}

/// Groups rows into panels (one per value of the report's facet axes) of
/// curves (one per value of the other axes).
pub fn curves(manifest: &Manifest, rows: &[MetricRow]) -> BTreeMap<String, Panel> {
    let report = &manifest.report;
    let mut by_cell: BTreeMap<usize, BTreeMap<u64, Vec<f64>>> = BTreeMap::new();
    for r in rows.iter().filter(|r| r.value.is_finite()) {
        by_cell
            .entry(r.cell)
            .or_default()
            .entry(r.step)
            .or_default()
            .push(r.value);
    }
    let mut panels: BTreeMap<String, Panel> = BTreeMap::new();
    for (cell, steps) in by_cell {
        let coords = manifest.coords.get(cell).cloned().unwrap_or_default();
        let in_facet = |k: &String| report.facet.iter().any(|f| f == k);
        let facet: Vec<String> = coords
            .iter()
            .filter(|(k, _)| in_facet(k))
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        let others: Vec<String> = coords
            .iter()
            .filter(|(k, _)| !in_facet(k))
            .map(|(_, v)| v.clone())
            .collect();
        let x = |step: u64| -> f64 {
            match (report.x.as_str(), manifest.updates.get(cell)) {
                ("updates", Some((starts, per_step))) => {
                    step.saturating_sub(*starts) as f64 * per_step
                }
                _ => step as f64,
            }
        };
        let points = steps
            .iter()
            .map(|(step, values)| {
                let mean = values.iter().sum::<f64>() / values.len() as f64;
                let (lo, hi) = match report.band {
                    Band::Bootstrap { level, resamples } => {
                        bootstrap_ci(values, level, resamples.max(1), *step ^ cell as u64)
                    }
                    Band::Stderr => stderr_band(values),
                };
                (x(*step), mean, lo, hi)
            })
            .collect();
        let points = smoothed(points, report.smooth);
        let label = match others.is_empty() {
            true => format!("cell {cell}"),
            false => others.join(" "),
        };
        let panel = panels.entry(facet.join(" ")).or_default();
        panel.curves.push(Curve { label, points });
        for (name, level) in manifest.references.get(cell).into_iter().flatten() {
            if !panel.lines.iter().any(|(n, l)| {
                n.starts_with(name.as_str()) && (l - level).abs() <= 1e-9 * level.abs().max(1.0)
            }) {
                panel
                    .lines
                    .push((format!("{name} {}", short(*level)), *level));
            }
        }
    }
    panels
}

/// Why a run cannot be plotted.
#[derive(Debug, thiserror::Error)]
pub enum PlotError {
    #[error(transparent)]
    Manifest(#[from] crate::report::ManifestError),
    #[error("`{0}` has no manifest: it is not a run directory")]
    NoManifest(String),
    #[error(transparent)]
    Damaged(#[from] crate::report::Damaged),
    #[error("the run has no evaluations yet")]
    Empty,
    #[error("cannot draw `{0}`: {1}")]
    Draw(String, String),
}

/// The files drawn, and what the metrics reader left out.
#[derive(Debug)]
pub struct Plotted {
    pub paths: Vec<PathBuf>,
    pub skipped: crate::report::Skipped,
}

/// Draws `RUN/plots/eval.png` and `eval.svg` from the run's verified
/// metrics, each written atomically.
pub fn plot_run(dir: &Path) -> Result<Plotted, PlotError> {
    let manifest = crate::report::read_manifest(dir)?
        .ok_or_else(|| PlotError::NoManifest(dir.display().to_string()))?;
    // Only the evaluations are drawn, so what is left out is counted among
    // them (a non-finite loss row was never going to be plotted).
    let (rows, left_out): (Vec<MetricRow>, Vec<MetricRow>) =
        crate::report::read_rows(dir, &manifest.hash)?
            .into_iter()
            .filter(|r| r.metric == "eval")
            .partition(|r| r.value.is_finite());
    let skipped = crate::report::Skipped {
        non_finite: left_out.len(),
    };
    let panels = curves(&manifest, &rows);
    if panels.is_empty() {
        return Err(PlotError::Empty);
    }
    REGISTER.call_once(|| {
        let _ = plotters::style::register_font("sans-serif", FontStyle::Normal, FONT);
    });
    let out = dir.join("plots");
    std::fs::create_dir_all(&out)
        .map_err(|e| PlotError::Draw(out.display().to_string(), e.to_string()))?;
    let cols = panels.len().min(3);
    let rows_n = panels.len().div_ceil(cols);
    let size = (480 * cols as u32, 360 * rows_n as u32);
    let axes = Axes::of(&manifest.report);
    let png = out.join("eval.png");
    let svg = out.join("eval.svg");
    atomically(&png, |tmp| {
        draw(
            BitMapBackend::new(tmp, size).into_drawing_area(),
            &panels,
            (cols, rows_n),
            &axes,
        )
    })?;
    atomically(&svg, |tmp| {
        draw(
            SVGBackend::new(tmp, size).into_drawing_area(),
            &panels,
            (cols, rows_n),
            &axes,
        )
    })?;
    Ok(Plotted {
        paths: vec![png, svg],
        skipped,
    })
}

/// Draws into a temporary file beside `path`, then renames it over `path`;
/// on failure the temporary file is removed and `path` is as it was.
fn atomically(
    path: &Path,
    draw: impl FnOnce(&Path) -> Result<(), Box<dyn std::error::Error + 'static>>,
) -> Result<(), PlotError> {
    // The backends pick the format from the extension: keep it last.
    let tmp = crate::report::temporary(path);
    let ext = path
        .extension()
        .map(|e| e.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = tmp.with_extension(format!("tmp.{ext}"));
    let result = draw(&tmp).map_err(|e| e.to_string()).and_then(|()| {
        let file = std::fs::File::open(&tmp).map_err(|e| e.to_string())?;
        file.sync_all().map_err(|e| e.to_string())?;
        std::fs::rename(&tmp, path).map_err(|e| e.to_string())
    });
    if let Err(why) = result {
        let _ = std::fs::remove_file(&tmp);
        return Err(PlotError::Draw(path.display().to_string(), why));
    }
    Ok(())
}

/// The axis titles a report asks for.
struct Axes {
    x: &'static str,
    y: &'static str,
}

impl Axes {
    fn of(report: &ReportSpec) -> Axes {
        Axes {
            x: match report.x.as_str() {
                "updates" => "gradient updates",
                _ => "env steps",
            },
            y: match report.metric.as_str() {
                "eval_return" => "eval return",
                "reward_rate" => "reward rate",
                _ => "eval",
            },
        }
    }
}

/// A level for a legend: 3 significant digits.
fn short(x: f64) -> String {
    format!("{x:.3}")
}

fn draw<DB: DrawingBackend>(
    root: DrawingArea<DB, plotters::coord::Shift>,
    panels: &BTreeMap<String, Panel>,
    (cols, rows): (usize, usize),
    axes: &Axes,
) -> Result<(), Box<dyn std::error::Error + 'static>>
where
    DB::ErrorType: 'static,
{
    root.fill(&WHITE)?;
    let areas = root.split_evenly((rows, cols));
    for ((title, panel), area) in panels.iter().zip(areas) {
        let curves = &panel.curves;
        let xs = curves.iter().flat_map(|c| c.points.iter().map(|p| p.0));
        let x_max = xs.fold(1.0f64, f64::max);
        let ys = curves
            .iter()
            .flat_map(|c| c.points.iter().flat_map(|p| [p.2, p.3]))
            .chain(panel.lines.iter().map(|(_, l)| *l));
        let (y_min, y_max) = ys.fold((f64::MAX, f64::MIN), |(lo, hi), y| (lo.min(y), hi.max(y)));
        let pad = ((y_max - y_min) * 0.05).max(1e-3);
        let mut chart = ChartBuilder::on(&area)
            .caption(title, ("sans-serif", 16))
            .margin(10)
            .x_label_area_size(30)
            .y_label_area_size(50)
            .build_cartesian_2d(0f64..x_max, (y_min - pad)..(y_max + pad))?;
        chart
            .configure_mesh()
            .x_desc(axes.x)
            .x_labels(6)
            .x_label_formatter(&|x| steps_label(*x))
            .y_desc(axes.y)
            .label_style(("sans-serif", 12))
            .draw()?;
        for (i, curve) in curves.iter().enumerate() {
            let color = Palette99::pick(i).to_rgba();
            let band: Vec<(f64, f64)> = curve
                .points
                .iter()
                .map(|p| (p.0, p.3))
                .chain(curve.points.iter().rev().map(|p| (p.0, p.2)))
                .collect();
            chart.draw_series(std::iter::once(Polygon::new(band, color.mix(0.2))))?;
            chart
                .draw_series(LineSeries::new(
                    curve.points.iter().map(|p| (p.0, p.1)),
                    color.stroke_width(2),
                ))?
                .label(curve.label.clone())
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 16, y)], color.stroke_width(2))
                });
        }
        for (i, (label, level)) in panel.lines.iter().enumerate() {
            let color = if i % 2 == 0 {
                BLACK
            } else {
                RGBColor(110, 110, 110)
            };
            chart
                .draw_series(DashedLineSeries::new(
                    [(0.0, *level), (x_max, *level)],
                    6,
                    4,
                    color.stroke_width(1),
                ))?
                .label(label.clone())
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 16, y)], color.stroke_width(1))
                });
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::LowerRight)
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .label_font(("sans-serif", 12))
            .draw()?;
    }
    root.present()?;
    Ok(())
}

/// `2500` -> `2.5k`, `1000000` -> `1M`: short tick labels.
fn steps_label(x: f64) -> String {
    let (value, unit) = match x.abs() {
        a if a >= 1e6 => (x / 1e6, "M"),
        a if a >= 1e3 => (x / 1e3, "k"),
        _ => (x, ""),
    };
    let text = format!("{value:.1}");
    format!("{}{unit}", text.trim_end_matches(".0"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A run of two agents on two envs, 2 seeds, evaluated at steps 100 and 200.
    fn run(report: ReportSpec) -> (Manifest, Vec<MetricRow>) {
        let coords = |agent: &str, env: &str| {
            vec![
                ("agent".to_string(), agent.to_string()),
                ("env".to_string(), env.to_string()),
            ]
        };
        let manifest = Manifest {
            experiment: "e".into(),
            source: "e.exp".into(),
            hash: String::new(),
            mbrl_version: String::new(),
            device: String::new(),
            host: String::new(),
            threads: 1,
            seeds: 2,
            scale: 1.0,
            cells: vec![String::new(); 4],
            coords: vec![
                coords("a", "x"),
                coords("a", "y"),
                coords("b", "x"),
                coords("b", "y"),
            ],
            report,
            updates: vec![(50, 2.0); 4],
            references: vec![vec![(crate::kinds::random::NAME.to_string(), 0.1)]; 4],
            metrics: vec![vec!["eval".to_string()]; 4],
            part: None,
            finished: true,
            checkpoints: None,
        };
        let mut rows = Vec::new();
        for cell in 0..4 {
            for (i, step) in [100u64, 200].iter().enumerate() {
                for seed in 0..2u64 {
                    rows.push(MetricRow {
                        cell,
                        seed,
                        step: *step,
                        metric: "eval".into(),
                        value: (cell * 10 + i * 2) as f64 + seed as f64,
                    });
                }
            }
        }
        (manifest, rows)
    }

    /// The report's facet axes make the panels and the other axes the
    /// lines; `x: updates` reads steps as updates; `stderr` and `smooth` shape the band.
    #[test]
    fn the_report_block_shapes_the_plot() {
        let (m, rows) = run(ReportSpec::default());
        let panels = curves(&m, &rows);
        assert_eq!(panels.keys().collect::<Vec<_>>(), ["env=x", "env=y"]);
        let labels: Vec<&str> = panels["env=x"]
            .curves
            .iter()
            .map(|c| c.label.as_str())
            .collect();
        assert_eq!(labels, ["a", "b"]);
        assert_eq!(
            panels["env=x"].lines,
            vec![("random 0.100".to_string(), 0.1)]
        );
        let (m, rows) = run(ReportSpec {
            facet: vec!["agent".into()],
            x: "updates".into(),
            band: Band::Stderr,
            smooth: 2,
            ..ReportSpec::default()
        });
        let panels = curves(&m, &rows);
        assert_eq!(panels.keys().collect::<Vec<_>>(), ["agent=a", "agent=b"]);
        let curve = &panels["agent=a"].curves[0];
        assert_eq!(curve.label, "x");
        // Step 100 is update (100 - 50) x 2; the mean of seeds 0.5 and 2.5 smoothed over two points.
        assert_eq!(curve.points[0], (100.0, 0.5, 0.0, 1.0));
        assert_eq!(curve.points[1].0, 300.0);
        assert_eq!(curve.points[1].1, (0.5 + 2.5) / 2.0);
    }

    /// With many values the percentile bootstrap of the mean is the normal
    /// interval `mean ± z se`: a band of another level, of the values' spread
    /// instead of the mean's, or off centre fails.
    #[test]
    fn bootstrap_band_is_the_normal_interval_of_the_mean_for_many_values() {
        let values: Vec<f64> = (0..400).map(|i| ((i * 37) % 101) as f64 / 100.0).collect();
        let n = values.len() as f64;
        let mean = values.iter().sum::<f64>() / n;
        let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n;
        let se = (var / n).sqrt();
        for (level, z) in [(0.95, 1.959964), (0.5, 0.674490)] {
            let (lo, hi) = bootstrap_ci(&values, level, 4000, 7);
            let half = (hi - lo) / 2.0;
            assert!(
                (half / (z * se) - 1.0).abs() < 0.1,
                "level {level}: half-width {half}, normal {}",
                z * se
            );
            assert!(
                ((lo + hi) / 2.0 - mean).abs() < 0.2 * se,
                "level {level}: centre {}",
                (lo + hi) / 2.0
            );
        }
        // Few values: within their range, around the mean; none vary, no band.
        let few = [0.1, 0.2, 0.15, 0.3, 0.12];
        let (lo, hi) = bootstrap_ci(&few, 0.95, 1000, 0);
        let mean = few.iter().sum::<f64>() / 5.0;
        assert!(
            lo < mean && mean < hi && lo >= 0.1 && hi <= 0.3,
            "{lo} {mean} {hi}"
        );
        assert_eq!(bootstrap_ci(&[0.5, 0.5], 0.95, 100, 1), (0.5, 0.5));
    }
}
