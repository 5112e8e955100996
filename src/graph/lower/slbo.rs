//! SLBO (vaslbo spec §1-4): real collection with OU noise into a FIFO
//! buffer, the dynamics model and its loss, virtual rollouts, TRPO with a
//! value baseline, and the policy evaluation.

use crate::check::Cell;
use crate::graph::lower::{block, evaluator, find, net_node, pick, schedule};
use crate::graph::{Graph, NodeId, NodeKind};

pub(super) fn lower(g: &mut Graph, cell: &Cell, env: NodeId, s: &str) {
    let a = &cell.agent;
    let act = super::act_dim(cell);
    let obs = cell.spaces.obs_dim.to_string();
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
        ],
    );
    let policy = net_node(g, "policy", p, a.obj("policy").map(|o| &**o));
    let value = net_node(g, "value", v, a.obj("value").map(|o| &**o));
    let model = net_node(g, "dynamics", m, a.obj("model").map(|o| &**o));
    g.connect(
        stages,
        env,
        "real steps per stage",
        &[int("steps_per_stage")],
    );
    g.connect(env, policy, "state", &shape(&["1", &obs]));
    if let Some(noise) = a.obj("noise") {
        let n = g.add(
            NodeKind::Policy,
            "noise",
            noise.label.clone(),
            format!("{} exploration noise", noise.ctor.name),
            block(noise),
        );
        g.connect(n, env, "noise", &shape(&["1", &act]));
    }
    g.connect(policy, env, "action", &shape(&["1", &act]));
    let buffer = g.add(
        NodeKind::Buffer,
        "buffer",
        "real data",
        format!("FIFO {} per seed", int("buffer")),
        pick(a, &["buffer", "model_batch"]),
    );
    g.connect(
        env,
        buffer,
        "transition",
        &shape(&["1", &format!("2x{obs}+{act}+3")]),
    );
    let loss = a.obj("model_loss");
    let mloss = g.add(
        NodeKind::Loss,
        "model loss",
        loss.map(|l| l.label.clone()).unwrap_or_default(),
        format!("{} updates/iter", int("model_iters")),
        loss.map(|l| block(l)).unwrap_or_default(),
    );
    g.connect(
        buffer,
        mloss,
        "multi-step batch",
        &shape(&["H", &int("model_batch"), &obs]),
    );
    g.connect(
        model,
        mloss,
        "prediction",
        &shape(&[&int("model_batch"), &obs]),
    );
    if loss.is_some_and(|l| l.ctor.name == "value_aware") {
        g.connect(
            value,
            mloss,
            "V(s'), V(f(s,a)) (frozen)",
            &shape(&[&int("model_batch")]),
        );
    }
    let mut opt_attrs = a
        .obj("model_optimizer")
        .map(|o| block(o))
        .unwrap_or_default();
    opt_attrs.extend(pick(a, &["model_lr"]));
    let mopt = g.add(
        NodeKind::Optimizer,
        "model optimizer",
        a.obj("model_optimizer")
            .map(|o| o.label.clone())
            .unwrap_or_default(),
        format!("lr {}", a.float("model_lr").unwrap_or(0.0)),
        opt_attrs,
    );
    g.connect(mloss, mopt, "grad", &[s.to_string(), "params".into()]);
    g.connect(mopt, model, "update", &[s.to_string(), "params".into()]);
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
    g.connect(
        model,
        rollouts,
        "next state",
        &shape(&[&envs.to_string(), &obs]),
    );
    g.connect(
        policy,
        rollouts,
        "action",
        &shape(&[&envs.to_string(), &act]),
    );
    let trpo_obj = a.obj("trpo");
    let trpo = g.add(
        NodeKind::Optimizer,
        "trpo",
        trpo_obj.map(|t| t.label.clone()).unwrap_or_default(),
        format!("{} updates/iter", int("policy_iters")),
        trpo_obj.map(|t| block(t)).unwrap_or_default(),
    );
    let samples = (envs * length).to_string();
    g.connect(rollouts, trpo, "trajectories", &shape(&[&samples, &obs]));
    g.connect(value, trpo, "GAE baseline", &shape(&[&samples]));
    g.connect(trpo, value, "value fit", &[s.to_string(), "params".into()]);
    g.connect(
        trpo,
        policy,
        "natural-gradient step",
        &[s.to_string(), "params".into()],
    );
    evaluator(g, a, policy, s, "policy without noise");
}
