//! `mbrl plot`: mean evaluation curves over seeds with a 95% percentile
//! bootstrap band (what the reference's seaborn plots show), one panel per
//! facet (every axis but the agent), one line per agent; PNG and SVG.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Once;

use plotters::prelude::*;
use plotters::style::FontStyle;

use crate::report::{Manifest, MetricRow};
use crate::seeds::{Purpose, Stream};

const FONT: &[u8] = include_bytes!("DejaVuSans.ttf");
static REGISTER: Once = Once::new();

/// Mean and bootstrap band at each step of one series.
#[derive(Clone, Debug, PartialEq)]
pub struct Curve {
    pub label: String,
    pub points: Vec<(f64, f64, f64, f64)>,
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

/// Groups rows into panels (facets) of curves (agents).
pub fn curves(manifest: &Manifest, rows: &[MetricRow]) -> BTreeMap<String, Vec<Curve>> {
    let mut by_cell: BTreeMap<usize, BTreeMap<u64, Vec<f64>>> = BTreeMap::new();
    for r in rows.iter().filter(|r| r.value.is_finite()) {
        by_cell
            .entry(r.cell)
            .or_default()
            .entry(r.step)
            .or_default()
            .push(r.value);
    }
    let mut panels: BTreeMap<String, Vec<Curve>> = BTreeMap::new();
    for (cell, steps) in by_cell {
        let coords = manifest.coords.get(cell).cloned().unwrap_or_default();
        let facet: Vec<String> = coords
            .iter()
            .filter(|(k, _)| !k.starts_with("agent"))
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        let agent: Vec<String> = coords
            .iter()
            .filter(|(k, _)| k.starts_with("agent"))
            .map(|(_, v)| v.clone())
            .collect();
        let points = steps
            .iter()
            .map(|(step, values)| {
                let mean = values.iter().sum::<f64>() / values.len() as f64;
                let (lo, hi) = bootstrap_ci(values, 0.95, 1000, *step ^ cell as u64);
                (*step as f64, mean, lo, hi)
            })
            .collect();
        let label = match agent.is_empty() {
            true => format!("cell {cell}"),
            false => agent.join(" "),
        };
        panels
            .entry(facet.join(" "))
            .or_default()
            .push(Curve { label, points });
    }
    panels
}

/// Draws `RUN/plots/eval.png` and `eval.svg` from the run's metrics.
pub fn plot_run(dir: &Path) -> Result<Vec<PathBuf>, String> {
    let manifest: Manifest = ron::from_str(
        &std::fs::read_to_string(dir.join("manifest.ron"))
            .map_err(|e| format!("cannot read the manifest: {e}"))?,
    )
    .map_err(|e| format!("cannot parse the manifest: {e}"))?;
    let rows = read_metrics(&dir.join("metrics.csv"))?;
    let panels = curves(&manifest, &rows);
    if panels.is_empty() {
        return Err("the run has no evaluations yet".to_string());
    }
    REGISTER.call_once(|| {
        let _ = plotters::style::register_font("sans-serif", FontStyle::Normal, FONT);
    });
    let out = dir.join("plots");
    std::fs::create_dir_all(&out).map_err(|e| e.to_string())?;
    let cols = panels.len().min(3);
    let rows_n = panels.len().div_ceil(cols);
    let size = (480 * cols as u32, 360 * rows_n as u32);
    let png = out.join("eval.png");
    let svg = out.join("eval.svg");
    draw(
        BitMapBackend::new(&png, size).into_drawing_area(),
        &panels,
        cols,
        rows_n,
    )
    .map_err(|e| e.to_string())?;
    draw(
        SVGBackend::new(&svg, size).into_drawing_area(),
        &panels,
        cols,
        rows_n,
    )
    .map_err(|e| e.to_string())?;
    Ok(vec![png, svg])
}

fn draw<DB: DrawingBackend>(
    root: DrawingArea<DB, plotters::coord::Shift>,
    panels: &BTreeMap<String, Vec<Curve>>,
    cols: usize,
    rows: usize,
) -> Result<(), Box<dyn std::error::Error + 'static>>
where
    DB::ErrorType: 'static,
{
    root.fill(&WHITE)?;
    let areas = root.split_evenly((rows, cols));
    for ((title, curves), area) in panels.iter().zip(areas) {
        let xs = curves.iter().flat_map(|c| c.points.iter().map(|p| p.0));
        let x_max = xs.fold(1.0f64, f64::max);
        let ys = curves
            .iter()
            .flat_map(|c| c.points.iter().flat_map(|p| [p.2, p.3]));
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
            .x_desc("env steps")
            .x_labels(6)
            .x_label_formatter(&|x| steps_label(*x))
            .y_desc("eval")
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

fn read_metrics(path: &Path) -> Result<Vec<MetricRow>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read metrics: {e}"))?;
    let mut rows = Vec::new();
    for (n, line) in text.lines().enumerate().skip(1) {
        let f: Vec<&str> = line.split(',').collect();
        if f.get(3) != Some(&"eval") {
            continue;
        }
        let parse = || -> Option<MetricRow> {
            Some(MetricRow {
                cell: f.first()?.parse().ok()?,
                seed: f.get(1)?.parse().ok()?,
                step: f.get(2)?.parse().ok()?,
                metric: "eval",
                value: f.get(4)?.parse().ok()?,
            })
        };
        rows.push(
            parse().ok_or_else(|| format!("metrics.csv line {}: malformed row `{line}`", n + 1))?,
        );
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bootstrap_band_brackets_the_mean() {
        let values = [0.1, 0.2, 0.15, 0.3, 0.12];
        let (lo, hi) = bootstrap_ci(&values, 0.95, 1000, 0);
        let mean = values.iter().sum::<f64>() / 5.0;
        assert!(
            lo < mean && mean < hi && lo >= 0.1 && hi <= 0.3,
            "{lo} {mean} {hi}"
        );
        assert_eq!(bootstrap_ci(&[0.5, 0.5], 0.95, 100, 1), (0.5, 0.5));
    }
}
