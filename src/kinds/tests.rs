//! The registry's contract, with a kind that exists only here: `toy_constant`
//! always takes the same action. It is registered at run time and goes
//! through every stage a built-in kind goes through (check, graph, compile,
//! run) without any code outside this file naming it.

use std::sync::atomic::AtomicBool;
use std::sync::Once;

use crate::check::eval::Evaluator;
use crate::check::{Cell, Net, Obj};
use crate::compile::{self, need, CompileError, Cost, Plan, Schedule, Settings};
use crate::diagnostics::{Code, Diag};
use crate::envs::Layout;
use crate::graph::lower::{evaluator, pick, schedule};
use crate::graph::{Graph, NodeId, NodeKind};
use crate::kinds::{self, Actions, AgentKind, AgentPlan, KindPlan};
use crate::runtime::driver::{self, Agent, Learner, Losses, Outcome, Progress, RunError, Session};
use crate::runtime::evaluate::{ActionBuf, Policy};
use crate::schema::{eval_every, Ctor, Default as D, EnvSpaces, Field, Kind, Ty};
use crate::source::{Origin, Span};
use crate::syntax::ast::Unit;
use crate::tensor::Dev;

static TOY_CTOR: Ctor = Ctor {
    name: "toy_constant",
    kind: Kind::Agent,
    doc: "always takes the same action (a test kind)",
    fields: &[
        Field::new("steps", Ty::Int, D::Int(1000), "env steps")
            .unit(Unit::Steps)
            .min(1.0),
        eval_every(500),
        Field::new("action", Ty::Int, D::Int(0), "the action it always takes").min(0.0),
        Field::new(
            "eval",
            Ty::Ref(Kind::Eval),
            D::Ctor("greedy_eval"),
            "evaluation protocol",
        ),
    ],
    ..Ctor::PLAIN
};

struct Toy;

#[derive(Clone, Debug, PartialEq, serde::Serialize)]
struct ToyPlan {
    action: usize,
}

crate::kinds::metrics! {
    enum Metric {
        /// The action taken, per seed (constant, so it shows what ran).
        Action = "action",
    }
}

impl AgentKind for Toy {
    fn schema(&self) -> &'static Ctor {
        &TOY_CTOR
    }

    fn actions(&self) -> Actions {
        Actions::Discrete
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
        true
    }

    fn declared_nets(&self) -> &'static [(&'static str, &'static str)] {
        &[]
    }

    fn nets(&self, _agent: &Obj, _spaces: &EnvSpaces) -> Vec<Net> {
        Vec::new()
    }

    /// A rule of its own: PanFlute with 5 pipes has 5 actions, and the toy
    /// refuses any action of 5 or more in every env.
    fn rules(&self, ev: &mut Evaluator, agent: &Obj) {
        if agent.int("action").is_some_and(|a| a >= 5) {
            let diag = Diag::error(
                Code::UnsupportedValue,
                "the toy kind acts with actions 0-4",
                agent.span_of("action"),
                "too large",
            );
            ev.diags.push(diag);
        }
    }

    fn compat_refusal(&self, _compat: &str, _at: Span, _agent: &Obj) -> Option<Diag> {
        None
    }

    fn budget(&self, agent: &Obj) -> (u64, u64) {
        (agent.int("steps").unwrap_or(0) as u64, 0)
    }

    fn q_update_batch(&self, _agent: &Obj) -> Option<i64> {
        None
    }

    fn lower(&self, g: &mut Graph, cell: &Cell, env: NodeId, s: &str) {
        let a = &cell.agent;
        schedule(g, a, &["steps", "eval_every"]);
        let policy = g.add(
            NodeKind::Policy,
            "policy",
            "constant",
            "one action",
            pick(a, &["action"]),
        );
        g.connect(policy, env, "action", &[s.to_string(), "1".into()]);
        evaluator(g, a, policy, s, "the constant action");
    }

    fn compile(&self, graph: &Graph) -> Result<(Schedule, AgentPlan), CompileError> {
        let s = need(graph, "schedule")?;
        let policy = need(graph, "policy")?;
        let schedule = Schedule {
            units: s.need_count("steps")?,
            steps_per_unit: 1,
            eval_every: s.need_count("eval_every")?.max(1),
            save_every: s.need_count("eval_every")?.max(1),
            eval_at_start: false,
        };
        let plan = ToyPlan {
            action: policy.need_count("action")? as usize,
        };
        Ok((schedule, AgentPlan::new(plan)))
    }
}

impl KindPlan for ToyPlan {
    fn kind(&self) -> &'static dyn AgentKind {
        &Toy
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
        compile::canonical(self)
    }

    fn run(
        &self,
        plan: &Plan,
        threads: usize,
        session: Session,
        progress: Progress,
    ) -> Result<Outcome, RunError> {
        driver::run(self, plan, threads, session, progress)
    }
}

impl Agent for ToyPlan {
    type Learner = ToyLearner;

    fn build(&self, seeds: &[u64], _dev: &Dev) -> ToyLearner {
        ToyLearner {
            action: self.action,
            seeds: seeds.len(),
        }
    }
}

struct ToyLearner {
    action: usize,
    seeds: usize,
}

impl Learner for ToyLearner {
    type State = ();

    fn advance(&mut self, _unit: u64, losses: &mut Losses) {
        losses.add(
            Metric::Action.index(),
            &vec![self.action as f32; self.seeds],
        );
    }

