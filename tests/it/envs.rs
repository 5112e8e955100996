//! The environment rules of young2022 spec §1 and vaslbo spec §6.4, one test
//! per rule, plus statistical tests of the spontaneous events and scripted
//! optimal policies whose returns the spec implies.

use std::collections::VecDeque;

use mbrl::compile::{EvalMetric, Protocol};
use mbrl::envs::control::{self, Task};
use mbrl::envs::grid::{flat, MOVES};
use mbrl::envs::{
    buttongrid, opengrid, panflute, procmaze, Actions, Batch, EnvConfig, EnvState, Layout,
};
use mbrl::runtime::evaluate::{self, ActionBuf, Policy, RandomPolicy};
use mbrl::seeds::Purpose;

fn layout(seeds: u64, envs: usize) -> Layout {
    Layout {
        root_seed: 11,
        seeds: (0..seeds).collect(),
        envs_per_seed: envs,
        purpose: Purpose::Env,
        round: 0,
    }
}

fn maze(g: usize, spontaneous: bool) -> EnvConfig {
    EnvConfig::ProcMaze(procmaze::Params {
        grid_size: g,
        spontaneous_termination: spontaneous,
        teleport_on_termination: true,
    })
}

fn flute(n: usize, spontaneous: bool) -> EnvConfig {
    EnvConfig::PanFlute(panflute::Params {
        pipes: n,
        spontaneous_reward: spontaneous,
    })
}

fn buttons(g: usize, n: usize) -> EnvConfig {
    EnvConfig::ButtonGrid(buttongrid::Params {
        grid_size: g,
        buttons: n,
        spontaneous_reset: true,
        activate_on_reset: true,
    })
}

fn step_all(env: &mut Batch, actions: Actions) -> (Vec<f32>, Vec<bool>) {
    let mut r = vec![0.0; env.len()];
    let mut t = vec![false; env.len()];
    env.step(actions, &mut r, &mut t);
    (r, t)
}

fn maze_state(env: &Batch, i: usize) -> procmaze::State {
    match env.state(i) {
        EnvState::ProcMaze(s) => s,
        _ => unreachable!(),
    }
}

/// Breadth-first distances from `from` over open cells.
fn distances(state: &procmaze::State, g: usize, from: [i32; 2]) -> Vec<Option<usize>> {
    let mut dist = vec![None; g * g];
    dist[flat(from, g)] = Some(0);
    let mut queue = VecDeque::from([from]);
    while let Some(c) = queue.pop_front() {
        for d in &MOVES[1..] {
            let n = [c[0] + d[0], c[1] + d[1]];
            let on = n[0] >= 0 && n[1] >= 0 && (n[0] as usize) < g && (n[1] as usize) < g;
            if on && !state.walls[flat(n, g)] && dist[flat(n, g)].is_none() {
                dist[flat(n, g)] = Some(dist[flat(c, g)].unwrap() + 1);
                queue.push_back(n);
            }
        }
    }
    dist
}

#[test]
fn procmaze_spontaneous_rate_matches_spec() {
    assert!((procmaze::p_goal(3) - 1.0 / 70.0).abs() < 1e-12);
    assert!((procmaze::p_goal(4) - 0.01).abs() < 1e-12);
    assert!((procmaze::p_goal(5) - 1.0 / 170.0).abs() < 1e-12);
    assert!((procmaze::p_goal(8) - 1.0 / 360.0).abs() < 1e-12);
}

