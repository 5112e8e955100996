//! The DQN update on the CPU as one fused pass per seed: Q forward with the
//! bias folded into the GEMM's output, the activation in place, the target
//! forward, the weighted TD loss and its gradient, the backward GEMMs (no
//! gradient for the input), and the reference Adam, all on buffers reused
//! from update to update.
//!
//! The taped dfdx path ([`crate::kinds::dqn::learner::DqnLearner::use_taped`])
//! computes the same update and is what the GPU runs; on the CPU its per-op
//! allocations, broadcasts and copies cost more than the GEMMs themselves
//! (README, "Tensor runtime"). Tests compare the two.
//!
//! A network whose layout says `precision: bf16` multiplies on the AMX tiles
//! ([`crate::tensor::amx`]) instead of `gemm`, everything else unchanged;
//! [`Packs`] keep its weights packed for the forward passes that share them.
//!
//! Invariants: each seed is computed alone from its own slices, so a seed's
//! numbers do not depend on its batch; GEMMs are single-threaded (the seed
//! shards are the parallelism); packed weights are those of the parameters
//! passed beside them.

use crate::tensor::kernels::{self, activate, activation_backward, argmax, Activation, AdamStep};
use crate::tensor::mlp::Mlp;
use crate::tensor::optim::{AdamConfig, MlpMoments};
use crate::tensor::Precision;

/// One seed's network as flat parameters: per layer the `[in, out]` weights
/// (row-major), then the `[out]` bias.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Layout {
    pub dims: Vec<usize>,
    /// Offset of each layer's weights; its bias follows them.
    offsets: Vec<usize>,
    pub n_params: usize,
    /// The arithmetic of the network's products. Not serialized: it comes
    /// from the plan (the run's identity), and whoever restores a layout
    /// sets it again from there.
    #[serde(skip)]
    pub precision: Precision,
}

impl Layout {
    pub fn new(dims: &[usize]) -> Layout {
        let mut offsets = Vec::new();
        let mut at = 0;
        for w in dims.windows(2) {
            offsets.push(at);
            at += w[0] * w[1] + w[1];
        }
        Layout {
            dims: dims.to_vec(),
            offsets,
            n_params: at,
            precision: Precision::Fp32,
        }
    }

    /// The same network, multiplying at `precision`.
    pub fn with_precision(self, precision: Precision) -> Layout {
        Layout { precision, ..self }
    }

    fn layers(&self) -> usize {
        self.dims.len() - 1
    }

    /// `(weights, bias)` ranges of `layer`.
    fn ranges(&self, layer: usize) -> (std::ops::Range<usize>, std::ops::Range<usize>) {
        let (i, o) = (self.dims[layer], self.dims[layer + 1]);
        let w = self.offsets[layer];
        (w..w + i * o, w + i * o..w + i * o + o)
    }
}

/// One seed's weights packed for its forward passes in bf16 (empty for an
/// fp32 layout): per layer, `W^T` as the left operand where the output is
/// feature-major, `W` as the right one for the last layer. The products
/// give the bits [`forward`] gives; packing once serves the many passes of
/// a rollout, an evaluation or a data collection with the same weights.
#[derive(Clone, Debug, Default)]
pub struct Packs {
    #[cfg(all(target_arch = "x86_64", not(feature = "cuda")))]
    layers: Vec<Packed>,
}

#[cfg(all(target_arch = "x86_64", not(feature = "cuda")))]
#[derive(Clone, Debug)]
enum Packed {
    Left(crate::tensor::amx::PackedA),
    Right(crate::tensor::amx::PackedB),
}

impl Packs {
    /// `params`' layers packed, where `layout` multiplies in bf16.
    pub fn new(layout: &Layout, params: &[f32]) -> Packs {
        #[cfg(all(target_arch = "x86_64", not(feature = "cuda")))]
        {
            use crate::tensor::amx::View;
            if layout.precision != Precision::Bf16 {
                return Packs::default();
            }
            let unit = match crate::tensor::bf16_unit() {
                Ok(unit) => unit,
                Err(why) => {
                    unreachable!("bf16 is refused before a run starts where it is missing: {why}")
                }
            };
            let layers = (0..layout.layers())
                .map(|l| {
                    let (i, o) = (layout.dims[l], layout.dims[l + 1]);
                    let w = &params[layout.ranges(l).0];
                    match l + 1 == layout.layers() {
                        true => Packed::Right(unit.pack_b_view(View::row_major(w, i, o))),
                        false => Packed::Left(unit.pack_a(View::transposed(w, o, i))),
                    }
                })
                .collect();
            Packs { layers }
        }
        #[cfg(not(all(target_arch = "x86_64", not(feature = "cuda"))))]
        {
            let _ = (layout, params);
            Packs {}
        }
    }

    #[cfg(all(target_arch = "x86_64", not(feature = "cuda")))]
    fn layer(&self, l: usize) -> Option<&Packed> {
        self.layers.get(l)
    }

