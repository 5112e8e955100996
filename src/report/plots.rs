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

pub use crate::report::PlotError;
use crate::report::{Band, Manifest, MetricRow, ReportSpec};
use crate::seeds::{Purpose, Stream};

const FONT: &[u8] = include_bytes!("DejaVuSans.ttf");
static REGISTER: Once = Once::new();

/// Mean and bootstrap band at each step of one series.
#[derive(Clone, Debug, PartialEq)]
pub struct Curve {
    pub label: String,
    /// The cell's values of the non-facet axes as resolved (overrides
    /// included), when they say more than the label: the figure's footer.
    pub settings: Option<String>,
    pub points: Vec<(f64, f64, f64, f64)>,
}

/// One panel: its curves, its horizontal reference lines `(label, level)`
/// and what its y axis measures.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Panel {
    pub curves: Vec<Curve>,
    pub lines: Vec<(String, f64)>,
    pub y: String,
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
    // An axis with one value in every cell says nothing about a line: the
    // subtitle names it once.
    let constant = constant_axes(manifest, &report.facet);
    for (cell, steps) in by_cell {
        let coords = manifest.coords.get(cell).cloned().unwrap_or_default();
        let in_facet = |k: &String| report.facet.iter().any(|f| f == k);
        let facet: Vec<String> = coords
            .iter()
            .filter(|(k, _)| in_facet(k))
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        let mut others: Vec<String> = coords
            .iter()
            .filter(|(k, _)| !in_facet(k) && !constant.iter().any(|(c, _)| c == k))
            .map(|(k, v)| legend_part(manifest, cell, k, v))
            .collect();
        if others.is_empty() {
            // Every line of the grid alike but for the facets: name its
            // agent anyway (or, without an agent axis, every axis).
            let agent = coords.iter().any(|(k, _)| k == "agent" && !in_facet(k));
            others = coords
                .iter()
                .filter(|(k, _)| !in_facet(k) && (!agent || k == "agent"))
                .map(|(k, v)| legend_part(manifest, cell, k, v))
                .collect();
        }
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
        let y = y_title(report, manifest.scored.get(cell).map(String::as_str));
        panel.y = match panel.y.is_empty() || panel.y == y {
            true => y,
            false => "eval score".into(),
        };
        let full: Vec<String> = coords
            .iter()
            .filter(|(k, _)| !in_facet(k))
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        let settings = full.join(" ");
        // A footer note only where the label leaves out a field the cell wrote.
        let unsaid = coords.iter().filter(|(k, _)| !in_facet(k)).any(|(_, v)| {
            written_fields(v)
                .iter()
                .any(|(k, w)| !label.contains(&format!("{k}={w}")))
        });
        let settings =
            (unsaid && full.iter().any(|f| f.contains('{') || f.contains('('))).then_some(settings);
        panel.curves.push(Curve {
            label,
            settings,
            points,
        });
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

/// The axes outside the facets whose value is the same in every cell
/// (`regime=quick` in a grid over agents alone), with that value.
fn constant_axes(manifest: &Manifest, facet: &[String]) -> Vec<(String, String)> {
    let Some(first) = manifest.coords.first() else {
        return Vec::new();
    };
    first
        .iter()
        .filter(|(k, _)| !facet.contains(k))
        .filter(|(k, v)| {
            manifest.coords.len() > 1
                && manifest
                    .coords
                    .iter()
                    .all(|c| c.iter().any(|(k2, v2)| k2 == k && v2 == v))
        })
        .cloned()
        .collect()
}

/// A cell's value of one axis as a legend shows it: an agent by its name,
/// with the fields in which it differs from another cell of the same agent
/// (`er lr=1e-4`), each as the experiment wrote it (`model_loss=mle_twin`,
/// not the loss's resolved body; a long resolved value the cell did not
/// write is left to the footer's settings unless labels would then
/// coincide); an env or regime by its name; a field by `name=value`.
fn legend_part(manifest: &Manifest, cell: usize, axis: &str, value: &str) -> String {
    let head = head_name(value);
    let field = axis.rsplit('.').next().unwrap_or(axis);
    if axis.contains('.') || head.is_empty() {
        return format!("{field}={value}");
    }
    if axis != "agent" {
        return head;
    }
    let twins = same_agent_cells(manifest, axis, value, &head);
    if twins.is_empty() {
        return head;
    }
    let mine = agent_label(manifest, cell, value, &head, &twins, true);
    // Each other cell's label against its own twins, as it will be drawn.
    let coincides = twins.iter().any(|t| {
        let theirs = manifest.coords[*t]
            .iter()
            .find(|(a, _)| a == axis)
            .map(|(_, v)| v.as_str())
            .unwrap_or_default();
        let their_twins = same_agent_cells(manifest, axis, theirs, &head);
        agent_label(manifest, *t, theirs, &head, &their_twins, true) == mine
    });
    match coincides {
        true => agent_label(manifest, cell, value, &head, &twins, false),
        false => mine,
    }
}

/// The name an axis value starts with (`er` of `er { lr: 1e-4 }`).
fn head_name(value: &str) -> String {
    value
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect()
}

/// Other cells whose agent has the same name but another value on `axis`.
fn same_agent_cells(manifest: &Manifest, axis: &str, value: &str, head: &str) -> Vec<usize> {
    (0..manifest.coords.len())
        .filter(|c| {
            manifest.coords[*c].iter().any(|(a, v)| {
                a == axis
                    && v != value
                    && v.starts_with(head)
                    && !v[head.len()..]
                        .starts_with(|ch: char| ch.is_ascii_alphanumeric() || ch == '_')
            })
        })
        .collect()
}

/// `head` and the resolved fields of `cell` that differ in one of `twins`;
/// `short` writes each as the cell's source wrote it, and leaves out a
/// long (structured) value it did not write.
fn agent_label(
    manifest: &Manifest,
    cell: usize,
    value: &str,
    head: &str,
    twins: &[usize],
    short: bool,
) -> String {
    let written = written_fields(value);
    let differing: Vec<String> = agent_fields(manifest, cell)
        .iter()
        .filter(|(k, v)| {
            twins.iter().any(|t| {
                agent_fields(manifest, *t)
                    .iter()
                    .any(|(k2, v2)| k2 == k && v2 != v)
            })
        })
        .filter_map(|(k, v)| {
            let w = written.iter().find(|(wk, _)| wk == k).map(|(_, w)| w);
            match (short, w) {
                (true, Some(w)) => Some(format!("{k}={w}")),
                (true, None) if v.contains(['{', '(', '[']) => None,
                _ => Some(format!("{k}={v}")),
            }
        })
        .collect();
    match (differing.is_empty(), short) {
        (true, true) => head.to_string(),
        (true, false) => value.to_string(),
        (false, _) => format!("{head} {}", differing.join(" ")),
    }
}

/// The top-level `field: value` overrides an axis value writes
/// (`er { lr: 1e-4, temperature: 0.1 }`), values as written.
fn written_fields(value: &str) -> Vec<(String, String)> {
    let Some(open) = value.find('{') else {
        return Vec::new();
    };
    let body = value[open + 1..].trim_end();
    let body = body.strip_suffix('}').unwrap_or(body);
    split_top(body, ',')
        .into_iter()
        .filter_map(|part| {
            let (k, v) = part.split_once(':')?;
            Some((k.trim().to_string(), v.trim().to_string()))
        })
        .collect()
}

/// `text` split at `sep` outside brackets.
fn split_top(text: &str, sep: char) -> Vec<&str> {
    let (mut out, mut depth, mut start) = (Vec::new(), 0i32, 0usize);
    for (i, ch) in text.char_indices() {
        match ch {
            '{' | '[' | '(' => depth += 1,
            '}' | ']' | ')' => depth -= 1,
            c if c == sep && depth == 0 => {
                out.push(&text[start..i]);
                start = i + 1;
            }
            _ => (),
        }
    }
    out.push(&text[start..]);
    out
}

/// The top-level `field=value` pairs of a cell's resolved agent (from the
/// manifest's cell line, `... agent=dqn{batch=320,lr=1e-4,...}`).
fn agent_fields(manifest: &Manifest, cell: usize) -> Vec<(String, String)> {
    let Some(line) = manifest.cells.get(cell) else {
        return Vec::new();
    };
    let Some(at) = line.rfind(" agent=") else {
        return Vec::new();
    };
    let text = &line[at + " agent=".len()..];
    let Some(open) = text.find('{') else {
        return Vec::new();
    };
    let body = text[open + 1..]
        .strip_suffix('}')
        .unwrap_or(&text[open + 1..]);
    split_top(body, ',')
        .into_iter()
        .filter_map(|part| {
            let (k, v) = part.split_once('=')?;
            Some((k.to_string(), v.to_string()))
        })
        .collect()
}

/// The y axis's title: the report's metric, or what the cell's protocol scores.
fn y_title(report: &ReportSpec, scored: Option<&str>) -> String {
    match (report.metric.as_str(), scored) {
        ("eval_return", _) => "eval return".into(),
        ("reward_rate", _) => "reward rate".into(),
        (_, Some(scored)) => scored.to_string(),
        _ => "eval score".into(),
    }
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
    let figure = Figure::of(&manifest, &panels, (cols, rows_n));
    let png = out.join("eval.png");
    let svg = out.join("eval.svg");
    // The PNG at twice the SVG's size: sharp on a 2x screen and in print.
    let (w, h) = figure.size(2.0);
    atomically(&png, |tmp| {
        draw(
            BitMapBackend::new(tmp, (w, h)).into_drawing_area(),
            &panels,
            &figure,
            2.0,
        )
    })?;
    let (w, h) = figure.size(1.0);
    atomically(&svg, |tmp| {
        draw(
            SVGBackend::new(tmp, (w, h)).into_drawing_area(),
            &panels,
            &figure,
            1.0,
        )
    })?;
    let mut paths = vec![png, svg];
    // `aggregates.{png,svg}` over all cells, `aggregates-regime=low_data.{png,svg}` per group.
    for (i, (label, cells)) in crate::report::summary::groups(&manifest).iter().enumerate() {
        if let Some(agents) = crate::report::summary::normalized_tasks(&manifest, &rows, cells) {
            let (name, over) = match i {
                0 => ("aggregates".to_string(), String::new()),
                _ => (
                    format!("aggregates-{}", label.replace(' ', "-")),
                    format!(", {label}"),
                ),
            };
            paths.extend(plot_aggregates(&out, &manifest, &agents, &name, &over)?);
        }
    }
    Ok(Plotted { paths, skipped })
}

/// What the aggregate plot shows.
struct Aggregates<'a> {
    title: String,
    labels: Vec<String>,
    intervals: Vec<Vec<crate::report::stats::Interval>>,
    taus: Vec<f64>,
    profiles: Vec<Vec<crate::report::stats::Interval>>,
    agents: &'a [(String, Vec<Vec<f64>>)],
}

