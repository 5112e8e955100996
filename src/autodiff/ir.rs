//! The terms a checked loss expression becomes, and what a learner offers
//! them: named inputs with their axes, and callables (its networks).
//! [`infer`] gives every sub-term its axes, whether a gradient reaches it,
//! and what is known of its sign, and reports what does not fit as
//! [`Problem`]s for the checker to word.
//!
//! Invariants: pure data and pure functions; knows no learner by name.

use std::collections::BTreeSet;

use serde::Serialize;

use crate::source::Span;
pub use crate::syntax::ast::BinOp;

/// A named axis of a loss's tensors, in their canonical order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub enum Axis {
    /// The steps of each sequence in the batch.
    Horizon,
    /// The sequences of the batch.
    Batch,
    /// The dimensions of a state.
    State,
    /// The dimensions of an action.
    Action,
}

impl Axis {
    pub const ALL: [Axis; 4] = [Axis::Horizon, Axis::Batch, Axis::State, Axis::Action];

    pub fn name(self) -> &'static str {
        match self {
            Axis::Horizon => "horizon",
            Axis::Batch => "batch",
            Axis::State => "state",
            Axis::Action => "action",
        }
    }

    pub fn from_name(name: &str) -> Option<Axis> {
        Axis::ALL.into_iter().find(|a| a.name() == name)
    }

    /// A feature axis: the last one of a tensor, the width of a network's rows.
    pub fn is_feature(self) -> bool {
        matches!(self, Axis::State | Axis::Action)
    }
}

/// An elementwise function.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
pub enum Func {
    Abs,
    Square,
    Sqrt,
    Exp,
    Log,
    Min,
    Max,
    /// `clip(x, lo, hi)`.
    Clip,
    /// `where(cond, a, b)`: `a` where `cond` is not 0, else `b`.
    Where,
    /// `huber(x, delta)`: `x^2 / 2` within `delta` of 0, `delta (|x| - delta / 2)` beyond.
    Huber,
    /// The value, with no gradient through it.
    StopGradient,
}

impl Func {
    pub const ALL: [Func; 11] = [
        Func::Abs,
        Func::Square,
        Func::Sqrt,
        Func::Exp,
        Func::Log,
        Func::Min,
        Func::Max,
        Func::Clip,
        Func::Where,
        Func::Huber,
        Func::StopGradient,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Func::Abs => "abs",
            Func::Square => "square",
            Func::Sqrt => "sqrt",
            Func::Exp => "exp",
            Func::Log => "log",
            Func::Min => "min",
            Func::Max => "max",
            Func::Clip => "clip",
            Func::Where => "where",
            Func::Huber => "huber",
            Func::StopGradient => "stop_gradient",
        }
    }

    pub fn arity(self) -> usize {
        match self {
            Func::Min | Func::Max | Func::Huber => 2,
            Func::Clip | Func::Where => 3,
            _ => 1,
        }
    }

    pub fn from_name(name: &str) -> Option<Func> {
        Func::ALL.into_iter().find(|f| f.name() == name)
    }
}

/// What a term computes from its arguments.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub enum Op {
    Const(f64),
    /// A tensor the learner provides (`s`, `s_next`, `mask`).
    Input(String),
    Neg,
    Bin(BinOp),
    Func(Func),
    /// The sum (or mean) over these axes; over all of them when empty.
    Reduce {
        mean: bool,
        axes: Vec<Axis>,
    },
    /// One of the learner's callables (`model(s, a)`, `V(s)`).
    Call(String),
    /// Step `k` of the horizon axis (which it removes).
    Step(usize),
}

/// A loss expression after checking: names resolved, parameters and `let`s
/// substituted, named losses inlined.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Term {
    pub op: Op,
    pub args: Vec<Term>,
    #[serde(skip)]
    pub span: Span,
}

impl Term {
    pub fn new(op: Op, args: Vec<Term>, span: Span) -> Term {
        Term { op, args, span }
    }

