//! `mbrl bench`: throughput of the seed-batched ER DQN update, or with
//! `--agent NAME` the steady-state env steps/s of a whole Figure 4 agent
//! (acting, replay or rollouts, model and Q updates) on ProcMaze grid 4 in
//! the high-data regime, or the seconds per stage of an SLBO agent at the
//! spec's sizes on MBBL Pendulum.

use std::sync::atomic::AtomicBool;
use std::sync::Mutex;
use std::time::Instant;

use clap::Args;

use crate::compile;
use crate::kinds::dqn::DqnPlan;
use crate::runtime::bench::{q_update_flops, DqnBench};
use crate::runtime::driver::{Point, Session, EVAL};
use crate::runtime::peak::Peak;
use crate::runtime::phases::{self, Phase};
use crate::tensor::Precision;

#[derive(Args, Clone)]
pub struct BenchArgs {
    /// Seeds in the batch.
    #[arg(long, default_value_t = 30, value_parser = super::at_least_one)]
    pub seeds: usize,
    /// Worker threads (seed shards); each runs single-threaded GEMM.
    #[arg(long, default_value_t = 2, value_parser = super::at_least_one)]
    pub threads: usize,
    /// Updates to time (after one warm-up update).
    #[arg(long, default_value_t = 20, value_parser = super::at_least_one)]
    pub updates: usize,
    /// Seeds per batched update within a worker (1 is fastest on the CPU).
    #[arg(long, default_value_t = 1, value_parser = super::at_least_one)]
    pub micro_batch: usize,
    /// Time the whole loop of this agent instead: a young2022 agent (`er`,
    /// `perfect_model`, `simple_model`, `categorical_latent`,
    /// `gaussian_latent`) or an SLBO one (`slbo_l2`, `slbo_mle`,
    /// `slbo_ma_l1`, `slbo_vaml`).
    #[arg(long)]
    pub agent: Option<String>,
    /// Env steps to time in the agent loop, after a warm-up of 50 steps.
    #[arg(long, default_value_t = 50)]
    pub steps: u64,
    /// SLBO stages to time (`--agent slbo_*`).
    #[arg(long, default_value_t = 1)]
    pub stages: u64,
    /// Time every agent: Figure 4's five with `--seeds`, then SLBO with each loss.
    #[arg(long, conflicts_with = "agent")]
    pub all: bool,
    /// Train Figure 4's agents through dfdx's tape, the path a CUDA build
    /// always takes, instead of the CPU's fused updates (on a CUDA build
    /// every run is taped; SLBO has one path, and `--all` runs it so).
    #[arg(long)]
    pub taped: bool,
    /// Train the SLBO agent's model with this loss instead of its own (a
    /// loss of the slbo module, e.g. a built-in's expression twin `mle_twin`).
    #[arg(long, value_name = "LOSS")]
    pub model_loss: Option<String>,
    /// Seeds of the SLBO agents under `--all` (a stage at the spec's sizes is
    /// about 45 s of a core per seed).
    #[arg(long, default_value_t = 2, value_parser = super::at_least_one)]
    pub slbo_seeds: usize,
    /// With `--all`: write the measured rates to this table (default the
    /// user's, `~/.config/mbrl/rates.ron`), which `check --cost` and
    /// `mbrl slurm` then estimate times from.
    #[arg(long, value_name = "PATH", num_args = 0..=1, requires = "all")]
    pub save_rates: Option<Option<std::path::PathBuf>>,
    /// The arithmetic of the networks' products: `fp32`, or `bf16` on the
    /// CPU's AMX units (the agent's `precision`). Without it the update
    /// benchmark times both where the CPU has bf16, and `--agent` times fp32.
    #[arg(long, value_parser = ["fp32", "bf16"])]
    pub precision: Option<String>,
}

impl BenchArgs {
    fn precision(&self) -> Precision {
        match self.precision.as_deref() {
            Some("bf16") => Precision::Bf16,
            _ => Precision::Fp32,
        }
    }
}

/// The agents `--all` times: Figure 4's five, then SLBO with each loss
/// (the classes a rates table rates).
const ALL_AGENTS: [&str; 9] = crate::runs::rates::CLASSES;

