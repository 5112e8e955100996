//! Agent kinds: the registry, and one folder per kind.
//!
//! An agent kind (`dqn`, `slbo`, `random`) is one value implementing
//! [`AgentKind`]: its schema entry, its check rules, the networks it builds
//! and its budget, its lowering to the dataflow graph, its compilation to a
//! typed plan ([`KindPlan`]: metrics, cost, the learner it runs). [`BUILT_IN`]
//! lists the kinds; [`lookup`] is the one place a constructor's name becomes
//! a kind, and an unknown name is an error there, never a fallback.
//!
//! A new kind is a folder here (its `schema.rs`, `check.rs`, `lower.rs`,
//! `plan.rs` and `learner/`) and one line in [`BUILT_IN`]. Every method of
//! both traits is required, so a kind that forgets one does not compile.
//! Tests add kinds of their own with [`register`].
//!
//! Layering: this is the plug-in layer. The stages (`check`, `graph`,
//! `compile`, `runtime`) know no kind by name; they ask this registry, and
//! the kinds' code uses the stages' building blocks (`check`'s evaluator,
//! `graph`'s lowering helpers, `compile`'s schedule, `runtime`'s driver).
//! Nothing outside a kind's folder matches on a kind's name.

pub mod dqn;
pub mod random;
pub mod slbo;
#[cfg(test)]
mod tests;

use std::any::Any;
use std::fmt;
use std::sync::RwLock;

use crate::check::eval::Evaluator;
use crate::check::{Cell, Net, Obj};
use crate::compile::{CompileError, Cost, Plan, Schedule};
use crate::diagnostics::Diag;
use crate::graph::{Graph, NodeId};
use crate::runtime::driver::{Outcome, Progress, RunError, Session};
use crate::schema::{Ctor, EnvSpaces};
use crate::source::Span;

/// The kinds mbrl ships, in the order `mbrl describe` lists them.
pub static BUILT_IN: &[&dyn AgentKind] = &[&dqn::Dqn, &slbo::Slbo, &random::Random];

/// The action space a kind acts in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Actions {
    Discrete,
    Continuous,
    /// Either (the random agent).
    Any,
}

impl Actions {
    pub fn name(self) -> &'static str {
        match self {
            Actions::Discrete => "discrete",
            Actions::Continuous => "continuous",
            Actions::Any => "any",
        }
    }
}

/// Everything mbrl knows about one kind of agent, from its constructor in
/// the language to the learner that runs it. No method has a default.
pub trait AgentKind: Sync + 'static {
    /// Its constructor: name, doc, and every field with type, unit, range and
    /// default. The defaults live here only.
    fn schema(&self) -> &'static Ctor;

    /// The action space it acts in.
    fn actions(&self) -> Actions;

    /// The `compat` mode that reproduces its reference codebase, if any.
    fn codebase(&self) -> Option<&'static str>;

    /// Whether it trains a value function that a model loss may use
    /// (the value-aware losses).
    fn has_value_function(&self) -> bool;

    /// What its model losses written as expressions may name (inputs and
    /// networks), or `None` when it takes built-in losses only.
    fn loss_signature(&self) -> Option<&'static crate::autodiff::Signature>;

    /// Whether it learns: `mbrl eval` evaluates the kinds that do not
    /// without a run.
    fn trains(&self) -> bool;

    /// `(field, network role)` of the blocks whose declared `input`/`output`
    /// sizes `check` compares with the inferred ones.
    fn declared_nets(&self) -> &'static [(&'static str, &'static str)];

    /// The networks an agent of this kind builds in an env with these spaces.
    fn nets(&self, agent: &Obj, spaces: &EnvSpaces) -> Vec<Net>;

    /// Its cross-field rules on an agent block, in any env.
    fn rules(&self, ev: &mut Evaluator, agent: &Obj);

    /// Why an agent block cannot run under the experiment's `compat` mode
    /// (written at `at`), if it cannot; `check` reports the grid's first.
    fn compat_refusal(&self, compat: &str, at: Span, agent: &Obj) -> Option<Diag>;

    /// Env steps one seed takes, and its main learner's gradient updates.
    fn budget(&self, agent: &Obj) -> (u64, u64);

    /// Transitions each Q update trains on, for kinds with a Q network
    /// (Young et al. hold it fixed across agents).
    fn q_update_batch(&self, agent: &Obj) -> Option<i64>;

    /// Adds its nodes to the graph of `cell`, beside the `env` node; `s` is
    /// the seed dimension's label.
    fn lower(&self, g: &mut Graph, cell: &Cell, env: NodeId, s: &str);

    /// Reads its nodes of a cell's graph into its schedule and typed plan.
    fn compile(&self, graph: &Graph) -> Result<(Schedule, AgentPlan), CompileError>;
}

/// A compiled agent: one kind's typed plan, and what the pipeline asks of it.
pub trait KindPlan: AnyPlan + fmt::Debug + Send + Sync + 'static {
    /// The kind it was compiled by.
    fn kind(&self) -> &'static dyn AgentKind;

    /// The metrics its learner reports, in column order, `eval` first.
    fn metrics(&self) -> Vec<&'static str>;

    /// Compute and memory of one seed under `schedule`.
    fn cost(&self, schedule: &Schedule) -> Cost;

    /// The class of measured rate its cost runs at (`crate::runs::rates`):
    /// the `mbrl bench` agent it trains like; `None` when it trains nothing.
    fn rate_class(&self) -> Option<&'static str> {
        None
    }

    /// The arithmetic of its networks' products: a run refuses `bf16`
    /// before it starts where the machine cannot multiply in it.
    fn precision(&self) -> crate::tensor::Precision;

    /// `(learning_starts, gradient updates per env step)`: how a plot's
    /// `x: updates` reads an env step.
    fn updates_per_step(&self) -> (u64, f64);

    /// The plan's canonical serialization (field names and values), hashed
    /// into the run's identity.
    fn canonical(&self) -> String;

    /// Runs every seed of `plan` (whose agent this is) with its learner.
    fn run(
        &self,
        plan: &Plan,
        threads: usize,
        session: Session,
        progress: Progress,
    ) -> Result<Outcome, RunError>;
}

