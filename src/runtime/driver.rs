//! The driver: everything a run does that is not the algorithm. It splits a
//! cell's seeds into shards over worker threads and groups within a shard,
//! builds a learner per group, lets free workers advance whichever group is
//! furthest behind (so that a faster core does more; on CUDA a group stays
//! on its worker), unit by unit on the
//! plan's [`Schedule`](crate::compile::Schedule), runs the evaluation
//! protocol with each learner's policy, averages the losses the learner
//! reports between evaluations, reports non-finite losses, checkpoints
//! (periodically, at the end, and when asked to stop) and resumes.
//!
//! A learner ([`Learner`]) is the algorithm behind a small trait: advance
//! one unit of work (a DQN env step, an SLBO stage), the policy to evaluate,
//! and its state as one serialisable value. Adding an agent kind never
//! touches this file.
//!
//! Invariants: seeds never exchange data, so a seed's run is the same in any
//! shard layout; every draw comes from the learner's or the protocol's
//! per-seed streams; prints nothing.

use std::sync::atomic::{AtomicBool, Ordering};

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::compile::Plan;
use crate::envs::{Batch, Layout, Unavailable};
use crate::runtime::evaluate::{self, Policy};
use crate::runtime::phases::{self, Phase};
use crate::runtime::shard;
use crate::seeds::Purpose;
use crate::tensor::{device, seeds_per_group, Dev, DeviceError, Movable, PerWorker};

/// An agent kind's compiled plan as the driver sees it: it builds the
/// learner of a group of seeds.
pub trait Agent: Sync {
    type Learner: Learner + Movable;
    fn build(&self, seeds: &[u64], dev: &Dev) -> Self::Learner;
}

/// The algorithm of a group of seeds, advanced by the driver.
pub trait Learner {
    /// Everything a checkpoint keeps to continue exactly.
    type State: Serialize + DeserializeOwned;
    /// One unit of work for every seed of the group; `unit` units are done
    /// before it. Reports the unit's losses to `losses`.
    fn advance(&mut self, unit: u64, losses: &mut Losses);
    /// The policy that the evaluation protocol runs on the eval envs of `layout`.
    fn policy<'a>(&'a self, layout: &Layout) -> Box<dyn Policy + 'a>;
    fn save(&mut self) -> Self::State;
    /// Continues from a [`Learner::save`] of a learner of the same seeds and plan.
    fn restore(&mut self, state: Self::State) -> Result<(), String>;
}

/// One measurement of one seed.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Point {
    pub seed: u64,
    /// Env steps taken when it was measured.
    pub step: u64,
    /// Index into the plan's metric names ([`Plan::metrics`]); 0 is `eval`.
    pub metric: usize,
    pub value: f64,
}

/// The index of the evaluation protocol's score among a plan's metrics.
pub const EVAL: usize = 0;

/// A seed whose loss stopped being finite, for the report: the other seeds'
/// parameters never see its gradient, so they carry on unaffected.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct NonFinite {
    pub seed: u64,
    /// Env steps taken when it happened.
    pub step: u64,
    pub metric: usize,
}

/// The losses a learner reports between two evaluations: per metric and
/// seed, their sum and how many there were.
pub struct Losses {
    seeds: Vec<u64>,
    sums: Vec<Vec<f64>>,
    counts: Vec<u64>,
    step: u64,
    failures: Vec<NonFinite>,
}

impl Losses {
    pub(crate) fn new(seeds: &[u64], metrics: usize) -> Losses {
        Losses {
            seeds: seeds.to_vec(),
            sums: vec![vec![0.0; seeds.len()]; metrics],
            counts: vec![0; metrics],
            step: 0,
            failures: Vec::new(),
        }
    }

    /// One value per seed of `metric` (an index into the plan's metric names).
    pub fn add(&mut self, metric: usize, per_seed: &[f32]) {
        for ((sum, value), seed) in self.sums[metric].iter_mut().zip(per_seed).zip(&self.seeds) {
            *sum += *value as f64;
            if !value.is_finite() {
                self.failures.push(NonFinite {
                    seed: *seed,
                    step: self.step,
                    metric,
                });
            }
        }
        self.counts[metric] += 1;
    }

