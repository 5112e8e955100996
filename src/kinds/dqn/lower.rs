//! The DQN family (young2022 spec §2-3): the acting loop, the data Q trains
//! on (replay, or rollouts of the true env or of a learned model), the TD
//! loss, the optimizer and the greedy evaluation.

use crate::check::Cell;
use crate::graph::lower::{block, evaluator, find, net_node, pick, schedule, Shapes};
use crate::graph::{Graph, NodeId, NodeKind};
use crate::schema::ActionSpace;

pub(super) fn lower(g: &mut Graph, cell: &Cell, env: NodeId, s: &str) {
    let ActionSpace::Discrete(actions) = cell.spaces.action else {
        return;
    };
    let sh = Shapes {
        s,
        obs: cell.spaces.obs_dim.to_string(),
        act: actions.to_string(),
    };
    let Some((q, policy)) = acting(g, cell, env, &sh) else {
        return;
    };
    let buffer = buffer(g, cell, env, &sh);
    let (loss, opt) = td_learner(g, cell, q, &sh);
    let a = &cell.agent;
    match (a.obj("planner"), a.obj("model")) {
        (Some(_), Some(_)) => {
            let sources = Sources {
                env,
                buffer,
                policy,
                loss,
                opt,
            };
            rollouts(g, cell, sources, &sh);
        }
        _ => g.connect(
            buffer,
            loss,
            "batch",
            &sh.of(&[&a.int("batch").unwrap_or(0).to_string(), &sh.obs]),
        ),
    }
    evaluator(g, a, q, s, "argmax Q");
}

/// The loop's schedule, Q and the behaviour policy acting in the env.
fn acting(g: &mut Graph, cell: &Cell, env: NodeId, sh: &Shapes) -> Option<(NodeId, NodeId)> {
    let a = &cell.agent;
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
        _ => format!("a ~ softmax(Q/{})", a.float("temperature").unwrap_or(0.0)),
    };
    let policy = g.add(
        NodeKind::Policy,
        "policy",
        "behaviour",
        summary,
        exploration,
    );
    let q = net_node(g, "Q", find(cell, "Q")?, a.obj("q").map(|o| &**o));
    g.connect(loop_node, env, "env steps", &sh.of(&["1"]));
    g.connect(env, q, "obs", &sh.of(&["1", &sh.obs]));
    g.connect(q, policy, "Q values", &sh.of(&["1", &sh.act]));
    g.connect(policy, env, "action", &sh.of(&["1"]));
    Some((q, policy))
}

/// Replay of transitions, or the perfect model's buffer of env states.
fn buffer(g: &mut Graph, cell: &Cell, env: NodeId, sh: &Shapes) -> NodeId {
    let a = &cell.agent;
    let int = |f: &str| a.int(f).unwrap_or(0).to_string();
    match a.obj("model").is_some_and(|m| m.ctor.name == "true_env") {
        true => {
            let node = g.add(
                NodeKind::Buffer,
                "state buffer",
                "env states",
                format!("capacity {} per seed", int("buffer")),
                pick(a, &["buffer"]),
            );
            g.connect(env, node, "state", &[sh.s.to_string(), "state".into()]);
            node
        }
        false => {
            let node = g.add(
                NodeKind::Buffer,
                "replay",
                "replay",
                format!(
                    "capacity {} per seed, batch {}",
                    int("buffer"),
                    int("batch")
                ),
                pick(a, &["buffer", "batch"]),
            );
            let transition = format!("2x{}+3", sh.obs);
            g.connect(env, node, "transition", &sh.of(&["1", &transition]));
            node
        }
    }
}

