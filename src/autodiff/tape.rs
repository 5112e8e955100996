//! Reverse-mode differentiation of a [`Term`] over named-axis tensors: the
//! forward pass records every distinct sub-term once (equal sub-terms, such
//! as `V(s_next)` written twice, are computed once), the backward pass sends
//! the loss's gradient to the learner's callables, which add their trained
//! parameters' share to the gradient they keep.
//!
//! Invariants: every op's backward is the derivative of its forward (tested
//! against finite differences); nothing here knows a network or a learner.

use std::any::Any;
use std::collections::HashMap;

use super::ir::{Axis, BinOp, Func, Op, Term};

/// A tensor over named axes, in canonical axis order, row-major.
#[derive(Clone, Debug, PartialEq)]
pub struct Tensor {
    pub axes: Vec<Axis>,
    pub dims: Vec<usize>,
    pub data: Vec<f32>,
}

impl Tensor {
    pub fn scalar(x: f32) -> Tensor {
        Tensor {
            axes: Vec::new(),
            dims: Vec::new(),
            data: vec![x],
        }
    }

    /// A tensor over `axes` (any order; stored canonically) of these sizes.
    pub fn new(axes: &[(Axis, usize)], data: Vec<f32>) -> Tensor {
        let mut sorted = axes.to_vec();
        sorted.sort_by_key(|(a, _)| *a);
        assert_eq!(
            sorted.iter().map(|(_, d)| d).product::<usize>(),
            data.len(),
            "tensor size"
        );
        Tensor {
            axes: sorted.iter().map(|(a, _)| *a).collect(),
            dims: sorted.iter().map(|(_, d)| *d).collect(),
            data,
        }
    }

    fn zeros_like(&self) -> Tensor {
        Tensor {
            axes: self.axes.clone(),
            dims: self.dims.clone(),
            data: vec![0.0; self.data.len()],
        }
    }

    pub fn dim(&self, axis: Axis) -> Option<usize> {
        self.axes
            .iter()
            .position(|a| *a == axis)
            .map(|i| self.dims[i])
    }

    /// The rows of a tensor whose last axis is a feature axis: `(rows, width)`.
    pub fn rows(&self) -> (usize, usize) {
        let width = match self.axes.last() {
            Some(a) if a.is_feature() => *self.dims.last().unwrap_or(&1),
            _ => 1,
        };
        (self.data.len() / width.max(1), width)
    }
}

/// For each element of a tensor over `out` axes, the index of the element of
/// `t` it reads (`t`'s axes being a subset of `out`'s).
fn gather_index(
    t_axes: &[Axis],
    t_dims: &[usize],
    out_axes: &[Axis],
    out_dims: &[usize],
) -> Vec<usize> {
    let mut strides = vec![0usize; out_axes.len()];
    let mut stride = 1;
    for (a, d) in t_axes.iter().zip(t_dims).rev() {
        let at = out_axes.iter().position(|o| o == a).expect("a sub-axis");
        strides[at] = stride;
        stride *= d;
    }
    let n: usize = out_dims.iter().product();
    let mut out = Vec::with_capacity(n);
    let mut idx = vec![0usize; out_dims.len()];
    for _ in 0..n {
        out.push(idx.iter().zip(&strides).map(|(i, s)| i * s).sum());
        for k in (0..idx.len()).rev() {
            idx[k] += 1;
            if idx[k] < out_dims[k] {
                break;
            }
            idx[k] = 0;
        }
    }
    out
}

/// The axes and sizes of the elementwise combination of `ts`.
fn joint(ts: &[&Tensor]) -> (Vec<Axis>, Vec<usize>) {
    let mut pairs: Vec<(Axis, usize)> = Vec::new();
    for t in ts {
        for (a, d) in t.axes.iter().zip(&t.dims) {
            if !pairs.iter().any(|(x, _)| x == a) {
                pairs.push((*a, *d));
            }
        }
    }
    pairs.sort_by_key(|(a, _)| *a);
    (
        pairs.iter().map(|p| p.0).collect(),
        pairs.iter().map(|p| p.1).collect(),
    )
}

/// Sums `g` (over `axes`, `dims`) down to the shape of `like`.
fn reduce_to(g: &[f32], axes: &[Axis], dims: &[usize], like: &Tensor) -> Tensor {
    let mut out = like.zeros_like();
    let idx = gather_index(&like.axes, &like.dims, axes, dims);
    let mut acc = vec![0f64; out.data.len()];
    for (v, i) in g.iter().zip(&idx) {
        acc[*i] += *v as f64;
    }
    out.data = acc.into_iter().map(|x| x as f32).collect();
    out
}

