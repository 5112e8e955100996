//! Numeric building blocks on dfdx tensors, seed-batched: every per-seed
//! quantity has a leading seed axis (`[S, in, out]` weights, `[S, B, d]`
//! activations), and every loss is a per-seed mean summed over seeds, so each
//! seed's gradient is exactly its own.
//!
//! Invariants: with `runtime`, the only place that knows dfdx; no AST; all
//! randomness from `seeds` streams, drawn per seed so that a seed's
//! numbers do not depend on the rest of its batch.

#[cfg(target_arch = "x86_64")]
pub mod amx;
pub mod dist;
pub mod fused;
pub mod gaussian;
pub mod kernels;
pub mod losses;
pub mod mlp;
pub mod optim;
#[cfg(feature = "test-oracles")]
pub mod oracles;
pub mod slbo;

use dfdx::prelude::*;

/// The device every tensor lives on: the CPU, or the GPU when built with the
/// `cuda` feature. The choice is made once, here, so that generics do not
/// leak through every module.
#[cfg(not(feature = "cuda"))]
pub type Dev = Cpu;
#[cfg(feature = "cuda")]
pub type Dev = Cuda;

/// The device could not be opened (a CUDA build on a machine without a GPU).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct DeviceError(pub String);

/// Opens the device: always succeeds on the CPU; on a CUDA build, fails with
/// a clear message when no GPU or driver is present.
pub fn device() -> Result<Dev, DeviceError> {
    #[cfg(not(feature = "cuda"))]
    return Ok(Cpu::default());
    #[cfg(feature = "cuda")]
    return Cuda::try_build(0, 0).map_err(|e| {
        DeviceError(format!("mbrl was built with CUDA but no GPU could be opened ({e:?}); rebuild without `--features cuda` to run on the CPU"))
    });
}

/// What a learner must be for the driver to share its groups among workers:
/// on the CPU `Send`, as a group moves to whichever worker is free. A CUDA
/// learner holds the stream of the worker that built it (dfdx's `Cuda` is
/// not `Send`) and stays on that worker.
#[cfg(not(feature = "cuda"))]
pub trait Movable: Send {}
#[cfg(not(feature = "cuda"))]
impl<T: Send> Movable for T {}
#[cfg(feature = "cuda")]
pub trait Movable {}
#[cfg(feature = "cuda")]
impl<T> Movable for T {}

/// Seeds trained together as one batch on a worker holding `shard` seeds:
/// on the CPU one seed each (a `[1, B, d]` update keeps its activations in
/// cache, measured 25% faster than `[15, B, d]`); on the GPU the whole shard.
pub fn seeds_per_group(shard: usize) -> usize {
    match cfg!(feature = "cuda") {
        true => shard.max(1),
        false => 1,
    }
}

/// A value the workers of a run use, held as the device allows: on the CPU
/// one value that all of them share (`make(workers)`), so that a group can
/// move to whichever worker is free; on CUDA one per worker, built on it
/// (`make(1)`), as its learners stay on the thread whose stream built them.
/// The driver's pool of waiting groups is one; this is the only place that
/// chooses between the two.
pub struct PerWorker<P, F: Fn(usize) -> P> {
    #[cfg(not(feature = "cuda"))]
    shared: P,
    #[cfg(feature = "cuda")]
    make: F,
    #[cfg(not(feature = "cuda"))]
    _make: std::marker::PhantomData<F>,
}

impl<P, F: Fn(usize) -> P> PerWorker<P, F> {
    pub fn new(workers: usize, make: F) -> Self {
        #[cfg(not(feature = "cuda"))]
        return PerWorker {
            shared: make(workers),
            _make: std::marker::PhantomData,
        };
        #[cfg(feature = "cuda")]
        {
            let _ = workers;
            PerWorker { make }
        }
    }

    /// The value for the calling worker; `local` holds it where it is the
    /// worker's own.
    pub fn get<'a>(&'a self, local: &'a mut Option<P>) -> &'a P {
        #[cfg(not(feature = "cuda"))]
        {
            let _ = local;
            &self.shared
        }
        #[cfg(feature = "cuda")]
        local.get_or_insert_with(|| (self.make)(1))
    }
}

/// The arithmetic of a network's matrix products (`precision:` on an
/// agent). `Fp32` multiplies in FP32; `Bf16` rounds both operands of every
/// product to bf16 and multiplies on the CPU's matrix units (AMX) with FP32
/// accumulation. Parameters, gradients, Adam's moments and every other
/// operation stay FP32 either way (mixed precision with FP32 master weights).
#[derive(
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    serde::Serialize,
    serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    #[default]
    Fp32,
    Bf16,
}

impl Precision {
    /// The settings' names, as the language writes them.
    pub const CHOICES: &'static [(&'static str, Precision)] =
        &[("fp32", Precision::Fp32), ("bf16", Precision::Bf16)];

    pub fn name(self) -> &'static str {
        match self {
            Precision::Fp32 => "fp32",
            Precision::Bf16 => "bf16",
        }
    }

    /// For `skip_serializing_if`: an FP32 plan serializes as it did before
    /// precision existed, so its run's identity is unchanged.
    pub fn is_fp32(&self) -> bool {
        *self == Precision::Fp32
    }

    /// Whether this build on this machine can multiply at this precision;
    /// the error says what is missing.
    pub fn available(self) -> Result<(), String> {
        match self {
            Precision::Fp32 => Ok(()),
            Precision::Bf16 => bf16_unit().map(|_| ()),
        }
    }
}

/// The matrix unit bf16 products run on, checked and granted once per
/// process: the CPU's AMX tiles (CPUID), saved by the kernel (XCR0) and
/// granted by Linux (`arch_prctl`). A CUDA build and other architectures
/// have none.
///
/// With `MBRL_HIDE_AMX=1` in the environment the process acts as on a CPU
/// without the unit: to see what a file does on such a machine.
#[cfg(all(target_arch = "x86_64", not(feature = "cuda")))]
pub fn bf16_unit() -> Result<amx::Amx, String> {
    static UNIT: std::sync::OnceLock<Result<amx::Amx, String>> = std::sync::OnceLock::new();
    UNIT.get_or_init(
        || match std::env::var_os("MBRL_HIDE_AMX").is_some_and(|v| v == "1") {
            true => Err("MBRL_HIDE_AMX=1 hides this CPU's AMX units".into()),
            false => amx::Amx::new(),
        },
    )
    .clone()
}

#[cfg(not(all(target_arch = "x86_64", not(feature = "cuda"))))]
pub fn bf16_unit() -> Result<(), String> {
    Err(match cfg!(feature = "cuda") {
        true => {
            "bf16 runs on the CPU's matrix units (AMX); this build runs its networks on the GPU"
                .into()
        }
        false => "bf16 runs on Intel AMX tiles, which only x86-64 CPUs have".into(),
    })
}

pub type T2<T = NoneTape> = Tensor<(usize, usize), f32, Dev, T>;
pub type T3<T = NoneTape> = Tensor<(usize, usize, usize), f32, Dev, T>;
pub type Tape = OwnedTape<f32, Dev>;
