//! CPU kernels on plain `f32` slices, shared by the taped networks
//! ([`crate::tensor::mlp`]) and the fused updates ([`crate::tensor::fused`]):
//! the hidden activations, their slopes, Adam's elementwise step, the
//! sparse first layer and its weight gradient, and vectorizing `exp` and
//! `tanh`.
//!
//! Every elementwise kernel is written once, as plain scalar Rust, and
//! `widest!` compiles it three times (AVX-512, AVX2 + FMA, the portable
//! baseline), choosing at run time the widest the CPU has. The arithmetic is
//! lane-independent, and fused multiply-adds are written out (`mul_add`, one
//! rounding on every instruction set) and never left to contraction, so every variant gives
//! bit-identical results: the choice changes speed, never numbers.
//!
//! Invariants: no dfdx, no allocation (but for the sparse kernels' reused
//! column list growing); each kernel touches only the slices it is given.

/// Defines `fn NAME(args)` from a scalar body, compiled for AVX-512
/// (`avx512f`, 16 lanes), for AVX2 + FMA (8 lanes) and for the build's
/// baseline, and dispatching at run time to the widest the CPU supports
/// (`is_x86_feature_detected!` caches its answer; the check is one load).
macro_rules! widest {
    ($(#[$meta:meta])* $vis:vis fn $name:ident($($arg:ident: $ty:ty),* $(,)?) $body:block) => {
        $(#[$meta])*
        $vis fn $name($($arg: $ty),*) {
            #[inline(always)]
            fn portable($($arg: $ty),*) $body
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx512f,avx512vl,avx512dq,avx512bw,avx2,fma")]
                unsafe fn avx512($($arg: $ty),*) {
                    portable($($arg),*)
                }
                #[target_feature(enable = "avx2,fma")]
                unsafe fn avx2($($arg: $ty),*) {
                    portable($($arg),*)
                }
                if std::arch::is_x86_feature_detected!("avx512f")
                    && std::arch::is_x86_feature_detected!("avx512vl")
                    && std::arch::is_x86_feature_detected!("avx512dq")
                    && std::arch::is_x86_feature_detected!("avx512bw")
                {
                    // SAFETY: the features were just detected.
                    return unsafe { avx512($($arg),*) };
                }
                if std::arch::is_x86_feature_detected!("avx2")
                    && std::arch::is_x86_feature_detected!("fma")
                {
                    // SAFETY: the features were just detected.
                    return unsafe { avx2($($arg),*) };
                }
            }
            portable($($arg),*)
        }
    };
}

/// A hidden layer's nonlinearity.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Activation {
    Elu,
    Relu,
    Tanh,
}

impl Activation {
    /// Each activation by its name in the language.
    pub const NAMED: &'static [(&'static str, Activation)] = &[
        ("elu", Activation::Elu),
        ("relu", Activation::Relu),
        ("tanh", Activation::Tanh),
    ];
}

/// The hidden nonlinearity, in place.
pub fn activate(z: &mut [f32], activation: Activation) {
    match activation {
        Activation::Elu => elu(z),
        Activation::Relu => z.iter_mut().for_each(|x| *x = x.max(0.0)),
        Activation::Tanh => tanh(z),
    }
}

widest! {
    /// tanh in place: [`tanh_rational`] in the widest vector lanes the CPU
    /// has, instead of libm's scalar `tanhf`, which took half of an SLBO stage.
    pub fn tanh(z: &mut [f32]) {
        z.iter_mut().for_each(|x| *x = tanh_rational(*x));
    }
}

