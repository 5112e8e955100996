//! The DQN family in `check`: the networks a `dqn` agent builds in an env,
//! its budget, and its rules (components that fit together, settings the
//! others make moot, values the runtime does not implement).

use crate::check::common::{
    fitting_loss, ignored, latent_fields, loss_fits, mlp_init, role, unsupported, within,
};
use crate::check::eval::Evaluator;
use crate::check::shapes::{net, Net};
use crate::check::Obj;
use crate::diagnostics::{Code, Diag};
use crate::schema::{ActionSpace, EnvSpaces};

/// Env steps one seed takes, and the Q updates it makes.
pub(super) fn budget(agent: &Obj) -> (u64, u64) {
    let steps = agent.int("steps").unwrap_or(0);
    let active = steps - agent.int("learning_starts").unwrap_or(0);
    let updates = active.max(0) * agent.int("updates_per_step").unwrap_or(1);
    (steps.max(0) as u64, updates.max(0) as u64)
}

pub(super) fn nets(agent: &Obj, spaces: &EnvSpaces) -> Vec<Net> {
    let ActionSpace::Discrete(n_actions) = spaces.action else {
        return Vec::new();
    };
    let mut nets = Vec::new();
    if let Some(q) = agent.obj("q") {
        let input = q_input(agent, spaces);
        nets.push(net("Q", q, input, n_actions));
        if agent.bool("use_target") != Some(false) {
            nets.push(net("Q target", q, input, n_actions));
        }
    }
    let Some(model) = agent.obj("model") else {
        return nets;
    };
    let obs = spaces.obs_dim;
    match model.ctor.name {
        "factored_model" => {
            nets.push(net("reward head", model, obs + n_actions, 1));
            nets.push(net("continuation head", model, obs + n_actions, 1));
            nets.push(net("next-obs head", model, obs + n_actions, obs));
        }
        "latent_model" => {
            let phi = latent_dim(model);
            let dist = match model.enum_("latent") {
                Some("gaussian") => 2 * phi,
                _ => phi,
            };
            nets.push(net("encoder", model, obs, dist));
            nets.push(net("transition", model, phi + n_actions, dist));
            nets.push(net("reward head", model, phi + n_actions, 1));
            nets.push(net("continuation head", model, phi + n_actions, 1));
            nets.push(net("decoder", model, phi, obs));
        }
        _ => (),
    }
    nets
}

/// The size of the representation Q sees: the obs, or a latent model's features.
fn q_input(agent: &Obj, spaces: &EnvSpaces) -> usize {
    match agent.obj("model") {
        Some(model) if model.ctor.name == "latent_model" => latent_dim(model),
        _ => spaces.obs_dim,
    }
}

fn latent_dim(model: &Obj) -> usize {
    let features = model.int("features").unwrap_or(32).max(0) as usize;
    match model.enum_("latent") {
        Some("categorical") => features * model.int("width").unwrap_or(32).max(0) as usize,
        _ => features,
    }
}

pub(super) fn rules(ev: &mut Evaluator, agent: &Obj) {
    within(ev, agent, "batch", "buffer");
    if let (Some(starts), Some(steps)) = (agent.int("learning_starts"), agent.int("steps")) {
        if starts >= steps {
            let msg = format!("no update happens: learning starts at step {starts}, training ends at step {steps}");
            let diag = Diag::error(
                Code::NoUpdates,
                msg,
                agent.span_of("learning_starts"),
                "first update here",
            )
            .with_label(agent.span_of("steps"), "last step here")
            .with_help("lower `learning_starts` below `steps`");
            ev.diags.push(diag);
        }
    }
    role(ev, agent, "q", &["mlp"], "a Q network");
    role(
        ev,
        agent,
        "planner",
        &["model_rollouts"],
        "rollouts from replay states (`model_rollouts`)",
    );
    role(
        ev,
        agent,
        "optimizer",
        &["adamw"],
        "the Young et al. Adam (`adamw`)",
    );
    role(
        ev,
        agent,
        "model",
        &["factored_model", "latent_model", "true_env"],
        "a dynamics model",
    );
    match agent.enum_("exploration") {
        Some("epsilon_greedy") if !agent.is_set("epsilon") && !agent.is_unknown("epsilon") => {
            let msg = "epsilon-greedy exploration needs `epsilon`";
            let diag = Diag::error(
                Code::MissingField,
                msg,
                agent.span_of("exploration"),
                "chosen here",
            )
            .with_help("add `epsilon: 0.1`");
            ev.diags.push(diag);
        }
        Some("softmax") if agent.is_explicit("epsilon") => {
            ignored(ev, agent, "epsilon", "exploration is softmax")
        }
        _ => (),
    }
    if agent.bool("use_target") == Some(false) && agent.is_explicit("target_update_every") {
        ignored(ev, agent, "target_update_every", "`use_target` is false");
    }
    components(ev, agent);
    if let Some(model) = agent.obj("model") {
        latent_fields(ev, model);
    }
    unused_settings(ev, agent);
    q_network(ev, agent);
}

