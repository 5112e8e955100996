//! The MuJoCo-free MBBL classic-control tasks (vaslbo spec §6.4): Pendulum,
//! CartPole, Acrobot and MountainCar with continuous actions, fixed-length
//! episodes, no termination, and rewards computed from the pre-step
//! observation. Actions arrive in `[-1, 1]^d` and are rescaled to each task's
//! bounds here, as SLBO's runner does.
//!
//! [`reward`] and [`terminal`] are the known reward and termination functions
//! of each task as functions of (obs, action, next obs), so that a learned
//! model can be rolled out with the true reward (SLBO's `mb_step`).

use std::f64::consts::PI;

use crate::envs::{Actions, Layout};
use crate::schema::{ActionSpace, EnvSpaces, ObsKind};
use crate::seeds::Stream;

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub enum Task {
    Pendulum,
    CartPole,
    Acrobot,
    MountainCar,
}

impl Task {
    pub fn obs_dim(self) -> usize {
        match self {
            Task::Pendulum => 3,
            Task::CartPole => 4,
            Task::Acrobot => 6,
            Task::MountainCar => 2,
        }
    }

    /// Physical state size: pendulum (theta, thetadot), cart-pole (x, xdot,
    /// theta, thetadot), acrobot (theta1, theta2, dtheta1, dtheta2), car (pos, vel).
    fn state_dim(self) -> usize {
        match self {
            Task::Pendulum | Task::MountainCar => 2,
            Task::CartPole | Task::Acrobot => 4,
        }
    }
}

/// The physical state of one instance (unused entries are 0).
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct State {
    pub x: [f64; 4],
}

pub struct Control {
    task: Task,
    horizon: usize,
    states: Vec<State>,
    rngs: Vec<Stream>,
}

impl Control {
    pub fn new(task: Task, horizon: usize, layout: &Layout) -> Control {
        let mut rngs = layout.streams();
        let states = rngs.iter_mut().map(|rng| initial(task, rng)).collect();
        Control {
            task,
            horizon,
            states,
            rngs,
        }
    }

    pub fn spaces(&self) -> EnvSpaces {
        EnvSpaces {
            obs_dim: self.task.obs_dim(),
            obs: ObsKind::Real,
            action: ActionSpace::Continuous(1),
            episodic: false,
            horizon: Some(self.horizon),
        }
    }

    pub fn len(&self) -> usize {
        self.states.len()
    }

    pub fn reset(&mut self, i: usize) {
        self.states[i] = initial(self.task, &mut self.rngs[i]);
    }

    pub fn step(&mut self, actions: Actions, rewards: &mut [f32], terminals: &mut [bool]) {
        let Actions::Continuous(actions) = actions else {
            unreachable!("control tasks have continuous actions")
        };
        let mut obs = [0f32; 6];
        for (i, state) in self.states.iter_mut().enumerate() {
            let a = actions[i].clamp(-1.0, 1.0) as f64;
            observe_state(self.task, state, &mut obs);
            rewards[i] = reward(self.task, &obs[..self.task.obs_dim()], &[a as f32], &[]);
            *state = dynamics(self.task, state, a);
            terminals[i] = false;
        }
    }

    pub fn observe(&self, i: usize, out: &mut [f32]) {
        observe_state(self.task, &self.states[i], out);
    }

    pub fn state(&self, i: usize) -> &State {
        &self.states[i]
    }

    /// The instances' random streams (for checkpoints).
    pub fn streams_mut(&mut self) -> &mut Vec<Stream> {
        &mut self.rngs
    }

    pub fn set_state(&mut self, i: usize, state: &State) {
        self.states[i] = *state;
    }
}

