//! The abstract syntax tree: plain data, every node carrying its [`Span`].

use crate::source::Span;

#[derive(Clone, Debug, PartialEq)]
pub struct File {
    pub items: Vec<Item>,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Item {
    Use(Use),
    Definition(Definition),
    Experiment(Experiment),
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Ident {
    pub name: String,
    pub span: Span,
}

/// `use young2022::*`, `use young2022::{er, ...}`, `use young2022`, `use "file.exp"`.
#[derive(Clone, Debug, PartialEq)]
pub struct Use {
    pub target: UseTarget,
    pub names: UseNames,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub enum UseTarget {
    Module(Ident),
    File { path: String, span: Span },
}

impl UseTarget {
    pub fn span(&self) -> Span {
        match self {
            UseTarget::Module(ident) => ident.span,
            UseTarget::File { span, .. } => *span,
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub enum UseNames {
    /// `use m`: names are reachable only qualified, as `m.name`.
    Qualified,
    /// `use m::*`.
    All(Span),
    /// `use m::{a, b}` or `use m::a`.
    List(Vec<Ident>),
}

/// `KIND NAME(PARAMS) = BODY`.
#[derive(Clone, Debug, PartialEq)]
pub struct Definition {
    pub kind: Ident,
    pub name: Ident,
    pub params: Option<Vec<Param>>,
    pub body: Expr,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Param {
    pub name: Ident,
    pub ty: Option<Ident>,
    pub default: Option<Expr>,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Experiment {
    pub name: Ident,
    pub fields: Vec<Field>,
    pub axes: Vec<Vary>,
    pub expects: Vec<Expect>,
    pub span: Span,
}

/// `expect perfect_model > er on [flute] by final(10%) margin 0.01 at 95%`.
#[derive(Clone, Debug, PartialEq)]
pub struct Expect {
    /// The sides: values of one axis (a name, or a number for a numeric axis), with their text.
    pub left: Ident,
    pub op: (ClaimOp, Span),
    pub right: Ident,
    /// `on [flute, buttons]`: values of the other axes the claim is restricted to.
    pub on: Option<(Vec<Expr>, Span)>,
    /// `by final(10%)`: the summary's name and its argument.
    pub by: Option<(Ident, Option<ClaimNumber>)>,
    pub margin: Option<ClaimNumber>,
    pub at: Option<ClaimNumber>,
    pub span: Span,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClaimOp {
    Greater,
    GreaterEq,
    Less,
    LessEq,
}

impl ClaimOp {
    pub fn symbol(self) -> &'static str {
        match self {
            ClaimOp::Greater => ">",
            ClaimOp::GreaterEq => ">=",
            ClaimOp::Less => "<",
            ClaimOp::LessEq => "<=",
        }
    }
}

/// A number in a claim: `95%` (a percentage) or `0.95`; `None` when it does not fit an f64.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ClaimNumber {
    pub value: Option<f64>,
    pub percent: bool,
    pub span: Span,
}

impl ClaimNumber {
    /// The value as a fraction (`95%` is 0.95).
    pub fn fraction(&self) -> Option<f64> {
        self.value.map(|v| if self.percent { v / 100.0 } else { v })
    }
}

/// `vary agent.lr: [1e-4, 2e-4]`.
#[derive(Clone, Debug, PartialEq)]
pub struct Vary {
    pub path: Vec<Ident>,
    pub values: Vec<Expr>,
    pub list_span: Span,
    pub span: Span,
}

impl Vary {
    pub fn path_string(&self) -> String {
        let names: Vec<&str> = self.path.iter().map(|i| i.name.as_str()).collect();
        names.join(".")
    }

    pub fn path_span(&self) -> Span {
        self.path[0].span.to(self.path[self.path.len() - 1].span)
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Field {
    pub name: Ident,
    pub value: Expr,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Expr {
    pub kind: ExprKind,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub enum ExprKind {
    Number(Number),
    Str(String),
    Bool(bool),
    List(Vec<Expr>),
    /// An anonymous record `{ a: 1 }`, typed by the field it is assigned to.
    Record(Vec<Field>),
    Construct(Construct),
    /// Arithmetic: the body of a loss written as an expression.
    Math(Box<Math>),
}

/// A differentiable expression: `mean(sum(square(model(s, a) - s_next), state))`.
#[derive(Clone, Debug, PartialEq)]
pub struct Math {
    pub kind: MathKind,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub enum MathKind {
    Num(f64),
    Name(Ident),
    Call(Ident, Vec<Math>),
    Neg(Box<Math>),
    Bin(BinOp, Box<Math>, Box<Math>),
    /// `let name = value; body`.
    Let(Ident, Box<Math>, Box<Math>),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum BinOp {
    Add,
    Sub,
    Mul,
    Div,
    Gt,
    Ge,
    Lt,
    Le,
}

impl BinOp {
    pub fn symbol(self) -> &'static str {
        match self {
            BinOp::Add => "+",
            BinOp::Sub => "-",
            BinOp::Mul => "*",
            BinOp::Div => "/",
            BinOp::Gt => ">",
            BinOp::Ge => ">=",
            BinOp::Lt => "<",
            BinOp::Le => "<=",
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Number {
    pub value: NumberValue,
    pub unit: Option<(Unit, Span)>,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum NumberValue {
    Int(i64),
    Float(f64),
}

impl NumberValue {
    pub fn as_f64(self) -> f64 {
        match self {
            NumberValue::Int(i) => i as f64,
            NumberValue::Float(f) => f,
        }
    }
}

/// What a count counts. Written after a number: `1M steps`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Unit {
    Steps,
    Episodes,
    Updates,
    Stages,
    Iterations,
}

impl Unit {
    pub fn name(self) -> &'static str {
        match self {
            Unit::Steps => "steps",
            Unit::Episodes => "episodes",
            Unit::Updates => "updates",
            Unit::Stages => "stages",
            Unit::Iterations => "iterations",
        }
    }
}

/// `name`, `module.name`, `name(args)`, `name { fields }`, `name(args) { fields }`.
#[derive(Clone, Debug, PartialEq)]
pub struct Construct {
    pub path: Vec<Ident>,
    pub args: Option<Vec<Arg>>,
    pub record: Option<Vec<Field>>,
}

impl Construct {
    /// The last path segment: the referenced name.
    pub fn name(&self) -> &Ident {
        &self.path[self.path.len() - 1]
    }

    pub fn path_span(&self) -> Span {
        self.path[0].span.to(self.name().span)
    }

    /// True for a bare name without arguments or record.
    pub fn is_bare(&self) -> bool {
        self.args.is_none() && self.record.is_none()
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Arg {
    pub name: Option<Ident>,
    pub value: Expr,
    pub span: Span,
}
