//! The machine's FP32 FMA peak as `mbrl bench` reports it, measured rather
//! than read from `/proc/cpuinfo`: cloud CPUs run well above their nominal
//! clock (the 2-core development VM: 2.1 GHz nominal, 2.95 GHz with both
//! cores busy), so a peak computed from the nominal clock flatters every
//! fraction of it.
//!
//! Two measurements, each on `threads` threads at once (all-core clocks):
//! the clock, from a chain of dependent integer multiplies (3 cycles each
//! on every x86-64 core since 2008), and the FMA throughput of a loop that
//! keeps twelve independent vector FMAs in registers. The second is what
//! GEMM microkernels can reach at best; the first, times the vector width
//! and two FMA units, is the textbook peak.
//!
//! Invariants: measures only; touches no state of the runtime.

use std::time::Instant;

/// What the machine can do, measured.
#[derive(Clone, Debug)]
pub struct Peak {
    /// f32 lanes of the widest vector unit (16 with AVX-512, 8 with AVX2).
    pub lanes: usize,
    pub cores: usize,
    /// Mean clock over the cores while all of them run, in GHz.
    pub ghz: f64,
    /// `lanes x 2 FMA units x 2 FLOP x ghz x cores`.
    pub textbook_gflops: f64,
    /// What an FMA-only loop reaches on all cores at once.
    pub fma_loop_gflops: f64,
}

/// Measures the clock and the FMA throughput of `threads` cores (about 0.5 s
/// in all); `None` without AVX2 + FMA.
pub fn measure(threads: usize) -> Option<Peak> {
    let lanes = lanes()?;
    let cores = threads
        .min(std::thread::available_parallelism().map_or(1, |n| n.get()))
        .max(1);
    let ghz = on_all(cores, clock_ghz).iter().sum::<f64>() / cores as f64;
    let fma_loop_gflops = on_all(cores, move || fma_gflops(lanes)).iter().sum();
    Some(Peak {
        lanes,
        cores,
        ghz,
        textbook_gflops: lanes as f64 * 2.0 * 2.0 * ghz * cores as f64,
        fma_loop_gflops,
    })
}

/// `f` on `n` threads at once, after they all started; their results.
fn on_all(n: usize, f: impl Fn() -> f64 + Sync) -> Vec<f64> {
    let start = std::sync::Barrier::new(n);
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..n)
            .map(|_| {
                scope.spawn(|| {
                    start.wait();
                    f()
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("a measuring thread"))
            .collect()
    })
}

fn lanes() -> Option<usize> {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            return Some(16);
        }
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
        {
            return Some(8);
        }
    }
    None
}

/// The clock of this core in GHz: the best of three timings of 30 M
/// dependent 3-cycle multiplies (about 30 ms each).
fn clock_ghz() -> f64 {
    const MULS: u64 = 30_000_000;
    let mut best = f64::MAX;
    for _ in 0..3 {
        let start = Instant::now();
        imul_chain(MULS / 8);
        best = best.min(start.elapsed().as_secs_f64());
    }
    3.0 * MULS as f64 / best / 1e9
}

/// `8 * rounds` dependent multiplies. Integer adds would not do: recent
/// Intel cores execute some immediate adds at rename, in no cycle at all.
#[cfg(target_arch = "x86_64")]
fn imul_chain(rounds: u64) {
    let mut x: u64 = std::hint::black_box(3);
    for _ in 0..rounds {
        // SAFETY: register arithmetic only.
        unsafe {
            std::arch::asm!(
                "imul {0}, {0}", "imul {0}, {0}", "imul {0}, {0}", "imul {0}, {0}",
                "imul {0}, {0}", "imul {0}, {0}", "imul {0}, {0}", "imul {0}, {0}",
                inout(reg) x,
                options(nomem, nostack)
            );
        }
    }
    std::hint::black_box(x);
}

#[cfg(not(target_arch = "x86_64"))]
fn imul_chain(_rounds: u64) {}

/// GFLOP/s of twelve independent FMA chains in `lanes`-wide registers
/// (enough to cover two units' 4-cycle latency), the best of three runs.
fn fma_gflops(lanes: usize) -> f64 {
    const ROUNDS: u64 = 20_000_000;
    let mut best = f64::MAX;
    for _ in 0..3 {
        let start = Instant::now();
        let sink = fma_loop(lanes, ROUNDS);
        best = best.min(start.elapsed().as_secs_f64());
        std::hint::black_box(sink);
    }
    (ROUNDS * 12 * lanes as u64 * 2) as f64 / best / 1e9
}

#[cfg(target_arch = "x86_64")]
fn fma_loop(lanes: usize, rounds: u64) -> f32 {
    // SAFETY: `lanes` came from feature detection (16: AVX-512F; 8: AVX2 + FMA).
    unsafe {
        match lanes {
            16 => fma_loop_avx512(rounds),
            _ => fma_loop_avx2(rounds),
        }
    }
}

#[cfg(not(target_arch = "x86_64"))]
fn fma_loop(_lanes: usize, _rounds: u64) -> f32 {
    0.0
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn fma_loop_avx512(rounds: u64) -> f32 {
    use std::arch::x86_64::*;
    let (a, b) = (_mm512_set1_ps(0.999_9), _mm512_set1_ps(1e-6));
    let mut acc = [_mm512_set1_ps(std::hint::black_box(1.0)); 12];
    for _ in 0..rounds {
        for x in acc.iter_mut() {
            *x = _mm512_fmadd_ps(*x, a, b);
        }
    }
    acc.iter().map(|x| _mm512_reduce_add_ps(*x)).sum()
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn fma_loop_avx2(rounds: u64) -> f32 {
    use std::arch::x86_64::*;
    let (a, b) = (_mm256_set1_ps(0.999_9), _mm256_set1_ps(1e-6));
    let mut acc = [_mm256_set1_ps(std::hint::black_box(1.0)); 12];
    for _ in 0..rounds {
        for x in acc.iter_mut() {
            *x = _mm256_fmadd_ps(*x, a, b);
        }
    }
    let mut out = [0f32; 8];
    let sum = acc
        .iter()
        .fold(_mm256_setzero_ps(), |s, x| _mm256_add_ps(s, *x));
    _mm256_storeu_ps(out.as_mut_ptr(), sum);
    out.iter().sum()
}

#[cfg(test)]
mod tests {
    /// The two measurements agree: an FMA-only loop cannot beat the
    /// textbook peak at the measured clock (it would if the clock were
    /// underestimated, as the nominal one is), and reaches a good part of it.
    #[test]
    fn the_fma_loop_stays_within_the_textbook_peak() {
        let Some(peak) = super::measure(1) else {
            return; // no AVX2 + FMA: nothing to measure
        };
        assert!(
            (0.3..8.0).contains(&peak.ghz),
            "a clock of {} GHz",
            peak.ghz
        );
        assert!(
            peak.fma_loop_gflops <= 1.1 * peak.textbook_gflops,
            "{peak:?}"
        );
        assert!(
            peak.fma_loop_gflops >= 0.25 * peak.textbook_gflops,
            "{peak:?}"
        );
    }
}