/// The task's reward from the pre-step observation and the action in `[-1, 1]`
/// (the next observation is not used by these tasks).
pub fn reward(task: Task, obs: &[f32], action: &[f32], _next_obs: &[f32]) -> f32 {
    let a = action[0].clamp(-1.0, 1.0) as f64;
    let o = |i: usize| obs[i] as f64;
    let r = match task {
        Task::Pendulum => {
            let u = 2.0 * a;
            -(o(0) + 0.1 * o(1).abs() + 0.1 * o(2) * o(2) + 0.001 * u * u)
        }
        Task::CartPole => o(2).cos() - 0.01 * o(0) * o(0),
        // -cos(theta1) - cos(theta1 + theta2) = -(h1 + h2) in observation terms.
        Task::Acrobot => -o(0) - (o(0) * o(2) - o(1) * o(3)),
        Task::MountainCar => o(0),
    };
    r as f32
}

/// None of these tasks terminates; episodes end by the time limit.
pub fn terminal(_task: Task, _obs: &[f32], _action: &[f32], _next_obs: &[f32]) -> bool {
    false
}

fn initial(task: Task, rng: &mut Stream) -> State {
    let mut x = [0.0; 4];
    match task {
        Task::Pendulum => {
            x[0] = rng.range(-PI, PI);
            x[1] = rng.range(-1.0, 1.0);
        }
        Task::CartPole => x.iter_mut().for_each(|v| *v = rng.range(-0.05, 0.05)),
        Task::Acrobot => x.iter_mut().for_each(|v| *v = rng.range(-0.1, 0.1)),
        Task::MountainCar => x[0] = rng.range(-0.6, -0.4),
    }
    debug_assert!(task.state_dim() <= 4);
    State { x }
}

fn observe_state(task: Task, state: &State, out: &mut [f32]) {
    let x = state.x;
    let obs: &[f64] = match task {
        Task::Pendulum => &[x[0].cos(), x[0].sin(), x[1]],
        Task::CartPole => &x,
        Task::Acrobot => &[x[0].cos(), x[0].sin(), x[1].cos(), x[1].sin(), x[2], x[3]],
        Task::MountainCar => &x[..2],
    };
    for (o, v) in out.iter_mut().zip(obs) {
        *o = *v as f32;
    }
}

fn dynamics(task: Task, state: &State, a: f64) -> State {
    match task {
        Task::Pendulum => pendulum(state, a),
        Task::CartPole => cartpole(state, a),
        Task::Acrobot => acrobot(state, a),
        Task::MountainCar => mountain_car(state, a),
    }
}

/// Gym pendulum: g = 10, m = l = 1, dt = 0.05, torque in [-2, 2], speed in [-8, 8].
fn pendulum(state: &State, a: f64) -> State {
    let (th, thdot) = (state.x[0], state.x[1]);
    let u = (2.0 * a).clamp(-2.0, 2.0);
    let (g, m, l, dt) = (10.0, 1.0, 1.0, 0.05);
    let newthdot = thdot + (-3.0 * g / (2.0 * l) * (th + PI).sin() + 3.0 / (m * l * l) * u) * dt;
    let newth = th + newthdot * dt;
    State {
        x: [newth, newthdot.clamp(-8.0, 8.0), 0.0, 0.0],
    }
}

/// Gym cart-pole (Euler, tau = 0.02) with the action thresholded at 0 to +-10 N.
fn cartpole(state: &State, a: f64) -> State {
    let [x, x_dot, theta, theta_dot] = state.x;
    let (gravity, masscart, masspole, length, tau) = (9.8, 1.0, 0.1, 0.5, 0.02);
    let total_mass = masscart + masspole;
    let polemass_length = masspole * length;
    let force = if a > 0.0 { 10.0 } else { -10.0 };
    let (sin, cos) = theta.sin_cos();
    let temp = (force + polemass_length * theta_dot * theta_dot * sin) / total_mass;
    let thetaacc =
        (gravity * sin - cos * temp) / (length * (4.0 / 3.0 - masspole * cos * cos / total_mass));
    let xacc = temp - polemass_length * thetaacc * cos / total_mass;
    State {
        x: [
            x + tau * x_dot,
            x_dot + tau * xacc,
            theta + tau * theta_dot,
            theta_dot + tau * thetaacc,
        ],
    }
}

