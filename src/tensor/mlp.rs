//! Seed-batched multilayer perceptrons: `[S, in, out]` weights, `[S, out]`
//! biases, hidden activations ELU, ReLU or tanh, and a linear head.

use dfdx::prelude::*;

use crate::seeds::{Purpose, Stream};
#[cfg(not(feature = "cuda"))]
use crate::tensor::kernels;
pub use crate::tensor::kernels::Activation;
use crate::tensor::{Dev, T2, T3};

#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize)]
pub enum Init {
    /// Haiku's default: `TruncatedNormal(-2, 2) / sqrt(fan_in)`, biases 0 (young2022 spec §2).
    Haiku,
    /// Baselines' `normc_initializer(scale)`: N(0, 1) columns scaled to norm `scale`
    /// (vaslbo spec §2.2); `last` applies to the output layer.
    Normc { hidden: f64, last: f64 },
    /// Truncated normal (|x| <= 2 std) with a fixed std (SLBO dynamics: 1e-5).
    TruncatedNormal(f64),
    /// Glorot uniform, `U(-sqrt(6 / (in + out)), +sqrt(6 / (in + out)))` (lunzi's default, vaslbo spec §2.4).
    Glorot,
}

/// One network per seed, stacked on the leading axis.
#[derive(Clone, Debug)]
pub struct Mlp {
    pub weights: Vec<T3>,
    pub biases: Vec<T2>,
    pub activation: Activation,
}

/// Identifies a network for its initialisation stream (`q` = 0, `model` = 1, ...).
#[derive(Clone, Copy, Debug)]
pub struct NetId(pub u64);

impl Mlp {
    /// `dims = [in, hidden..., out]`; seed `seeds[s]` initialises from its own stream.
    pub fn new(
        dev: &Dev,
        root: u64,
        seeds: &[u64],
        net: NetId,
        dims: &[usize],
        activation: Activation,
        init: Init,
    ) -> Mlp {
        let n_seeds = seeds.len();
        let mut weights = Vec::new();
        let mut biases = Vec::new();
        for (layer, pair) in dims.windows(2).enumerate() {
            let (fan_in, fan_out) = (pair[0], pair[1]);
            let mut data = Vec::with_capacity(n_seeds * fan_in * fan_out);
            let is_last = layer + 2 == dims.len();
            for seed in seeds {
                let mut rng = Stream::new(root, *seed, Purpose::Init, net.0 * 1000 + layer as u64);
                data.extend(init_layer(init, is_last, fan_in, fan_out, &mut rng));
            }
            weights.push(dev.tensor_from_vec(data, (n_seeds, fan_in, fan_out)));
            biases.push(dev.zeros_like(&(n_seeds, fan_out)));
        }
        Mlp {
            weights,
            biases,
            activation,
        }
    }

    pub fn n_seeds(&self) -> usize {
        self.weights[0].shape().0
    }

    /// `x: [S, B, in] -> [S, B, out]`, recording on `x`'s tape.
    pub fn forward<T: Tape<f32, Dev> + Merge<NoneTape>>(&self, x: T3<T>) -> T3<T> {
        let mut h = x;
        let last = self.weights.len() - 1;
        for (layer, (w, b)) in self.weights.iter().zip(&self.biases).enumerate() {
            let shape = (h.shape().0, h.shape().1, w.shape().2);
            let z =
                h.matmul(w.retaped::<T>()) + b.retaped::<T>().broadcast_like::<_, Axis<1>>(&shape);
            h = match layer == last {
                true => z,
                false => activate(z, self.activation),
            };
        }
        h
    }

    /// Every parameter's values, flattened per seed: `[S][n_params]`.
    pub fn params_of_seed(&self, s: usize) -> Vec<f32> {
        let mut out = Vec::new();
        for (w, b) in self.weights.iter().zip(&self.biases) {
            let (_, i, o) = *w.shape();
            out.extend_from_slice(&w.as_vec()[s * i * o..(s + 1) * i * o]);
            out.extend_from_slice(&b.as_vec()[s * o..(s + 1) * o]);
        }
        out
    }

    /// The `[in, hidden..., out]` sizes.
    pub fn dims(&self) -> Vec<usize> {
        let mut dims: Vec<usize> = self.weights.iter().map(|w| w.shape().1).collect();
        dims.push(self.weights.last().expect("an MLP has layers").shape().2);
        dims
    }

    /// Every parameter tensor's values (weights, then biases), for a checkpoint.
    pub fn save(&self) -> Vec<Vec<f32>> {
        let weights = self.weights.iter().map(|w| w.as_vec());
        weights
            .chain(self.biases.iter().map(|b| b.as_vec()))
            .collect()
    }

    /// Puts back [`Mlp::save`]'s values into a network of the same shape.
    pub fn load(&mut self, values: &[Vec<f32>]) -> Result<(), String> {
        let n = self.weights.len();
        if values.len() != 2 * n {
            return Err(format!(
                "{} tensors saved, the network has {}",
                values.len(),
                2 * n
            ));
        }
        for (w, v) in self.weights.iter_mut().zip(&values[..n]) {
            load_into(w, v)?;
        }
        for (b, v) in self.biases.iter_mut().zip(&values[n..]) {
            load_into(b, v)?;
        }
        Ok(())
    }