    #[cfg(not(all(target_arch = "x86_64", not(feature = "cuda"))))]
    fn layer(&self, _l: usize) -> Option<&Never> {
        None
    }
}

/// No packed layer (a build without AMX).
#[cfg(not(all(target_arch = "x86_64", not(feature = "cuda"))))]
enum Never {}

#[cfg(not(all(target_arch = "x86_64", not(feature = "cuda"))))]
impl Never {
    fn forward(&self, _first: bool, _input: &[f32], _rows: usize, _out: &mut [f32]) {
        match *self {}
    }
}

#[cfg(all(target_arch = "x86_64", not(feature = "cuda")))]
impl Packed {
    /// The layer's product on `rows` rows of `input` (row-major `[rows, in]`
    /// for the first layer, feature-major `[in, rows]` after it) into `out`,
    /// as [`forward`] computes it.
    fn forward(&self, first: bool, input: &[f32], rows: usize, out: &mut [f32]) {
        use crate::tensor::amx::View;
        let unit = match crate::tensor::bf16_unit() {
            Ok(unit) => unit,
            Err(why) => unreachable!("packed weights imply the unit: {why}"),
        };
        match self {
            // `[o, rows] = W^T x^T` or `W^T h`.
            Packed::Left(w) => {
                let i = w.cols();
                let b = match first {
                    true => View::transposed(input, i, rows),
                    false => View::row_major(input, i, rows),
                };
                unit.gemm_packed_a(w, b, out, false);
            }
            // `[rows, o] = x W` or `h^T W`.
            Packed::Right(w) => {
                let i = w.rows();
                let a = match first {
                    true => View::row_major(input, rows, i),
                    false => View::transposed(input, rows, i),
                };
                unit.gemm_packed_b(a, w, out, false);
            }
        }
    }
}

/// A network's [`Packs`], kept with it and made again when its parameters
/// change: whoever holds one clears it ([`PackCache::clear`]) wherever the
/// parameters are written. Cloning, comparing and serializing ignore it.
#[derive(Default)]
pub struct PackCache(std::sync::Mutex<Option<std::sync::Arc<Packs>>>);

impl PackCache {
    /// The packs of `params`, made now if there are none.
    pub fn get(&self, layout: &Layout, params: &[f32]) -> std::sync::Arc<Packs> {
        let mut held = self.0.lock().unwrap_or_else(|e| e.into_inner());
        held.get_or_insert_with(|| std::sync::Arc::new(Packs::new(layout, params)))
            .clone()
    }

    /// Forgets the packs (the parameters are about to change).
    pub fn clear(&mut self) {
        *self.0.get_mut().unwrap_or_else(|e| e.into_inner()) = None;
    }
}

impl Clone for PackCache {
    fn clone(&self) -> Self {
        PackCache::default()
    }
}

impl PartialEq for PackCache {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl std::fmt::Debug for PackCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PackCache")
    }
}

/// A seed's TD minibatch, flat: `B` rows of `d` observations.
pub struct TdInputs<'a> {
    pub obs: &'a [f32],
    pub next_obs: &'a [f32],
    pub actions: &'a [usize],
    pub rewards: &'a [f32],
    pub discounts: &'a [f32],
    pub weights: &'a [f32],
    /// Double DQN: the target network's value at the online network's
    /// argmax on `s'`, instead of the target's max.
    pub double_dqn: bool,
}

/// Scratch buffers of one seed's update, kept between updates.
#[derive(Default)]
pub struct Scratch {
    /// Post-activation outputs of every layer (the last one is Q).
    acts: Vec<Vec<f32>>,
    next: Vec<Vec<f32>>,
    /// The online network's outputs on `s'` (double DQN).
    online_next: Vec<Vec<f32>>,
    /// Gradient with respect to the current layer's output / input.
    d_out: Vec<f32>,
    d_in: Vec<f32>,
    grads: Vec<f32>,
    /// The layer outputs of no-grad forwards ([`predict`]: acting,
    /// evaluation, rollouts), apart from the update's: sharing them, the
    /// update grew back (and zero-filled) what a one-row forward had shrunk.
    predict: Vec<Vec<f32>>,
}