    fn policy<'a>(&'a self, _layout: &Layout) -> Box<dyn Policy + 'a> {
        Box::new(Constant(self.action))
    }

    fn save(&mut self) {}

    fn restore(&mut self, _state: ()) -> Result<(), String> {
        Ok(())
    }
}

struct Constant(usize);

impl Policy for Constant {
    fn act(&mut self, _obs: &[f32], actions: &mut ActionBuf) {
        if let ActionBuf::Discrete(a, _) = actions {
            a.iter_mut().for_each(|x| *x = self.0);
        }
    }
}

static TOY: Toy = Toy;

fn register_toy() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| kinds::register(&TOY).expect("the toy's name is free"));
}

fn checked(text: &str) -> crate::CheckOutput {
    crate::check_source(
        Origin::Inline("toy.exp".into()),
        format!("use young2022::*\n{text}"),
        &[],
        &crate::resolve::FsLoader,
    )
}

const TOY_EXPERIMENT: &str = "experiment toy { seeds: 2, env: flute, agent: toy_constant { steps: 40 steps, eval_every: 20 steps, action: 3, eval: greedy_eval { envs: 2, steps: 10 steps } } }";

#[test]
fn a_registered_kind_goes_through_check_graph_compile_and_run() {
    register_toy();
    // check: the kind's schema and rules apply.
    let bad = checked(&TOY_EXPERIMENT.replace("action: 3", "action: 7"));
    assert!(
        bad.diags
            .iter()
            .any(|d| d.is_error() && d.message == "the toy kind acts with actions 0-4"),
        "{:?}",
        bad.diags
    );
    let typo = checked(&TOY_EXPERIMENT.replace("action: 3", "actoin: 3"));
    assert!(
        typo.has_errors(),
        "an unknown field of the toy kind is refused"
    );
    let out = checked(TOY_EXPERIMENT);
    assert!(!out.has_errors(), "{:?}", out.diags);
    let exp = &out.clean().experiments[0];
    let cell = &exp.cells[0];
    assert_eq!(cell.env_steps(), 40);
    // graph: its lowering.
    let graph = crate::graph::cell_graph(exp, cell);
    assert_eq!(graph.agent, "toy_constant");
    let policy = graph.find("policy").expect("the toy's policy node");
    assert_eq!(policy.int("action"), Some(3));
    // compile: its typed plan.
    let plan = compile::compile(&graph, 1.0).expect("compiles");
    assert_eq!(plan.agent.get::<ToyPlan>(), Some(&ToyPlan { action: 3 }));
    assert_eq!(plan.metrics(), vec!["eval", "action"]);
    assert_eq!(plan.schedule.units, 40);
    // run: the driver runs its learner, evaluating every 20 steps.
    let stop = AtomicBool::new(false);
    let session = Session {
        checkpoints: None,
        stop: &stop,
        stop_at: None,
    };
    let outcome = crate::runtime::run(&plan, 1, session, &|_, _| ()).expect("runs");
    let steps_of = |metric: usize| -> Vec<u64> {
        let mut steps: Vec<u64> = outcome
            .points
            .iter()
            .filter(|p| p.metric == metric)
            .map(|p| p.step)
            .collect();
        steps.dedup();
        steps
    };
    assert_eq!(steps_of(0), vec![20, 40]);
    assert_eq!(steps_of(Metric::Action.index()), vec![20, 40]);
    assert!(outcome
        .points
        .iter()
        .filter(|p| p.metric == Metric::Action.index())
        .all(|p| p.value == 3.0));
}

#[test]
fn unknown_kinds_are_an_error_at_the_lookup_and_names_are_unique() {
    register_toy();
    let err = kinds::lookup("pets").err().expect("no such kind");
    assert!(
        err.to_string().contains("`pets` is not an agent kind"),
        "{err}"
    );
    assert!(err.to_string().contains("dqn"), "{err}");
    assert!(
        kinds::register(&TOY).is_err(),
        "a second `toy_constant` is refused"
    );
    for kind in kinds::all() {
        let name = kind.schema().name;
        assert_eq!(kinds::lookup(name).expect("found").schema().name, name);
        assert_eq!(kind.schema().kind, Kind::Agent, "{name}");
    }
    // The schema's agents are the registry's.
    let schema: Vec<&str> = crate::schema::ctors_of(Kind::Agent)
        .map(|c| c.name)
        .collect();
    assert_eq!(schema, kinds::names());
}

#[test]
fn every_built_in_kind_compiles_plans_that_name_it() {
    let cells = [
        "use young2022::*\nexperiment e { seeds: 1, env: flute, agent: er }",
        "use slbo::*\nexperiment e { seeds: 1, env: mbbl_pendulum, agent: slbo_l2 }",
        "use young2022::*\nexperiment e { seeds: 1, env: flute, agent: random }",
    ];
    for (text, kind) in cells.iter().zip(kinds::BUILT_IN) {
        let out = crate::check_source(
            Origin::Inline("e.exp".into()),
            text.to_string(),
            &[],
            &crate::resolve::FsLoader,
        );
        let exp = &out.clean().experiments[0];
        let plan =
            compile::compile(&crate::graph::cell_graph(exp, &exp.cells[0]), 1.0).expect("compiles");
        assert_eq!(plan.agent.kind().schema().name, kind.schema().name);
        assert_eq!(plan.metrics()[0], "eval");
        assert_eq!(plan.agent.clone(), plan.agent);
    }
}