/// The learner's side of a tape: its tensors and its networks.
pub trait Bindings {
    /// The tensor a name stands for.
    fn input(&self, name: &str) -> Tensor;
    /// Calls a network on rows; returns its output and what its backward needs.
    fn call(&self, name: &str, args: &[&Tensor]) -> (Tensor, Box<dyn Any>);
    /// Backpropagates `d_out` through a call: adds the trained parameters'
    /// gradient to the learner's own and returns the first argument's
    /// gradient when `want_input`.
    fn call_backward(
        &mut self,
        name: &str,
        saved: &dyn Any,
        args: &[&Tensor],
        d_out: &Tensor,
        want_input: bool,
    ) -> Option<Tensor>;
}

struct Node {
    op: Op,
    args: Vec<usize>,
    value: Tensor,
    saved: Option<Box<dyn Any>>,
    /// A gradient must reach it (it depends on a call).
    needs: bool,
}

/// A forward pass of one term, kept for its backward pass.
pub struct Tape {
    nodes: Vec<Node>,
}

impl Tape {
    /// Evaluates `term` on `b`.
    pub fn forward(term: &Term, b: &dyn Bindings) -> Tape {
        let mut tape = Tape { nodes: Vec::new() };
        let mut seen: HashMap<String, usize> = HashMap::new();
        tape.push(term, b, &mut seen);
        tape
    }

    fn push(&mut self, t: &Term, b: &dyn Bindings, seen: &mut HashMap<String, usize>) -> usize {
        let key = t.describe();
        if let Some(&at) = seen.get(&key) {
            return at;
        }
        let args: Vec<usize> = t.args.iter().map(|a| self.push(a, b, seen)).collect();
        let vals: Vec<&Tensor> = args.iter().map(|i| &self.nodes[*i].value).collect();
        let needs = matches!(t.op, Op::Call(_)) || args.iter().any(|i| self.nodes[*i].needs);
        let (value, saved) = forward(&t.op, &vals, b);
        self.nodes.push(Node {
            op: t.op.clone(),
            args,
            value,
            saved,
            needs,
        });
        seen.insert(key, self.nodes.len() - 1);
        self.nodes.len() - 1
    }

    /// The loss: the root's value (a scalar after checking).
    pub fn value(&self) -> f32 {
        self.nodes.last().map_or(0.0, |n| n.value.data.iter().sum())
    }

    /// The root's tensor.
    pub fn root(&self) -> &Tensor {
        &self.nodes.last().expect("a term").value
    }

    /// Sends `d loss / d loss = 1` back through every node to the callables.
    pub fn backward(&self, b: &mut dyn Bindings) {
        let n = self.nodes.len();
        let mut grads: Vec<Option<Tensor>> = (0..n).map(|_| None).collect();
        let root = &self.nodes[n - 1];
        grads[n - 1] = Some(Tensor {
            axes: root.value.axes.clone(),
            dims: root.value.dims.clone(),
            data: vec![1.0; root.value.data.len()],
        });
        for i in (0..n).rev() {
            let Some(g) = grads[i].take() else { continue };
            let node = &self.nodes[i];
            if !node.needs {
                continue;
            }
            let vals: Vec<&Tensor> = node.args.iter().map(|a| &self.nodes[*a].value).collect();
            let wants: Vec<bool> = node.args.iter().map(|a| self.nodes[*a].needs).collect();
            let d_args = backward(node, &vals, &g, &wants, b);
            for ((a, d), want) in node.args.iter().zip(d_args).zip(wants) {
                let (Some(d), true) = (d, want) else { continue };
                match &mut grads[*a] {
                    Some(acc) => acc.data.iter_mut().zip(&d.data).for_each(|(x, y)| *x += y),
                    slot => *slot = Some(d),
                }
            }
        }
    }
}

fn elementwise(ts: &[&Tensor], f: impl Fn(&[f32]) -> f32) -> Tensor {
    let (axes, dims) = joint(ts);
    let idx: Vec<Vec<usize>> = ts
        .iter()
        .map(|t| gather_index(&t.axes, &t.dims, &axes, &dims))
        .collect();
    let n: usize = dims.iter().product();
    let mut xs = vec![0f32; ts.len()];
    let data = (0..n)
        .map(|e| {
            for (k, t) in ts.iter().enumerate() {
                xs[k] = t.data[idx[k][e]];
            }
            f(&xs)
        })
        .collect();
    Tensor { axes, dims, data }
}

