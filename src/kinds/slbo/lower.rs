//! SLBO (vaslbo spec §1-4): real collection with OU noise into a FIFO
//! buffer, the dynamics model and its loss, virtual rollouts, TRPO with a
//! value baseline, and the policy evaluation.

use crate::check::Cell;
use crate::graph::lower::{block, evaluator, find, net_node, pick, schedule, Shapes};
use crate::graph::{Graph, NodeId, NodeKind};

/// The networks of an SLBO cell.
struct Nets {
    policy: NodeId,
    value: NodeId,
    model: NodeId,
}

pub(super) fn lower(g: &mut Graph, cell: &Cell, env: NodeId, s: &str) {
    let a = &cell.agent;
    let sh = Shapes {
        s,
        obs: cell.spaces.obs_dim.to_string(),
        act: crate::graph::lower::act_dim(cell),
    };
    let (Some(p), Some(v), Some(m)) = (
        find(cell, "policy"),
        find(cell, "value"),
        find(cell, "dynamics"),
    ) else {
        return;
    };
    let stages = schedule(
        g,
        a,
        &[
            "stages",
            "steps_per_stage",
            "iters",
            "model_iters",
            "policy_iters",
            "value_refit_every",
            "eval_every",
            "save_every",
        ],
    );
    let nets = Nets {
        policy: net_node(g, "policy", p, a.obj("policy").map(|o| &**o)),
        value: net_node(g, "value", v, a.obj("value").map(|o| &**o)),
        model: net_node(g, "dynamics", m, a.obj("model").map(|o| &**o)),
    };
    let steps = a.int("steps_per_stage").unwrap_or(0).to_string();
    g.connect(stages, env, "real steps per stage", &[steps]);
    let buffer = collection(g, cell, env, &nets, &sh);
    model_learning(g, cell, buffer, &nets, &sh);
    planning(g, cell, &nets, &sh);
    evaluator(g, a, nets.policy, s, "policy without noise");
}

/// The policy and its OU noise acting in the real env, into the FIFO buffer.
fn collection(g: &mut Graph, cell: &Cell, env: NodeId, nets: &Nets, sh: &Shapes) -> NodeId {
    let a = &cell.agent;
    g.connect(env, nets.policy, "state", &sh.of(&["1", &sh.obs]));
    if let Some(noise) = a.obj("noise") {
        let n = g.add(
            NodeKind::Policy,
            "noise",
            noise.label.clone(),
            format!("{} exploration noise", noise.ctor.name),
            block(noise),
        );
        g.connect(n, env, "noise", &sh.of(&["1", &sh.act]));
    }
    g.connect(nets.policy, env, "action", &sh.of(&["1", &sh.act]));
    let capacity = a.int("buffer").unwrap_or(0);
    let buffer = g.add(
        NodeKind::Buffer,
        "buffer",
        "real data",
        format!("FIFO {capacity} per seed"),
        pick(a, &["buffer", "model_batch"]),
    );
    let row = format!("2x{}+{}+3", sh.obs, sh.act);
    g.connect(env, buffer, "transition", &sh.of(&["1", &row]));
    buffer
}

/// The model loss on multi-step batches, and the model's optimizer.
fn model_learning(g: &mut Graph, cell: &Cell, buffer: NodeId, nets: &Nets, sh: &Shapes) {
    let a = &cell.agent;
    let batch = a.int("model_batch").unwrap_or(0).to_string();
    let loss = a.obj("model_loss");
    let mloss = g.add(
        NodeKind::Loss,
        "model loss",
        loss.map(|l| l.label.clone()).unwrap_or_default(),
        format!("{} updates/iter", a.int("model_iters").unwrap_or(0)),
        loss.map(|l| block(l)).unwrap_or_default(),
    );
    g.connect(
        buffer,
        mloss,
        "multi-step batch",
        &sh.of(&["H", &batch, &sh.obs]),
    );
    g.connect(nets.model, mloss, "prediction", &sh.of(&[&batch, &sh.obs]));
    let expression_uses_v = loss
        .and_then(|l| match l.get("body").map(|f| &f.value) {
            Some(crate::check::Value::Term(t)) => Some(t.calls("V") || t.calls("dV")),
            _ => None,
        })
        .unwrap_or(false);
    if loss.is_some_and(|l| l.ctor.name == "value_aware") || expression_uses_v {
        g.connect(
            nets.value,
            mloss,
            "V(s'), V(f(s,a)) (frozen)",
            &sh.of(&[&batch]),
        );
    }
    let optimizer = a.obj("model_optimizer");
    let mut attrs = optimizer.map(|o| block(o)).unwrap_or_default();
    attrs.extend(pick(a, &["model_lr"]));
    let mopt = g.add(
        NodeKind::Optimizer,
        "model optimizer",
        optimizer.map(|o| o.label.clone()).unwrap_or_default(),
        format!("lr {}", a.float("model_lr").unwrap_or(0.0)),
        attrs,
    );
    g.connect(mloss, mopt, "grad", &sh.params());
    g.connect(mopt, nets.model, "update", &sh.params());
}

/// Virtual rollouts of the policy in the model, and TRPO with its value fit.
fn planning(g: &mut Graph, cell: &Cell, nets: &Nets, sh: &Shapes) {
    let a = &cell.agent;
    let planner = a.obj("planner");
    let envs = planner.and_then(|p| p.int("envs")).unwrap_or(0);
    let length = planner.and_then(|p| p.int("length")).unwrap_or(0);
    let rollouts = g.add(
        NodeKind::Planner,
        "planner",
        planner.map(|p| p.label.clone()).unwrap_or_default(),
        format!("{envs} virtual envs x {length} steps"),
        planner.map(|p| block(p)).unwrap_or_default(),
    );
    let (envs, samples) = (envs.to_string(), (envs * length).to_string());
    g.connect(
        nets.model,
        rollouts,
        "next state",
        &sh.of(&[&envs, &sh.obs]),
    );
    g.connect(nets.policy, rollouts, "action", &sh.of(&[&envs, &sh.act]));
    let trpo_obj = a.obj("trpo");
    let trpo = g.add(
        NodeKind::Optimizer,
        "trpo",
        trpo_obj.map(|t| t.label.clone()).unwrap_or_default(),
        format!("{} updates/iter", a.int("policy_iters").unwrap_or(0)),
        trpo_obj.map(|t| block(t)).unwrap_or_default(),
    );
    g.connect(rollouts, trpo, "trajectories", &sh.of(&[&samples, &sh.obs]));
    g.connect(nets.value, trpo, "GAE baseline", &sh.of(&[&samples]));
    g.connect(trpo, nets.value, "value fit", &sh.params());
    g.connect(trpo, nets.policy, "natural-gradient step", &sh.params());
}