pub fn run(args: &BenchArgs) -> u8 {
    if let Err(why) = args.precision().available() {
        errln!("error: `--precision bf16` cannot run here: {why}");
        return 2;
    }
    if args.taped && args.precision() == Precision::Bf16 {
        errln!("error: `--precision bf16` runs on the fused CPU updates; the taped path multiplies in fp32");
        return 2;
    }
    if args.all {
        let mut rates = std::collections::BTreeMap::new();
        for agent in ALL_AGENTS {
            let slbo = is_slbo(agent);
            let args = BenchArgs {
                seeds: match slbo {
                    true => args.slbo_seeds,
                    false => args.seeds,
                },
                agent: Some(agent.to_string()),
                all: false,
                taped: args.taped && !slbo,
                ..args.clone()
            };
            let class = match args.precision() {
                Precision::Fp32 => agent.to_string(),
                Precision::Bf16 => format!("{agent}{}", crate::runs::rates::BF16),
            };
            match bench_agent(&args, agent) {
                Ok(rate) => {
                    rates.insert(class, rate);
                }
                Err(err) => {
                    errln!("error: {err}");
                    return 2;
                }
            }
        }
        return match &args.save_rates {
            Some(path) => save_rates(args, rates, path.clone()),
            None => 0,
        };
    }
    if let Some(agent) = &args.agent {
        return match bench_agent(args, agent) {
            Ok(_) => 0,
            Err(err) => {
                errln!("error: {err}");
                2
            }
        };
    }
    // Both precisions where the CPU multiplies in bf16, unless one is named.
    let precisions: Vec<Precision> = match (&args.precision, Precision::Bf16.available()) {
        (Some(_), _) => vec![args.precision()],
        (None, Ok(())) if !args.taped => vec![Precision::Fp32, Precision::Bf16],
        (None, _) => vec![Precision::Fp32],
    };
    for precision in precisions {
        let warmup = DqnBench {
            micro_batch: args.micro_batch,
            taped: args.taped,
            precision,
            ..DqnBench::reference(args.seeds, args.threads, 1)
        };
        if let Err(err) = warmup.run() {
            errln!("error: {err}");
            return 2;
        }
        let bench = DqnBench {
            updates: args.updates,
            ..warmup
        };
        let res = match bench.run() {
            Ok(res) => res,
            Err(err) => {
                errln!("error: {err}");
                return 2;
            }
        };
        outln!(
            "dqn update (Q 64-200-200-200-5 ELU, batch 320, target fwd, Adam{}, {} products): {} seeds, {} threads, {} seed(s) per batch: \
             {:.2} updates/s ({:.1} seed-updates/s), {:.1} GFLOP/s ({:.0} MFLOP per seed-update), {:.2} s",
            taped_note(args.taped),
            precision.name(),
            args.seeds,
            args.threads,
            args.micro_batch,
            res.updates_per_s,
            res.seed_updates_per_s,
            res.gflops,
            bench.flops_per_seed_update() / 1e6,
            res.seconds
        );
        if let Some(peak) = cpu_peak(args.threads) {
            outln!("  {}", of_peak(res.gflops, &peak));
        }
    }
    if !cfg!(feature = "cuda") {
        outln!("  {}", bf16_line());
    }
    0
}

/// The CPU's bf16 matrix unit: the unit's peak on one core and the AMX
/// kernel's `C += A B` at the Q network's hidden layer (320 x 200 x 200).
#[cfg(target_arch = "x86_64")]
fn bf16_line() -> String {
    use crate::tensor::amx::{Amx, Support};
    let amx = match Amx::new() {
        Ok(amx) => amx,
        Err(why) => {
            return format!(
                "bf16 matrix unit: none usable ({why}; {})",
                Support::detect()
            )
        }
    };
    let peak = amx.peak_gflops(0.3);
    let (m, n, k) = (320, 200, 200);
    let a: Vec<f32> = (0..m * k).map(|i| (i % 7) as f32 * 0.1).collect();
    let b: Vec<f32> = (0..k * n).map(|i| (i % 5) as f32 * 0.1).collect();
    let mut c = vec![0f32; m * n];
    amx.gemm(m, n, k, &a, &b, &mut c);
    let start = Instant::now();
    let mut reps = 0u32;
    while start.elapsed().as_secs_f64() < 0.3 {
        amx.gemm(m, n, k, &a, &b, &mut c);
        reps += 1;
    }
    let kernel = reps as f64 * 2.0 * (m * n * k) as f64 / start.elapsed().as_secs_f64() / 1e9;
    // The same with B packed once (a layer's weights, packed per update).
    let pb = amx.pack_b(&b, k, n);
    let start = Instant::now();
    let mut reps = 0u32;
    while start.elapsed().as_secs_f64() < 0.3 {
        amx.gemm_packed(m, &a, &pb, &mut c);
        reps += 1;
    }
    let packed = reps as f64 * 2.0 * (m * n * k) as f64 / start.elapsed().as_secs_f64() / 1e9;
    format!(
        "bf16 matrix unit (AMX): {peak:.0} GFLOP/s on one core (TDPBF16PS on 4 accumulators); \
         mbrl's AMX kernel, C += A B at {m} x {n} x {k} on one core: {kernel:.0} GFLOP/s rounding and packing both, \
         {packed:.0} GFLOP/s with B packed once"
    )
}

