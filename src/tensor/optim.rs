//! Optimizers on seed-batched parameters.
//!
//! [`AdamConfig::young`] is the reference's Adam (young2022 spec §2): moments with
//! bias correction from a step counter that the Q and model optimizers may
//! share, and decoupled weight decay `x -= wd * x` that is not scaled by the
//! step size and applies to biases too.

use dfdx::prelude::*;

use crate::tensor::mlp::{load_into, Mlp};
use crate::tensor::Dev;

#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize)]
pub struct AdamConfig {
    pub lr: f64,
    pub b1: f64,
    pub b2: f64,
    pub eps: f64,
    pub weight_decay: f64,
}

impl AdamConfig {
    /// b1 0.9, b2 0.99, eps 1e-5, wd 1e-6 (young2022 spec §2).
    pub fn young(lr: f64) -> AdamConfig {
        AdamConfig {
            lr,
            b1: 0.9,
            b2: 0.99,
            eps: 1e-5,
            weight_decay: 1e-6,
        }
    }
}

/// First and second moments of one parameter tensor.
#[derive(Clone, Debug)]
pub struct Moments<S: Shape> {
    m: Tensor<S, f32, Dev>,
    v: Tensor<S, f32, Dev>,
}

impl<S: Shape> Moments<S> {
    pub fn zeros(param: &Tensor<S, f32, Dev>) -> Moments<S> {
        let dev = param.device().clone();
        Moments {
            m: dev.zeros_like(param.shape()),
            v: dev.zeros_like(param.shape()),
        }
    }

    /// One Adam step of `param` with gradient `g`; `t` is the 0-based step counter.
    pub fn step(
        &mut self,
        cfg: &AdamConfig,
        t: u64,
        param: &mut Tensor<S, f32, Dev>,
        g: &Tensor<S, f32, Dev>,
    ) {
        self.m.axpy(cfg.b1, g, 1.0 - cfg.b1);
        self.v.axpy(cfg.b2, &g.clone().square(), 1.0 - cfg.b2);
        let bc1 = 1.0 - cfg.b1.powi(t as i32 + 1);
        let bc2 = 1.0 - cfg.b2.powi(t as i32 + 1);
        let denom = (self.v.clone() * (1.0 / bc2) as f32).sqrt() + cfg.eps as f32;
        let update = self.m.clone() / denom;
        param.axpy(1.0 - cfg.weight_decay, &update, -cfg.lr / bc1);
    }
}

/// The Adam moments of every parameter of an [`Mlp`].
#[derive(Clone, Debug)]
pub struct MlpMoments {
    pub weights: Vec<Moments<(usize, usize, usize)>>,
    pub biases: Vec<Moments<(usize, usize)>>,
}

impl MlpMoments {
    pub fn zeros(net: &Mlp) -> MlpMoments {
        MlpMoments {
            weights: net.weights.iter().map(Moments::zeros).collect(),
            biases: net.biases.iter().map(Moments::zeros).collect(),
        }
    }

    /// Both moments of every tensor, for a checkpoint.
    pub fn save(&self) -> Vec<Vec<f32>> {
        let w = self
            .weights
            .iter()
            .flat_map(|m| [m.m.as_vec(), m.v.as_vec()]);
        w.chain(
            self.biases
                .iter()
                .flat_map(|m| [m.m.as_vec(), m.v.as_vec()]),
        )
        .collect()
    }

    /// Puts back [`MlpMoments::save`]'s values.
    pub fn load(&mut self, values: &[Vec<f32>]) -> Result<(), String> {
        let n = 2 * (self.weights.len() + self.biases.len());
        if values.len() != n {
            return Err(format!(
                "{} moment tensors saved, expected {n}",
                values.len()
            ));
        }
        let mut values = values.iter();
        let mut next = || values.next().expect("counted above");
        for m in &mut self.weights {
            load_into(&mut m.m, next())?;
            load_into(&mut m.v, next())?;
        }
        for m in &mut self.biases {
            load_into(&mut m.m, next())?;
            load_into(&mut m.v, next())?;
        }
        Ok(())
    }

    /// One Adam step of every parameter of `net` from `grads`.
    pub fn step(&mut self, cfg: &AdamConfig, t: u64, net: &mut Mlp, grads: &Gradients<f32, Dev>) {
        for (w, m) in net.weights.iter_mut().zip(&mut self.weights) {
            let g = grads.get(&*w);
            m.step(cfg, t, w, &g);
        }
        for (b, m) in net.biases.iter_mut().zip(&mut self.biases) {
            let g = grads.get(&*b);
            m.step(cfg, t, b, &g);
        }
    }
}
