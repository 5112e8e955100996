//! Graph: a checked cell to its dataflow graph.
//!
//! Nodes are envs, replay buffers, networks, losses, optimizers, planners
//! and evaluators; edges carry the tensor shapes `[S, B, d]` that flow along
//! them (S = seeds, run as one batch). `mbrl graph` prints it as text or DOT.
//!
//! Invariants: the only module that imports petgraph; exposes [`NodeId`],
//! never petgraph's index types. Builds from a [`CheckedExperiment`] only.

mod lower;

use std::fmt::Write as _;

use petgraph::stable_graph::{NodeIndex, StableDiGraph};
use petgraph::visit::{EdgeRef, IntoEdgeReferences};

use crate::check::{Cell, CheckedExperiment};

pub use lower::lower;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct NodeId(NodeIndex);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NodeKind {
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

#[derive(Clone, Debug, PartialEq)]
pub struct Node {
    pub kind: NodeKind,
    pub name: String,
    pub detail: String,
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
}

impl Graph {
    fn new(title: String) -> Graph {
        Graph {
            inner: StableDiGraph::new(),
            title,
        }
    }

    fn add(
        &mut self,
        kind: NodeKind,
        name: impl Into<String>,
        detail: impl Into<String>,
    ) -> NodeId {
        NodeId(self.inner.add_node(Node {
            kind,
            name: name.into(),
            detail: detail.into(),
        }))
    }

    fn connect(&mut self, from: NodeId, to: NodeId, what: &str, shape: &[String]) {
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

    /// A readable listing: nodes, then edges with shapes.
    pub fn to_text(&self) -> String {
        let mut out = format!("{}\n  nodes:\n", self.title);
        for (_, node) in self.nodes() {
            let _ = writeln!(
                out,
                "    {:<10} {:<22} {}",
                node.kind.name(),
                node.name,
                node.detail
            );
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
            let label = format!("{}\\n{}", escape(&node.name), escape(&node.detail));
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
