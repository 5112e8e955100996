//! Claims (`expect` lines): each side matched to a value of one axis, the
//! `on` list to values of the others, the summary, margin and confidence
//! checked, and the pairs of cells that decide the claim listed stratum by
//! stratum. What cannot be decided is refused here, not at the end of a run.

use std::collections::BTreeMap;

use crate::check::eval::Evaluator;
use crate::check::{Cell, Obj, Value};
use crate::diagnostics::{did_you_mean, Code, Diag};
use crate::report::claims::{Claim, Op, Stratum, Summary};
use crate::source::Span;
use crate::syntax::ast::{self, ClaimOp};

/// The default confidence and window.
const LEVEL: f64 = 0.95;
const WINDOW: f64 = 0.1;

/// The experiment's claims, resolved against its cells; those with errors are left out.
pub fn resolve(
    ev: &mut Evaluator,
    exp: &ast::Experiment,
    cells: &[Cell],
    seeds: u64,
    report: Option<&Obj>,
) -> Vec<Claim> {
    if cells.is_empty() {
        return Vec::new();
    }
    let axes = axes(cells);
    let lines: Vec<&str> = match report.and_then(|r| r.get("lines")).map(|f| &f.value) {
        Some(Value::List(items)) => items
            .iter()
            .filter_map(|i| match &i.value {
                Value::Name(n) => Some(n.as_str()),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    };
    let references = lines.contains(&crate::kinds::random::NAME) && lines.contains(&"optimum");
    exp.expects
        .iter()
        .filter_map(|e| one(ev, e, cells, &axes, seeds, references))
        .collect()
}

/// Each axis of the grid and its values, in the order the cells give them.
fn axes(cells: &[Cell]) -> Vec<(String, Vec<String>)> {
    let mut out: Vec<(String, Vec<String>)> = Vec::new();
    for cell in cells {
        for (axis, value) in &cell.coords {
            let at = match out.iter().position(|(a, _)| a == axis) {
                Some(at) => at,
                None => {
                    out.push((axis.clone(), Vec::new()));
                    out.len() - 1
                }
            };
            if !out[at].1.contains(value) {
                out[at].1.push(value.clone());
            }
        }
    }
    out
}

/// The value a side names: its label exactly (quoted), the head name of a
/// constructed value (`er` for `er { lr: 1e-4 }`), or an equal number.
fn matches(label: &str, side: &str) -> bool {
    if let Some(quoted) = side.strip_prefix('"').and_then(|s| s.strip_suffix('"')) {
        return label == quoted;
    }
    if label == side {
        return true;
    }
    let head: String = label
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect();
    if !head.is_empty() && head == side {
        return true;
    }
    matches!((label.parse::<f64>(), side.parse::<f64>()), (Ok(a), Ok(b)) if a == b)
}

/// Every `(axis, value)` a name matches.
fn candidates<'a>(axes: &'a [(String, Vec<String>)], name: &str) -> Vec<(&'a str, &'a str)> {
    axes.iter()
        .flat_map(|(axis, values)| {
            values
                .iter()
                .filter(|v| matches(v, name))
                .map(move |v| (axis.as_str(), v.as_str()))
        })
        .collect()
}

fn heads(axes: &[(String, Vec<String>)]) -> Vec<String> {
    axes.iter()
        .flat_map(|(_, values)| values.iter())
        .map(|v| {
            v.chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect()
        })
        .collect()
}

/// The one `(axis, value)` a name matches, or its diagnostic.
fn value<'a>(
    axes: &'a [(String, Vec<String>)],
    name: &str,
    span: Span,
) -> Result<(&'a str, &'a str), Diag> {
    let mut found = candidates(axes, name);
    // A value named exactly wins over those it merely heads (`slbo_mle`
    // beside `slbo_mle { model_loss: mle_twin }`).
    if found.len() > 1 {
        let exact: Vec<(&str, &str)> = found.iter().copied().filter(|(_, v)| *v == name).collect();
        if exact.len() == 1 {
            found = exact;
        }
    }
    match found.as_slice() {
        [one] => Ok(*one),
        [] => {
            let heads = heads(axes);
            let help = did_you_mean(name, heads.iter().map(String::as_str)).unwrap_or_else(|| {
                let listed: Vec<String> = axes
                    .iter()
                    .map(|(a, v)| format!("{a}: {}", v.join(", ")))
                    .collect();
                format!("the experiment's values are {}", listed.join("; "))
            });
            let msg = format!("no axis of the experiment has a value `{name}`");
            Err(
                Diag::error(Code::ClaimUnknown, msg, span, "not a value of any axis")
                    .with_help(help),
            )
        }
        many => {
            let listed: Vec<String> = many.iter().map(|(a, v)| format!("{a}: `{v}`")).collect();
            let msg = format!(
                "`{name}` names {} values: {}",
                many.len(),
                listed.join(", ")
            );
            Err(Diag::error(Code::ClaimAxes, msg, span, "ambiguous")
                .with_help(format!("quote the one you mean: `\"{}\"`", many[0].1)))
        }
    }
}

