//! `--set path=value` overrides: parsed like the file, each kept as its own
//! source so diagnostics point into the override text.

use crate::diagnostics::{did_you_mean, Code, Diag};
use crate::resolve::{DefId, Program};
use crate::schema::Kind;
use crate::source::{Origin, Span};
use crate::syntax::{self, ast};

/// One override, resolved to what it changes.
#[derive(Clone, Debug)]
pub struct Override {
    pub target: OverrideTarget,
    /// The field path below the target: `[seeds]`, `[agent, lr]`, `[optimizer, b1]`.
    pub path: Vec<ast::Ident>,
    pub value: ast::Expr,
    /// The whole `path=value` text.
    pub span: Span,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OverrideTarget {
    /// Every experiment of the root file; the path starts at an experiment field.
    Experiments,
    /// One definition of the root file's scope.
    Definition(DefId),
}

pub(super) fn parse_all(
    program: &mut Program,
    texts: &[String],
    diags: &mut Vec<Diag>,
) -> Vec<Override> {
    let mut out = Vec::new();
    for (idx, text) in texts.iter().enumerate() {
        let file = program.sources.add(Origin::Override(idx), text.clone());
        let whole = Span::new(file, 0..text.len());
        let Some(eq) = text.find('=') else {
            let diag = Diag::error(
                Code::InvalidOverride,
                format!("override `{text}` has no `=`"),
                whole,
                "expected `path=value`",
            )
            .with_help("write `--set path=value`, e.g. `--set experiment.seeds=5`");
            diags.push(diag);
            continue;
        };
        let Some(path) = parse_path(file, &text[..eq]) else {
            let span = Span::new(file, 0..eq);
            let diag = Diag::error(
                Code::InvalidOverride,
                "override path is not a dotted name",
                span,
                "expected `name.field`",
            )
            .with_help("write `--set path=value`, e.g. `--set er.lr=1e-4`");
            diags.push(diag);
            continue;
        };
        // Blank out the path so the value's spans line up with the override text.
        let padded = format!("{}{}", " ".repeat(eq + 1), &text[eq + 1..]);
        let Some(value) = syntax::parse_value(file, &padded, diags) else {
            continue;
        };
        if let Some(ov) = target(program, path, value, whole, diags) {
            out.push(ov);
        }
    }
    out
}

fn parse_path(file: crate::source::FileId, text: &str) -> Option<Vec<ast::Ident>> {
    let mut idents = Vec::new();
    let mut offset = 0;
    for part in text.split('.') {
        let trimmed = part.trim();
        let valid = trimmed
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && trimmed
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid {
            return None;
        }
        let start = offset + part.find(trimmed).unwrap_or(0);
        idents.push(ast::Ident {
            name: trimmed.to_string(),
            span: Span::new(file, start..start + trimmed.len()),
        });
        offset += part.len() + 1;
    }
    Some(idents)
}

/// Decides what the first path segment names: an experiment, a definition,
/// `experiment`, or a grid kind (`agent.lr` sets `lr` on every cell's agent).
fn target(
    program: &Program,
    mut path: Vec<ast::Ident>,
    value: ast::Expr,
    span: Span,
    diags: &mut Vec<Diag>,
) -> Option<Override> {
    let head = path[0].clone();
    let root = program.module(program.root);
    let is_experiment = program.experiments().any(|e| e.name.name == head.name);
    if is_experiment || head.name == "experiment" {
        path.remove(0);
        return finish(OverrideTarget::Experiments, path, value, span, &head, diags);
    }
    if let Some(def) = root.scope.get(&head.name) {
        path.remove(0);
        return finish(
            OverrideTarget::Definition(*def),
            path,
            value,
            span,
            &head,
            diags,
        );
    }
    if matches!(
        Kind::from_name(&head.name),
        Some(Kind::Env | Kind::Agent | Kind::Regime)
    ) {
        return finish(OverrideTarget::Experiments, path, value, span, &head, diags);
    }
    let mut candidates: Vec<&str> = root.scope.keys().map(String::as_str).collect();
    candidates.extend(["experiment", "env", "agent", "regime"]);
    candidates.extend(program.experiments().map(|e| e.name.name.as_str()));
    let help = did_you_mean(&head.name, candidates.iter().copied()).unwrap_or_else(|| {
        "start the path with `experiment`, an experiment or definition name, `agent` or `env`"
            .to_string()
    });
    let msg = format!("override target `{}` is not in this file", head.name);
    diags.push(
        Diag::error(Code::UnknownOverrideTarget, msg, head.span, "no such block").with_help(help),
    );
    None
}

fn finish(
    target: OverrideTarget,
    path: Vec<ast::Ident>,
    value: ast::Expr,
    span: Span,
    head: &ast::Ident,
    diags: &mut Vec<Diag>,
) -> Option<Override> {
    if path.is_empty() {
        let msg = format!("override `{}` names a block, not a field", head.name);
        let diag = Diag::error(
            Code::InvalidOverride,
            msg,
            head.span,
            "add a field after this",
        )
        .with_help(format!("write `{}.FIELD=value`", head.name));
        diags.push(diag);
        return None;
    }
    Some(Override {
        target,
        path,
        value,
        span,
    })
}
