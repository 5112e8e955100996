//! Evaluation of expressions against the schema: names, kinds, fields, types,
//! units, ranges, defaults, arguments and recursion.
//!
//! Parameters are bound lazily (a parameter is its argument expression plus
//! the caller's scope), so an untyped parameter is checked against the type
//! of the field where it is used.

use std::collections::{BTreeMap, HashMap};
use std::rc::Rc;

use crate::check::value::{FieldValue, Obj, Spanned, Value};
use crate::diagnostics::{did_you_mean, Code, Diag};
use crate::resolve::{DefId, ModuleId, OverrideTarget, Program};
use crate::schema::{self, Ctor, Default, Field, Kind, Ty};
use crate::source::Span;
use crate::syntax::ast;

/// The longest list a field takes.
pub const MAX_LIST: usize = 10_000;

/// Names visible to an expression: its module's scope plus bound parameters.
#[derive(Clone)]
pub struct Scope<'a> {
    pub module: ModuleId,
    pub(super) params: Rc<HashMap<String, Binding<'a>>>,
}

#[derive(Clone)]
pub(super) enum Binding<'a> {
    Thunk(&'a ast::Expr, Scope<'a>),
    Unknown,
}

impl Scope<'_> {
    pub fn module(module: ModuleId) -> Scope<'static> {
        Scope {
            module,
            params: Rc::new(HashMap::new()),
        }
    }
}

/// One `name: value` to apply to a constructor.
pub struct Assign<'a> {
    pub name: String,
    pub name_span: Span,
    pub expr: &'a ast::Expr,
    pub scope: Scope<'a>,
}

pub struct Evaluator<'p> {
    pub program: &'p Program,
    pub diags: Vec<Diag>,
    cache: HashMap<DefId, Value>,
    stack: Vec<DefId>,
    /// Where the fields being applied were written when it is not the block
    /// itself (`regime `quick``): unknown-field errors name it.
    pub setting_from: Option<String>,
    /// The horizons of the losses inlined into the loss being lowered
    /// (`Evaluator::loss_math`), which it runs at the longest of.
    pub(super) inlined_horizons: Vec<i64>,
}

impl<'p> Evaluator<'p> {
    pub fn new(program: &'p Program) -> Evaluator<'p> {
        Evaluator {
            program,
            diags: Vec::new(),
            cache: HashMap::new(),
            stack: Vec::new(),
            setting_from: None,
            inlined_horizons: Vec::new(),
        }
    }

    pub fn snippet(&self, span: Span) -> String {
        let text = without_comments(self.program.sources.snippet(span));
        text.split_whitespace().collect::<Vec<_>>().join(" ")
    }

    /// The kind a definition declares, reporting an unknown kind once.
    pub fn def_kind(&mut self, id: DefId) -> Option<Kind> {
        let def = self.program.definition(id);
        if let Some(kind) = Kind::from_name(&def.kind.name) {
            return Some(kind);
        }
        let kinds = Kind::DECLARABLE.iter().map(|k| k.name());
        let help = match def.kind.name.as_str() {
            "experiment" => {
                Some("experiments are written `experiment NAME { ... }`, without `=`".to_string())
            }
            name => did_you_mean(name, kinds),
        };
        let msg = format!("unknown block kind `{}`", def.kind.name);
        let diag = Diag::error(Code::UnknownKind, msg, def.kind.span, "not a block kind")
            .with_help_opt(help);
        self.diags.push(diag);
        None
    }

    /// A definition used without arguments (parameters take their defaults).
    pub fn definition(&mut self, id: DefId, use_span: Span) -> Value {
        if let Some(value) = self.cache.get(&id) {
            return value.clone();
        }
        let def = self.program.definition(id);
        let mut bindings = HashMap::new();
        for param in def.params.iter().flatten() {
            let binding = match &param.default {
                Some(expr) => Binding::Thunk(expr, Scope::module(id.module)),
                None => Binding::Unknown,
            };
            bindings.insert(param.name.name.clone(), binding);
        }
        let scope = Scope {
            module: id.module,
            params: Rc::new(bindings),
        };
        let value = self.def_body(id, scope, use_span);
        self.cache.insert(id, value.clone());
        value
    }

    fn def_body<'a>(&mut self, id: DefId, scope: Scope<'a>, use_span: Span) -> Value
    where
        'p: 'a,
    {
        let def: &'p ast::Definition = self.program.definition(id);
        let Some(kind) = self.def_kind(id) else {
            return Value::Unknown;
        };
        if let Some(pos) = self.stack.iter().position(|d| *d == id) {
            let mut names: Vec<String> = self.stack[pos..]
                .iter()
                .map(|d| self.program.definition(*d).name.name.clone())
                .collect();
            names.push(def.name.name.clone());
            let msg = format!("`{}` is defined in terms of itself", def.name.name);
            let diag = Diag::error(Code::RecursiveDefinition, msg, use_span, "used here")
                .with_label(def.name.span, "defined here")
                .with_help(format!("break the cycle {}", names.join(" -> ")));
            self.diags.push(diag);
            return Value::Unknown;
        }
        self.stack.push(id);
        let value = self.expr(&scope, &def.body, Ty::Ref(kind), None);
        self.stack.pop();
        let Value::Obj(obj) = value else { return value };
        let mut obj = (*obj).clone();
        obj.label = def.name.name.clone();
        obj.key = def.name.name.clone();
        let mut obj = Rc::new(obj);
        for ov in &self.program.overrides {
            if ov.target == OverrideTarget::Definition(id) {
                let root = Scope::module(self.program.root);
                obj = self.apply_path(&obj, &ov.path, &ov.value, &root);
            }
        }
        Value::Obj(obj)
    }

