//! Claims: the `expect` lines of an experiment, resolved against its grid
//! (which cells each side is, stratum by stratum), and their verdicts on a
//! run's evaluations.
//!
//! A claim compares two values of one axis (two agents, say) on a per-seed
//! summary of the evaluation curve. Its estimate is the difference of the
//! sides' means, averaged over the strata it covers (the combinations of the
//! other axes' values), in one of four [`Units`]: steps for `steps_to`; for
//! the other summaries, the raw metric within one stratum and, across
//! several, scores normalized from the random agent (0) to the optimum (1)
//! when every cell has both reference levels, or else each stratum's
//! difference in units of its pooled standard deviation over seeds (raw
//! metrics of different envs do not average). Its interval is the
//! stratified bootstrap of that difference (seeds resampled within each
//! cell), read as an expanded percentile interval ([`stats::Method::Expanded`]),
//! seeded from the claim's text, so that a verdict is reproducible.
//!
//! Verdicts, for a margin `m >= 0` and the interval `[lo, hi]` of
//! `left - right`: `a > b` holds when `lo > m` and fails when `hi < m`;
//! `a >= b` (no worse, within the margin) holds when `lo > -m` and fails when
//! `hi < -m`; `<` and `<=` mirror them. Anything else is inconclusive, and so
//! is a claim with fewer than two seeds a side in some stratum.
//!
//! Invariants: pure functions of the manifest and the metric rows; nothing
//! here reads or writes files.

use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use crate::report::stats::{self, Interval, Method};
use crate::report::{Manifest, MetricRow};

/// Bootstrap resamples behind each claim's interval.
pub const RESAMPLES: usize = 10_000;

/// A claim, resolved against the grid by `check`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Claim {
    /// The claim as the user wrote it, less `expect`.
    pub text: String,
    /// The axis whose values are compared (`agent`).
    pub axis: String,
    /// The two sides: values of `axis`, as the cells' coordinates name them.
    pub left: String,
    pub right: String,
    pub op: Op,
    /// The difference that counts, in the claim's units (>= 0).
    pub margin: f64,
    /// The confidence level of the interval, in (0, 1).
    pub level: f64,
    pub summary: Summary,
    /// The cells compared, one pair per combination of the other axes.
    pub strata: Vec<Stratum>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Op {
    /// `>`: left is better by more than the margin.
    Better,
    /// `>=`: left is no worse than right by more than the margin.
    NoWorse,
    /// `<`: left is worse by more than the margin.
    Worse,
    /// `<=`: left is no better than right by more than the margin.
    NoBetter,
}

impl Op {
    pub fn symbol(self) -> &'static str {
        match self {
            Op::Better => ">",
            Op::NoWorse => ">=",
            Op::Worse => "<",
            Op::NoBetter => "<=",
        }
    }
}

/// A seed's evaluation curve as one number.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub enum Summary {
    /// The mean of the evaluations in the last fraction of the budget
    /// (`final(10%)`: steps above 90% of the cell's steps).
    Final(f64),
    /// The mean of all evaluations: the area under the curve over its length.
    Auc,
    /// The env steps of the first evaluation at or above a level: the metric's
    /// value, or (`normalized`) a share of the way from the random agent's
    /// level to the optimum. A seed that never reaches it counts its budget
    /// (a censored time: the true one is at least that).
    StepsTo { level: f64, normalized: bool },
}

impl Summary {
    pub fn text(&self) -> String {
        match self {
            Summary::Final(f) => format!("final({}%)", crate::schema::num(f * 100.0)),
            Summary::Auc => "auc".into(),
            Summary::StepsTo {
                level,
                normalized: true,
            } => format!("steps_to({}%)", crate::schema::num(level * 100.0)),
            Summary::StepsTo { level, .. } => format!("steps_to({})", crate::schema::num(*level)),
        }
    }
}

/// What a claim's difference is measured in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Units {
    /// The evaluation metric itself (one stratum).
    Metric,
    /// Scores normalized from the random agent (0) to the optimum (1).
    Normalized,
    /// Each stratum's difference over its pooled standard deviation over
    /// seeds (several strata without both reference levels everywhere).
    Sd,
    /// Env steps (`steps_to`).
    Steps,
}

impl Units {
    pub fn text(self) -> &'static str {
        match self {
            Units::Metric => "metric",
            Units::Normalized => "normalized",
            Units::Sd => "pooled sd",
            Units::Steps => "steps",
        }
    }
}