fn forward(op: &Op, a: &[&Tensor], b: &dyn Bindings) -> (Tensor, Option<Box<dyn Any>>) {
    let t = match op {
        Op::Const(c) => Tensor::scalar(*c as f32),
        Op::Input(name) => b.input(name),
        Op::Neg => elementwise(a, |x| -x[0]),
        Op::Bin(op) => {
            let op = *op;
            elementwise(a, move |x| match op {
                BinOp::Add => x[0] + x[1],
                BinOp::Sub => x[0] - x[1],
                BinOp::Mul => x[0] * x[1],
                BinOp::Div => x[0] / x[1],
                BinOp::Gt => f32::from(u8::from(x[0] > x[1])),
                BinOp::Ge => f32::from(u8::from(x[0] >= x[1])),
                BinOp::Lt => f32::from(u8::from(x[0] < x[1])),
                BinOp::Le => f32::from(u8::from(x[0] <= x[1])),
            })
        }
        Op::Func(f) => {
            let f = *f;
            elementwise(a, move |x| match f {
                Func::Abs => x[0].abs(),
                Func::Square => x[0] * x[0],
                Func::Sqrt => x[0].sqrt(),
                Func::Exp => x[0].exp(),
                Func::Log => x[0].ln(),
                Func::Min => x[0].min(x[1]),
                Func::Max => x[0].max(x[1]),
                Func::Clip => x[0].max(x[1]).min(x[2]),
                Func::Where => match x[0] != 0.0 {
                    true => x[1],
                    false => x[2],
                },
                Func::Huber => match x[0].abs() <= x[1] {
                    true => 0.5 * x[0] * x[0],
                    false => x[1] * (x[0].abs() - 0.5 * x[1]),
                },
                Func::StopGradient => x[0],
            })
        }
        Op::Reduce { mean, axes } => {
            let x = a[0];
            let keep: Vec<(Axis, usize)> = x
                .axes
                .iter()
                .zip(&x.dims)
                .filter(|(ax, _)| !axes.is_empty() && !axes.contains(ax))
                .map(|(ax, d)| (*ax, *d))
                .collect();
            let like = Tensor::new(&keep, vec![0.0; keep.iter().map(|k| k.1).product()]);
            let mut out = reduce_to(&x.data, &x.axes, &x.dims, &like);
            if *mean {
                let count = (x.data.len() / out.data.len().max(1)) as f32;
                out.data.iter_mut().for_each(|v| *v /= count);
            }
            out
        }
        Op::Step(k) => {
            let x = a[0];
            let (h, outer, inner) = horizon_split(x);
            let mut data = Vec::with_capacity(outer * inner);
            for o in 0..outer {
                let base = (o * x.dims[h] + k) * inner;
                data.extend_from_slice(&x.data[base..base + inner]);
            }
            let mut axes = x.axes.clone();
            let mut dims = x.dims.clone();
            axes.remove(h);
            dims.remove(h);
            Tensor { axes, dims, data }
        }
        Op::Call(name) => {
            let (t, saved) = b.call(name, a);
            return (t, Some(saved));
        }
    };
    (t, None)
}

