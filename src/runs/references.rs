//! What a run's manifest records for its plots besides the run: the
//! experiment's `report` block, resolved, and each cell's reference levels
//! (the random agent's score under the cell's protocol, the env's known
//! optimum).
//!
//! Invariants: prints nothing, writes nothing; evaluates the random agent,
//! never a learner.

use crate::check::{CheckedExperiment, Value};
use crate::compile::{Plan, Protocol};
use crate::envs::Layout;
use crate::report::{Band, Manifest, ReportSpec};
use crate::runtime::evaluate::{self, RandomPolicy};
use crate::seeds::Purpose;

/// What [`super::open`] adds to the manifest of a run of `exp` (whose
/// cells compile to `all`): the report block and the reference levels.
pub fn manifest_extra<'a>(
    exp: &CheckedExperiment,
    all: &'a [Plan],
) -> impl FnOnce(&mut Manifest) -> Result<(), String> + 'a {
    let report = report_spec(exp);
    move |manifest: &mut Manifest| -> Result<(), String> {
        manifest.references = references(all, &report.lines)?;
        manifest.report = report.clone();
        Ok(())
    }
}

/// The experiment's `report` block as `mbrl plot` reads it.
pub fn report_spec(exp: &CheckedExperiment) -> ReportSpec {
    let Some(r) = &exp.report else {
        return ReportSpec::default();
    };
    let default = ReportSpec::default();
    let band = match r.obj("band") {
        Some(b) if b.ctor.name == "stderr" => Band::Stderr,
        Some(b) => Band::Bootstrap {
            level: b.float("level").unwrap_or(0.95),
            resamples: b.int("resamples").unwrap_or(1000).max(1) as usize,
        },
        None => default.band,
    };
    let names = |field: &str| -> Option<Vec<String>> {
        match r.get(field).map(|f| &f.value) {
            Some(Value::List(items)) => Some(
                items
                    .iter()
                    .filter_map(|i| match &i.value {
                        Value::Name(n) => Some(n.clone()),
                        _ => None,
                    })
                    .collect(),
            ),
            _ => None,
        }
    };
    ReportSpec {
        metric: r.enum_("metric").unwrap_or("auto").to_string(),
        x: r.enum_("x").unwrap_or("env_steps").to_string(),
        band,
        facet: names("facet").unwrap_or(default.facet),
        smooth: r.int("smooth").unwrap_or(1).max(1) as usize,
        lines: names("lines").unwrap_or_default(),
    }
}

/// Each cell's reference levels for the plot: the random agent's mean
/// score under the cell's protocol (the first evaluation round's envs), and
/// the env's known optimum where its protocol scores the reward rate.
pub fn references(plans: &[Plan], lines: &[String]) -> Result<Vec<Vec<(String, f64)>>, String> {
    let mut out = Vec::new();
    for plan in plans {
        let mut levels = Vec::new();
        for line in lines {
            match line.as_str() {
                crate::kinds::random::NAME => {
                    let (_, values) = evaluate_random(plan)?;
                    levels.push((line.clone(), super::mean_sd(&values).0));
                }
                "optimum" => {
                    let rate = crate::envs::known_optimal_rate(&plan.env)
                        .filter(|_| plan.protocol.metric == crate::compile::EvalMetric::RewardRate);
                    if let Some(rate) = rate {
                        levels.push((line.clone(), rate));
                    }
                }
                _ => (),
            }
        }
        out.push(levels);
    }
    Ok(out)
}

/// The random agent's score per seed under the cell's protocol: one
/// evaluation, the first round of a run's.
pub fn evaluate_random(plan: &Plan) -> Result<(Protocol, Vec<f64>), String> {
    let layout = Layout {
        root_seed: plan.root_seed,
        seeds: plan.seeds.clone(),
        envs_per_seed: 1,
        purpose: Purpose::EvalEnv,
        round: 0,
    };
    let mut make = |l: &Layout| Box::new(RandomPolicy::new(l)) as Box<dyn evaluate::Policy>;
    let values =
        evaluate::evaluate(plan.env, plan.protocol, &layout, &mut make).map_err(|e| e.0)?;
    Ok((plan.protocol, values))
}
