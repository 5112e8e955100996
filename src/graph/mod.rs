//! Graph: a checked cell to its dataflow graph, the intermediate form that
//! `compile` reads.
//!
//! Nodes are the loop's schedule, envs, buffers, networks, losses,
//! optimizers, planners, policies and evaluators; each carries every setting
//! the runtime will use as an attribute (the resolved field values, with
//! inferred layer sizes), and edges carry the tensor shapes `[S, B, d]` that
//! flow along them (S = seeds, run as one batch). `mbrl graph` prints it as
//! text or DOT, so what it shows is exactly what runs.
//!
//! Invariants: the only module that imports petgraph; exposes [`NodeId`],
//! never petgraph's index types. Builds from a [`CheckedExperiment`] only;
//! knows the language's values, not the runtime's types.

pub mod lower;

use std::fmt::Write as _;

use petgraph::stable_graph::{NodeIndex, StableDiGraph};
use petgraph::visit::{EdgeRef, IntoEdgeReferences};

use crate::check::{Cell, CheckedExperiment};

pub use lower::lower;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct NodeId(NodeIndex);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NodeKind {
    /// The loop: budget, update timing, evaluation and checkpoint intervals.
    Schedule,
    Env,
    Buffer,
    Network,
    Loss,
    Optimizer,
    Planner,
    Policy,
    Evaluator,
}

impl NodeKind {
    pub fn name(self) -> &'static str {
        match self {
            NodeKind::Schedule => "schedule",
            NodeKind::Env => "env",
            NodeKind::Buffer => "buffer",
            NodeKind::Network => "network",
            NodeKind::Loss => "loss",
            NodeKind::Optimizer => "optimizer",
            NodeKind::Planner => "planner",
            NodeKind::Policy => "policy",
            NodeKind::Evaluator => "evaluator",
        }
    }

    fn dot_shape(self) -> &'static str {
        match self {
            NodeKind::Schedule => "component",
            NodeKind::Env => "house",
            NodeKind::Buffer => "cylinder",
            NodeKind::Network => "box",
            NodeKind::Loss => "diamond",
            NodeKind::Optimizer => "parallelogram",
            NodeKind::Planner => "hexagon",
            NodeKind::Policy => "ellipse",
            NodeKind::Evaluator => "note",
        }
    }
}

/// A setting on a node: a resolved field value of the language.
#[derive(Clone, Debug, PartialEq)]
pub enum Attr {
    Int(i64),
    Float(f64),
    Bool(bool),
    /// An enum value or a constructor name.
    Text(String),
    Ints(Vec<i64>),
    /// A loss expression's terms.
    Term(std::rc::Rc<crate::autodiff::Term>),
}

