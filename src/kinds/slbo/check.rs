//! SLBO in `check`: the policy, value and dynamics networks, the budget of
//! stages, and the rules on its loss, refits and TRPO batch.

use crate::check::common::{ignored, loss_fits, mlp_init, role, unsupported, within};
use crate::check::eval::Evaluator;
use crate::check::shapes::{net, Net};
use crate::check::Obj;
use crate::diagnostics::{Code, Diag};
use crate::schema::{ActionSpace, EnvSpaces};

use crate::autodiff::ir::{Axis, Callable, Input, Signature};

/// What an SLBO model loss written as an expression may name (vaslbo spec
/// §4): the batch of `horizon`-step sequences in raw units, the normalizers'
/// scales, the model, and the frozen value network.
pub static LOSS_SIGNATURE: Signature = Signature {
    learner: "slbo",
    inputs: &[
        Input {
            name: "s",
            axes: &[Axis::Horizon, Axis::Batch, Axis::State],
            doc: "the sequences' states, step by step (raw units)",
        },
        Input {
            name: "a",
            axes: &[Axis::Horizon, Axis::Batch, Axis::Action],
            doc: "the actions taken in them",
        },
        Input {
            name: "s_next",
            axes: &[Axis::Horizon, Axis::Batch, Axis::State],
            doc: "the states they led to",
        },
        Input {
            name: "mask",
            axes: &[Axis::Horizon, Axis::Batch],
            doc: "0 where the step ended an episode or a chunk (the model must not roll through it), else 1",
        },
        Input {
            name: "diff_std",
            axes: &[Axis::State],
            doc: "the running standard deviation of state deltas `s_next - s` (at least 1e-6)",
        },
        Input {
            name: "state_std",
            axes: &[Axis::State],
            doc: "the running standard deviation of states (at least 1e-8)",
        },
    ],
    callables: &[
        Callable {
            name: "model",
            doc: "`model(s, a)`: the dynamics model's next state (rows of states and actions); trained",
            args: &[Axis::State, Axis::Action],
            out: Some(Axis::State),
            trained: true,
            through: true,
        },
        Callable {
            name: "V",
            doc: "`V(x)`: the value network on rows of states, frozen (the gradient reaches its input, never its weights)",
            args: &[Axis::State],
            out: None,
            trained: false,
            through: true,
        },
        Callable {
            name: "dV",
            doc: "`dV(x)`: the value network's gradient with respect to its input state, a constant weight (no gradient through it)",
            args: &[Axis::State],
            out: Some(Axis::State),
            trained: false,
            through: false,
        },
    ],
};

/// Env steps one seed takes, and the model and policy updates it makes.
pub(super) fn budget(agent: &Obj) -> (u64, u64) {
    let int = |f: &str| agent.int(f).unwrap_or(0).max(0) as u64;
    let steps = int("stages") * int("steps_per_stage");
    let updates = int("stages") * int("iters") * (int("model_iters") + int("policy_iters"));
    (steps, updates)
}

pub(super) fn nets(agent: &Obj, spaces: &EnvSpaces) -> Vec<Net> {
    let ActionSpace::Continuous(act) = spaces.action else {
        return Vec::new();
    };
    let obs = spaces.obs_dim;
    let mut nets = Vec::new();
    if let Some(policy) = agent.obj("policy") {
        let mut p = net("policy", policy, obs, act);
        p.extra_params = act;
        nets.push(p);
    }
    if let Some(value) = agent.obj("value") {
        nets.push(net("value", value, obs, 1));
    }
    if let Some(model) = agent.obj("model") {
        nets.push(net("dynamics", model, obs + act, obs));
    }
    nets
}

pub(super) fn rules(ev: &mut Evaluator, agent: &Obj) {
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
        "model_optimizer",
        &["adam"],
        "Adam with L2 and clipping (`adam`)",
    );
    role(
        ev,
        agent,
        "model",
        &["dynamics"],
        "a deterministic dynamics model",
    );
    role(
        ev,
        agent,
        "planner",
        &["virtual_rollouts"],
        "virtual rollouts in the model",
    );
    if let (Some(model), Some(loss)) = (agent.obj("model"), agent.obj("model_loss")) {
        loss_fits(ev, agent, model, loss);
    }
    if let Some(loss) = agent.obj("model_loss").filter(|l| l.ctor.name == "mle") {
        for field in ["reward_weight", "continuation_weight", "obs_weight"] {
            if loss.is_explicit(field) {
                ignored(
                    ev,
                    loss,
                    field,
                    "a dynamics model's MLE is the next state's squared error",
                );
            }
        }
    }
    if let Some(value) = agent.obj("value").filter(|v| v.ctor.name == "mlp") {
        mlp_init(ev, value);
    }
    if let Some(policy) = agent
        .obj("policy")
        .filter(|p| p.ctor.name == "gaussian_policy")
    {
        if policy.enum_("init").is_some_and(|i| i != "normc") {
            unsupported(
                ev,
                policy,
                "init",
                "the policy's layers are normc-initialised, the mean's output layer at `output_init_scale` (vaslbo spec §2.2)",
                "use `init: normc`",
            );
        }
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
