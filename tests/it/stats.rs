//! mbrl's aggregate statistics against `rliable` (Agarwal et al. 2021), the
//! library the field uses: on the committed fixture of its outputs
//! (`tests/fixtures/rliable/`), and, where Python with rliable is installed,
//! on a fresh score matrix against rliable run live.

use mbrl::report::stats::{self, Aggregate};
use serde_json::Value;

/// A JSON matrix of runs x tasks as tasks of runs.
fn tasks(matrix: &Value) -> Vec<Vec<f64>> {
    let rows: Vec<Vec<f64>> = matrix
        .as_array()
        .expect("rows")
        .iter()
        .map(|r| {
            r.as_array()
                .expect("a row")
                .iter()
                .map(|x| x.as_f64().expect("a number"))
                .collect()
        })
        .collect();
    (0..rows[0].len())
        .map(|t| rows.iter().map(|r| r[t]).collect())
        .collect()
}

fn fixture() -> Value {
    let path = crate::root().join("tests/fixtures/rliable/rliable.json");
    serde_json::from_str(&std::fs::read_to_string(path).expect("the fixture")).expect("JSON")
}

fn f(v: &Value) -> f64 {
    v.as_f64().expect("a number")
}

const AGGREGATES: [(&str, Aggregate); 4] = [
    ("mean", Aggregate::Mean),
    ("median", Aggregate::Median),
    ("iqm", Aggregate::Iqm),
    ("optimality_gap", Aggregate::OptimalityGap),
];

/// Point estimates equal rliable's; interval ends agree within the
/// bootstrap's sampling error (both sides use 50,000 resamples; ours from
/// another generator, so not bit for bit).
#[test]
fn aggregates_match_rliable() {
    let fx = fixture();
    for name in ["a", "b", "small"] {
        let m = tasks(&fx["matrices"][name]);
        for (key, agg) in AGGREGATES {
            let want = &fx["aggregates"][name][key];
            let got = stats::aggregate_interval(agg, &m, 0.95, 50_000, 1);
            assert!(
                (got.estimate - f(&want["point"])).abs() < 1e-12,
                "{name} {key}: {got:?} vs {want}"
            );
            for (end, w) in [(got.lo, &want["ci"][0]), (got.hi, &want["ci"][1])] {
                assert!(
                    (end - f(w)).abs() < 0.01,
                    "{name} {key}: interval {got:?} vs {want}"
                );
            }
        }
    }
}

#[test]
fn probability_of_improvement_and_profiles_match_rliable() {
    let fx = fixture();
    let (a, b) = (tasks(&fx["matrices"]["a"]), tasks(&fx["matrices"]["b"]));
    let poi = &fx["probability_of_improvement"];
    assert!((stats::probability_of_improvement(&a, &b) - f(&poi["point"])).abs() < 1e-12);
    let got = stats::bootstrap(
        &[&a, &b],
        |g| stats::probability_of_improvement(&g[0], &g[1]),
        0.95,
        20_000,
        stats::Method::Percentile,
        3,
    );
    // Interval ends lie on a grid of 1/300; allow two steps.
    assert!(
        (got.lo - f(&poi["ci"][0])).abs() < 0.007,
        "{got:?} vs {poi}"
    );
    assert!(
        (got.hi - f(&poi["ci"][1])).abs() < 0.007,
        "{got:?} vs {poi}"
    );
    let taus: Vec<f64> = fx["taus"].as_array().unwrap().iter().map(f).collect();
    for name in ["a", "b"] {
        let m = tasks(&fx["matrices"][name]);
        let want = &fx["performance_profiles"][name];
        let point = stats::performance_profile(&m, &taus);
        let band = stats::profile_band(&m, &taus, 0.95, 2_000, 5);
        for (i, p) in point.iter().enumerate() {
            assert!(
                (p - f(&want["point"][i])).abs() < 1e-12,
                "{name} tau {}",
                taus[i]
            );
            // 2,000 resamples a side, ends on a grid of 1/30: within two steps.
            assert!(
                (band[i].lo - f(&want["ci_lower"][i])).abs() < 0.07,
                "{name} tau {}: {:?}",
                taus[i],
                band[i]
            );
            assert!(
                (band[i].hi - f(&want["ci_upper"][i])).abs() < 0.07,
                "{name} tau {}: {:?}",
                taus[i],
                band[i]
            );
        }
    }
}

/// rliable run live on a matrix it has not seen (needs Python with rliable:
/// `MBRL_RLIABLE_PYTHON`, or `.rliable-venv/` as tests/fixtures/rliable/README.md
/// sets it up; scripts/test.sh does so where Python can install packages).
#[test]
#[ignore = "needs Python with rliable (MBRL_RLIABLE_PYTHON or .rliable-venv); scripts/test.sh runs it"]
fn point_estimates_match_rliable_run_live() {
    let python = std::env::var_os("MBRL_RLIABLE_PYTHON")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| crate::root().join(".rliable-venv/bin/python"));
    assert!(
        python.exists(),
        "no Python with rliable at {}",
        python.display()
    );
    // 7 runs x 4 tasks from a fixed linear congruential sequence.
    let mut x: u64 = 12345;
    let rows: Vec<Vec<f64>> = (0..7)
        .map(|_| {
            (0..4)
                .map(|_| {
                    x = x
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    (x >> 11) as f64 / (1u64 << 53) as f64 * 1.4 - 0.2
                })
                .collect()
        })
        .collect();
    let script = format!(
        "import numpy as np\nfrom rliable import metrics\nx = np.array({rows:?})\n\
         print(metrics.aggregate_mean(x), metrics.aggregate_median(x), metrics.aggregate_iqm(x), \
         metrics.aggregate_optimality_gap(x, 1.0), metrics.probability_of_improvement(x, x[::-1] * 0.9))"
    );
    let out = std::process::Command::new(&python)
        .args(["-c", &script])
        .output()
        .expect("python runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let theirs: Vec<f64> = String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .map(|v| v.parse().expect("a number"))
        .collect();
    let m: Vec<Vec<f64>> = (0..4)
        .map(|t| rows.iter().map(|r| r[t]).collect())
        .collect();
    let other: Vec<Vec<f64>> = (0..4)
        .map(|t| rows.iter().rev().map(|r| r[t] * 0.9).collect())
        .collect();
    let ours = [
        Aggregate::Mean.of(&m),
        Aggregate::Median.of(&m),
        Aggregate::Iqm.of(&m),
        Aggregate::OptimalityGap.of(&m),
        stats::probability_of_improvement(&m, &other),
    ];
    for (o, t) in ours.iter().zip(&theirs) {
        assert!((o - t).abs() < 1e-12, "ours {ours:?}, rliable {theirs:?}");
    }
}