/// tanh as a 13/6 rational function on `x` clamped to +-7.905 (where f32
/// tanh is 1 within half an ulp), `x` itself below 4e-4: the form XLA and
/// Eigen use for f32, within a few ulp of the exact value, in straight-line
/// arithmetic that vectorizes.
#[inline(always)]
pub fn tanh_rational(x: f32) -> f32 {
    const CLAMP: f32 = 7.905_311;
    const A1: f32 = 4.893_524_6e-3;
    const A3: f32 = 6.372_619_3e-4;
    const A5: f32 = 1.485_722_4e-5;
    const A7: f32 = 5.122_297e-8;
    const A9: f32 = -8.604_672e-11;
    const A11: f32 = 2.000_188e-13;
    const A13: f32 = -2.760_768_5e-16;
    const B0: f32 = 4.893_525e-3;
    const B2: f32 = 2.268_434_6e-3;
    const B4: f32 = 1.185_347_1e-4;
    const B6: f32 = 1.198_258_4e-6;
    let c = x.clamp(-CLAMP, CLAMP);
    let x2 = c * c;
    let p = c * (A1 + x2 * (A3 + x2 * (A5 + x2 * (A7 + x2 * (A9 + x2 * (A11 + x2 * A13))))));
    let q = B0 + x2 * (B2 + x2 * (B4 + x2 * B6));
    match x.abs() < 4e-4 {
        true => x,
        false => p / q,
    }
}

widest! {
    /// ELU in place, in the widest vector lanes the CPU has.
    pub fn elu(z: &mut [f32]) {
        z.iter_mut().for_each(|x| *x = elu_scalar(*x));
    }
}

/// ELU of one value as `max(x, 0) + min(e^min(x, 0) - 1, 0)`: exactly ELU
/// (the second term is 0 for x > 0), and a plain store for every lane where
/// a select compiles to a masked store, which is slow on some CPUs.
#[inline(always)]
fn elu_scalar(x: f32) -> f32 {
    let negative = exp_nonpositive(x.min(0.0)) - 1.0;
    x.max(0.0) + negative.min(0.0)
}

/// `z[j][r] = activation(z[j][r] + bias[j])` for a feature-major `z`
/// (`bias.len()` rows, one per feature), in one pass: the epilogue of a
/// hidden layer whose GEMM wrote the bare product. `product + bias` is the
/// same rounding as a GEMM accumulating onto a broadcast bias.
pub fn bias_activate_features(z: &mut [f32], bias: &[f32], activation: Activation) {
    match activation {
        Activation::Elu => bias_elu_features(z, bias),
        Activation::Relu => bias_relu_features(z, bias),
        Activation::Tanh => bias_tanh_features(z, bias),
    }
}

/// `z[j][r] = f(z[j][r] + bias[j])` for feature-major `z`.
#[inline(always)]
fn with_bias_by_feature(z: &mut [f32], bias: &[f32], f: impl Fn(f32) -> f32) {
    for (row, b) in z.chunks_exact_mut(z.len() / bias.len()).zip(bias) {
        row.iter_mut().for_each(|x| *x = f(*x + b));
    }
}

widest! {
    fn bias_elu_features(z: &mut [f32], bias: &[f32]) {
        with_bias_by_feature(z, bias, elu_scalar)
    }
}

widest! {
    fn bias_relu_features(z: &mut [f32], bias: &[f32]) {
        with_bias_by_feature(z, bias, |x| x.max(0.0))
    }
}

widest! {
    fn bias_tanh_features(z: &mut [f32], bias: &[f32]) {
        with_bias_by_feature(z, bias, tanh_rational)
    }
}

widest! {
    /// Adds `bias` to every row of a row-major `z` (rows of `bias.len()`):
    /// the epilogue of an output layer whose GEMM wrote the bare product.
    pub fn bias_add(z: &mut [f32], bias: &[f32]) {
        for row in z.chunks_exact_mut(bias.len()) {
            row.iter_mut().zip(bias).for_each(|(x, b)| *x += b);
        }
    }
}

widest! {
    /// The sums of the columns of `rows` (rows of `sums.len()`), row after
    /// row, into `sums` (overwritten): a layer's bias gradient.
    pub fn column_sums(rows: &[f32], sums: &mut [f32]) {
        sums.fill(0.0);
        for row in rows.chunks_exact(sums.len()) {
            sums.iter_mut().zip(row).for_each(|(s, x)| *s += x);
        }
    }
}

