//! SLBO's model-loss step ([`Dynamics::train_step`]) and its side of a loss
//! written as an expression: the batch, the normalizers' scales, the model
//! and the frozen V bound to the names of
//! `kinds::slbo::check::LOSS_SIGNATURE`, for [`crate::autodiff::Tape`].
//!
//! Invariants: the gradient reaches the model's parameters (through the
//! same backward pass as the built-in losses) and V's input, never V's
//! parameters; `dV` is a constant weight.

use std::any::Any;

use crate::autodiff::{Axis, Bindings, Tensor};
use crate::kinds::slbo::learner::buffer::Sequences;
use crate::kinds::slbo::learner::model::{
    input_of, inv_scale, Dynamics, ModelLosses, Norms, Step, Value,
};
use crate::kinds::slbo::learner::net::Pass;
use crate::kinds::slbo::{DynamicsPlan, SlboAdam, SlboLoss};

pub struct SlboBindings<'a> {
    pub dynamics: &'a Dynamics,
    pub plan: &'a DynamicsPlan,
    pub batch: &'a Sequences,
    pub value: &'a Value,
    pub norms: &'a Norms,
    /// The model parameters' gradient, added to by each `model` call.
    pub grads: Vec<f32>,
}

/// A model loss's step: SLBO's multi-step loss by its hand-written gradient
/// (`Dynamics::multi_step`), every other loss (MLE and the value-aware
/// built-ins through their terms, [`SlboLoss::expression`]) on the tape.
impl Dynamics {
    /// One Adam step of the model loss on `batch`; V only for value-aware losses.
    pub fn train_step(
        &mut self,
        plan: &DynamicsPlan,
        loss: &SlboLoss,
        batch: &Sequences,
        value: &Value,
        norms: &Norms,
        opt: &SlboAdam,
    ) -> ModelLosses {
        let (mut losses, mut grads) = self.loss_and_grad(plan, loss, batch, value, norms);
        losses.reg = self.net.l2_penalty(opt.l2) as f32;
        self.net.adam(&mut grads, opt);
        losses
    }

    /// The model loss on `batch` (without the regulariser) and its gradient
    /// with respect to the model's parameters.
    pub fn loss_and_grad(
        &self,
        plan: &DynamicsPlan,
        loss: &SlboLoss,
        batch: &Sequences,
        value: &Value,
        norms: &Norms,
    ) -> (ModelLosses, Vec<f32>) {
        let mut grads = vec![0f32; self.net.n_params()];
        if let SlboLoss::MultiStep { squared, mean, .. } = *loss {
            let l = self.multi_step(plan, batch, norms, squared, mean, &mut grads);
            let losses = ModelLosses {
                loss: l,
                term: l,
                reg: 0.0,
            };
            return (losses, grads);
        }
        // Every other loss is an expression on the tape (MLE and the
        // value-aware built-ins through their terms, `SlboLoss::expression`).
        let term = loss
            .expression()
            .expect("only the multi-step loss has no term");
        let mut b = SlboBindings {
            dynamics: self,
            plan,
            batch,
            value,
            norms,
            grads,
        };
        let tape = crate::autodiff::Tape::forward(&term, &b);
        tape.backward(&mut b);
        let l = tape.value();
        // A value-aware loss reports its raw term beside the weighted loss.
        let raw = match *loss {
            SlboLoss::ValueAware { coeff, .. } => l / coeff,
            _ => l,
        };
        let losses = ModelLosses {
            loss: l,
            term: raw,
            reg: 0.0,
        };
        (losses, b.grads)
    }
}

/// A V call kept for its backward pass: its network input and activations.
struct VPass {
    x: Vec<f32>,
    pass: Pass,
}

impl SlboBindings<'_> {
    fn dims(&self) -> (usize, usize, usize, usize) {
        let d = self.norms.state.mean.len();
        let a = self
            .batch
            .actions
            .first()
            .map_or(0, |x| x.len() / self.batch.rows.max(1));
        (self.batch.states.len(), self.batch.rows, d, a)
    }

    /// `d V / d x` per row of states (through V's input normalization).
    fn value_gradient(&self, states: &[f32]) -> Vec<f32> {
        let d = self.norms.state.mean.len();
        let rows = states.len() / d;
        let x = input_of(states, &self.norms.state, self.value.normalize);
        let mut pass = Pass::default();
        self.value.net.forward(&x, rows, &mut pass);
        let mut ones = vec![1f32; rows];
        let mut d_x = Vec::new();
        let mut discarded = vec![0f32; self.value.net.n_params()];
        self.value
            .net
            .backward(&x, &pass, &mut ones, &mut discarded, Some(&mut d_x));
        let inv = inv_scale(&self.norms.state, self.value.normalize);
        d_x.iter()
            .enumerate()
            .map(|(i, g)| g * inv[i % d])
            .collect()
    }
}

