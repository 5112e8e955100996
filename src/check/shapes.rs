//! Shape inference: observation and action sizes flow from the env through
//! every network an agent builds.

use crate::check::value::Obj;
use crate::schema::{ActionSpace, EnvSpaces};

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

/// The networks of an agent in an env. Agents whose action space does not
/// match (reported elsewhere) get no networks.
pub fn infer(agent: &Obj, spaces: &EnvSpaces) -> Vec<Net> {
    match agent.ctor.name {
        "dqn" => dqn_nets(agent, spaces),
        "slbo" => slbo_nets(agent, spaces),
        _ => Vec::new(),
    }
}

/// The size of the representation Q sees: the obs, or a latent model's features.
pub fn q_input(agent: &Obj, spaces: &EnvSpaces) -> usize {
    match agent.obj("model") {
        Some(model) if model.ctor.name == "latent_model" => latent_dim(model),
        _ => spaces.obs_dim,
    }
}

pub fn latent_dim(model: &Obj) -> usize {
    let features = model.int("features").unwrap_or(32).max(0) as usize;
    match model.enum_("latent") {
        Some("categorical") => features * model.int("width").unwrap_or(32).max(0) as usize,
        _ => features,
    }
}

fn dqn_nets(agent: &Obj, spaces: &EnvSpaces) -> Vec<Net> {
    let ActionSpace::Discrete(n_actions) = spaces.action else {
        return Vec::new();
    };
    let mut nets = Vec::new();
    if let Some(q) = agent.obj("q") {
        let input = q_input(agent, spaces);
        nets.push(net("Q", q, input, n_actions));
        if agent.bool("use_target") != Some(false) {
            nets.push(net("Q target", q, input, n_actions));
        }
    }
    let Some(model) = agent.obj("model") else {
        return nets;
    };
    let obs = spaces.obs_dim;
    match model.ctor.name {
        "factored_model" => {
            nets.push(net("reward head", model, obs + n_actions, 1));
            nets.push(net("continuation head", model, obs + n_actions, 1));
            nets.push(net("next-obs head", model, obs + n_actions, obs));
        }
        "latent_model" => {
            let phi = latent_dim(model);
            let dist = match model.enum_("latent") {
                Some("gaussian") => 2 * phi,
                _ => phi,
            };
            nets.push(net("encoder", model, obs, dist));
            nets.push(net("transition", model, phi + n_actions, dist));
            nets.push(net("reward head", model, phi + n_actions, 1));
            nets.push(net("continuation head", model, phi + n_actions, 1));
            nets.push(net("decoder", model, phi, obs));
        }
        "dynamics" => nets.push(net("dynamics", model, obs + n_actions, obs)),
        _ => (),
    }
    nets
}

fn slbo_nets(agent: &Obj, spaces: &EnvSpaces) -> Vec<Net> {
    let ActionSpace::Continuous(act) = spaces.action else {
        return Vec::new();
    };
    let obs = spaces.obs_dim;
    let mut nets = Vec::new();
    if let Some(policy) = agent.obj("policy") {
        let mut p = net("policy", policy, obs, act);
        p.extra_params = act;
        nets.push(p);
    }
    if let Some(value) = agent.obj("value") {
        nets.push(net("value", value, obs, 1));
    }
    if let Some(model) = agent.obj("model") {
        nets.push(net("dynamics", model, obs + act, obs));
    }
    nets
}

fn net(role: &'static str, model: &Obj, input: usize, output: usize) -> Net {
    let hidden = model.ints("hidden").unwrap_or_default();
    Net {
        role,
        model: model.label.clone(),
        input,
        hidden: hidden.iter().map(|h| (*h).max(0) as usize).collect(),
        output,
        activation: model.enum_("activation").unwrap_or("elu").to_string(),
        extra_params: 0,
    }
}