    /// The canonical text: equal for equal computations (the run's identity
    /// and the tape's shared sub-terms rest on it).
    pub fn describe(&self) -> String {
        let args: Vec<String> = self.args.iter().map(Term::describe).collect();
        match &self.op {
            Op::Const(c) => format!("{c:e}"),
            Op::Input(name) => name.clone(),
            Op::Neg => format!("(-{})", args[0]),
            Op::Bin(op) => format!("({} {} {})", args[0], op.symbol(), args[1]),
            Op::Func(f) => format!("{}({})", f.name(), args.join(", ")),
            Op::Reduce { mean, axes } => {
                let names: Vec<&str> = axes.iter().map(|a| a.name()).collect();
                let f = if *mean { "mean" } else { "sum" };
                match names.is_empty() {
                    true => format!("{f}({})", args[0]),
                    false => format!("{f}({}, {})", args[0], names.join(", ")),
                }
            }
            Op::Call(name) => format!("{name}({})", args.join(", ")),
            Op::Step(k) => format!("step({}, {k})", args[0]),
        }
    }

    /// The distinct operations, one a line, each after its arguments:
    /// `%3 = model(%1, %2)`; equal sub-terms are one line (as the tape computes them once).
    pub fn ops(&self) -> Vec<String> {
        let mut keys: Vec<String> = Vec::new();
        let mut lines = Vec::new();
        for t in self.post_order() {
            let key = t.describe();
            if keys.contains(&key) {
                continue;
            }
            let arg = |i: usize| {
                let k = t.args[i].describe();
                format!("%{}", keys.iter().position(|x| *x == k).unwrap_or(0))
            };
            let args: Vec<String> = (0..t.args.len()).map(arg).collect();
            let text = match &t.op {
                Op::Const(c) => format!("{c}"),
                Op::Input(name) => name.clone(),
                Op::Neg => format!("-{}", args[0]),
                Op::Bin(op) => format!("{} {} {}", args[0], op.symbol(), args[1]),
                Op::Func(f) => format!("{}({})", f.name(), args.join(", ")),
                Op::Reduce { mean, axes } => {
                    let f = if *mean { "mean" } else { "sum" };
                    let names: Vec<&str> = axes.iter().map(|a| a.name()).collect();
                    match names.is_empty() {
                        true => format!("{f}({})", args[0]),
                        false => format!("{f}({}, {})", args[0], names.join(", ")),
                    }
                }
                Op::Call(name) => format!("{name}({})", args.join(", ")),
                Op::Step(k) => format!("step({}, {k})", args[0]),
            };
            lines.push(format!("%{} = {text}", keys.len()));
            keys.push(key);
        }
        lines
    }

    /// Whether it calls the network `name` anywhere.
    pub fn calls(&self, name: &str) -> bool {
        self.post_order()
            .iter()
            .any(|t| matches!(&t.op, Op::Call(n) if n == name))
    }

    /// Every sub-term, children before parents.
    pub fn post_order(&self) -> Vec<&Term> {
        let mut out = Vec::new();
        fn walk<'t>(t: &'t Term, out: &mut Vec<&'t Term>) {
            for a in &t.args {
                walk(a, out);
            }
            out.push(t);
        }
        walk(self, &mut out);
        out
    }
}

/// A tensor a learner provides to its losses.
#[derive(Clone, Debug)]
pub struct Input {
    pub name: &'static str,
    pub axes: &'static [Axis],
    pub doc: &'static str,
}

/// A network a learner lets its losses call.
#[derive(Clone, Debug)]
pub struct Callable {
    pub name: &'static str,
    pub doc: &'static str,
    /// The feature axis each argument must end in; the other axes must agree.
    pub args: &'static [Axis],
    /// The feature axis of the result (replacing the first argument's), or
    /// none: one number per row.
    pub out: Option<Axis>,
    /// The result depends on the parameters being trained (the model).
    pub trained: bool,
    /// A gradient passes from the result to the first argument.
    pub through: bool,
}

/// What a learner offers its loss expressions.
#[derive(Clone, Debug)]
pub struct Signature {
    pub learner: &'static str,
    pub inputs: &'static [Input],
    pub callables: &'static [Callable],
}

impl Signature {
    pub fn input(&self, name: &str) -> Option<&Input> {
        self.inputs.iter().find(|i| i.name == name)
    }

    pub fn callable(&self, name: &str) -> Option<&Callable> {
        self.callables.iter().find(|c| c.name == name)
    }

    pub fn names(&self) -> Vec<&'static str> {
        self.inputs
            .iter()
            .map(|i| i.name)
            .chain(self.callables.iter().map(|c| c.name))
            .collect()
    }
}

/// What is known of a term.
#[derive(Clone, Debug, PartialEq)]
pub struct Info {
    pub axes: BTreeSet<Axis>,
    /// A gradient with respect to the trained parameters reaches it.
    pub grad: bool,
    /// Known to be >= 0 (and, with `positive`, > 0).
    pub nonneg: bool,
    pub positive: bool,
}

