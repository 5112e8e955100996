//! The DQN family (young2022 spec §2-3): the acting loop, the data Q trains
//! on (replay, or rollouts of the true env or of a learned model), the TD
//! loss, the optimizer and the greedy evaluation.

use crate::check::Cell;
use crate::graph::lower::{block, evaluator, find, net_node, pick, schedule};
use crate::graph::{Graph, NodeId, NodeKind};
use crate::schema::ActionSpace;

pub(super) fn lower(g: &mut Graph, cell: &Cell, env: NodeId, s: &str) {
    let a = &cell.agent;
    let ActionSpace::Discrete(n_actions) = cell.spaces.action else {
        return;
    };
    let obs = cell.spaces.obs_dim.to_string();
    let n_act = n_actions.to_string();
    let int = |f: &str| a.int(f).unwrap_or(0).to_string();
    let shape = |dims: &[&str]| -> Vec<String> {
        std::iter::once(s.to_string())
            .chain(dims.iter().map(|d| d.to_string()))
            .collect()
    };
    let loop_node = schedule(
        g,
        a,
        &[
            "steps",
            "learning_starts",
            "updates_per_step",
            "use_target",
            "target_update_every",
            "eval_every",
            "save_every",
        ],
    );
    let exploration = pick(a, &["exploration", "temperature", "epsilon"]);
    let summary = match a.enum_("exploration") {
        Some("epsilon_greedy") => format!(
            "epsilon-greedy, epsilon {}",
            a.float("epsilon").unwrap_or(0.0)
        ),
        _ => format!(
            "a ~ softmax(Q/{})",
            a.float("temperature").unwrap_or(0.0)
        ),
    };
    let policy = g.add(NodeKind::Policy, "policy", "behaviour", summary, exploration);
    let Some(q_net) = find(cell, "Q") else { return };
    let q_in = q_net.input.to_string();
    let q = net_node(g, "Q", q_net, a.obj("q").map(|o| &**o));
    g.connect(loop_node, env, "env steps", &shape(&["1"]));
    g.connect(env, q, "obs", &shape(&["1", &obs]));
    g.connect(q, policy, "Q values", &shape(&["1", &n_act]));
    g.connect(policy, env, "action", &shape(&["1"]));
    let model = a.obj("model");
    let true_env = model.is_some_and(|m| m.ctor.name == "true_env");
    let buffer = match true_env {
        true => g.add(
            NodeKind::Buffer,
            "state buffer",
            "env states",
            format!("capacity {} per seed", int("buffer")),
            pick(a, &["buffer"]),
        ),
        false => g.add(
            NodeKind::Buffer,
            "replay",
            "replay",
            format!("capacity {} per seed, batch {}", int("buffer"), int("batch")),
            pick(a, &["buffer", "batch"]),
        ),
    };
    match true_env {
        true => g.connect(env, buffer, "state", &[s.to_string(), "state".into()]),
        false => g.connect(
            env,
            buffer,
            "transition",
            &shape(&["1", &format!("2x{obs}+3")]),
        ),
    }
    let double = a.bool("double_dqn") == Some(true);
    let loss = g.add(
        NodeKind::Loss,
        "td",
        "td",
        format!(
            "gamma {}{}",
            a.float("gamma").unwrap_or(0.0),
            if double { ", double DQN" } else { "" }
        ),
        pick(a, &["gamma", "double_dqn"]),
    );
    if let Some(target) = find(cell, "Q target") {
        let target = net_node(g, "Q target", target, None);
        g.connect(
            q,
            target,
            "sync params",
            &[format!("every {} steps", int("target_update_every"))],
        );
        g.connect(target, loss, "Q'(s')", &shape(&["B", &n_act]));
    } else {
        g.connect(q, loss, "Q(s') (no target network)", &shape(&["B", &n_act]));
    }
    let mut opt_attrs = Vec::new();
    if let Some(o) = a.obj("optimizer") {
        opt_attrs = block(o);
    }
    opt_attrs.extend(pick(a, &["lr"]));
    if model.is_some() && !true_env {
        opt_attrs.extend(pick(a, &["model_lr"]));
    }
    let opt_name = a
        .obj("optimizer")
        .map(|o| o.label.clone())
        .unwrap_or_default();
    let opt = g.add(
        NodeKind::Optimizer,
        "optimizer",
        opt_name,
        format!("lr {}", a.float("lr").unwrap_or(0.0)),
        opt_attrs,
    );
    g.connect(q, loss, "Q(s, a)", &shape(&["B", "1"]));
    g.connect(loss, opt, "grad", &[s.to_string(), "params".into()]);
    g.connect(opt, q, "update", &[s.to_string(), "params".into()]);
    match (a.obj("planner"), model) {
        (Some(planner), Some(model)) => {
            let starts = planner.int("starts").unwrap_or(0);
            let length = planner.int("length").unwrap_or(0);
            let rollouts = g.add(
                NodeKind::Planner,
                "planner",
                planner.label.clone(),
                format!("{starts} starts x {length} steps"),
                block(planner),
            );
            g.connect(
                buffer,
                rollouts,
                "start states",
                &shape(&[&starts.to_string(), &obs]),
            );
            g.connect(policy, rollouts, "actions", &shape(&[&starts.to_string()]));
            g.connect(
                rollouts,
                loss,
                "imagined transitions",
                &shape(&[&(starts * length).to_string(), &q_in]),
            );
            let model_node = g.add(
                NodeKind::Network,
                "model",
                model.label.clone(),
                model.ctor.name,
                block(model),
            );
            if true_env {
                g.connect(
                    env,
                    model_node,
                    "true dynamics",
                    &[s.to_string(), "state".into()],
                );
                g.connect(model_node, rollouts, "steps", &shape(&[&starts.to_string()]));
                return evaluator(g, a, q, s, "argmax Q");
            }
            let mloss = a.obj("model_loss");
            let mloss = g.add(
                NodeKind::Loss,
                "model loss",
                mloss.map(|l| l.label.clone()).unwrap_or_default(),
                format!("model lr {}", a.float("model_lr").unwrap_or(0.0)),
                mloss.map(|l| block(l)).unwrap_or_default(),
            );
            g.connect(buffer, mloss, "batch", &shape(&[&int("batch"), &obs]));
            for net in cell.nets.iter().filter(|n| !n.role.starts_with('Q')) {
                let node = net_node(g, "model net", net, None);
                g.connect(model_node, node, net.role, &[s.to_string(), "params".into()]);
                g.connect(
                    node,
                    rollouts,
                    "prediction",
                    &shape(&[&starts.to_string(), &net.output.to_string()]),
                );
                g.connect(
                    node,
                    mloss,
                    "prediction",
                    &shape(&[&int("batch"), &net.output.to_string()]),
                );
            }
            g.connect(mloss, opt, "grad", &[s.to_string(), "params".into()]);
        }
        _ => g.connect(buffer, loss, "batch", &shape(&[&int("batch"), &obs])),
    }
    evaluator(g, a, q, s, "argmax Q");
}
