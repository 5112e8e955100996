//! The `random` kind: uniformly random actions, nothing to learn. It is the
//! level every learning curve is read against (the `random` reference line
//! of a report is this agent's score).
//!
//! Its folder: `schema.rs` (the constructor), `learner.rs`; its lowering and
//! plan are small enough to live here.

mod learner;
mod schema;

use crate::check::eval::Evaluator;
use crate::check::{Cell, Net, Obj};
use crate::compile::{need, CompileError, Cost, Plan, Schedule, Settings};
use crate::diagnostics::Diag;
use crate::graph::lower::{act_dim, evaluator, schedule};
use crate::graph::{Graph, NodeId, NodeKind};
use crate::kinds::{Actions, AgentKind, AgentPlan, KindPlan};
use crate::runtime::driver::{self, Outcome, Progress, RunError, Session};
use crate::schema::{Ctor, EnvSpaces};
use crate::source::Span;

pub use learner::RandomLearner;

/// The kind's name: also the name of the report's reference line that draws
/// its score.
pub const NAME: &str = "random";

/// The `random` kind.
pub struct Random;

/// A compiled random cell: nothing to configure.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct RandomPlan;

crate::kinds::metrics! {
    /// The random agent reports its evaluations only.
    pub enum Metric {}
}

impl AgentKind for Random {
    fn schema(&self) -> &'static Ctor {
        &schema::CTOR
    }

    fn actions(&self) -> Actions {
        Actions::Any
    }

    fn codebase(&self) -> Option<&'static str> {
        None
    }

    fn has_value_function(&self) -> bool {
        false
    }

    fn loss_signature(&self) -> Option<&'static crate::autodiff::Signature> {
        None
    }

    fn trains(&self) -> bool {
        false
    }

    fn declared_nets(&self) -> &'static [(&'static str, &'static str)] {
        &[]
    }

    fn nets(&self, _agent: &Obj, _spaces: &EnvSpaces) -> Vec<Net> {
        Vec::new()
    }

    fn rules(&self, _ev: &mut Evaluator, _agent: &Obj) {}

    fn compat_refusal(&self, _compat: &str, _at: Span, _agent: &Obj) -> Option<Diag> {
        None
    }

    fn budget(&self, agent: &Obj) -> (u64, u64) {
        (agent.int("steps").unwrap_or(0).max(0) as u64, 0)
    }

    fn q_update_batch(&self, _agent: &Obj) -> Option<i64> {
        None
    }

    /// Uniform actions, evaluated every `eval_every` steps.
    fn lower(&self, g: &mut Graph, cell: &Cell, env: NodeId, s: &str) {
        let a = &cell.agent;
        schedule(g, a, &["steps", "eval_every"]);
        let policy = g.add(
            NodeKind::Policy,
            "policy",
            "uniform",
            "random actions",
            Vec::new(),
        );
        g.connect(
            policy,
            env,
            "action",
            &[s.to_string(), "1".into(), act_dim(cell)],
        );
        evaluator(g, a, policy, s, "uniform actions");
    }

    fn compile(&self, graph: &Graph) -> Result<(Schedule, AgentPlan), CompileError> {
        let s = need(graph, "schedule")?;
        let schedule = Schedule {
            units: s.need_count("steps")?,
            steps_per_unit: 1,
            eval_every: s.need_count("eval_every")?.max(1),
            save_every: s.need_count("eval_every")?.max(1),
            eval_at_start: false,
        };
        Ok((schedule, AgentPlan::new(RandomPlan)))
    }
}

impl KindPlan for RandomPlan {
    fn kind(&self) -> &'static dyn AgentKind {
        &Random
    }

    fn metrics(&self) -> Vec<&'static str> {
        Metric::NAMES.to_vec()
    }

    fn cost(&self, _schedule: &Schedule) -> Cost {
        Cost::default()
    }

    fn precision(&self) -> crate::tensor::Precision {
        crate::tensor::Precision::Fp32
    }

    fn updates_per_step(&self) -> (u64, f64) {
        (0, 0.0)
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
        driver::run(&learner::Random, plan, threads, session, progress)
    }
}