    /// Copies another network's parameters (a target-network sync).
    pub fn copy_from(&mut self, other: &Mlp) {
        for (dst, src) in self.weights.iter_mut().zip(&other.weights) {
            *dst = src.clone();
        }
        for (dst, src) in self.biases.iter_mut().zip(&other.biases) {
            *dst = src.clone();
        }
    }
}

/// The hidden nonlinearity.
pub fn activate<T: Tape<f32, Dev> + Merge<NoneTape>>(z: T3<T>, activation: Activation) -> T3<T> {
    match activation {
        Activation::Relu => z.relu(),
        Activation::Tanh => z.tanh(),
        Activation::Elu => elu(z),
    }
}

/// ELU on the GPU: composed from dfdx ops (the fused kernel below is CPU-only).
#[cfg(feature = "cuda")]
pub fn elu<T: Tape<f32, Dev> + Merge<NoneTape>>(z: T3<T>) -> T3<T> {
    elu_composed(z)
}

/// ELU, `x` for `x > 0` and `exp(x) - 1` otherwise, as one CPU kernel with its
/// own backward op: dfdx 0.13 has no ELU, and composing it from relu, negate,
/// exp and add took seven passes over the activations each way.
#[cfg(not(feature = "cuda"))]
pub fn elu<T: Tape<f32, Dev> + Merge<NoneTape>>(z: T3<T>) -> T3<T> {
    let (z, mut tape) = z.split_tape();
    let shape = *z.shape();
    let n = shape.0 * shape.1 * shape.2;
    let mut xs = vec![0f32; n];
    z.copy_into(&mut xs);
    let mut ys = xs.clone();
    kernels::elu(&mut ys);
    let mut out = z.device().zeros_like(&shape);
    out.copy_from(&ys);
    let out_id = out.clone();
    tape.add_backward_op(move |grads| {
        let mut g_out = vec![0f32; n];
        grads.get(&out_id).copy_into(&mut g_out);
        let g_in = grads.get_or_alloc_mut(&z)?;
        for ((g, go), (x, y)) in g_in.iter_mut().zip(&g_out).zip(xs.iter().zip(&ys)) {
            // d/dx: 1 above zero, exp(x) = y + 1 below.
            let slope = if *x > 0.0 { 1.0 } else { y + 1.0 };
            *g += go * slope;
        }
        Ok(())
    });
    out.put_tape(tape)
}

/// ELU composed from dfdx ops, as a reference for [`elu`] in tests.
pub fn elu_composed<T: Tape<f32, Dev> + Merge<NoneTape>>(z: T3<T>) -> T3<T> {
    let positive = z.retaped::<T>().relu();
    let negative = z.negate().relu().negate().exp() - 1.0;
    negative + positive
}

/// One seed's `[fan_in, fan_out]` weights, row-major.
fn init_layer(
    init: Init,
    is_last: bool,
    fan_in: usize,
    fan_out: usize,
    rng: &mut Stream,
) -> Vec<f32> {
    match init {
        Init::Haiku => {
            let scale = 1.0 / (fan_in as f64).sqrt();
            (0..fan_in * fan_out)
                .map(|_| (truncated_normal(rng) * scale) as f32)
                .collect()
        }
        Init::Glorot => {
            let limit = (6.0 / (fan_in + fan_out) as f64).sqrt();
            (0..fan_in * fan_out)
                .map(|_| rng.range(-limit, limit) as f32)
                .collect()
        }
        Init::TruncatedNormal(std) => (0..fan_in * fan_out)
            .map(|_| (truncated_normal(rng) * std) as f32)
            .collect(),
        Init::Normc { hidden, last } => {
            let scale = if is_last { last } else { hidden };
            let raw: Vec<f64> = (0..fan_in * fan_out).map(|_| rng.normal()).collect();
            let mut out = vec![0f32; raw.len()];
            for col in 0..fan_out {
                let norm = (0..fan_in)
                    .map(|r| raw[r * fan_out + col].powi(2))
                    .sum::<f64>()
                    .sqrt();
                for r in 0..fan_in {
                    out[r * fan_out + col] = (raw[r * fan_out + col] * scale / norm) as f32;
                }
            }
            out
        }
    }
}

/// A standard normal truncated to [-2, 2] by rejection (Haiku's TruncatedNormal, std not rescaled).
fn truncated_normal(rng: &mut Stream) -> f64 {
    loop {
        let x = rng.normal();
        if x.abs() <= 2.0 {
            return x;
        }
    }
}

/// Copies `values` into `tensor` when the sizes agree.
pub fn load_into<S: Shape>(tensor: &mut Tensor<S, f32, Dev>, values: &[f32]) -> Result<(), String> {
    if tensor.shape().num_elements() != values.len() {
        return Err(format!(
            "a saved tensor has {} values, the network's has {}",
            values.len(),
            tensor.shape().num_elements()
        ));
    }
    tensor.copy_from(values);
    Ok(())
}
