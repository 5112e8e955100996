//! Cross-field rules: what a careful researcher would want caught before a
//! run starts. Block rules need only the agent; cell rules also see the env.

use crate::check::eval::Evaluator;
use crate::check::shapes::Net;
use crate::check::value::Obj;
use crate::diagnostics::{Code, Diag};
use crate::kinds::{self, Actions};
use crate::schema::{ActionSpace, EnvSpaces, ObsKind};

/// Rules on an agent (and its nested blocks) that hold in any env.
pub fn block_rules(ev: &mut Evaluator, agent: &Obj) {
    kinds::of(agent).rules(ev, agent);
    eval_interval(ev, agent);
}

/// Rules on an agent in a given env: spaces, shapes, episodic-only settings.
pub fn cell_rules(ev: &mut Evaluator, agent: &Obj, env: &Obj, spaces: &EnvSpaces, nets: &[Net]) {
    block_rules(ev, agent);
    let fits = |needed| match needed {
        Actions::Discrete => matches!(spaces.action, ActionSpace::Discrete(_)),
        Actions::Continuous => matches!(spaces.action, ActionSpace::Continuous(_)),
        Actions::Any => true,
    };
    let needed = kinds::of(agent).actions();
    if !fits(needed) {
        let msg = format!(
            "`{}` needs {} actions, but `{}` has {}",
            agent.ctor.name,
            needed.name(),
            env.label,
            spaces.action.describe()
        );
        // The kinds that act in this env's actions.
        let other = |acts: Actions| {
            let names: Vec<String> = kinds::all()
                .filter(|k| k.actions() == acts)
                .map(|k| format!("`{}`", k.schema().name))
                .collect();
            names.join(" or ")
        };
        let help = match needed {
            Actions::Discrete => format!(
                "use {} on continuous-control envs",
                other(Actions::Continuous)
            ),
            _ => format!(
                "use a {} agent on the grid worlds",
                other(Actions::Discrete)
            ),
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
    for (field, role) in kinds::of(agent).declared_nets() {
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