/// One combination of the other axes' values, and the cells of the two sides there.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Stratum {
    /// `env=flute regime=quick`.
    pub label: String,
    pub left: usize,
    pub right: usize,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    Holds,
    Fails,
    Inconclusive,
}

impl Verdict {
    pub fn text(self) -> &'static str {
        match self {
            Verdict::Holds => "holds",
            Verdict::Fails => "fails",
            Verdict::Inconclusive => "inconclusive",
        }
    }
}

/// A claim's verdict on a run.
#[derive(Clone, Debug, PartialEq)]
pub struct Outcome {
    pub claim: Claim,
    /// The fewest seeds with a complete summary on each side, over the strata.
    pub seeds: (usize, usize),
    /// The seeds each cell of the claim has planned.
    pub planned: u64,
    /// What the difference is measured in.
    pub units: Units,
    /// `left - right` and its interval; `None` without two seeds a side.
    pub difference: Option<Interval>,
    /// `P(left > right)` for a seed of each side, averaged over the strata.
    pub improvement: Option<f64>,
    pub verdict: Verdict,
}

/// Every claim of `manifest` on `rows` (all of a run's or those written so far).
pub fn evaluate(manifest: &Manifest, rows: &[MetricRow]) -> Vec<Outcome> {
    evaluate_with(manifest, rows, RESAMPLES)
}

/// [`evaluate`] with this many bootstrap resamples per claim.
fn evaluate_with(manifest: &Manifest, rows: &[MetricRow], resamples: usize) -> Vec<Outcome> {
    manifest
        .claims
        .iter()
        .map(|claim| outcome(claim, manifest, rows, resamples))
        .collect()
}

/// Per seed, the summary of a cell's evaluations; seeds whose window is not
/// complete yet (in a run still being written) are left out, and so is
/// every seed of a cell without the reference levels a normalized
/// `steps_to` level needs.
pub fn summaries(
    manifest: &Manifest,
    rows: &[MetricRow],
    cell: usize,
    summary: Summary,
) -> Vec<f64> {
    let budget = manifest.budgets.get(cell).copied().unwrap_or(0);
    let level = match summary {
        Summary::StepsTo {
            level,
            normalized: true,
        } => match scale(manifest, cell) {
            Some((r, o)) => Some(r + level * (o - r)),
            None => return Vec::new(),
        },
        Summary::StepsTo { level, .. } => Some(level),
        _ => None,
    };
    let mut by_seed: std::collections::BTreeMap<u64, Vec<(u64, f64)>> = Default::default();
    for row in rows.iter().filter(|r| r.cell == cell && r.metric == "eval") {
        by_seed
            .entry(row.seed)
            .or_default()
            .push((row.step, row.value));
    }
    by_seed
        .into_values()
        .filter(|evals| evals.iter().map(|e| e.0).max().unwrap_or(0) >= budget)
        .filter_map(|mut evals| {
            evals.sort_by_key(|e| e.0);
            if let Some(level) = level {
                let reached = evals.iter().find(|e| e.1 >= level).map(|e| e.0);
                return Some(reached.unwrap_or(budget).min(budget) as f64);
            }
            let values: Vec<f64> = evals
                .iter()
                .filter(|(step, _)| match summary {
                    Summary::Final(f) => *step as f64 > budget as f64 * (1.0 - f),
                    _ => true,
                })
                .map(|e| e.1)
                .collect();
            (!values.is_empty()).then(|| stats::mean(&values))
        })
        .collect()
}

/// A cell's reference levels `(random, optimum)`, when it has both and they differ.
pub fn scale(manifest: &Manifest, cell: usize) -> Option<(f64, f64)> {
    let refs = manifest.references.get(cell)?;
    let level = |name: &str| refs.iter().find(|(n, _)| n == name).map(|(_, v)| *v);
    match (level("random"), level("optimum")) {
        (Some(r), Some(o)) if o != r => Some((r, o)),
        _ => None,
    }
}

/// The units a claim's difference is measured in, given its summary and strata.
pub fn units(claim: &Claim, manifest: &Manifest) -> Units {
    let scaled =
        |s: &Stratum| scale(manifest, s.left).is_some() && scale(manifest, s.right).is_some();
    match claim.summary {
        Summary::StepsTo { .. } => Units::Steps,
        _ if claim.strata.len() < 2 => Units::Metric,
        _ if claim.strata.iter().all(scaled) => Units::Normalized,
        _ => Units::Sd,
    }
}

