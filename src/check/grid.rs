//! Experiments: fields, `vary` axes, regimes, tuned tables and overrides,
//! expanded into the grid of cells, each checked with the cell rules.

use std::collections::HashMap;
use std::rc::Rc;

use crate::check::eval::{Assign, Evaluator, Scope};
use crate::check::value::{Obj, Value};
use crate::check::{rules, Cell, CheckedExperiment};
use crate::diagnostics::{did_you_mean, Code, Diag};
use crate::kinds;
use crate::resolve::OverrideTarget;
use crate::schema::{self, Kind, Ty, REFERENCE_LINES};
use crate::source::Span;
use crate::syntax::ast;

/// One `vary` axis (or a fixed field, as an axis of one value).
struct Axis<'a> {
    /// `env`, `agent`, `agent.lr`.
    path: &'a [ast::Ident],
    values: Vec<AxisValue<'a>>,
    span: Span,
}

enum AxisValue<'a> {
    /// A whole experiment field: `env: procmaze`, with its source text and expression.
    Whole(Value, String, &'a ast::Expr),
    /// A field below `env` or `agent`, applied to each cell's block.
    Sub(&'a ast::Expr),
}

impl Axis<'_> {
    fn name(&self) -> String {
        let parts: Vec<&str> = self.path.iter().map(|i| i.name.as_str()).collect();
        parts.join(".")
    }
}

/// A tuned table ready for lookup: key tuple -> the row's setting values.
struct Table {
    axes: Vec<String>,
    set: Vec<ast::Ident>,
    rows: HashMap<Vec<String>, (crate::resolve::ModuleId, Vec<ast::Expr>)>,
    span: Span,
}

pub fn experiment<'p>(ev: &mut Evaluator<'p>, exp: &'p ast::Experiment) -> CheckedExperiment {
    let root = Scope::module(ev.program.root);
    let fields = fields(ev, exp);
    let mut axes = axes(ev, exp, &fields, &root);
    apply_field_overrides(ev, &mut axes, &root);
    for required in ["env", "agent"] {
        if !axes
            .iter()
            .any(|a| a.path.len() == 1 && a.path[0].name == required)
        {
            let msg = format!("experiment `{}` has no `{required}`", exp.name.name);
            let help = format!("add `{required}: ...` or `vary {required}: [...]`");
            ev.diags.push(
                Diag::error(
                    Code::MissingField,
                    msg,
                    exp.name.span,
                    format!("`{required}` missing"),
                )
                .with_help(help),
            );
        }
    }
    let scalar = |ev: &mut Evaluator<'p>, name: &str| -> Value {
        let spec = schema::experiment_field(name).expect("experiment field exists");
        let overridden = ev.program.overrides.iter().rev().find(|o| {
            o.target == OverrideTarget::Experiments && o.path.len() == 1 && o.path[0].name == name
        });
        if let Some(ov) = overridden {
            return ev.expr(&root, &ov.value, spec.ty, Some(spec));
        }
        match fields.get(name) {
            Some(f) => ev.expr(&root, &f.value, spec.ty, Some(spec)),
            None => match spec.default {
                schema::Default::Int(i) => Value::Int(i),
                schema::Default::Enum(e) => Value::Enum(e.to_string()),
                _ => Value::Unknown,
            },
        }
    };
    let seeds = match scalar(ev, "seeds") {
        Value::Int(n) => n.max(1) as u64,
        _ => 1,
    };
    let root_seed = match scalar(ev, "seed") {
        Value::Int(n) => n.max(0) as u64,
        _ => 0,
    };
    let compat = match scalar(ev, "compat") {
        Value::Enum(e) => e,
        _ => "none".to_string(),
    };
    let report = match scalar(ev, "report") {
        Value::Obj(o) => Some(o),
        _ => None,
    };
    let table_obj = match scalar(ev, "tuned") {
        Value::Obj(o) => Some(o),
        _ => None,
    };
    let table = table_obj
        .as_ref()
        .and_then(|t| table(ev, t, &axes, fields.get("tuned").map(|f| f.value.span)));
    let cells = cells(ev, &axes, table.as_ref(), &root);
    update_batch_warning(ev, &axes, &cells);
    let compat_span = fields.get("compat").map_or(exp.name.span, |f| f.value.span);
    compat_used(ev, &compat, compat_span, &cells);
    if let Some(report) = &report {
        report_rules(ev, report, &cells);
    }
    let axis_names = axes
        .iter()
        .filter(|a| a.values.len() > 1 || a.path.len() > 1)
        .map(Axis::name)
        .collect();
    let claims = super::claims::resolve(ev, exp, &cells, seeds, report.as_deref());
    CheckedExperiment::new(
        exp.name.name.clone(),
        exp.span,
        seeds,
        root_seed,
        compat,
        axis_names,
        cells,
        report,
        claims,
    )
}

