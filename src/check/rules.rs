//! Cross-field rules: what a careful researcher would want caught before a
//! run starts. Block rules need only the agent; cell rules also see the env.

use crate::check::eval::Evaluator;
use crate::check::shapes::Net;
use crate::check::value::Obj;
use crate::diagnostics::{Code, Diag};
use crate::schema::{ActionSpace, EnvSpaces, ObsKind};

/// Rules on an agent (and its nested blocks) that hold in any env.
pub fn block_rules(ev: &mut Evaluator, agent: &Obj) {
    match agent.ctor.name {
        "dqn" => dqn_rules(ev, agent),
        "slbo" => slbo_rules(ev, agent),
        _ => (),
    }
    eval_interval(ev, agent);
}

/// Rules on an agent in a given env: spaces, shapes, episodic-only settings.
pub fn cell_rules(ev: &mut Evaluator, agent: &Obj, env: &Obj, spaces: &EnvSpaces, nets: &[Net]) {
    block_rules(ev, agent);
    let needs = match agent.ctor.name {
        "dqn" => Some((
            "discrete",
            matches!(spaces.action, ActionSpace::Discrete(_)),
        )),
        "slbo" => Some((
            "continuous",
            matches!(spaces.action, ActionSpace::Continuous(_)),
        )),
        _ => None,
    };
    if let Some((needed, false)) = needs {
        let msg = format!(
            "`{}` needs {needed} actions, but `{}` has {}",
            agent.ctor.name,
            env.label,
            spaces.action.describe()
        );
        let help = match needed {
            "discrete" => "use `slbo` on continuous-control envs",
            _ => "use a `dqn` agent on the grid worlds",
        };
        let diag = Diag::error(
            Code::ActionSpace,
            msg,
            agent.span,
            format!("`{}` acts here", agent.label),
        )
        .with_label(env.span, format!("{} actions", spaces.action.describe()))
        .with_help(help);
        ev.diags.push(diag);
        return;
    }
    if let Some(model) = agent.obj("model") {
        if model.enum_("obs") == Some("bernoulli") && spaces.obs == ObsKind::Real {
            let msg = format!(
                "`obs: bernoulli` needs binary observations, but `{}` observes reals",
                env.label
            );
            let diag = Diag::error(
                Code::ObservationSpace,
                msg,
                model.span_of("obs"),
                "Bernoulli head",
            )
            .with_label(env.span, format!("observes {}", spaces.describe_obs()))
            .with_help("use `obs: gaussian`");
            ev.diags.push(diag);
        }
    }
    episodic_only(ev, agent, env, spaces);
    declared_shapes(ev, agent, env, spaces, nets);
    virtual_horizon(ev, agent, env, spaces);
}

/// SLBO's virtual episodes have the real env's length L (vaslbo spec §1, §5.3).
fn virtual_horizon(ev: &mut Evaluator, agent: &Obj, env: &Obj, spaces: &EnvSpaces) {
    let Some(planner) = agent
        .obj("planner")
        .filter(|p| p.ctor.name == "virtual_rollouts")
    else {
        return;
    };
    let (Some(length), Some(horizon)) = (planner.int("length"), spaces.horizon) else {
        return;
    };
    if length as usize == horizon {
        return;
    }
    let msg = format!(
        "virtual episodes last {length} steps, but `{}` episodes last {horizon}",
        env.label
    );
    let diag = Diag::warning(Code::HorizonMismatch, msg, planner.span_of("length"), "virtual episode length")
        .with_label(env.span, format!("{horizon}-step episodes"))
        .with_help(format!("use `length: {horizon} steps` for this env (a tuned table keyed by `env` can set it per env)"));
    ev.diags.push(diag);
}

fn dqn_rules(ev: &mut Evaluator, agent: &Obj) {
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
        "model",
        &["factored_model", "latent_model", "true_env", "dynamics"],
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

fn fitting_loss(model: &str) -> &'static str {
    match model {
        "latent_model" => "latent_kl",
        "dynamics" => "multi_step",
        _ => "mle",
    }
}

