//! Resolve: loads a file and everything it imports, builds each module's
//! scope, and parses `--set` overrides.
//!
//! Input: the root file's origin and text, override strings, and a [`Loader`]
//! for imported files. Output: a [`Program`] holding every module's AST and
//! scope, with diagnostics for unknown modules and imports, import cycles,
//! duplicate definitions and malformed overrides.
//!
//! Invariants: the only stage that reads files, and only through the
//! `Loader`. It does not interpret definitions: what a name means is `check`'s
//! business.

mod overrides;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use crate::diagnostics::{did_you_mean, Code, Diag};
use crate::source::{FileId, Origin, SourceMap, Span};
use crate::stdlib;
use crate::syntax::{self, ast};

pub use overrides::{Override, OverrideTarget};

/// Reads imported files. The CLI uses [`FsLoader`]; tests may use a map.
pub trait Loader {
    fn load(&self, path: &Path) -> Option<String>;
}

/// Reads imports from the file system.
pub struct FsLoader;

impl Loader for FsLoader {
    fn load(&self, path: &Path) -> Option<String> {
        std::fs::read_to_string(path).ok()
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ModuleId(pub usize);

/// A definition: the `item`-th item of a module.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DefId {
    pub module: ModuleId,
    pub item: usize,
}

/// One parsed file and the names visible in it.
#[derive(Debug)]
pub struct Module {
    pub name: String,
    pub file: FileId,
    pub ast: ast::File,
    /// Every definition visible unqualified: local ones and imported ones.
    pub scope: HashMap<String, DefId>,
    /// `use m` makes `m.name` visible.
    pub qualified: HashMap<String, ModuleId>,
    /// Definitions of this module itself, by name.
    pub local: HashMap<String, DefId>,
}

/// Everything `check` needs: the source map, every module, and the overrides.
#[derive(Debug)]
pub struct Program {
    pub sources: SourceMap,
    pub modules: Vec<Module>,
    pub root: ModuleId,
    pub overrides: Vec<Override>,
}

impl Program {
    pub fn module(&self, id: ModuleId) -> &Module {
        &self.modules[id.0]
    }

    pub fn definition(&self, id: DefId) -> &ast::Definition {
        match &self.modules[id.module.0].ast.items[id.item] {
            ast::Item::Definition(def) => def,
            _ => unreachable!("a DefId always points at a definition"),
        }
    }

    /// The experiments of the root file.
    pub fn experiments(&self) -> impl Iterator<Item = &ast::Experiment> {
        self.module(self.root)
            .ast
            .items
            .iter()
            .filter_map(|item| match item {
                ast::Item::Experiment(exp) => Some(exp),
                _ => None,
            })
    }
}

/// Loads `text` and its imports. Returns `None` only when the root file does not parse.
pub fn resolve(
    origin: Origin,
    text: String,
    overrides: &[String],
    loader: &dyn Loader,
    diags: &mut Vec<Diag>,
) -> Option<Program> {
    let mut ctx = Ctx {
        sources: SourceMap::new(),
        modules: Vec::new(),
        loaded: HashMap::new(),
        loader,
        diags,
    };
    let root = ctx.load(origin, text, &mut Vec::new())?;
    let mut program = Program {
        sources: ctx.sources,
        modules: ctx.modules,
        root,
        overrides: Vec::new(),
    };
    program.overrides = overrides::parse_all(&mut program, overrides, diags);
    Some(program)
}

struct Ctx<'l, 'd> {
    sources: SourceMap,
    modules: Vec<Module>,
    loaded: HashMap<Origin, ModuleId>,
    loader: &'l dyn Loader,
    diags: &'d mut Vec<Diag>,
}

impl Ctx<'_, '_> {
    /// Parses one file, loads its imports (depth first) and builds its scope.
    fn load(&mut self, origin: Origin, text: String, stack: &mut Vec<Origin>) -> Option<ModuleId> {
        let name = module_name(&origin);
        // A byte-order mark (as some editors write) is not part of the text.
        let text = match text.strip_prefix('\u{feff}') {
            Some(rest) => rest.to_string(),
            None => text,
        };
        let file = self.sources.add(origin.clone(), text);
        let text = self.sources.get(file).text.clone();
        let ast = syntax::parse(file, &text, self.diags)?;
        let id = ModuleId(self.modules.len());
        let local = local_definitions(id, &ast, self.diags);
        let module = Module {
            name,
            file,
            ast,
            scope: HashMap::new(),
            qualified: HashMap::new(),
            local,
        };
        self.modules.push(module);
        self.loaded.insert(origin.clone(), id);
        stack.push(origin.clone());
        let uses: Vec<ast::Use> = self.modules[id.0]
            .ast
            .items
            .iter()
            .filter_map(|item| match item {
                ast::Item::Use(u) => Some(u.clone()),
                _ => None,
            })
            .collect();
        let mut imports = Vec::new();
        for decl in &uses {
            if let Some(target) = self.import(&origin, decl, stack) {
                imports.push((decl, target));
            }
        }
        stack.pop();
        self.build_scope(id, &imports);
        Some(id)
    }

