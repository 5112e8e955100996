//! Checked values: what an expression means once names, types and defaults are settled.

use std::collections::BTreeMap;
use std::rc::Rc;

use crate::resolve::ModuleId;
use crate::schema::Ctor;
use crate::source::Span;
use crate::syntax::ast;

#[derive(Clone, Debug)]
pub enum Value {
    Int(i64),
    Float(f64),
    Bool(bool),
    Str(String),
    Enum(String),
    Name(String),
    List(Vec<Spanned>),
    Obj(Rc<Obj>),
    /// An expression kept for a dedicated rule (tuned-table rows).
    Raw(ModuleId, ast::Expr),
    /// A loss written as an expression, resolved to its terms.
    Term(Rc<crate::autodiff::Term>),
    /// Not known while checking: a parameter without a value, or a value that
    /// already produced a diagnostic. Rules skip it.
    Unknown,
}

#[derive(Clone, Debug)]
pub struct Spanned {
    pub value: Value,
    pub span: Span,
}

/// One field's value in an [`Obj`].
#[derive(Clone, Debug)]
pub struct FieldValue {
    pub value: Value,
    /// The value's expression, or the constructing expression for a default.
    pub span: Span,
    /// False when the value is the schema default.
    pub explicit: bool,
}

/// A constructed block: a constructor with every field settled.
#[derive(Clone, Debug)]
pub struct Obj {
    pub ctor: &'static Ctor,
    /// How to show it: a definition name (`er`) or the source (`procmaze(grid_size: 4)`).
    pub label: String,
    /// The head name, matched against tuned-table keys: `er`, `procmaze`.
    pub key: String,
    /// The expression or definition that produced it.
    pub span: Span,
    pub fields: BTreeMap<&'static str, FieldValue>,
    /// Fields of an open constructor (a regime), checked where applied.
    pub open_fields: Vec<(ModuleId, ast::Field)>,
}

impl Obj {
    pub fn get(&self, name: &str) -> Option<&FieldValue> {
        self.fields.get(name)
    }

    pub fn int(&self, name: &str) -> Option<i64> {
        match self.get(name)?.value {
            Value::Int(x) => Some(x),
            _ => None,
        }
    }

    pub fn float(&self, name: &str) -> Option<f64> {
        match self.get(name)?.value {
            Value::Float(x) => Some(x),
            Value::Int(x) => Some(x as f64),
            _ => None,
        }
    }

    pub fn bool(&self, name: &str) -> Option<bool> {
        match self.get(name)?.value {
            Value::Bool(x) => Some(x),
            _ => None,
        }
    }

    pub fn enum_(&self, name: &str) -> Option<&str> {
        match &self.get(name)?.value {
            Value::Enum(x) => Some(x),
            _ => None,
        }
    }

    pub fn obj(&self, name: &str) -> Option<&Rc<Obj>> {
        match &self.get(name)?.value {
            Value::Obj(x) => Some(x),
            _ => None,
        }
    }

    pub fn ints(&self, name: &str) -> Option<Vec<i64>> {
        match &self.get(name)?.value {
            Value::List(items) => items
                .iter()
                .map(|s| match s.value {
                    Value::Int(x) => Some(x),
                    _ => None,
                })
                .collect(),
            _ => None,
        }
    }

    /// The span to point at for a field: its value if given, else the block.
    pub fn span_of(&self, name: &str) -> Span {
        self.get(name).map(|f| f.span).unwrap_or(self.span)
    }

    pub fn is_explicit(&self, name: &str) -> bool {
        self.get(name).is_some_and(|f| f.explicit)
    }

    /// True when the field is present and its value is known.
    pub fn is_set(&self, name: &str) -> bool {
        self.get(name)
            .is_some_and(|f| !matches!(f.value, Value::Unknown))
    }

    pub fn is_unknown(&self, name: &str) -> bool {
        self.get(name)
            .is_some_and(|f| matches!(f.value, Value::Unknown))
    }
}

impl Obj {
    /// Every field, resolved, in a stable order: `dqn{batch=320,lr=0.0001,...}`.
    pub fn describe(&self) -> String {
        let fields: Vec<String> = self
            .fields
            .iter()
            .map(|(k, v)| format!("{k}={}", v.value.describe()))
            .collect();
        format!("{}{{{}}}", self.ctor.name, fields.join(","))
    }
}

impl Value {
    pub fn describe(&self) -> String {
        match self {
            Value::Int(i) => i.to_string(),
            Value::Float(f) => format!("{f:e}"),
            Value::Bool(b) => b.to_string(),
            Value::Str(s) => format!("{s:?}"),
            Value::Enum(e) | Value::Name(e) => e.clone(),
            Value::List(items) => {
                let parts: Vec<String> = items.iter().map(|i| i.value.describe()).collect();
                format!("[{}]", parts.join(","))
            }
            Value::Obj(o) => o.describe(),
            Value::Raw(_, _) => "<expr>".to_string(),
            Value::Term(t) => t.describe(),
            Value::Unknown => "?".to_string(),
        }
    }
}
