//! Lowering a checked cell to its dataflow graph.

use crate::check::{Cell, CheckedExperiment, Net};
use crate::graph::{Graph, NodeId, NodeKind};
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
    let mut g = Graph::new(title);
    let s = format!("S={}", exp.seeds);
    let obs = cell.spaces.obs_dim.to_string();
    let env = g.add(
        NodeKind::Env,
        cell.env.label.clone(),
        format!(
            "obs {}, actions {}",
            cell.spaces.describe_obs(),
            cell.spaces.action.describe()
        ),
    );
    match cell.agent.ctor.name {
        "dqn" => dqn(&mut g, exp, cell, env, &s, &obs),
        "slbo" => slbo(&mut g, cell, env, &s, &obs),
        _ => {
            let policy = g.add(NodeKind::Policy, "uniform", "random actions");
            g.connect(
                policy,
                env,
                "action",
                &[s.clone(), "1".into(), act_dim(cell)],
            );
        }
    }
    g
}

fn act_dim(cell: &Cell) -> String {
    match cell.spaces.action {
        ActionSpace::Discrete(_) => "1".to_string(),
        ActionSpace::Continuous(d) => d.to_string(),
    }
}

fn net_node(g: &mut Graph, net: &Net) -> NodeId {
    let mut dims = vec![net.input.to_string()];
    dims.extend(net.hidden.iter().map(|h| h.to_string()));
    dims.push(net.output.to_string());
    let detail = format!(
        "{} {}, {} params/seed",
        dims.join("->"),
        net.activation,
        net.params()
    );
    g.add(
        NodeKind::Network,
        format!("{} ({})", net.role, net.model),
        detail,
    )
}

fn find<'c>(cell: &'c Cell, role: &str) -> Option<&'c Net> {
    cell.nets.iter().find(|n| n.role == role)
}