fn fields<'p>(ev: &mut Evaluator<'p>, exp: &'p ast::Experiment) -> HashMap<String, &'p ast::Field> {
    let mut out: HashMap<String, &ast::Field> = HashMap::new();
    for field in &exp.fields {
        if schema::experiment_field(&field.name.name).is_none() {
            let names = schema::experiment_fields().iter().map(|f| f.name);
            let help = did_you_mean(&field.name.name, names);
            let msg = format!("experiments have no field `{}`", field.name.name);
            ev.diags.push(
                Diag::error(Code::UnknownField, msg, field.name.span, "unknown field")
                    .with_help_opt(help),
            );
            continue;
        }
        if let Some(first) = out.get(&field.name.name) {
            let msg = format!("field `{}` is given twice", field.name.name);
            let diag = Diag::error(
                Code::DuplicateField,
                msg,
                field.name.span,
                "given again here",
            )
            .with_label(first.name.span, "first given here");
            ev.diags.push(diag);
            continue;
        }
        out.insert(field.name.name.clone(), field);
    }
    out
}

/// Every grid dimension: `vary` axes, plus fixed `env`/`agent`/`regime` fields as one-value axes.
fn axes<'p>(
    ev: &mut Evaluator<'p>,
    exp: &'p ast::Experiment,
    fields: &HashMap<String, &'p ast::Field>,
    root: &Scope<'p>,
) -> Vec<Axis<'p>> {
    let mut axes: Vec<Axis<'p>> = Vec::new();
    for vary in &exp.axes {
        let head = &vary.path[0];
        let Some(spec) = schema::experiment_field(&head.name) else {
            let names = schema::experiment_fields().iter().map(|f| f.name);
            let msg = format!(
                "cannot vary `{}`: experiments have no such field",
                head.name
            );
            let help = did_you_mean(&head.name, names);
            ev.diags.push(
                Diag::error(Code::UnknownField, msg, head.span, "unknown field")
                    .with_help_opt(help),
            );
            continue;
        };
        if vary.path.len() > 1 && !matches!(head.name.as_str(), "env" | "agent") {
            let msg = format!(
                "cannot vary `{}`: only `env.FIELD` and `agent.FIELD` reach inside a block",
                vary.path_string()
            );
            let diag = Diag::error(
                Code::UnknownField,
                msg,
                vary.path_span(),
                "not a block field",
            );
            ev.diags
                .push(diag.with_help(format!("vary `{}` itself", head.name)));
            continue;
        }
        let name = vary.path_string();
        let clash = axes.iter().find(|a| a.name() == name).map(|a| a.span);
        let field_clash = fields
            .get(&name)
            .filter(|_| vary.path.len() == 1)
            .map(|f| f.name.span);
        if let Some(first) = clash.or(field_clash) {
            let msg = format!("`{name}` is set twice in the grid");
            let diag = Diag::error(Code::DuplicateAxis, msg, vary.path_span(), "varied here")
                .with_label(first, "also set here")
                .with_help("merge the two into one `vary` list");
            ev.diags.push(diag);
            continue;
        }
        if vary.values.is_empty() {
            let msg = format!("`vary {name}` lists no values, so the grid is empty");
            let diag = Diag::error(Code::EmptyAxis, msg, vary.list_span, "empty")
                .with_help("add at least one value");
            ev.diags.push(diag);
            continue;
        }
        let values = vary
            .values
            .iter()
            .map(|v| match vary.path.len() {
                1 => AxisValue::Whole(ev.expr(root, v, spec.ty, Some(spec)), ev.snippet(v.span), v),
                _ => AxisValue::Sub(v),
            })
            .collect();
        axes.push(Axis {
            path: &vary.path,
            values,
            span: vary.path_span(),
        });
    }
    for name in ["env", "agent", "regime"] {
        let Some(field) = fields.get(name) else {
            continue;
        };
        if axes.iter().any(|a| a.name() == name) {
            continue;
        }
        let spec = schema::experiment_field(name).expect("experiment field exists");
        let value = ev.expr(root, &field.value, spec.ty, Some(spec));
        let label = ev.snippet(field.value.span);
        axes.push(Axis {
            path: std::slice::from_ref(&field.name),
            values: vec![AxisValue::Whole(value, label, &field.value)],
            span: field.name.span,
        });
    }
    axes
}