widest! {
    /// The sum of each row of `rows` (`sums.len()` rows), into `sums`: a
    /// feature-major layer's bias gradient. Each row is summed in 16
    /// interleaved partial sums, added in a fixed order at the end, so that
    /// it vectorizes while every instruction set gives the same bits.
    pub fn row_sums(rows: &[f32], sums: &mut [f32]) {
        const LANES: usize = 16;
        let n = rows.len() / sums.len().max(1);
        for (row, sum) in rows.chunks_exact(n).zip(sums.iter_mut()) {
            let mut lanes = [0f32; LANES];
            let mut chunks = row.chunks_exact(LANES);
            for chunk in &mut chunks {
                lanes.iter_mut().zip(chunk).for_each(|(l, x)| *l += x);
            }
            lanes.iter_mut().zip(chunks.remainder()).for_each(|(l, x)| *l += x);
            *sum = lanes.iter().sum();
        }
    }
}

widest! {
    /// A first layer on sparse input, row-major: each `[o]` row of `out` is
    /// `bias` plus `x[r, c] * w[c]` for the nonzero columns `c` of input row
    /// `r` (`[rows, i]` in `x`, `[i, o]` weights), in column order.
    /// `nonzero` is the caller's scratch, kept between calls (it allocates
    /// only when a row is longer than any before).
    pub fn sparse_rows(
        x: &[f32],
        weights: &[f32],
        bias: &[f32],
        out: &mut [f32],
        nonzero: &mut Vec<usize>,
    ) {
        let (i, o) = (weights.len() / bias.len().max(1), bias.len());
        for (x_row, out_row) in x.chunks_exact(i).zip(out.chunks_exact_mut(o)) {
            out_row.copy_from_slice(bias);
            nonzero_columns(x_row, nonzero);
            for &c in nonzero.iter() {
                let (v, w_row) = (x_row[c], &weights[c * o..(c + 1) * o]);
                out_row.iter_mut().zip(w_row).for_each(|(y, w)| *y += v * w);
            }
        }
    }
}

widest! {
    /// The weight gradient of [`sparse_rows`]: `dw[c] = sum_r x[r, c] d[r]`
    /// over the rows where `x[r, c]` is nonzero (`dw` overwritten, `[i, o]`;
    /// `d` row-major `[rows, o]`), row after row.
    pub fn sparse_weight_gradient(
        x: &[f32],
        d: &[f32],
        o: usize,
        dw: &mut [f32],
        nonzero: &mut Vec<usize>,
    ) {
        let i = dw.len() / o.max(1);
        dw.fill(0.0);
        for (x_row, d_row) in x.chunks_exact(i).zip(d.chunks_exact(o)) {
            nonzero_columns(x_row, nonzero);
            for &c in nonzero.iter() {
                let (v, g) = (x_row[c], &mut dw[c * o..(c + 1) * o]);
                g.iter_mut().zip(d_row).for_each(|(g, d)| *g += v * d);
            }
        }
    }
}

/// The columns of `row` that are nonzero, into `out`, gathered without a
/// branch per column (a one-hot row would mispredict at each of its ones).
#[inline(always)]
fn nonzero_columns(row: &[f32], out: &mut Vec<usize>) {
    out.clear();
    out.resize(row.len() + 1, 0);
    let mut n = 0;
    for (c, v) in row.iter().enumerate() {
        out[n] = c;
        n += usize::from(*v != 0.0);
    }
    out.truncate(n);
}

/// Multiplies `d` by the activation's slope, read from its output `y`.
pub fn activation_backward(d: &mut [f32], y: &[f32], activation: Activation) {
    match activation {
        Activation::Elu => elu_slope(d, y),
        Activation::Relu => relu_slope(d, y),
        Activation::Tanh => tanh_slope(d, y),
    }
}