fn one(
    ev: &mut Evaluator,
    e: &ast::Expect,
    cells: &[Cell],
    axes: &[(String, Vec<String>)],
    seeds: u64,
    references: bool,
) -> Option<Claim> {
    let fail = |ev: &mut Evaluator, d: Diag| {
        ev.diags.push(d);
    };
    let left = value(axes, &e.left.name, e.left.span);
    let right = value(axes, &e.right.name, e.right.span);
    let (left, right) = match (left, right) {
        (Ok(l), Ok(r)) => (l, r),
        (l, r) => {
            for d in [l.err(), r.err()].into_iter().flatten() {
                fail(ev, d);
            }
            return None;
        }
    };
    let axis = left.0;
    if right.0 != axis {
        let msg = format!(
            "`{}` is a value of axis `{}` but `{}` of axis `{}`",
            e.left.name, left.0, e.right.name, right.0
        );
        let d = Diag::error(
            Code::ClaimAxes,
            msg,
            e.right.span,
            format!("a value of `{}`", right.0),
        )
        .with_label(e.left.span, format!("a value of `{}`", left.0))
        .with_help("a claim compares two values of one axis; name the others in `on [..]`");
        fail(ev, d);
        return None;
    }
    if left.1 == right.1 {
        let msg = format!("the claim compares `{}` with itself", left.1);
        let d = Diag::error(
            Code::ClaimAxes,
            msg,
            e.right.span,
            "the same value as the left side",
        );
        fail(ev, d);
        return None;
    }
    // `on [..]`: the other axes' allowed values.
    let mut allowed: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    if let Some((values, _)) = &e.on {
        for v in values {
            let text = ev.snippet(v.span);
            match value(axes, &text, v.span) {
                Ok((a, _)) if a == axis => {
                    let msg = format!("`{text}` is a value of the compared axis `{axis}`");
                    let d = Diag::error(Code::ClaimAxes, msg, v.span, "a compared value")
                        .with_help("`on [..]` restricts the other axes (envs, regimes, ...)");
                    fail(ev, d);
                    return None;
                }
                Ok((a, value)) => allowed.entry(a).or_default().push(value),
                Err(d) => {
                    fail(ev, d);
                    return None;
                }
            }
        }
    }
    let summary = summary(ev, e, references)?;
    let level = match e.at {
        None => LEVEL,
        Some(n) => match n.fraction() {
            Some(f) if f > 0.0 && f < 1.0 => f,
            Some(f) => {
                let help = match (n.percent, (1.0..100.0).contains(&f)) {
                    (false, true) => format!(
                        "write the level as a percentage (`at {f}%`) or a fraction (`at {}`)",
                        f / 100.0
                    ),
                    _ => "a confidence level lies strictly between 0 and 1, e.g. `at 95%`".into(),
                };
                let msg = format!("a claim's confidence must lie in (0, 1); this is {f}");
                fail(
                    ev,
                    Diag::error(Code::ClaimRange, msg, n.span, "out of range").with_help(help),
                );
                return None;
            }
            None => return None,
        },
    };
    let margin = match e.margin {
        None => 0.0,
        Some(n) => match n.fraction() {
            Some(m) if m >= 0.0 => m,
            Some(m) => {
                let msg = format!("a claim's margin is a size and cannot be negative ({m})");
                let help = "flip the comparison instead (`a >= b margin 0.1`: a is at most 0.1 worse than b)";
                fail(
                    ev,
                    Diag::error(Code::ClaimRange, msg, n.span, "negative").with_help(help),
                );
                return None;
            }
            None => return None,
        },
    };
    let strata = strata(cells, axis, left.1, right.1, &allowed);
    if strata.is_empty() {
        let msg = format!(
            "no cell of the grid pairs `{}` with `{}`{}",
            left.1,
            right.1,
            if allowed.is_empty() {
                ""
            } else {
                " on the values listed"
            }
        );
        let at = e.on.as_ref().map_or(e.span, |(_, s)| *s);
        let d = Diag::error(Code::ClaimUndecidable, msg, at, "no pair of cells")
            .with_help("a claim needs cells of both sides that agree on every other axis");
        fail(ev, d);
        return None;
    }
    if seeds < 2 {
        let msg = format!(
            "with {seeds} seed a claim cannot be decided: its interval needs 2 seeds a side"
        );
        let d = Diag::error(
            Code::ClaimUndecidable,
            msg,
            e.span,
            "undecidable with one seed",
        )
        .with_help("set `seeds: 2` or more (5 or more for a useful interval)");
        fail(ev, d);
        return None;
    }
    let text = ev.snippet(e.span);
    let text = text
        .strip_prefix("expect")
        .unwrap_or(&text)
        .trim()
        .to_string();
    let op = match e.op.0 {
        ClaimOp::Greater => Op::Better,
        ClaimOp::GreaterEq => Op::NoWorse,
        ClaimOp::Less => Op::Worse,
        ClaimOp::LessEq => Op::NoBetter,
    };
    Some(Claim {
        text,
        axis: axis.to_string(),
        left: left.1.to_string(),
        right: right.1.to_string(),
        op,
        margin,
        level,
        summary,
        strata,
    })
}