#[cfg(not(target_arch = "x86_64"))]
fn bf16_line() -> String {
    "bf16 matrix unit: none (not an x86-64 CPU)".into()
}

/// Writes the rates `--all` measured to `path` (default the user's table).
fn save_rates(
    args: &BenchArgs,
    gflops: std::collections::BTreeMap<String, f64>,
    path: Option<std::path::PathBuf>,
) -> u8 {
    use crate::runs::rates::{self, Rates};
    let Some(path) = path.or_else(rates::user_table) else {
        errln!("error: no home folder to keep the rates table in: name one (`--save-rates PATH`)");
        return 2;
    };
    // The classes not measured now keep the rates the table at `path` has
    // (the other precision's, say); an unreadable table there is replaced.
    let mut gflops = gflops;
    if let Ok(old) = Rates::read(&path) {
        for (class, rate) in old.gflops {
            gflops.entry(class).or_insert(rate);
        }
    }
    let table = Rates {
        format: 1,
        cpu: rates::cpu_name(),
        cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
        measured: humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
        mbrl_version: env!("CARGO_PKG_VERSION").into(),
        command: format!(
            "mbrl bench --all --seeds {} --slbo-seeds {} --threads {} --steps {} --stages {}{}{}",
            args.seeds,
            args.slbo_seeds,
            args.threads,
            args.steps,
            args.stages,
            if args.taped { " --taped" } else { "" },
            match args.precision() {
                Precision::Fp32 => "",
                Precision::Bf16 => " --precision bf16",
            }
        ),
        gflops,
    };
    match table.save(&path) {
        Ok(()) => {
            outln!("rates: {}", path.display());
            0
        }
        Err(err) => {
            errln!("error: {err}");
            2
        }
    }
}

/// How the header names the taped path: a CUDA build takes no other.
fn taped_note(taped: bool) -> &'static str {
    match (taped, cfg!(feature = "cuda")) {
        (_, true) => ", taped on the GPU",
        (true, false) => ", taped through dfdx on the CPU",
        (false, false) => "",
    }
}

/// The CPU's measured peak, when the runtime computes on the CPU (a CUDA
/// build's updates run on the GPU, whose peak this does not know).
/// Measured once per process (`--all` reports it for every agent).
fn cpu_peak(threads: usize) -> Option<Peak> {
    static PEAK: std::sync::OnceLock<Option<Peak>> = std::sync::OnceLock::new();
    PEAK.get_or_init(|| match cfg!(feature = "cuda") {
        true => None,
        false => crate::runtime::peak::measure(threads),
    })
    .clone()
}

/// `gflops` as a fraction of the measured peak, and how the peak was found.
fn of_peak(gflops: f64, peak: &Peak) -> String {
    let nominal = nominal_ghz().map_or(String::new(), |g| format!(", nominal {g:.2} GHz"));
    format!(
        "{:.0}% of the FP32 FMA peak {:.0} GFLOP/s ({} lanes x 2 FMA units x 2 FLOP x {:.2} GHz measured with all cores busy{nominal} x {} core(s)); \
         an FMA-only loop reaches {:.0} GFLOP/s, and this is {:.0}% of that",
        100.0 * gflops / peak.textbook_gflops,
        peak.textbook_gflops,
        peak.lanes,
        peak.ghz,
        peak.cores,
        peak.fma_loop_gflops,
        100.0 * gflops / peak.fma_loop_gflops,
    )
}