fn draw_aggregates<DB: DrawingBackend>(
    root: DrawingArea<DB, plotters::coord::Shift>,
    a: &Aggregates,
    scale: f64,
) -> Result<(), Box<dyn std::error::Error + 'static>>
where
    DB::ErrorType: 'static,
{
    let (title, labels, intervals, taus, profiles, agents) = (
        &a.title,
        &a.labels,
        &a.intervals,
        &a.taus,
        &a.profiles,
        a.agents,
    );
    let px = |v: f64| (v * scale).round() as u32;
    let font = |size: f64| ("sans-serif", size * scale);
    root.fill(&WHITE)?;
    let (head, body) = root.split_vertically(px(56.0));
    head.draw(&Text::new(
        title.clone(),
        (px(12.0) as i32, px(10.0) as i32),
        font(14.0).into_font(),
    ))?;
    head.draw(&Text::new(
        "a seed's score: its mean evaluation over the last 10% of the steps; bars: 95% stratified bootstrap intervals, black: the estimate",
        (px(12.0) as i32, px(32.0) as i32),
        font(11.0).into_font(),
    ))?;
    let (left, right) = body.split_horizontally(body.dim_in_pixel().0 * 3 / 5);
    // The first panel carries the agents' names: as wide as the others plus them.
    let names_w = px(100.0);
    let panel_w = left.dim_in_pixel().0.saturating_sub(names_w) / 4;
    let (first, rest) = left.split_horizontally(names_w + panel_w);
    let mut metric_areas = vec![first];
    metric_areas.extend(rest.split_evenly((1, 3)));
    let names = ["IQM", "mean", "median", "optimality gap"];
    for (m, area) in metric_areas.into_iter().enumerate() {
        let lo = intervals
            .iter()
            .map(|v| v[m].lo)
            .fold(f64::MAX, f64::min)
            .min(0.0);
        let hi = intervals
            .iter()
            .map(|v| v[m].hi)
            .fold(f64::MIN, f64::max)
            .max(1.0);
        let n = agents.len() as f64;
        let mut chart = ChartBuilder::on(&area)
            .caption(names[m], font(13.0))
            .margin(px(6.0))
            .x_label_area_size(px(30.0))
            .y_label_area_size(if m == 0 { names_w } else { px(8.0) })
            .build_cartesian_2d(lo..hi, -0.5..n - 0.5)?;
        chart
            .configure_mesh()
            .disable_y_mesh()
            .x_labels(3)
            .y_labels(agents.len())
            .y_label_formatter(&|y| {
                let i = y.round() as usize;
                match (m, labels.get(i)) {
                    (0, Some(l)) if (y - y.round()).abs() < 1e-6 => l.clone(),
                    _ => String::new(),
                }
            })
            .label_style(font(11.0))
            .bold_line_style(RGBColor(225, 225, 225).stroke_width(px(1.0)))
            .light_line_style(TRANSPARENT)
            .draw()?;
        for (i, v) in intervals.iter().enumerate() {
            let color = Palette99::pick(i).to_rgba();
            let y = i as f64;
            chart.draw_series(std::iter::once(Rectangle::new(
                [(v[m].lo, y - 0.3), (v[m].hi, y + 0.3)],
                color.mix(0.45).filled(),
            )))?;
            chart.draw_series(std::iter::once(PathElement::new(
                vec![(v[m].estimate, y - 0.3), (v[m].estimate, y + 0.3)],
                BLACK.stroke_width(px(2.0)),
            )))?;
        }
    }
    let mut chart = ChartBuilder::on(&right)
        .caption("performance profile", font(13.0))
        .margin(px(8.0))
        .margin_right(px(16.0))
        .x_label_area_size(px(40.0))
        .y_label_area_size(px(50.0))
        .build_cartesian_2d(taus[0]..taus[taus.len() - 1], 0.0..1.0)?;
    chart
        .configure_mesh()
        .x_desc("normalized score tau")
        .x_label_formatter(&|x| format!("{:.1}", if x.abs() < 1e-9 { 0.0 } else { *x }))
        .y_desc("fraction of runs > tau")
        .label_style(font(11.0))
        .axis_desc_style(font(12.0))
        .bold_line_style(RGBColor(225, 225, 225).stroke_width(px(1.0)))
        .light_line_style(TRANSPARENT)
        .draw()?;
    for (i, band) in profiles.iter().enumerate() {
        let color = Palette99::pick(i).to_rgba();
        let poly: Vec<(f64, f64)> = taus
            .iter()
            .zip(band)
            .map(|(t, b)| (*t, b.hi))
            .chain(taus.iter().zip(band).rev().map(|(t, b)| (*t, b.lo)))
            .collect();
        chart.draw_series(std::iter::once(Polygon::new(poly, color.mix(0.2))))?;
        chart
            .draw_series(LineSeries::new(
                taus.iter().zip(band).map(|(t, b)| (*t, b.estimate)),
                color.stroke_width(px(2.0)),
            ))?
            .label(labels[i].clone())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 16, y)], color.stroke_width(2))
            });
    }
    // Lower left: below the profiles' start at 1 (every run beats a
    // negative tau), where no line runs.
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerLeft)
        .background_style(WHITE.mix(0.9))
        .border_style(RGBColor(180, 180, 180))
        .label_font(font(11.0))
        .draw()?;
    root.present()?;
    Ok(())
}