/// Every maze is a tree of open cells (connected, no loop) with no 2x2 open
/// block, and start and goal are open.
#[test]
fn procmaze_mazes_are_trees_without_open_squares() {
    for g in [3, 4, 5, 8] {
        let env = Batch::new(maze(g, true), &layout(4, 50)).unwrap();
        for i in 0..env.len() {
            let s = maze_state(&env, i);
            let open: Vec<usize> = (0..g * g).filter(|c| !s.walls[*c]).collect();
            assert!(!s.walls[flat(s.pos, g)] && !s.walls[flat(s.goal, g)]);
            let dist = distances(&s, g, s.pos);
            assert!(
                open.iter().all(|c| dist[*c].is_some()),
                "open cells connected"
            );
            let mut edges = 0;
            for r in 0..g {
                for c in 0..g {
                    let o = |r: usize, c: usize| r < g && c < g && !s.walls[r * g + c];
                    edges += (o(r, c) && o(r, c + 1)) as usize + (o(r, c) && o(r + 1, c)) as usize;
                    assert!(
                        !(o(r, c) && o(r, c + 1) && o(r + 1, c) && o(r + 1, c + 1)),
                        "2x2 open block"
                    );
                }
            }
            assert_eq!(
                edges + 1,
                open.len(),
                "a tree has one edge fewer than cells"
            );
        }
    }
}

/// Terminal comes from the pre-step position, the reward is -1 even then,
/// walls block moves, and obs channels are player, goal, wall, empty.
#[test]
fn procmaze_step_order_and_observation() {
    let g = 4;
    let mut env = Batch::new(maze(g, false), &layout(1, 1)).unwrap();
    let mut s = maze_state(&env, 0);
    s.pos = s.goal;
    env.set_state(0, &EnvState::ProcMaze(s.clone()));
    let (r, t) = step_all(&mut env, Actions::Discrete(&[0]));
    assert_eq!(
        (r[0], t[0]),
        (-1.0, true),
        "terminal on the step taken from the goal"
    );
    let mut obs = vec![0.0; 4 * g * g];
    env.observe(0, &mut obs);
    let cell = flat(s.pos, g);
    assert_eq!(&obs[cell * 4..cell * 4 + 4], &[1.0, 1.0, 0.0, 1.0]);
    // Find an open cell next to a wall and bump into the wall.
    for r0 in 0..g as i32 {
        for c0 in 0..g as i32 {
            if s.walls[flat([r0, c0], g)] {
                continue;
            }
            for (a, d) in MOVES.iter().enumerate().skip(1) {
                let n = [r0 + d[0], c0 + d[1]];
                if n[0] < 0
                    || n[1] < 0
                    || n[0] >= g as i32
                    || n[1] >= g as i32
                    || !s.walls[flat(n, g)]
                {
                    continue;
                }
                let mut t = s.clone();
                t.pos = [r0, c0];
                t.goal = if t.pos == s.goal { s.pos } else { s.goal };
                env.set_state(0, &EnvState::ProcMaze(t));
                step_all(&mut env, Actions::Discrete(&[a]));
                assert_eq!(maze_state(&env, 0).pos, [r0, c0], "walls block moves");
                return;
            }
        }
    }
    panic!("no wall found next to an open cell");
}

/// Statistical: the teleport fires at p_goal (g=3: 1/70) per step.
#[test]
fn procmaze_teleport_rate() {
    let g = 3;
    let mut env = Batch::new(maze(g, true), &layout(10, 96)).unwrap();
    let n = env.len();
    let mut fired = 0usize;
    let steps = 100;
    for _ in 0..steps {
        let mut saved = Vec::new();
        for i in 0..n {
            let mut s = maze_state(&env, i);
            if s.pos == s.goal {
                env.reset(i);
                s = maze_state(&env, i);
            }
            saved.push(s);
        }
        step_all(&mut env, Actions::Discrete(&vec![0; n]));
        for (i, s) in saved.iter().enumerate() {
            if s.pos != s.goal && maze_state(&env, i).pos == s.goal {
                fired += 1;
            }
        }
    }
    let trials = (n * steps) as f64;
    let p = procmaze::p_goal(g);
    let sd = (trials * p * (1.0 - p)).sqrt();
    assert!(
        (fired as f64 - trials * p).abs() < 5.0 * sd,
        "fired {fired} of {trials}, expected {}",
        trials * p
    );
}

/// A shortest-path policy: follow the BFS distance to the goal downhill.
struct ShortestPath {
    states: Vec<procmaze::State>,
    g: usize,
}

