//! `mbrl graph FILE [--dot] [--cell N]`.

use std::path::PathBuf;

use clap::Args;

#[derive(Args)]
pub struct GraphArgs {
    pub file: PathBuf,
    /// Print Graphviz DOT instead of text.
    #[arg(long)]
    pub dot: bool,
    /// Which cell of the grid to draw (0-based); all cells share one structure per agent.
    #[arg(long, default_value_t = 0)]
    pub cell: usize,
    /// Which experiment, when the file has several.
    #[arg(long)]
    pub experiment: Option<String>,
    /// Override a field, as `mbrl check --set` does: `--set experiment.seeds=5`, `--set er.lr=1e-4` (repeatable).
    #[arg(long = "set", value_name = "PATH=VALUE")]
    pub overrides: Vec<String>,
}

pub fn run(args: &GraphArgs) -> u8 {
    let out = match super::load_checked(&args.file, &args.overrides) {
        Ok(out) => out,
        Err(code) => return code,
    };
    let checked = out.clean();
    let exp = match &args.experiment {
        Some(name) => checked.experiments.iter().find(|e| &e.name == name),
        None => checked.experiments.first(),
    };
    let Some(exp) = exp else {
        errln!("error: `{}` has no such experiment", args.file.display());
        return 2;
    };
    let Some(cell) = exp.cells.get(args.cell) else {
        errln!(
            "error: experiment `{}` has {} cells; `--cell {}` is out of range",
            exp.name,
            exp.cells.len(),
            args.cell
        );
        return 2;
    };
    let graph = crate::graph::cell_graph(exp, cell);
    match args.dot {
        true => out!("{}", graph.to_dot()),
        false => out!("{}", graph.to_text()),
    }
    0
}
