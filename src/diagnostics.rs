//! Diagnostics: the data every stage reports, the stable codes, and rendering.
//!
//! Stages push [`Diag`] values into a `Vec` and keep going; none of them prints.
//! A diagnostic refers to text only through [`Span`]s; [`render`] attaches the
//! source text from the [`SourceMap`] and formats with miette. Codes are listed
//! once in [`Code`] and are never renamed or reused: every code has a fixture
//! under `tests/ui/<stage>/<name>.exp`.

use std::fmt;

use miette::{Diagnostic, GraphicalReportHandler, GraphicalTheme, LabeledSpan, NamedSource};

use crate::source::{SourceMap, Span};

/// How serious a diagnostic is. Errors stop the pipeline; warnings do not.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    Error,
    Warning,
}

/// A span with the role it plays in a diagnostic ("defined here").
#[derive(Clone, Debug, PartialEq)]
pub struct Label {
    pub span: Span,
    pub text: String,
}

/// One problem found in the input.
#[derive(Clone, Debug, PartialEq)]
pub struct Diag {
    pub code: Code,
    pub severity: Severity,
    /// Lowercase headline with names in backticks and no final period.
    pub message: String,
    pub primary: Label,
    pub secondary: Vec<Label>,
    /// A concrete fix, when one is known.
    pub help: Option<String>,
}

impl Diag {
    pub fn error(
        code: Code,
        message: impl Into<String>,
        span: Span,
        label: impl Into<String>,
    ) -> Diag {
        Diag {
            code,
            severity: Severity::Error,
            message: message.into(),
            primary: Label {
                span,
                text: label.into(),
            },
            secondary: Vec::new(),
            help: None,
        }
    }

    pub fn warning(
        code: Code,
        message: impl Into<String>,
        span: Span,
        label: impl Into<String>,
    ) -> Diag {
        Diag {
            severity: Severity::Warning,
            ..Diag::error(code, message, span, label)
        }
    }

    pub fn with_label(mut self, span: Span, text: impl Into<String>) -> Diag {
        self.secondary.push(Label {
            span,
            text: text.into(),
        });
        self
    }

    pub fn with_help(mut self, help: impl Into<String>) -> Diag {
        self.help = Some(help.into());
        self
    }

    pub fn with_help_opt(mut self, help: Option<String>) -> Diag {
        self.help = help;
        self
    }

    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

/// Sorts diagnostics for display: by file and position, errors before warnings at a tie.
pub fn sort(diags: &mut [Diag]) {
    diags.sort_by_key(|d| {
        (
            d.primary.span.file,
            d.primary.span.start,
            d.severity,
            d.code,
        )
    });
}

/// "did you mean `x`?" for the candidate closest to `name` in edit distance.
///
/// A candidate qualifies when its distance is at most a third of the longer
/// name's length (at least 1), which catches typos and transpositions without
/// suggesting unrelated short names.
pub fn did_you_mean<'a>(
    name: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<String> {
    let mut best: Option<(usize, &str)> = None;
    for cand in candidates {
        let dist = edit_distance(name, cand);
        let limit = (name.len().max(cand.len()) / 3).max(1);
        if dist > limit || dist == 0 {
            continue;
        }
        match best {
            Some((best_dist, _)) if best_dist <= dist => (),
            _ => best = Some((dist, cand)),
        }
    }
    best.map(|(_, cand)| format!("did you mean `{cand}`?"))
}

/// Levenshtein distance, with an adjacent transposition counted as one edit.
fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut prev2: Vec<usize> = vec![0; b.len() + 1];
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for i in 1..=a.len() {
        let mut cur = vec![i; b.len() + 1];
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            cur[j] = (prev[j] + 1).min(cur[j - 1] + 1).min(prev[j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                cur[j] = cur[j].min(prev2[j - 2] + 1);
            }
        }
        prev2 = std::mem::replace(&mut prev, cur);
    }
    prev[b.len()]
}

/// Renders diagnostics as miette reports (unicode, no colour), one after another.
pub fn render(diags: &[Diag], sources: &SourceMap, width: usize, color: bool) -> String {
    let theme = match color {
        true => GraphicalTheme::unicode(),
        false => GraphicalTheme::unicode_nocolor(),
    };
    let handler = GraphicalReportHandler::new_themed(theme).with_width(width);
    let mut out = String::new();
    for diag in diags {
        let report = MietteDiag::new(diag, sources);
        if handler.render_report(&mut out, &report).is_err() {
            out.push_str(&format!("{}: {}\n", diag.code, diag.message));
        }
        out.push('\n');
    }
    out
}

