//! Every operation's gradient against central differences, alone and
//! composed, on a toy learner whose one trained callable scales its input
//! elementwise; and axis inference on what fits and what does not.

use std::any::Any;

use super::ir::{infer, Axis, BinOp, Callable, Func, Input, Op, Problem, Signature, Term};
use super::tape::{Bindings, Tape, Tensor};
use crate::source::{FileId, Span};

const H: usize = 2;
const B: usize = 3;
const D: usize = 2;

fn span() -> Span {
    Span::new(FileId(0), 0..0)
}

fn t(op: Op, args: Vec<Term>) -> Term {
    Term::new(op, args, span())
}

fn input(name: &str) -> Term {
    t(Op::Input(name.into()), Vec::new())
}

fn c(x: f64) -> Term {
    t(Op::Const(x), Vec::new())
}

fn f(func: Func, args: Vec<Term>) -> Term {
    t(Op::Func(func), args)
}

fn f1(func: Func, x: Term) -> Term {
    t(Op::Func(func), vec![x])
}

fn bin(op: BinOp, a: Term, b: Term) -> Term {
    t(Op::Bin(op), vec![a, b])
}

fn mean(x: Term) -> Term {
    t(
        Op::Reduce {
            mean: true,
            axes: Vec::new(),
        },
        vec![x],
    )
}

/// `g(x) = x * w` with trained `w` (one weight per element of `x`).
fn g(x: Term) -> Term {
    t(Op::Call("g".into()), vec![x])
}

static SIG: Signature = Signature {
    learner: "toy",
    inputs: &[
        Input {
            name: "x",
            axes: &[Axis::Horizon, Axis::Batch, Axis::State],
            doc: "",
        },
        Input {
            name: "y",
            axes: &[Axis::Horizon, Axis::Batch, Axis::State],
            doc: "",
        },
        Input {
            name: "m",
            axes: &[Axis::Horizon, Axis::Batch],
            doc: "",
        },
        Input {
            name: "u",
            axes: &[Axis::Horizon, Axis::Batch, Axis::Action],
            doc: "",
        },
    ],
    callables: &[Callable {
        name: "g",
        doc: "",
        args: &[Axis::State],
        out: Some(Axis::State),
        trained: true,
        through: true,
    }],
};

struct Toy {
    w: Vec<f32>,
    grads: Vec<f32>,
}

fn data(seed: u32, n: usize) -> Vec<f32> {
    (0..n)
        .map(|i| {
            let k = (i as u32 + 1)
                .wrapping_mul(2654435761)
                .wrapping_add(seed * 97);
            (k % 1000) as f32 / 250.0 - 2.0
        })
        .collect()
}

impl Bindings for Toy {
    fn input(&self, name: &str) -> Tensor {
        let hbd = [(Axis::Horizon, H), (Axis::Batch, B), (Axis::State, D)];
        match name {
            "x" => Tensor::new(&hbd, data(1, H * B * D)),
            "y" => Tensor::new(&hbd, data(2, H * B * D)),
            "m" => Tensor::new(
                &[(Axis::Horizon, H), (Axis::Batch, B)],
                vec![1.0, 0.0, 1.0, 1.0, 1.0, 0.0],
            ),
            _ => unreachable!(),
        }
    }

    fn call(&self, _: &str, args: &[&Tensor]) -> (Tensor, Box<dyn Any>) {
        let x = args[0];
        let n = self.w.len();
        let data = x
            .data
            .iter()
            .enumerate()
            .map(|(i, v)| v * self.w[i % n])
            .collect();
        let out = Tensor {
            axes: x.axes.clone(),
            dims: x.dims.clone(),
            data,
        };
        (out, Box::new(()))
    }