impl Policy for ShortestPath {
    fn act(&mut self, _obs: &[f32], actions: &mut ActionBuf) {
        let ActionBuf::Discrete(a, _) = actions else {
            unreachable!()
        };
        for (i, s) in self.states.iter().enumerate() {
            let dist = distances(s, self.g, s.goal);
            let here = dist[flat(s.pos, self.g)].unwrap();
            a[i] = (1..5)
                .find(|&k| {
                    let n = mbrl::envs::grid::moved(s.pos, k, self.g);
                    !s.walls[flat(n, self.g)]
                        && dist[flat(n, self.g)] == Some(here.saturating_sub(1))
                        && here > 0
                })
                .unwrap_or(0);
        }
    }
}

/// Without spontaneous events, shortest paths score exactly -(d+1) (spec §1.1).
#[test]
fn procmaze_shortest_paths_score_minus_distance_plus_one() {
    let g = 5;
    let mut env = Batch::new(maze(g, false), &layout(3, 20)).unwrap();
    let n = env.len();
    let expected: Vec<f32> = (0..n)
        .map(|i| {
            let s = maze_state(&env, i);
            -(distances(&s, g, s.goal)[flat(s.pos, g)].unwrap() as f32 + 1.0)
        })
        .collect();
    let mut returns = vec![0.0f32; n];
    let mut done = vec![false; n];
    let mut actions = ActionBuf::new(env.spaces().action, n);
    for _ in 0..100 {
        let states = (0..n).map(|i| maze_state(&env, i)).collect();
        ShortestPath { states, g }.act(&[], &mut actions);
        let (r, t) = step_all(&mut env, actions.as_actions());
        for i in 0..n {
            if !done[i] {
                returns[i] += r[i];
            }
            done[i] |= t[i];
        }
    }
    assert_eq!(returns, expected);
}

/// Only a move onto a button toggles it; a success pays 1 on the next step
/// and resets the grid.
#[test]
fn buttongrid_toggles_only_on_moves_and_resets_after_success() {
    let g = 4;
    let mut env = Batch::new(buttons(g, 2), &layout(1, 1)).unwrap();
    let state = buttongrid::State {
        pos: [0, 0],
        buttons: vec![[0, 1], [3, 3]],
        on: vec![false, false],
    };
    env.set_state(0, &EnvState::ButtonGrid(state.clone()));
    let get = |env: &Batch| match env.state(0) {
        EnvState::ButtonGrid(s) => s,
        _ => unreachable!(),
    };
    step_all(&mut env, Actions::Discrete(&[4])); // right, onto [0, 1]
    let s = get(&env);
    if s.pos == [0, 1] {
        assert_eq!(s.on, vec![true, false], "moving onto a button toggles it");
        step_all(&mut env, Actions::Discrete(&[0])); // no-op on the button
        assert!(get(&env).on[0], "a no-op on a button does nothing");
        step_all(&mut env, Actions::Discrete(&[1])); // up: bump the wall
        assert!(get(&env).on[0], "bumping a wall on a button does nothing");
    }
    let on = buttongrid::State {
        pos: [2, 2],
        buttons: vec![[0, 1], [3, 3]],
        on: vec![true, true],
    };
    env.set_state(0, &EnvState::ButtonGrid(on));
    let (r, _) = step_all(&mut env, Actions::Discrete(&[0]));
    assert_eq!(r[0], 1.0, "reward when all buttons were on before the step");
    assert!(
        get(&env).on.iter().all(|b| !b),
        "the grid resets after a success"
    );
}

