//! The `dqn` kind: the Young et al. (2022) DQN family. Q trains on replay
//! (ER), on rollouts of the true env (the perfect model) or on rollouts of a
//! learned model (simple, Gaussian and categorical latent models).
//!
//! Its folder: `schema.rs` (the constructor), `check.rs` (networks, budget,
//! rules), `lower.rs` (its dataflow graph), `plan.rs` (the typed plan and its
//! cost) and `learner/` (the seed-batched learner the driver runs).

mod check;
pub mod learner;
mod lower;
mod plan;
mod schema;

use crate::check::eval::Evaluator;
use crate::check::{Cell, Net, Obj};
use crate::compile::{CompileError, Cost, Plan, Schedule};
use crate::diagnostics::Diag;
use crate::graph::{Graph, NodeId};
use crate::kinds::{Actions, AgentKind, AgentPlan, KindPlan};
use crate::runtime::driver::{self, Outcome, Progress, RunError, Session};
use crate::schema::{Ctor, EnvSpaces};
use crate::source::Span;

pub use plan::{
    Compat, DqnPlan, Exploration, Latent, LearnedPlan, Metric, ModelKind, ModelLoss, ModelPlan,
    ObsHead, Rollouts,
};

/// The `dqn` kind.
pub struct Dqn;

impl AgentKind for Dqn {
    fn schema(&self) -> &'static Ctor {
        &schema::CTOR
    }

    fn actions(&self) -> Actions {
        Actions::Discrete
    }

    fn codebase(&self) -> Option<&'static str> {
        Some("young2022")
    }

    fn has_value_function(&self) -> bool {
        false
    }

    fn loss_signature(&self) -> Option<&'static crate::autodiff::Signature> {
        None
    }

    fn trains(&self) -> bool {
        true
    }

    fn declared_nets(&self) -> &'static [(&'static str, &'static str)] {
        &[("q", "Q")]
    }

    fn nets(&self, agent: &Obj, spaces: &EnvSpaces) -> Vec<Net> {
        crate::check::shapes::at_agent_precision(agent, check::nets(agent, spaces))
    }

    fn rules(&self, ev: &mut Evaluator, agent: &Obj) {
        check::rules(ev, agent)
    }

    fn compat_refusal(&self, _compat: &str, _at: Span, _agent: &Obj) -> Option<Diag> {
        None
    }

    fn budget(&self, agent: &Obj) -> (u64, u64) {
        check::budget(agent)
    }

    fn q_update_batch(&self, agent: &Obj) -> Option<i64> {
        check::q_update_batch(agent)
    }

    fn lower(&self, g: &mut Graph, cell: &Cell, env: NodeId, s: &str) {
        lower::lower(g, cell, env, s)
    }

    fn compile(&self, graph: &Graph) -> Result<(Schedule, AgentPlan), CompileError> {
        let (schedule, plan) = plan::compile(graph)?;
        Ok((schedule, AgentPlan::new(plan)))
    }
}

impl KindPlan for DqnPlan {
    fn kind(&self) -> &'static dyn AgentKind {
        &Dqn
    }

    fn metrics(&self) -> Vec<&'static str> {
        Metric::NAMES.to_vec()
    }

    fn cost(&self, schedule: &Schedule) -> Cost {
        plan::cost(self, schedule)
    }

    fn rate_class(&self) -> Option<&'static str> {
        use plan::{Latent, ModelKind, ModelPlan};
        Some(match &self.model {
            None => "er",
            Some(ModelPlan::TrueEnv) => "perfect_model",
            Some(ModelPlan::Learned(m)) => match m.kind {
                ModelKind::Factored { .. } => "simple_model",
                ModelKind::Latent(Latent::Categorical { .. }) => "categorical_latent",
                ModelKind::Latent(Latent::Gaussian { .. }) => "gaussian_latent",
            },
        })
    }

    fn precision(&self) -> crate::tensor::Precision {
        self.precision
    }

    fn updates_per_step(&self) -> (u64, f64) {
        (self.learning_starts, self.updates_per_step as f64)
    }

    fn canonical(&self) -> String {
        crate::compile::canonical(self)
    }

    fn run(
        &self,
        plan: &Plan,
        threads: usize,
        session: Session,
        progress: Progress,
    ) -> Result<Outcome, RunError> {
        let agent = learner::Dqn { plan, dqn: self };
        driver::run(&agent, plan, threads, session, progress)
    }
}