/// The gradient with respect to each argument (shaped like it).
fn backward(
    node: &Node,
    a: &[&Tensor],
    g: &Tensor,
    wants: &[bool],
    b: &mut dyn Bindings,
) -> Vec<Option<Tensor>> {
    // The gradient of an elementwise op: per argument, `g * d f / d x_k`
    // over the joint shape, summed down to the argument's shape.
    let elementwise_grad = |df: &dyn Fn(&[f32], usize) -> f32| -> Vec<Option<Tensor>> {
        let (axes, dims) = joint(a);
        let idx: Vec<Vec<usize>> = a
            .iter()
            .map(|t| gather_index(&t.axes, &t.dims, &axes, &dims))
            .collect();
        let gi = gather_index(&g.axes, &g.dims, &axes, &dims);
        let n: usize = dims.iter().product();
        let mut xs = vec![0f32; a.len()];
        (0..a.len())
            .map(|k| {
                if !wants[k] {
                    return None;
                }
                let mut full = vec![0f32; n];
                for (e, slot) in full.iter_mut().enumerate() {
                    for (j, t) in a.iter().enumerate() {
                        xs[j] = t.data[idx[j][e]];
                    }
                    *slot = g.data[gi[e]] * df(&xs, k);
                }
                Some(reduce_to(&full, &axes, &dims, a[k]))
            })
            .collect()
    };
    match &node.op {
        Op::Const(_) | Op::Input(_) => Vec::new(),
        Op::Neg => elementwise_grad(&|_, _| -1.0),
        Op::Bin(op) => match op {
            BinOp::Add => elementwise_grad(&|_, _| 1.0),
            BinOp::Sub => elementwise_grad(&|_, k| if k == 0 { 1.0 } else { -1.0 }),
            BinOp::Mul => elementwise_grad(&|x, k| x[1 - k]),
            BinOp::Div => elementwise_grad(&|x, k| match k {
                0 => 1.0 / x[1],
                _ => -x[0] / (x[1] * x[1]),
            }),
            _ => vec![None, None],
        },
        Op::Func(f) => {
            let f = *f;
            elementwise_grad(&move |x, k| match (f, k) {
                (Func::Abs, _) => x[0].signum(),
                (Func::Square, _) => 2.0 * x[0],
                (Func::Sqrt, _) => 0.5 / x[0].sqrt().max(1e-12),
                (Func::Exp, _) => x[0].exp(),
                (Func::Log, _) => 1.0 / x[0],
                (Func::Min, 0) => f32::from(u8::from(x[0] <= x[1])),
                (Func::Min, _) => f32::from(u8::from(x[0] > x[1])),
                (Func::Max, 0) => f32::from(u8::from(x[0] >= x[1])),
                (Func::Max, _) => f32::from(u8::from(x[0] < x[1])),
                (Func::Clip, 0) => f32::from(u8::from(x[0] >= x[1] && x[0] <= x[2])),
                (Func::Clip, 1) => f32::from(u8::from(x[0] < x[1])),
                (Func::Clip, _) => f32::from(u8::from(x[0] > x[2] && x[0] >= x[1])),
                (Func::Where, 0) => 0.0,
                (Func::Where, 1) => f32::from(u8::from(x[0] != 0.0)),
                (Func::Where, _) => f32::from(u8::from(x[0] == 0.0)),
                (Func::Huber, 0) => match x[0].abs() <= x[1] {
                    true => x[0],
                    false => x[1] * x[0].signum(),
                },
                (Func::Huber, _) => match x[0].abs() <= x[1] {
                    true => 0.0,
                    false => x[0].abs() - x[1],
                },
                (Func::StopGradient, _) => 0.0,
            })
        }
        Op::Reduce { mean, .. } => {
            let x = a[0];
            let count = (x.data.len() / g.data.len().max(1)) as f32;
            let scale = if *mean { 1.0 / count } else { 1.0 };
            let gi = gather_index(&g.axes, &g.dims, &x.axes, &x.dims);
            let data = gi.iter().map(|i| g.data[*i] * scale).collect();
            vec![Some(Tensor {
                axes: x.axes.clone(),
                dims: x.dims.clone(),
                data,
            })]
        }
        Op::Step(k) => {
            let x = a[0];
            let (h, outer, inner) = horizon_split(x);
            let mut d = x.zeros_like();
            for o in 0..outer {
                let base = (o * x.dims[h] + k) * inner;
                d.data[base..base + inner].copy_from_slice(&g.data[o * inner..(o + 1) * inner]);
            }
            vec![Some(d)]
        }
        Op::Call(name) => {
            let saved = node.saved.as_deref().expect("a call saves its pass");
            let d = b.call_backward(name, saved, a, g, wants.first().copied().unwrap_or(false));
            let mut out = vec![d];
            out.resize_with(a.len(), || None);
            out
        }
    }
}

/// Where `x`'s horizon axis is, and the sizes of the axes before it and
/// after it (`step(x, k)` takes the `inner` values at step `k` of each of
/// the `outer` blocks).
fn horizon_split(x: &Tensor) -> (usize, usize, usize) {
    let h = x
        .axes
        .iter()
        .position(|ax| *ax == Axis::Horizon)
        .expect("checked: `step` takes a value with a horizon");
    let outer: usize = x.dims[..h].iter().product();
    let inner: usize = x.dims[h + 1..].iter().product();
    (h, outer, inner)
}