/// What does not fit, for the checker to word and code.
#[derive(Clone, Debug, PartialEq)]
pub enum Problem {
    /// A name the learner does not provide.
    UnknownName { name: String, span: Span },
    /// A callable used as a value, or a value called.
    Misused {
        name: String,
        span: Span,
        callable: bool,
    },
    /// Axes that do not fit (`s - a`, a reduction over an axis the value lacks).
    Axes {
        span: Span,
        message: String,
        help: String,
    },
    /// `step(x, k)` past the horizon.
    StepRange {
        span: Span,
        k: usize,
        horizon: usize,
    },
    /// A function applied where its argument may leave its domain (a warning).
    Domain { span: Span, func: Func },
}

/// Every sub-term's [`Info`], checked against `sig` for a batch of
/// `horizon` steps; the problems found (the first per sub-term).
pub fn infer(term: &Term, sig: &Signature, horizon: usize) -> (Option<Info>, Vec<Problem>) {
    let mut problems = Vec::new();
    let info = walk(term, sig, horizon, &mut problems);
    (info, problems)
}

fn set(axes: &[Axis]) -> BTreeSet<Axis> {
    axes.iter().copied().collect()
}

fn feature(axes: &BTreeSet<Axis>) -> Option<Axis> {
    axes.iter().copied().find(|a| a.is_feature())
}