/// What every plan gets for being `Clone`: a copy and a typed view behind
/// the trait object ([`AgentPlan::get`]).
pub trait AnyPlan {
    fn as_any(&self) -> &dyn Any;
    fn as_any_mut(&mut self) -> &mut dyn Any;
    fn clone_plan(&self) -> Box<dyn KindPlan>;
}

impl<P: KindPlan + Clone> AnyPlan for P {
    fn as_any(&self) -> &dyn Any {
        self
    }

    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }

    fn clone_plan(&self) -> Box<dyn KindPlan> {
        Box::new(self.clone())
    }
}

/// Declares a kind's metrics as an enum whose order is the column order,
/// `Eval` first: `metrics! { pub enum Metric { QLoss = "q_loss" } }` gives
/// `Metric::NAMES` (`["eval", "q_loss"]`) and `Metric::QLoss.index()`, so
/// names and positions cannot drift apart.
macro_rules! metrics {
    ($(#[$meta:meta])* $vis:vis enum $name:ident {
        $($(#[$vmeta:meta])* $variant:ident = $text:literal),* $(,)?
    }) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        $vis enum $name {
            /// The evaluation protocol's score (the driver's column 0).
            #[allow(dead_code)]
            Eval,
            $($(#[$vmeta])* $variant),*
        }

        impl $name {
            /// The column names, in order.
            pub const NAMES: &'static [&'static str] = &["eval", $($text),*];

            /// The column of this metric.
            pub const fn index(self) -> usize {
                self as usize
            }
        }
    };
}
pub(crate) use metrics;

/// The agent part of a [`Plan`]: a kind's typed plan behind [`KindPlan`].
pub struct AgentPlan(Box<dyn KindPlan>);

impl AgentPlan {
    pub fn new<P: KindPlan>(plan: P) -> AgentPlan {
        AgentPlan(Box::new(plan))
    }

    /// The typed plan, if it is a `P`.
    pub fn get<P: KindPlan>(&self) -> Option<&P> {
        self.0.as_any().downcast_ref()
    }

    pub fn get_mut<P: KindPlan>(&mut self) -> Option<&mut P> {
        self.0.as_any_mut().downcast_mut()
    }
}

impl std::ops::Deref for AgentPlan {
    type Target = dyn KindPlan;

    fn deref(&self) -> &(dyn KindPlan + 'static) {
        &*self.0
    }
}

impl Clone for AgentPlan {
    fn clone(&self) -> Self {
        AgentPlan(self.0.clone_plan())
    }
}

impl PartialEq for AgentPlan {
    fn eq(&self, other: &Self) -> bool {
        self.0.kind().schema().name == other.0.kind().schema().name
            && self.0.canonical() == other.0.canonical()
    }
}

/// Canonically, an agent is its kind's name and its plan's canonical text.
impl serde::Serialize for AgentPlan {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut agent = serializer.serialize_struct("Agent", 2)?;
        agent.serialize_field("kind", self.0.kind().schema().name)?;
        agent.serialize_field("plan", &self.0.canonical())?;
        agent.end()
    }
}

impl fmt::Debug for AgentPlan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A constructor name that is no registered agent kind.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not an agent kind (registered: {list})", list = names().join(", "))]
pub struct UnknownKind(pub String);

/// Kinds added at run time ([`register`]); copied on write, read without a lock held.
static REGISTERED: RwLock<&'static [&'static dyn AgentKind]> = RwLock::new(&[]);

/// Adds a kind to the registry (tests, and later plug-ins). Registering a
/// name that is already taken is refused.
pub fn register(kind: &'static dyn AgentKind) -> Result<(), String> {
    let name = kind.schema().name;
    let mut registered = REGISTERED.write().unwrap_or_else(|e| e.into_inner());
    if BUILT_IN
        .iter()
        .chain(registered.iter())
        .any(|k| k.schema().name == name)
    {
        return Err(format!(
            "an agent kind named `{name}` is already registered"
        ));
    }
    let mut all = registered.to_vec();
    all.push(kind);
    *registered = Vec::leak(all);
    Ok(())
}

/// Every kind: the built-in ones, then the registered ones.
pub fn all() -> impl Iterator<Item = &'static dyn AgentKind> {
    let registered: &'static [&'static dyn AgentKind] =
        *REGISTERED.read().unwrap_or_else(|e| e.into_inner());
    BUILT_IN.iter().chain(registered.iter()).copied()
}

/// The names of every kind.
pub fn names() -> Vec<&'static str> {
    all().map(|k| k.schema().name).collect()
}

/// The kind whose constructor is `name`: the one lookup of a kind by name.
pub fn lookup(name: &str) -> Result<&'static dyn AgentKind, UnknownKind> {
    all()
        .find(|k| k.schema().name == name)
        .ok_or_else(|| UnknownKind(name.to_string()))
}

/// The kind of a checked agent block. `check` accepts an agent only when its
/// constructor is a registered kind (the schema's agents are this registry's),
/// so this cannot fail on a checked block.
pub fn of(agent: &Obj) -> &'static dyn AgentKind {
    match lookup(agent.ctor.name) {
        Ok(kind) => kind,
        Err(err) => unreachable!("a checked agent block has a registered kind: {err}"),
    }
}
