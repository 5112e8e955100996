//! `mbrl envs`, `mbrl describe NAME`, `mbrl explain CODE`: the schema registry, printed.

use crate::diagnostics::Code;
use crate::schema::{self, Ctor, Default, Kind};

pub fn envs() -> u8 {
    for ctor in schema::ctors_of(Kind::Env) {
        let spaces = default_spaces(ctor);
        let params: Vec<String> = ctor
            .fields
            .iter()
            .map(|f| format!("{}={}", f.name, default_text(f.default)))
            .collect();
        outln!("{}({})", ctor.name, params.join(", "));
        if let Some(sp) = spaces {
            let episodic = match sp.episodic {
                true => "episodic",
                false => "continuing",
            };
            outln!(
                "    obs {}, actions {}, {episodic}",
                sp.describe_obs(),
                sp.action.describe()
            );
        }
        outln!("    {}", ctor.doc);
    }
    0
}

pub fn describe(name: &str) -> u8 {
    if let Some(kind) = Kind::from_name(name) {
        outln!("{} constructors:", kind.name());
        for ctor in schema::ctors_of(kind) {
            outln!("  {:<18} {}", ctor.name, ctor.doc);
        }
        return 0;
    }
    let ctors: Vec<&Ctor> = schema::ctors().filter(|c| c.name == name).collect();
    if ctors.is_empty() {
        let names = schema::ctors()
            .map(|c| c.name)
            .chain(Kind::DECLARABLE.iter().map(|k| k.name()));
        let hint = crate::diagnostics::did_you_mean(name, names).unwrap_or_default();
        errln!("error: no kind or constructor `{name}` {hint}");
        return 2;
    }
    for ctor in ctors {
        outln!("{} {}: {}", ctor.kind.name(), ctor.name, ctor.doc);
        if ctor.open {
            outln!("  accepts any agent field; checked where applied");
        }
        for f in ctor.fields {
            let unit = f.unit.map(|u| format!(" {}", u.name())).unwrap_or_default();
            let range = match f.range == schema::Range::ANY {
                true => String::new(),
                false => format!(" in {}", f.range),
            };
            outln!(
                "  {:<20} {}{range}, default {}{unit}",
                f.name,
                f.ty,
                default_text(f.default)
            );
            outln!("  {:<20} {}", "", f.doc);
        }
    }
    0
}

pub fn explain(code: &str) -> u8 {
    let found = Code::ALL
        .iter()
        .find(|c| c.as_str() == code || c.as_str().ends_with(&format!("::{code}")));
    match found {
        Some(c) => {
            outln!("{}: {}", c.as_str(), c.summary());
            0
        }
        None => {
            errln!("error: unknown diagnostic code `{code}`; the codes are listed in the README");
            2
        }
    }
}

fn default_spaces(ctor: &Ctor) -> Option<schema::EnvSpaces> {
    let spaces = ctor.spaces?;
    Some(spaces(&|name| ctor.default_int(name)))
}

fn default_text(d: Default) -> String {
    match d {
        Default::Required => "required".into(),
        Default::Absent => "none".into(),
        Default::Int(i) => i.to_string(),
        Default::Float(f) => schema::num(f),
        Default::Bool(b) => b.to_string(),
        Default::Enum(e) | Default::Ctor(e) => e.to_string(),
        Default::Ints(xs) => format!("{xs:?}"),
        Default::Names(xs) => format!("[{}]", xs.join(", ")),
    }
}
