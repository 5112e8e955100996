//! Rule helpers shared by the per-agent rules (`check::agents`) and the
//! cell rules: a minibatch within its buffer, a block's allowed
//! constructors, a model loss that fits its model, the latent model's
//! fields, and the two ways to answer a setting: moot (a warning) or not
//! implemented (an error).

use crate::check::eval::Evaluator;
use crate::check::value::Obj;
use crate::diagnostics::{Code, Diag};

pub fn fitting_loss(model: &str) -> &'static str {
    match model {
        "latent_model" => "latent_kl",
        "dynamics" => "multi_step",
        _ => "mle",
    }
}

pub fn loss_fits(ev: &mut Evaluator, agent: &Obj, model: &Obj, loss: &Obj) {
    if loss.ctor.name == "expression" {
        match crate::kinds::of(agent).loss_signature() {
            Some(sig) => crate::check::loss::check_for(ev, agent, loss, sig),
            None => {
                let msg = format!(
                    "`{}` trains its model with built-in losses only; a loss written as an expression is for a learner that provides names to it (SLBO)",
                    agent.ctor.name
                );
                let diag = Diag::error(
                    Code::LossLearner,
                    msg,
                    agent.span_of("model_loss"),
                    "an expression loss",
                )
                .with_label(loss.span, "written as an expression")
                .with_help(format!(
                    "use `model_loss: {}`",
                    fitting_loss(model.ctor.name)
                ));
                ev.diags.push(diag);
            }
        }
        return;
    }
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
        ("dynamics", "value_aware") => crate::kinds::of(agent).has_value_function(),
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
        Some("gaussian") if model.is_explicit("width") => {
            ignored(ev, model, "width", "Gaussian latents have no classes");
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

/// `small` must not exceed `large` (a minibatch and its buffer).
pub fn within(ev: &mut Evaluator, agent: &Obj, small: &str, large: &str) {
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
pub fn role(ev: &mut Evaluator, agent: &Obj, field: &str, ctors: &[&str], what: &str) {
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
pub fn unsupported(ev: &mut Evaluator, obj: &Obj, field: &str, why: &str, fix: &str) {
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

pub fn ignored(ev: &mut Evaluator, obj: &Obj, field: &str, why: &str) {
    let msg = format!("`{field}` has no effect: {why}");
    let diag = Diag::warning(Code::IgnoredField, msg, obj.span_of(field), "ignored")
        .with_help(format!("remove `{field}`"));
    ev.diags.push(diag);
}

/// An `mlp`'s `init` must be one the runtime implements without a std.
pub fn mlp_init(ev: &mut Evaluator, mlp: &Obj) {
    if mlp.enum_("init") == Some("truncated_normal") {
        unsupported(
            ev,
            mlp,
            "init",
            "a truncated normal needs a std, and an `mlp` has none",
            "use `init: haiku` (a truncated normal with std 1/sqrt(fan_in)), `normc` or `glorot`",
        );
    }
}