/// A [`Diag`] with its source text attached, in the form miette renders.
/// Labels that point into another file become related notes on that file.
#[derive(Debug)]
struct MietteDiag {
    message: String,
    code: Option<&'static str>,
    severity: miette::Severity,
    help: Option<String>,
    labels: Vec<LabeledSpan>,
    source: NamedSource<String>,
    related: Vec<MietteDiag>,
}

impl MietteDiag {
    fn new(diag: &Diag, sources: &SourceMap) -> MietteDiag {
        let file = diag.primary.span.file;
        let mut labels = vec![LabeledSpan::new_primary_with_span(
            Some(diag.primary.text.clone()),
            diag.primary.span,
        )];
        let mut related = Vec::new();
        for label in &diag.secondary {
            if label.span.file == file {
                labels.push(LabeledSpan::new_with_span(
                    Some(label.text.clone()),
                    label.span,
                ));
                continue;
            }
            related.push(MietteDiag::note(label, sources));
        }
        MietteDiag {
            message: diag.message.clone(),
            code: Some(diag.code.as_str()),
            severity: match diag.severity {
                Severity::Error => miette::Severity::Error,
                Severity::Warning => miette::Severity::Warning,
            },
            help: diag.help.clone(),
            labels,
            source: named_source(sources, file),
            related,
        }
    }

    fn note(label: &Label, sources: &SourceMap) -> MietteDiag {
        MietteDiag {
            message: label.text.clone(),
            code: None,
            severity: miette::Severity::Advice,
            help: None,
            labels: vec![LabeledSpan::new_primary_with_span(None, label.span)],
            source: named_source(sources, label.span.file),
            related: Vec::new(),
        }
    }
}

fn named_source(sources: &SourceMap, file: crate::source::FileId) -> NamedSource<String> {
    let src = sources.get(file);
    NamedSource::new(src.name(), src.text.clone())
}

impl fmt::Display for MietteDiag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for MietteDiag {}

impl Diagnostic for MietteDiag {
    fn code<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        self.code.map(|c| Box::new(c) as Box<dyn fmt::Display>)
    }

    fn severity(&self) -> Option<miette::Severity> {
        Some(self.severity)
    }

    fn help<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        self.help
            .as_ref()
            .map(|h| Box::new(h) as Box<dyn fmt::Display>)
    }

    fn source_code(&self) -> Option<&dyn miette::SourceCode> {
        Some(&self.source)
    }

    fn labels(&self) -> Option<Box<dyn Iterator<Item = LabeledSpan> + '_>> {
        Some(Box::new(self.labels.iter().cloned()))
    }

    fn related<'a>(&'a self) -> Option<Box<dyn Iterator<Item = &'a dyn Diagnostic> + 'a>> {
        match self.related.is_empty() {
            true => None,
            false => Some(Box::new(self.related.iter().map(|r| r as &dyn Diagnostic))),
        }
    }
}