    /// The mean of each reported metric since the last call, as points at `step`.
    fn take_points(&mut self, step: u64) -> Vec<Point> {
        let mut out = Vec::new();
        for (i, seed) in self.seeds.iter().enumerate() {
            for (metric, (sums, n)) in self.sums.iter().zip(&self.counts).enumerate() {
                if *n > 0 {
                    out.push(Point {
                        seed: *seed,
                        step,
                        metric,
                        value: sums[i] / *n as f64,
                    });
                }
            }
        }
        self.sums.iter_mut().flatten().for_each(|s| *s = 0.0);
        self.counts.iter_mut().for_each(|n| *n = 0);
        out
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("{0}")]
    Device(#[from] DeviceError),
    #[error("{}", .0 .0)]
    Env(Unavailable),
    /// A checkpoint could not be read or written (the message names the file).
    #[error("checkpoint `{key}`: {why}")]
    Checkpoint { key: String, why: String },
    /// A checkpoint failed its verification: truncated or changed bytes.
    #[error("{0}")]
    Damaged(String),
    /// An intact checkpoint of another experiment, cell or seed group.
    #[error("{0}")]
    Foreign(String),
}

/// Why a stored checkpoint cannot be used; each message names the file.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("{0}")]
    Io(String),
    #[error("{0}")]
    Damaged(String),
    #[error("{0}")]
    Foreign(String),
}

/// Where a run keeps its checkpoints: one blob per group of seeds, written
/// atomically and verified when read back by the implementation.
pub trait Checkpoints: Sync {
    fn load(&self, key: &str) -> Result<Option<Vec<u8>>, LoadError>;
    fn save(&self, key: &str, bytes: &[u8]) -> std::io::Result<()>;
}

/// How a run is persisted and stopped.
#[derive(Clone, Copy)]
pub struct Session<'a> {
    pub checkpoints: Option<&'a dyn Checkpoints>,
    /// Set (by a Ctrl-C handler) to checkpoint every seed at its next
    /// evaluation and return.
    pub stop: &'a AtomicBool,
    /// Behave as if `stop` were set once a seed that started (or resumed)
    /// before this env step reaches it.
    pub stop_at: Option<u64>,
}

/// What a run produced.
#[derive(Debug, Default)]
pub struct Outcome {
    /// Points ordered by step, seed and metric (including those restored from checkpoints).
    pub points: Vec<Point>,
    pub failures: Vec<NonFinite>,
    /// Stopped early; every unfinished seed has a checkpoint to resume from.
    pub interrupted: bool,
}

/// What progress hears: a worker's points, restored from checkpoints (`true`) or new.
pub type Progress<'a> = &'a ProgressFn<'a>;

/// What hears a worker's points: restored from checkpoints (`true`) or new.
pub type ProgressFn<'a> = dyn Fn(&[Point], bool) + Sync + 'a;

/// Runs every seed of `plan` with `agent`'s learners over `threads`
/// workers, resuming from the session's checkpoints where there are any.
pub fn run<A: Agent>(
    agent: &A,
    plan: &Plan,
    threads: usize,
    session: Session,
    progress: Progress,
) -> Result<Outcome, RunError> {
    device()?;
    let probe = layout(plan, &plan.seeds[..1], Purpose::Env, 0);
    Batch::new(plan.env, &probe).map_err(RunError::Env)?;
    // One pool for every worker, or one each, as the device allows.
    let workers = shard::shards(plan.seeds.len(), threads).len();
    let pools = PerWorker::new(workers, Shared::new);
    let results = shard::run(&plan.seeds, threads, |seeds| {
        let mut own = None;
        let shared = pools.get(&mut own);
        let _guard = FailOnPanic(shared);
        let worker = Worker {
            agent,
            plan,
            session,
            shared,
        };
        let result = worker.run(seeds, progress);
        if result.is_err() {
            shared.fail();
        }
        result
    });
    let mut outcome = Outcome::default();
    for result in results {
        let part = result?;
        outcome.points.extend(part.points);
        outcome.failures.extend(part.failures);
        outcome.interrupted |= part.interrupted;
    }
    outcome.points.sort_by_key(|p| (p.step, p.seed, p.metric));
    outcome.failures.sort_by_key(|f| (f.step, f.seed, f.metric));
    Ok(outcome)
}

/// The groups of a run that wait for a worker, shared by all workers: a
/// worker that is free takes the waiting group furthest behind, advances it
/// one unit and puts it back. Every worker opens its shard's groups, but a
/// core that runs faster (on a shared machine cores do not run alike) does
/// more of the work instead of idling at the end. A group's numbers do not
/// depend on the thread that advances it.
struct Shared<L> {
    state: std::sync::Mutex<Waiting<L>>,
    changed: std::sync::Condvar,
}

struct Waiting<L> {
    groups: Vec<Group<L>>,
    /// Workers still opening their shard's groups.
    opening: usize,
    /// Groups a worker holds; they come back unless they finish.
    taken: usize,
    /// A worker failed: the others stop.
    failed: bool,
}