/// Resamples behind the aggregate plot's intervals and profile bands.
const AGGREGATE_RESAMPLES: usize = 2_000;

/// `plots/NAME.{png,svg}` (`aggregates` over all cells, `aggregates-regime=low_data`
/// over a group of them): per agent, rliable's interval plot (IQM,
/// mean, median and optimality gap of normalized final scores with 95%
/// stratified-bootstrap intervals) and its performance profile (the share of
/// runs above each normalized score, with a 95% band).
fn plot_aggregates(
    out: &Path,
    manifest: &Manifest,
    agents: &[(String, Vec<Vec<f64>>)],
    name: &str,
    over: &str,
) -> Result<Vec<PathBuf>, PlotError> {
    use crate::report::stats::{self, Aggregate};
    let intervals: Vec<Vec<stats::Interval>> = agents
        .iter()
        .enumerate()
        .map(|(i, (_, tasks))| {
            [
                Aggregate::Iqm,
                Aggregate::Mean,
                Aggregate::Median,
                Aggregate::OptimalityGap,
            ]
            .iter()
            .map(|a| {
                stats::aggregate_interval(*a, tasks, 0.95, AGGREGATE_RESAMPLES, 1000 + i as u64)
            })
            .collect()
        })
        .collect();
    let taus: Vec<f64> = (0..=40).map(|i| -0.5 + i as f64 * 0.05).collect();
    let profiles: Vec<Vec<stats::Interval>> = agents
        .iter()
        .enumerate()
        .map(|(i, (_, tasks))| {
            stats::profile_band(tasks, &taus, 0.95, AGGREGATE_RESAMPLES, 2000 + i as u64)
        })
        .collect();
    let labels: Vec<String> = agents
        .iter()
        .map(|(a, _)| {
            a.chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect()
        })
        .collect();
    let title = format!(
        "{}{over}: normalized final scores (random 0, optimum 1), {} seeds per cell",
        manifest.experiment, manifest.seeds
    );
    let shown = Aggregates {
        title,
        labels,
        intervals,
        taus,
        profiles,
        agents,
    };
    let size = |scale: f64| {
        (
            (960.0 * scale) as u32,
            ((76.0 + 60.0 * agents.len() as f64).max(340.0) * scale) as u32,
        )
    };
    let png = out.join(format!("{name}.png"));
    let svg = out.join(format!("{name}.svg"));
    atomically(&png, |tmp| {
        draw_aggregates(
            BitMapBackend::new(tmp, size(2.0)).into_drawing_area(),
            &shown,
            2.0,
        )
    })?;
    atomically(&svg, |tmp| {
        draw_aggregates(
            SVGBackend::new(tmp, size(1.0)).into_drawing_area(),
            &shown,
            1.0,
        )
    })?;
    Ok(vec![png, svg])
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

/// What a figure shows besides its panels: the title, the x axis, the grid
/// of panels, and the legend's entries (every curve label and reference line
/// once, each curve label with one colour in every panel).
struct Figure {
    title: String,
    subtitle: String,
    /// `label: settings` per line whose cell's values say more than its label.
    notes: Vec<String>,
    x: &'static str,
    grid: (usize, usize),
    curves: Vec<String>,
    lines: Vec<String>,
}

/// Logical pixels of one panel, the legend row and the title.
const PANEL: (u32, u32) = (420, 300);
const TITLE: u32 = 52;
const LEGEND_ROW: u32 = 22;
const NOTE_ROW: u32 = 15;

impl Figure {
    fn of(manifest: &Manifest, panels: &BTreeMap<String, Panel>, grid: (usize, usize)) -> Figure {
        let mut curves: Vec<String> = Vec::new();
        let mut lines: Vec<String> = Vec::new();
        let mut notes: Vec<String> = Vec::new();
        for panel in panels.values() {
            for c in &panel.curves {
                if !curves.contains(&c.label) {
                    curves.push(c.label.clone());
                }
                if let Some(settings) = &c.settings {
                    let note = format!("{}: {settings}", c.label);
                    if !notes.contains(&note) {
                        notes.push(note);
                    }
                }
            }
            for (l, _) in &panel.lines {
                let name = l.split(' ').next().unwrap_or(l).to_string();
                if !lines.contains(&name) {
                    lines.push(name);
                }
            }
        }
        let band = match manifest.report.band {
            Band::Bootstrap { level, .. } => {
                format!(
                    "{}% bootstrap interval of the mean",
                    crate::schema::num(level * 100.0)
                )
            }
            Band::Stderr => "mean +- one standard error".into(),
        };
        let smooth = match manifest.report.smooth {
            0 | 1 => String::new(),
            n => format!(", smoothed over {n} evaluations"),
        };
        Figure {
            title: format!(
                "{}: mean of {} seeds per cell",
                manifest.experiment, manifest.seeds
            ),
            subtitle: {
                let every: Vec<String> = constant_axes(manifest, &manifest.report.facet)
                    .iter()
                    .map(|(k, v)| match v.len() <= 40 {
                        true => format!("{k}={v}"),
                        false => format!("{k}={} {{..}}", head_name(v)),
                    })
                    .collect();
                match every.is_empty() {
                    true => format!("shaded: {band}{smooth}"),
                    false => format!("every cell: {}; shaded: {band}{smooth}", every.join(" ")),
                }
            },
            notes,
            x: match manifest.report.x.as_str() {
                "updates" => "gradient updates",
                _ => "env steps",
            },
            grid,
            curves,
            lines,
        }
    }

    fn legend_rows(&self) -> u32 {
        (self.curves.len() + self.lines.len()).div_ceil(self.per_row()) as u32
    }

    /// Legend entries per row: two per panel column, fewer when the
    /// longest label would not fit its column (about 7 px a character at
    /// the legend's 12 px, after a 60 px swatch).
    fn per_row(&self) -> usize {
        let longest = self
            .curves
            .iter()
            .chain(&self.lines)
            .map(|l| l.chars().count() + 9)
            .max()
            .unwrap_or(0);
        let fits = (PANEL.0 * self.grid.0 as u32) as usize / (60 + 7 * longest);
        fits.clamp(1, (self.grid.0 * 2).max(2))
    }

    /// A footer note cut to the figure's width (10 px text, about 5.8 px a
    /// character); the manifest keeps every setting in full.
    fn fitted(&self, note: &str) -> String {
        let room = ((PANEL.0 * self.grid.0 as u32) as f64 - 24.0) / 5.8;
        let room = room.max(20.0) as usize;
        match note.chars().count() > room {
            true => {
                let cut: String = note.chars().take(room - 16).collect();
                format!("{cut}... (manifest.ron)")
            }
            false => note.to_string(),
        }
    }

    /// Pixel size at `scale` times the logical size.
    fn size(&self, scale: f64) -> (u32, u32) {
        let w = PANEL.0 * self.grid.0 as u32;
        let h = TITLE
            + PANEL.1 * self.grid.1 as u32
            + LEGEND_ROW * self.legend_rows()
            + NOTE_ROW * self.notes.len() as u32
            + 12;
        ((w as f64 * scale) as u32, (h as f64 * scale) as u32)
    }

    fn color(&self, label: &str) -> RGBAColor {
        let i = self.curves.iter().position(|c| c == label).unwrap_or(0);
        Palette99::pick(i).to_rgba()
    }
}

/// A level for a legend: 3 significant digits.
fn short(x: f64) -> String {
    format!("{x:.3}")
}

fn draw<DB: DrawingBackend>(
    root: DrawingArea<DB, plotters::coord::Shift>,
    panels: &BTreeMap<String, Panel>,
    figure: &Figure,
    scale: f64,
) -> Result<(), Box<dyn std::error::Error + 'static>>
where
    DB::ErrorType: 'static,
{
    let px = |v: f64| (v * scale).round() as u32;
    let font = |size: f64| ("sans-serif", size * scale);
    root.fill(&WHITE)?;
    let (title_area, rest) = root.split_vertically(px(TITLE as f64));
    title_area.draw(&Text::new(
        figure.title.clone(),
        (px(12.0) as i32, px(10.0) as i32),
        font(15.0).into_font(),
    ))?;
    title_area.draw(&Text::new(
        figure.subtitle.clone(),
        (px(12.0) as i32, px(31.0) as i32),
        font(12.0).into_font(),
    ))?;
    let legend_h =
        px((LEGEND_ROW * figure.legend_rows() + NOTE_ROW * figure.notes.len() as u32 + 12) as f64);
    let (plots, legend) = rest.split_vertically(rest.dim_in_pixel().1 - legend_h);
    let areas = plots.split_evenly((figure.grid.1, figure.grid.0));
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
            .caption(title, font(14.0))
            .margin(px(8.0))
            .margin_right(px(20.0))
            .x_label_area_size(px(38.0))
            .y_label_area_size(px(60.0))
            .build_cartesian_2d(0f64..x_max, (y_min - pad)..(y_max + pad))?;
        chart
            .configure_mesh()
            .x_desc(figure.x)
            .x_labels(6)
            .y_labels(6)
            .x_label_formatter(&|x| steps_label(*x))
            .y_desc(panel.y.as_str())
            .label_style(font(12.0))
            .axis_desc_style(font(13.0))
            .bold_line_style(RGBColor(225, 225, 225).stroke_width(px(1.0)))
            .light_line_style(TRANSPARENT)
            .draw()?;
        for curve in curves {
            let color = figure.color(&curve.label);
            let band: Vec<(f64, f64)> = curve
                .points
                .iter()
                .map(|p| (p.0, p.3))
                .chain(curve.points.iter().rev().map(|p| (p.0, p.2)))
                .collect();
            chart.draw_series(std::iter::once(Polygon::new(band, color.mix(0.2))))?;
            chart.draw_series(LineSeries::new(
                curve.points.iter().map(|p| (p.0, p.1)),
                color.stroke_width(px(2.0)),
            ))?;
        }
        for (label, level) in &panel.lines {
            let color = line_color(figure, label);
            chart.draw_series(DashedLineSeries::new(
                [(0.0, *level), (x_max, *level)],
                px(6.0),
                px(4.0),
                color.stroke_width(px(1.5)),
            ))?;
        }
    }
    // One legend for the whole figure, below the panels: a curve's swatch
    // solid, a reference line's dashed, as drawn.
    let entries = figure
        .curves
        .iter()
        .map(|c| (c.clone(), figure.color(c), false))
        .chain(
            figure
                .lines
                .iter()
                .map(|l| (format!("{l} (dashed)"), line_color(figure, l), true)),
        );
    let width = legend.dim_in_pixel().0 as f64 / figure.per_row() as f64;
    for (i, (label, color, dashed)) in entries.enumerate() {
        let (row, col) = (i / figure.per_row(), i % figure.per_row());
        let x = (px(12.0) as f64 + col as f64 * width) as i32;
        let y = px((8 + LEGEND_ROW * row as u32 + LEGEND_ROW / 2) as f64) as i32;
        let dash = px(6.0) as i32;
        let segments: Vec<(i32, i32)> = match dashed {
            true => vec![
                (x, x + dash),
                (x + dash + px(3.0) as i32, x + 2 * dash + px(3.0) as i32),
                (
                    x + 2 * dash + 2 * px(3.0) as i32,
                    x + 3 * dash + 2 * px(3.0) as i32,
                ),
            ],
            false => vec![(x, x + 3 * dash + 2 * px(3.0) as i32)],
        };
        for (a, b) in segments {
            let stroke = color.stroke_width(px(if dashed { 1.5 } else { 2.0 }));
            legend.draw(&PathElement::new(vec![(a, y), (b, y)], stroke))?;
        }
        let text_x = x + 3 * dash + 2 * px(3.0) as i32 + px(6.0) as i32;
        legend.draw(&Text::new(
            label,
            (text_x, y - px(7.0) as i32),
            font(12.0).into_font(),
        ))?;
    }
    // Under the legend, each line's settings as they ran (overrides included).
    let notes_top = 8 + LEGEND_ROW * figure.legend_rows();
    for (i, note) in figure.notes.iter().enumerate() {
        legend.draw(&Text::new(
            figure.fitted(note),
            (
                px(12.0) as i32,
                px((notes_top + NOTE_ROW * i as u32) as f64) as i32,
            ),
            font(10.0).into_font(),
        ))?;
    }
    root.present()?;
    Ok(())
}