/// The pooled standard deviation of two samples (1 where it is 0 or
/// undefined: a stratum whose seeds all tie differs by 0 in every unit).
fn pooled_sd(a: &[f64], b: &[f64]) -> f64 {
    let ss = |x: &[f64]| {
        let m = stats::mean(x);
        x.iter().map(|v| (v - m) * (v - m)).sum::<f64>()
    };
    let df = (a.len() + b.len()) as f64 - 2.0;
    let sd = ((ss(a) + ss(b)) / df).sqrt();
    if sd.is_finite() && sd > 0.0 {
        sd
    } else {
        1.0
    }
}

fn outcome(claim: &Claim, manifest: &Manifest, rows: &[MetricRow], resamples: usize) -> Outcome {
    let units = units(claim, manifest);
    let scores = |cell: usize| {
        let raw = summaries(manifest, rows, cell, claim.summary);
        match (units, scale(manifest, cell)) {
            (Units::Normalized, Some((r, o))) => raw.iter().map(|x| (x - r) / (o - r)).collect(),
            _ => raw,
        }
    };
    let mut left: Vec<Vec<f64>> = claim.strata.iter().map(|s| scores(s.left)).collect();
    let mut right: Vec<Vec<f64>> = claim.strata.iter().map(|s| scores(s.right)).collect();
    if units == Units::Sd {
        // Each stratum on its own scale: the run's seeds fix it, the
        // bootstrap resamples the seeds within it.
        for (l, r) in left.iter_mut().zip(right.iter_mut()) {
            let sd = pooled_sd(l, r);
            l.iter_mut().chain(r.iter_mut()).for_each(|x| *x /= sd);
        }
    }
    let fewest = |side: &[Vec<f64>]| side.iter().map(Vec::len).min().unwrap_or(0);
    let seeds = (fewest(&left), fewest(&right));
    let mut out = Outcome {
        claim: claim.clone(),
        seeds,
        planned: manifest.seeds,
        units,
        difference: None,
        improvement: None,
        verdict: Verdict::Inconclusive,
    };
    if seeds.0 < 2 || seeds.1 < 2 {
        return out;
    }
    let difference = |g: &[Vec<Vec<f64>>]| {
        let per_stratum: Vec<f64> = g[0]
            .iter()
            .zip(&g[1])
            .map(|(l, r)| stats::mean(l) - stats::mean(r))
            .collect();
        stats::mean(&per_stratum)
    };
    let seed = u64::from_str_radix(&crate::report::hash(&claim.text), 16).unwrap_or(0);
    let d = stats::bootstrap(
        &[&left, &right],
        difference,
        claim.level,
        resamples,
        Method::Expanded,
        seed,
    );
    let m = claim.margin;
    out.verdict = match claim.op {
        Op::Better if d.lo > m => Verdict::Holds,
        Op::Better if d.hi < m => Verdict::Fails,
        Op::NoWorse if d.lo > -m => Verdict::Holds,
        Op::NoWorse if d.hi < -m => Verdict::Fails,
        Op::Worse if d.hi < -m => Verdict::Holds,
        Op::Worse if d.lo > -m => Verdict::Fails,
        Op::NoBetter if d.hi < m => Verdict::Holds,
        Op::NoBetter if d.lo > m => Verdict::Fails,
        _ => Verdict::Inconclusive,
    };
    out.difference = Some(d);
    out.improvement = Some(stats::probability_of_improvement(&left, &right));
    out
}

/// `claims.csv`: one row per claim.
pub fn csv(outcomes: &[Outcome]) -> String {
    let mut out = String::from(
        "claim,verdict,difference,lo,hi,level,margin,prob_improvement,seeds_left,seeds_right,seeds_planned,strata,units\n",
    );
    for o in outcomes {
        let (d, lo, hi) = match o.difference {
            Some(i) => (num(i.estimate), num(i.lo), num(i.hi)),
            None => (String::new(), String::new(), String::new()),
        };
        let poi = o.improvement.map(num).unwrap_or_default();
        let _ = writeln!(
            out,
            "\"{}\",{},{d},{lo},{hi},{},{},{poi},{},{},{},{},{}",
            o.claim.text.replace('"', "\"\""),
            o.verdict.text(),
            o.claim.level,
            o.claim.margin,
            o.seeds.0,
            o.seeds.1,
            o.planned,
            o.claim.strata.len(),
            o.units.text(),
        );
    }
    out
}

