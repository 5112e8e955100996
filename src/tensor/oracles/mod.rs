//! Test oracles: taped dfdx references of computations the runtime writes
//! out by hand (TRPO's surrogate gradient, Jacobian-vector and
//! Fisher-vector products; SLBO's model losses and clipped Adam). Nothing in
//! the library uses them; they are compiled only with the `test-oracles`
//! feature, which the crate's tests turn on (a dev-dependency on itself), so
//! no build a user runs contains them.

pub mod slbo;
pub mod trpo;