impl Bindings for SlboBindings<'_> {
    fn input(&self, name: &str) -> Tensor {
        let (h, b, d, a) = self.dims();
        let seq = [(Axis::Horizon, h), (Axis::Batch, b)];
        let with = |feature: (Axis, usize)| [seq[0], seq[1], feature];
        match name {
            "s" => Tensor::new(&with((Axis::State, d)), self.batch.states.concat()),
            "a" => Tensor::new(&with((Axis::Action, a)), self.batch.actions.concat()),
            "s_next" => Tensor::new(&with((Axis::State, d)), self.batch.next_states.concat()),
            "mask" => Tensor::new(&seq, self.batch.masks.concat()),
            "diff_std" => Tensor::new(
                &[(Axis::State, d)],
                self.norms
                    .diff
                    .std
                    .iter()
                    .map(|s| s.max(1e-6) as f32)
                    .collect(),
            ),
            "state_std" => Tensor::new(
                &[(Axis::State, d)],
                self.norms
                    .state
                    .std
                    .iter()
                    .map(|s| s.max(1e-8) as f32)
                    .collect(),
            ),
            other => unreachable!("check admits only the signature's inputs, not `{other}`"),
        }
    }

    fn call(&self, name: &str, args: &[&Tensor]) -> (Tensor, Box<dyn Any>) {
        let x = args[0];
        match name {
            "model" => {
                let step = self
                    .dynamics
                    .step(self.plan, &x.data, &args[1].data, self.norms);
                let out = Tensor {
                    axes: x.axes.clone(),
                    dims: x.dims.clone(),
                    data: step.next.clone(),
                };
                (out, Box::new(step))
            }
            "V" => {
                let (rows, _) = x.rows();
                let input = input_of(&x.data, &self.norms.state, self.value.normalize);
                let mut pass = Pass::default();
                self.value.net.forward(&input, rows, &mut pass);
                let out = Tensor {
                    axes: x.axes[..x.axes.len() - 1].to_vec(),
                    dims: x.dims[..x.dims.len() - 1].to_vec(),
                    data: pass.out().to_vec(),
                };
                (out, Box::new(VPass { x: input, pass }))
            }
            "dV" => {
                let out = Tensor {
                    axes: x.axes.clone(),
                    dims: x.dims.clone(),
                    data: self.value_gradient(&x.data),
                };
                (out, Box::new(()))
            }
            other => unreachable!("check admits only the signature's networks, not `{other}`"),
        }
    }

    fn call_backward(
        &mut self,
        name: &str,
        saved: &dyn Any,
        args: &[&Tensor],
        d_out: &Tensor,
        want_input: bool,
    ) -> Option<Tensor> {
        let x = args[0];
        let like = |data: Vec<f32>| Tensor {
            axes: x.axes.clone(),
            dims: x.dims.clone(),
            data,
        };
        match name {
            "model" => {
                let step: &Step = saved.downcast_ref().expect("a model pass");
                self.dynamics
                    .backward(
                        self.plan,
                        step,
                        &d_out.data,
                        self.norms,
                        &mut self.grads,
                        want_input,
                    )
                    .map(like)
            }
            "V" => {
                if !want_input {
                    return None;
                }
                let v: &VPass = saved.downcast_ref().expect("a V pass");
                let d = self.norms.state.mean.len();
                let mut d_v = d_out.data.clone();
                let mut d_x = Vec::new();
                let mut discarded = vec![0f32; self.value.net.n_params()];
                self.value
                    .net
                    .backward(&v.x, &v.pass, &mut d_v, &mut discarded, Some(&mut d_x));
                let inv = inv_scale(&self.norms.state, self.value.normalize);
                Some(like(
                    d_x.iter()
                        .enumerate()
                        .map(|(i, g)| g * inv[i % d])
                        .collect(),
                ))
            }
            _ => None,
        }
    }
}