fn loss_fits(ev: &mut Evaluator, agent: &Obj, model: &Obj, loss: &Obj) {
    if model.ctor.name == "true_env" {
        ignored(
            ev,
            agent,
            "model_loss",
            "`true_env` is the environment itself and is not trained",
        );
        return;
    }
    let fits = match (model.ctor.name, loss.ctor.name) {
        ("latent_model", l) => l == "latent_kl",
        ("factored_model", l) => l == "mle",
        ("dynamics", "latent_kl") => false,
        ("dynamics", "value_aware") => agent.ctor.name == "slbo",
        ("dynamics", _) => true,
        _ => true,
    };
    if fits {
        return;
    }
    let why = match loss.ctor.name {
        "value_aware" => format!(
            "a value-aware loss needs a value network, and `{}` has none",
            agent.ctor.name
        ),
        _ => format!(
            "`{}` does not train a `{}`",
            loss.ctor.name, model.ctor.name
        ),
    };
    let msg = format!(
        "loss `{}` does not fit model `{}`: {why}",
        loss.label, model.label
    );
    let diag = Diag::error(
        Code::IncompatibleLoss,
        msg,
        agent.span_of("model_loss"),
        "this loss",
    )
    .with_label(agent.span_of("model"), "this model")
    .with_help(format!(
        "use `model_loss: {}`",
        fitting_loss(model.ctor.name)
    ));
    ev.diags.push(diag);
}

/// Rules on a model block alone.
pub fn latent_fields(ev: &mut Evaluator, model: &Obj) {
    match model.enum_("latent") {
        Some("gaussian") => {
            if model.is_explicit("width") {
                ignored(ev, model, "width", "Gaussian latents have no classes");
            }
        }
        Some("categorical") => {
            for field in ["min_std", "std_act"] {
                if model.is_explicit(field) {
                    ignored(ev, model, field, "categorical latents have no std");
                }
            }
        }
        _ => (),
    }
}

fn slbo_rules(ev: &mut Evaluator, agent: &Obj) {
    within(ev, agent, "model_batch", "buffer");
    role(
        ev,
        agent,
        "policy",
        &["gaussian_policy"],
        "a Gaussian policy",
    );
    role(ev, agent, "value", &["mlp"], "a value network");
    role(
        ev,
        agent,
        "model",
        &["dynamics"],
        "a deterministic dynamics model",
    );
    if let (Some(model), Some(loss)) = (agent.obj("model"), agent.obj("model_loss")) {
        loss_fits(ev, agent, model, loss);
    }
    if let (Some(every), Some(iters)) = (agent.int("value_refit_every"), agent.int("model_iters")) {
        if every > iters {
            let msg = format!(
                "`value_refit_every` ({every}) exceeds `model_iters` ({iters}): V is never refit"
            );
            let diag = Diag::warning(
                Code::IgnoredField,
                msg,
                agent.span_of("value_refit_every"),
                "never reached",
            )
            .with_label(agent.span_of("model_iters"), "model updates per iteration")
            .with_help("use a value at most `model_iters`, e.g. 20, or 0 to switch refits off");
            ev.diags.push(diag);
        }
    }
    let (Some(trpo), Some(planner)) = (agent.obj("trpo"), agent.obj("planner")) else {
        return;
    };
    let samples = planner.int("envs").unwrap_or(0) * planner.int("length").unwrap_or(0);
    if let Some(batch) = trpo.int("vf_batch") {
        if samples > 0 && batch > samples {
            let msg = format!(
                "value minibatch of {batch} exceeds the {samples} virtual samples per TRPO step"
            );
            let diag = Diag::error(
                Code::BatchExceedsBuffer,
                msg,
                trpo.span_of("vf_batch"),
                "minibatch",
            )
            .with_label(planner.span, format!("{samples} samples per rollout"))
            .with_help("lower `vf_batch` or roll out more virtual steps");
            ev.diags.push(diag);
        }
    }
}

/// `eval_every` must divide the step budget, or the last evaluation is lost.
fn eval_interval(ev: &mut Evaluator, agent: &Obj) {
    let (Some(every), Some(steps)) = (agent.int("eval_every"), agent.int("steps")) else {
        return;
    };
    if every <= 0 || steps % every == 0 {
        return;
    }
    let msg = match every > steps {
        true => {
            format!("`eval_every` ({every}) exceeds `steps` ({steps}): nothing is ever evaluated")
        }
        false => format!("`eval_every` ({every}) does not divide `steps` ({steps})"),
    };
    let rest = steps % every;
    let diag = Diag::error(
        Code::EvalInterval,
        msg,
        agent.span_of("eval_every"),
        format!("every {every} steps"),
    )
    .with_label(agent.span_of("steps"), format!("{steps} steps"))
    .with_help(format!(
        "the last {rest} steps would go unevaluated; use `steps: {}`",
        steps - rest
    ));
    ev.diags.push(diag);
}

/// `small` must not exceed `large` (a minibatch and its buffer).
fn within(ev: &mut Evaluator, agent: &Obj, small: &str, large: &str) {
    let (Some(a), Some(b)) = (agent.int(small), agent.int(large)) else {
        return;
    };
    if a <= b {
        return;
    }
    let msg = format!("`{small}` of {a} exceeds the `{large}` of {b}");
    let diag = Diag::error(
        Code::BatchExceedsBuffer,
        msg,
        agent.span_of(small),
        "minibatch",
    )
    .with_label(agent.span_of(large), "capacity")
    .with_help(format!("raise `{large}` or lower `{small}`"));
    ev.diags.push(diag);
}

