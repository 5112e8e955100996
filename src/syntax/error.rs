//! pest errors to diagnostics, with rule names a user can read.

use pest::error::{ErrorVariant, InputLocation};

use crate::diagnostics::{Code, Diag};
use crate::source::{FileId, Span};
use crate::syntax::grammar::Rule;

/// Converts a pest error into a `mbrl::syntax::unexpected_token` diagnostic.
pub fn parse_error(file: FileId, text: &str, err: &pest::error::Error<Rule>) -> Diag {
    let pos = match err.location {
        InputLocation::Pos(pos) => pos,
        InputLocation::Span((start, _)) => start,
    };
    let found = found_token(text, pos);
    let span = Span::new(file, pos..pos + found.len());
    let expected = match &err.variant {
        ErrorVariant::ParsingError { positives, .. } => expected_list(positives),
        ErrorVariant::CustomError { message } => message.clone(),
    };
    let found_desc = match found.is_empty() {
        true => "end of file".to_string(),
        false => invisible(found).unwrap_or_else(|| format!("`{found}`")),
    };
    let message = format!("expected {expected}, found {found_desc}");
    let label = format!("expected {expected}");
    let diag = Diag::error(Code::UnexpectedToken, message, span, label);
    diag.with_help_opt(help_for(text, pos, found))
}

/// A name for a character that would not show between backticks: a NUL,
/// another control character, a byte-order mark, a zero-width or other
/// unusual space.
fn invisible(found: &str) -> Option<String> {
    let mut chars = found.chars();
    let (Some(c), None) = (chars.next(), chars.next()) else {
        return None;
    };
    let code = c as u32;
    let name = match c {
        '\0' => "a NUL byte".to_string(),
        '\u{feff}' => "a byte-order mark".to_string(),
        '\u{200b}'..='\u{200d}' | '\u{2060}' => "a zero-width character".to_string(),
        c if c.is_control() => "a control character".to_string(),
        c if c.is_whitespace() && c != ' ' => "an unusual space".to_string(),
        _ => return None,
    };
    Some(format!("{name} (U+{code:04X})"))
}

/// The token at `pos`: a word, a number, or a single character.
fn found_token(text: &str, pos: usize) -> &str {
    let rest = text.get(pos..).unwrap_or("");
    let word_len: usize = rest
        .char_indices()
        .take_while(|(_, c)| c.is_alphanumeric() || *c == '_' || *c == '.')
        .map(|(_, c)| c.len_utf8())
        .sum();
    match (word_len, rest.chars().next()) {
        (0, Some(c)) => &rest[..c.len_utf8()],
        (0, None) => "",
        (n, _) => &rest[..n],
    }
}

fn expected_list(rules: &[Rule]) -> String {
    let mut names: Vec<&str> = rules.iter().filter_map(|r| rule_name(*r)).collect();
    names.sort_unstable();
    names.dedup();
    match names.len() {
        0 => "something else".to_string(),
        1 => names[0].to_string(),
        n => format!("{} or {}", names[..n - 1].join(", "), names[n - 1]),
    }
}

/// Names that read well in "expected ..." messages.
fn rule_name(rule: Rule) -> Option<&'static str> {
    let name = match rule {
        Rule::EOI => "end of file",
        Rule::use_decl | Rule::kw_use => "`use`",
        Rule::experiment | Rule::kw_experiment => "`experiment`",
        Rule::definition | Rule::block_kind => "a definition (`KIND NAME = ...`)",
        Rule::ident | Rule::module_path | Rule::qualified | Rule::type_name => "a name",
        Rule::field_path => "a field path",
        Rule::use_all | Rule::use_list => "`*` or `{names}`",
        Rule::params => "`(`",
        Rule::param => "a parameter",
        Rule::vary | Rule::kw_vary => "`vary`",
        Rule::field | Rule::sugar_field => "a field (`name: value`)",
        Rule::expr | Rule::construct => "a value",
        Rule::args | Rule::arg => "an argument",
        Rule::record => "`{`",
        Rule::list => "a list (`[...]`)",
        Rule::number | Rule::number_lit | Rule::digits => "a number",
        Rule::magnitude => "a magnitude (`k`, `M`, `G`)",
        Rule::unit => "a unit",
        Rule::string | Rule::string_inner => "a string",
        Rule::boolean => "`true` or `false`",
        _ => return None,
    };
    Some(name)
}

/// A concrete fix for the common slips.
fn help_for(text: &str, pos: usize, found: &str) -> Option<String> {
    let before = text.get(..pos).unwrap_or("").trim_end();
    if found == "=" && before.ends_with(|c: char| c.is_alphanumeric() || c == '_') {
        return Some("fields are written `name: value`, with a colon".to_string());
    }
    if found == ":" && before.ends_with(':') {
        return Some("imports are written `use module::*`".to_string());
    }
    if found.is_empty() {
        return Some("a `{`, `[` or `(` is not closed".to_string());
    }
    None
}