/// `c = a b` (`beta` = 1 adds to `c`) for row-major `a: [m, k]` or its
/// transpose (`a_t`: `a` stored `[k, m]`) and `b: [k, n]` or its transpose.
///
/// The product runs in column blocks (see [`column_blocks`]) where that
/// spares `gemm` a repacking; every element is the same sum in the same
/// order either way.
#[allow(clippy::too_many_arguments)]
fn matmul(
    precision: Precision,
    m: usize,
    k: usize,
    n: usize,
    a: &[f32],
    a_t: bool,
    b: &[f32],
    b_t: bool,
    c: &mut [f32],
    accumulate: bool,
) {
    assert!(a.len() >= m * k && b.len() >= k * n && c.len() >= m * n);
    if precision == Precision::Bf16 {
        return bf16_matmul(m, k, n, a, a_t, b, b_t, c, accumulate);
    }
    // (row stride, column stride) of each operand as a logical matrix.
    let (a_rs, a_cs) = if a_t { (1, m) } else { (k, 1) };
    let (b_rs, b_cs) = if b_t { (1, k) } else { (n, 1) };
    for cols in column_blocks(m, n, a_t, b_t) {
        // SAFETY: the asserts above bound every element the strides reach;
        // a column range starts `cols.start` columns into `b` and `c`.
        unsafe {
            gemm::gemm(
                m,
                cols.len(),
                k,
                c.as_mut_ptr().add(cols.start),
                1,
                n as isize,
                accumulate,
                a.as_ptr(),
                a_cs as isize,
                a_rs as isize,
                b.as_ptr().add(cols.start * b_cs),
                b_cs as isize,
                b_rs as isize,
                if accumulate { 1.0 } else { 0.0 },
                1.0,
                false,
                false,
                false,
                gemm::Parallelism::None,
            )
        }
    }
}

/// [`matmul`] on the matrix units: both operands rounded to bf16 (the
/// activations once per product, as they are packed), FP32 accumulation,
/// the same order of sums for every row whatever the others.
#[allow(clippy::too_many_arguments)]
fn bf16_matmul(
    m: usize,
    k: usize,
    n: usize,
    a: &[f32],
    a_t: bool,
    b: &[f32],
    b_t: bool,
    c: &mut [f32],
    accumulate: bool,
) {
    #[cfg(all(target_arch = "x86_64", not(feature = "cuda")))]
    {
        use crate::tensor::amx::View;
        let view = |x, rows, cols, t| match t {
            true => View::transposed(x, rows, cols),
            false => View::row_major(x, rows, cols),
        };
        match crate::tensor::bf16_unit() {
            Ok(unit) => unit.gemm_views(
                view(a, m, k, a_t),
                view(b, k, n, b_t),
                &mut c[..m * n],
                accumulate,
            ),
            Err(why) => {
                unreachable!("bf16 is refused before a run starts where it is missing: {why}")
            }
        }
    }
    #[cfg(not(all(target_arch = "x86_64", not(feature = "cuda"))))]
    {
        let _ = (m, k, n, a, a_t, b, b_t, c, accumulate);
        unreachable!("bf16 is refused before a run starts on this build")
    }
}

/// The column blocks [`matmul`] runs its product in. `gemm` computes a
/// row-major `c` as `c^T = b^T a^T`, whose rows are `c`'s columns:
///
/// - it packs `a^T` afresh on every call when `a` is stored transposed and
///   `c` has more than 128 columns (twice its 64-row microkernel), which
///   for feature-major layers is the weight matrix of every forward pass:
///   blocks of at most 128 columns read it in place (5% faster);
/// - for few rows and a plain `b` whose width is not a multiple of its 16
///   lanes, it repacks the whole of `b` (32 rows against 200x200 weights:
///   20% of the simple model's rollouts): the product is cut at the last
///   multiple of 16 columns, and only the narrow rest is packed.
fn column_blocks(m: usize, n: usize, a_t: bool, b_t: bool) -> Vec<std::ops::Range<usize>> {
    const LANES: usize = 16;
    const UNPACKED: usize = 128;
    let wide = n - n % LANES;
    if a_t && m > 1 && n > UNPACKED {
        (0..n)
            .step_by(UNPACKED)
            .map(|at| at..(at + UNPACKED).min(n))
            .collect()
    } else if !b_t && m <= 64 && wide > 0 && wide < n {
        vec![0..wide, wide..n]
    } else {
        std::iter::once(0..n).collect()
    }
}

/// The forward pass of one seed's network on `rows` inputs `x` (row-major
/// `[rows, in]`), every layer's output kept in `acts`: hidden layers
/// feature-major (`[out, rows]`), the last layer row-major (`[rows, out]`).
///
/// Feature-major hidden layers put the batch on the GEMM's long, contiguous
/// side: `gemm` then runs its full 64-row microkernels over it, where
/// row-major outputs 200 wide left an 8-row tail to a 16-lane edge kernel
/// (11% of the ER update's cycles). The dot products are the same sums in
/// the same order either way.
pub fn forward(
    layout: &Layout,
    params: &[f32],
    activation: Activation,
    x: &[f32],
    rows: usize,
    acts: &mut Vec<Vec<f32>>,
) {
    forward_packed(layout, params, None, activation, x, rows, acts)
}

