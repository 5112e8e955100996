//! Syntax: `.exp` text to an AST whose every node carries its span.
//!
//! Input: a [`FileId`] and its text. Output: an [`ast::File`], or `None` with
//! the syntax diagnostic. The grammar lives in `grammar/mbrl.pest`.
//!
//! Invariants: this is the only module that knows pest. It imports nothing from
//! `resolve`, `check`, `graph`, petgraph or dfdx, and never fails silently: a
//! failed parse always leaves a diagnostic.

pub mod ast;
mod error;
mod grammar;
mod parser;

use crate::diagnostics::Diag;
use crate::source::FileId;

/// Parses one file. Literal problems (bad numbers, escapes) are reported as
/// diagnostics alongside a still-usable AST.
pub fn parse(file: FileId, text: &str, diags: &mut Vec<Diag>) -> Option<ast::File> {
    parser::parse(file, text, diags)
}

/// Parses a single value, e.g. the right-hand side of `--set seeds=5`.
pub fn parse_value(file: FileId, text: &str, diags: &mut Vec<Diag>) -> Option<ast::Expr> {
    parser::parse_value(file, text, diags)
}