/// Settings that the other settings make moot.
fn unused_settings(ev: &mut Evaluator, agent: &Obj) {
    if agent.enum_("exploration") == Some("epsilon_greedy") && agent.is_explicit("temperature") {
        ignored(ev, agent, "temperature", "exploration is epsilon-greedy");
    }
    let model = agent.obj("model").map(|m| m.ctor.name);
    if matches!(model, None | Some("true_env")) && agent.is_explicit("model_lr") {
        ignored(ev, agent, "model_lr", "the agent trains no model");
    }
    let weighting = agent
        .obj("planner")
        .filter(|p| p.is_explicit("weighting") && p.enum_("weighting") != Some("auto"));
    if let (Some("true_env"), Some(planner)) = (model, weighting) {
        ignored(
            ev,
            planner,
            "weighting",
            "the perfect model weights its steps by the true env's terminals (young2022 spec §3.2)",
        );
    }
    if model == Some("true_env") && agent.is_explicit("batch") {
        ignored(
            ev,
            agent,
            "batch",
            "the perfect model samples the planner's `starts` stored states per update",
        );
    }
    if let Some(opt) = agent.obj("optimizer") {
        if opt.bool("shared_counter") == Some(false) {
            ignored(
                ev,
                opt,
                "shared_counter",
                "Q and the model take one Adam step each per update, so separate counters always agree",
            );
        }
    }
    if let Some(loss) = agent.obj("model_loss").filter(|l| l.ctor.name == "mle") {
        if loss.is_explicit("horizon") {
            ignored(
                ev,
                loss,
                "horizon",
                "the simple model trains on one-step transitions",
            );
        }
    }
    if let Some(eval) = agent.obj("eval") {
        if eval.is_explicit("stochastic") {
            ignored(ev, eval, "stochastic", "DQN evaluates greedily");
        }
    }
}

/// What the runtime's Q network supports: the reference's inits, raw inputs.
fn q_network(ev: &mut Evaluator, agent: &Obj) {
    let Some(q) = agent.obj("q").filter(|q| q.ctor.name == "mlp") else {
        return;
    };
    if q.enum_("normalize") == Some("running") {
        unsupported(
            ev,
            q,
            "normalize",
            "DQN's Q reads the raw observation: a running normalizer is SLBO's (vaslbo spec §1.3)",
            "remove `normalize`, or write `normalize: none`",
        );
    }
    mlp_init(ev, q);
}

/// The model, its loss and the planner must fit together.
fn components(ev: &mut Evaluator, agent: &Obj) {
    let model = agent.obj("model");
    let loss = agent.obj("model_loss");
    let rollouts = agent
        .obj("planner")
        .filter(|p| p.ctor.name == "model_rollouts");
    if let (Some(planner), None) = (rollouts, model) {
        if !agent.is_unknown("model") {
            let msg = format!(
                "planner `{}` rolls out a model, but `{}` has none",
                planner.label, agent.label
            );
            let diag = Diag::error(
                Code::MissingComponent,
                msg,
                agent.span_of("planner"),
                "needs a model",
            )
            .with_help("add `model: ...`, or remove the planner to train on replay");
            ev.diags.push(diag);
        }
    }
    if let (Some(model), None) = (model, rollouts) {
        let msg = format!(
            "model `{}` is never used: no planner rolls it out",
            model.label
        );
        let diag = Diag::warning(Code::UnusedComponent, msg, agent.span_of("model"), "unused")
            .with_help("add `planner: model_rollouts`, or remove `model`");
        ev.diags.push(diag);
    }
    match (model, loss) {
        (None, Some(loss)) => {
            let msg = format!("model loss `{}` has no model to train", loss.label);
            let diag = Diag::warning(
                Code::UnusedComponent,
                msg,
                agent.span_of("model_loss"),
                "unused",
            )
            .with_help("add `model: ...`, or remove `model_loss`");
            ev.diags.push(diag);
        }
        (Some(model), None) if model.ctor.name != "true_env" && !agent.is_unknown("model_loss") => {
            let msg = format!(
                "model `{}` is learned, but no `model_loss` trains it",
                model.label
            );
            let diag = Diag::error(
                Code::MissingComponent,
                msg,
                agent.span_of("model"),
                "learned model",
            )
            .with_help(format!(
                "add `model_loss: {}`",
                fitting_loss(model.ctor.name)
            ));
            ev.diags.push(diag);
        }
        (Some(model), Some(loss)) => loss_fits(ev, agent, model, loss),
        _ => (),
    }
}

/// Transitions each Q update trains on: replay batch, or starts x rollout length.
pub(super) fn q_update_batch(agent: &Obj) -> Option<i64> {
    match agent.obj("planner") {
        Some(p) if p.ctor.name == "model_rollouts" => Some(p.int("starts")? * p.int("length")?),
        _ => agent.int("batch"),
    }
}