/// [`forward`] with the weights of a bf16 layout already packed (`packs`,
/// from [`Packs::new`] on these `params`): the same bits, without packing
/// them again for every pass.
pub fn forward_packed(
    layout: &Layout,
    params: &[f32],
    packs: Option<&Packs>,
    activation: Activation,
    x: &[f32],
    rows: usize,
    acts: &mut Vec<Vec<f32>>,
) {
    let layers = layout.layers();
    acts.resize_with(layers, Vec::new);
    for layer in 0..layers {
        let (i, o) = (layout.dims[layer], layout.dims[layer + 1]);
        let (w, b) = layout.ranges(layer);
        let (weights, bias) = (&params[w], &params[b]);
        let last = layer + 1 == layers;
        let (before, rest) = acts.split_at_mut(layer);
        let out = &mut rest[0];
        // The GEMMs overwrite every element: no need to clear the old ones.
        out.resize(rows * o, 0.0);
        if layer == 0 && is_sparse(x) {
            SPARSE.with(|sparse| {
                let sparse = &mut *sparse.borrow_mut();
                if last {
                    kernels::sparse_rows(x, weights, bias, out, &mut sparse.nonzero);
                } else {
                    let by_row = grow(&mut sparse.by_row, rows * o);
                    kernels::sparse_rows(x, weights, bias, by_row, &mut sparse.nonzero);
                    transpose(by_row, rows, o, out);
                    activate(out, activation);
                }
            });
            continue;
        }
        let input = match layer {
            0 => x,
            _ => &before[layer - 1][..],
        };
        if let Some(packed) = packs.and_then(|p| p.layer(layer)) {
            packed.forward(layer == 0, input, rows, out);
        } else {
            match (layer == 0, last) {
                // `[rows, o] = x W`.
                (true, true) => matmul(
                    layout.precision,
                    rows,
                    i,
                    o,
                    x,
                    false,
                    weights,
                    false,
                    out,
                    false,
                ),
                // `[o, rows] = W^T x^T`.
                (true, false) => matmul(
                    layout.precision,
                    o,
                    i,
                    rows,
                    weights,
                    true,
                    x,
                    true,
                    out,
                    false,
                ),
                // `[rows, o] = h^T W` from the feature-major `h`.
                (false, true) => matmul(
                    layout.precision,
                    rows,
                    i,
                    o,
                    &before[layer - 1],
                    true,
                    weights,
                    false,
                    out,
                    false,
                ),
                // `[o, rows] = W^T h`.
                (false, false) => matmul(
                    layout.precision,
                    o,
                    i,
                    rows,
                    weights,
                    true,
                    &before[layer - 1],
                    false,
                    out,
                    false,
                ),
            }
        }
        match last {
            true => kernels::bias_add(out, bias),
            false => kernels::bias_activate_features(out, bias, activation),
        }
    }
}

/// `out = a^T` for `a` row-major `[rows, cols]` (`out` is `[cols, rows]`).
fn transpose(a: &[f32], rows: usize, cols: usize, out: &mut [f32]) {
    for (r, row) in a.chunks_exact(cols).take(rows).enumerate() {
        for (c, v) in row.iter().enumerate() {
            out[c * rows + r] = *v;
        }
    }
}

/// Forward-mode derivative of one seed's network on `rows` inputs `x` (the
/// input held fixed): returns its outputs and their directional derivative
/// `J v` along the parameter tangent `tangent`, laid out like `params`.
pub fn jvp(
    layout: &Layout,
    params: &[f32],
    tangent: &[f32],
    activation: Activation,
    x: &[f32],
    rows: usize,
) -> (Vec<f32>, Vec<f32>) {
    let mut h = x.to_vec();
    let mut dh = vec![0f32; x.len()];
    for layer in 0..layout.layers() {
        let (i, o) = (layout.dims[layer], layout.dims[layer + 1]);
        let (w, b) = layout.ranges(layer);
        let mut z = Vec::with_capacity(rows * o);
        let mut dz = Vec::with_capacity(rows * o);
        for _ in 0..rows {
            z.extend_from_slice(&params[b.clone()]);
            dz.extend_from_slice(&tangent[b.clone()]);
        }
        matmul(
            layout.precision,
            rows,
            i,
            o,
            &h,
            false,
            &params[w.clone()],
            false,
            &mut z,
            true,
        );
        matmul(
            layout.precision,
            rows,
            i,
            o,
            &h,
            false,
            &tangent[w.clone()],
            false,
            &mut dz,
            true,
        );
        if layer > 0 {
            matmul(
                layout.precision,
                rows,
                i,
                o,
                &dh,
                false,
                &params[w],
                false,
                &mut dz,
                true,
            );
        }
        if layer + 1 < layout.layers() {
            activate(&mut z, activation);
            activation_backward(&mut dz, &z, activation);
        }
        h = z;
        dh = dz;
    }
    (h, dh)
}

/// Whether an input is sparse enough (fewer than 1 in 8 entries nonzero:
/// the categorical latents' one-hot features) that the first layer is
/// cheaper as a sum of the weight rows it selects than as a GEMM.
fn is_sparse(x: &[f32]) -> bool {
    x.iter().filter(|v| **v != 0.0).count() * 8 < x.len()
}

/// The packed weights an update's forward passes may use (see [`Packs`]):
/// the online network's and the target's, each of the parameters given
/// beside them.
#[derive(Clone, Copy, Default)]
pub struct Packed2<'a> {
    pub online: Option<&'a Packs>,
    pub target: Option<&'a Packs>,
}

