//! CPU execution: the seed axis split across worker threads, each running its
//! shard with single-threaded GEMM (measured to win on CPU: notes/stack.md §3).

use std::ops::Range;

/// Contiguous, near-equal shards of `n` seeds over `threads` workers.
pub fn shards(n: usize, threads: usize) -> Vec<Range<usize>> {
    let threads = threads.clamp(1, n.max(1));
    let base = n / threads;
    let extra = n % threads;
    let mut out = Vec::with_capacity(threads);
    let mut start = 0;
    for t in 0..threads {
        let len = base + usize::from(t < extra);
        out.push(start..start + len);
        start += len;
    }
    out
}

/// Runs `work` on each shard of `seeds` in its own thread, inside a one-thread
/// rayon pool so that dfdx's GEMM stays single-threaded; results in shard order.
pub fn run<R: Send>(seeds: &[u64], threads: usize, work: impl Fn(&[u64]) -> R + Sync) -> Vec<R> {
    let ranges = shards(seeds.len(), threads);
    std::thread::scope(|scope| {
        let handles: Vec<_> = ranges
            .iter()
            .map(|range| {
                let shard = &seeds[range.clone()];
                let work = &work;
                scope.spawn(move || {
                    flush_denormals();
                    let pool = rayon::ThreadPoolBuilder::new()
                        .num_threads(1)
                        .build()
                        .expect("a one-thread pool");
                    pool.install(|| work(shard))
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("a worker thread panicked"))
            .collect()
    })
}

/// Sets this thread's SSE control to flush denormal results to zero and to
/// read denormal inputs as zero (as XLA and TensorFlow run): a network whose
/// weights or activations decay into the denormal range otherwise runs its
/// GEMMs through the CPU's slow microcode path (measured: SLBO's stages
/// slowed 10x once its tiny-init model weights decayed).
pub fn flush_denormals() {
    #[cfg(target_arch = "x86_64")]
    #[allow(deprecated)]
    // SAFETY: only this thread's floating-point control bits change (FTZ, DAZ).
    unsafe {
        use std::arch::x86_64::{_mm_getcsr, _mm_setcsr};
        _mm_setcsr(_mm_getcsr() | 0x8040);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_cover_every_seed_once() {
        assert_eq!(shards(30, 2), vec![0..15, 15..30]);
        assert_eq!(shards(7, 3), vec![0..3, 3..5, 5..7]);
        assert_eq!(shards(1, 4), vec![0..1]);
    }
}