/// Statistical: spontaneous activations at 1/(10 g^2) (g=4: 0.00625), each
/// followed by a reward on the next step.
#[test]
fn buttongrid_spontaneous_rate() {
    let g = 4;
    let mut env = Batch::new(buttons(g, 3), &layout(10, 96)).unwrap();
    let n = env.len();
    let off = |_: usize| buttongrid::State {
        pos: [0, 0],
        buttons: vec![[3, 3], [3, 2], [2, 3]],
        on: vec![false; 3],
    };
    let steps = 200;
    let mut fired = 0;
    for _ in 0..steps {
        for i in 0..n {
            env.set_state(i, &EnvState::ButtonGrid(off(i)));
        }
        step_all(&mut env, Actions::Discrete(&vec![0; n]));
        for i in 0..n {
            if let EnvState::ButtonGrid(s) = env.state(i) {
                fired += s.on.iter().all(|b| *b) as usize;
            }
        }
    }
    let trials = (n * steps) as f64;
    let p = buttongrid::p_spontaneous(g);
    let sd = (trials * p * (1.0 - p)).sqrt();
    assert!(
        (fired as f64 - trials * p).abs() < 5.0 * sd,
        "fired {fired}, expected {}",
        trials * p
    );
}

/// `pipe_i[k]` at step t is `[a_{t-1-k} == i]`; the reward reads the pre-step state.
#[test]
fn panflute_pipes_shift_and_reward_from_pre_step_state() {
    let n = 3;
    let mut env = Batch::new(flute(n, false), &layout(1, 1)).unwrap();
    let mut obs = vec![0.0; 6];
    let seq = [2, 1, 0, 2];
    let mut rewards = Vec::new();
    for a in seq {
        let (r, _) = step_all(&mut env, Actions::Discrete(&[a]));
        rewards.push(r[0]);
    }
    env.observe(0, &mut obs);
    // Pipe 0 = [a_3 == 0]; pipe 1 = [a_3 == 1, a_2 == 1]; pipe 2 = [a_3 == 2, a_2 == 2, a_1 == 2].
    assert_eq!(obs, vec![0.0, 0.0, 0.0, 1.0, 0.0, 0.0]);
    assert_eq!(
        rewards,
        vec![0.0, 0.0, 0.0, 1.0],
        "reward one step after playing 2, 1, 0"
    );
}

fn periodic_rate(n: usize, cycle: &[usize]) -> f64 {
    let mut env = Batch::new(flute(n, false), &layout(1, 1)).unwrap();
    let steps = cycle.len() * 20 + n;
    let mut total = 0.0;
    for t in 0..steps {
        let (r, _) = step_all(&mut env, Actions::Discrete(&[cycle[t % cycle.len()]]));
        if t >= n {
            total += r[0] as f64;
        }
    }
    total / (steps - n) as f64
}

/// Without spontaneous events the best reward rate is 1/N: exhaustive over
/// every periodic action sequence of period up to 6 for N = 3.
#[test]
fn panflute_best_rate_is_one_over_n() {
    let n: usize = 3;
    let mut best: f64 = 0.0;
    for len in 1..=6u32 {
        for code in 0..n.pow(len) {
            let cycle: Vec<usize> = (0..len).map(|k| code / n.pow(k) % n).collect();
            best = best.max(periodic_rate(n, &cycle));
        }
    }
    assert!((best - 1.0 / 3.0).abs() < 0.02, "best periodic rate {best}");
    assert!((periodic_rate(n, &[2, 1, 0]) - 1.0 / 3.0).abs() < 0.02);
}

/// Cycling N-1..0 with spontaneous events scores 1/N + (1/N^2)(1 - 1/N) (N=5: 0.232).
#[test]
fn panflute_scripted_optimal_rate_with_spontaneous_rewards() {
    let n = 5;
    let mut env = Batch::new(flute(n, true), &layout(10, 32)).unwrap();
    let m = env.len();
    let steps = 2000;
    let mut total = 0.0;
    for t in 0..steps {
        let a = vec![n - 1 - t % n; m];
        let (r, _) = step_all(&mut env, Actions::Discrete(&a));
        total += r.iter().map(|x| *x as f64).sum::<f64>();
    }
    let rate = total / (steps * m) as f64;
    let p = 1.0 / (n * n) as f64;
    let expected = 1.0 / n as f64 + p * (1.0 - 1.0 / n as f64);
    assert!(
        (rate - expected).abs() < 0.005,
        "rate {rate}, expected {expected}"
    );
}

