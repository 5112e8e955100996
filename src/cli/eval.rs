//! `mbrl eval FILE`: the evaluation protocol of each cell whose agent needs no
//! training (the `random` agent), over all seeds: the baseline every learning
//! curve is read against.

use std::path::PathBuf;

use clap::Args;

use crate::envs::{Batch, EnvConfig, Layout};
use crate::runtime::evaluate::{self, Protocol, RandomPolicy};
use crate::runtime::seeds::Purpose;

#[derive(Args)]
pub struct EvalArgs {
    pub file: PathBuf,
    #[arg(long = "set", value_name = "PATH=VALUE")]
    pub overrides: Vec<String>,
}

pub fn run(args: &EvalArgs) -> u8 {
    let out = match super::load_checked(&args.file, &args.overrides) {
        Ok(out) => out,
        Err(code) => return code,
    };
    let checked = out
        .checked
        .as_ref()
        .expect("no errors means the file parsed");
    let mut evaluated = 0;
    for exp in &checked.experiments {
        for cell in &exp.cells {
            if cell.agent.ctor.name != "random" {
                println!(
                    "{} [{}]: skipped, `{}` must train first",
                    exp.name,
                    cell.label(),
                    cell.agent.ctor.name
                );
                continue;
            }
            let config = EnvConfig::from_obj(&cell.env);
            let layout = Layout {
                root_seed: exp.root_seed,
                seeds: (0..exp.seeds).collect(),
                envs_per_seed: 1,
                purpose: Purpose::EvalEnv,
                round: 0,
            };
            let probe = match Batch::new(config, &layout) {
                Ok(b) => b,
                Err(err) => {
                    eprintln!("error: {}", err.0);
                    return 2;
                }
            };
            let Some(eval) = cell.agent.obj("eval") else {
                continue;
            };
            let protocol = Protocol::from_obj(eval, &probe);
            let mut make = |l: &Layout| Box::new(RandomPolicy::new(l)) as Box<dyn evaluate::Policy>;
            let scores = match evaluate::evaluate(config, protocol, &layout, &mut make) {
                Ok(s) => s,
                Err(err) => {
                    eprintln!("error: {}", err.0);
                    return 2;
                }
            };
            let (mean, sd) = mean_sd(&scores);
            println!(
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
            eprintln!(
                "error: no cell has an agent that can be evaluated without training (`random`)"
            );
            2
        }
        _ => 0,
    }
}

fn mean_sd(xs: &[f64]) -> (f64, f64) {
    let n = xs.len() as f64;
    let mean = xs.iter().sum::<f64>() / n;
    let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0).max(1.0);
    (mean, var.sqrt())
}