    /// Evaluates `e` as a value of type `ty`; `field` gives unit, range and default constructor.
    pub fn expr<'a>(
        &mut self,
        scope: &Scope<'a>,
        e: &'a ast::Expr,
        ty: Ty,
        field: Option<&Field>,
    ) -> Value
    where
        'p: 'a,
    {
        if let Some(binding) = param_binding(scope, e) {
            return match binding {
                Binding::Thunk(expr, inner) => self.expr(&inner, expr, ty, field),
                Binding::Unknown => Value::Unknown,
            };
        }
        match (ty, &e.kind) {
            (Ty::Int | Ty::Float, ast::ExprKind::Number(n)) => self.number(n, e.span, ty, field),
            (Ty::Bool, ast::ExprKind::Bool(b)) => Value::Bool(*b),
            (Ty::Str, ast::ExprKind::Str(s)) => Value::Str(s.clone()),
            (Ty::Enum(opts), ast::ExprKind::Construct(c)) if c.is_bare() && c.path.len() == 1 => {
                self.enum_value(c.name(), opts, field)
            }
            (Ty::Name, ast::ExprKind::Construct(c)) if c.is_bare() && c.path.len() == 1 => {
                Value::Name(c.name().name.clone())
            }
            (Ty::Ref(kind), ast::ExprKind::Construct(c)) => self.construct(scope, c, e.span, kind),
            (Ty::Ref(Kind::Loss), ast::ExprKind::Math(m)) => self.loss_math(scope, m, e.span),
            (Ty::Ref(kind), ast::ExprKind::Record(fields)) => {
                self.anonymous(scope, fields, e.span, kind, field)
            }
            (Ty::List(_), ast::ExprKind::List(items)) if items.len() > MAX_LIST => {
                let msg = format!(
                    "a list of {} entries; mbrl takes lists of up to {MAX_LIST}",
                    items.len()
                );
                self.diags.push(
                    Diag::error(Code::TooLarge, msg, e.span, "this list").with_help(
                        "a list this long is a mistake, or belongs in a file of its own",
                    ),
                );
                Value::Unknown
            }
            (Ty::List(inner), ast::ExprKind::List(items)) => {
                let items = items
                    .iter()
                    .map(|item| Spanned {
                        value: self.expr(scope, item, *inner, None),
                        span: item.span,
                    })
                    .collect();
                Value::List(items)
            }
            (Ty::Any, _) => Value::Raw(scope.module, e.clone()),
            _ => self.type_mismatch(e, ty, field),
        }
    }

    fn type_mismatch(&mut self, e: &ast::Expr, ty: Ty, field: Option<&Field>) -> Value {
        let found = match &e.kind {
            ast::ExprKind::Number(_) => format!("the number `{}`", self.snippet(e.span)),
            ast::ExprKind::Str(_) => "a string".to_string(),
            ast::ExprKind::Bool(_) => format!("`{}`", self.snippet(e.span)),
            ast::ExprKind::List(_) => "a list".to_string(),
            ast::ExprKind::Record(_) => "a record".to_string(),
            ast::ExprKind::Construct(c) => format!("`{}`", self.snippet(c.path_span())),
            ast::ExprKind::Math(_) => {
                "arithmetic (only a loss is written as arithmetic)".to_string()
            }
        };
        let msg = format!("expected {ty}, found {found}");
        let mut diag = Diag::error(Code::TypeMismatch, msg, e.span, format!("expected {ty}"));
        if let Some(f) = field {
            diag = diag.with_help(format!("`{}` is {}: {}", f.name, ty, f.doc));
        }
        self.diags.push(diag);
        Value::Unknown
    }

    fn number(&mut self, n: &ast::Number, span: Span, ty: Ty, field: Option<&Field>) -> Value {
        if let Some((unit, unit_span)) = n.unit {
            self.check_unit(unit, unit_span, field);
        }
        let value = match (ty, n.value) {
            (Ty::Int, ast::NumberValue::Int(i)) => Value::Int(i),
            (Ty::Int, ast::NumberValue::Float(f)) if f.fract() == 0.0 && f.abs() < 9.0e18 => {
                Value::Int(f as i64)
            }
            (Ty::Int, ast::NumberValue::Float(_)) => {
                let msg = format!("expected an integer, found `{}`", self.snippet(span));
                let mut diag = Diag::error(Code::TypeMismatch, msg, span, "not a whole number");
                if let Some(f) = field {
                    diag = diag.with_help(format!("`{}` counts {}", f.name, f.doc));
                }
                self.diags.push(diag);
                return Value::Unknown;
            }
            (_, value) => Value::Float(value.as_f64()),
        };
        let x = n.value.as_f64();
        if let Some(f) = field {
            if !f.range.contains(x) {
                let msg = format!(
                    "`{}` must be in {}, found {}",
                    f.name,
                    f.range,
                    schema::num(x)
                );
                let diag = Diag::error(Code::OutOfRange, msg, span, "out of range")
                    .with_help(format!("{}: {}", f.name, f.doc));
                self.diags.push(diag);
                return Value::Unknown;
            }
        }
        value
    }

    fn check_unit(&mut self, unit: ast::Unit, span: Span, field: Option<&Field>) {
        let (msg, help) = match field.map(|f| (f.name, f.unit)) {
            Some((_, Some(expected))) if expected == unit => return,
            Some((name, Some(expected))) => (
                format!(
                    "`{name}` expects a count of {}, found {}",
                    expected.name(),
                    unit.name()
                ),
                format!(
                    "`{name}` counts {}; write the number in {}",
                    expected.name(),
                    expected.name()
                ),
            ),
            Some((name, None)) => (
                format!(
                    "`{name}` takes a plain number, found a count of {}",
                    unit.name()
                ),
                "drop the unit".to_string(),
            ),
            None => (
                format!("a count of {} is not expected here", unit.name()),
                "drop the unit".to_string(),
            ),
        };
        let diag = Diag::error(
            Code::UnitMismatch,
            msg,
            span,
            format!("this counts {}", unit.name()),
        )
        .with_help(help);
        self.diags.push(diag);
    }

    fn enum_value(&mut self, name: &ast::Ident, opts: &[&str], field: Option<&Field>) -> Value {
        if opts.contains(&name.name.as_str()) {
            return Value::Enum(name.name.clone());
        }
        let field_name = field
            .map(|f| format!(" for `{}`", f.name))
            .unwrap_or_default();
        let msg = format!("unknown value `{}`{field_name}", name.name);
        let listed: Vec<String> = opts.iter().map(|o| format!("`{o}`")).collect();
        let help = did_you_mean(&name.name, opts.iter().copied())
            .unwrap_or_else(|| format!("expected one of {}", listed.join(", ")));
        self.diags
            .push(Diag::error(Code::UnknownName, msg, name.span, "not an option").with_help(help));
        Value::Unknown
    }

    /// `name`, `m.name`, `name(args)`, `name { fields }` as a block of `kind`.
    fn construct<'a>(
        &mut self,
        scope: &Scope<'a>,
        c: &'a ast::Construct,
        span: Span,
        kind: Kind,
    ) -> Value
    where
        'p: 'a,
    {
        let def = match self.lookup_def(scope, c) {
            Ok(def) => def,
            Err(()) => return Value::Unknown,
        };
        if let Some(id) = def {
            return self.construct_def(scope, c, span, kind, id);
        }
        let name = &c.name().name;
        if let Some(ctor) = schema::ctor(kind, name) {
            let assigns = self.ctor_args(scope, c, ctor);
            let label = self.snippet(span);
            return Value::Obj(Rc::new(self.build(
                ctor,
                None,
                assigns,
                span,
                label,
                ctor.name.to_string(),
            )));
        }
        // `mean(sum(V(s), state))` reads as a call of constructors; as a
        // loss, it is arithmetic.
        if kind == Kind::Loss {
            if let Some(m) = crate::check::loss::as_math(c, span) {
                return self.loss_math(scope, &m, span);
            }
        }
        self.unknown_name(scope, c, kind);
        Value::Unknown
    }

    /// The definition a path names, `Ok(None)` if it names none, `Err` after a diagnostic.
    pub(super) fn lookup_def(
        &mut self,
        scope: &Scope,
        c: &ast::Construct,
    ) -> Result<Option<DefId>, ()> {
        let module = self.program.module(scope.module);
        match c.path.as_slice() {
            [name] => Ok(module.scope.get(&name.name).copied()),
            [qual, name] => {
                let Some(target) = module.qualified.get(&qual.name) else {
                    let msg = format!("unknown module `{}`", qual.name);
                    let help = format!("import it first: `use {}`", qual.name);
                    self.diags.push(
                        Diag::error(Code::UnknownName, msg, qual.span, "not imported")
                            .with_help(help),
                    );
                    return Err(());
                };
                let target = self.program.module(*target);
                match target.local.get(&name.name) {
                    Some(id) => Ok(Some(*id)),
                    None => {
                        let msg =
                            format!("module `{}` has no definition `{}`", target.name, name.name);
                        let help =
                            did_you_mean(&name.name, target.local.keys().map(String::as_str));
                        let diag =
                            Diag::error(Code::UnknownName, msg, name.span, "not defined there");
                        self.diags.push(diag.with_help_opt(help));
                        Err(())
                    }
                }
            }
            _ => {
                let msg = format!("`{}` is not a name", self.snippet(c.path_span()));
                let diag = Diag::error(Code::UnknownName, msg, c.path_span(), "too many `.`")
                    .with_help("write `module.name`");
                self.diags.push(diag);
                Err(())
            }
        }
    }

    fn construct_def<'a>(
        &mut self,
        scope: &Scope<'a>,
        c: &'a ast::Construct,
        span: Span,
        kind: Kind,
        id: DefId,
    ) -> Value
    where
        'p: 'a,
    {
        let def: &'p ast::Definition = self.program.definition(id);
        let Some(def_kind) = self.def_kind(id) else {
            return Value::Unknown;
        };
        if def_kind != kind {
            let msg = format!(
                "expected {}, found {} `{}`",
                kind.article(),
                def_kind.name(),
                def.name.name
            );
            let diag = Diag::error(
                Code::WrongKind,
                msg,
                c.path_span(),
                format!("this is {}", def_kind.article()),
            )
            .with_label(def.name.span, "defined here");
            self.diags.push(diag);
            return Value::Unknown;
        }
        let base = match (&def.params, &c.args) {
            (None, Some(args)) => {
                let at = args.first().map(|a| a.span).unwrap_or(c.name().span);
                let msg = format!("`{}` takes no arguments", def.name.name);
                let diag = Diag::error(Code::InvalidArgument, msg, at, "argument given here")
                    .with_label(def.name.span, "defined without parameters")
                    .with_help(format!(
                        "set fields in braces: `{} {{ field: value }}`",
                        def.name.name
                    ));
                self.diags.push(diag);
                self.definition(id, c.name().span)
            }
            (None, None) => self.definition(id, c.name().span),
            (Some(params), args) => match args {
                None => self.call(id, params, &[], scope, c.name().span),
                Some(args) => self.call(id, params, args, scope, c.name().span),
            },
        };
        let (Value::Obj(base), Some(record)) = (&base, &c.record) else {
            return base;
        };
        let assigns = record
            .iter()
            .map(|f| Assign::new(&f.name, &f.value, scope.clone()))
            .collect();
        let label = self.snippet(span);
        let obj = self.build(
            base.ctor,
            Some(base),
            assigns,
            base.span,
            label,
            base.key.clone(),
        );
        Value::Obj(Rc::new(obj))
    }

    /// Binds arguments to a parameterised definition and evaluates its body.
    fn call<'a>(
        &mut self,
        id: DefId,
        params: &'p [ast::Param],
        args: &'a [ast::Arg],
        scope: &Scope<'a>,
        span: Span,
    ) -> Value
    where
        'p: 'a,
    {
        let def: &'p ast::Definition = self.program.definition(id);
        let mut bindings: HashMap<String, Binding<'a>> = HashMap::new();
        let mut next_positional = 0;
        for arg in args {
            let param = match &arg.name {
                Some(name) => match params.iter().find(|p| p.name.name == name.name) {
                    Some(p) => p,
                    None => {
                        let msg = format!("`{}` has no parameter `{}`", def.name.name, name.name);
                        let help =
                            did_you_mean(&name.name, params.iter().map(|p| p.name.name.as_str()));
                        let diag =
                            Diag::error(Code::InvalidArgument, msg, name.span, "unknown parameter")
                                .with_label(def.name.span, "defined here");
                        self.diags.push(diag.with_help_opt(help));
                        continue;
                    }
                },
                None => match params.get(next_positional) {
                    Some(p) => {
                        next_positional += 1;
                        p
                    }
                    None => {
                        let msg = format!(
                            "`{}` takes {} argument(s), found more",
                            def.name.name,
                            params.len()
                        );
                        let diag =
                            Diag::error(Code::InvalidArgument, msg, arg.span, "extra argument")
                                .with_label(def.name.span, "defined here");
                        self.diags.push(diag);
                        continue;
                    }
                },
            };
            if bindings.contains_key(&param.name.name) {
                let msg = format!("parameter `{}` is given twice", param.name.name);
                self.diags.push(Diag::error(
                    Code::InvalidArgument,
                    msg,
                    arg.span,
                    "given again here",
                ));
                continue;
            }
            bindings.insert(
                param.name.name.clone(),
                Binding::Thunk(&arg.value, scope.clone()),
            );
        }
        for param in params {
            if bindings.contains_key(&param.name.name) {
                continue;
            }
            let binding = match &param.default {
                Some(expr) => Binding::Thunk(expr, Scope::module(id.module)),
                None => {
                    let msg = format!("`{}` needs argument `{}`", def.name.name, param.name.name);
                    let diag = Diag::error(
                        Code::MissingArgument,
                        msg,
                        span,
                        format!("`{}` missing", param.name.name),
                    )
                    .with_label(param.span, "declared here without a default")
                    .with_help(format!(
                        "write `{}({}: ...)`",
                        def.name.name, param.name.name
                    ));
                    self.diags.push(diag);
                    Binding::Unknown
                }
            };
            bindings.insert(param.name.name.clone(), binding);
        }
        let scope = Scope {
            module: id.module,
            params: Rc::new(bindings),
        };
        self.def_body(id, scope, span)
    }

    /// Arguments of a constructor call become field assignments.
    fn ctor_args<'a>(
        &mut self,
        scope: &Scope<'a>,
        c: &'a ast::Construct,
        ctor: &'static Ctor,
    ) -> Vec<Assign<'a>> {
        let mut assigns = Vec::new();
        let mut next_positional = 0;
        for arg in c.args.iter().flatten() {
            match &arg.name {
                Some(name) => assigns.push(Assign::new(name, &arg.value, scope.clone())),
                None => match ctor.positional.get(next_positional) {
                    Some(field) => {
                        next_positional += 1;
                        // A positional argument stands for the field it binds to.
                        let name = field.to_string();
                        assigns.push(Assign {
                            name,
                            name_span: arg.span,
                            expr: &arg.value,
                            scope: scope.clone(),
                        });
                    }
                    None => {
                        let msg = format!("`{}` takes no positional argument here", ctor.name);
                        let diag = Diag::error(
                            Code::InvalidArgument,
                            msg,
                            arg.span,
                            "positional argument",
                        )
                        .with_help(format!("name the field: `{}(field: value)`", ctor.name));
                        self.diags.push(diag);
                    }
                },
            }
        }
        for field in c.record.iter().flatten() {
            assigns.push(Assign::new(&field.name, &field.value, scope.clone()));
        }
        assigns
    }

    /// `{ a: 1 }` where the field's default names the constructor.
    fn anonymous<'a>(
        &mut self,
        scope: &Scope<'a>,
        fields: &'a [ast::Field],
        span: Span,
        kind: Kind,
        field: Option<&Field>,
    ) -> Value
    where
        'p: 'a,
    {
        let ctor = match field.map(|f| f.default) {
            Some(Default::Ctor(name)) => schema::ctor(kind, name),
            _ => None,
        };
        let Some(ctor) = ctor else {
            let msg = format!("expected {}, found a record", kind.article());
            let names: Vec<&str> = schema::ctors_of(kind).map(|c| c.name).collect();
            let help = format!(
                "name the constructor, e.g. `{} {{ ... }}`",
                names.first().copied().unwrap_or("name")
            );
            self.diags.push(
                Diag::error(Code::TypeMismatch, msg, span, "anonymous record").with_help(help),
            );
            return Value::Unknown;
        };
        let assigns = fields
            .iter()
            .map(|f| Assign::new(&f.name, &f.value, scope.clone()))
            .collect();
        let label = self.snippet(span);
        Value::Obj(Rc::new(self.build(
            ctor,
            None,
            assigns,
            span,
            label,
            ctor.name.to_string(),
        )))
    }

    fn unknown_name(&mut self, scope: &Scope, c: &ast::Construct, kind: Kind) {
        let name = &c.name().name;
        let other_def = self.program.module(scope.module).scope.get(name).copied();
        if let Some(ctor) = schema::ctor_any_kind(name).filter(|_| other_def.is_none()) {
            let msg = format!("expected {}, found constructor `{}`", kind.article(), name);
            let diag = Diag::error(
                Code::WrongKind,
                msg,
                c.name().span,
                format!("`{name}` makes {}", ctor.kind.article()),
            );
            self.diags.push(diag);
            return;
        }
        let module = self.program.module(scope.module);
        let mut candidates: Vec<&str> = schema::ctors_of(kind).map(|c| c.name).collect();
        for (def_name, id) in &module.scope {
            let def = self.program.definition(*id);
            if def.kind.name == kind.name() {
                candidates.push(def_name);
            }
        }
        candidates.extend(scope.params.keys().map(String::as_str));
        candidates.sort_unstable();
        let help = did_you_mean(name, candidates.iter().copied()).or_else(|| {
            Some(format!(
                "the {} constructors are {}",
                kind.name(),
                list_ctors(kind)
            ))
        });
        let msg = format!("unknown {} `{}`", kind.name(), name);
        self.diags.push(
            Diag::error(Code::UnknownName, msg, c.name().span, "not defined").with_help_opt(help),
        );
    }

    /// Builds an object: `base` (or the constructor's defaults) with `assigns` applied.
    pub fn build<'a>(
        &mut self,
        ctor: &'static Ctor,
        base: Option<&Obj>,
        assigns: Vec<Assign<'a>>,
        span: Span,
        label: String,
        key: String,
    ) -> Obj
    where
        'p: 'a,
    {
        let mut fields = match base {
            Some(b) => b.fields.clone(),
            None => defaults(ctor, span),
        };
        let mut open_fields = base.map(|b| b.open_fields.clone()).unwrap_or_default();
        let mut seen: HashMap<String, Span> = HashMap::new();
        for a in assigns {
            if let Some(first) = seen.get(&a.name) {
                let msg = format!("field `{}` is given twice", a.name);
                let diag = Diag::error(Code::DuplicateField, msg, a.name_span, "given again here")
                    .with_label(*first, "first given here")
                    .with_help("remove one of them");
                self.diags.push(diag);
                continue;
            }
            seen.insert(a.name.clone(), a.name_span);
            if ctor.open {
                open_fields.retain(|(_, f)| f.name.name != a.name);
                let ident = ast::Ident {
                    name: a.name.clone(),
                    span: a.name_span,
                };
                let field = ast::Field {
                    name: ident,
                    value: a.expr.clone(),
                    span: a.name_span.to(a.expr.span),
                };
                open_fields.push((a.scope.module, field));
                continue;
            }
            let Some(spec) = ctor.field(&a.name) else {
                self.unknown_field(ctor, &a.name, a.name_span);
                continue;
            };
            let value = self.expr(&a.scope, a.expr, spec.ty, Some(spec));
            fields.insert(
                spec.name,
                FieldValue {
                    value,
                    span: a.expr.span,
                    explicit: true,
                },
            );
        }
        if base.is_none() {
            for spec in ctor
                .fields
                .iter()
                .filter(|f| f.default == Default::Required)
            {
                if fields.contains_key(spec.name) {
                    continue;
                }
                let msg = format!("`{}` needs the field `{}`", ctor.name, spec.name);
                let help = format!("add `{}: ...`, {}", spec.name, describe_field(spec));
                let diag = Diag::error(
                    Code::MissingField,
                    msg,
                    span,
                    format!("`{}` missing", spec.name),
                )
                .with_help(help);
                self.diags.push(diag);
            }
        }
        Obj {
            ctor,
            label,
            key,
            span,
            fields,
            open_fields,
        }
    }

    pub fn unknown_field(&mut self, ctor: &Ctor, name: &str, span: Span) {
        let msg = match &self.setting_from {
            Some(from) => format!(
                "{from} sets `{name}`, which `{}` has no field of",
                ctor.name
            ),
            None => format!("`{}` has no field `{}`", ctor.name, name),
        };
        let names: Vec<&str> = ctor.fields.iter().map(|f| f.name).collect();
        let help =
            did_you_mean(name, names.iter().copied()).unwrap_or_else(|| match names.is_empty() {
                true => format!("`{}` has no fields", ctor.name),
                false => format!("its fields are {}", names.join(", ")),
            });
        self.diags
            .push(Diag::error(Code::UnknownField, msg, span, "unknown field").with_help(help));
    }

    /// Applies `path = expr` to `obj`, descending into nested blocks (`optimizer.b1`).
    pub fn apply_path<'a>(
        &mut self,
        obj: &Rc<Obj>,
        path: &'a [ast::Ident],
        expr: &'a ast::Expr,
        scope: &Scope<'a>,
    ) -> Rc<Obj>
    where
        'p: 'a,
    {
        let (head, rest) = match path {
            [head, rest @ ..] => (head, rest),
            [] => return obj.clone(),
        };
        if rest.is_empty() {
            let assign = Assign::new(head, expr, scope.clone());
            let built = self.build(
                obj.ctor,
                Some(obj),
                vec![assign],
                obj.span,
                obj.label.clone(),
                obj.key.clone(),
            );
            return Rc::new(built);
        }
        let Some(spec) = obj.ctor.field(&head.name) else {
            self.unknown_field(obj.ctor, &head.name, head.span);
            return obj.clone();
        };
        let Some(inner) = obj.obj(spec.name).cloned() else {
            let msg = format!(
                "`{}` is not a block, so `{}.{}` cannot be set",
                head.name, head.name, rest[0].name
            );
            let diag = Diag::error(
                Code::InvalidOverride,
                msg,
                rest[0].span,
                "not a field of a block",
            )
            .with_help(format!("set `{}` itself", head.name));
            self.diags.push(diag);
            return obj.clone();
        };
        let inner = self.apply_path(&inner, rest, expr, scope);
        let mut out = (**obj).clone();
        out.fields.insert(
            spec.name,
            FieldValue {
                value: Value::Obj(inner),
                span: expr.span,
                explicit: true,
            },
        );
        Rc::new(out)
    }
}

