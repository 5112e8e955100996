//! Environments: the Young et al. grid worlds, the MBBL classic-control tasks
//! and SLBO's MuJoCo HalfCheetah (specs: young2022 §1, vaslbo §6).

use crate::schema::{Ctor, Default as D, Field, Kind, Ty};
use crate::syntax::ast::Unit;

/// What an agent sees and does in an env: the basis of shape inference.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EnvSpaces {
    pub obs_dim: usize,
    pub obs: ObsKind,
    pub action: ActionSpace,
    /// Episodes end (ProcMaze); continuing envs never terminate.
    pub episodic: bool,
    /// Fixed episode length for time-limited tasks (classic control, MuJoCo).
    pub horizon: Option<usize>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ObsKind {
    /// A flat vector of 0/1 bits (the grid worlds).
    Binary,
    /// Real-valued features.
    Real,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ActionSpace {
    Discrete(usize),
    /// A box `[-1, 1]^d` after the env's own rescaling.
    Continuous(usize),
}

impl ActionSpace {
    /// The width of the action as a network input (one-hot for discrete).
    pub fn input_dim(self) -> usize {
        match self {
            ActionSpace::Discrete(n) | ActionSpace::Continuous(n) => n,
        }
    }

    pub fn describe(self) -> String {
        match self {
            ActionSpace::Discrete(n) => format!("Discrete({n})"),
            ActionSpace::Continuous(d) => format!("Box([-1, 1]^{d})"),
        }
    }
}

impl EnvSpaces {
    pub fn describe_obs(&self) -> String {
        let kind = match self.obs {
            ObsKind::Binary => "bits",
            ObsKind::Real => "reals",
        };
        format!("{} {kind}", self.obs_dim)
    }
}

const GRID_SIZE: Field = Field::new(
    "grid_size",
    Ty::Int,
    D::Int(10),
    "side length g of the square grid",
)
.min(2.0)
.max(64.0);

const HORIZON_200: Field = Field::new(
    "horizon",
    Ty::Int,
    D::Int(200),
    "episode length L; the runner times out after L steps",
)
.unit(Unit::Steps)
.min(1.0);

pub(super) static CTORS: &[Ctor] = &[
    Ctor {
        name: "procmaze",
        kind: Kind::Env,
        doc: "episodic maze: a random DFS tree of open cells per episode, reward -1 per step until the goal",
        fields: &[
            GRID_SIZE,
            Field::new(
                "spontaneous_termination",
                Ty::Bool,
                D::Bool(true),
                "teleport to the goal with p = 0.1/((g+1)ceil(g/2) - g%2) each step",
            ),
            Field::new(
                "teleport_on_termination",
                Ty::Bool,
                D::Bool(true),
                "a spontaneous event moves the agent onto the goal (terminating next step)",
            ),
        ],
        spaces: Some(|get| {
            let g = get("grid_size") as usize;
            grid_spaces(4 * g * g, 5, true)
        }),
        ..Ctor::PLAIN
    },
    Ctor {
        name: "buttongrid",
        kind: Kind::Env,
        doc: "continuing: toggle all buttons on by moving onto them for reward 1, then the grid resets",
        fields: &[
            GRID_SIZE,
            Field::new("buttons", Ty::Int, D::Int(3), "number of buttons, at distinct cells").min(1.0),
            Field::new(
                "spontaneous_reset",
                Ty::Bool,
                D::Bool(true),
                "with p = 1/(10 g^2) per step a spontaneous event fires",
            ),
            Field::new(
                "activate_on_reset",
                Ty::Bool,
                D::Bool(true),
                "a spontaneous event switches every button on (reward next step)",
            ),
        ],
        spaces: Some(|get| {
            let g = get("grid_size") as usize;
            grid_spaces(3 * g * g, 5, false)
        }),
        ..Ctor::PLAIN
    },
    Ctor {
        name: "panflute",
        kind: Kind::Env,
        doc: "continuing: blow N pipes in the right order; reward 1 when every pipe's last cell is set",
        fields: &[
            Field::new("pipes", Ty::Int, D::Int(5), "number of pipes N; pipe i has length i+1")
                .min(1.0)
                .max(64.0),
            Field::new(
                "spontaneous_reward",
                Ty::Bool,
                D::Bool(true),
                "with p = 1/N^2 per step every pipe's last cell is set (reward next step)",
            ),
        ],
        spaces: Some(|get| {
            let n = get("pipes") as usize;
            grid_spaces(n * (n + 1) / 2, n, false)
        }),
        ..Ctor::PLAIN
    },
    Ctor {
        name: "opengrid",
        kind: Kind::Env,
        doc: "episodic open grid with the goal in the far corner, reward -1 per step",
        fields: &[
            GRID_SIZE,
            Field::new(
                "spontaneous_termination",
                Ty::Bool,
                D::Bool(true),
                "teleport to the goal with p = 0.1/g each step",
            ),
        ],
        spaces: Some(|get| {
            let g = get("grid_size") as usize;
            grid_spaces(g * g, 5, true)
        }),
        ..Ctor::PLAIN
    },
    Ctor {
        name: "pendulum",
        kind: Kind::Env,
        doc: "MBBL pendulum swing-up: obs [cos, sin, velocity], torque in [-2, 2], never terminates",
        fields: &[HORIZON_200],
        spaces: Some(|get| control_spaces(3, 1, get("horizon"))),
        ..Ctor::PLAIN
    },
    Ctor {
        name: "cartpole",
        kind: Kind::Env,
        doc: "MBBL continuous cart-pole: action thresholded to +-10 N, reward cos(theta) - 0.01 x^2",
        fields: &[HORIZON_200],
        spaces: Some(|get| control_spaces(4, 1, get("horizon"))),
        ..Ctor::PLAIN
    },
    Ctor {
        name: "acrobot",
        kind: Kind::Env,
        doc: "MBBL acrobot: action discretised to torque {-1, 0, 1}, RK4 book dynamics",
        fields: &[HORIZON_200],
        spaces: Some(|get| control_spaces(6, 1, get("horizon"))),
        ..Ctor::PLAIN
    },
    Ctor {
        name: "mountaincar",
        kind: Kind::Env,
        doc: "MBBL continuous mountain car: power 0.0015, reward = position",
        fields: &[HORIZON_200],
        spaces: Some(|get| control_spaces(2, 1, get("horizon"))),
        ..Ctor::PLAIN
    },
    Ctor {
        name: "halfcheetah",
        kind: Kind::Env,
        doc: "SLBO's rllab HalfCheetah on MuJoCo (needs the `mujoco` feature): reward comvel_x - 0.05|a|^2",
        fields: &[Field::new("horizon", Ty::Int, D::Int(1000), "episode length L")
            .unit(Unit::Steps)
            .min(1.0)],
        spaces: Some(|get| control_spaces(24, 6, get("horizon"))),
        ..Ctor::PLAIN
    },
];

fn grid_spaces(obs_dim: usize, n_actions: usize, episodic: bool) -> EnvSpaces {
    EnvSpaces {
        obs_dim,
        obs: ObsKind::Binary,
        action: ActionSpace::Discrete(n_actions),
        episodic,
        horizon: None,
    }
}

fn control_spaces(obs_dim: usize, act_dim: usize, horizon: i64) -> EnvSpaces {
    EnvSpaces {
        obs_dim,
        obs: ObsKind::Real,
        action: ActionSpace::Continuous(act_dim),
        episodic: false,
        horizon: Some(horizon.max(0) as usize),
    }
}