/// One seed's TD loss `mean w (Q(s)[a] - (r + discount max Q'(s')))^2` and its
/// gradient with respect to the parameters (written to `scratch.grads`).
///
/// `recorded`, when given, holds Q's layer outputs on `batch.obs` with these
/// parameters (see [`Recorded`]) and replaces the forward pass on them.
#[allow(clippy::too_many_arguments)]
pub fn td_loss_and_grad(
    layout: &Layout,
    params: &[f32],
    target: &[f32],
    packs: Packed2,
    activation: Activation,
    batch: &TdInputs,
    scratch: &mut Scratch,
    recorded: Option<RecordedSeed>,
) -> f32 {
    let rows = batch.actions.len();
    let k = *layout.dims.last().expect("a network has layers");
    forward_packed(
        layout,
        target,
        packs.target,
        activation,
        batch.next_obs,
        rows,
        &mut scratch.next,
    );
    let acts: &[Vec<f32>] = match recorded {
        Some(recorded) => {
            recorded.assemble(layout, rows, &mut scratch.acts);
            &scratch.acts
        }
        None => {
            forward_packed(
                layout,
                params,
                packs.online,
                activation,
                batch.obs,
                rows,
                &mut scratch.acts,
            );
            &scratch.acts
        }
    };
    if batch.double_dqn {
        forward_packed(
            layout,
            params,
            packs.online,
            activation,
            batch.next_obs,
            rows,
            &mut scratch.online_next,
        );
    }
    let q_next = scratch.next.last().expect("layers");
    let online_next = scratch.online_next.last().filter(|_| batch.double_dqn);
    let q = acts.last().expect("layers");
    scratch.d_out.clear();
    scratch.d_out.resize(rows * k, 0.0);
    let mut loss = 0.0f32;
    for r in 0..rows {
        let row_next = &q_next[r * k..(r + 1) * k];
        let max_next = match online_next {
            Some(online) => row_next[argmax(&online[r * k..(r + 1) * k])],
            None => row_next.iter().cloned().fold(f32::NEG_INFINITY, f32::max),
        };
        let a = batch.actions[r];
        let err = q[r * k + a] - (batch.rewards[r] + batch.discounts[r] * max_next);
        loss += batch.weights[r] * err * err;
        scratch.d_out[r * k + a] = 2.0 * batch.weights[r] * err / rows as f32;
    }
    scratch.grads.resize(layout.n_params, 0.0);
    backward(
        layout,
        params,
        activation,
        batch.obs,
        acts,
        &mut scratch.d_out,
        &mut scratch.d_in,
        &mut scratch.grads,
        None,
    );
    loss / rows as f32
}

/// The backward pass of one seed's network after [`forward`] on input `x`
/// (its outputs in `acts`): from `d_out`, the loss's gradient with respect to
/// the network's output (row-major `[rows, out]`), writes the parameter
/// gradient to `grads` (overwriting it) and, when `d_x` is given, the
/// gradient with respect to the input (row-major `[rows, in]`). `d_out` and
/// `tmp` are consumed as scratch. Gradients of hidden layers' outputs are
/// feature-major, like the outputs.
#[allow(clippy::too_many_arguments)]
pub fn backward(
    layout: &Layout,
    params: &[f32],
    activation: Activation,
    x: &[f32],
    acts: &[Vec<f32>],
    d_out: &mut Vec<f32>,
    tmp: &mut Vec<f32>,
    grads: &mut [f32],
    d_x: Option<&mut Vec<f32>>,
) {
    let layers = layout.layers();
    let rows = x.len() / layout.dims[0];
    for layer in (0..layers).rev() {
        let (i, o) = (layout.dims[layer], layout.dims[layer + 1]);
        let (w, b) = layout.ranges(layer);
        let (first, last) = (layer == 0, layer + 1 == layers);
        if !last {
            activation_backward(d_out, &acts[layer], activation);
        }
        // dW = input^T d_out.
        let dw = &mut grads[w.clone()];
        let sparse = first && is_sparse(x);
        if sparse {
            SPARSE.with(|sparse| {
                let sparse = &mut *sparse.borrow_mut();
                let nonzero = &mut sparse.nonzero;
                if last {
                    kernels::sparse_weight_gradient(x, d_out, o, dw, nonzero);
                } else {
                    let by_row = grow(&mut sparse.by_row, rows * o);
                    transpose(d_out, o, rows, by_row);
                    kernels::sparse_weight_gradient(x, by_row, o, dw, nonzero);
                }
            });
        } else {
            match (first, last) {
                (true, true) => matmul(
                    layout.precision,
                    i,
                    rows,
                    o,
                    x,
                    true,
                    d_out,
                    false,
                    dw,
                    false,
                ),
                (true, false) => matmul(
                    layout.precision,
                    i,
                    rows,
                    o,
                    x,
                    true,
                    d_out,
                    true,
                    dw,
                    false,
                ),
                (false, true) => matmul(
                    layout.precision,
                    i,
                    rows,
                    o,
                    &acts[layer - 1],
                    false,
                    d_out,
                    false,
                    dw,
                    false,
                ),
                (false, false) => matmul(
                    layout.precision,
                    i,
                    rows,
                    o,
                    &acts[layer - 1],
                    false,
                    d_out,
                    true,
                    dw,
                    false,
                ),
            }
        }
        // db = the sums of d_out over the rows.
        match last {
            true => kernels::column_sums(d_out, &mut grads[b]),
            false => kernels::row_sums(d_out, &mut grads[b]),
        }
        if first && d_x.is_none() {
            break;
        }
        // d_input = d_out W^T, feature-major unless it is the input's.
        let weights = &params[w];
        // The GEMM overwrites every element: no need to clear the old ones.
        tmp.resize(rows * i, 0.0);
        match (first, last) {
            (true, true) => matmul(
                layout.precision,
                rows,
                o,
                i,
                d_out,
                false,
                weights,
                true,
                tmp,
                false,
            ),
            (true, false) => matmul(
                layout.precision,
                rows,
                o,
                i,
                d_out,
                true,
                weights,
                true,
                tmp,
                false,
            ),
            (false, true) => matmul(
                layout.precision,
                i,
                o,
                rows,
                weights,
                false,
                d_out,
                true,
                tmp,
                false,
            ),
            (false, false) => matmul(
                layout.precision,
                i,
                o,
                rows,
                weights,
                false,
                d_out,
                false,
                tmp,
                false,
            ),
        }
        std::mem::swap(d_out, tmp);
    }
    if let Some(d_x) = d_x {
        std::mem::swap(d_x, d_out);
    }
}