fn walk(t: &Term, sig: &Signature, horizon: usize, problems: &mut Vec<Problem>) -> Option<Info> {
    let mut args = Vec::new();
    for a in &t.args {
        args.push(walk(a, sig, horizon, problems));
    }
    let args: Vec<Info> = args.into_iter().collect::<Option<_>>()?;
    let axes_problem = |message: String, help: &str| Problem::Axes {
        span: t.span,
        message,
        help: help.to_string(),
    };
    let union = |infos: &[Info]| -> Result<BTreeSet<Axis>, Problem> {
        let mut out = BTreeSet::new();
        for i in infos {
            out.extend(i.axes.iter().copied());
        }
        if out.contains(&Axis::State) && out.contains(&Axis::Action) {
            let shown: Vec<String> = infos.iter().map(|i| show(&i.axes)).collect();
            return Err(axes_problem(
                format!("a state and an action do not combine elementwise ({})", shown.join(" and ")),
                "reduce one over its feature axis first (`sum(x, state)`), or combine states with states",
            ));
        }
        Ok(out)
    };
    let info = |axes, grad, nonneg, positive| Info {
        axes,
        grad,
        nonneg,
        positive,
    };
    let any_grad = |infos: &[Info]| infos.iter().any(|i| i.grad);
    let out = match &t.op {
        Op::Const(c) => info(BTreeSet::new(), false, *c >= 0.0, *c > 0.0),
        Op::Input(name) => match (sig.input(name), sig.callable(name)) {
            (Some(i), _) => {
                let nonneg = name == "mask" || name.ends_with("_std");
                info(set(i.axes), false, nonneg, name.ends_with("_std"))
            }
            (None, Some(_)) => {
                problems.push(Problem::Misused {
                    name: name.clone(),
                    span: t.span,
                    callable: true,
                });
                return None;
            }
            (None, None) => {
                problems.push(Problem::UnknownName {
                    name: name.clone(),
                    span: t.span,
                });
                return None;
            }
        },
        Op::Neg => info(args[0].axes.clone(), args[0].grad, false, false),
        Op::Bin(op) => {
            let axes = match union(&args) {
                Ok(a) => a,
                Err(p) => {
                    problems.push(p);
                    return None;
                }
            };
            let (l, r) = (&args[0], &args[1]);
            match op {
                BinOp::Add => info(
                    axes,
                    any_grad(&args),
                    l.nonneg && r.nonneg,
                    (l.positive && r.nonneg) || (r.positive && l.nonneg),
                ),
                BinOp::Sub => info(axes, any_grad(&args), false, false),
                BinOp::Mul | BinOp::Div => info(
                    axes,
                    any_grad(&args),
                    l.nonneg && r.nonneg,
                    l.positive && r.positive,
                ),
                _ => info(axes, false, true, false),
            }
        }
        Op::Func(f) => {
            let axes = match union(&args) {
                Ok(a) => a,
                Err(p) => {
                    problems.push(p);
                    return None;
                }
            };
            let x = &args[0];
            if (*f == Func::Log && !x.positive) || (*f == Func::Sqrt && !x.nonneg) {
                problems.push(Problem::Domain {
                    span: t.span,
                    func: *f,
                });
            }
            let grad = match f {
                Func::StopGradient => false,
                Func::Where => args[1].grad || args[2].grad,
                _ => any_grad(&args),
            };
            let (nonneg, positive) = match f {
                Func::Abs | Func::Square | Func::Sqrt | Func::Huber => (true, false),
                Func::Exp => (true, true),
                Func::Log => (false, false),
                Func::Min => (x.nonneg && args[1].nonneg, x.positive && args[1].positive),
                Func::Max => (x.nonneg || args[1].nonneg, x.positive || args[1].positive),
                Func::Clip => (args[1].nonneg, args[1].positive),
                Func::Where => (
                    args[1].nonneg && args[2].nonneg,
                    args[1].positive && args[2].positive,
                ),
                Func::StopGradient => (x.nonneg, x.positive),
            };
            info(axes, grad, nonneg, positive)
        }
        Op::Reduce { axes, .. } => {
            let x = &args[0];
            let mut left = x.axes.clone();
            for a in axes {
                if !left.remove(a) {
                    problems.push(axes_problem(
                        format!(
                            "reduces over `{}`, an axis this value does not have ({})",
                            a.name(),
                            show(&x.axes)
                        ),
                        "reduce over the axes the value has, or over all of them (`mean(x)`)",
                    ));
                    return None;
                }
            }
            if axes.is_empty() {
                left.clear();
            }
            info(left, x.grad, x.nonneg, x.positive)
        }
        Op::Step(k) => {
            let x = &args[0];
            if !x.axes.contains(&Axis::Horizon) {
                problems.push(axes_problem(
                    format!(
                        "`step(.., {k})` picks a step of the horizon, and this value has none ({})",
                        show(&x.axes)
                    ),
                    "apply `step` to a batch with a horizon axis (`s`, `a`, `s_next`, `mask`)",
                ));
                return None;
            }
            if *k >= horizon {
                problems.push(Problem::StepRange {
                    span: t.span,
                    k: *k,
                    horizon,
                });
                return None;
            }
            let mut axes = x.axes.clone();
            axes.remove(&Axis::Horizon);
            info(axes, x.grad, x.nonneg, x.positive)
        }
        Op::Call(name) => {
            let Some(c) = sig.callable(name) else {
                match sig.input(name) {
                    Some(_) => problems.push(Problem::Misused {
                        name: name.clone(),
                        span: t.span,
                        callable: false,
                    }),
                    None => problems.push(Problem::UnknownName {
                        name: name.clone(),
                        span: t.span,
                    }),
                }
                return None;
            };
            if args.len() != c.args.len() {
                problems.push(axes_problem(
                    format!(
                        "`{name}` takes {} argument(s), given {}",
                        c.args.len(),
                        args.len()
                    ),
                    c.doc,
                ));
                return None;
            }
            let mut leading: Option<BTreeSet<Axis>> = None;
            for (i, (want, got)) in c.args.iter().zip(&args).enumerate() {
                if feature(&got.axes) != Some(*want) {
                    problems.push(axes_problem(
                        format!(
                            "argument {} of `{name}` must be rows of `{}` ({}), found {}",
                            i + 1,
                            want.name(),
                            want.name(),
                            show(&got.axes)
                        ),
                        c.doc,
                    ));
                    return None;
                }
                let mut rest = got.axes.clone();
                rest.remove(want);
                match &leading {
                    Some(l) if *l != rest => {
                        problems.push(axes_problem(
                            format!(
                                "the arguments of `{name}` disagree on their rows ({} and {})",
                                show(l),
                                show(&rest)
                            ),
                            "pick the same steps of both (`step(s, 0)` with `step(a, 0)`)",
                        ));
                        return None;
                    }
                    _ => leading = Some(rest),
                }
            }
            let mut axes = leading.unwrap_or_default();
            if let Some(o) = c.out {
                axes.insert(o);
            }
            let grad = c.trained || (c.through && args.first().is_some_and(|a| a.grad));
            info(axes, grad, false, false)
        }
    };
    Some(out)
}

/// `[horizon, batch, state]`.
pub fn show(axes: &BTreeSet<Axis>) -> String {
    let names: Vec<&str> = axes.iter().map(|a| a.name()).collect();
    format!("[{}]", names.join(", "))
}
