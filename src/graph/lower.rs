//! Lowering a checked cell to its dataflow graph: the env node (with its
//! inferred spaces) here, then the agent's kind ([`crate::kinds`]) adds its
//! nodes, placing every field the runtime reads on the node it configures.
//! Also the helpers the kinds lower with: the schedule, the evaluator,
//! network nodes and the conversion of field values to attributes.

use crate::check::{Cell, CheckedExperiment, Net, Obj, Value};
use crate::graph::{Attr, Graph, NodeId, NodeKind, RunAttrs};
use crate::schema::ActionSpace;

/// Builds the graph of `cell`: acting loop, data source, learners, evaluation.
pub fn lower(exp: &CheckedExperiment, cell: &Cell) -> Graph {
    let title = format!(
        "experiment `{}` cell {} of {}: {}",
        exp.name,
        cell.index,
        exp.cells.len(),
        cell.label()
    );
    let run = RunAttrs {
        experiment: exp.name.clone(),
        cell: cell.index,
        seeds: exp.seeds,
        root_seed: exp.root_seed,
        compat: exp.compat.clone(),
    };
    let mut g = Graph::new(title, cell.agent.ctor.name, run);
    let s = format!("S={}", exp.seeds);
    let env = env_node(&mut g, cell);
    crate::kinds::of(&cell.agent).lower(&mut g, cell, env, &s);
    g
}

/// The env with every field and the spaces `check` inferred.
fn env_node(g: &mut Graph, cell: &Cell) -> NodeId {
    let spaces = &cell.spaces;
    let mut attrs = vec![("ctor", Attr::Text(cell.env.ctor.name.to_string()))];
    attrs.extend(fields(&cell.env));
    attrs.push(("obs_dim", Attr::Int(spaces.obs_dim as i64)));
    match spaces.action {
        ActionSpace::Discrete(n) => attrs.push(("actions", Attr::Int(n as i64))),
        ActionSpace::Continuous(d) => attrs.push(("act_dim", Attr::Int(d as i64))),
    }
    attrs.push(("episodic", Attr::Bool(spaces.episodic)));
    if let Some(h) = spaces
        .horizon
        .filter(|_| !attrs.iter().any(|(k, _)| *k == "horizon"))
    {
        attrs.push(("horizon", Attr::Int(h as i64)));
    }
    g.add(
        NodeKind::Env,
        "env",
        cell.env.label.clone(),
        format!(
            "obs {}, actions {}",
            spaces.describe_obs(),
            spaces.action.describe()
        ),
        attrs,
    )
}

/// The loop's node: the agent's budget and timing fields.
pub fn schedule(g: &mut Graph, agent: &Obj, names: &[&'static str]) -> NodeId {
    let attrs = pick(agent, names);
    let detail = format!("{} loop", agent.ctor.name);
    g.add(
        NodeKind::Schedule,
        "schedule",
        agent.label.clone(),
        detail,
        attrs,
    )
}

/// The evaluation protocol, fed by `policy`.
pub fn evaluator(g: &mut Graph, agent: &Obj, policy: NodeId, s: &str, acts: &str) {
    let Some(eval) = agent.obj("eval") else {
        return;
    };
    let envs = eval.int("envs").unwrap_or(0);
    let steps = eval.int("steps").unwrap_or(0);
    let every = agent
        .int("eval_every")
        .map(|e| format!(" every {e} steps"))
        .unwrap_or_default();
    let node = g.add(
        NodeKind::Evaluator,
        "evaluator",
        eval.label.clone(),
        format!("{envs} envs x {steps} steps{every}, {acts}"),
        block(eval),
    );
    g.connect(policy, node, "action", &[s.to_string(), envs.to_string()]);
}

/// The network `check` inferred for `role`.
/// Shapes along a cell's edges: `[S, dims...]`; `act` is the action count
/// (discrete) or dimension (continuous).
pub struct Shapes<'a> {
    pub s: &'a str,
    pub obs: String,
    pub act: String,
}

impl Shapes<'_> {
    pub fn of(&self, dims: &[&str]) -> Vec<String> {
        std::iter::once(self.s.to_string())
            .chain(dims.iter().map(|d| d.to_string()))
            .collect()
    }

    pub fn params(&self) -> Vec<String> {
        vec![self.s.to_string(), "params".into()]
    }
}

pub fn find<'c>(cell: &'c Cell, role: &str) -> Option<&'c Net> {
    cell.nets.iter().find(|n| n.role == role)
}

pub fn act_dim(cell: &Cell) -> String {
    match cell.spaces.action {
        ActionSpace::Discrete(_) => "1".to_string(),
        ActionSpace::Continuous(d) => d.to_string(),
    }
}

/// A network node: its layer sizes and its block's settings.
pub fn net_node(g: &mut Graph, role: &'static str, net: &Net, block_of: Option<&Obj>) -> NodeId {
    let mut dims = vec![net.input];
    dims.extend(&net.hidden);
    dims.push(net.output);
    let precision = match net.precision.as_str() {
        "fp32" => String::new(),
        other => format!(", products in {other}"),
    };
    let detail = format!(
        "{} {}, {} params/seed{precision}",
        dims.iter()
            .map(|d| d.to_string())
            .collect::<Vec<_>>()
            .join("->"),
        net.activation,
        net.params()
    );
    let mut attrs = vec![
        ("dims", Attr::Ints(dims.iter().map(|d| *d as i64).collect())),
        ("precision", Attr::Text(net.precision.clone())),
    ];
    if let Some(obj) = block_of {
        attrs.extend(fields(obj));
    }
    g.add(
        NodeKind::Network,
        role,
        format!("{} ({})", net.role, net.model),
        detail,
        attrs,
    )
}

/// A block's constructor and every field with a plain value.
pub fn block(obj: &Obj) -> Vec<(&'static str, Attr)> {
    let mut attrs = vec![("ctor", Attr::Text(obj.ctor.name.to_string()))];
    attrs.extend(fields(obj));
    attrs
}

/// Every field of `obj` with a plain value (blocks it refers to are nodes of their own).
pub fn fields(obj: &Obj) -> Vec<(&'static str, Attr)> {
    obj.fields
        .iter()
        .filter_map(|(k, v)| attr(&v.value).map(|a| (*k, a)))
        .collect()
}

/// The named fields of `obj` that it has, in the order given.
pub fn pick(obj: &Obj, names: &[&'static str]) -> Vec<(&'static str, Attr)> {
    names
        .iter()
        .filter_map(|n| obj.get(n).and_then(|f| attr(&f.value)).map(|a| (*n, a)))
        .collect()
}

fn attr(value: &Value) -> Option<Attr> {
    Some(match value {
        Value::Int(i) => Attr::Int(*i),
        Value::Float(x) => Attr::Float(*x),
        Value::Bool(b) => Attr::Bool(*b),
        Value::Str(s) | Value::Enum(s) | Value::Name(s) => Attr::Text(s.clone()),
        Value::List(items) => Attr::Ints(
            items
                .iter()
                .map(|i| match i.value {
                    Value::Int(x) => Some(x),
                    _ => None,
                })
                .collect::<Option<Vec<i64>>>()?,
        ),
        Value::Term(t) => Attr::Term(t.clone()),
        Value::Obj(_) | Value::Raw(..) | Value::Unknown => return None,
    })
}