/// The reference Adam (young2022 spec §2) on one seed's flat parameters,
/// with the same arithmetic as [`crate::tensor::optim::Moments::step`].
pub fn adam_step(
    cfg: &AdamConfig,
    t: u64,
    params: &mut [f32],
    grads: &[f32],
    m: &mut [f32],
    v: &mut [f32],
) {
    let bc1 = 1.0 - cfg.b1.powi(t as i32 + 1);
    let bc2 = 1.0 - cfg.b2.powi(t as i32 + 1);
    let k = AdamStep {
        b1: cfg.b1 as f32,
        b2: cfg.b2 as f32,
        c1: (1.0 - cfg.b1) as f32,
        c2: (1.0 - cfg.b2) as f32,
        inv_bc2: (1.0 / bc2) as f32,
        eps: cfg.eps as f32,
        keep: (1.0 - cfg.weight_decay) as f32,
        step: (-cfg.lr / bc1) as f32,
    };
    kernels::adam(k, params, grads, m, v);
}

/// The sparse first layer's scratch, per worker thread: its row-major
/// staging (outputs before the transpose to feature-major, output gradients
/// after it) and a row's nonzero columns. The staging only grows, so that a
/// small forward never makes the next large one zero-fill it again.
#[derive(Default)]
struct Sparse {
    by_row: Vec<f32>,
    nonzero: Vec<usize>,
}

/// The first `n` elements of `buf`, grown (never shrunk) to hold them; their
/// old values are left for the caller to overwrite.
fn grow(buf: &mut Vec<f32>, n: usize) -> &mut [f32] {
    if buf.len() < n {
        buf.resize(n, 0.0);
    }
    &mut buf[..n]
}

thread_local! {
    static SPARSE: std::cell::RefCell<Sparse> = std::cell::RefCell::new(Sparse::default());
    /// One set of scratch buffers per worker thread: every learner on the
    /// thread reuses them, so they stay in cache from seed to seed.
    static SCRATCH: std::cell::RefCell<Scratch> = std::cell::RefCell::new(Scratch::default());
}

/// A network's layer outputs, per seed, appended pass after pass: Q's
/// forward passes during rollouts, which the update that trains on the same
/// rows with the same parameters reuses instead of running them again.
#[derive(Default, Debug)]
pub struct Recorded {
    /// Per seed, per layer, every recorded pass's output (as [`forward`]
    /// lays it out) in order.
    pub seeds: Vec<Vec<Vec<f32>>>,
    /// The rows of each pass (all passes have as many).
    pub pass_rows: usize,
}

impl Recorded {
    pub fn clear(&mut self) {
        self.seeds
            .iter_mut()
            .flatten()
            .for_each(|layer| layer.clear());
    }

    /// Seed `s`'s passes.
    pub fn seed(&self, s: usize) -> RecordedSeed<'_> {
        RecordedSeed {
            layers: &self.seeds[s],
            pass_rows: self.pass_rows,
        }
    }
}

/// One seed's recorded passes (see [`Recorded`]).
#[derive(Clone, Copy, Debug)]
pub struct RecordedSeed<'a> {
    pub layers: &'a [Vec<f32>],
    pub pass_rows: usize,
}

