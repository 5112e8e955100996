//! CPU kernels on plain `f32` slices, shared by the taped networks
//! ([`crate::tensor::mlp`]) and the fused updates ([`crate::tensor::fused`]):
//! the hidden activations, their slopes, and a vectorizing `exp`.
//!
//! Invariants: no dfdx, no allocation; each kernel touches only the slices
//! it is given.

/// A hidden layer's nonlinearity.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Activation {
    Elu,
    Relu,
    Tanh,
}

impl Activation {
    pub fn from_name(name: &str) -> Activation {
        match name {
            "relu" => Activation::Relu,
            "tanh" => Activation::Tanh,
            _ => Activation::Elu,
        }
    }
}

/// The hidden nonlinearity, in place.
pub fn activate(z: &mut [f32], activation: Activation) {
    match activation {
        Activation::Elu => elu(z),
        Activation::Relu => z.iter_mut().for_each(|x| *x = x.max(0.0)),
        Activation::Tanh => z.iter_mut().for_each(|x| *x = x.tanh()),
    }
}

/// ELU in place, in 8-wide AVX2 lanes where the CPU has them (checked at
/// run time; the portable build vectorizes 4-wide).
pub fn elu(z: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
        // SAFETY: the features were just detected.
        return unsafe { elu_avx2(z) };
    }
    elu_portable(z)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn elu_avx2(z: &mut [f32]) {
    elu_portable(z)
}

#[inline(always)]
fn elu_portable(z: &mut [f32]) {
    for x in z.iter_mut() {
        // `max(x, 0) + min(e^min(x, 0) - 1, 0)`: exactly ELU (the second
        // term is 0 for x > 0), and a plain store for every lane where a
        // select compiles to a masked store, which is slow on some CPUs.
        let negative = exp_nonpositive(x.min(0.0)) - 1.0;
        *x = x.max(0.0) + negative.min(0.0);
    }
}

/// Multiplies `d` by the activation's slope, read from its output `y`.
pub fn activation_backward(d: &mut [f32], y: &[f32], activation: Activation) {
    match activation {
        Activation::Elu => {
            for (g, y) in d.iter_mut().zip(y) {
                *g *= if *y > 0.0 { 1.0 } else { y + 1.0 };
            }
        }
        Activation::Relu => {
            for (g, y) in d.iter_mut().zip(y) {
                *g *= if *y > 0.0 { 1.0 } else { 0.0 };
            }
        }
        Activation::Tanh => {
            for (g, y) in d.iter_mut().zip(y) {
                *g *= 1.0 - y * y;
            }
        }
    }
}

/// `exp(x)` for `x <= 0` in straight-line f32 arithmetic that the compiler
/// vectorizes: Cody-Waite reduction `x = n ln2 + r`, `|r| <= ln2/2`, a
/// degree-6 Taylor polynomial (relative error below 2e-7), and `2^n` built
/// from the exponent bits. Inputs below -87 return 0 (e^-87 is below f32's
/// normal range).
#[inline(always)]
pub fn exp_nonpositive(x: f32) -> f32 {
    const LN2_HI: f32 = 0.693_145_75;
    const LN2_LO: f32 = 1.428_606_8e-6;
    let x = x.max(-87.0);
    // Round to nearest by adding and subtracting 1.5 * 2^23 (no libm call).
    const ROUND: f32 = 12_582_912.0;
    let shifted = x * std::f32::consts::LOG2_E + ROUND;
    let n = shifted - ROUND;
    let r = (x - n * LN2_HI) - n * LN2_LO;
    let p = 1.0
        + r * (1.0
            + r * (0.5
                + r * (1.0 / 6.0 + r * (1.0 / 24.0 + r * (1.0 / 120.0 + r * (1.0 / 720.0))))));
    // `2^n` from the rounded value's bits: they hold `0x4B40_0000 + n`, and
    // integer arithmetic on them vectorizes where `n as i32` (a saturating
    // conversion) does not. `n` is in [-126, 0], so the exponent is valid.
    let scale = f32::from_bits(
        shifted
            .to_bits()
            .wrapping_sub(0x4B40_0000)
            .wrapping_add(127)
            << 23,
    );
    p * scale
}

/// The first index of the largest value (`jnp.argmax`'s tie rule).
pub fn argmax(row: &[f32]) -> usize {
    row.iter()
        .enumerate()
        .fold(0, |best, (i, v)| if *v > row[best] { i } else { best })
}