fn dqn(g: &mut Graph, exp: &CheckedExperiment, cell: &Cell, env: NodeId, s: &str, obs: &str) {
    let a = &cell.agent;
    let ActionSpace::Discrete(n_actions) = cell.spaces.action else {
        return;
    };
    let n_act = n_actions.to_string();
    let int = |f: &str| a.int(f).unwrap_or(0).to_string();
    let shape = |dims: &[&str]| -> Vec<String> {
        std::iter::once(s.to_string())
            .chain(dims.iter().map(|d| d.to_string()))
            .collect()
    };
    let temperature = a.float("temperature").unwrap_or(0.0);
    let policy = g.add(
        NodeKind::Policy,
        "softmax",
        format!("a ~ softmax(Q/{temperature})"),
    );
    let Some(q_net) = find(cell, "Q") else { return };
    let q_in = q_net.input.to_string();
    let q = net_node(g, q_net);
    g.connect(env, q, "obs", &shape(&["1", obs]));
    g.connect(q, policy, "Q values", &shape(&["1", &n_act]));
    g.connect(policy, env, "action", &shape(&["1"]));
    let buffer = g.add(
        NodeKind::Buffer,
        "replay",
        format!("capacity {} per seed", int("buffer")),
    );
    g.connect(
        env,
        buffer,
        "transition",
        &shape(&["1", &format!("2x{obs}+3")]),
    );
    let loss = g.add(
        NodeKind::Loss,
        "td",
        format!("gamma {}", a.float("gamma").unwrap_or(0.0)),
    );
    let target = find(cell, "Q target").map(|t| net_node(g, t));
    if let Some(target) = target {
        g.connect(
            q,
            target,
            "sync params",
            &[format!("every {} steps", int("target_update_every"))],
        );
        g.connect(target, loss, "max Q'", &shape(&["B", "1"]));
    }
    let opt_name = a
        .obj("optimizer")
        .map(|o| o.label.clone())
        .unwrap_or_default();
    let opt = g.add(
        NodeKind::Optimizer,
        opt_name,
        format!("lr {}", a.float("lr").unwrap_or(0.0)),
    );
    g.connect(q, loss, "Q(s, a)", &shape(&["B", "1"]));
    g.connect(loss, opt, "grad", &[s.to_string(), "params".into()]);
    g.connect(opt, q, "update", &[s.to_string(), "params".into()]);
    match (a.obj("planner"), a.obj("model")) {
        (Some(planner), Some(model)) => {
            let starts = planner.int("starts").unwrap_or(0);
            let length = planner.int("length").unwrap_or(0);
            let rollouts = g.add(
                NodeKind::Planner,
                planner.label.clone(),
                format!("{starts} starts x {length} steps"),
            );
            g.connect(
                buffer,
                rollouts,
                "start states",
                &shape(&[&starts.to_string(), obs]),
            );
            g.connect(policy, rollouts, "actions", &shape(&[&starts.to_string()]));
            g.connect(
                rollouts,
                loss,
                "imagined transitions",
                &shape(&[&(starts * length).to_string(), &q_in]),
            );
            if model.ctor.name != "true_env" {
                let model_loss = a
                    .obj("model_loss")
                    .map(|l| l.label.clone())
                    .unwrap_or_default();
                let mloss = g.add(
                    NodeKind::Loss,
                    model_loss,
                    format!("model lr {}", a.float("model_lr").unwrap_or(0.0)),
                );
                g.connect(buffer, mloss, "batch", &shape(&[&int("batch"), obs]));
                for net in cell.nets.iter().filter(|n| !n.role.starts_with('Q')) {
                    let node = net_node(g, net);
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
            } else {
                g.connect(
                    env,
                    rollouts,
                    "true dynamics",
                    &[s.to_string(), "state".into()],
                );
            }
        }
        _ => g.connect(buffer, loss, "batch", &shape(&[&int("batch"), obs])),
    }
    let eval = a.obj("eval");
    let envs = eval.and_then(|e| e.int("envs")).unwrap_or(0);
    let steps = eval.and_then(|e| e.int("steps")).unwrap_or(0);
    let evaluator = g.add(
        NodeKind::Evaluator,
        "greedy eval",
        format!(
            "{envs} envs x {steps} steps every {} steps, {} seeds",
            int("eval_every"),
            exp.seeds
        ),
    );
    g.connect(
        q,
        evaluator,
        "argmax Q",
        &shape(&[&envs.to_string(), &n_act]),
    );
}

fn slbo(g: &mut Graph, cell: &Cell, env: NodeId, s: &str, obs: &str) {
    let a = &cell.agent;
    let act = act_dim(cell);
    let shape = |dims: &[&str]| -> Vec<String> {
        std::iter::once(s.to_string())
            .chain(dims.iter().map(|d| d.to_string()))
            .collect()
    };
    let int = |f: &str| a.int(f).unwrap_or(0).to_string();
    let (Some(p), Some(v), Some(m)) = (
        find(cell, "policy"),
        find(cell, "value"),
        find(cell, "dynamics"),
    ) else {
        return;
    };
    let policy = net_node(g, p);
    let value = net_node(g, v);
    let model = net_node(g, m);
    g.connect(env, policy, "state", &shape(&["1", obs]));
    g.connect(policy, env, "action + OU noise", &shape(&["1", &act]));
    let buffer = g.add(
        NodeKind::Buffer,
        "real data",
        format!("FIFO {} per seed", int("buffer")),
    );
    g.connect(
        env,
        buffer,
        "transition",
        &shape(&["1", &format!("2x{obs}+{act}")]),
    );
    let loss_name = a
        .obj("model_loss")
        .map(|l| l.label.clone())
        .unwrap_or_default();
    let mloss = g.add(
        NodeKind::Loss,
        loss_name,
        format!("{} updates/iter", int("model_iters")),
    );
    g.connect(
        buffer,
        mloss,
        "multi-step batch",
        &shape(&["H", &int("model_batch"), obs]),
    );
    g.connect(
        model,
        mloss,
        "prediction",
        &shape(&[&int("model_batch"), obs]),
    );
    if a.obj("model_loss")
        .is_some_and(|l| l.ctor.name == "value_aware")
    {
        g.connect(
            value,
            mloss,
            "V(s'), V(f(s,a)) (frozen)",
            &shape(&[&int("model_batch")]),
        );
    }
    let mopt = g.add(
        NodeKind::Optimizer,
        "model adam",
        format!("lr {}", a.float("model_lr").unwrap_or(0.0)),
    );
    g.connect(mloss, mopt, "grad", &[s.to_string(), "params".into()]);
    g.connect(mopt, model, "update", &[s.to_string(), "params".into()]);
    let planner = a.obj("planner");
    let envs = planner.and_then(|p| p.int("envs")).unwrap_or(0);
    let length = planner.and_then(|p| p.int("length")).unwrap_or(0);
    let rollouts = g.add(
        NodeKind::Planner,
        "virtual rollouts",
        format!("{envs} envs x {length} steps"),
    );
    g.connect(
        model,
        rollouts,
        "next state",
        &shape(&[&envs.to_string(), obs]),
    );
    g.connect(
        policy,
        rollouts,
        "action",
        &shape(&[&envs.to_string(), &act]),
    );
    let trpo = g.add(
        NodeKind::Optimizer,
        "trpo",
        format!("{} updates/iter", int("policy_iters")),
    );
    g.connect(
        rollouts,
        trpo,
        "trajectories",
        &shape(&[&(envs * length).to_string(), obs]),
    );
    g.connect(
        value,
        trpo,
        "GAE baseline",
        &shape(&[&(envs * length).to_string()]),
    );
    g.connect(
        trpo,
        policy,
        "natural-gradient step",
        &[s.to_string(), "params".into()],
    );
    let evaluator = g.add(
        NodeKind::Evaluator,
        "policy eval",
        "real envs, stochastic policy",
    );
    g.connect(policy, evaluator, "action", &shape(&["envs", &act]));
}