impl std::fmt::Display for Attr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Attr::Int(i) => write!(f, "{i}"),
            Attr::Float(x) if *x != 0.0 && (x.abs() < 1e-3 || x.abs() >= 1e6) => write!(f, "{x:e}"),
            Attr::Float(x) => write!(f, "{x}"),
            Attr::Bool(b) => write!(f, "{b}"),
            Attr::Text(t) => write!(f, "{t}"),
            Attr::Term(t) => write!(f, "{}", t.describe()),
            Attr::Ints(v) => {
                let parts: Vec<String> = v.iter().map(|i| i.to_string()).collect();
                write!(f, "[{}]", parts.join(", "))
            }
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Node {
    pub kind: NodeKind,
    /// What the node is in the agent (`Q`, `replay`, `td`, `schedule`):
    /// `compile` finds nodes by role.
    pub role: &'static str,
    /// The block it comes from, as the user named it.
    pub name: String,
    /// A one-line summary for people.
    pub detail: String,
    /// Every setting the runtime reads, by field name, in a stable order.
    pub attrs: Vec<(&'static str, Attr)>,
}

impl Node {
    pub fn attr(&self, name: &str) -> Option<&Attr> {
        self.attrs.iter().find(|(k, _)| *k == name).map(|(_, v)| v)
    }

    pub fn int(&self, name: &str) -> Option<i64> {
        match self.attr(name)? {
            Attr::Int(i) => Some(*i),
            _ => None,
        }
    }

    pub fn float(&self, name: &str) -> Option<f64> {
        match self.attr(name)? {
            Attr::Float(x) => Some(*x),
            Attr::Int(i) => Some(*i as f64),
            _ => None,
        }
    }

    pub fn bool(&self, name: &str) -> Option<bool> {
        match self.attr(name)? {
            Attr::Bool(b) => Some(*b),
            _ => None,
        }
    }

    pub fn text(&self, name: &str) -> Option<&str> {
        match self.attr(name)? {
            Attr::Text(t) => Some(t),
            _ => None,
        }
    }

    pub fn ints(&self, name: &str) -> Option<&[i64]> {
        match self.attr(name)? {
            Attr::Ints(v) => Some(v),
            _ => None,
        }
    }

    /// The attributes as `name=value` pairs.
    pub fn attrs_text(&self) -> String {
        let parts: Vec<String> = self.attrs.iter().map(|(k, v)| format!("{k}={v}")).collect();
        parts.join(" ")
    }
}

/// What the whole cell runs under: the experiment's seeds and compatibility mode.
#[derive(Clone, Debug, PartialEq)]
pub struct RunAttrs {
    pub experiment: String,
    pub cell: usize,
    pub seeds: u64,
    pub root_seed: u64,
    /// `none`, `young2022` or `vaslbo`.
    pub compat: String,
}

/// What flows along an edge, with its shape.
#[derive(Clone, Debug, PartialEq)]
pub struct Edge {
    pub what: String,
    pub shape: Vec<String>,
}

/// The dataflow graph of one cell.
#[derive(Debug)]
pub struct Graph {
    inner: StableDiGraph<Node, Edge>,
    pub title: String,
    /// The agent's constructor (`dqn`, `slbo`, `random`): which compile function reads the graph.
    pub agent: &'static str,
    pub run: RunAttrs,
}

impl Graph {
    fn new(title: String, agent: &'static str, run: RunAttrs) -> Graph {
        Graph {
            inner: StableDiGraph::new(),
            title,
            agent,
            run,
        }
    }

    pub fn add(
        &mut self,
        kind: NodeKind,
        role: &'static str,
        name: impl Into<String>,
        detail: impl Into<String>,
        attrs: Vec<(&'static str, Attr)>,
    ) -> NodeId {
        NodeId(self.inner.add_node(Node {
            kind,
            role,
            name: name.into(),
            detail: detail.into(),
            attrs,
        }))
    }

    /// The node playing `role`, if the cell has one.
    pub fn find(&self, role: &str) -> Option<&Node> {
        self.nodes().map(|(_, n)| n).find(|n| n.role == role)
    }

    /// Every node playing `role`, in insertion order.
    pub fn all(&self, role: &str) -> Vec<&Node> {
        self.nodes()
            .map(|(_, n)| n)
            .filter(|n| n.role == role)
            .collect()
    }

    pub fn connect(&mut self, from: NodeId, to: NodeId, what: &str, shape: &[String]) {
        self.inner.add_edge(
            from.0,
            to.0,
            Edge {
                what: what.to_string(),
                shape: shape.to_vec(),
            },
        );
    }

    pub fn nodes(&self) -> impl Iterator<Item = (NodeId, &Node)> {
        self.inner
            .node_indices()
            .map(|i| (NodeId(i), &self.inner[i]))
    }

    pub fn edges(&self) -> impl Iterator<Item = (NodeId, NodeId, &Edge)> {
        (&self.inner)
            .edge_references()
            .map(|e| (NodeId(e.source()), NodeId(e.target()), e.weight()))
    }

    pub fn node(&self, id: NodeId) -> &Node {
        &self.inner[id.0]
    }

    /// A readable listing: nodes with their settings, then edges with shapes.
    pub fn to_text(&self) -> String {
        let run = &self.run;
        let mut out = format!(
            "{}\n  run: seeds={} seed={} compat={}\n  nodes:\n",
            self.title, run.seeds, run.root_seed, run.compat
        );
        for (_, node) in self.nodes() {
            let _ = writeln!(
                out,
                "    {:<10} {:<22} {}",
                node.kind.name(),
                node.name,
                node.detail
            );
            if !node.attrs.is_empty() {
                let _ = writeln!(out, "    {:<10} {:<22} {}", "", "", node.attrs_text());
            }
            // A loss written as an expression: its operations, as they run.
            for (_, attr) in &node.attrs {
                if let Attr::Term(t) = attr {
                    for line in t.ops() {
                        let _ = writeln!(out, "    {:<10} {:<22}   {line}", "", "");
                    }
                }
            }
        }
        out.push_str("  edges:\n");
        for (from, to, edge) in self.edges() {
            let (a, b) = (&self.node(from).name, &self.node(to).name);
            let _ = writeln!(
                out,
                "    {a} -> {b}: {} [{}]",
                edge.what,
                edge.shape.join(", ")
            );
        }
        out
    }

    /// Graphviz DOT, one cluster-free digraph.
    pub fn to_dot(&self) -> String {
        let mut out = format!("digraph \"{}\" {{\n  rankdir=LR;\n", escape(&self.title));
        for (id, node) in self.nodes() {
            let label = format!(
                "{}\\n{}\\n{}",
                escape(&node.name),
                escape(&node.detail),
                escape(&node.attrs_text())
            );
            let _ = writeln!(
                out,
                "  n{} [shape={}, label=\"{label}\"];",
                id.0.index(),
                node.kind.dot_shape()
            );
        }
        for (from, to, edge) in self.edges() {
            let label = format!("{} [{}]", escape(&edge.what), edge.shape.join(", "));
            let _ = writeln!(
                out,
                "  n{} -> n{} [label=\"{label}\"];",
                from.0.index(),
                to.0.index()
            );
        }
        out.push_str("}\n");
        out
    }
}

fn escape(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"")
}

/// The graph of one cell of an experiment.
pub fn cell_graph(exp: &CheckedExperiment, cell: &Cell) -> Graph {
    lower(exp, cell)
}
