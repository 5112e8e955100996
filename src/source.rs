//! Source files and byte spans.
//!
//! Every stage refers to text through a [`Span`]: a file id and a byte range.
//! Line and column numbers exist only when a diagnostic is rendered (in `cli`).
//! This module performs no IO: callers load text and hand it to the map.

use std::ops::Range;

/// Index of a file in the [`SourceMap`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FileId(pub u32);

/// A byte range in one source file. Small and `Copy`, carried by every AST node.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Span {
    pub file: FileId,
    pub start: u32,
    pub end: u32,
}

impl Span {
    pub fn new(file: FileId, range: Range<usize>) -> Span {
        Span {
            file,
            start: range.start as u32,
            end: range.end as u32,
        }
    }

    pub fn range(self) -> Range<usize> {
        self.start as usize..self.end as usize
    }

    /// The smallest span covering both `self` and `other` (same file).
    pub fn to(self, other: Span) -> Span {
        debug_assert_eq!(self.file, other.file);
        Span {
            file: self.file,
            start: self.start.min(other.start),
            end: self.end.max(other.end),
        }
    }
}

impl From<Span> for miette::SourceSpan {
    fn from(span: Span) -> miette::SourceSpan {
        (span.start as usize, (span.end - span.start) as usize).into()
    }
}

/// Where a source file came from.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Origin {
    /// A file on disk, by the path the user gave (or an import resolved).
    Path(std::path::PathBuf),
    /// A module of the embedded standard library, e.g. `young2022`.
    Stdlib(&'static str),
    /// The text of the n-th `--set` override on the command line.
    Override(usize),
    /// Text handed over directly (tests, benchmarks).
    Inline(String),
}

/// One source file: where it came from and its full text.
#[derive(Clone, Debug)]
pub struct SourceFile {
    pub origin: Origin,
    pub text: String,
}

impl SourceFile {
    /// The display name used in diagnostics.
    pub fn name(&self) -> String {
        match &self.origin {
            Origin::Path(path) => path.display().to_string(),
            Origin::Stdlib(module) => format!("<stdlib>/{module}.exp"),
            Origin::Override(idx) => format!("--set #{}", idx + 1),
            Origin::Inline(name) => name.clone(),
        }
    }
}

/// All source text of one invocation, indexed by [`FileId`].
#[derive(Clone, Debug, Default)]
pub struct SourceMap {
    files: Vec<SourceFile>,
}

impl SourceMap {
    pub fn new() -> SourceMap {
        SourceMap { files: Vec::new() }
    }

    pub fn add(&mut self, origin: Origin, text: String) -> FileId {
        self.files.push(SourceFile { origin, text });
        FileId(self.files.len() as u32 - 1)
    }

    pub fn get(&self, file: FileId) -> &SourceFile {
        &self.files[file.0 as usize]
    }

    /// The source text a span covers.
    pub fn snippet(&self, span: Span) -> &str {
        let text = &self.get(span.file).text;
        text.get(span.range()).unwrap_or("")
    }

    pub fn find(&self, origin: &Origin) -> Option<FileId> {
        let idx = self.files.iter().position(|f| &f.origin == origin)?;
        Some(FileId(idx as u32))
    }
}