/// The clock `/proc/cpuinfo` states, in GHz (turbo clocks run above it).
fn nominal_ghz() -> Option<f64> {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").ok()?;
    let mhz: f64 = cpuinfo
        .lines()
        .find(|l| l.starts_with("cpu MHz"))?
        .split(':')
        .nth(1)?
        .trim()
        .parse()
        .ok()?;
    Some(mhz / 1e3)
}

/// Whether `agent` is one of the `slbo` stdlib module's agents (timed per
/// stage on MBBL Pendulum) rather than one of Figure 4's.
fn is_slbo(agent: &str) -> bool {
    crate::stdlib::module_defining(agent).is_some_and(|m| m != "young2022")
}

/// A young2022 agent: env steps per second for all seeds together, between
/// the end of a 50-step warm-up (replay filling, first updates) and the end
/// of the run. An SLBO agent (`slbo_*`): seconds per stage for all seeds at
/// the spec's sizes on MBBL Pendulum (10k real steps; 20 x (100 model steps,
/// 40 TRPO steps on 20 x 200 virtual steps)), after the evaluation before the
/// first stage.
///
/// Returns its rate: the counted FLOPs of the timed training
/// ([`compile::Plan::cost`]) over the worker threads' seconds of it
/// (evaluation left out), in GFLOP/s of one thread.
fn bench_agent(args: &BenchArgs, agent: &str) -> Result<f64, String> {
    const WARMUP: u64 = 50;
    let slbo = is_slbo(agent);
    if slbo && args.taped {
        return Err(format!(
            "`--taped` applies to Figure 4's agents; `{agent}` has no taped path"
        ));
    }
    if args.model_loss.is_some() && !slbo {
        return Err(format!(
            "`--model-loss` applies to SLBO's agents; `{agent}` is not one"
        ));
    }
    let loss = match &args.model_loss {
        Some(l) => format!("model_loss: {l}, "),
        None => String::new(),
    };
    let precision = args.precision().name();
    let text = match slbo {
        true => format!(
            "use slbo::*\nexperiment bench {{\n  seeds: {}\n  env: mbbl_pendulum\n  agent: {agent} {{ {loss}stages: {} stages, planner: virtual_rollouts {{ envs: 20, length: 200 steps }}, precision: {precision} }}\n}}\n",
            args.seeds, args.stages
        ),
        false => format!(
            "use young2022::*\nexperiment bench {{\n  seeds: {}\n  env: maze\n  agent: {agent} {{ precision: {precision} }}\n  regime: high_data\n  compat: young2022\n}}\n",
            args.seeds
        ),
    };
    let out = crate::check_source(
        crate::source::Origin::Inline("bench".into()),
        text,
        &[],
        &crate::resolve::FsLoader,
    );
    if out.has_errors() {
        err!("{}", super::render(&out));
        return Err(format!(
            "`{agent}` is not an agent of the young2022 or slbo module"
        ));
    }
    let checked = out.checked.as_ref().expect("no errors");
    let exp = &checked.experiments[0];
    let cell = &exp.cells[0];
    let mut plan =
        compile::compile(&crate::graph::cell_graph(exp, cell), 1.0).map_err(|e| e.to_string())?;
    let from = match slbo {
        true => 0,
        false => {
            plan.schedule.eval_every = WARMUP;
            plan.schedule.units = WARMUP + args.steps;
            if let Some(dqn) = plan.agent.get_mut::<DqnPlan>() {
                dqn.learning_starts = WARMUP / 2;
                dqn.taped = args.taped;
            }
            WARMUP
        }
    };
    let secs = time_from(&plan, args.threads, from)?;
    let n_seeds = plan.seeds.len();
    let workers = args.threads.min(n_seeds) as f64;
    let busy = secs * workers;
    let cpu = |phase: Phase| {
        phases::totals()
            .iter()
            .find(|(p, _)| *p == phase)
            .map_or(0.0, |(_, s)| *s)
    };
    // The workers evaluate side by side, so evaluation's wall time is its
    // CPU time over the workers.
    let training = secs - cpu(Phase::Evaluation) / workers;
    match slbo {
        true => {
            let with = match &args.model_loss {
                Some(l) => format!(" with model loss `{l}`"),
                None => String::new(),
            };
            outln!(
                "{agent}{with} on MBBL Pendulum (spec sizes, {precision} products): {n_seeds} seeds, {} threads: {:.1} s per stage for all seeds ({} stage(s) timed in {secs:.1} s)",
                args.threads,
                secs / args.stages as f64,
                args.stages
            );
            outln!(
                "  model training: {:.2} s of CPU per stage for all seeds",
                cpu(Phase::ModelUpdate) / args.stages as f64
            );
        }
        false => {
            outln!(
                "{agent} on ProcMaze g4 (high data{}, {precision} products): {n_seeds} seeds, {} threads: {:.2} env steps/s ({:.3} s per env step for all seeds; {} steps timed in {secs:.1} s)",
                taped_note(args.taped),
                args.threads,
                args.steps as f64 / secs,
                secs / args.steps as f64,
                args.steps
            );
            outln!(
                "  training loop only (evaluation excluded, as the reference is timed; here it runs every {WARMUP} steps, 10x as often as in Figure 4): {:.3} s per env step",
                training / args.steps as f64
            );
        }
    }
    outln!("  {}", breakdown(busy));
    // The timed units' counted FLOPs: the whole run's less the warm-up's.
    let mut before = plan.clone();
    before.schedule.units = match slbo {
        true => 0,
        false => from,
    };
    let flops = n_seeds as f64 * (plan.cost().flops - before.cost().flops);
    let rate = flops / (training.max(1e-9) * workers) / 1e9;
    outln!(
        "  rate: {rate:.1} GFLOP/s of one worker thread (counted FLOPs of the training loop over its thread-seconds; what `check --cost` estimates from)"
    );
    if let Some(dqn) = plan.agent.get::<DqnPlan>() {
        let rows = dqn.rollouts.map_or(dqn.batch, |r| r.starts * r.length);
        let updates = (n_seeds as u64 * args.steps * dqn.updates_per_step) as f64;
        let flops = q_update_flops(&dqn.q_dims, rows, dqn.rollouts.is_some()) * updates;
        let update_cpu = cpu(Phase::QUpdate);
        if update_cpu > 0.0 {
            let gflops = flops / (update_cpu / workers) / 1e9;
            let peak = cpu_peak(args.threads);
            outln!(
                "  Q update: {gflops:.0} GFLOP/s while it runs{}",
                peak.map_or(String::new(), |p| format!(", {}", of_peak(gflops, &p)))
            );
        }
    }
    Ok(rate)
}

