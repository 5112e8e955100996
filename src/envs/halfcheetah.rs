//! SLBO's rllab HalfCheetah on MuJoCo (vaslbo spec §6.2), behind the `mujoco`
//! feature.
//!
//! Observation (24): `qpos (9), qvel (9), com(torso) (3), comvel(torso) (3)`,
//! read after `mj_forward` following the step, as rllab does. Reward:
//! `comvel_x(s') - 0.05 |clip(a, -1, 1)|^2`. No termination; the runner's
//! time limit ends episodes. Reset: `qpos0 + N(0, 0.01^2)`, `qvel0 + N(0, 0.1^2)`.
//!
//! Differences from the reference, all from the model file: the model is
//! gymnasium's `half_cheetah.xml` (timestep 0.01) stepped once per env step
//! (rllab: dt 0.01 x 1), not rllab's own XML; com and comvel are the torso
//! subtree's centre of mass and its linear velocity (`subtree_com`,
//! `subtree_linvel`) in MuJoCo 3.17 rather than MuJoCo 1.31's
//! `com_subtree` / `body_comvels`.

use std::sync::Arc;

use mujoco_rs::prelude::*;

use crate::envs::{Actions, Layout, Unavailable};
use crate::schema::{ActionSpace, EnvSpaces, ObsKind};
use crate::seeds::Stream;

const XML: &str = include_str!("assets/half_cheetah.xml");
pub const OBS_DIM: usize = 24;
pub const ACT_DIM: usize = 6;

#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct State {
    pub qpos: Vec<f64>,
    pub qvel: Vec<f64>,
}

pub struct HalfCheetah {
    horizon: usize,
    torso: usize,
    data: Vec<MjData<Arc<MjModel>>>,
    rngs: Vec<Stream>,
}

impl HalfCheetah {
    pub fn new(horizon: usize, layout: &Layout) -> Result<HalfCheetah, Unavailable> {
        let mut model = MjModel::from_xml_string(XML)
            .map_err(|e| Unavailable(format!("cannot load half_cheetah.xml: {e:?}")))?;
        // The XML's deprecated `settotalmass="14"`, applied after compiling.
        model.set_totalmass(14.0);
        MjData::new(&mut model).set_const();
        let torso = model
            .name_to_id(MjtObjBase::mjOBJ_BODY, "torso")
            .ok_or_else(|| Unavailable("half_cheetah.xml has no `torso` body".into()))?;
        let model = Arc::new(model);
        let rngs = layout.streams();
        let data = rngs.iter().map(|_| MjData::new(model.clone())).collect();
        let mut env = HalfCheetah {
            horizon,
            torso,
            data,
            rngs,
        };
        for i in 0..env.data.len() {
            env.reset(i);
        }
        Ok(env)
    }

    pub fn spaces(&self) -> EnvSpaces {
        EnvSpaces {
            obs_dim: OBS_DIM,
            obs: ObsKind::Real,
            action: ActionSpace::Continuous(ACT_DIM),
            episodic: false,
            horizon: Some(self.horizon),
        }
    }

    pub fn len(&self) -> usize {
        self.data.len()
    }

    pub fn reset(&mut self, i: usize) {
        let rng = &mut self.rngs[i];
        let data = &mut self.data[i];
        data.reset();
        for q in data.qpos_mut() {
            *q += 0.01 * rng.normal();
        }
        for v in data.qvel_mut() {
            *v += 0.1 * rng.normal();
        }
        settle(data);
    }

    pub fn step(&mut self, actions: Actions, rewards: &mut [f32], terminals: &mut [bool]) {
        let Actions::Continuous(actions) = actions else {
            unreachable!("HalfCheetah has continuous actions")
        };
        for (i, data) in self.data.iter_mut().enumerate() {
            let a = &actions[i * ACT_DIM..(i + 1) * ACT_DIM];
            for (c, x) in data.ctrl_mut().iter_mut().zip(a) {
                *c = x.clamp(-1.0, 1.0) as f64;
            }
            data.step();
            settle(data);
            let comvel_x = data.subtree_linvel()[self.torso][0];
            let ctrl_cost: f64 = a.iter().map(|x| (x.clamp(-1.0, 1.0) as f64).powi(2)).sum();
            rewards[i] = (comvel_x - 0.05 * ctrl_cost) as f32;
            terminals[i] = false;
        }
    }

    pub fn observe(&self, i: usize, out: &mut [f32]) {
        let data = &self.data[i];
        let parts = [
            data.qpos(),
            data.qvel(),
            &data.subtree_com()[self.torso][..],
            &data.subtree_linvel()[self.torso][..],
        ];
        for (o, x) in out.iter_mut().zip(parts.into_iter().flatten()) {
            *o = *x as f32;
        }
    }

    pub fn state(&self, i: usize) -> State {
        State {
            qpos: self.data[i].qpos().to_vec(),
            qvel: self.data[i].qvel().to_vec(),
        }
    }

    /// The instances' random streams (for checkpoints).
    pub fn streams_mut(&mut self) -> &mut Vec<Stream> {
        &mut self.rngs
    }

    pub fn set_state(&mut self, i: usize, state: &State) {
        let data = &mut self.data[i];
        data.qpos_mut().copy_from_slice(&state.qpos);
        data.qvel_mut().copy_from_slice(&state.qvel);
        settle(data);
    }
}

/// Recomputes positions, com and com velocity for the current qpos/qvel.
fn settle(data: &mut MjData<Arc<MjModel>>) {
    data.forward();
    data.subtree_vel();
}

/// The known reward for model rollouts: `s'[21] - 0.05 |clip(a)|^2`.
pub fn reward(_obs: &[f32], action: &[f32], next_obs: &[f32]) -> f32 {
    let ctrl: f32 = action.iter().map(|x| x.clamp(-1.0, 1.0).powi(2)).sum();
    next_obs[21] - 0.05 * ctrl
}