impl<L> Shared<L> {
    fn new(workers: usize) -> Self {
        Shared {
            state: std::sync::Mutex::new(Waiting {
                groups: Vec::new(),
                opening: workers,
                taken: 0,
                failed: false,
            }),
            changed: std::sync::Condvar::new(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Waiting<L>> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds a worker's shard of groups, opened.
    fn add(&self, groups: Vec<Group<L>>) {
        let mut waiting = self.lock();
        waiting.groups.extend(groups);
        waiting.opening = waiting.opening.saturating_sub(1);
        drop(waiting);
        self.changed.notify_all();
    }

    /// The waiting group with the fewest units done; waits while every
    /// unfinished group is taken or still being opened; `None` once none is
    /// left (or a worker failed).
    fn take(&self) -> Option<Group<L>> {
        let mut waiting = self.lock();
        loop {
            if waiting.failed {
                return None;
            }
            let next = (0..waiting.groups.len()).min_by_key(|i| waiting.groups[*i].t);
            if let Some(i) = next {
                waiting.taken += 1;
                return Some(waiting.groups.swap_remove(i));
            }
            if waiting.taken == 0 && waiting.opening == 0 {
                return None;
            }
            waiting = self
                .changed
                .wait(waiting)
                .unwrap_or_else(|e| e.into_inner());
        }
    }

    /// Returns a taken group: back to the waiting ones unless it finished.
    fn put_back(&self, group: Option<Group<L>>) {
        let mut waiting = self.lock();
        waiting.taken -= 1;
        waiting.groups.extend(group);
        drop(waiting);
        self.changed.notify_all();
    }

    fn fail(&self) {
        self.lock().failed = true;
        self.changed.notify_all();
    }
}

/// Stops the other workers when a worker panics (they would otherwise
/// wait for the group it held).
struct FailOnPanic<'a, L>(&'a Shared<L>);

impl<L> Drop for FailOnPanic<'_, L> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.0.fail();
        }
    }
}

/// The instances of `seeds`, one per seed, for `purpose`.
pub fn layout(plan: &Plan, seeds: &[u64], purpose: Purpose, round: u64) -> Layout {
    Layout {
        root_seed: plan.root_seed,
        seeds: seeds.to_vec(),
        envs_per_seed: 1,
        purpose,
        round,
    }
}

/// A group's checkpoint: finished (only its points), or its whole state.
#[derive(serde::Serialize, serde::Deserialize)]
enum Checkpoint<S> {
    Done {
        points: Vec<Point>,
        failures: Vec<NonFinite>,
    },
    Running {
        group: GroupState,
        learner: S,
    },
}

/// The driver's part of a group's checkpoint.
#[derive(serde::Serialize, serde::Deserialize)]
struct GroupState {
    seeds: Vec<u64>,
    t: u64,
    round: u64,
    points: Vec<Point>,
    failures: Vec<NonFinite>,
}

/// The checkpoint key of a group of seeds.
fn group_key(seeds: &[u64]) -> String {
    match seeds {
        [one] => format!("seed-{one}"),
        _ => format!("seeds-{}-{}", seeds[0], seeds[seeds.len() - 1]),
    }
}

/// A group of seeds on a worker: its learner and the driver's bookkeeping.
struct Group<L> {
    key: String,
    seeds: Vec<u64>,
    learner: L,
    /// Units done, evaluation rounds done, the unit of the last checkpoint.
    t: u64,
    round: u64,
    last_save: u64,
    /// The unit this process started the group at.
    resumed_at: u64,
    /// Done, or stopped at a checkpoint.
    finished: bool,
    points: Vec<Point>,
    failures: Vec<NonFinite>,
    losses: Losses,
}

/// A group's points and failures into the outcome, once it is done or stopped.
fn finish<L>(group: Group<L>, outcome: &mut Outcome) {
    outcome.points.extend(group.points);
    outcome.failures.extend(group.failures);
}

/// One worker of a run: it opens its shard's groups, then advances
/// whichever groups wait in `shared`.
struct Worker<'a, A: Agent> {
    agent: &'a A,
    plan: &'a Plan,
    session: Session<'a>,
    shared: &'a Shared<A::Learner>,
}

