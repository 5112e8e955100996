//! Check: a resolved program to checked experiments, with every diagnostic
//! found in one pass.
//!
//! Input: a [`crate::resolve::Program`]. Output: [`Checked`], whose
//! experiments are expanded into cells with their env spaces and inferred
//! network shapes. Checking never stops at the first problem: names, kinds,
//! fields, types, units and ranges are checked for every definition of the
//! root file, and every cell of every experiment is checked with the
//! cross-field rules.
//!
//! Invariants: no IO; reads the schema registry for every field meaning;
//! [`CheckedExperiment`] can only be constructed here, and it is what `graph`
//! requires.

mod claims;
pub(crate) mod common;
pub(crate) mod eval;
mod grid;
pub mod loss;
mod rules;
pub(crate) mod shapes;
mod value;

use std::collections::HashSet;
use std::rc::Rc;

use crate::diagnostics::{self, Code, Diag};
use crate::resolve::{DefId, Program};
use crate::schema::{EnvSpaces, Kind};
use crate::source::Span;
use crate::syntax::ast;

pub use shapes::Net;
pub use value::{FieldValue, Obj, Value};

/// The result of checking one file.
#[derive(Debug)]
pub struct Checked {
    pub experiments: Vec<CheckedExperiment>,
    /// Definitions of the root file.
    pub n_definitions: usize,
}

/// One experiment, expanded into its grid of cells.
// `_sealed` keeps construction in this module, not only out of other crates.
#[allow(clippy::manual_non_exhaustive)]
#[derive(Debug)]
pub struct CheckedExperiment {
    pub name: String,
    pub span: Span,
    pub seeds: u64,
    pub root_seed: u64,
    pub compat: String,
    /// The names of the axes that vary (`env`, `agent`, `agent.lr`).
    pub axes: Vec<String>,
    pub cells: Vec<Cell>,
    pub report: Option<Rc<Obj>>,
    /// The `expect` lines, resolved against the cells.
    pub claims: Vec<crate::report::claims::Claim>,
    _sealed: (),
}

/// One cell of the grid: an env, a fully resolved agent, and inferred shapes.
#[derive(Debug)]
pub struct Cell {
    pub index: usize,
    /// `(axis, value)` pairs naming the cell, e.g. `("env", "panflute")`.
    pub coords: Vec<(String, String)>,
    pub env: Rc<Obj>,
    pub agent: Rc<Obj>,
    pub regime: Option<Rc<Obj>>,
    pub spaces: EnvSpaces,
    pub nets: Vec<Net>,
}

impl Cell {
    /// Env steps one seed takes.
    pub fn env_steps(&self) -> u64 {
        crate::kinds::of(&self.agent).budget(&self.agent).0
    }

    /// Gradient updates of the main learner for one seed.
    pub fn updates(&self) -> u64 {
        crate::kinds::of(&self.agent).budget(&self.agent).1
    }

    pub fn label(&self) -> String {
        let parts: Vec<String> = self
            .coords
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        parts.join(" ")
    }
}

impl CheckedExperiment {
    #[allow(clippy::too_many_arguments)]
    fn new(
        name: String,
        span: Span,
        seeds: u64,
        root_seed: u64,
        compat: String,
        axes: Vec<String>,
        cells: Vec<Cell>,
        report: Option<Rc<Obj>>,
        claims: Vec<crate::report::claims::Claim>,
    ) -> CheckedExperiment {
        CheckedExperiment {
            name,
            span,
            seeds,
            root_seed,
            compat,
            axes,
            cells,
            report,
            claims,
            _sealed: (),
        }
    }

    /// Env steps over all cells and seeds.
    pub fn total_env_steps(&self) -> u64 {
        self.cells.iter().map(|c| c.env_steps() * self.seeds).sum()
    }

    pub fn total_updates(&self) -> u64 {
        self.cells.iter().map(|c| c.updates() * self.seeds).sum()
    }
}

/// Checks every definition of the root file and every experiment in it.
/// Diagnostics come back deduplicated and sorted.
pub fn check(program: &Program) -> (Checked, Vec<Diag>) {
    let mut ev = eval::Evaluator::new(program);
    let root = program.module(program.root);
    let mut n_definitions = 0;
    for (item, node) in root.ast.items.iter().enumerate() {
        let ast::Item::Definition(def) = node else {
            continue;
        };
        n_definitions += 1;
        param_types(&mut ev, def);
        let id = DefId {
            module: program.root,
            item,
        };
        let value = ev.definition(id, def.name.span);
        match (Kind::from_name(&def.kind.name), &value) {
            (Some(Kind::Agent), Value::Obj(agent)) => rules::block_rules(&mut ev, agent),
            (Some(Kind::Model), Value::Obj(model)) => common::latent_fields(&mut ev, model),
            _ => (),
        }
    }
    let mut experiments = Vec::new();
    for exp in program.experiments() {
        experiments.push(grid::experiment(&mut ev, exp));
    }
    let mut diags = dedup(std::mem::take(&mut ev.diags));
    diagnostics::sort(&mut diags);
    (
        Checked {
            experiments,
            n_definitions,
        },
        diags,
    )
}

/// The same problem reached through several cells is reported once.
fn dedup(diags: Vec<Diag>) -> Vec<Diag> {
    let mut seen = HashSet::new();
    diags
        .into_iter()
        .filter(|d| seen.insert((d.code, d.primary.span, d.message.clone())))
        .collect()
}

const PARAM_TYPES: &[&str] = &["int", "float", "bool", "string", "name"];

fn param_types(ev: &mut eval::Evaluator, def: &ast::Definition) {
    for param in def.params.iter().flatten() {
        let Some(ty) = &param.ty else { continue };
        if PARAM_TYPES.contains(&ty.name.as_str()) || Kind::from_name(&ty.name).is_some() {
            continue;
        }
        let names = PARAM_TYPES
            .iter()
            .copied()
            .chain(Kind::DECLARABLE.iter().map(|k| k.name()));
        let help = diagnostics::did_you_mean(&ty.name, names).unwrap_or_else(|| {
            "parameter types are int, float, bool, string, name, or a block kind".to_string()
        });
        let msg = format!("unknown type `{}`", ty.name);
        ev.diags
            .push(Diag::error(Code::UnknownName, msg, ty.span, "not a type").with_help(help));
    }
}