/// The evaluation protocol with the random agent on PanFlute: mostly the
/// spontaneous rate 1/N^2 (plus (1/N)^N by chance).
#[test]
fn random_agent_reward_rate_on_panflute() {
    let protocol = Protocol {
        envs: 32,
        steps: 100,
        metric: EvalMetric::RewardRate,
        stochastic: false,
    };
    let mut make = |l: &Layout| Box::new(RandomPolicy::new(l)) as Box<dyn Policy>;
    let scores = evaluate::evaluate(flute(5, true), protocol, &layout(30, 1), &mut make).unwrap();
    assert_eq!(scores.len(), 30);
    let mean = scores.iter().sum::<f64>() / 30.0;
    let expected = 0.04 * (1.0 - 0.2f64.powi(5)) + 0.2f64.powi(5);
    assert!(
        (mean - expected).abs() < 0.004,
        "mean {mean}, expected about {expected}"
    );
}

/// A seed's trajectory does not depend on the other seeds of the batch.
#[test]
fn seeds_are_batch_invariant() {
    let run = |seeds: Vec<u64>| {
        let l = Layout {
            root_seed: 5,
            seeds,
            envs_per_seed: 4,
            purpose: Purpose::Env,
            round: 0,
        };
        let mut env = Batch::new(maze(4, true), &l).unwrap();
        let mut obs = vec![0.0; env.len() * 64];
        for t in 0..50 {
            let a: Vec<usize> = (0..env.len()).map(|i| (i % 4 + t) % 5).collect();
            let (_, term) = step_all(&mut env, Actions::Discrete(&a));
            for (i, done) in term.iter().enumerate() {
                if *done {
                    env.reset(i);
                }
            }
        }
        env.observe_all(&mut obs);
        obs
    };
    let alone = run(vec![3]);
    let batched = run(vec![0, 1, 2, 3, 4]);
    assert_eq!(alone[..], batched[3 * 4 * 64..4 * 4 * 64]);
}

/// Saving and restoring a state replays the same transition (no spontaneous events).
#[test]
fn states_save_and_restore() {
    for config in [
        maze(4, false),
        flute(4, false),
        EnvConfig::Control(Task::Acrobot, 200),
    ] {
        let mut env = Batch::new(config, &layout(1, 2)).unwrap();
        let saved = env.state(0);
        let actions_d = [1usize, 2];
        let actions_c = [0.5f32, -0.5];
        let act = |spaces: mbrl::schema::EnvSpaces| match spaces.action {
            mbrl::schema::ActionSpace::Discrete(_) => Actions::Discrete(&actions_d),
            mbrl::schema::ActionSpace::Continuous(_) => Actions::Continuous(&actions_c),
        };
        let spaces = env.spaces();
        step_all(&mut env, act(spaces));
        let first = env.state(0);
        env.set_state(0, &saved);
        step_all(&mut env, act(spaces));
        assert_eq!(env.state(0), first);
    }
}

/// OpenGrid: player channel only, goal in the far corner, termination before the move.
#[test]
fn opengrid_rules() {
    let g = 3;
    let config = EnvConfig::OpenGrid(opengrid::Params {
        grid_size: g,
        spontaneous_termination: false,
    });
    let mut env = Batch::new(config, &layout(1, 1)).unwrap();
    env.set_state(0, &EnvState::OpenGrid(opengrid::State { pos: [2, 1] }));
    let (r, t) = step_all(&mut env, Actions::Discrete(&[4]));
    assert_eq!((r[0], t[0]), (-1.0, false));
    let (_, t) = step_all(&mut env, Actions::Discrete(&[0]));
    assert!(t[0], "terminates on the step taken from the goal");
    let mut obs = vec![0.0; g * g];
    env.observe(0, &mut obs);
    assert_eq!(obs.iter().sum::<f32>(), 1.0);
    assert_eq!(obs[8], 1.0);
}

