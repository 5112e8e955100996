//! pest pairs to AST: one function per grammar rule, named after the rule.

use pest::iterators::Pair;
use pest::Parser as _;

use crate::diagnostics::{Code, Diag};
use crate::source::{FileId, Span};
use crate::syntax::ast;
use crate::syntax::error::parse_error;
use crate::syntax::grammar::{MbrlParser, Rule};

/// Builds AST nodes for one file, collecting literal errors as it goes.
struct Ctx<'d> {
    file: FileId,
    diags: &'d mut Vec<Diag>,
}

/// Parses `text`; on a syntax error returns `None` with one diagnostic pushed.
pub fn parse(file: FileId, text: &str, diags: &mut Vec<Diag>) -> Option<ast::File> {
    let mut pairs = match MbrlParser::parse(Rule::file, text) {
        Ok(pairs) => pairs,
        Err(err) => {
            diags.push(parse_error(file, text, &err));
            return None;
        }
    };
    let root = pairs.next().expect("grammar guarantees a `file` pair");
    let mut ctx = Ctx { file, diags };
    let mut items = Vec::new();
    for pair in root.into_inner() {
        match pair.as_rule() {
            Rule::use_decl => items.push(ast::Item::Use(ctx.use_decl(pair))),
            Rule::definition => items.push(ast::Item::Definition(ctx.definition(pair))),
            Rule::experiment => items.push(ast::Item::Experiment(ctx.experiment(pair))),
            Rule::EOI => (),
            rule => unreachable!("grammar guarantees items only, found {rule:?}"),
        }
    }
    Some(ast::File { items })
}

/// Parses a standalone value (the right-hand side of a `--set` override).
pub fn parse_value(file: FileId, text: &str, diags: &mut Vec<Diag>) -> Option<ast::Expr> {
    let mut pairs = match MbrlParser::parse(Rule::value_only, text) {
        Ok(pairs) => pairs,
        Err(err) => {
            diags.push(parse_error(file, text, &err));
            return None;
        }
    };
    let root = pairs
        .next()
        .expect("grammar guarantees a `value_only` pair");
    let expr = root
        .into_inner()
        .next()
        .expect("grammar guarantees an expression");
    let mut ctx = Ctx { file, diags };
    Some(ctx.expr(expr))
}

