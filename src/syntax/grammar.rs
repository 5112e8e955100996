//! The pest parser derived from `grammar/mbrl.pest`: its `Rule`s are what
//! the AST builder and the error messages both speak.

#[derive(pest_derive::Parser)]
#[grammar = "../grammar/mbrl.pest"]
pub struct MbrlParser;
