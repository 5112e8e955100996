//! The `slbo` kind: SLBO (Luo et al. 2019) with the value-aware model losses
//! of the vaslbo study. A dynamics model is fitted on real data and a
//! Gaussian policy is improved by TRPO in the model.
//!
//! Its folder: `schema.rs` (the constructor), `check.rs` (networks, budget,
//! rules), `lower.rs` (its dataflow graph), `plan.rs` (the typed plan, its
//! metrics and cost) and `learner/` (the seed-batched learner).

mod check;
pub mod learner;
mod lower;
mod plan;
mod schema;

use crate::check::eval::Evaluator;
use crate::check::{Cell, Net, Obj};
use crate::compile::{CompileError, Cost, Plan, Schedule};
use crate::diagnostics::{Code, Diag};
use crate::graph::{Graph, NodeId};
use crate::kinds::{Actions, AgentKind, AgentPlan, KindPlan};
use crate::runtime::driver::{self, Outcome, Progress, RunError, Session};
use crate::schema::{Ctor, EnvSpaces};
use crate::source::Span;

pub use plan::{
    DynamicsPlan, Metric, NetPlan, Noise, PolicyPlan, Predicts, SlboAdam, SlboCompat, SlboLoss,
    SlboPlan, Start, TrpoPlan,
};

/// The `slbo` kind.
pub struct Slbo;

impl AgentKind for Slbo {
    fn schema(&self) -> &'static Ctor {
        &schema::CTOR
    }

    fn actions(&self) -> Actions {
        Actions::Continuous
    }

    fn codebase(&self) -> Option<&'static str> {
        Some("vaslbo")
    }

    fn has_value_function(&self) -> bool {
        true
    }

    fn loss_signature(&self) -> Option<&'static crate::autodiff::Signature> {
        Some(&check::LOSS_SIGNATURE)
    }

    fn trains(&self) -> bool {
        true
    }

    fn declared_nets(&self) -> &'static [(&'static str, &'static str)] {
        &[("value", "value")]
    }

    fn nets(&self, agent: &Obj, spaces: &EnvSpaces) -> Vec<Net> {
        crate::check::shapes::at_agent_precision(agent, check::nets(agent, spaces))
    }

    fn rules(&self, ev: &mut Evaluator, agent: &Obj) {
        check::rules(ev, agent)
    }

    fn compat_refusal(&self, compat: &str, at: Span, agent: &Obj) -> Option<Diag> {
        let loss = agent.obj("model_loss")?;
        if compat != "vaslbo" || loss.ctor.name != "mle" {
            return None;
        }
        let msg = "`compat: vaslbo` cannot run SLBO's `mle` loss: the released code's mle mode crashes before its first model step (vaslbo spec §9.1)";
        let diag = Diag::error(Code::UnsupportedValue, msg, at, "the released code")
            .with_label(agent.span_of("model_loss"), "mle loss")
            .with_help("remove `compat` to run the intended MLE loss (spec §4.2)");
        Some(diag)
    }

    fn budget(&self, agent: &Obj) -> (u64, u64) {
        check::budget(agent)
    }

    fn q_update_batch(&self, _agent: &Obj) -> Option<i64> {
        None
    }

    fn lower(&self, g: &mut Graph, cell: &Cell, env: NodeId, s: &str) {
        lower::lower(g, cell, env, s)
    }

    fn compile(&self, graph: &Graph) -> Result<(Schedule, AgentPlan), CompileError> {
        let (schedule, plan) = plan::compile(graph)?;
        Ok((schedule, AgentPlan::new(plan)))
    }
}

impl KindPlan for SlboPlan {
    fn kind(&self) -> &'static dyn AgentKind {
        &Slbo
    }

    fn metrics(&self) -> Vec<&'static str> {
        self.metric_names()
    }

    fn cost(&self, schedule: &Schedule) -> Cost {
        plan::cost(self, schedule)
    }

    /// By its loss; a loss written as an expression trains at MLE's rate
    /// (its model passes are the same; the stage's other 80% does not
    /// depend on the loss).
    fn rate_class(&self) -> Option<&'static str> {
        Some(match self.loss {
            SlboLoss::MultiStep { .. } => "slbo_l2",
            SlboLoss::Mle { .. } | SlboLoss::Expr { .. } => "slbo_mle",
            SlboLoss::ValueAware { squared: false, .. } => "slbo_ma_l1",
            SlboLoss::ValueAware { squared: true, .. } => "slbo_vaml",
        })
    }

    fn precision(&self) -> crate::tensor::Precision {
        [&self.policy.mean, &self.value, &self.dynamics.net]
            .iter()
            .map(|n| n.precision)
            .max()
            .unwrap_or_default()
    }

    fn updates_per_step(&self) -> (u64, f64) {
        let per_stage = self.iters * (self.model_iters + self.policy_iters);
        (0, per_stage as f64 / self.steps_per_stage.max(1) as f64)
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
        let agent = learner::Slbo { plan, slbo: self };
        driver::run(&agent, plan, threads, session, progress)
    }
}