impl Ctx<'_> {
    /// The pair's span without the trailing whitespace pest's implicit
    /// whitespace rule may have consumed after an optional part.
    fn span(&self, pair: &Pair<Rule>) -> Span {
        let s = pair.as_span();
        let len = pair.as_str().trim_end().len();
        Span::new(self.file, s.start()..s.start() + len)
    }

    fn ident(&self, pair: Pair<Rule>) -> ast::Ident {
        debug_assert_eq!(pair.as_rule(), Rule::ident);
        ast::Ident {
            name: pair.as_str().to_string(),
            span: self.span(&pair),
        }
    }

    fn use_decl(&mut self, pair: Pair<Rule>) -> ast::Use {
        let span = self.span(&pair);
        let mut inner = pair.into_inner();
        let _kw = inner.next();
        let target_pair = inner.next().expect("grammar guarantees a use target");
        let target = match target_pair.as_rule() {
            Rule::module_path => {
                let ident = target_pair
                    .into_inner()
                    .next()
                    .expect("module path has an ident");
                ast::UseTarget::Module(self.ident(ident))
            }
            Rule::string => {
                let span = self.span(&target_pair);
                ast::UseTarget::File {
                    path: self.string(target_pair),
                    span,
                }
            }
            rule => unreachable!("grammar guarantees a module or string, found {rule:?}"),
        };
        let names = match inner.next() {
            None => ast::UseNames::Qualified,
            Some(tail) => match tail.as_rule() {
                Rule::use_all => ast::UseNames::All(self.span(&tail)),
                Rule::use_list => {
                    ast::UseNames::List(tail.into_inner().map(|p| self.ident(p)).collect())
                }
                Rule::ident => ast::UseNames::List(vec![self.ident(tail)]),
                rule => unreachable!("grammar guarantees a use tail, found {rule:?}"),
            },
        };
        ast::Use {
            target,
            names,
            span,
        }
    }

    fn definition(&mut self, pair: Pair<Rule>) -> ast::Definition {
        let span = self.span(&pair);
        let mut inner = pair.into_inner();
        let kind = inner
            .next()
            .expect("block kind")
            .into_inner()
            .next()
            .expect("kind ident");
        let kind = self.ident(kind);
        let name = self.ident(inner.next().expect("definition name"));
        let mut params = None;
        let mut body = None;
        for part in inner {
            match part.as_rule() {
                Rule::params => params = Some(part.into_inner().map(|p| self.param(p)).collect()),
                Rule::expr => body = Some(self.expr(part)),
                Rule::math => {
                    let span = self.span(&part);
                    let math = self.math(part);
                    body = Some(ast::Expr {
                        kind: ast::ExprKind::Math(Box::new(math)),
                        span,
                    });
                }
                rule => unreachable!("grammar guarantees params or body, found {rule:?}"),
            }
        }
        let body = body.expect("grammar guarantees a body");
        ast::Definition {
            kind,
            name,
            params,
            body,
            span,
        }
    }

    fn param(&mut self, pair: Pair<Rule>) -> ast::Param {
        let span = self.span(&pair);
        let mut inner = pair.into_inner();
        let name = self.ident(inner.next().expect("param name"));
        let mut ty = None;
        let mut default = None;
        for part in inner {
            match part.as_rule() {
                Rule::type_name => ty = Some(self.ident(part.into_inner().next().expect("type"))),
                Rule::expr => default = Some(self.expr(part)),
                rule => unreachable!("grammar guarantees a type or default, found {rule:?}"),
            }
        }
        ast::Param {
            name,
            ty,
            default,
            span,
        }
    }

    fn experiment(&mut self, pair: Pair<Rule>) -> ast::Experiment {
        let span = self.span(&pair);
        let mut inner = pair.into_inner();
        let _kw = inner.next();
        let name = self.ident(inner.next().expect("experiment name"));
        let mut fields = Vec::new();
        let mut axes = Vec::new();
        let mut expects = Vec::new();
        for entry in inner {
            match entry.as_rule() {
                Rule::vary => axes.push(self.vary(entry)),
                Rule::expect => expects.push(self.expect(entry)),
                Rule::field => fields.push(self.field(entry)),
                Rule::sugar_field => fields.push(self.sugar_field(entry)),
                rule => unreachable!("grammar guarantees experiment entries, found {rule:?}"),
            }
        }
        ast::Experiment {
            name,
            fields,
            axes,
            expects,
            span,
        }
    }

    fn expect(&mut self, pair: Pair<Rule>) -> ast::Expect {
        let span = self.span(&pair);
        let mut inner = pair.into_inner();
        let _kw = inner.next();
        let side = |this: &mut Self, p: Pair<Rule>| {
            let p = p.into_inner().next().expect("a claim side");
            ast::Ident {
                name: p.as_str().to_string(),
                span: this.span(&p),
            }
        };
        let left = side(self, inner.next().expect("left side"));
        let op_pair = inner.next().expect("claim operator");
        let op = match op_pair.as_str() {
            ">" => ast::ClaimOp::Greater,
            ">=" => ast::ClaimOp::GreaterEq,
            "<" => ast::ClaimOp::Less,
            _ => ast::ClaimOp::LessEq,
        };
        let op = (op, self.span(&op_pair));
        let right = side(self, inner.next().expect("right side"));
        let mut claim = ast::Expect {
            left,
            op,
            right,
            on: None,
            by: None,
            margin: None,
            at: None,
            span,
        };
        for clause in inner {
            let clause_span = self.span(&clause);
            let rule = clause.as_rule();
            let mut parts = clause.into_inner();
            let _kw = parts.next();
            match rule {
                Rule::claim_on => {
                    let list = parts.next().expect("a list");
                    let list_span = self.span(&list);
                    let values = list.into_inner().map(|p| self.expr(p)).collect();
                    claim.on = Some((values, list_span));
                }
                Rule::claim_by => {
                    let name = self.ident(parts.next().expect("a summary"));
                    let arg = parts.next().map(|p| self.claim_number(p));
                    claim.by = Some((name, arg));
                }
                Rule::claim_margin => {
                    claim.margin = Some(self.claim_number(parts.next().expect("a number")))
                }
                Rule::claim_at => {
                    claim.at = Some(self.claim_number(parts.next().expect("a number")))
                }
                rule => unreachable!(
                    "grammar guarantees claim clauses, found {rule:?} at {clause_span:?}"
                ),
            }
        }
        claim
    }

    fn claim_number(&mut self, pair: Pair<Rule>) -> ast::ClaimNumber {
        let span = self.span(&pair);
        let mut inner = pair.into_inner();
        let literal = inner.next().expect("a number literal");
        let percent = inner.next().is_some();
        let value = number_value(literal.as_str()).map(ast::NumberValue::as_f64);
        if value.is_none() {
            let msg = format!("number `{}` does not fit in 64 bits", literal.as_str());
            let diag = Diag::error(Code::InvalidNumber, msg, span, "out of range");
            self.diags.push(diag);
        }
        ast::ClaimNumber {
            value,
            percent,
            span,
        }
    }

    fn vary(&mut self, pair: Pair<Rule>) -> ast::Vary {
        let span = self.span(&pair);
        let mut inner = pair.into_inner();
        let _kw = inner.next();
        let path_pair = inner.next().expect("vary path");
        let path = path_pair.into_inner().map(|p| self.ident(p)).collect();
        let list = inner.next().expect("vary list");
        let list_span = self.span(&list);
        let values = list.into_inner().map(|p| self.expr(p)).collect();
        ast::Vary {
            path,
            values,
            list_span,
            span,
        }
    }

    fn field(&mut self, pair: Pair<Rule>) -> ast::Field {
        let span = self.span(&pair);
        let mut inner = pair.into_inner();
        let name = self.ident(inner.next().expect("field name"));
        let value = self.expr(inner.next().expect("field value"));
        ast::Field { name, value, span }
    }

    /// `report { ... }` becomes the field `report: report { ... }`.
    fn sugar_field(&mut self, pair: Pair<Rule>) -> ast::Field {
        let span = self.span(&pair);
        let mut inner = pair.into_inner();
        let name = self.ident(inner.next().expect("field name"));
        let record = self.record(inner.next().expect("record"));
        let construct = ast::Construct {
            path: vec![name.clone()],
            args: None,
            record: Some(record),
        };
        let value = ast::Expr {
            kind: ast::ExprKind::Construct(construct),
            span,
        };
        ast::Field { name, value, span }
    }

    fn record(&mut self, pair: Pair<Rule>) -> Vec<ast::Field> {
        let mut fields = Vec::new();
        for entry in pair.into_inner() {
            match entry.as_rule() {
                Rule::field => fields.push(self.field(entry)),
                Rule::sugar_field => fields.push(self.sugar_field(entry)),
                rule => unreachable!("grammar guarantees record entries, found {rule:?}"),
            }
        }
        fields
    }

    fn expr(&mut self, pair: Pair<Rule>) -> ast::Expr {
        let span = self.span(&pair);
        let inner = pair
            .into_inner()
            .next()
            .expect("grammar guarantees an expression body");
        let kind = match inner.as_rule() {
            Rule::number => ast::ExprKind::Number(self.number(inner)),
            Rule::string => ast::ExprKind::Str(self.string(inner)),
            Rule::boolean => ast::ExprKind::Bool(inner.as_str() == "true"),
            Rule::list => ast::ExprKind::List(inner.into_inner().map(|p| self.expr(p)).collect()),
            Rule::record => ast::ExprKind::Record(self.record(inner)),
            Rule::construct => ast::ExprKind::Construct(self.construct(inner)),
            rule => unreachable!("grammar guarantees an expression, found {rule:?}"),
        };
        ast::Expr { kind, span }
    }

    /// `let` bindings, then the expression they scope over.
    fn math(&mut self, pair: Pair<Rule>) -> ast::Math {
        let parts: Vec<Pair<Rule>> = pair.into_inner().collect();
        let (body, lets) = parts.split_last().expect("grammar guarantees a body");
        let mut out = self.math_node(body.clone());
        for binding in lets.iter().rev() {
            let span = self.span(binding);
            let mut inner = binding.clone().into_inner();
            let _kw = inner.next();
            let name = self.ident(inner.next().expect("let name"));
            let value = self.math_node(inner.next().expect("let value"));
            let span = span.to(out.span);
            out = ast::Math {
                kind: ast::MathKind::Let(name, Box::new(value), Box::new(out)),
                span,
            };
        }
        out
    }

    fn math_node(&mut self, pair: Pair<Rule>) -> ast::Math {
        let span = self.span(&pair);
        match pair.as_rule() {
            Rule::math_cmp | Rule::math_add | Rule::math_mul => {
                let mut inner = pair.into_inner();
                let mut left = self.math_node(inner.next().expect("operand"));
                while let Some(op) = inner.next() {
                    let right = self.math_node(inner.next().expect("operand"));
                    let op = match op.as_str() {
                        "+" => ast::BinOp::Add,
                        "-" => ast::BinOp::Sub,
                        "*" => ast::BinOp::Mul,
                        "/" => ast::BinOp::Div,
                        ">" => ast::BinOp::Gt,
                        ">=" => ast::BinOp::Ge,
                        "<" => ast::BinOp::Lt,
                        _ => ast::BinOp::Le,
                    };
                    let span = left.span.to(right.span);
                    left = ast::Math {
                        kind: ast::MathKind::Bin(op, Box::new(left), Box::new(right)),
                        span,
                    };
                }
                left
            }
            Rule::math_unary => {
                let parts: Vec<Pair<Rule>> = pair.into_inner().collect();
                let (atom, negs) = parts.split_last().expect("an atom");
                let mut out = self.math_node(atom.clone());
                for _ in negs {
                    out = ast::Math {
                        kind: ast::MathKind::Neg(Box::new(out)),
                        span,
                    };
                }
                out
            }
            Rule::math_number => {
                let value = number_value(pair.as_str()).map_or(f64::NAN, |v| v.as_f64());
                ast::Math {
                    kind: ast::MathKind::Num(value),
                    span,
                }
            }
            Rule::math_name => {
                let ident = self.ident(pair.into_inner().next().expect("a name"));
                ast::Math {
                    kind: ast::MathKind::Name(ident),
                    span,
                }
            }
            Rule::math_call => {
                let mut inner = pair.into_inner();
                let name = self.ident(inner.next().expect("a function"));
                let args = inner.map(|a| self.math_node(a)).collect();
                ast::Math {
                    kind: ast::MathKind::Call(name, args),
                    span,
                }
            }
            rule => unreachable!("grammar guarantees arithmetic, found {rule:?}"),
        }
    }

    fn construct(&mut self, pair: Pair<Rule>) -> ast::Construct {
        let mut inner = pair.into_inner();
        let qualified = inner.next().expect("construct path");
        let path = qualified.into_inner().map(|p| self.ident(p)).collect();
        let mut args = None;
        let mut record = None;
        for part in inner {
            match part.as_rule() {
                Rule::args => args = Some(part.into_inner().map(|a| self.arg(a)).collect()),
                Rule::record => record = Some(self.record(part)),
                rule => unreachable!("grammar guarantees args or record, found {rule:?}"),
            }
        }
        ast::Construct { path, args, record }
    }

    fn arg(&mut self, pair: Pair<Rule>) -> ast::Arg {
        let span = self.span(&pair);
        let mut name = None;
        let mut value = None;
        for part in pair.into_inner() {
            match part.as_rule() {
                Rule::ident => name = Some(self.ident(part)),
                Rule::expr => value = Some(self.expr(part)),
                rule => unreachable!("grammar guarantees an argument, found {rule:?}"),
            }
        }
        ast::Arg {
            name,
            value: value.expect("argument value"),
            span,
        }
    }

    fn number(&mut self, pair: Pair<Rule>) -> ast::Number {
        let mut inner = pair.into_inner();
        let lit = inner.next().expect("number literal");
        let lit_span = self.span(&lit);
        let value = match number_value(lit.as_str()) {
            Some(value) if underflows(lit.as_str(), &value) => {
                let msg = format!(
                    "number `{}` is too small for a 64-bit float: it underflows to 0",
                    lit.as_str()
                );
                let diag = Diag::error(Code::InvalidNumber, msg, lit_span, "underflows to 0")
                    .with_help(
                    "floats go down to 2.2e-308 (4.9e-324 with lost precision); write 0 for zero",
                );
                self.diags.push(diag);
                value
            }
            Some(value) => value,
            None => {
                let msg = format!("number `{}` does not fit in 64 bits", lit.as_str());
                let diag = Diag::error(Code::InvalidNumber, msg, lit_span, "out of range")
                    .with_help("integers go up to 9.2e18 and floats up to 1.8e308");
                self.diags.push(diag);
                ast::NumberValue::Int(0)
            }
        };
        let unit = inner.next().map(|u| (unit(u.as_str()), self.span(&u)));
        ast::Number { value, unit }
    }

    fn string(&mut self, pair: Pair<Rule>) -> String {
        let inner = pair.into_inner().next().expect("string body");
        let start = inner.as_span().start();
        let raw = inner.as_str();
        let mut out = String::new();
        let mut chars = raw.char_indices();
        while let Some((_, c)) = chars.next() {
            if c != '\\' {
                out.push(c);
                continue;
            }
            let Some((idx, esc)) = chars.next() else {
                break;
            };
            match esc {
                '"' => out.push('"'),
                '\\' => out.push('\\'),
                'n' => out.push('\n'),
                't' => out.push('\t'),
                other => {
                    let at = start + idx - 1;
                    let span = Span::new(self.file, at..at + 1 + other.len_utf8());
                    let msg = format!("unknown escape `\\{other}` in string");
                    let diag = Diag::error(Code::InvalidEscape, msg, span, "not an escape")
                        .with_help("the escapes are `\\\"`, `\\\\`, `\\n` and `\\t`");
                    self.diags.push(diag);
                }
            }
        }
        out
    }
}