widest! {
    fn elu_slope(d: &mut [f32], y: &[f32]) {
        for (g, y) in d.iter_mut().zip(y) {
            *g *= if *y > 0.0 { 1.0 } else { y + 1.0 };
        }
    }
}

widest! {
    fn relu_slope(d: &mut [f32], y: &[f32]) {
        for (g, y) in d.iter_mut().zip(y) {
            *g *= if *y > 0.0 { 1.0 } else { 0.0 };
        }
    }
}

widest! {
    fn tanh_slope(d: &mut [f32], y: &[f32]) {
        for (g, y) in d.iter_mut().zip(y) {
            *g *= 1.0 - y * y;
        }
    }
}

/// The constants of one Adam step (see [`adam`]).
#[derive(Clone, Copy, Debug)]
pub struct AdamStep {
    pub b1: f32,
    pub b2: f32,
    /// `1 - b1`, `1 - b2`.
    pub c1: f32,
    pub c2: f32,
    /// `1 / (1 - b2^t)`.
    pub inv_bc2: f32,
    pub eps: f32,
    /// `1 - weight_decay`.
    pub keep: f32,
    /// `-lr / (1 - b1^t)`.
    pub step: f32,
}

widest! {
    /// One Adam step on flat parameters, their gradient and moments.
    pub fn adam(k: AdamStep, params: &mut [f32], grads: &[f32], m: &mut [f32], v: &mut [f32]) {
        for (((x, g), m), v) in params
            .iter_mut()
            .zip(grads)
            .zip(m.iter_mut())
            .zip(v.iter_mut())
        {
            *m = k.b1 * *m + k.c1 * g;
            *v = k.b2 * *v + k.c2 * (g * g);
            let update = *m / ((*v * k.inv_bc2).sqrt() + k.eps);
            *x = k.keep * *x + k.step * update;
        }
    }
}

