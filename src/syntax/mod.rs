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

use crate::diagnostics::{Code, Diag};
use crate::source::{FileId, Span};

/// The largest file mbrl parses: an experiment file is a few KiB.
pub const MAX_BYTES: usize = 1 << 20;
/// The deepest bracket nesting mbrl parses (the parser recurses per level).
pub const MAX_DEPTH: usize = 64;

/// Parses one file. Literal problems (bad numbers, escapes) are reported as
/// diagnostics alongside a still-usable AST.
pub fn parse(file: FileId, text: &str, diags: &mut Vec<Diag>) -> Option<ast::File> {
    within_limits(file, text, diags)?;
    parser::parse(file, text, diags)
}

/// Parses a single value, e.g. the right-hand side of `--set seeds=5`.
pub fn parse_value(file: FileId, text: &str, diags: &mut Vec<Diag>) -> Option<ast::Expr> {
    within_limits(file, text, diags)?;
    parser::parse_value(file, text, diags)
}

/// Refuses, with a diagnostic, a text too large or nested too deeply to
/// parse safely (the parser's recursion would overflow the stack).
fn within_limits(file: FileId, text: &str, diags: &mut Vec<Diag>) -> Option<()> {
    if text.len() > MAX_BYTES {
        let msg = format!(
            "the file is {} bytes; mbrl reads experiment files of up to {MAX_BYTES} bytes",
            text.len()
        );
        let diag = Diag::error(Code::FileTooLarge, msg, Span::new(file, 0..0), "this file")
            .with_help("split it into files that `use` each other");
        diags.push(diag);
        return None;
    }
    let Some(at) = too_deep(text) else {
        return Some(());
    };
    let msg = format!("brackets nest deeper than {MAX_DEPTH} levels");
    let diag = Diag::error(Code::TooDeep, msg, Span::new(file, at..at + 1), "too deep")
        .with_help("name the inner blocks as definitions and refer to them");
    diags.push(diag);
    None
}

/// The offset of the first bracket that opens level `MAX_DEPTH + 1`,
/// outside strings and comments.
fn too_deep(text: &str) -> Option<usize> {
    let bytes = text.as_bytes();
    let (mut depth, mut i) = (0usize, 0usize);
    while i < bytes.len() {
        match bytes[i] {
            b'"' => {
                i += 1;
                while i < bytes.len() && bytes[i] != b'"' {
                    i += if bytes[i] == b'\\' { 2 } else { 1 };
                }
            }
            b'/' if bytes.get(i + 1) == Some(&b'/') => {
                while i < bytes.len() && bytes[i] != b'\n' {
                    i += 1;
                }
            }
            b'/' if bytes.get(i + 1) == Some(&b'*') => {
                i += 2;
                while i + 1 < bytes.len() && !(bytes[i] == b'*' && bytes[i + 1] == b'/') {
                    i += 1;
                }
                i += 1;
            }
            b'(' | b'[' | b'{' => {
                depth += 1;
                if depth > MAX_DEPTH {
                    return Some(i);
                }
            }
            b')' | b']' | b'}' => depth = depth.saturating_sub(1),
            _ => (),
        }
        i += 1;
    }
    None
}
