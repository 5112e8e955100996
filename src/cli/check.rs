//! `mbrl check FILE... [--set path=value]`.

use std::path::PathBuf;

use clap::Args;

use crate::check::Checked;
use crate::diagnostics::Severity;

#[derive(Args)]
pub struct CheckArgs {
    /// Experiment files to check.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// Override a field, checked like the file: `--set experiment.seeds=5`, `--set er.lr=1e-4`.
    #[arg(long = "set", value_name = "PATH=VALUE")]
    pub overrides: Vec<String>,
    /// Also state each experiment's compute (FLOPs of its updates) and memory.
    #[arg(long)]
    pub cost: bool,
}

pub fn run(args: &CheckArgs) -> u8 {
    let mut status = 0;
    for path in &args.files {
        let out = match crate::check_file(path, &args.overrides) {
            Ok(out) => out,
            Err(err) => {
                errln!("error: cannot read `{}`: {err}", path.display());
                return 2;
            }
        };
        if !out.diags.is_empty() {
            err!("{}", super::render(&out));
        }
        let n_warnings = out
            .diags
            .iter()
            .filter(|d| d.severity == Severity::Warning)
            .count();
        let n_errors = out.diags.len() - n_warnings;
        if n_errors > 0 {
            outln!(
                "{}: {n_errors} error(s), {n_warnings} warning(s)",
                path.display()
            );
            status = 1;
            continue;
        }
        let checked = out.clean();
        outln!(
            "{}: ok, {}{}",
            path.display(),
            summary(checked),
            warnings(n_warnings)
        );
        if args.cost {
            for exp in &checked.experiments {
                match super::compile_cells(exp, 1.0) {
                    Ok(plans) => match super::cost_line(&exp.name, &plans, None) {
                        Ok(line) => outln!("  {line}"),
                        Err(err) => {
                            errln!("error: {err}");
                            status = status.max(2);
                        }
                    },
                    Err(_) => outln!(
                        "  cost of `{}`: not known until every cell compiles",
                        exp.name
                    ),
                }
            }
        }
    }
    status
}

fn warnings(n: usize) -> String {
    match n {
        0 => String::new(),
        n => format!(" ({n} warning(s))"),
    }
}

/// "experiment `fig4`: 30 cells x 30 seeds, 9.9e8 env steps, 9.8e8 updates".
pub fn summary(checked: &Checked) -> String {
    if checked.experiments.is_empty() {
        return format!("{} definition(s), no experiment", checked.n_definitions);
    }
    let parts: Vec<String> = checked
        .experiments
        .iter()
        .map(|e| {
            format!(
                "experiment `{}`: {} cells x {} seeds, {} env steps, {} updates",
                e.name,
                e.cells.len(),
                e.seeds,
                big(e.total_env_steps()),
                big(e.total_updates())
            )
        })
        .collect();
    parts.join("; ")
}

/// 1234 -> "1234", 12_345_678 -> "1.23e7".
fn big(n: u64) -> String {
    match n < 100_000 {
        true => n.to_string(),
        false => format!("{:.2e}", n as f64),
    }
}
