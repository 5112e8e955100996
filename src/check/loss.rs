//! Loss expressions in the checker. The arithmetic after `loss NAME(..) =`
//! becomes a [`Term`]: `let`s, parameters and other losses written as
//! expressions substituted, functions and reductions resolved, a division
//! by the constant 0 refused (`Evaluator::loss_math`). A learner given
//! the loss then checks it against what it provides ([`check_for`]): every
//! name, every axis, one number at the end, a gradient that reaches the
//! model.
//!
//! Invariants: reports, never panics, on any expression; runs nothing.

use std::collections::BTreeMap;
use std::rc::Rc;

use crate::autodiff::ir::{self, Axis, Func, Op, Problem, Signature, Term};
use crate::check::eval::{Binding, Evaluator, Scope};
use crate::check::value::{FieldValue, Obj, Value};
use crate::diagnostics::{did_you_mean, Code, Diag};
use crate::schema::{self, Kind, Ty};
use crate::source::Span;
use crate::syntax::ast::{self, BinOp, MathKind};

/// The twins in `stdlib/slbo.exp` of the built-in loss constructors.
const TWINS: &[(&str, &str)] = &[
    ("mle", "`mle_twin`"),
    ("multi_step", "`slbo_twin`"),
    ("value_aware", "`ma_l1_twin` or `vaml_twin`"),
];

/// The functions a loss may call besides the elementwise ones and the learner's networks.
const SHAPING: &[&str] = &["sum", "mean", "l1", "l2", "sum_sq", "step"];

/// Every function name a loss expression knows, for "did you mean".
fn function_names() -> Vec<&'static str> {
    Func::ALL
        .iter()
        .map(|f| f.name())
        .chain(SHAPING.iter().copied())
        .collect()
}

type Lets = Vec<(String, Term)>;

/// A call of names and numbers (`mean(sum(V(s), state))`, which the grammar
/// reads as constructors) as arithmetic; `None` when it has a record or a
/// named argument, or is a bare name (a reference to a definition).
pub fn as_math(c: &ast::Construct, span: Span) -> Option<ast::Math> {
    if c.record.is_some() || c.path.len() != 1 {
        return None;
    }
    let args = c.args.as_ref()?;
    let mut out = Vec::new();
    for a in args {
        if a.name.is_some() {
            return None;
        }
        out.push(expr_as_math(&a.value)?);
    }
    Some(ast::Math {
        kind: MathKind::Call(c.name().clone(), out),
        span,
    })
}

fn expr_as_math(e: &ast::Expr) -> Option<ast::Math> {
    match &e.kind {
        ast::ExprKind::Number(n) if n.unit.is_none() => Some(ast::Math {
            kind: MathKind::Num(n.value.as_f64()),
            span: e.span,
        }),
        ast::ExprKind::Math(m) => Some((**m).clone()),
        ast::ExprKind::Construct(c) if c.is_bare() && c.path.len() == 1 => Some(ast::Math {
            kind: MathKind::Name(c.name().clone()),
            span: e.span,
        }),
        ast::ExprKind::Construct(c) => as_math(c, e.span),
        _ => None,
    }
}

