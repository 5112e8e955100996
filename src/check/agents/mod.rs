//! What `check` knows per agent kind: the networks an agent builds in an
//! env (shape inference), its budget, the actions it needs, and its
//! cross-field rules. One module per kind; this file dispatches on the
//! constructor and holds nothing kind-specific itself.

mod dqn;
mod slbo;

use crate::check::eval::Evaluator;
use crate::check::shapes::Net;
use crate::check::value::Obj;
use crate::schema::EnvSpaces;

/// The networks `agent` builds in an env with these spaces (none when the
/// action space does not fit; that is reported elsewhere).
pub fn nets(agent: &Obj, spaces: &EnvSpaces) -> Vec<Net> {
    match agent.ctor.name {
        "dqn" => dqn::nets(agent, spaces),
        "slbo" => slbo::nets(agent, spaces),
        _ => Vec::new(),
    }
}

/// The kind's rules on an agent block, in any env.
pub fn rules(ev: &mut Evaluator, agent: &Obj) {
    match agent.ctor.name {
        "dqn" => dqn::rules(ev, agent),
        "slbo" => slbo::rules(ev, agent),
        _ => (),
    }
}

/// Env steps one seed takes, and the gradient updates of its main learner.
pub fn budget(agent: &Obj) -> (u64, u64) {
    match agent.ctor.name {
        "dqn" => dqn::budget(agent),
        "slbo" => slbo::budget(agent),
        _ => (agent.int("steps").unwrap_or(0).max(0) as u64, 0),
    }
}

/// The action space the kind acts in: `Some("discrete")` or `Some("continuous")`.
pub fn needs_actions(agent: &Obj) -> Option<&'static str> {
    match agent.ctor.name {
        "dqn" => Some("discrete"),
        "slbo" => Some("continuous"),
        _ => None,
    }
}

/// `(field, network role)` of the blocks whose declared `input`/`output` sizes are checked.
pub fn declared_nets(agent: &Obj) -> &'static [(&'static str, &'static str)] {
    match agent.ctor.name {
        "dqn" => &[("q", "Q")],
        "slbo" => &[("value", "value")],
        _ => &[],
    }
}

/// Transitions each Q update trains on (replay batch, or starts x rollout
/// length), for agents that have a Q.
pub fn q_update_batch(agent: &Obj) -> Option<i64> {
    match agent.ctor.name {
        "dqn" => dqn::q_update_batch(agent),
        _ => None,
    }
}
