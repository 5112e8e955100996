//! What an experiment will cost: useful FLOPs of its gradient updates and the
//! memory its replay buffers and parameters take, from the inferred shapes.
//! An estimate for planning (`mbrl check --cost`), not a measurement.

use crate::check::{Cell, CheckedExperiment, Net};

/// The cost of one cell for one seed.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Cost {
    /// Useful floating-point operations of all updates (forward, backward, targets, rollouts).
    pub flops: f64,
    /// Bytes of replay storage and parameters with optimizer state.
    pub bytes: f64,
}

impl std::ops::Add for Cost {
    type Output = Cost;
    fn add(self, o: Cost) -> Cost {
        Cost {
            flops: self.flops + o.flops,
            bytes: self.bytes + o.bytes,
        }
    }
}

impl CheckedExperiment {
    /// Total over cells and seeds; memory counts the largest cell (cells run one at a time).
    pub fn cost(&self) -> Cost {
        let per_cell: Vec<Cost> = self.cells.iter().map(cell_cost).collect();
        let flops = per_cell.iter().map(|c| c.flops).sum::<f64>() * self.seeds as f64;
        let bytes = per_cell.iter().map(|c| c.bytes).fold(0.0, f64::max) * self.seeds as f64;
        Cost { flops, bytes }
    }
}

fn macs(nets: &[Net], pick: impl Fn(&Net) -> bool) -> f64 {
    nets.iter()
        .filter(|n| pick(n))
        .map(|n| n.macs() as f64)
        .sum()
}

/// One seed of one cell.
pub fn cell_cost(cell: &Cell) -> Cost {
    let a = &cell.agent;
    let int = |f: &str| a.int(f).unwrap_or(0).max(0) as f64;
    let params: f64 = cell.nets.iter().map(|n| n.params() as f64).sum();
    // Parameters, two Adam moments and a gradient, in f32.
    let param_bytes = params * 4.0 * 4.0;
    match a.ctor.name {
        "dqn" => {
            let q = macs(&cell.nets, |n| n.role == "Q");
            let model = macs(&cell.nets, |n| !n.role.starts_with('Q'));
            let planner = a.obj("planner");
            let (starts, length) = match planner {
                Some(p) => (
                    p.int("starts").unwrap_or(0) as f64,
                    p.int("length").unwrap_or(0) as f64,
                ),
                None => (0.0, 0.0),
            };
            let q_batch = if planner.is_some() {
                starts * length
            } else {
                int("batch")
            };
            // Q forward + backward (3x) and target forward (1x), 2 FLOPs per MAC.
            let mut per_update = 8.0 * q_batch * q;
            if planner.is_some() {
                per_update += 2.0 * starts * length * (q + model) + 6.0 * int("batch") * model;
            }
            let updates =
                (int("steps") - int("learning_starts")).max(0.0) * int("updates_per_step");
            let transition = (2 * cell.spaces.obs_dim + 3) as f64 * 4.0;
            Cost {
                flops: per_update * updates,
                bytes: int("buffer") * transition + param_bytes,
            }
        }
        "slbo" => {
            let dynamics = macs(&cell.nets, |n| n.role == "dynamics");
            let policy = macs(&cell.nets, |n| n.role == "policy");
            let value = macs(&cell.nets, |n| n.role == "value");
            let virtual_steps = a
                .obj("planner")
                .map(|p| (p.int("envs").unwrap_or(0) * p.int("length").unwrap_or(0)) as f64)
                .unwrap_or(0.0);
            let iters = int("stages") * int("iters");
            let model_updates = iters * int("model_iters") * 6.0 * int("model_batch") * dynamics;
            let rollouts =
                iters * int("policy_iters") * virtual_steps * 2.0 * (dynamics + policy + value);
            let value_fits = iters * int("policy_iters") * virtual_steps * 5.0 * 6.0 * value;
            let transition =
                (2 * cell.spaces.obs_dim + cell.spaces.action.input_dim() + 3) as f64 * 4.0;
            Cost {
                flops: model_updates + rollouts + value_fits,
                bytes: int("buffer") * transition + param_bytes,
            }
        }
        _ => Cost {
            flops: 0.0,
            bytes: param_bytes,
        },
    }
}