/// The exposed reward function equals the env's reward (SLBO's `verify`).
#[test]
fn control_reward_functions_match_the_envs() {
    for task in [
        Task::Pendulum,
        Task::CartPole,
        Task::Acrobot,
        Task::MountainCar,
    ] {
        let mut env = Batch::new(EnvConfig::Control(task, 200), &layout(2, 3)).unwrap();
        let d = task.obs_dim();
        let n = env.len();
        let mut obs = vec![0.0; n * d];
        let mut next = vec![0.0; n * d];
        for t in 0..50 {
            env.observe_all(&mut obs);
            let a: Vec<f32> = (0..n).map(|i| ((i + t) as f32 * 0.37).sin()).collect();
            let (r, term) = step_all(&mut env, Actions::Continuous(&a));
            env.observe_all(&mut next);
            for i in 0..n {
                let (o, o2) = (&obs[i * d..(i + 1) * d], &next[i * d..(i + 1) * d]);
                assert!(
                    (control::reward(task, o, &a[i..i + 1], o2) - r[i]).abs() < 1e-5,
                    "{task:?}"
                );
                assert!(!control::terminal(task, o, &a[i..i + 1], o2) && !term[i]);
            }
        }
    }
}

/// One step of each task's dynamics against hand-computed values.
#[test]
fn control_dynamics_single_steps() {
    let mut env = Batch::new(EnvConfig::Control(Task::MountainCar, 200), &layout(1, 1)).unwrap();
    env.set_state(
        0,
        &EnvState::Control(control::State {
            x: [-0.5, 0.0, 0.0, 0.0],
        }),
    );
    step_all(&mut env, Actions::Continuous(&[1.0]));
    let EnvState::Control(s) = env.state(0) else {
        unreachable!()
    };
    let vel = 0.0015 - 0.0025 * (3.0f64 * -0.5).cos();
    assert!((s.x[1] - vel).abs() < 1e-12 && (s.x[0] - (-0.5 + vel)).abs() < 1e-12);

    let mut env = Batch::new(EnvConfig::Control(Task::CartPole, 200), &layout(1, 1)).unwrap();
    env.set_state(0, &EnvState::Control(control::State { x: [0.0; 4] }));
    step_all(&mut env, Actions::Continuous(&[0.3]));
    let EnvState::Control(s) = env.state(0) else {
        unreachable!()
    };
    // At rest, a +10 N push: xacc = 10/1.1 - 0.05 * thetaacc / 1.1, thetaacc = -(10/1.1) / (0.5 (4/3 - 0.1/1.1)).
    let temp = 10.0 / 1.1;
    let thetaacc = -temp / (0.5 * (4.0 / 3.0 - 0.1 / 1.1));
    let xacc = temp - 0.05 * thetaacc / 1.1;
    assert!((s.x[1] - 0.02 * xacc).abs() < 1e-12 && (s.x[3] - 0.02 * thetaacc).abs() < 1e-12);

    let mut env = Batch::new(EnvConfig::Control(Task::Pendulum, 200), &layout(1, 1)).unwrap();
    env.set_state(
        0,
        &EnvState::Control(control::State {
            x: [0.0, 0.0, 0.0, 0.0],
        }),
    );
    step_all(&mut env, Actions::Continuous(&[0.5]));
    let EnvState::Control(s) = env.state(0) else {
        unreachable!()
    };
    // Upright at rest, torque 1: thetadot = 3 * 1 * 0.05 (sin(pi) ~ 0).
    assert!((s.x[1] - 0.15).abs() < 1e-9 && (s.x[0] - 0.0075).abs() < 1e-9);
}

#[test]
fn halfcheetah_without_mujoco_is_a_clear_error() {
    if cfg!(feature = "mujoco") {
        return;
    }
    let err = Batch::new(EnvConfig::HalfCheetah(1000), &layout(1, 1))
        .err()
        .unwrap();
    assert!(err.0.contains("--features mujoco"));
}