/// `--set experiment.agent=er` replaces a whole axis; sub-paths are applied per cell.
fn apply_field_overrides<'p>(ev: &mut Evaluator<'p>, axes: &mut Vec<Axis<'p>>, root: &Scope<'p>) {
    for ov in ev
        .program
        .overrides
        .iter()
        .filter(|o| o.target == OverrideTarget::Experiments)
    {
        let head = &ov.path[0];
        let Some(spec) = schema::experiment_field(&head.name) else {
            let names = schema::experiment_fields().iter().map(|f| f.name);
            let help = did_you_mean(&head.name, names);
            let msg = format!("experiments have no field `{}`", head.name);
            ev.diags.push(
                Diag::error(Code::UnknownField, msg, head.span, "unknown field")
                    .with_help_opt(help),
            );
            continue;
        };
        if ov.path.len() > 1 {
            continue;
        }
        if !matches!(spec.ty, Ty::Ref(Kind::Env | Kind::Agent | Kind::Regime)) {
            continue;
        }
        let value = ev.expr(root, &ov.value, spec.ty, Some(spec));
        let label = ev.snippet(ov.value.span);
        axes.retain(|a| a.name() != head.name);
        axes.push(Axis {
            path: &ov.path[..1],
            values: vec![AxisValue::Whole(value, label, &ov.value)],
            span: head.span,
        });
    }
}