macro_rules! codes {
    ($( $(#[doc = $doc:literal])* $variant:ident = $code:literal, )*) => {
        /// Every diagnostic code mbrl emits. The string form is stable.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum Code {
            $( $(#[doc = $doc])* $variant, )*
        }

        impl Code {
            pub const ALL: &'static [Code] = &[$(Code::$variant),*];

            /// The stable code, e.g. `mbrl::check::unknown_field`.
            pub fn as_str(self) -> &'static str {
                match self { $(Code::$variant => $code,)* }
            }

            /// The one-line explanation (first doc line) of the code.
            pub fn summary(self) -> &'static str {
                match self { $(Code::$variant => [$($doc),*][0].trim(),)* }
            }
        }
    };
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

codes! {
    /// The parser met a token it did not expect (`env x = = 3`).
    UnexpectedToken = "mbrl::syntax::unexpected_token",
    /// A number literal does not fit a 64-bit value (`99999999999999999999`, `1e999`).
    InvalidNumber = "mbrl::syntax::invalid_number",
    /// A string has an unknown escape (`"a\q"`); only `\"`, `\\`, `\n`, `\t` exist.
    InvalidEscape = "mbrl::syntax::invalid_escape",
    /// A file is larger than the 1 MiB mbrl reads as one experiment file.
    FileTooLarge = "mbrl::syntax::too_large",
    /// Brackets nest deeper than 64 levels.
    TooDeep = "mbrl::syntax::too_deep",
    /// A file is not UTF-8 text: the diagnostic names the first invalid byte and its offset.
    InvalidUtf8 = "mbrl::syntax::invalid_utf8",
    /// `use` names a module that is neither in the stdlib nor a readable file (`use young2021::*`).
    UnknownModule = "mbrl::resolve::unknown_module",
    /// `use m::{x}` names a definition that module `m` does not define.
    UnknownImport = "mbrl::resolve::unknown_import",
    /// Files import each other in a cycle (`a.exp` uses `b.exp`, which uses `a.exp`).
    ImportCycle = "mbrl::resolve::import_cycle",
    /// Two definitions or experiments in scope share a name.
    DuplicateDefinition = "mbrl::resolve::duplicate_definition",
    /// A `--set` override is not of the form `path=value` or its value does not parse.
    InvalidOverride = "mbrl::resolve::invalid_override",
    /// A `--set` override names a block or kind that the file does not have.
    UnknownOverrideTarget = "mbrl::resolve::unknown_override_target",
    /// A definition uses a block kind the registry does not know (`agnet x = dqn`).
    UnknownKind = "mbrl::check::unknown_kind",
    /// A name refers to no definition, constructor, parameter or enum value.
    UnknownName = "mbrl::check::unknown_name",
    /// A reference names a block of another kind (an env where an agent is expected).
    WrongKind = "mbrl::check::wrong_kind",
    /// A field that the constructor does not have (`procmaze { gridsize: 4 }`).
    UnknownField = "mbrl::check::unknown_field",
    /// The same field is given twice in one record.
    DuplicateField = "mbrl::check::duplicate_field",
    /// A required field is not given and has no default.
    MissingField = "mbrl::check::missing_field",
    /// A value has the wrong type (`seeds: "30"`).
    TypeMismatch = "mbrl::check::type_mismatch",
    /// A number lies outside the field's range (`gamma: 1.5`).
    OutOfRange = "mbrl::check::out_of_range",
    /// A number carries the wrong unit (`eval_every: 500 episodes` where steps are counted).
    UnitMismatch = "mbrl::check::unit_mismatch",
    /// Arguments that a definition does not take, or positional arguments where names are needed.
    InvalidArgument = "mbrl::check::invalid_argument",
    /// A parameterised definition is used without a parameter that has no default.
    MissingArgument = "mbrl::check::missing_argument",
    /// A definition is based on itself, directly or through others.
    RecursiveDefinition = "mbrl::check::recursive_definition",
    /// A network's declared input or output size differs from the size inferred from the env.
    ShapeMismatch = "mbrl::check::shape_mismatch",
    /// An agent needs discrete actions on a continuous env, or the reverse.
    ActionSpace = "mbrl::check::action_space",
    /// A model head assumes an observation type the env does not produce (Bernoulli bits on real values).
    ObservationSpace = "mbrl::check::observation_space",
    /// The minibatch is larger than the replay buffer it is drawn from.
    BatchExceedsBuffer = "mbrl::check::batch_exceeds_buffer",
    /// The evaluation interval does not divide the step budget, so the last evaluation is skipped.
    EvalInterval = "mbrl::check::eval_interval",
    /// A claim (`expect a > b`) names a value that no axis of the experiment has (`expect perfect_modle > er`).
    ClaimUnknown = "mbrl::check::claim_unknown",
    /// A claim's sides are not two different values of one axis, or its `on` list names a value of the compared axis; a name matching several values is quoted to pick one (`expect "er { lr: 1e-4 }" > ...`).
    ClaimAxes = "mbrl::check::claim_axes",
    /// No cell of the grid can decide a claim: no cell pairs its two sides within its `on` values, or the experiment has fewer than 2 seeds.
    ClaimUndecidable = "mbrl::check::claim_undecidable",
    /// A claim's confidence is outside (0, 1) (`at 95%` or `at 0.95`), its margin is negative, or its `final(..)` window is outside (0, 100%].
    ClaimRange = "mbrl::check::claim_range",
    /// A claim summarizes the curve by something other than `final(P%)` (the mean over the last P% of the budget), `auc` (the mean of all evaluations) or `steps_to(L)` (the steps until the first evaluation at a level), or asks for `steps_to(P%)` of the way to the optimum where no reference lines are drawn.
    ClaimSummary = "mbrl::check::claim_summary",
    /// A loss expression names something that is neither a function, a `let`, a parameter, a loss written as an expression, nor one of the names its learner provides (`mbrl describe slbo` lists them).
    LossName = "mbrl::check::loss_name",
    /// A loss expression is given to a learner that does not provide what it names (a `V` where there is no value network), or to a learner that takes built-in losses only (the DQN family).
    LossLearner = "mbrl::check::loss_learner",
    /// A loss expression's value is not one number: reduce the remaining axes with `mean(..)` or `sum(..)`.
    LossScalar = "mbrl::check::loss_scalar",
    /// The axes of a loss expression do not fit: a state combined with an action, a network given rows of the wrong width, a reduction over an axis the value lacks, `step` of a value without a horizon.
    LossAxes = "mbrl::check::loss_axes",
    /// A function in a loss expression is given the wrong number of arguments, or an argument of the wrong form (`step(x, k)` takes a whole number, reductions take axis names).
    LossArity = "mbrl::check::loss_arity",
    /// A warning: `log` of a value that may be zero or negative, or `sqrt` of one that may be negative, in a loss expression.
    LossDomain = "mbrl::check::loss_domain",
    /// A loss expression divides by the constant 0.
    LossZeroDivision = "mbrl::check::loss_zero_division",
    /// No gradient reaches the model's parameters from a loss expression: it never calls the model, or only through `stop_gradient`, `dV` or a comparison.
    LossGradient = "mbrl::check::loss_gradient",
    /// A loss expression names a built-in loss (`mle_loss`); an expression can combine only losses written as expressions, such as their twins in `stdlib/slbo.exp`.
    LossBuiltin = "mbrl::check::loss_builtin",
    /// `step(x, k)` in a loss expression picks a step past the loss's horizon.
    LossStep = "mbrl::check::loss_step",
    /// No gradient update would happen: learning starts at or after the end of the budget.
    NoUpdates = "mbrl::check::no_updates",
    /// A setting that only makes sense for episodic envs is used on a continuing env.
    EpisodicOnly = "mbrl::check::episodic_only",
    /// A component needs another one that is absent (model rollouts without a model).
    MissingComponent = "mbrl::check::missing_component",
    /// A component is given but nothing uses it (a model without a planner).
    UnusedComponent = "mbrl::check::unused_component",
    /// A model loss does not fit the model or agent it trains (value-aware without a value network).
    IncompatibleLoss = "mbrl::check::incompatible_loss",
    /// A field is set but has no effect with the other settings (`width` on a Gaussian latent).
    IgnoredField = "mbrl::check::ignored_field",
    /// A `vary` axis lists no values.
    EmptyAxis = "mbrl::check::empty_axis",
    /// Two `vary` axes set the same field.
    DuplicateAxis = "mbrl::check::duplicate_axis",
    /// A grid cell has no row in the experiment's tuned table.
    MissingTunedEntry = "mbrl::check::missing_tuned_entry",
    /// Two rows of a tuned table have the same key.
    DuplicateTunedEntry = "mbrl::check::duplicate_tuned_entry",
    /// A tuned-table row has a different number of entries than its key and value columns.
    TableRow = "mbrl::check::table_row",
    /// Agents compared in one grid see different numbers of transitions per Q update.
    UnequalUpdateBatch = "mbrl::check::unequal_update_batch",
    /// Virtual rollouts are longer or shorter than the env's episodes (SLBO rolls out whole episodes).
    HorizonMismatch = "mbrl::check::horizon_mismatch",
    /// A value the schema allows that the runtime does not implement where it is used (`normalize: running` on a DQN's Q network).
    UnsupportedValue = "mbrl::check::unsupported_value",
    /// A list has more than 10,000 entries, or a grid more than 100,000 cells.
    TooLarge = "mbrl::check::too_large",
}