/// HalfCheetah (vaslbo spec §6.2): 24-dim observation, the exposed reward
/// equals the env's, states save and restore exactly, and seeds are batch-invariant.
#[cfg(feature = "mujoco")]
#[test]
fn halfcheetah_rules() {
    use mbrl::envs::halfcheetah;
    let mut env = Batch::new(EnvConfig::HalfCheetah(1000), &layout(2, 2)).unwrap();
    let spaces = env.spaces();
    assert_eq!(
        (spaces.obs_dim, spaces.action),
        (24, mbrl::schema::ActionSpace::Continuous(6))
    );
    let n = env.len();
    let mut obs = vec![0.0; n * 24];
    let mut next = vec![0.0; n * 24];
    let saved = env.state(0);
    let mut first_step = None;
    for t in 0..20 {
        env.observe_all(&mut obs);
        let a: Vec<f32> = (0..n * 6)
            .map(|k| ((k + 3 * t) as f32 * 0.7).sin() * 1.3)
            .collect();
        let (r, term) = step_all(&mut env, Actions::Continuous(&a));
        env.observe_all(&mut next);
        for i in 0..n {
            let (o, o2) = (&obs[i * 24..(i + 1) * 24], &next[i * 24..(i + 1) * 24]);
            assert!((halfcheetah::reward(o, &a[i * 6..(i + 1) * 6], o2) - r[i]).abs() < 1e-4);
            assert!(!term[i]);
        }
        if t == 0 {
            first_step = Some((env.state(0), a));
        }
    }
    let (after, a) = first_step.unwrap();
    env.set_state(0, &saved);
    step_all(&mut env, Actions::Continuous(&a));
    assert_eq!(
        env.state(0),
        after,
        "MuJoCo replays a restored state exactly"
    );

    let alone = Batch::new(
        EnvConfig::HalfCheetah(1000),
        &Layout {
            seeds: vec![1],
            ..layout(1, 2)
        },
    )
    .unwrap();
    let mut x = vec![0.0; 24];
    let mut y = vec![0.0; 24];
    alone.observe(1, &mut x);
    Batch::new(EnvConfig::HalfCheetah(1000), &layout(2, 2))
        .unwrap()
        .observe(3, &mut y);
    assert_eq!(x, y, "seed 1's reset does not depend on the batch");
}

/// SLBO runs a whole stage on HalfCheetah (MuJoCo): real collection, model
/// steps, virtual rollouts with the cheetah's reward, a TRPO step and the
/// evaluations before and after, all finite.
#[cfg(feature = "mujoco")]
#[test]
fn halfcheetah_slbo_stage() {
    use mbrl::runtime::driver::{Point, Session};
    let text = "use slbo::*
experiment cheetah_stage {
  env: cheetah
  agent: slbo_l2 {
    stages: 1 stages, steps_per_stage: 1000 steps, iters: 1 iterations
    model_iters: 2 updates, policy_iters: 1 updates, value_refit_every: 0 updates
    model: dynamics { hidden: [16] }
    planner: virtual_rollouts { envs: 1, length: 1000 steps }
    eval: policy_eval { envs: 1, steps: 1000 steps }
  }
}
";
    let out = mbrl::check_source(
        mbrl::source::Origin::Inline("cheetah.exp".into()),
        text.to_string(),
        &[],
        &mbrl::resolve::FsLoader,
    );
    assert!(!out.has_errors(), "{:?}", out.diags);
    let checked = out.checked.unwrap();
    let exp = &checked.experiments[0];
    let plan = mbrl::compile::compile(&mbrl::graph::cell_graph(exp, &exp.cells[0]), 1.0).unwrap();
    let stop = std::sync::atomic::AtomicBool::new(false);
    let session = Session {
        checkpoints: None,
        stop: &stop,
        stop_at: None,
    };
    let outcome = mbrl::runtime::run(&plan, 1, session, &|_: &[Point], _| ()).unwrap();
    let names = plan.metrics();
    let seen: Vec<(u64, &str)> = outcome
        .points
        .iter()
        .map(|p| (p.step, names[p.metric]))
        .collect();
    for want in [
        (0, "eval"),
        (1000, "eval"),
        (1000, "model_multi_step"),
        (1000, "train_return"),
    ] {
        assert!(seen.contains(&want), "{want:?} in {seen:?}");
    }
    assert!(
        outcome.points.iter().all(|p| p.value.is_finite()),
        "{:?}",
        outcome.points
    );
}
