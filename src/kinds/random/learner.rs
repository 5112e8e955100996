//! The random agent: uniformly random actions, nothing to learn. Its unit of
//! work is an env step it does not need to take; the driver evaluates it
//! every `eval_every` steps with fresh eval envs, which gives the level
//! every learning curve is read against.

use crate::envs::Layout;
use crate::runtime::driver::{Agent, Learner, Losses};
use crate::runtime::evaluate::{Policy, RandomPolicy};
use crate::tensor::Dev;

/// A compiled random cell: nothing to configure.
pub struct Random;

impl Agent for Random {
    type Learner = RandomLearner;

    fn build(&self, _seeds: &[u64], _dev: &Dev) -> RandomLearner {
        RandomLearner
    }
}

/// The random agent of a group of seeds: it keeps no state.
pub struct RandomLearner;

impl Learner for RandomLearner {
    type State = ();

    fn advance(&mut self, _unit: u64, _losses: &mut Losses) {}

    fn policy<'a>(&'a self, layout: &Layout) -> Box<dyn Policy + 'a> {
        Box::new(RandomPolicy::new(layout))
    }

    fn save(&mut self) {}

    fn restore(&mut self, _state: ()) -> Result<(), String> {
        Ok(())
    }
}