/// The timed interval's CPU time by phase (summed over the worker threads),
/// with what no phase covers as `other`.
fn breakdown(busy: f64) -> String {
    let totals = phases::totals();
    let covered: f64 = totals.iter().map(|(_, s)| s).sum();
    let mut parts: Vec<String> = totals
        .iter()
        .filter(|(_, s)| *s > 0.0)
        .map(|(p, s)| format!("{} {:.0}%", p.name(), 100.0 * s / busy.max(covered)))
        .collect();
    parts.push(format!(
        "other {:.0}%",
        100.0 * (busy - covered).max(0.0) / busy.max(covered)
    ));
    format!("time by phase (CPU, all threads): {}", parts.join(", "))
}

/// Seconds from the moment every seed has reported its evaluation at env
/// step `from` to the end of the run.
fn time_from(plan: &compile::Plan, threads: usize, from: u64) -> Result<f64, String> {
    let stop = AtomicBool::new(false);
    let session = Session {
        checkpoints: None,
        stop: &stop,
        stop_at: None,
    };
    let reported = Mutex::new((0usize, None::<Instant>));
    let n_seeds = plan.seeds.len();
    let progress = |points: &[Point], _restored: bool| {
        let mut r = reported.lock().expect("bench lock");
        r.0 += points
            .iter()
            .filter(|p| p.step == from && p.metric == EVAL)
            .count();
        if r.0 == n_seeds && r.1.is_none() {
            r.1 = Some(Instant::now());
            phases::enable();
        }
    };
    crate::runtime::run(plan, threads, session, &progress).map_err(|e| e.to_string())?;
    let start = reported
        .lock()
        .expect("bench lock")
        .1
        .ok_or("the warm-up never finished")?;
    Ok(start.elapsed().as_secs_f64())
}