fn num(x: f64) -> String {
    format!("{x:.4}")
}

/// The claims as a Markdown table (the terminal and `report.md` show the same).
pub fn table(outcomes: &[Outcome]) -> String {
    let mut out = String::from(
        "| claim | verdict | left - right | interval | P(left > right) | seeds a side | units |\n| --- | --- | --- | --- | --- | --- | --- |\n",
    );
    for o in outcomes {
        // Steps in whole steps, the rest to three decimals.
        let digits = match o.units {
            Units::Steps => 0,
            _ => 3,
        };
        let (d, interval) = match o.difference {
            Some(i) => (
                format!("{:+.*}", digits, i.estimate),
                format!(
                    "[{:+.*}, {:+.*}] at {}%",
                    digits,
                    i.lo,
                    digits,
                    i.hi,
                    crate::schema::num(o.claim.level * 100.0)
                ),
            ),
            None => ("-".into(), "needs 2 seeds a side".into()),
        };
        let poi = o
            .improvement
            .map(|p| format!("{p:.2}"))
            .unwrap_or("-".into());
        let _ = writeln!(
            out,
            "| `{}` | **{}** | {d} | {interval} | {poi} | {}, {} of {} | {} |",
            o.claim.text,
            o.verdict.text(),
            o.seeds.0,
            o.seeds.1,
            o.planned,
            o.units.text(),
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::tests_support::manifest_with;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    fn claim(op: Op, margin: f64) -> Claim {
        Claim {
            text: format!("a {} b", op.symbol()),
            axis: "agent".into(),
            left: "a".into(),
            right: "b".into(),
            op,
            margin,
            level: 0.95,
            summary: Summary::Final(0.5),
            strata: vec![Stratum {
                label: "env=x".into(),
                left: 0,
                right: 1,
            }],
        }
    }

    /// Rows of two cells of `n` seeds whose final evaluations are normal
    /// with these means (sd 1), and an early evaluation that the window skips.
    fn rows(rng: &mut ChaCha8Rng, n: u64, means: [f64; 2]) -> Vec<MetricRow> {
        let mut out = Vec::new();
        for (cell, mu) in means.iter().enumerate() {
            for seed in 0..n {
                let z: f64 = (0..12).map(|_| rng.gen::<f64>()).sum::<f64>() - 6.0;
                for (step, value) in [(50, -100.0), (100, mu + z)] {
                    out.push(MetricRow {
                        cell,
                        seed,
                        step,
                        metric: "eval".into(),
                        value,
                    });
                }
            }
        }
        out
    }

    /// Verdict rates over `studies` simulated studies (2,000 resamples each:
    /// the interval ends' Monte Carlo error is small beside their spread).
    fn rates(op: Op, margin: f64, n: u64, means: [f64; 2], studies: usize) -> [f64; 3] {
        let mut rng = ChaCha8Rng::seed_from_u64(23);
        let mut counts = [0usize; 3];
        for study in 0..studies {
            let mut m = manifest_with(2, n, vec![100, 100]);
            let mut c = claim(op, margin);
            c.text = format!("study {study}");
            m.claims = vec![c];
            let o = &evaluate_with(&m, &rows(&mut rng, n, means), 2_000)[0];
            counts[o.verdict as usize] += 1;
        }
        counts.map(|c| c as f64 / studies as f64)
    }

    /// Over simulated studies (1,000 for the null): a true claim holds, a false one
    /// fails, and a null effect at few seeds is inconclusive, at the rates
    /// the 95% interval advertises (a null holds or fails ~2.5% each way).
    #[test]
    fn verdicts_at_their_advertised_rates() {
        let [holds, fails, _] = rates(Op::Better, 0.0, 10, [2.0, 0.0], 200);
        assert!(holds > 0.95 && fails == 0.0, "true claim: {holds} {fails}");
        let [holds, fails, _] = rates(Op::Better, 0.0, 10, [0.0, 2.0], 200);
        assert!(fails > 0.95 && holds == 0.0, "false claim: {holds} {fails}");
        let [holds, fails, inconclusive] = rates(Op::Better, 0.0, 5, [0.0, 0.0], 1000);
        assert!(
            (0.93..=0.97).contains(&inconclusive),
            "null: {inconclusive}"
        );
        assert!(holds < 0.045 && fails < 0.045, "null: {holds} {fails}");
        // Non-inferiority within a margin of 1 holds for equal sides at 30
        // seeds (power ~0.97: the interval's lower end, ~2 s.e. = 0.52 below
        // the estimate, clears -1 unless the estimate is below -0.48); were
        // `>=` read as `>`, it would hold ~2.5% of the time.
        let [holds, _, _] = rates(Op::NoWorse, 1.0, 30, [0.0, 0.0], 200);
        assert!(holds > 0.9, "no worse: {holds}");
    }

    #[test]
    fn incomplete_seeds_are_left_out_and_one_seed_is_inconclusive() {
        let mut m = manifest_with(2, 3, vec![100, 100]);
        m.claims = vec![claim(Op::Better, 0.0)];
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let mut r = rows(&mut rng, 3, [5.0, 0.0]);
        // Seed 2 of cell 0 has not reached its window yet; seed 1 neither.
        r.retain(|row| !(row.cell == 0 && row.seed >= 1 && row.step == 100));
        let o = &evaluate(&m, &r)[0];
        assert_eq!(o.seeds, (1, 3));
        assert_eq!(o.verdict, Verdict::Inconclusive);
        assert!(o.difference.is_none());
        assert!(table(std::slice::from_ref(o)).contains("needs 2 seeds a side"));
    }

    #[test]
    fn verdicts_are_reproducible_and_written_as_csv() {
        let mut m = manifest_with(2, 6, vec![100, 100]);
        m.claims = vec![claim(Op::Better, 0.0)];
        let r = rows(&mut ChaCha8Rng::seed_from_u64(5), 6, [3.0, 0.0]);
        let (a, b) = (evaluate(&m, &r), evaluate(&m, &r));
        assert_eq!(a, b);
        let text = csv(&a);
        assert!(text.starts_with("claim,verdict,difference,lo,hi"), "{text}");
        assert!(text.contains("\"a > b\",holds,"), "{text}");
    }

    #[test]
    fn several_strata_with_references_compare_normalized_scores() {
        let mut m = manifest_with(4, 4, vec![100; 4]);
        // Cells 0, 1 on an env scored 0..100; cells 2, 3 on one scored 0..1.
        m.references = vec![
            vec![("random".into(), 0.0), ("optimum".into(), 100.0)],
            vec![("random".into(), 0.0), ("optimum".into(), 100.0)],
            vec![("random".into(), 0.0), ("optimum".into(), 1.0)],
            vec![("random".into(), 0.0), ("optimum".into(), 1.0)],
        ];
        let mut c = claim(Op::Better, 0.0);
        c.strata.push(Stratum {
            label: "env=y".into(),
            left: 2,
            right: 3,
        });
        m.claims = vec![c];
        let mut r = Vec::new();
        for (cell, value) in [(0, 60.0), (1, 40.0), (2, 0.6), (3, 0.4)] {
            for seed in 0..4 {
                let v = value + seed as f64 * [1.0, 0.01][cell / 2];
                r.push(MetricRow {
                    cell,
                    seed,
                    step: 100,
                    metric: "eval".into(),
                    value: v,
                });
            }
        }
        let o = &evaluate(&m, &r)[0];
        assert_eq!(o.units, Units::Normalized);
        let d = o.difference.unwrap();
        assert!((d.estimate - 0.2).abs() < 1e-12, "{d:?}");
        assert_eq!(o.improvement, Some(1.0));
    }

    /// Two envs on scales 100x apart, neither with reference levels, and
    /// no effect anywhere: the pooled-sd differences' interval still says
    /// inconclusive at its advertised rate (1,000 studies, 10 seeds a side).
    #[test]
    fn strata_without_references_compare_in_pooled_sd_at_the_advertised_rate() {
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let mut counts = [0usize; 3];
        for study in 0..1000 {
            let mut m = manifest_with(4, 10, vec![100; 4]);
            let mut c = claim(Op::Better, 0.0);
            c.text = format!("study {study}");
            c.strata.push(Stratum {
                label: "env=y".into(),
                left: 2,
                right: 3,
            });
            m.claims = vec![c];
            let mut r = rows(&mut rng, 10, [0.0, 0.0]);
            for row in rows(&mut rng, 10, [0.0, 0.0]) {
                r.push(MetricRow {
                    cell: row.cell + 2,
                    value: row.value * 100.0,
                    ..row
                });
            }
            let o = &evaluate_with(&m, &r, 2_000)[0];
            assert_eq!(o.units, Units::Sd);
            counts[o.verdict as usize] += 1;
        }
        let inconclusive = counts[Verdict::Inconclusive as usize] as f64 / 1000.0;
        assert!((0.93..=0.97).contains(&inconclusive), "{counts:?}");
    }

    #[test]
    fn a_stratum_in_pooled_sd_units_weighs_alike_whatever_its_scale() {
        let mut m = manifest_with(4, 4, vec![100; 4]);
        let mut c = claim(Op::Better, 0.0);
        c.strata.push(Stratum {
            label: "env=y".into(),
            left: 2,
            right: 3,
        });
        m.claims = vec![c];
        let mut r = Vec::new();
        // Env x: +1 sd; env y (1000x the scale): -1 sd. Raw means would say +-999.
        for (cell, base, spread) in [
            (0, 1.0, 1.0),
            (1, 0.0, 1.0),
            (2, 0.0, 1000.0),
            (3, 1000.0, 1000.0),
        ] {
            for (seed, z) in [-1.5f64, -0.5, 0.5, 1.5].iter().enumerate() {
                r.push(MetricRow {
                    cell,
                    seed: seed as u64,
                    step: 100,
                    metric: "eval".into(),
                    value: base + z * spread / (5.0f64 / 3.0).sqrt(),
                });
            }
        }
        let o = &evaluate(&m, &r)[0];
        assert_eq!(o.units, Units::Sd);
        assert!(o.difference.unwrap().estimate.abs() < 1e-9, "{o:?}");
        assert!(csv(std::slice::from_ref(o))
            .trim_end()
            .ends_with(",2,pooled sd"));
    }

    /// `steps_to`: the first evaluation at or above the level, a seed that
    /// never reaches it counting its budget; normalized levels read the
    /// cell's references.
    #[test]
    fn steps_to_counts_the_first_evaluation_at_the_level() {
        let mut m = manifest_with(2, 3, vec![100, 100]);
        let curve = |cell: usize, seed: u64, values: [f64; 4]| -> Vec<MetricRow> {
            values
                .iter()
                .enumerate()
                .map(|(i, v)| MetricRow {
                    cell,
                    seed,
                    step: 25 * (i as u64 + 1),
                    metric: "eval".into(),
                    value: *v,
                })
                .collect()
        };
        let mut r = Vec::new();
        r.extend(curve(0, 0, [0.0, 5.0, 2.0, 9.0]));
        r.extend(curve(0, 1, [6.0, 0.0, 0.0, 0.0]));
        r.extend(curve(0, 2, [0.0, 0.0, 0.0, 1.0]));
        let s = |m: &Manifest, level, normalized| {
            summaries(m, &r, 0, Summary::StepsTo { level, normalized })
        };
        assert_eq!(s(&m, 5.0, false), vec![50.0, 25.0, 100.0]);
        assert!(
            s(&m, 0.5, true).is_empty(),
            "no references, no normalized level"
        );
        m.references = vec![vec![("random".into(), 0.0), ("optimum".into(), 10.0)]; 2];
        assert_eq!(s(&m, 0.9, true), vec![100.0, 100.0, 100.0]);
        assert_eq!(s(&m, 0.55, true), vec![100.0, 25.0, 100.0]);

        // Fast against slow: `a < b by steps_to(..)` holds; units are steps.
        let mut c = claim(Op::Worse, 0.0);
        c.summary = Summary::StepsTo {
            level: 1.0,
            normalized: false,
        };
        m.claims = vec![c];
        let mut r = Vec::new();
        for seed in 0..3 {
            let lag = seed as usize % 2;
            let mut fast = [0.0; 4];
            fast[lag..].iter_mut().for_each(|v| *v = 2.0);
            let mut slow = [0.0; 4];
            slow[2 + lag..].iter_mut().for_each(|v| *v = 2.0);
            r.extend(curve(0, seed, fast));
            r.extend(curve(1, seed, slow));
        }
        let o = &evaluate(&m, &r)[0];
        assert_eq!(o.units, Units::Steps);
        assert_eq!(o.verdict, Verdict::Holds, "{o:?}");
        assert!((o.difference.unwrap().estimate + 50.0).abs() < 1e-9);
        assert_eq!(o.claim.summary.text(), "steps_to(1)");
    }
}