/// The TD loss with its target (a target network, or Q itself) and the optimizer.
fn td_learner(g: &mut Graph, cell: &Cell, q: NodeId, sh: &Shapes) -> (NodeId, NodeId) {
    let a = &cell.agent;
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
    match find(cell, "Q target") {
        Some(target) => {
            let target = net_node(g, "Q target", target, None);
            let every = a.int("target_update_every").unwrap_or(0);
            g.connect(q, target, "sync params", &[format!("every {every} steps")]);
            g.connect(target, loss, "Q'(s')", &sh.of(&["B", &sh.act]));
        }
        None => g.connect(
            q,
            loss,
            "Q(s') at the step's start (no target network)",
            &sh.of(&["B", &sh.act]),
        ),
    }
    let learned_model = a.obj("model").is_some_and(|m| m.ctor.name != "true_env");
    let optimizer = a.obj("optimizer");
    let mut attrs = optimizer.map(|o| block(o)).unwrap_or_default();
    attrs.extend(pick(a, &["lr"]));
    if learned_model {
        attrs.extend(pick(a, &["model_lr"]));
    }
    let opt = g.add(
        NodeKind::Optimizer,
        "optimizer",
        optimizer.map(|o| o.label.clone()).unwrap_or_default(),
        format!("lr {}", a.float("lr").unwrap_or(0.0)),
        attrs,
    );
    g.connect(q, loss, "Q(s, a)", &sh.of(&["B", "1"]));
    g.connect(loss, opt, "grad", &sh.params());
    g.connect(opt, q, "update", &sh.params());
    (loss, opt)
}

/// What model rollouts connect to.
struct Sources {
    env: NodeId,
    buffer: NodeId,
    policy: NodeId,
    loss: NodeId,
    opt: NodeId,
}

/// The planner's rollouts in the true env, or in a learned model with its
/// networks and loss.
fn rollouts(g: &mut Graph, cell: &Cell, src: Sources, sh: &Shapes) {
    let a = &cell.agent;
    let (Some(planner), Some(model)) = (a.obj("planner"), a.obj("model")) else {
        return;
    };
    let starts = planner.int("starts").unwrap_or(0).to_string();
    let length = planner.int("length").unwrap_or(0);
    let rows = (planner.int("starts").unwrap_or(0) * length).to_string();
    let q_in = find(cell, "Q").map(|q| q.input).unwrap_or(0).to_string();
    let node = g.add(
        NodeKind::Planner,
        "planner",
        planner.label.clone(),
        format!("{starts} starts x {length} steps"),
        block(planner),
    );
    g.connect(
        src.buffer,
        node,
        "start states",
        &sh.of(&[&starts, &sh.obs]),
    );
    g.connect(src.policy, node, "actions", &sh.of(&[&starts]));
    g.connect(
        node,
        src.loss,
        "imagined transitions",
        &sh.of(&[&rows, &q_in]),
    );
    let model_node = g.add(
        NodeKind::Network,
        "model",
        model.label.clone(),
        model.ctor.name,
        block(model),
    );
    if model.ctor.name == "true_env" {
        g.connect(
            src.env,
            model_node,
            "true dynamics",
            &[sh.s.to_string(), "state".into()],
        );
        g.connect(model_node, node, "steps", &sh.of(&[&starts]));
        return;
    }
    let mloss = a.obj("model_loss");
    let mloss = g.add(
        NodeKind::Loss,
        "model loss",
        mloss.map(|l| l.label.clone()).unwrap_or_default(),
        format!("model lr {}", a.float("model_lr").unwrap_or(0.0)),
        mloss.map(|l| block(l)).unwrap_or_default(),
    );
    let batch = a.int("batch").unwrap_or(0).to_string();
    g.connect(src.buffer, mloss, "batch", &sh.of(&[&batch, &sh.obs]));
    for net in cell.nets.iter().filter(|n| !n.role.starts_with('Q')) {
        let out = net.output.to_string();
        let net_id = net_node(g, "model net", net, None);
        g.connect(model_node, net_id, net.role, &sh.params());
        g.connect(net_id, node, "prediction", &sh.of(&[&starts, &out]));
        g.connect(net_id, mloss, "prediction", &sh.of(&[&batch, &out]));
    }
    g.connect(mloss, src.opt, "grad", &sh.params());
}