impl<'a> Assign<'a> {
    pub fn new(name: &ast::Ident, expr: &'a ast::Expr, scope: Scope<'a>) -> Assign<'a> {
        Assign {
            name: name.name.clone(),
            name_span: name.span,
            expr,
            scope,
        }
    }
}

/// The schema defaults of a constructor, spanned at the constructing expression.
fn defaults(ctor: &'static Ctor, span: Span) -> BTreeMap<&'static str, FieldValue> {
    let mut fields = BTreeMap::new();
    for spec in ctor.fields {
        let value = match default_value(spec, span) {
            Some(v) => v,
            None => continue,
        };
        fields.insert(
            spec.name,
            FieldValue {
                value,
                span,
                explicit: false,
            },
        );
    }
    fields
}

fn default_value(spec: &Field, span: Span) -> Option<Value> {
    let spanned = |value| Spanned { value, span };
    let value = match spec.default {
        Default::Required | Default::Absent => return None,
        Default::Int(i) if spec.ty == Ty::Float => Value::Float(i as f64),
        Default::Int(i) => Value::Int(i),
        Default::Float(f) => Value::Float(f),
        Default::Bool(b) => Value::Bool(b),
        Default::Enum(e) => Value::Enum(e.to_string()),
        Default::Ints(xs) => Value::List(xs.iter().map(|x| spanned(Value::Int(*x))).collect()),
        Default::Names(xs) => Value::List(
            xs.iter()
                .map(|x| spanned(Value::Name(x.to_string())))
                .collect(),
        ),
        Default::Ctor(name) => {
            let Ty::Ref(kind) = spec.ty else { return None };
            let ctor = schema::ctor(kind, name)?;
            let obj = Obj {
                ctor,
                label: name.to_string(),
                key: name.to_string(),
                span,
                fields: defaults(ctor, span),
                open_fields: Vec::new(),
            };
            Value::Obj(Rc::new(obj))
        }
    };
    Some(value)
}

/// "an integer in [1, ∞) (env steps of training)" for help texts.
pub fn describe_field(spec: &Field) -> String {
    let range = match spec.range == schema::Range::ANY {
        true => String::new(),
        false => format!(" in {}", spec.range),
    };
    format!("{}{range} ({})", spec.ty, spec.doc)
}

fn list_ctors(kind: Kind) -> String {
    let names: Vec<String> = schema::ctors_of(kind)
        .map(|c| format!("`{}`", c.name))
        .collect();
    names.join(", ")
}

fn param_binding<'a>(scope: &Scope<'a>, e: &ast::Expr) -> Option<Binding<'a>> {
    let ast::ExprKind::Construct(c) = &e.kind else {
        return None;
    };
    if !(c.is_bare() && c.path.len() == 1) {
        return None;
    }
    scope.params.get(&c.name().name).cloned()
}

/// `text` with its `//` and `/* */` comments removed (a span can end after
/// the comments that follow its value); strings are kept whole.
fn without_comments(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' => {
                out.push(c);
                while let Some(c) = chars.next() {
                    out.push(c);
                    match c {
                        '\\' => out.extend(chars.next()),
                        '"' => break,
                        _ => (),
                    }
                }
            }
            '/' if chars.peek() == Some(&'/') => {
                for c in chars.by_ref() {
                    if c == '\n' {
                        out.push(' ');
                        break;
                    }
                }
            }
            '/' if chars.peek() == Some(&'*') => {
                chars.next();
                let mut last = ' ';
                for c in chars.by_ref() {
                    if last == '*' && c == '/' {
                        break;
                    }
                    last = c;
                }
                out.push(' ');
            }
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod snippet_tests {
    #[test]
    fn comments_leave_a_snippet_but_strings_keep_theirs() {
        let t = super::without_comments("quick // a note\n  /* more */ x \"a // b\"");
        assert_eq!(
            t.split_whitespace().collect::<Vec<_>>(),
            ["quick", "x", "\"a", "//", "b\""]
        );
    }
}