fn table(ev: &mut Evaluator, obj: &Rc<Obj>, axes: &[Axis], at: Option<Span>) -> Option<Table> {
    let names = |field: &str| -> Vec<ast::Ident> {
        match obj.get(field).map(|f| &f.value) {
            Some(Value::List(items)) => items
                .iter()
                .filter_map(|s| match &s.value {
                    Value::Name(n) => Some(ast::Ident {
                        name: n.clone(),
                        span: s.span,
                    }),
                    _ => None,
                })
                .collect(),
            _ => Vec::new(),
        }
    };
    let key = names("key");
    let set = names("set");
    for k in &key {
        if !axes
            .iter()
            .any(|a| a.path.len() == 1 && a.path[0].name == k.name)
        {
            let msg = format!("tuned key `{}` is not an axis of this experiment", k.name);
            let help = did_you_mean(&k.name, ["env", "agent", "regime"]);
            ev.diags.push(
                Diag::error(Code::UnknownField, msg, k.span, "not an axis").with_help_opt(help),
            );
            return None;
        }
    }
    let mut rows = HashMap::new();
    let mut first_seen: HashMap<Vec<String>, Span> = HashMap::new();
    let Some(Value::List(items)) = obj.get("rows").map(|f| &f.value) else {
        return None;
    };
    for item in items {
        let Value::Raw(module, expr) = &item.value else {
            continue;
        };
        let ast::ExprKind::List(entries) = &expr.kind else {
            let msg = "a tuned row must be a list `[key..., value...]`";
            ev.diags
                .push(Diag::error(Code::TableRow, msg, expr.span, "not a list"));
            continue;
        };
        if entries.len() != key.len() + set.len() {
            let msg = format!(
                "tuned row has {} entries, expected {} keys and {} values",
                entries.len(),
                key.len(),
                set.len()
            );
            let diag = Diag::error(
                Code::TableRow,
                msg,
                expr.span,
                format!("{} entries", entries.len()),
            )
            .with_help(format!("write `[{}, {}]`", names_of(&key), names_of(&set)));
            ev.diags.push(diag);
            continue;
        }
        let Some(tuple) = row_key(ev, &entries[..key.len()], &key) else {
            continue;
        };
        if let Some(first) = first_seen.get(&tuple) {
            let msg = format!("two tuned rows for `[{}]`", tuple.join(", "));
            let diag = Diag::error(Code::DuplicateTunedEntry, msg, expr.span, "second row")
                .with_label(*first, "first row");
            ev.diags.push(diag.with_help("remove one of the rows"));
            continue;
        }
        first_seen.insert(tuple.clone(), expr.span);
        rows.insert(tuple, (*module, entries[key.len()..].to_vec()));
    }
    Some(Table {
        axes: key.into_iter().map(|k| k.name).collect(),
        set,
        rows,
        span: at.unwrap_or(obj.span),
    })
}

fn row_key(ev: &mut Evaluator, entries: &[ast::Expr], key: &[ast::Ident]) -> Option<Vec<String>> {
    let mut tuple = Vec::new();
    for (entry, axis) in entries.iter().zip(key) {
        let ast::ExprKind::Construct(c) = &entry.kind else {
            let msg = format!("a tuned key must be a name, for the `{}` axis", axis.name);
            ev.diags
                .push(Diag::error(Code::TableRow, msg, entry.span, "not a name"));
            return None;
        };
        let name = c.name().name.clone();
        if let Some(kind) = Kind::from_name(&axis.name) {
            let known = schema::ctor(kind, &name).is_some()
                || ev
                    .program
                    .module(ev.program.root)
                    .scope
                    .get(&name)
                    .is_some_and(|id| ev.program.definition(*id).kind.name == axis.name);
            if !known {
                let mut candidates: Vec<String> =
                    schema::ctors_of(kind).map(|c| c.name.to_string()).collect();
                for (n, id) in &ev.program.module(ev.program.root).scope {
                    if ev.program.definition(*id).kind.name == axis.name {
                        candidates.push(n.clone());
                    }
                }
                let help = did_you_mean(&name, candidates.iter().map(String::as_str));
                let msg = format!("unknown {} `{}` in tuned row", axis.name, name);
                ev.diags.push(
                    Diag::error(Code::UnknownName, msg, c.name().span, "not defined")
                        .with_help_opt(help),
                );
                return None;
            }
        }
        tuple.push(name);
    }
    Some(tuple)
}

fn names_of(idents: &[ast::Ident]) -> String {
    let names: Vec<&str> = idents.iter().map(|i| i.name.as_str()).collect();
    names.join(", ")
}

/// The largest grid an experiment expands to.
const MAX_CELLS: usize = 100_000;