/// A model field must hold one of the constructors its role accepts.
fn role(ev: &mut Evaluator, agent: &Obj, field: &str, ctors: &[&str], what: &str) {
    let Some(model) = agent.obj(field) else {
        return;
    };
    if ctors.contains(&model.ctor.name) {
        return;
    }
    let allowed: Vec<String> = ctors.iter().map(|c| format!("`{c}`")).collect();
    let msg = format!("expected {what} for `{field}`, found `{}`", model.ctor.name);
    let diag = Diag::error(
        Code::TypeMismatch,
        msg,
        agent.span_of(field),
        format!("`{}` here", model.label),
    )
    .with_help(format!("`{field}` takes {}", allowed.join(" or ")));
    ev.diags.push(diag);
}

fn ignored(ev: &mut Evaluator, obj: &Obj, field: &str, why: &str) {
    let msg = format!("`{field}` has no effect: {why}");
    let diag = Diag::warning(Code::IgnoredField, msg, obj.span_of(field), "ignored")
        .with_help(format!("remove `{field}`"));
    ev.diags.push(diag);
}

fn episodic_only(ev: &mut Evaluator, agent: &Obj, env: &Obj, spaces: &EnvSpaces) {
    if spaces.episodic {
        return;
    }
    let settings = [
        ("planner", "weighting", "continuation", "auto"),
        ("eval", "metric", "episode_return", "auto"),
    ];
    for (block, field, value, fix) in settings {
        let Some(inner) = agent.obj(block) else {
            continue;
        };
        if inner.enum_(field) != Some(value) {
            continue;
        }
        let msg = format!(
            "`{field}: {value}` needs an episodic env, but `{}` never terminates",
            env.label
        );
        let diag = Diag::error(
            Code::EpisodicOnly,
            msg,
            inner.span_of(field),
            "episodic-only setting",
        )
        .with_label(env.span, "continuing env")
        .with_help(format!("use `{field}: {fix}`"));
        ev.diags.push(diag);
    }
}

/// Declared `input`/`output` sizes must match the inferred ones.
fn declared_shapes(ev: &mut Evaluator, agent: &Obj, env: &Obj, spaces: &EnvSpaces, nets: &[Net]) {
    let fields: &[(&str, &str)] = match agent.ctor.name {
        "dqn" => &[("q", "Q")],
        "slbo" => &[("value", "value")],
        _ => &[],
    };
    for (field, role) in fields {
        let (Some(model), Some(net)) = (agent.obj(field), nets.iter().find(|n| n.role == *role))
        else {
            continue;
        };
        for (side, inferred, why) in [
            ("input", net.input, input_reason(agent, spaces)),
            ("output", net.output, output_reason(role, spaces)),
        ] {
            let Some(declared) = model.int(side) else {
                continue;
            };
            if declared as usize == inferred {
                continue;
            }
            let msg = format!(
                "`{}` declares {side} {declared}, but {why} gives {inferred}",
                model.label
            );
            let diag = Diag::error(
                Code::ShapeMismatch,
                msg,
                model.span_of(side),
                format!("declared {declared}"),
            )
            .with_label(
                env.span,
                format!(
                    "obs {}, actions {}",
                    spaces.describe_obs(),
                    spaces.action.describe()
                ),
            )
            .with_help(format!(
                "write `{side}: {inferred}` or leave it out to infer it"
            ));
            ev.diags.push(diag);
        }
    }
}

fn input_reason(agent: &Obj, spaces: &EnvSpaces) -> String {
    match agent.obj("model") {
        Some(m) if m.ctor.name == "latent_model" => format!("the latent of `{}`", m.label),
        _ => format!("the observation ({})", spaces.describe_obs()),
    }
}

fn output_reason(role: &str, spaces: &EnvSpaces) -> String {
    match role {
        "Q" => format!("one Q-value per action ({})", spaces.action.describe()),
        _ => "a scalar value".to_string(),
    }
}

/// Transitions each Q update trains on: replay batch, or starts x rollout length.
pub fn q_update_batch(agent: &Obj) -> Option<i64> {
    if agent.ctor.name != "dqn" {
        return None;
    }
    match agent.obj("planner") {
        Some(p) if p.ctor.name == "model_rollouts" => Some(p.int("starts")? * p.int("length")?),
        _ => agent.int("batch"),
    }
}