/// Reference lines in black and grey, by name.
fn line_color(figure: &Figure, label: &str) -> RGBAColor {
    let name = label.split(' ').next().unwrap_or(label);
    match figure.lines.iter().position(|l| l == name).unwrap_or(0) % 2 {
        0 => BLACK.to_rgba(),
        _ => RGBColor(110, 110, 110).to_rgba(),
    }
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
            budgets: vec![200; 4],
            claims: Vec::new(),
            scored: vec!["reward rate".into(); 4],
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

    /// Cells of one agent are told apart by the fields that differ, as the
    /// experiment wrote them: a loss by its name rather than its resolved
    /// body, which the base agent's label leaves out; labels that would
    /// coincide fall back to the resolved values.
    #[test]
    fn legend_labels_name_what_differs_as_written() {
        let (mut m, _) = run(ReportSpec::default());
        let agents = [
            "slbo_mle",
            "slbo_mle { model_loss: mle_twin }",
            "slbo_mle { model_loss: vagram, lr: 1e-3 }",
            "er { lr: 1e-4 }",
        ];
        let resolved = [
            "slbo{lr=1e-4,model_loss=mle{horizon=2}}",
            "slbo{lr=1e-4,model_loss=expression{body=mean(a, b)}}",
            "slbo{lr=1e-3,model_loss=expression{body=mean(c, d)}}",
            "dqn{lr=1e-4}",
        ];
        for (c, (a, r)) in agents.iter().zip(resolved).enumerate() {
            m.coords[c] = vec![("agent".into(), a.to_string())];
            m.cells[c] = format!("env=x agent={r}");
        }
        let labels: Vec<String> = (0..4)
            .map(|c| legend_part(&m, c, "agent", agents[c]))
            .collect();
        assert_eq!(
            labels,
            [
                "slbo_mle lr=1e-4",
                "slbo_mle lr=1e-4 model_loss=mle_twin",
                "slbo_mle lr=1e-3 model_loss=vagram",
                "er",
            ]
        );
        // With two cells alone, the base agent is still its name alone.
        let (mut two, _) = run(ReportSpec::default());
        two.coords.truncate(2);
        two.cells.truncate(2);
        for c in 0..2 {
            two.coords[c] = m.coords[c].clone();
            two.cells[c] = format!("env=x agent={}", resolved[c].replace("lr=1e-4,", ""));
        }
        assert_eq!(legend_part(&two, 0, "agent", agents[0]), "slbo_mle");
        assert_eq!(
            legend_part(&two, 1, "agent", agents[1]),
            "slbo_mle model_loss=mle_twin"
        );
        // Two unwritten bodies that differ: the short labels would coincide.
        m.coords[1] = vec![("agent".into(), "slbo_mle {}".into())];
        assert_eq!(
            legend_part(&m, 1, "agent", "slbo_mle {}"),
            "slbo_mle lr=1e-4 model_loss=expression{body=mean(a, b)}"
        );
        assert_eq!(
            written_fields("a { x: f(1, 2), y: b { z: 1 } }"),
            [
                ("x".into(), "f(1, 2)".into()),
                ("y".into(), "b { z: 1 }".into())
            ]
        );
    }

    /// An axis with one value in every cell is left out of the lines'
    /// labels and named once in the subtitle.
    #[test]
    fn an_axis_alike_in_every_cell_is_named_once() {
        let (mut m, rows) = run(ReportSpec::default());
        for c in m.coords.iter_mut() {
            c.push(("regime".into(), "quick".into()));
        }
        m.report.facet = vec!["env".into()];
        let panels = curves(&m, &rows);
        let labels: Vec<&str> = panels["env=x"]
            .curves
            .iter()
            .map(|c| c.label.as_str())
            .collect();
        assert_eq!(labels, ["a", "b"]);
        let figure = Figure::of(&m, &panels, (2, 1));
        assert!(
            figure
                .subtitle
                .starts_with("every cell: regime=quick; shaded:"),
            "{}",
            figure.subtitle
        );
        // Lines alike but for the facets keep their names.
        for c in m.coords.iter_mut() {
            c[0].1 = "a".into();
        }
        let panels = curves(&m, &rows);
        assert_eq!(panels["env=x"].curves[0].label, "a");
    }

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
