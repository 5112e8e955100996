//! The standard library: `.exp` modules embedded in the binary.
//!
//! `use young2022::*` reads [`source`]`("young2022")`. The files live in
//! `stdlib/` at the crate root and are ordinary experiment files: `mbrl check
//! stdlib/young2022.exp` checks them like any other.

/// Every stdlib module: its name and its source text.
pub const MODULES: &[(&str, &str)] = &[
    ("young2022", include_str!("../stdlib/young2022.exp")),
    ("slbo", include_str!("../stdlib/slbo.exp")),
];

pub fn source(module: &str) -> Option<&'static str> {
    MODULES
        .iter()
        .find(|(name, _)| *name == module)
        .map(|(_, text)| *text)
}

pub fn names() -> impl Iterator<Item = &'static str> {
    MODULES.iter().map(|(name, _)| *name)
}

/// The stdlib module that defines the agent `name` (`agent NAME = ...` or
/// `agent NAME(...) = ...` at the start of a line).
pub fn module_defining(name: &str) -> Option<&'static str> {
    MODULES.iter().find_map(|(module, text)| {
        text.lines()
            .filter_map(|line| line.strip_prefix("agent "))
            .any(|rest| {
                rest.strip_prefix(name)
                    .is_some_and(|tail| tail.starts_with([' ', '(', '=']))
            })
            .then_some(*module)
    })
}
