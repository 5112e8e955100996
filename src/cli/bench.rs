//! `mbrl bench dqn`: throughput of the seed-batched ER DQN update.

use clap::Args;

use crate::runtime::bench::DqnBench;

#[derive(Args)]
pub struct BenchArgs {
    /// Seeds in the batch.
    #[arg(long, default_value_t = 30)]
    pub seeds: usize,
    /// Worker threads (seed shards); each runs single-threaded GEMM.
    #[arg(long, default_value_t = 2)]
    pub threads: usize,
    /// Updates to time (after one warm-up update).
    #[arg(long, default_value_t = 20)]
    pub updates: usize,
    /// Seeds per batched update within a worker (1 is fastest on the CPU).
    #[arg(long, default_value_t = 1)]
    pub micro_batch: usize,
}

pub fn run(args: &BenchArgs) -> u8 {
    let warmup = DqnBench {
        micro_batch: args.micro_batch,
        ..DqnBench::reference(args.seeds, args.threads, 1)
    };
    if let Err(err) = warmup.run() {
        eprintln!("error: {err}");
        return 2;
    }
    let bench = DqnBench {
        micro_batch: args.micro_batch,
        ..DqnBench::reference(args.seeds, args.threads, args.updates)
    };
    let res = match bench.run() {
        Ok(res) => res,
        Err(err) => {
            eprintln!("error: {err}");
            return 2;
        }
    };
    println!(
        "dqn update (Q 64-200-200-200-5 ELU, batch 320, target fwd, Adam): {} seeds, {} threads, {} seed(s) per batch: \
         {:.2} updates/s ({:.1} seed-updates/s), {:.1} GFLOP/s ({:.0} MFLOP per seed-update), {:.2} s",
        args.seeds,
        args.threads,
        args.micro_batch,
        res.updates_per_s,
        res.seed_updates_per_s,
        res.gflops,
        bench.flops_per_seed_update() / 1e6,
        res.seconds
    );
    0
}