    fn call_backward(
        &mut self,
        _: &str,
        _: &dyn Any,
        args: &[&Tensor],
        d: &Tensor,
        want: bool,
    ) -> Option<Tensor> {
        let x = args[0];
        let n = self.w.len();
        for (i, (v, g)) in x.data.iter().zip(&d.data).enumerate() {
            self.grads[i % n] += v * g;
        }
        want.then(|| Tensor {
            axes: x.axes.clone(),
            dims: x.dims.clone(),
            data: d
                .data
                .iter()
                .enumerate()
                .map(|(i, g)| g * self.w[i % n])
                .collect(),
        })
    }
}

/// The tape's gradient of `term` with respect to `w` against central differences.
fn check(name: &str, term: &Term) {
    let (info, problems) = infer(term, &SIG, H);
    assert!(problems.is_empty(), "{name}: {problems:?}");
    let info = info.expect("inferred");
    assert!(info.axes.is_empty() && info.grad, "{name}: {info:?}");
    let w0: Vec<f32> = data(7, H * B * D)
        .iter()
        .map(|v| 0.5 + v.abs() * 0.3)
        .collect();
    let mut toy = Toy {
        w: w0.clone(),
        grads: vec![0.0; w0.len()],
    };
    let tape = Tape::forward(term, &toy);
    tape.backward(&mut toy);
    let value = |w: Vec<f32>| {
        let probe = Toy {
            w,
            grads: Vec::new(),
        };
        Tape::forward(term, &probe).value() as f64
    };
    let h = 1e-3f32;
    let mut nonzero = 0;
    for i in 0..w0.len() {
        let mut up = w0.clone();
        up[i] += h;
        let mut down = w0.clone();
        down[i] -= h;
        let fd = (value(up) - value(down)) / (2.0 * h as f64);
        let g = toy.grads[i] as f64;
        assert!(
            (fd - g).abs() <= 2e-2 * fd.abs().max(g.abs()) + 2e-3,
            "{name} w[{i}]: finite difference {fd}, gradient {g}"
        );
        nonzero += usize::from(g.abs() > 1e-4);
    }
    assert!(nonzero > 0, "{name}: no gradient at all");
}

#[test]
fn every_operation_matches_finite_differences() {
    let p = || g(input("x"));
    let y = || input("y");
    let pos = || f1(Func::Exp, p());
    let cases: Vec<(&str, Term)> = vec![
        ("neg", mean(t(Op::Neg, vec![p()]))),
        ("add", mean(bin(BinOp::Add, p(), y()))),
        ("sub", mean(bin(BinOp::Sub, y(), p()))),
        ("mul", mean(bin(BinOp::Mul, p(), y()))),
        (
            "div numerator",
            mean(bin(BinOp::Div, p(), f1(Func::Exp, y()))),
        ),
        ("div denominator", mean(bin(BinOp::Div, y(), pos()))),
        ("abs", mean(f1(Func::Abs, bin(BinOp::Sub, p(), y())))),
        ("square", mean(f1(Func::Square, bin(BinOp::Sub, p(), y())))),
        ("sqrt", mean(f1(Func::Sqrt, pos()))),
        ("exp", mean(f1(Func::Exp, p()))),
        ("log", mean(f1(Func::Log, pos()))),
        ("min", mean(f(Func::Min, vec![p(), y()]))),
        ("max", mean(f(Func::Max, vec![p(), y()]))),
        ("clip", mean(f(Func::Clip, vec![p(), c(-0.5), c(0.7)]))),
        (
            "where",
            mean(f(
                Func::Where,
                vec![bin(BinOp::Gt, y(), c(0.0)), p(), f1(Func::Square, p())],
            )),
        ),
        (
            "huber",
            mean(f(Func::Huber, vec![bin(BinOp::Sub, p(), y()), c(0.8)])),
        ),
        (
            "sum over state, mean over the rest",
            mean(t(
                Op::Reduce {
                    mean: false,
                    axes: vec![Axis::State],
                },
                vec![f1(Func::Square, p())],
            )),
        ),
        (
            "mean over batch then sum",
            t(
                Op::Reduce {
                    mean: false,
                    axes: Vec::new(),
                },
                vec![t(
                    Op::Reduce {
                        mean: true,
                        axes: vec![Axis::Batch],
                    },
                    vec![f1(Func::Square, p())],
                )],
            ),
        ),
        ("step", mean(f1(Func::Square, t(Op::Step(1), vec![p()])))),
        (
            "broadcast of a mask over the state",
            mean(bin(BinOp::Mul, input("m"), f1(Func::Square, p()))),
        ),
        (
            // A two-step rollout through the callable, the second step from
            // the masked prediction, the same sub-term used twice.
            "composed rollout",
            {
                let s0 = || t(Op::Step(0), vec![input("x")]);
                let s1 = || t(Op::Step(1), vec![input("x")]);
                let p0 = || g(s0());
                let mask = || t(Op::Step(0), vec![input("m")]);
                let c1 = || {
                    bin(
                        BinOp::Add,
                        s1(),
                        bin(BinOp::Mul, mask(), bin(BinOp::Sub, p0(), s1())),
                    )
                };
                let p1 = g(c1());
                let e1 = bin(BinOp::Sub, p1, t(Op::Step(1), vec![y()]));
                let l2 = |e: Term| {
                    f1(
                        Func::Sqrt,
                        t(
                            Op::Reduce {
                                mean: false,
                                axes: vec![Axis::State],
                            },
                            vec![f1(Func::Square, e)],
                        ),
                    )
                };
                mean(bin(
                    BinOp::Add,
                    l2(bin(BinOp::Sub, p0(), t(Op::Step(0), vec![y()]))),
                    l2(e1),
                ))
            },
        ),
    ];
    for (name, term) in &cases {
        check(name, term);
    }
}