/// Gym acrobot, "book" dynamics, RK4 over dt = 0.2; the action is discretised
/// at +-0.33 to a torque in {-1, 0, 1}.
fn acrobot(state: &State, a: f64) -> State {
    let torque = if a < -0.33 {
        -1.0
    } else if a > 0.33 {
        1.0
    } else {
        0.0
    };
    let dt = 0.2;
    let s = state.x;
    let k1 = acrobot_dsdt(s, torque);
    let k2 = acrobot_dsdt(add(s, k1, dt / 2.0), torque);
    let k3 = acrobot_dsdt(add(s, k2, dt / 2.0), torque);
    let k4 = acrobot_dsdt(add(s, k3, dt), torque);
    let mut next = [0.0; 4];
    for i in 0..4 {
        next[i] = s[i] + dt / 6.0 * (k1[i] + 2.0 * k2[i] + 2.0 * k3[i] + k4[i]);
    }
    next[0] = wrap(next[0]);
    next[1] = wrap(next[1]);
    next[2] = next[2].clamp(-4.0 * PI, 4.0 * PI);
    next[3] = next[3].clamp(-9.0 * PI, 9.0 * PI);
    State { x: next }
}

fn add(s: [f64; 4], d: [f64; 4], h: f64) -> [f64; 4] {
    [
        s[0] + h * d[0],
        s[1] + h * d[1],
        s[2] + h * d[2],
        s[3] + h * d[3],
    ]
}

fn acrobot_dsdt(s: [f64; 4], a: f64) -> [f64; 4] {
    let (m1, m2, l1, lc1, lc2, i1, i2, g) = (1.0, 1.0, 1.0, 0.5, 0.5, 1.0, 1.0, 9.8);
    let [theta1, theta2, dtheta1, dtheta2] = s;
    let d1 = m1 * lc1 * lc1 + m2 * (l1 * l1 + lc2 * lc2 + 2.0 * l1 * lc2 * theta2.cos()) + i1 + i2;
    let d2 = m2 * (lc2 * lc2 + l1 * lc2 * theta2.cos()) + i2;
    let phi2 = m2 * lc2 * g * (theta1 + theta2 - PI / 2.0).cos();
    let phi1 = -m2 * l1 * lc2 * dtheta2 * dtheta2 * theta2.sin()
        - 2.0 * m2 * l1 * lc2 * dtheta2 * dtheta1 * theta2.sin()
        + (m1 * lc1 + m2 * l1) * g * (theta1 - PI / 2.0).cos()
        + phi2;
    let ddtheta2 = (a + d2 / d1 * phi1 - m2 * l1 * lc2 * dtheta1 * dtheta1 * theta2.sin() - phi2)
        / (m2 * lc2 * lc2 + i2 - d2 * d2 / d1);
    let ddtheta1 = -(d2 * ddtheta2 + phi1) / d1;
    [dtheta1, dtheta2, ddtheta1, ddtheta2]
}

fn wrap(x: f64) -> f64 {
    (x + PI).rem_euclid(2.0 * PI) - PI
}

/// Gym continuous mountain car: power 0.0015, speed in [-0.07, 0.07].
fn mountain_car(state: &State, a: f64) -> State {
    let (pos, vel) = (state.x[0], state.x[1]);
    let force = a.clamp(-1.0, 1.0);
    let mut vel = (vel + force * 0.0015 - 0.0025 * (3.0 * pos).cos()).clamp(-0.07, 0.07);
    let pos = (pos + vel).clamp(-1.2, 0.6);
    if pos == -1.2 && vel < 0.0 {
        vel = 0.0;
    }
    State {
        x: [pos, vel, 0.0, 0.0],
    }
}