impl<'p> Evaluator<'p> {
    /// A loss written as arithmetic: an `expression` block holding its term
    /// and its horizon: the loss's `horizon` parameter, else the longest of
    /// the losses it uses (whose terms run at it), else 1.
    pub(super) fn loss_math<'a>(&mut self, scope: &Scope<'a>, m: &ast::Math, span: Span) -> Value
    where
        'p: 'a,
    {
        let mut lets = Vec::new();
        let outer = std::mem::take(&mut self.inlined_horizons);
        let term = self.term(scope, m, &mut lets);
        let parts = std::mem::replace(&mut self.inlined_horizons, outer);
        let horizon = match scope.params.get("horizon").cloned() {
            None => parts.into_iter().max().unwrap_or(1),
            Some(Binding::Unknown) => return Value::Unknown,
            Some(Binding::Thunk(e, inner)) => match self.expr(&inner, e, Ty::Int, None) {
                Value::Int(h) if h >= 1 => h,
                Value::Int(h) => {
                    let msg =
                        format!("a loss's horizon is a number of steps, at least 1; this is {h}");
                    self.diags.push(
                        Diag::error(Code::LossStep, msg, e.span, "not a horizon")
                            .with_help("`horizon: int = 1` for one-step samples"),
                    );
                    return Value::Unknown;
                }
                _ => return Value::Unknown,
            },
        };
        let Some(term) = term else {
            return Value::Unknown;
        };
        let ctor = schema::ctor(Kind::Loss, "expression").expect("the expression constructor");
        let mut fields = BTreeMap::new();
        fields.insert(
            "horizon",
            FieldValue {
                value: Value::Int(horizon),
                span,
                explicit: true,
            },
        );
        fields.insert(
            "body",
            FieldValue {
                value: Value::Term(Rc::new(term)),
                span: m.span,
                explicit: true,
            },
        );
        Value::Obj(Rc::new(Obj {
            ctor,
            label: self.snippet(span),
            key: "expression".into(),
            span,
            fields,
            open_fields: Vec::new(),
        }))
    }

    fn term<'a>(&mut self, scope: &Scope<'a>, m: &ast::Math, lets: &mut Lets) -> Option<Term>
    where
        'p: 'a,
    {
        let sp = m.span;
        Some(match &m.kind {
            MathKind::Num(v) => Term::new(Op::Const(*v), Vec::new(), sp),
            MathKind::Name(id) => return self.name_term(scope, id, lets),
            MathKind::Neg(x) => {
                let x = self.term(scope, x, lets)?;
                match x.op {
                    Op::Const(c) => Term::new(Op::Const(-c), Vec::new(), sp),
                    _ => Term::new(Op::Neg, vec![x], sp),
                }
            }
            MathKind::Bin(op, l, r) => {
                let l = self.term(scope, l, lets);
                let r = self.term(scope, r, lets);
                let (l, r) = (l?, r?);
                if let (BinOp::Div, Op::Const(c)) = (op, &r.op) {
                    if *c == 0.0 {
                        let msg = "the loss divides by the constant 0".to_string();
                        self.diags.push(
                            Diag::error(Code::LossZeroDivision, msg, r.span, "is 0")
                                .with_help("divide by a value that cannot be 0, or guard it: `x / max(y, 1e-6)`"),
                        );
                        return None;
                    }
                }
                match (&l.op, &r.op) {
                    (Op::Const(a), Op::Const(b))
                        if matches!(op, BinOp::Add | BinOp::Sub | BinOp::Mul | BinOp::Div) =>
                    {
                        let v = match op {
                            BinOp::Add => a + b,
                            BinOp::Sub => a - b,
                            BinOp::Mul => a * b,
                            _ => a / b,
                        };
                        Term::new(Op::Const(v), Vec::new(), sp)
                    }
                    _ => Term::new(Op::Bin(*op), vec![l, r], sp),
                }
            }
            MathKind::Let(name, value, body) => {
                let v = self.term(scope, value, lets)?;
                lets.push((name.name.clone(), v));
                let out = self.term(scope, body, lets);
                lets.pop();
                return out;
            }
            MathKind::Call(f, args) => return self.call_term(scope, f, args, sp, lets),
        })
    }

    fn name_term<'a>(&mut self, scope: &Scope<'a>, id: &ast::Ident, lets: &Lets) -> Option<Term>
    where
        'p: 'a,
    {
        if let Some((_, t)) = lets.iter().rev().find(|(n, _)| *n == id.name) {
            return Some(t.clone());
        }
        if let Some(binding) = scope.params.get(&id.name).cloned() {
            return match binding {
                Binding::Unknown => None,
                Binding::Thunk(e, inner) => self.param_term(&inner, e, id),
            };
        }
        if Axis::from_name(&id.name).is_some() {
            let msg = format!("`{}` is an axis, not a value", id.name);
            self.diags.push(
                Diag::error(Code::LossArity, msg, id.span, "an axis").with_help(format!(
                    "axes name what a reduction runs over: `sum(x, {})`",
                    id.name
                )),
            );
            return None;
        }
        let c = ast::Construct {
            path: vec![id.clone()],
            args: None,
            record: None,
        };
        match self.lookup_def(scope, &c) {
            Err(()) => None,
            Ok(None) => Some(Term::new(Op::Input(id.name.clone()), Vec::new(), id.span)),
            Ok(Some(def)) => match self.def_kind(def)? {
                Kind::Loss => {
                    let v = self.definition(def, id.span);
                    self.inline(v, id)
                }
                other => {
                    let msg = format!(
                        "`{}` is {}, not a value a loss can use",
                        id.name,
                        other.article()
                    );
                    self.diags.push(
                        Diag::error(Code::LossName, msg, id.span, format!("{} here", other.name()))
                            .with_help("a loss names its learner's batch and networks (`mbrl describe slbo`), numbers, parameters and other losses"),
                    );
                    None
                }
            },
        }
    }

    /// A parameter's value in a loss: a number, or a loss written as an expression.
    fn param_term<'a>(
        &mut self,
        scope: &Scope<'a>,
        e: &'a ast::Expr,
        id: &ast::Ident,
    ) -> Option<Term>
    where
        'p: 'a,
    {
        match &e.kind {
            ast::ExprKind::Number(_) => match self.expr(scope, e, Ty::Float, None) {
                Value::Float(x) => Some(Term::new(Op::Const(x), Vec::new(), id.span)),
                Value::Int(x) => Some(Term::new(Op::Const(x as f64), Vec::new(), id.span)),
                _ => None,
            },
            _ => {
                let v = self.expr(scope, e, Ty::Ref(Kind::Loss), None);
                self.inline(v, id)
            }
        }
    }

    /// The term of a loss used inside another.
    fn inline(&mut self, v: Value, id: &ast::Ident) -> Option<Term> {
        let Value::Obj(o) = v else { return None };
        if let Some(Value::Term(t)) = o.get("body").map(|f| &f.value) {
            if let Some(h) = o.int("horizon") {
                self.inlined_horizons.push(h);
            }
            return Some((**t).clone());
        }
        let twin = TWINS
            .iter()
            .find(|(c, _)| *c == o.ctor.name)
            .map(|(_, t)| *t);
        let msg = format!(
            "`{}` is a built-in loss (`{}`), and an expression combines only losses written as expressions",
            id.name, o.ctor.name
        );
        let help = match twin {
            Some(t) => format!(
                "use its twin, {t} (`use slbo::*`), which computes the same loss as an expression"
            ),
            None => "write the loss as an expression".to_string(),
        };
        self.diags
            .push(Diag::error(Code::LossBuiltin, msg, id.span, "built in").with_help(help));
        None
    }

    fn call_term<'a>(
        &mut self,
        scope: &Scope<'a>,
        f: &ast::Ident,
        args: &[ast::Math],
        sp: Span,
        lets: &mut Lets,
    ) -> Option<Term>
    where
        'p: 'a,
    {
        let name = f.name.as_str();
        let arity = |ev: &mut Evaluator, msg: String, help: &str| {
            ev.diags
                .push(Diag::error(Code::LossArity, msg, sp, "here").with_help(help.to_string()));
        };
        match name {
            "sum" | "mean" | "l1" | "l2" | "sum_sq" => {
                let Some((first, rest)) = args.split_first() else {
                    arity(
                        self,
                        format!("`{name}` needs a value"),
                        "e.g. `mean(x)`, `sum(x, state)`",
                    );
                    return None;
                };
                let x = self.term(scope, first, lets)?;
                let mut axes = Vec::new();
                for a in rest {
                    match &a.kind {
                        MathKind::Name(id) if Axis::from_name(&id.name).is_some() => {
                            let axis = Axis::from_name(&id.name).expect("an axis");
                            if !axes.contains(&axis) {
                                axes.push(axis);
                            }
                        }
                        _ => {
                            let msg =
                                format!("`{name}` takes a value, then the axes it reduces over");
                            self.diags.push(
                                Diag::error(Code::LossArity, msg, a.span, "not an axis")
                                    .with_help("axes are `horizon`, `batch`, `state` and `action`"),
                            );
                            return None;
                        }
                    }
                }
                axes.sort();
                let reduce = |mean, x| {
                    Term::new(
                        Op::Reduce {
                            mean,
                            axes: axes.clone(),
                        },
                        vec![x],
                        sp,
                    )
                };
                let func = |f, x| Term::new(Op::Func(f), vec![x], sp);
                Some(match name {
                    "sum" => reduce(false, x),
                    "mean" => reduce(true, x),
                    "l1" => reduce(false, func(Func::Abs, x)),
                    "l2" => func(Func::Sqrt, reduce(false, func(Func::Square, x))),
                    _ => reduce(false, func(Func::Square, x)),
                })
            }
            "step" => {
                let k = match args {
                    [_, k] => match &k.kind {
                        MathKind::Num(v) if *v >= 0.0 && v.fract() == 0.0 => Some(*v as usize),
                        MathKind::Name(id) => match self.name_term(scope, id, lets).map(|t| t.op) {
                            Some(Op::Const(v)) if v >= 0.0 && v.fract() == 0.0 => Some(v as usize),
                            _ => None,
                        },
                        _ => None,
                    },
                    _ => None,
                };
                let Some(k) = k else {
                    arity(
                        self,
                        "`step` takes a value and a whole number of steps from 0".into(),
                        "e.g. `step(s, 0)`: the first step of each sequence",
                    );
                    return None;
                };
                let x = self.term(scope, &args[0], lets)?;
                Some(Term::new(Op::Step(k), vec![x], sp))
            }
            _ => {
                let mut terms = Vec::new();
                for a in args {
                    terms.push(self.term(scope, a, lets));
                }
                let terms: Vec<Term> = terms.into_iter().collect::<Option<_>>()?;
                match Func::from_name(name) {
                    Some(func) if func.arity() != terms.len() => {
                        let msg = format!(
                            "`{name}` takes {} argument(s), given {}",
                            func.arity(),
                            terms.len()
                        );
                        let help = match func {
                            Func::Clip => "`clip(x, lo, hi)`",
                            Func::Where => {
                                "`where(cond, a, b)`: `a` where `cond` is not 0, else `b`"
                            }
                            Func::Huber => "`huber(x, delta)`",
                            Func::Min | Func::Max => "elementwise of two values: `max(x, 1e-6)`",
                            _ => "one value",
                        };
                        arity(self, msg, help);
                        None
                    }
                    Some(func) => Some(Term::new(Op::Func(func), terms, sp)),
                    // A learner's network, or an unknown name the learner reports.
                    None => Some(Term::new(Op::Call(name.to_string()), terms, f.span)),
                }
            }
        }
    }
}

