//! Shape inference: observation and action sizes flow from the env through
//! every network an agent builds.

use crate::check::value::Obj;

/// One network of a cell with its inferred shape (per seed).
#[derive(Clone, Debug, PartialEq)]
pub struct Net {
    /// What the network does in the agent: `Q`, `reward head`, `policy`, ...
    pub role: &'static str,
    /// The model block it comes from (`q_net`, `simple`).
    pub model: String,
    pub input: usize,
    pub hidden: Vec<usize>,
    pub output: usize,
    pub activation: String,
    /// Parameters beyond the layers (a policy's log-std).
    pub extra_params: usize,
    /// The arithmetic of its products: its agent's `precision` (`fp32`,
    /// `bf16`).
    pub precision: String,
}

impl Net {
    /// Weights and biases of every layer, plus extra parameters.
    pub fn params(&self) -> usize {
        let mut dims = vec![self.input];
        dims.extend(&self.hidden);
        dims.push(self.output);
        let layers: usize = dims.windows(2).map(|w| (w[0] + 1) * w[1]).sum();
        layers + self.extra_params
    }

    /// Multiply-adds of one forward pass for one sample.
    pub fn macs(&self) -> usize {
        let mut dims = vec![self.input];
        dims.extend(&self.hidden);
        dims.push(self.output);
        dims.windows(2).map(|w| w[0] * w[1]).sum()
    }
}

pub(crate) fn net(role: &'static str, model: &Obj, input: usize, output: usize) -> Net {
    let hidden = model.ints("hidden").unwrap_or_default();
    Net {
        role,
        model: model.label.clone(),
        input,
        hidden: hidden.iter().map(|h| (*h).max(0) as usize).collect(),
        output,
        activation: model.enum_("activation").unwrap_or("elu").to_string(),
        extra_params: 0,
        precision: "fp32".into(),
    }
}

/// `nets` multiplying at their agent's `precision`.
pub(crate) fn at_agent_precision(agent: &Obj, mut nets: Vec<Net>) -> Vec<Net> {
    let precision = agent.enum_("precision").unwrap_or("fp32");
    for net in &mut nets {
        net.precision = precision.to_string();
    }
    nets
}