/// The value of a number literal: `100_000`, `5e-5`, `1M`, `2.5k`.
/// Integral values without an exponent or point stay integers.
fn number_value(text: &str) -> Option<ast::NumberValue> {
    let clean: String = text.chars().filter(|c| *c != '_').collect();
    let (body, scale) = match clean.chars().last() {
        Some('k' | 'K') => (&clean[..clean.len() - 1], 1e3),
        Some('M') => (&clean[..clean.len() - 1], 1e6),
        Some('G') => (&clean[..clean.len() - 1], 1e9),
        _ => (clean.as_str(), 1.0),
    };
    let is_float = body.contains(['.', 'e', 'E']);
    if !is_float {
        let int: i64 = body.parse().ok()?;
        return int.checked_mul(scale as i64).map(ast::NumberValue::Int);
    }
    let value: f64 = body.parse().ok()?;
    let value = value * scale;
    if !value.is_finite() {
        return None;
    }
    // `2.5k` is an integer count; `5e-5` stays a float.
    if scale > 1.0 && value.fract() == 0.0 && value.abs() < 9.0e18 {
        return Some(ast::NumberValue::Int(value as i64));
    }
    Some(ast::NumberValue::Float(value))
}

/// A float literal with a non-zero digit before its exponent whose value
/// rounded to 0 (`1e-400`).
fn underflows(text: &str, value: &ast::NumberValue) -> bool {
    let mantissa = text.split(['e', 'E']).next().unwrap_or("");
    matches!(value, ast::NumberValue::Float(x) if *x == 0.0)
        && mantissa.chars().any(|c| matches!(c, '1'..='9'))
}

fn unit(text: &str) -> ast::Unit {
    match text.trim_end_matches('s') {
        "step" => ast::Unit::Steps,
        "episode" => ast::Unit::Episodes,
        "update" => ast::Unit::Updates,
        "stage" => ast::Unit::Stages,
        "iteration" => ast::Unit::Iterations,
        other => unreachable!("grammar guarantees a known unit, found {other}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn number_literals() {
        use ast::NumberValue::{Float, Int};
        assert_eq!(number_value("100_000"), Some(Int(100_000)));
        assert_eq!(number_value("1M"), Some(Int(1_000_000)));
        assert_eq!(number_value("2.5k"), Some(Int(2_500)));
        assert_eq!(number_value("5e-5"), Some(Float(5e-5)));
        assert_eq!(number_value("-1"), Some(Int(-1)));
        assert_eq!(number_value("99999999999999999999"), None);
        assert_eq!(number_value("1e999"), None);
    }
}
