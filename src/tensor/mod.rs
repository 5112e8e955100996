//! Numeric building blocks on dfdx tensors, seed-batched: every per-seed
//! quantity has a leading seed axis (`[S, in, out]` weights, `[S, B, d]`
//! activations), and every loss is a per-seed mean summed over seeds, so each
//! seed's gradient is exactly its own.
//!
//! Invariants: with `runtime`, the only place that knows dfdx; no AST; all
//! randomness from `seeds` streams, drawn per seed so that a seed's
//! numbers do not depend on the rest of its batch.

pub mod dist;
pub mod fused;
pub mod gaussian;
pub mod kernels;
pub mod losses;
pub mod mlp;
pub mod optim;
pub mod slbo;
pub mod trpo;

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

pub type T2<T = NoneTape> = Tensor<(usize, usize), f32, Dev, T>;
pub type T3<T = NoneTape> = Tensor<(usize, usize, usize), f32, Dev, T>;
pub type Tape = OwnedTape<f32, Dev>;