impl<A: Agent> Worker<'_, A> {
    fn run(&self, seeds: &[u64], progress: Progress) -> Result<Outcome, RunError> {
        let dev = device().expect("the device opened before the workers started");
        let mut outcome = Outcome::default();
        let mut groups = Vec::new();
        for chunk in seeds.chunks(seeds_per_group(seeds.len())) {
            match self.open(chunk, &dev, progress)? {
                Ok(group) => groups.push(group),
                Err((points, failures)) => {
                    outcome.points.extend(points);
                    outcome.failures.extend(failures);
                }
            }
        }
        self.shared.add(groups);
        let schedule = self.plan.schedule;
        while let Some(mut group) = self.shared.take() {
            let t = group.t;
            group.losses.step = t * schedule.steps_per_unit;
            group.learner.advance(t, &mut group.losses);
            group.t += 1;
            if group.t % schedule.eval_every == 0 || group.t == schedule.units {
                self.evaluate(&mut group, progress);
                if let Err(err) = self.after_evaluation(&mut group, &mut outcome) {
                    self.shared.put_back(None);
                    return Err(err);
                }
            }
            match group.finished {
                true => {
                    finish(group, &mut outcome);
                    self.shared.put_back(None);
                }
                false => self.shared.put_back(Some(group)),
            }
        }
        Ok(outcome)
    }

    /// The group of `seeds`: fresh, resumed from its checkpoint, or, when it
    /// had finished, its points and failures.
    #[allow(clippy::type_complexity)]
    fn open(
        &self,
        seeds: &[u64],
        dev: &Dev,
        progress: Progress,
    ) -> Result<Result<Group<A::Learner>, (Vec<Point>, Vec<NonFinite>)>, RunError> {
        let key = group_key(seeds);
        let err = |why: String| RunError::Checkpoint {
            key: key.clone(),
            why,
        };
        let saved = match self.load::<<A::Learner as Learner>::State>(&key)? {
            Some(Checkpoint::Done { points, failures }) => {
                progress(&points, true);
                return Ok(Err((points, failures)));
            }
            Some(Checkpoint::Running { group, learner }) => Some((group, learner)),
            None => None,
        };
        let mut group = Group {
            key: key.clone(),
            seeds: seeds.to_vec(),
            learner: self.agent.build(seeds, dev),
            t: 0,
            round: 0,
            last_save: 0,
            resumed_at: 0,
            finished: false,
            points: Vec::new(),
            failures: Vec::new(),
            losses: Losses::new(seeds, self.plan.metrics().len()),
        };
        match saved {
            Some((state, learner)) => {
                if state.seeds != seeds {
                    return Err(err("it holds other seeds".into()));
                }
                group.learner.restore(learner).map_err(err)?;
                group.t = state.t;
                group.round = state.round;
                group.last_save = state.t;
                group.resumed_at = state.t;
                group.points = state.points;
                group.failures = state.failures;
                progress(&group.points, true);
            }
            None if self.plan.schedule.eval_at_start => self.evaluate(&mut group, progress),
            None => (),
        }
        Ok(Ok(group))
    }

    /// Runs the protocol with the group's policy; records the evaluation
    /// and the losses since the last one as points at the current step.
    fn evaluate(&self, group: &mut Group<A::Learner>, progress: Progress) {
        let plan = self.plan;
        let step = group.t * plan.schedule.steps_per_unit;
        let layout = layout(plan, &group.seeds, Purpose::EvalEnv, group.round);
        let learner = &group.learner;
        let mut make = |l: &Layout| learner.policy(l);
        let values = phases::time(Phase::Evaluation, || {
            evaluate::evaluate(plan.env, plan.protocol, &layout, &mut make)
        })
        .expect("the env was built before");
        group.round += 1;
        let mut new: Vec<Point> = group
            .seeds
            .iter()
            .zip(values)
            .map(|(seed, value)| Point {
                seed: *seed,
                step,
                metric: EVAL,
                value,
            })
            .collect();
        new.extend(group.losses.take_points(step));
        group.failures.append(&mut group.losses.failures);
        progress(&new, false);
        group.points.extend(new);
    }

    /// Finishes, stops or checkpoints a group after an evaluation.
    fn after_evaluation(
        &self,
        group: &mut Group<A::Learner>,
        outcome: &mut Outcome,
    ) -> Result<(), RunError> {
        let schedule = self.plan.schedule;
        let steps = |units: u64| units * schedule.steps_per_unit;
        let stop = self.session.stop.load(Ordering::Relaxed)
            || self
                .session
                .stop_at
                .is_some_and(|s| steps(group.t) >= s && steps(group.resumed_at) < s);
        if group.t >= schedule.units {
            group.finished = true;
            self.save(group, true)
        } else if stop {
            group.finished = true;
            outcome.interrupted = true;
            self.save(group, false)
        } else if group.t - group.last_save >= schedule.save_every {
            group.last_save = group.t;
            self.save(group, false)
        } else {
            Ok(())
        }
    }

    fn load<S: DeserializeOwned>(&self, key: &str) -> Result<Option<Checkpoint<S>>, RunError> {
        let Some(store) = self.session.checkpoints else {
            return Ok(None);
        };
        let bytes = match store.load(key) {
            Ok(Some(bytes)) => bytes,
            Ok(None) => return Ok(None),
            Err(LoadError::Io(why)) => {
                return Err(RunError::Checkpoint {
                    key: key.to_string(),
                    why,
                })
            }
            Err(LoadError::Damaged(why)) => return Err(RunError::Damaged(why)),
            Err(LoadError::Foreign(why)) => return Err(RunError::Foreign(why)),
        };
        bincode::deserialize(&bytes).map(Some).map_err(|e| {
            RunError::Foreign(format!(
                "checkpoint `{key}` is intact but holds another agent's state ({e})"
            ))
        })
    }

    fn save(&self, group: &mut Group<A::Learner>, done: bool) -> Result<(), RunError> {
        let Some(store) = self.session.checkpoints else {
            return Ok(());
        };
        let err = |why: String| RunError::Checkpoint {
            key: group.key.clone(),
            why,
        };
        let bytes = match done {
            true => bincode::serialize(&Checkpoint::<()>::Done {
                points: group.points.clone(),
                failures: group.failures.clone(),
            }),
            false => bincode::serialize(&Checkpoint::Running {
                group: GroupState {
                    seeds: group.seeds.clone(),
                    t: group.t,
                    round: group.round,
                    points: group.points.clone(),
                    failures: group.failures.clone(),
                },
                learner: group.learner.save(),
            }),
        }
        .map_err(|e| err(e.to_string()))?;
        store
            .save(&group.key, &bytes)
            .map_err(|e| err(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kinds::dqn::learner::tests::plan_of;
    use crate::runtime::evaluate::RandomPolicy;

    /// A learner that records the units it is asked to advance and reports
    /// the unit as its first loss (the plan is an ER cell's, for its metrics).
    struct Counting {
        units: Vec<u64>,
    }

    impl Learner for Counting {
        type State = Vec<u64>;

        fn advance(&mut self, unit: u64, losses: &mut Losses) {
            self.units.push(unit);
            losses.add(1, &[unit as f32]);
        }

        fn policy<'a>(&'a self, layout: &Layout) -> Box<dyn Policy + 'a> {
            Box::new(RandomPolicy::new(layout))
        }

        fn save(&mut self) -> Vec<u64> {
            self.units.clone()
        }

        fn restore(&mut self, state: Vec<u64>) -> Result<(), String> {
            self.units = state;
            Ok(())
        }
    }

    struct CountingAgent;

    impl Agent for CountingAgent {
        type Learner = Counting;
        fn build(&self, _seeds: &[u64], _dev: &Dev) -> Counting {
            Counting { units: Vec::new() }
        }
    }

    fn run_counting(plan: &Plan) -> Outcome {
        let stop = AtomicBool::new(false);
        let session = Session {
            checkpoints: None,
            stop: &stop,
            stop_at: None,
        };
        run(&CountingAgent, plan, 1, session, &|_, _| ()).expect("runs")
    }

    /// Units run in order; evaluations come every `eval_every` units (and
    /// before the first with `eval_at_start`), labelled in env steps, each
    /// with the mean of the losses reported since the previous one.
    #[test]
    fn evaluations_every_eval_every_units_with_the_mean_losses() {
        let mut plan = plan_of(
            "experiment e { seeds: 2, env: flute, agent: er { steps: 900 steps, eval_every: 300 steps, learning_starts: 0 steps, eval: greedy_eval { envs: 2, steps: 5 steps } } }",
        );
        let steps_of = |o: &Outcome, metric: usize| -> Vec<u64> {
            o.points
                .iter()
                .filter(|p| p.metric == metric && p.seed == 1)
                .map(|p| p.step)
                .collect()
        };
        let out = run_counting(&plan);
        assert_eq!(steps_of(&out, EVAL), vec![300, 600, 900]);
        let mean_unit: Vec<f64> = out
            .points
            .iter()
            .filter(|p| p.metric == 1 && p.seed == 1)
            .map(|p| p.value)
            .collect();
        assert_eq!(mean_unit, vec![149.5, 449.5, 749.5]);
        plan.schedule.eval_at_start = true;
        plan.schedule.steps_per_unit = 10;
        plan.schedule.units = 90;
        plan.schedule.eval_every = 30;
        let out = run_counting(&plan);
        assert_eq!(steps_of(&out, EVAL), vec![0, 300, 600, 900]);
        assert_eq!(
            steps_of(&out, 1),
            vec![300, 600, 900],
            "no losses before the first unit"
        );
    }
}