    /// Finds and loads the module a `use` names.
    fn import(
        &mut self,
        from: &Origin,
        decl: &ast::Use,
        stack: &mut Vec<Origin>,
    ) -> Option<ModuleId> {
        let origin = self.target_origin(from, &decl.target)?;
        if stack.contains(&origin) {
            let chain: Vec<String> = stack.iter().chain([&origin]).map(origin_name).collect();
            let diag = Diag::error(
                Code::ImportCycle,
                format!("import cycle: {}", chain.join(" -> ")),
                decl.target.span(),
                "this import closes the cycle",
            )
            .with_help("move the shared definitions into a third file that both import");
            self.diags.push(diag);
            return None;
        }
        if let Some(id) = self.loaded.get(&origin) {
            return Some(*id);
        }
        let text = match &origin {
            Origin::Stdlib(module) => stdlib::source(module).map(str::to_string),
            Origin::Path(path) => self.loader.load(path),
            _ => None,
        };
        let Some(text) = text else {
            self.push_unknown_module(decl, &origin);
            return None;
        };
        self.load(origin, text, stack)
    }

    fn target_origin(&mut self, from: &Origin, target: &ast::UseTarget) -> Option<Origin> {
        let dir = match from {
            Origin::Path(path) => path.parent().map(Path::to_path_buf).unwrap_or_default(),
            _ => PathBuf::new(),
        };
        match target {
            ast::UseTarget::Module(ident) => match stdlib::names().find(|n| *n == ident.name) {
                Some(name) => Some(Origin::Stdlib(name)),
                None => Some(Origin::Path(normalize(
                    &dir.join(format!("{}.exp", ident.name)),
                ))),
            },
            ast::UseTarget::File { path, .. } => Some(Origin::Path(normalize(&dir.join(path)))),
        }
    }

    fn push_unknown_module(&mut self, decl: &ast::Use, origin: &Origin) {
        let (message, help) = match &decl.target {
            ast::UseTarget::Module(ident) => {
                let help = did_you_mean(&ident.name, stdlib::names()).unwrap_or_else(|| {
                    let names: Vec<&str> = stdlib::names().collect();
                    format!(
                        "the stdlib modules are {}; a file `{}.exp` beside this one also works",
                        names.join(", "),
                        ident.name
                    )
                });
                (format!("unknown module `{}`", ident.name), help)
            }
            ast::UseTarget::File { path, .. } => (
                format!("cannot read `{path}`"),
                format!("no readable file at `{}`", origin_name(origin)),
            ),
        };
        let diag = Diag::error(
            Code::UnknownModule,
            message,
            decl.target.span(),
            "imported here",
        )
        .with_help(help);
        self.diags.push(diag);
    }

