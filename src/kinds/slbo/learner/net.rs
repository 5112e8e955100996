//! One seed's network as flat parameters with its own Adam state (TF
//! defaults, an optional L2 regulariser and global-norm clipping, vaslbo spec
//! §2.1), on the fused CPU kernels: no-grad passes, forward passes that keep
//! their activations, and backward passes with the input's gradient.

use crate::kinds::slbo::{NetPlan, SlboAdam};
use crate::tensor::fused::{self, Layout};
use crate::tensor::kernels::Activation;
use crate::tensor::mlp::{Mlp, NetId};
use crate::tensor::optim::AdamConfig;
use crate::tensor::Dev;

#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Net {
    pub layout: Layout,
    pub activation: Activation,
    /// Written only through [`Net::params_mut`] and [`Net::adam`], which
    /// forget `packs`.
    params: Vec<f32>,
    /// The bf16 weights of its forward passes, packed once per parameter
    /// values (empty for fp32).
    #[serde(skip)]
    packs: fused::PackCache,
    m: Vec<f32>,
    v: Vec<f32>,
    /// Adam steps taken.
    t: u64,
}

/// A forward pass kept for its backward pass.
#[derive(Default)]
pub struct Pass {
    pub acts: Vec<Vec<f32>>,
}

impl Pass {
    pub fn out(&self) -> &[f32] {
        self.acts.last().expect("a network has layers")
    }
}

impl Net {
    /// Seed `seed`'s network `id`, initialised from its own stream as the
    /// dfdx network of the same plan would be.
    pub fn new(dev: &Dev, root: u64, seed: u64, id: NetId, plan: &NetPlan) -> Net {
        let mlp = Mlp::new(
            dev,
            root,
            &[seed],
            id,
            &plan.dims,
            plan.activation,
            plan.init,
        );
        let layout = Layout::new(&plan.dims).with_precision(plan.precision);
        let n = layout.n_params;
        Net {
            params: fused::flatten(&layout, 1, &mlp.save()),
            packs: fused::PackCache::default(),
            layout,
            activation: plan.activation,
            m: vec![0.0; n],
            v: vec![0.0; n],
            t: 0,
        }
    }

    pub fn n_params(&self) -> usize {
        self.layout.n_params
    }

    pub fn input_dim(&self) -> usize {
        self.layout.dims[0]
    }

    pub fn output_dim(&self) -> usize {
        *self.layout.dims.last().expect("a network has layers")
    }

    pub fn params(&self) -> &[f32] {
        &self.params
    }

    /// Multiplies at `precision` (a restored network takes its plan's: a
    /// checkpoint does not hold it).
    pub fn set_precision(&mut self, precision: crate::tensor::Precision) {
        self.layout.precision = precision;
        self.packs.clear();
    }

    /// The parameters to write (the packed weights are made again after).
    pub fn params_mut(&mut self) -> &mut Vec<f32> {
        self.packs.clear();
        &mut self.params
    }

    /// The outputs on `rows` inputs, no gradient.
    pub fn predict(&self, x: &[f32], rows: usize) -> Vec<f32> {
        let packs = self.packs.get(&self.layout, &self.params);
        fused::predict_packed(
            &self.layout,
            &self.params,
            Some(&[&*packs]),
            self.activation,
            x,
            rows,
            None,
        )
    }

    /// A forward pass on `rows` inputs that keeps every layer's output.
    pub fn forward(&self, x: &[f32], rows: usize, pass: &mut Pass) {
        let packs = self.packs.get(&self.layout, &self.params);
        fused::forward_packed(
            &self.layout,
            &self.params,
            Some(&packs),
            self.activation,
            x,
            rows,
            &mut pass.acts,
        );
    }

    /// The backward pass of [`Net::forward`] on `x` from `d_out` (consumed):
    /// adds the parameters' gradient to `grads` and, with `d_x`, writes the
    /// input's gradient.
    pub fn backward(
        &self,
        x: &[f32],
        pass: &Pass,
        d_out: &mut Vec<f32>,
        grads: &mut [f32],
        d_x: Option<&mut Vec<f32>>,
    ) {
        let mut own = vec![0f32; self.n_params()];
        let mut tmp = Vec::new();
        fused::backward(
            &self.layout,
            &self.params,
            self.activation,
            x,
            &pass.acts,
            d_out,
            &mut tmp,
            &mut own,
            d_x,
        );
        grads.iter_mut().zip(&own).for_each(|(g, o)| *g += o);
    }

    /// `l2 * sum |theta|^2 / 2`.
    pub fn l2_penalty(&self, l2: f64) -> f64 {
        0.5 * l2 * self.params.iter().map(|x| (*x as f64).powi(2)).sum::<f64>()
    }

    /// One Adam step from the loss's gradient `grads` (the L2 regulariser's
    /// gradient is added, then the whole is clipped to the global norm).
    pub fn adam(&mut self, grads: &mut [f32], opt: &SlboAdam) {
        if opt.l2 != 0.0 {
            let l2 = opt.l2 as f32;
            grads
                .iter_mut()
                .zip(&self.params)
                .for_each(|(g, x)| *g += l2 * x);
        }
        if let Some(clip) = opt.grad_clip {
            clip_by_global_norm(grads, clip);
        }
        let cfg = AdamConfig {
            lr: opt.lr,
            b1: opt.b1,
            b2: opt.b2,
            eps: opt.eps,
            weight_decay: 0.0,
        };
        self.packs.clear();
        fused::adam_step(
            &cfg,
            self.t,
            &mut self.params,
            grads,
            &mut self.m,
            &mut self.v,
        );
        self.t += 1;
    }
}

/// Scales `grads` by `min(1, clip / |grads|)`, as `tf.clip_by_global_norm` does.
pub fn clip_by_global_norm(grads: &mut [f32], clip: f64) {
    let norm = grads
        .iter()
        .map(|g| (*g as f64).powi(2))
        .sum::<f64>()
        .sqrt();
    if norm > clip {
        let scale = (clip / norm) as f32;
        grads.iter_mut().for_each(|g| *g *= scale);
    }
}