fn cells<'p>(
    ev: &mut Evaluator<'p>,
    axes: &[Axis<'p>],
    table: Option<&Table>,
    root: &Scope<'p>,
) -> Vec<Cell> {
    let n_cells = axes
        .iter()
        .try_fold(1usize, |n, a| n.checked_mul(a.values.len()))
        .unwrap_or(usize::MAX);
    let widest = axes.iter().max_by_key(|a| a.values.len()).map(|a| a.span);
    if let (true, Some(span)) = (n_cells > MAX_CELLS, widest) {
        let msg = format!("the grid has {n_cells} cells; mbrl runs grids of up to {MAX_CELLS}");
        let diag = Diag::error(Code::TooLarge, msg, span, "the grid's axes")
            .with_help("split the experiment, or vary fewer values");
        ev.diags.push(diag);
        return Vec::new();
    }
    let mut cells = Vec::new();
    let mut missing_reported = false;
    for index in 0..n_cells {
        let picks = pick(axes, index);
        let mut whole: HashMap<String, Value> = HashMap::new();
        for (axis, value) in axes.iter().zip(&picks) {
            if let AxisValue::Whole(v, _, _) = value {
                whole.insert(axis.name(), v.clone());
            }
        }
        let (Some(Value::Obj(env)), Some(Value::Obj(agent))) =
            (whole.get("env"), whole.get("agent"))
        else {
            continue;
        };
        let regime = match whole.get("regime") {
            Some(Value::Obj(r)) => Some(r.clone()),
            _ => None,
        };
        let mut agent = agent.clone();
        if let Some(regime) = &regime {
            let assigns = regime
                .open_fields
                .iter()
                .map(|(module, f)| Assign::new(&f.name, &f.value, Scope::module(*module)))
                .collect();
            ev.setting_from = Some(format!("regime `{}`", regime.label));
            agent = relabel(ev, &agent, assigns);
            ev.setting_from = None;
        }
        if let Some(table) = table {
            agent = tuned_row(ev, agent, table, &whole, &mut missing_reported);
        }
        let (agent, env) = refined(ev, axes, &picks, agent, env.clone(), root);
        let coords = coords(ev, axes, &picks, &whole, &agent, &env);
        let Some(spaces_fn) = env.ctor.spaces else {
            continue;
        };
        let env_ref = env.clone();
        let get = |name: &str| {
            env_ref
                .int(name)
                .unwrap_or_else(|| env_ref.ctor.default_int(name))
        };
        let spaces = spaces_fn(&get);
        let nets = kinds::of(&agent).nets(&agent, &spaces);
        rules::cell_rules(ev, &agent, &env, &spaces, &nets);
        cells.push(Cell {
            index,
            coords,
            env,
            agent,
            regime,
            spaces,
            nets,
        });
    }
    cells
}

/// The agent with its tuned-table row applied; a missing row is reported once.
fn tuned_row(
    ev: &mut Evaluator,
    agent: Rc<Obj>,
    table: &Table,
    whole: &HashMap<String, Value>,
    missing_reported: &mut bool,
) -> Rc<Obj> {
    let key: Vec<String> = table
        .axes
        .iter()
        .map(|a| match whole.get(a) {
            Some(Value::Obj(o)) => o.key.clone(),
            _ => String::new(),
        })
        .collect();
    match table.rows.get(&key) {
        Some((module, values)) => {
            let assigns = table
                .set
                .iter()
                .zip(values.iter())
                .map(|(n, e)| Assign::new(n, e, Scope::module(*module)))
                .collect();
            relabel(ev, &agent, assigns)
        }
        None => {
            if !*missing_reported {
                *missing_reported = true;
                let msg = format!("the tuned table has no row for `[{}]`", key.join(", "));
                let diag = Diag::error(Code::MissingTunedEntry, msg, table.span, "table used here")
                    .with_help(format!(
                        "add a row `[{}, {}]`",
                        key.join(", "),
                        names_of(&table.set)
                    ));
                ev.diags.push(diag);
            }
            agent
        }
    }
}