/// `exp(x)` for `x <= 0` in straight-line f32 arithmetic that the compiler
/// vectorizes: Cody-Waite reduction `x = n ln2 + r`, `|r| <= ln2/2`, a
/// degree-6 Taylor polynomial (relative error below 2e-7) in fused
/// multiply-adds, and `2^n` built
/// from the exponent bits. Inputs below -87 return 0 (e^-87 is below f32's
/// normal range).
#[inline(always)]
pub fn exp_nonpositive(x: f32) -> f32 {
    const LN2_HI: f32 = 0.693_145_75;
    const LN2_LO: f32 = 1.428_606_8e-6;
    let x = x.max(-87.0);
    // Round to nearest by adding and subtracting 1.5 * 2^23 (no libm call).
    const ROUND: f32 = 12_582_912.0;
    let shifted = x.mul_add(std::f32::consts::LOG2_E, ROUND);
    let n = shifted - ROUND;
    let r = (-n).mul_add(LN2_LO, (-n).mul_add(LN2_HI, x));
    // Horner's rule in fused multiply-adds: one rounding per step, the same
    // on every instruction set (the baseline build calls libm's `fmaf`).
    let p = (1.0f32 / 720.0).mul_add(r, 1.0 / 120.0);
    let p = p.mul_add(r, 1.0 / 24.0);
    let p = p.mul_add(r, 1.0 / 6.0);
    let p = p.mul_add(r, 0.5);
    let p = p.mul_add(r, 1.0);
    let p = p.mul_add(r, 1.0);
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The vectorized tanh stays within 4 ulp of the exact value, is odd,
    /// saturates at +-1 and passes NaN through.
    #[test]
    fn tanh_matches_the_exact_function() {
        let mut xs: Vec<f32> = (-20_000..=20_000).map(|i| i as f32 * 5e-4).collect();
        xs.extend([
            1e-30,
            -1e-30,
            1e-6,
            3.9e-4,
            4.1e-4,
            7.9,
            8.0,
            30.0,
            f32::INFINITY,
        ]);
        let mut ys = xs.clone();
        tanh(&mut ys);
        for (x, y) in xs.iter().zip(&ys) {
            let exact = (*x as f64).tanh();
            let err = (*y as f64 - exact).abs();
            // Four f32 ulps of the exact value.
            let ulp = (exact.abs() as f32).max(f32::MIN_POSITIVE) as f64 * f32::EPSILON as f64;
            assert!(
                err <= 4.0 * ulp,
                "tanh({x}) = {y}, exact {exact}: {} ulp",
                err / ulp
            );
            assert!(y.abs() <= 1.0);
            assert_eq!(tanh_rational(-x), -y, "odd at {x}");
        }
        let mut nan = [f32::NAN];
        tanh(&mut nan);
        assert!(nan[0].is_nan());
    }

    /// The vectorized exp (ELU's negative side) stays within 2 ulp of the
    /// exact value on [-87, 0], and ELU is continuous at 0.
    #[test]
    fn exp_matches_the_exact_function() {
        let mut worst = 0.0f64;
        for i in 0..=870_000 {
            let x = -(i as f32) * 1e-4;
            let exact = (x as f64).exp();
            let ulp = exact * f32::EPSILON as f64;
            worst = worst.max((exp_nonpositive(x) as f64 - exact).abs() / ulp);
        }
        assert!(worst <= 2.0, "worst error {worst} ulp");
        assert_eq!(exp_nonpositive(0.0), 1.0);
        let mut z = [0.0f32, -1e-30, 1e-30, -1e-3];
        elu(&mut z);
        assert_eq!((z[0], z[2]), (0.0, 1e-30));
        assert!(z[1] <= 0.0 && z[1] >= -1e-30);
        // `e^x - 1` in f32 (not `expm1`): within an ulp of 1 near 0.
        assert!((z[3] as f64 - (-1e-3f64).exp_m1()).abs() < 1.2e-7);
    }

    /// The sparse first layer and its weight gradient equal the dense
    /// products summed in the same (column, then row) order.
    #[test]
    fn sparse_kernels_equal_the_dense_products() {
        let (rows, i, o) = (23, 40, 37);
        // One-hot groups of 8, and a few other values.
        let x: Vec<f32> = (0..rows * i)
            .map(|k| match (k % i) % 8 == (k / i) % 8 {
                true => 1.0,
                false if k % 97 == 0 => -0.5,
                false => 0.0,
            })
            .collect();
        let w: Vec<f32> = (0..i * o).map(|k| (k as f32 * 0.61).sin()).collect();
        let bias: Vec<f32> = (0..o).map(|k| (k as f32 * 0.3).cos()).collect();
        let d: Vec<f32> = (0..rows * o).map(|k| (k as f32 * 0.17).cos()).collect();
        let mut dense = vec![0f32; rows * o];
        for r in 0..rows {
            for j in 0..o {
                let mut y = bias[j];
                for c in 0..i {
                    y += x[r * i + c] * w[c * o + j];
                }
                dense[r * o + j] = y;
            }
        }
        let (mut out, mut nonzero) = (vec![f32::NAN; rows * o], Vec::new());
        sparse_rows(&x, &w, &bias, &mut out, &mut nonzero);
        assert_eq!(out, dense);
        let mut dense_dw = vec![0f32; i * o];
        for r in 0..rows {
            for c in 0..i {
                for j in 0..o {
                    dense_dw[c * o + j] += x[r * i + c] * d[r * o + j];
                }
            }
        }
        let mut dw = vec![f32::NAN; i * o];
        sparse_weight_gradient(&x, &d, o, &mut dw, &mut nonzero);
        assert_eq!(dw, dense_dw);
    }

    /// The vector body and the scalar tail of a kernel give bit-identical
    /// results (so AVX-512, AVX2 and the portable build agree): a long slice
    /// against the same values one at a time, where only scalar code runs.
    #[test]
    fn vector_lanes_match_scalar_code_bit_for_bit() {
        let xs: Vec<f32> = (0..4099).map(|i| (i as f32 * 0.37).sin() * 12.0).collect();
        let ys: Vec<f32> = xs.iter().map(|x| x.tanh()).collect();
        let one_by_one = |f: &dyn Fn(&mut [f32])| -> Vec<f32> {
            xs.iter()
                .map(|x| {
                    let mut one = [*x];
                    f(&mut one);
                    one[0]
                })
                .collect()
        };
        for (name, f) in [("elu", &elu as &dyn Fn(&mut [f32])), ("tanh", &tanh)] {
            let mut whole = xs.clone();
            f(&mut whole);
            assert_eq!(whole, one_by_one(f), "{name}");
        }
        // The fused bias + activation epilogue: the same bits as adding the
        // bias and then activating, in any lane.
        let bias: Vec<f32> = (0..37).map(|i| (i as f32 * 0.9).cos()).collect();
        let rows = &xs[..37 * 110];
        let plus_bias: Vec<f32> = rows
            .iter()
            .enumerate()
            .map(|(i, x)| x + bias[i % 37])
            .collect();
        let mut fused = rows.to_vec();
        bias_add(&mut fused, &bias);
        assert_eq!(fused, plus_bias, "bias alone");
        // Feature-major: the same arithmetic per element as adding the bias
        // and then activating.
        let by_feature: Vec<f32> = (0..37)
            .flat_map(|j| (0..110).map(move |r| (j, r)))
            .map(|(j, r)| rows[r * 37 + j])
            .collect();
        for activation in [Activation::Elu, Activation::Relu, Activation::Tanh] {
            let mut fm = by_feature.clone();
            bias_activate_features(&mut fm, &bias, activation);
            let mut apart = plus_bias.clone();
            activate(&mut apart, activation);
            for (i, v) in fm.iter().enumerate() {
                assert_eq!(*v, apart[(i % 110) * 37 + i / 110], "{activation:?} at {i}");
            }
        }
        // Row sums: within f32 rounding of the exact sums, the same in every lane layout.
        let mut sums = vec![0f32; 37];
        row_sums(&by_feature, &mut sums);
        for (j, s) in sums.iter().enumerate() {
            let exact: f64 = by_feature[j * 110..(j + 1) * 110]
                .iter()
                .map(|x| *x as f64)
                .sum();
            assert!((*s as f64 - exact).abs() < 1e-4, "row {j}: {s} vs {exact}");
            let mut one = [0f32];
            row_sums(&by_feature[j * 110..(j + 1) * 110], &mut one);
            assert_eq!(one[0], *s, "row {j} alone");
        }
        let mut whole = xs.clone();
        elu_slope(&mut whole, &ys);
        for i in 0..xs.len() {
            let mut one = [xs[i]];
            elu_slope(&mut one, &[ys[i]]);
            assert_eq!(whole[i], one[0], "elu slope at {i}");
        }
        let k = AdamStep {
            b1: 0.9,
            b2: 0.999,
            c1: 0.1,
            c2: 0.001,
            inv_bc2: 3.7,
            eps: 1e-8,
            keep: 0.9999,
            step: -1e-3,
        };
        let (mut p, mut m, mut v) = (xs.clone(), ys.clone(), vec![0.5f32; xs.len()]);
        adam(k, &mut p, &ys, &mut m, &mut v);
        for i in 0..xs.len() {
            let (mut p1, mut m1, mut v1) = ([xs[i]], [ys[i]], [0.5f32]);
            adam(k, &mut p1, &[ys[i]], &mut m1, &mut v1);
            assert_eq!((p[i], m[i], v[i]), (p1[0], m1[0], v1[0]), "adam at {i}");
        }
    }
}
