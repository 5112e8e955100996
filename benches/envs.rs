//! Env steps per second for 30 seeds x 32 envs (960 instances) per environment:
//! one `step` of the whole batch plus writing every observation, as the
//! acting loop does. Throughput is reported in elements = instance steps.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};

use mbrl::envs::{buttongrid, panflute, procmaze, Actions, Batch, EnvConfig, Layout, Task};
use mbrl::seeds::{Purpose, Stream};

fn configs() -> Vec<(&'static str, EnvConfig)> {
    vec![
        (
            "procmaze_g4",
            EnvConfig::ProcMaze(procmaze::Params {
                grid_size: 4,
                spontaneous_termination: true,
                teleport_on_termination: true,
            }),
        ),
        (
            "buttongrid_g10",
            EnvConfig::ButtonGrid(buttongrid::Params {
                grid_size: 10,
                buttons: 3,
                spontaneous_reset: true,
                activate_on_reset: true,
            }),
        ),
        (
            "panflute_n5",
            EnvConfig::PanFlute(panflute::Params {
                pipes: 5,
                spontaneous_reward: true,
            }),
        ),
        ("pendulum", EnvConfig::Control(Task::Pendulum, 200)),
        ("cartpole", EnvConfig::Control(Task::CartPole, 200)),
        ("acrobot", EnvConfig::Control(Task::Acrobot, 200)),
        ("mountaincar", EnvConfig::Control(Task::MountainCar, 200)),
        #[cfg(feature = "mujoco")]
        ("halfcheetah", EnvConfig::HalfCheetah(1000)),
    ]
}

fn env_steps(c: &mut Criterion) {
    let layout = Layout {
        root_seed: 0,
        seeds: (0..30).collect(),
        envs_per_seed: 32,
        purpose: Purpose::Env,
        round: 0,
    };
    let mut group = c.benchmark_group("env_step_30x32");
    group.throughput(Throughput::Elements(layout.n_instances() as u64));
    for (name, config) in configs() {
        let mut env = Batch::new(config, &layout).unwrap();
        let n = env.len();
        let spaces = env.spaces();
        let mut rng = Stream::new(0, 0, Purpose::Action, 0);
        let discrete: Vec<Vec<usize>> = (0..64)
            .map(|_| {
                (0..n)
                    .map(|_| rng.below(5.min(spaces.action.input_dim())))
                    .collect()
            })
            .collect();
        let continuous: Vec<Vec<f32>> = (0..64)
            .map(|_| {
                (0..n * spaces.action.input_dim())
                    .map(|_| rng.range(-1.0, 1.0) as f32)
                    .collect()
            })
            .collect();
        let mut obs = vec![0f32; n * spaces.obs_dim];
        let mut rewards = vec![0f32; n];
        let mut terminals = vec![false; n];
        let mut t = 0;
        group.bench_function(name, |b| {
            b.iter(|| {
                let actions = match spaces.action {
                    mbrl::schema::ActionSpace::Discrete(_) => Actions::Discrete(&discrete[t % 64]),
                    mbrl::schema::ActionSpace::Continuous(_) => {
                        Actions::Continuous(&continuous[t % 64])
                    }
                };
                env.step(actions, &mut rewards, &mut terminals);
                for (i, done) in terminals.iter().enumerate() {
                    if *done {
                        env.reset(i);
                    }
                }
                env.observe_all(&mut obs);
                t += 1;
            })
        });
    }
    group.finish();
}

criterion_group!(benches, env_steps);
criterion_main!(benches);