    /// Local definitions first; then the imported names, which local ones shadow.
    fn build_scope(&mut self, id: ModuleId, imports: &[(&ast::Use, ModuleId)]) {
        let mut scope = self.modules[id.0].local.clone();
        let mut qualified = HashMap::new();
        for (decl, target) in imports {
            let target_mod = &self.modules[target.0];
            match &decl.names {
                ast::UseNames::Qualified => {
                    qualified.insert(target_mod.name.clone(), *target);
                }
                ast::UseNames::All(_) => {
                    for (name, def) in &target_mod.local {
                        scope.entry(name.clone()).or_insert(*def);
                    }
                }
                ast::UseNames::List(names) => {
                    for ident in names {
                        self.import_one(&mut scope, id, *target, ident);
                    }
                }
            }
        }
        let module = &mut self.modules[id.0];
        module.scope = scope;
        module.qualified = qualified;
    }

    fn import_one(
        &mut self,
        scope: &mut HashMap<String, DefId>,
        id: ModuleId,
        target: ModuleId,
        ident: &ast::Ident,
    ) {
        let target_mod = &self.modules[target.0];
        let Some(def) = target_mod.local.get(&ident.name).copied() else {
            let msg = format!(
                "module `{}` has no definition `{}`",
                target_mod.name, ident.name
            );
            let help = did_you_mean(&ident.name, target_mod.local.keys().map(String::as_str));
            let diag = Diag::error(Code::UnknownImport, msg, ident.span, "not defined there")
                .with_help_opt(help);
            self.diags.push(diag);
            return;
        };
        if let Some(existing) = self.modules[id.0].local.get(&ident.name) {
            let first = def_name_span(&self.modules, *existing);
            let msg = format!("`{}` is both imported and defined here", ident.name);
            let diag = Diag::error(Code::DuplicateDefinition, msg, ident.span, "imported here")
                .with_label(first, "defined here")
                .with_help("rename the local definition or drop the import");
            self.diags.push(diag);
            return;
        }
        scope.insert(ident.name.clone(), def);
    }
}

/// Collects a module's own definitions, reporting duplicates (experiments share the namespace).
fn local_definitions(
    id: ModuleId,
    ast: &ast::File,
    diags: &mut Vec<Diag>,
) -> HashMap<String, DefId> {
    let mut local: HashMap<String, DefId> = HashMap::new();
    let mut seen: HashMap<&str, Span> = HashMap::new();
    for (idx, item) in ast.items.iter().enumerate() {
        let name = match item {
            ast::Item::Definition(def) => &def.name,
            ast::Item::Experiment(exp) => &exp.name,
            ast::Item::Use(_) => continue,
        };
        if let Some(first) = seen.get(name.name.as_str()) {
            let msg = format!("`{}` is defined more than once", name.name);
            let diag = Diag::error(
                Code::DuplicateDefinition,
                msg,
                name.span,
                "defined again here",
            )
            .with_label(*first, "first defined here")
            .with_help("rename one of them");
            diags.push(diag);
            continue;
        }
        seen.insert(&name.name, name.span);
        if let ast::Item::Definition(_) = item {
            local.insert(
                name.name.clone(),
                DefId {
                    module: id,
                    item: idx,
                },
            );
        }
    }
    local
}

/// Removes `.` and resolves `..` lexically, so one file has one origin however it is reached.
pub fn normalize(path: &Path) -> PathBuf {
    use std::path::Component;
    let mut out = PathBuf::new();
    for comp in path.components() {
        match comp {
            Component::CurDir => (),
            Component::ParentDir => match out.components().next_back() {
                Some(Component::Normal(_)) => {
                    out.pop();
                }
                _ => out.push(".."),
            },
            other => out.push(other.as_os_str()),
        }
    }
    out
}

fn def_name_span(modules: &[Module], id: DefId) -> Span {
    match &modules[id.module.0].ast.items[id.item] {
        ast::Item::Definition(def) => def.name.span,
        _ => unreachable!("a DefId always points at a definition"),
    }
}

fn module_name(origin: &Origin) -> String {
    match origin {
        Origin::Stdlib(name) => name.to_string(),
        Origin::Path(path) => path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default(),
        Origin::Override(idx) => format!("--set #{}", idx + 1),
        Origin::Inline(name) => name.trim_end_matches(".exp").to_string(),
    }
}

fn origin_name(origin: &Origin) -> String {
    match origin {
        Origin::Path(path) => path.display().to_string(),
        other => module_name(other),
    }
}