/// `references`: the experiment draws both reference lines (random, optimum).
fn summary(ev: &mut Evaluator, e: &ast::Expect, references: bool) -> Option<Summary> {
    let Some((name, arg)) = &e.by else {
        return Some(Summary::Final(WINDOW));
    };
    let wrong = |msg: String, span: Span, label: &str, help: String| {
        Diag::error(Code::ClaimSummary, msg, span, label).with_help(help)
    };
    match (name.name.as_str(), arg) {
        ("final", Some(n)) => match n.fraction() {
            Some(f) if f > 0.0 && f <= 1.0 => Some(Summary::Final(f)),
            Some(f) => {
                let msg = format!(
                    "`final(..)` takes a share of the budget in (0, 100%]; this is {}",
                    f
                );
                let help = "e.g. `final(10%)`: the evaluations in the last tenth of the steps";
                ev.diags.push(
                    Diag::error(Code::ClaimRange, msg, n.span, "out of range").with_help(help),
                );
                None
            }
            None => None,
        },
        ("final", None) => {
            let msg = "`final` needs the share of the budget it averages over".to_string();
            let help = "write `final(10%)`: the evaluations in the last tenth of the steps".into();
            ev.diags.push(wrong(msg, name.span, "no window", help));
            None
        }
        ("auc", None) => Some(Summary::Auc),
        ("steps_to", Some(n)) => {
            let level = n.fraction()?;
            if n.percent && !(level > 0.0 && level <= 1.0) {
                let msg = format!(
                    "`steps_to({}%)` asks for a share of the way from the random agent to the optimum outside (0, 100%]",
                    crate::schema::num(level * 100.0)
                );
                let help = "e.g. `steps_to(50%)`: the steps until a seed is half way from random to optimal";
                ev.diags.push(
                    Diag::error(Code::ClaimRange, msg, n.span, "out of range").with_help(help),
                );
                return None;
            }
            if n.percent && !references {
                let msg = format!(
                    "`steps_to({}%)` is a share of the way from the random agent to the optimum, and the experiment draws neither",
                    crate::schema::num(level * 100.0)
                );
                let help = "add `report { lines: [random, optimum] }`, or give the level in the metric's units (`steps_to(0.5)`)";
                ev.diags.push(
                    Diag::error(Code::ClaimSummary, msg, n.span, "needs reference levels")
                        .with_help(help),
                );
                return None;
            }
            Some(Summary::StepsTo {
                level,
                normalized: n.percent,
            })
        }
        ("steps_to", None) => {
            let msg = "`steps_to` needs the level to reach".to_string();
            let help = "write `steps_to(50%)` (half way from the random agent to the optimum) or `steps_to(-30)` (the metric's value)".into();
            ev.diags.push(wrong(msg, name.span, "no level", help));
            None
        }
        ("auc", Some(n)) => {
            let msg = "`auc` takes no argument: it averages every evaluation".to_string();
            ev.diags
                .push(wrong(msg, n.span, "not taken", "write `by auc`".into()));
            None
        }
        (other, _) => {
            let msg = format!(
                "claims summarize a curve by `final(P%)`, `auc` or `steps_to(L)`, not `{other}`"
            );
            let help = did_you_mean(other, ["final", "auc", "steps_to"])
                .unwrap_or_else(|| "`final(10%)`: the mean over the last 10% of the budget; `auc`: the mean of every evaluation; `steps_to(50%)`: the steps until half way from random to optimal".into());
            ev.diags
                .push(wrong(msg, name.span, "unknown summary", help));
            None
        }
    }
}