/// Checks an `expression` loss given to `agent`, whose learner offers `sig`.
pub fn check_for(ev: &mut Evaluator, agent: &Obj, loss: &Obj, sig: &Signature) {
    let Some(Value::Term(t)) = loss.get("body").map(|f| &f.value) else {
        return;
    };
    let horizon = loss.int("horizon").unwrap_or(1).max(1) as usize;
    let (info, problems) = ir::infer(t, sig, horizon);
    let given = agent.span_of("model_loss");
    for p in problems {
        let d = match p {
            Problem::UnknownName { name, span } => unknown(sig, &name, span, given),
            Problem::Misused {
                name,
                span,
                callable,
            } => {
                let (msg, help) = match callable {
                    true => (
                        format!("`{name}` is a network of `{}`: call it", sig.learner),
                        format!(
                            "e.g. `{name}(s{})`",
                            if name == "model" { ", a" } else { "" }
                        ),
                    ),
                    false => (
                        format!("`{name}` is a tensor of `{}`, not a network", sig.learner),
                        format!("use it as a value: `{name}`"),
                    ),
                };
                Diag::error(Code::LossArity, msg, span, "here").with_help(help)
            }
            Problem::Axes {
                span,
                message,
                help,
            } => Diag::error(Code::LossAxes, message, span, "axes do not fit").with_help(help),
            Problem::StepRange { span, k, horizon } => {
                let msg = format!(
                    "`step(.., {k})` is past the loss's horizon of {horizon} (steps 0 to {})",
                    horizon - 1
                );
                Diag::error(Code::LossStep, msg, span, "no such step").with_help(format!(
                    "give the loss a longer horizon: `loss NAME(horizon: int = {}) = ...`",
                    k + 1
                ))
            }
            Problem::Domain { span, func } => {
                let (what, help) = match func {
                    Func::Log => ("zero or negative", "`log(max(x, 1e-8))`, or a value known to be positive (`exp`, a constant)"),
                    _ => ("negative", "`sqrt(max(x, 0))`, or a value known to be non-negative (`square`, `abs`, a sum of them)"),
                };
                let msg = format!(
                    "`{}` of a value that may be {what}: its result may be NaN",
                    func.name()
                );
                Diag::warning(Code::LossDomain, msg, span, "may leave its domain").with_help(help)
            }
        };
        ev.diags.push(d);
    }
    let Some(info) = info else { return };
    if !info.axes.is_empty() {
        let msg = format!(
            "the loss is a tensor over {}, not one number",
            ir::show(&info.axes)
        );
        ev.diags.push(
            Diag::error(Code::LossScalar, msg, t.span, "not a scalar")
                .with_help("reduce what is left: `mean(..)` over everything, or `sum(x, state)` then `mean(..)`"),
        );
    } else if !info.grad {
        let msg = "no gradient reaches the model's parameters from this loss".to_string();
        ev.diags.push(
            Diag::error(Code::LossGradient, msg, t.span, "constant in the model").with_help(
                "the loss must call `model(..)` outside `stop_gradient`, `dV` and comparisons",
            ),
        );
    }
}

fn unknown(sig: &Signature, name: &str, span: Span, given: Span) -> Diag {
    let elsewhere: Vec<&'static str> = crate::kinds::all()
        .filter_map(|k| k.loss_signature())
        .filter(|s| s.learner != sig.learner && s.names().contains(&name))
        .map(|s| s.learner)
        .collect();
    if !elsewhere.is_empty() {
        let msg = format!(
            "`{name}` is provided by {}, not by `{}`",
            elsewhere.join(", "),
            sig.learner
        );
        return Diag::error(Code::LossLearner, msg, span, "not provided here")
            .with_label(given, "given to this learner")
            .with_help(format!(
                "`{}` provides {}",
                sig.learner,
                sig.names().join(", ")
            ));
    }
    let mut known = sig.names();
    known.extend(function_names());
    let help = did_you_mean(name, known.iter().copied()).unwrap_or_else(|| {
        format!(
            "`{}` provides {}; functions are {}",
            sig.learner,
            sig.names().join(", "),
            function_names().join(", ")
        )
    });
    let msg = format!("unknown name `{name}` in a loss given to `{}`", sig.learner);
    Diag::error(Code::LossName, msg, span, "not known").with_help(help)
}
