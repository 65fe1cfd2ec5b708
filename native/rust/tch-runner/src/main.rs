//! The navigation DQNAgent rebuilt with tch-rs, weights read from the exported .safetensors.
//! The names fc1..fc4 are the contract with embodied_lib/models/navigation.py.
use runner_common::{run_main, Model, Result};
use tch::{nn, Device, Kind, Tensor};

struct DqnAgent {
    fc1: nn::Linear,
    fc2: nn::Linear,
    fc3: nn::Linear,
    fc4: nn::Linear,
}

impl DqnAgent {
    fn new(p: &nn::Path, state_size: i64, action_size: i64) -> Self {
        Self {
            fc1: nn::linear(p / "fc1", state_size, 256, Default::default()),
            fc2: nn::linear(p / "fc2", 256, 256, Default::default()),
            fc3: nn::linear(p / "fc3", 256, 256, Default::default()),
            fc4: nn::linear(p / "fc4", 256, action_size, Default::default()),
        }
    }

    /// Inference only: dropout (p = 0.2 after fc1 and fc2) is inactive, as in eval().
    fn forward(&self, xs: &Tensor) -> Tensor {
        xs.apply(&self.fc1).relu().dropout(0.2, false)
            .apply(&self.fc2).relu().dropout(0.2, false)
            .apply(&self.fc3).relu()
            .apply(&self.fc4)
    }
}

struct TchModel {
    _vs: nn::VarStore,
    agent: DqnAgent,
    state_size: i64,
}

fn load(path: &str) -> Result<Box<dyn Model>> {
    runner_common::read_file(path, "model file")?;
    let named = Tensor::read_safetensors(path)
        .map_err(|e| format!("cannot read {path} as safetensors: {}", e.to_string().lines().next().unwrap_or("")))?;
    let shape_of = |key: &str| {
        named.iter().find(|(n, _)| n == key).map(|(_, t)| t.size())
            .ok_or_else(|| format!("{path} has no tensor {key} (not a DQNAgent export?)"))
    };
    let (fc1, fc4) = (shape_of("fc1.weight")?, shape_of("fc4.weight")?);
    let vs = nn::VarStore::new(Device::Cpu);
    let agent = DqnAgent::new(&vs.root(), fc1[1], fc4[0]);
    if named.len() != vs.variables().len() {
        return Err(format!("{path} has {} tensors, DQNAgent has {}", named.len(), vs.variables().len()));
    }
    let _no_grad = tch::no_grad_guard(); // copying into parameters is not a training step
    vs.read_safetensors(path).map_err(|e| format!("cannot load {path} into DQNAgent: {e}"))?;
    Ok(Box::new(TchModel { _vs: vs, agent, state_size: fc1[1] }))
}

impl Model for TchModel {
    fn input_sizes(&self) -> Vec<usize> {
        vec![self.state_size as usize]
    }

    fn run(&mut self, inputs: &[&[f32]]) -> Result<Vec<Vec<f32>>> {
        let _guard = tch::no_grad_guard();
        let x = Tensor::from_slice(inputs[0]).reshape([1, self.state_size]);
        let q = self.agent.forward(&x).to_kind(Kind::Float).flatten(0, -1);
        Vec::<f32>::try_from(&q).map(|v| vec![v]).map_err(|e| e.to_string())
    }
}

fn main() {
    tch::set_num_threads(1); // batch-1 latency: one thread avoids pool hand-off for a small MLP
    std::process::exit(run_main("tch", "Run the navigation DQNAgent rebuilt in tch-rs, weights from .safetensors.", load));
}