/// The pairs of cells a claim compares: for each cell of the left value whose
/// other coordinates are allowed, the right value's cell agreeing on them.
fn strata(
    cells: &[Cell],
    axis: &str,
    left: &str,
    right: &str,
    allowed: &BTreeMap<&str, Vec<&str>>,
) -> Vec<Stratum> {
    let others = |c: &Cell| -> Vec<(String, String)> {
        c.coords
            .iter()
            .filter(|(a, _)| a != axis)
            .cloned()
            .collect()
    };
    let value_of = |c: &Cell| {
        c.coords
            .iter()
            .find(|(a, _)| a == axis)
            .map(|(_, v)| v.clone())
    };
    let ok = |c: &Cell| {
        c.coords.iter().all(|(a, v)| match allowed.get(a.as_str()) {
            Some(values) => values.contains(&v.as_str()),
            None => true,
        })
    };
    let varying: Vec<&str> = axes(cells)
        .iter()
        .filter(|(a, v)| a != axis && v.len() > 1)
        .map(|(a, _)| {
            cells[0]
                .coords
                .iter()
                .find(|(x, _)| x == a)
                .map_or("", |(x, _)| x.as_str())
        })
        .collect();
    let mut out = Vec::new();
    // Cells by position: metric rows and plans number them so.
    for (li, l) in cells.iter().enumerate() {
        if value_of(l).as_deref() != Some(left) || !ok(l) {
            continue;
        }
        let key = others(l);
        let Some(ri) = cells
            .iter()
            .position(|c| value_of(c).as_deref() == Some(right) && others(c) == key)
        else {
            continue;
        };
        let label: Vec<String> = key
            .iter()
            .filter(|(a, _)| varying.contains(&a.as_str()))
            .map(|(a, v)| format!("{a}={v}"))
            .collect();
        out.push(Stratum {
            label: label.join(" "),
            left: li,
            right: ri,
        });
    }
    out
}
