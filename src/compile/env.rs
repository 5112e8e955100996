//! The env node to an [`EnvConfig`], and the evaluator node to the
//! evaluation [`Protocol`] (young2022 spec §2, vaslbo spec §10).

use crate::compile::CompileError;
use crate::envs::{buttongrid, opengrid, panflute, procmaze, EnvConfig, Task};
use crate::graph::Node;

/// What the protocol scores per eval env.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub enum EvalMetric {
    /// The truncated episode return: no reset after the terminal step, whose reward counts.
    EpisodeReturn,
    /// `(1/T) sum_t r_t`.
    RewardRate,
    /// The mean return of the fixed-length episodes completed.
    HorizonReturn,
}

/// The evaluation protocol: per seed, `envs` fresh eval envs run the
/// policy for `steps` steps; the seed's score is the mean of their metric.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Protocol {
    pub envs: usize,
    pub steps: usize,
    pub metric: EvalMetric,
    /// Sample the policy's actions (a stochastic policy) instead of its mean.
    pub stochastic: bool,
}

/// The env of a graph's env node.
pub fn config(env: &Node) -> Result<EnvConfig, CompileError> {
    let int = |f: &str| env.int(f).unwrap_or(0).max(0) as usize;
    let flag = |f: &str| env.bool(f).unwrap_or(true);
    Ok(match env.text("ctor").unwrap_or("") {
        "procmaze" => EnvConfig::ProcMaze(procmaze::Params {
            grid_size: int("grid_size"),
            spontaneous_termination: flag("spontaneous_termination"),
            teleport_on_termination: flag("teleport_on_termination"),
        }),
        "buttongrid" => EnvConfig::ButtonGrid(buttongrid::Params {
            grid_size: int("grid_size"),
            buttons: int("buttons"),
            spontaneous_reset: flag("spontaneous_reset"),
            activate_on_reset: flag("activate_on_reset"),
        }),
        "panflute" => EnvConfig::PanFlute(panflute::Params {
            pipes: int("pipes"),
            spontaneous_reward: flag("spontaneous_reward"),
        }),
        "opengrid" => EnvConfig::OpenGrid(opengrid::Params {
            grid_size: int("grid_size"),
            spontaneous_termination: flag("spontaneous_termination"),
        }),
        "pendulum" => EnvConfig::Control(Task::Pendulum, int("horizon")),
        "cartpole" => EnvConfig::Control(Task::CartPole, int("horizon")),
        "acrobot" => EnvConfig::Control(Task::Acrobot, int("horizon")),
        "mountaincar" => EnvConfig::Control(Task::MountainCar, int("horizon")),
        "halfcheetah" => EnvConfig::HalfCheetah(int("horizon")),
        other => {
            return Err(CompileError::Incomplete {
                what: format!("env `{other}`"),
            })
        }
    })
}

/// The protocol of an evaluator node, for the env of `env`: `auto` scores
/// time-limited envs by episode return, other episodic envs by their
/// truncated return, continuing envs by their reward rate.
pub fn protocol(eval: &Node, env: &Node) -> Protocol {
    let envs = eval.int("envs").unwrap_or(1).max(1) as usize;
    let steps = eval.int("steps").unwrap_or(1).max(1) as usize;
    let horizon = env.int("horizon");
    let episodic = env.bool("episodic").unwrap_or(false);
    let metric = match (eval.text("metric"), horizon, episodic) {
        (Some("episode_return"), _, _) => EvalMetric::EpisodeReturn,
        (Some("reward_rate"), _, _) => EvalMetric::RewardRate,
        (_, Some(_), _) => EvalMetric::HorizonReturn,
        (_, None, true) => EvalMetric::EpisodeReturn,
        (_, None, false) => EvalMetric::RewardRate,
    };
    Protocol {
        envs,
        steps,
        metric,
        stochastic: eval.bool("stochastic").unwrap_or(false),
    }
}
