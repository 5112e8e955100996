//! Optimizers on seed-batched parameters.
//!
//! [`YoungAdam`] is the reference's Adam (young2022 spec §2): moments with
//! bias correction from a step counter that the Q and model optimizers may
//! share, and decoupled weight decay `x -= wd * x` that is not scaled by the
//! step size and applies to biases too.

use dfdx::prelude::*;

use crate::tensor::Dev;

#[derive(Clone, Copy, Debug, PartialEq)]
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