/// The agent and env with the cell's `vary agent.FIELD` / `env.FIELD`
/// values, then the `--set agent.FIELD` / `env.FIELD` overrides, applied.
fn refined<'p>(
    ev: &mut Evaluator<'p>,
    axes: &[Axis<'p>],
    picks: &[&AxisValue<'p>],
    mut agent: Rc<Obj>,
    mut env: Rc<Obj>,
    root: &Scope<'p>,
) -> (Rc<Obj>, Rc<Obj>) {
    for (axis, value) in axes.iter().zip(picks) {
        let AxisValue::Sub(expr) = value else {
            continue;
        };
        let path = &axis.path[1..];
        match axis.path[0].name.as_str() {
            "env" => env = ev.apply_path(&env, path, expr, root),
            _ => agent = ev.apply_path(&agent, path, expr, root),
        }
    }
    for ov in ev
        .program
        .overrides
        .iter()
        .filter(|o| o.target == OverrideTarget::Experiments && o.path.len() > 1)
    {
        match ov.path[0].name.as_str() {
            "env" => env = ev.apply_path(&env, &ov.path[1..], &ov.value, root),
            "agent" => agent = ev.apply_path(&agent, &ov.path[1..], &ov.value, root),
            _ => (),
        }
    }
    (agent, env)
}

fn relabel(ev: &mut Evaluator, agent: &Rc<Obj>, assigns: Vec<Assign>) -> Rc<Obj> {
    let obj = ev.build(
        agent.ctor,
        Some(agent),
        assigns,
        agent.span,
        agent.label.clone(),
        agent.key.clone(),
    );
    Rc::new(obj)
}

/// A cell's coordinates, `(axis, label)`, as the cell runs: an axis value's
/// source text, unless what runs differs from it. A field its record sets
/// that the tuned table, a `vary` or a `--set` changed shows the value that
/// runs, a field a `--set agent.FIELD` (or `env.FIELD`) gives is added, and
/// a `vary agent.FIELD` that a `--set` replaces shows the value set.
fn coords(
    ev: &Evaluator,
    axes: &[Axis],
    picks: &[&AxisValue],
    whole: &HashMap<String, Value>,
    agent: &Obj,
    env: &Obj,
) -> Vec<(String, String)> {
    let set: Vec<&[ast::Ident]> = ev
        .program
        .overrides
        .iter()
        .filter(|o| o.target == OverrideTarget::Experiments && o.path.len() > 1)
        .map(|o| o.path.as_slice())
        .collect();
    let resolved = |head: &str| match head {
        "env" => Some(env),
        "agent" => Some(agent),
        _ => None,
    };
    let mut out = Vec::new();
    for (axis, value) in axes.iter().zip(picks) {
        let name = axis.name();
        let label = match value {
            AxisValue::Whole(_, label, expr) => match (resolved(&name), whole.get(&name)) {
                (Some(now), Some(Value::Obj(given))) => {
                    let set_here: Vec<&[ast::Ident]> = set
                        .iter()
                        .filter(|p| p[0].name == name)
                        .map(|p| &p[1..])
                        .collect();
                    relabelled(ev, expr, label, given, now, &set_here)
                }
                _ => label.clone(),
            },
            AxisValue::Sub(e) => {
                let replaced = set.iter().any(|p| names(p) == names(axis.path));
                match (replaced, resolved(&axis.path[0].name)) {
                    (true, Some(now)) => at_path(now, &axis.path[1..])
                        .map(shown)
                        .unwrap_or_else(|| ev.snippet(e.span)),
                    _ => ev.snippet(e.span),
                }
            }
        };
        out.push((name, label));
    }
    out
}

/// `a.b.c` of a path.
fn names(path: &[ast::Ident]) -> Vec<&str> {
    path.iter().map(|i| i.name.as_str()).collect()
}

/// The value at `path` below `obj` (`optimizer.b1`).
fn at_path<'o>(obj: &'o Obj, path: &[ast::Ident]) -> Option<&'o Value> {
    let (first, rest) = path.split_first()?;
    let value = &obj.get(&first.name)?.value;
    match (rest.is_empty(), value) {
        (true, v) => Some(v),
        (false, Value::Obj(inner)) => at_path(inner, rest),
        _ => None,
    }
}

/// A resolved value as a label shows it: `1e30`, `0.0002`, `[64, 64]`, `er`.
fn shown(value: &Value) -> String {
    match value {
        Value::Float(x) => {
            let plain = x.to_string();
            match plain.len() <= 8 {
                true => plain,
                false => format!("{x:e}"),
            }
        }
        Value::List(items) => {
            let parts: Vec<String> = items.iter().map(|i| shown(&i.value)).collect();
            format!("[{}]", parts.join(", "))
        }
        Value::Obj(o) => o.label.clone(),
        other => other.describe(),
    }
}