impl RecordedSeed<'_> {
    /// The passes as one [`forward`] on all their rows (`rows` in all) would
    /// have left them: row-major outputs are the passes one after another,
    /// feature-major ones interleave each feature's rows pass by pass.
    fn assemble(&self, layout: &Layout, rows: usize, acts: &mut Vec<Vec<f32>>) {
        let layers = layout.layers();
        let k = layout.dims[layers];
        assert_eq!(self.layers[layers - 1].len(), rows * k, "recorded rows");
        let pr = self.pass_rows;
        acts.resize_with(layers, Vec::new);
        for (layer, (out, kept)) in acts.iter_mut().zip(self.layers).enumerate() {
            out.clear();
            if layer + 1 == layers {
                out.extend_from_slice(kept);
                continue;
            }
            let o = layout.dims[layer + 1];
            out.resize(rows * o, 0.0);
            for (p, pass) in kept.chunks_exact(o * pr).enumerate() {
                for (j, feature) in pass.chunks_exact(pr).enumerate() {
                    out[j * rows + p * pr..j * rows + (p + 1) * pr].copy_from_slice(feature);
                }
            }
        }
    }
}

/// A no-grad forward pass of `S` seeds' networks (`params`: `[S, P]` flat),
/// `per_seed` input rows each; returns the `[S, per_seed, out]` outputs and,
/// with `record`, appends every layer's outputs to it.
pub fn predict(
    layout: &Layout,
    params: &[f32],
    activation: Activation,
    x: &[f32],
    per_seed: usize,
    record: Option<&mut Recorded>,
) -> Vec<f32> {
    predict_packed(layout, params, None, activation, x, per_seed, record)
}

/// [`predict`] with each seed's weights already packed (`packs[s]`, from
/// [`Packs::new`] on seed `s`'s parameters): the same bits.
pub fn predict_packed(
    layout: &Layout,
    params: &[f32],
    packs: Option<&[&Packs]>,
    activation: Activation,
    x: &[f32],
    per_seed: usize,
    mut record: Option<&mut Recorded>,
) -> Vec<f32> {
    let (d, p) = (layout.dims[0], layout.n_params);
    let n_seeds = params.len() / p;
    let mut out = Vec::with_capacity(n_seeds * per_seed * layout.dims[layout.layers()]);
    if let Some(record) = record.as_mut() {
        let empty = record.seeds.iter().flatten().all(|layer| layer.is_empty());
        assert!(
            empty || record.pass_rows == per_seed,
            "recorded passes of equal rows"
        );
        record.pass_rows = per_seed;
        record.seeds.resize_with(n_seeds, Vec::new);
        for layers in &mut record.seeds {
            layers.resize_with(layout.layers(), Vec::new);
        }
    }
    SCRATCH.with(|scratch| {
        let acts = &mut scratch.borrow_mut().predict;
        for s in 0..n_seeds {
            let input = &x[s * per_seed * d..(s + 1) * per_seed * d];
            forward_packed(
                layout,
                &params[s * p..(s + 1) * p],
                packs.map(|packs| packs[s]),
                activation,
                input,
                per_seed,
                acts,
            );
            out.extend_from_slice(acts.last().expect("layers"));
            if let Some(record) = record.as_mut() {
                for (kept, layer) in record.seeds[s].iter_mut().zip(acts.iter()) {
                    kept.extend_from_slice(layer);
                }
            }
        }
    });
    out
}

/// Per-tensor values (`[S, in, out]` weights of every layer, then `[S, out]`
/// biases, as [`crate::tensor::mlp::Mlp::save`] lists them) to `[S, P]` flat parameters.
pub fn flatten(layout: &Layout, n_seeds: usize, tensors: &[Vec<f32>]) -> Vec<f32> {
    let layers = layout.layers();
    let mut out = Vec::with_capacity(n_seeds * layout.n_params);
    for s in 0..n_seeds {
        for l in 0..layers {
            let (i, o) = (layout.dims[l], layout.dims[l + 1]);
            out.extend_from_slice(&tensors[l][s * i * o..(s + 1) * i * o]);
            out.extend_from_slice(&tensors[layers + l][s * o..(s + 1) * o]);
        }
    }
    out
}

/// One seed's parameters, target and Adam moments, all `[P]` flat.
pub struct SeedState<'a> {
    pub params: &'a mut [f32],
    pub target: &'a [f32],
    /// Packed weights of `params` and `target`, where the caller has them.
    pub packs: Packed2<'a>,
    pub m: &'a mut [f32],
    pub v: &'a mut [f32],
}

/// One DQN update of one seed: TD loss and gradient, then an Adam step
/// (`t` is the 0-based step counter). Returns the loss before the step.
pub fn train_step(
    layout: &Layout,
    activation: Activation,
    adam: &AdamConfig,
    t: u64,
    seed: SeedState,
    batch: &TdInputs,
    recorded: Option<RecordedSeed>,
) -> f32 {
    SCRATCH.with(|scratch| {
        let scratch = &mut *scratch.borrow_mut();
        let loss = td_loss_and_grad(
            layout,
            seed.params,
            seed.target,
            seed.packs,
            activation,
            batch,
            scratch,
            recorded,
        );
        adam_step(adam, t, seed.params, &scratch.grads, seed.m, seed.v);
        loss
    })
}

