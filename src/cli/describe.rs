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
        let signature = crate::kinds::all()
            .find(|k| ctor.kind == Kind::Agent && k.schema().name == ctor.name)
            .and_then(|k| k.loss_signature());
        if let Some(sig) = signature {
            loss_names(sig);
        }
        if ctor.name == "expression" {
            loss_functions();
        }
    }
    0
}

/// What a learner's model losses written as expressions may name.
fn loss_names(sig: &crate::autodiff::Signature) {
    outln!("  a model loss written as an expression may name:");
    for i in sig.inputs {
        let axes: Vec<&str> = i.axes.iter().map(|a| a.name()).collect();
        outln!("    {:<18} [{}] {}", i.name, axes.join(", "), i.doc);
    }
    for c in sig.callables {
        outln!("    {:<18} {}", c.name, c.doc);
    }
    loss_functions();
}

/// The functions of loss expressions.
fn loss_functions() {
    outln!(
        "  functions: arithmetic (+ - * /, comparisons giving 0 or 1), {}",
        {
            let names: Vec<&str> = crate::autodiff::Func::ALL
                .iter()
                .map(|f| f.name())
                .collect();
            names.join(", ")
        }
    );
    outln!("  reductions over named axes (horizon, batch, state, action; all without any): sum(x, ..), mean(x, ..), l1(x, ..), l2(x, ..), sum_sq(x, ..); step(x, k) picks step k of the horizon");
    outln!("  `let NAME = value;` names a sub-expression; a loss's `horizon` parameter sets its batch's steps");
}

/// The codes of `run`, `merge` and `slurm`: refusals at run time, after
/// `check` has passed (the checker's codes are [`Code`]).
pub const RUN_CODES: &[(&str, &str)] = &[
    ("mbrl::run::no_experiment", "The file declares no experiment to run."),
    ("mbrl::run::insufficient_memory", "The run needs more memory than the machine has available (or `--memory` allows)."),
    ("mbrl::run::bf16_unavailable", "An agent asks for `precision: bf16` where this build or CPU has no unit for bf16 products (Intel AMX); nothing ran."),
    ("mbrl::run::changed_experiment", "The run directory (or the Slurm job) holds another experiment than this file now declares."),
    ("mbrl::run::locked", "Another process is using the run directory."),
    ("mbrl::run::damaged_checkpoint", "A checkpoint is cut short or its bytes changed; `--recompute-damaged` trains its seeds again."),
    ("mbrl::run::foreign_checkpoint", "An intact checkpoint of another experiment, cell or seed group, or of another format."),
    ("mbrl::run::damaged_file", "The manifest or the metrics of a run directory fail their checksum."),
    ("mbrl::run::occupied_out", "`--out` is a directory that holds files and no run; nothing was changed."),
    ("mbrl::run::unusable_out", "`--out` cannot be a run directory: a file, a place this user cannot write, or a name too long."),
    ("mbrl::run::several_experiments", "The file declares several experiments and `--out` names one run directory; `--experiment NAME` picks one."),
    ("mbrl::run::unknown_experiment", "`--experiment` names no experiment of the file."),
    ("mbrl::merge::not_a_part", "A directory given to `merge` holds no part of a sharded run."),
    ("mbrl::merge::foreign_part", "A part of another experiment, or of the experiment cut into another number of parts."),
    ("mbrl::merge::overlapping_parts", "Two directories hold the same part, or the same (cell, seed)."),
    ("mbrl::merge::missing_part", "Some parts of the sharded run are not among the directories given."),
    ("mbrl::merge::unfinished_part", "A part has not run to its end (still running, stopped, killed or failed)."),
    ("mbrl::merge::damaged_part", "A part's manifest, metrics or checkpoint fails its verification."),
    ("mbrl::merge::occupied_out", "The merge's output directory holds something else."),
    ("mbrl::merge::missing_checkpoint", "A finished part lacks checkpoints its manifest lists (deleted or moved)."),
    ("mbrl::slurm::no_sbatch", "`sbatch` cannot be run on this machine; the job script was written."),
    ("mbrl::slurm::rejected", "`sbatch` refused the job (partition, time, memory or account)."),
    ("mbrl::slurm::changed_job", "The job directory holds a job of another experiment, or of this one cut into another number of parts."),
    ("mbrl::slurm::several_experiments", "The file declares several experiments; a Slurm job runs one."),
];

pub fn explain(code: &str) -> u8 {
    let matches = |c: &str| c == code || c.ends_with(&format!("::{code}"));
    let found = Code::ALL
        .iter()
        .map(|c| (c.as_str(), c.summary()))
        .chain(RUN_CODES.iter().copied())
        .find(|(c, _)| matches(c));
    match found {
        Some((c, summary)) => {
            outln!("{c}: {summary}");
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