/// The label of a whole `agent` or `env` value: its source text when what
/// runs is what it says, else rebuilt as `HEAD { FIELD: VALUE, ... }` with
/// each field of its record at the value that runs, and the fields `--set`
/// gives after them.
fn relabelled(
    ev: &Evaluator,
    expr: &ast::Expr,
    label: &str,
    given: &Obj,
    now: &Obj,
    set: &[&[ast::Ident]],
) -> String {
    let (head, record): (String, &[ast::Field]) = match &expr.kind {
        ast::ExprKind::Construct(c) => match (&c.args, c.record.as_deref()) {
            (None, Some(fields)) if !fields.is_empty() => {
                let path: Vec<&str> = c.path.iter().map(|i| i.name.as_str()).collect();
                (path.join("."), fields)
            }
            _ => (label.to_string(), &[]),
        },
        _ => (label.to_string(), &[]),
    };
    let value_of = |obj: &Obj, name: &str| obj.get(name).map(|f| f.value.describe());
    let mut changed = false;
    let mut parts: Vec<String> = Vec::new();
    for field in record {
        let name = field.name.name.as_str();
        let text = match value_of(now, name) != value_of(given, name) {
            true => {
                changed = true;
                now.get(name).map(|f| shown(&f.value)).unwrap_or_default()
            }
            false => ev.snippet(field.value.span),
        };
        parts.push(format!("{name}: {text}"));
    }
    for path in set {
        let in_record = path.len() == 1 && record.iter().any(|f| f.name.name == path[0].name);
        if in_record {
            continue;
        }
        if let Some(value) = at_path(now, path) {
            changed = true;
            parts.push(format!("{}: {}", names(path).join("."), shown(value)));
        }
    }
    match changed {
        true => format!("{head} {{ {} }}", parts.join(", ")),
        false => label.to_string(),
    }
}

/// The value of each axis in cell `index`; the first axis varies slowest.
fn pick<'x, 'a>(axes: &'x [Axis<'a>], mut index: usize) -> Vec<&'x AxisValue<'a>> {
    let mut picks = Vec::with_capacity(axes.len());
    for axis in axes.iter().rev() {
        let n = axis.values.len();
        picks.push(&axis.values[index % n]);
        index /= n;
    }
    picks.reverse();
    picks
}

/// The report block must name the grid's axes and, when it names the
/// metric, match what every cell's evaluation scores.
fn report_rules(ev: &mut Evaluator, report: &Obj, cells: &[Cell]) {
    let mut axes: Vec<String> = ["env", "agent", "regime"].map(String::from).to_vec();
    for cell in cells {
        for (axis, _) in &cell.coords {
            if !axes.contains(axis) {
                axes.push(axis.clone());
            }
        }
    }
    if let Some(Value::List(items)) = report.get("facet").map(|f| &f.value) {
        for item in items {
            let Value::Name(name) = &item.value else {
                continue;
            };
            if axes.contains(name) {
                continue;
            }
            let msg = format!("`{name}` is not an axis of this experiment");
            let help = did_you_mean(name, axes.iter().map(String::as_str))
                .unwrap_or_else(|| format!("the axes are {}", axes.join(", ")));
            ev.diags.push(
                Diag::error(Code::UnknownName, msg, item.span, "not an axis").with_help(help),
            );
        }
    }
    if let Some(Value::List(items)) = report.get("lines").map(|f| &f.value) {
        for item in items {
            let Value::Name(name) = &item.value else {
                continue;
            };
            if name == "optimum"
                && !cells
                    .iter()
                    .any(|c| c.env.ctor.name == "panflute" && scored_by(c) == "rate")
            {
                let msg = "`optimum` draws nothing: no cell's env has a known optimum (PanFlute's reward rate)";
                let diag = Diag::warning(Code::IgnoredField, msg, item.span, "no line")
                    .with_help("remove `optimum`");
                ev.diags.push(diag);
                continue;
            }
            if REFERENCE_LINES.contains(&name.as_str()) {
                continue;
            }
            let msg = format!("`{name}` is not a reference line");
            let help = did_you_mean(name, REFERENCE_LINES).unwrap_or_else(|| {
                let [a, b] = REFERENCE_LINES;
                format!("the reference lines are `{a}` and `{b}`")
            });
            ev.diags
                .push(Diag::error(Code::UnknownName, msg, item.span, "not a line").with_help(help));
        }
    }
    let wanted = match report.enum_("metric") {
        Some("eval_return") => "return",
        Some("reward_rate") => "rate",
        _ => return,
    };
    let Some(cell) = cells.iter().find(|c| scored_by(c) != wanted) else {
        return;
    };
    let other = match wanted {
        "rate" => "an episode return",
        _ => "a reward rate",
    };
    let msg = format!(
        "cell {} [{}] is scored by {other}, not the report's `metric`",
        cell.index,
        cell.label()
    );
    let diag = Diag::error(
        Code::UnsupportedValue,
        msg,
        report.span_of("metric"),
        "the y axis",
    )
    .with_help("use `metric: auto`, which labels each env's own score");
    ev.diags.push(diag);
}

