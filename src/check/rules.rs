//! Cross-field rules: what a careful researcher would want caught before a
//! run starts. Block rules need only the agent; cell rules also see the env.

use crate::check::agents;
use crate::check::eval::Evaluator;
use crate::check::shapes::Net;
use crate::check::value::Obj;
use crate::diagnostics::{Code, Diag};
use crate::schema::{ActionSpace, EnvSpaces, ObsKind};

/// Rules on an agent (and its nested blocks) that hold in any env.
pub fn block_rules(ev: &mut Evaluator, agent: &Obj) {
    agents::rules(ev, agent);
    eval_interval(ev, agent);
}

/// Rules on an agent in a given env: spaces, shapes, episodic-only settings.
pub fn cell_rules(ev: &mut Evaluator, agent: &Obj, env: &Obj, spaces: &EnvSpaces, nets: &[Net]) {
    block_rules(ev, agent);
    let fits = |needed| match needed {
        "discrete" => matches!(spaces.action, ActionSpace::Discrete(_)),
        _ => matches!(spaces.action, ActionSpace::Continuous(_)),
    };
    if let Some(needed) = agents::needs_actions(agent).filter(|n| !fits(*n)) {
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

pub(super) fn fitting_loss(model: &str) -> &'static str {
    match model {
        "latent_model" => "latent_kl",
        "dynamics" => "multi_step",
        _ => "mle",
    }
}

pub(super) fn loss_fits(ev: &mut Evaluator, agent: &Obj, model: &Obj, loss: &Obj) {
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
    if model.is_set("latent") && model.enum_("obs") == Some("gaussian") {
        unsupported(
            ev,
            model,
            "obs",
            "latent models decode Bernoulli observations only",
            "use `obs: bernoulli`, or a `factored_model` for real-valued observations",
        );
    }
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
pub(super) fn within(ev: &mut Evaluator, agent: &Obj, small: &str, large: &str) {
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
pub(super) fn role(ev: &mut Evaluator, agent: &Obj, field: &str, ctors: &[&str], what: &str) {
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

/// A value the runtime does not implement where it is used: an error, with the way out.
pub(super) fn unsupported(ev: &mut Evaluator, obj: &Obj, field: &str, why: &str, fix: &str) {
    let value = obj
        .get(field)
        .map(|f| f.value.describe())
        .unwrap_or_default();
    let msg = format!("`{field}: {value}` is not supported here: {why}");
    let diag = Diag::error(
        Code::UnsupportedValue,
        msg,
        obj.span_of(field),
        "not supported",
    )
    .with_help(fix);
    ev.diags.push(diag);
}

pub(super) fn ignored(ev: &mut Evaluator, obj: &Obj, field: &str, why: &str) {
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
    for (field, role) in agents::declared_nets(agent) {
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
