//! The env node to an [`EnvConfig`], and the evaluator node to the
//! evaluation [`Protocol`] (young2022 spec §2, vaslbo spec §10).

use crate::compile::{CompileError, Settings};
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

impl EvalMetric {
    /// What it scores, as an axis title says it.
    pub fn describe(self) -> &'static str {
        match self {
            EvalMetric::EpisodeReturn => "episode return",
            EvalMetric::RewardRate => "reward rate",
            EvalMetric::HorizonReturn => "episode return",
        }
    }
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
    let int = |f: &str| env.need_count(f).map(|n| n as usize);
    let flag = |f: &str| env.need_flag(f);
    Ok(match env.need_text("ctor")? {
        "procmaze" => EnvConfig::ProcMaze(procmaze::Params {
            grid_size: int("grid_size")?,
            spontaneous_termination: flag("spontaneous_termination")?,
            teleport_on_termination: flag("teleport_on_termination")?,
        }),
        "buttongrid" => EnvConfig::ButtonGrid(buttongrid::Params {
            grid_size: int("grid_size")?,
            buttons: int("buttons")?,
            spontaneous_reset: flag("spontaneous_reset")?,
            activate_on_reset: flag("activate_on_reset")?,
        }),
        "panflute" => EnvConfig::PanFlute(panflute::Params {
            pipes: int("pipes")?,
            spontaneous_reward: flag("spontaneous_reward")?,
        }),
        "opengrid" => EnvConfig::OpenGrid(opengrid::Params {
            grid_size: int("grid_size")?,
            spontaneous_termination: flag("spontaneous_termination")?,
        }),
        "pendulum" => EnvConfig::Control(Task::Pendulum, int("horizon")?),
        "cartpole" => EnvConfig::Control(Task::CartPole, int("horizon")?),
        "acrobot" => EnvConfig::Control(Task::Acrobot, int("horizon")?),
        "mountaincar" => EnvConfig::Control(Task::MountainCar, int("horizon")?),
        "halfcheetah" => EnvConfig::HalfCheetah(int("horizon")?),
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
pub fn protocol(eval: &Node, env: &Node) -> Result<Protocol, CompileError> {
    let envs = eval.need_count("envs")?.max(1) as usize;
    let steps = eval.need_count("steps")?.max(1) as usize;
    // Only time-limited envs have a horizon.
    let horizon = env.int("horizon");
    let episodic = env.need_flag("episodic")?;
    let (metric, stochastic) = match eval.need_text("ctor")? {
        "greedy_eval" => (eval.need_text("metric")?, false),
        "policy_eval" => ("auto", eval.need_flag("stochastic")?),
        other => {
            return Err(CompileError::Incomplete {
                what: format!("evaluation protocol `{other}`"),
            })
        }
    };
    let metric = match (metric, horizon, episodic) {
        ("episode_return", _, _) => EvalMetric::EpisodeReturn,
        ("reward_rate", _, _) => EvalMetric::RewardRate,
        (_, Some(_), _) => EvalMetric::HorizonReturn,
        (_, None, true) => EvalMetric::EpisodeReturn,
        (_, None, false) => EvalMetric::RewardRate,
    };
    Ok(Protocol {
        envs,
        steps,
        metric,
        stochastic,
    })
}