/// `mean(g(x) * stop_gradient(exp(g(x))))`: the stopped factor is a
/// constant to the gradient, `x_i exp(x_i w_i) / n`, not the whole derivative.
#[test]
fn stop_gradient_holds_its_value_constant() {
    let p = || g(input("x"));
    let term = mean(bin(
        BinOp::Mul,
        p(),
        f1(Func::StopGradient, f1(Func::Exp, p())),
    ));
    let w: Vec<f32> = data(7, H * B * D)
        .iter()
        .map(|v| 0.5 + v.abs() * 0.3)
        .collect();
    let mut toy = Toy {
        w: w.clone(),
        grads: vec![0.0; w.len()],
    };
    let tape = Tape::forward(&term, &toy);
    tape.backward(&mut toy);
    let x = toy.input("x").data;
    let n = x.len() as f32;
    for i in 0..w.len() {
        let want = x[i] * (x[i] * w[i]).exp() / n;
        assert!(
            (toy.grads[i] - want).abs() <= 1e-5 * want.abs().max(1.0),
            "w[{i}]: {} vs {want}",
            toy.grads[i]
        );
    }
}

#[test]
fn comparisons_and_stop_gradient_pass_no_gradient() {
    let p = g(input("x"));
    for term in [
        mean(bin(BinOp::Gt, p.clone(), input("y"))),
        mean(f1(Func::StopGradient, p.clone())),
    ] {
        let (info, problems) = infer(&term, &SIG, H);
        assert!(problems.is_empty());
        assert!(!info.unwrap().grad, "{}", term.describe());
    }
}

#[test]
fn axes_that_do_not_fit_are_problems_not_panics() {
    let bad = [
        bin(BinOp::Sub, input("x"), input("u")),
        t(
            Op::Reduce {
                mean: false,
                axes: vec![Axis::Action],
            },
            vec![input("x")],
        ),
        t(Op::Step(2), vec![input("x")]),
        t(Op::Step(0), vec![t(Op::Step(0), vec![input("x")])]),
        g(input("m")),
        input("nothing"),
        input("g"),
        t(Op::Call("x".into()), vec![input("x")]),
    ];
    for term in bad {
        let (info, problems) = infer(&term, &SIG, H);
        assert!(info.is_none(), "{}", term.describe());
        assert_eq!(problems.len(), 1, "{}: {problems:?}", term.describe());
        assert!(!matches!(problems[0], Problem::Domain { .. }));
    }
}
