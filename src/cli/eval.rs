//! `mbrl eval FILE`: the evaluation protocol of each cell whose agent needs no
//! training (the `random` agent), over all seeds: the baseline every learning
//! curve is read against.

use std::path::PathBuf;

use clap::Args;

#[derive(Args)]
pub struct EvalArgs {
    pub file: PathBuf,
    /// Override a field, as `mbrl check --set` does: `--set experiment.seeds=5`, `--set er.lr=1e-4` (repeatable).
    #[arg(long = "set", value_name = "PATH=VALUE")]
    pub overrides: Vec<String>,
}

pub fn run(args: &EvalArgs) -> u8 {
    let out = match super::load_checked(&args.file, &args.overrides) {
        Ok(out) => out,
        Err(code) => return code,
    };
    let checked = out.clean();
    let mut evaluated = 0;
    for exp in &checked.experiments {
        for cell in &exp.cells {
            if crate::kinds::of(&cell.agent).trains() {
                outln!(
                    "{} [{}]: skipped, `{}` must train first",
                    exp.name,
                    cell.label(),
                    cell.agent.ctor.name
                );
                continue;
            }
            let plan = match crate::compile::compile(&crate::graph::cell_graph(exp, cell), 1.0) {
                Ok(plan) => plan,
                Err(err) => {
                    errln!("error: {err}");
                    return 2;
                }
            };
            let (protocol, scores) = match crate::runs::references::evaluate_random(&plan) {
                Ok(res) => res,
                Err(err) => {
                    errln!("error: {err}");
                    return 2;
                }
            };
            let (mean, sd) = super::mean_sd(&scores);
            outln!(
                "{} [{}]: {:?} {mean:.4} ± {sd:.4} (sd over {} seeds; {} envs x {} steps each)",
                exp.name,
                cell.label(),
                protocol.metric,
                scores.len(),
                protocol.envs,
                protocol.steps
            );
            evaluated += 1;
        }
    }
    match evaluated {
        0 => {
            errln!("error: no cell has an agent that can be evaluated without training (`random`)");
            2
        }
        _ => 0,
    }
}