/// One network of `S` seeds as `[S, P]` flat parameters with their Adam
/// moments: the CPU's source of truth for a network that trains fused.
#[derive(Clone, Debug)]
pub struct FlatNet {
    pub layout: Layout,
    /// Written by [`FlatNet::step`], or by a caller that then calls
    /// [`FlatNet::forget_packs`].
    pub params: Vec<f32>,
    pub m: Vec<f32>,
    pub v: Vec<f32>,
    /// Each seed's weights packed for bf16 forward passes.
    packs: Vec<PackCache>,
}

impl FlatNet {
    /// The flat state of a dfdx network and its moments.
    pub fn new(net: &Mlp, moments: &MlpMoments, precision: Precision) -> FlatNet {
        let layout = Layout::new(&net.dims()).with_precision(precision);
        let n = net.n_seeds();
        let saved = moments.save();
        // `MlpMoments::save` lists (m, v) per weight tensor, then per bias tensor.
        let m: Vec<Vec<f32>> = saved.iter().step_by(2).cloned().collect();
        let v: Vec<Vec<f32>> = saved.iter().skip(1).step_by(2).cloned().collect();
        FlatNet {
            params: flatten(&layout, n, &net.save()),
            m: flatten(&layout, n, &m),
            v: flatten(&layout, n, &v),
            layout,
            packs: (0..n).map(|_| PackCache::default()).collect(),
        }
    }

    /// Multiplies at `precision` from now on.
    pub fn set_precision(&mut self, precision: Precision) {
        self.layout.precision = precision;
        self.forget_packs();
    }

    /// Seed `s`'s packed weights, made now if the parameters changed since.
    pub fn packs(&self, s: usize) -> std::sync::Arc<Packs> {
        self.packs[s].get(&self.layout, &self.params[self.seed(s)])
    }

    /// Forgets the packed weights (the parameters were written).
    pub fn forget_packs(&mut self) {
        self.packs.iter_mut().for_each(PackCache::clear);
    }

    /// [`predict`] on every seed, with the weights packed once per
    /// parameter values.
    pub fn predict(
        &self,
        activation: Activation,
        x: &[f32],
        per_seed: usize,
        record: Option<&mut Recorded>,
    ) -> Vec<f32> {
        let packs: Vec<_> = (0..self.n_seeds()).map(|s| self.packs(s)).collect();
        let packs: Vec<&Packs> = packs.iter().map(|p| &**p).collect();
        let (layout, params) = (&self.layout, &self.params);
        predict_packed(
            layout,
            params,
            Some(&packs),
            activation,
            x,
            per_seed,
            record,
        )
    }

    pub fn n_seeds(&self) -> usize {
        self.params.len() / self.layout.n_params
    }

    /// Seed `s`'s range in `params`, `m` and `v`.
    pub fn seed(&self, s: usize) -> std::ops::Range<usize> {
        let p = self.layout.n_params;
        s * p..(s + 1) * p
    }

    /// The parameters per tensor, in [`Mlp::save`]'s order.
    pub fn tensors(&self) -> Vec<Vec<f32>> {
        unflatten(&self.layout, self.n_seeds(), &self.params)
    }

    /// The Adam moments per tensor, in [`MlpMoments::save`]'s order.
    pub fn moments(&self) -> Vec<Vec<f32>> {
        let m = unflatten(&self.layout, self.n_seeds(), &self.m);
        let v = unflatten(&self.layout, self.n_seeds(), &self.v);
        m.into_iter().zip(v).flat_map(|(m, v)| [m, v]).collect()
    }

    /// One Adam step of seed `s` from its gradient.
    pub fn step(&mut self, s: usize, cfg: &AdamConfig, t: u64, grads: &[f32]) {
        let r = self.seed(s);
        let (params, m, v) = (
            &mut self.params[r.clone()],
            &mut self.m[r.clone()],
            &mut self.v[r],
        );
        adam_step(cfg, t, params, grads, m, v);
        self.packs[s].clear();
    }
}

/// The inverse of [`flatten`].
pub fn unflatten(layout: &Layout, n_seeds: usize, flat: &[f32]) -> Vec<Vec<f32>> {
    let layers = layout.layers();
    let mut tensors = vec![Vec::new(); 2 * layers];
    for s in 0..n_seeds {
        let at = s * layout.n_params;
        for l in 0..layers {
            let (w, b) = layout.ranges(l);
            tensors[l].extend_from_slice(&flat[at + w.start..at + w.end]);
            tensors[layers + l].extend_from_slice(&flat[at + b.start..at + b.end]);
        }
    }
    tensors
}