/// What a cell's evaluation protocol scores: returns (`return`) or a reward rate (`rate`).
fn scored_by(cell: &Cell) -> &'static str {
    let metric = cell.agent.obj("eval").and_then(|e| e.enum_("metric"));
    match metric {
        Some("reward_rate") => "rate",
        Some("episode_return") => "return",
        _ if cell.spaces.horizon.is_some() || cell.spaces.episodic => "return",
        _ => "rate",
    }
}

/// A compatibility mode reproduces one codebase's quirks: it must name the
/// codebase of some cell's agent, or it changes nothing.
fn compat_used(ev: &mut Evaluator, compat: &str, span: Span, cells: &[Cell]) {
    let refusal = cells
        .iter()
        .find_map(|c| kinds::of(&c.agent).compat_refusal(compat, span, &c.agent));
    ev.diags.extend(refusal);
    // The kind whose reference codebase the mode reproduces.
    let Some(kind) = kinds::all().find(|k| k.codebase() == Some(compat)) else {
        return;
    };
    let agent = kind.schema().name;
    if cells.iter().any(|c| c.agent.ctor.name == agent) {
        return;
    }
    let msg = format!("`compat: {compat}` has no effect: no cell runs a `{agent}` agent");
    let diag = Diag::warning(Code::IgnoredField, msg, span, "ignored")
        .with_help("remove `compat`, or name the codebase the grid's agents come from");
    ev.diags.push(diag);
}

/// Young et al. control the number of transitions per Q update across agents.
fn update_batch_warning(ev: &mut Evaluator, axes: &[Axis], cells: &[Cell]) {
    let Some(axis) = axes
        .iter()
        .find(|a| a.name() == "agent" && a.values.len() > 1)
    else {
        return;
    };
    let mut seen: Vec<(String, i64)> = Vec::new();
    for cell in cells {
        let Some(batch) = kinds::of(&cell.agent).q_update_batch(&cell.agent) else {
            continue;
        };
        if !seen.iter().any(|(label, _)| *label == cell.agent.label) {
            seen.push((cell.agent.label.clone(), batch));
        }
    }
    let Some((first_label, first)) = seen.first().cloned() else {
        return;
    };
    let Some((label, other)) = seen.iter().find(|(_, b)| *b != first) else {
        return;
    };
    let msg = format!("agents train Q on different numbers of transitions per update: `{first_label}` {first}, `{label}` {other}");
    let diag = Diag::warning(Code::UnequalUpdateBatch, msg, axis.span, "compared here")
        .with_help("match replay `batch` to planner `starts` x `length` so the comparison isolates where data comes from");
    ev.diags.push(diag);
}
