//! The design's networks rebuilt with tch-rs, weights read from the exported .safetensors: the
//! navigation DQNAgent (fc1..fc4) and the HRI heads ActionClassifier (fc1, fc2 -> softmax) and
//! ParamExtractor (fc1..fc3 -> sigmoid). Which one a file holds is its name,
//! exports/<model>/<model>.safetensors. The names fc1..fcN are the contract with
//! embodied_lib/models/navigation.py and embodied_lib/models/hri.py.
use std::path::Path;

use runner_common::{run_main, Model, Result};
use tch::{nn, Device, Kind, Tensor};

#[derive(Clone, Copy)]
enum Output {
    Identity,
    Softmax,
    Sigmoid,
}

/// (model name, number of layers, output activation); ReLU between layers, dropout off (eval).
const ARCHITECTURES: [(&str, usize, Output); 3] = [
    ("navigation", 4, Output::Identity),
    ("action_classifier", 2, Output::Softmax),
    ("param_extractor", 3, Output::Sigmoid),
];

struct DesignNet {
    _vs: nn::VarStore,
    fc: Vec<nn::Linear>,
    output: Output,
    input_size: i64,
}

impl DesignNet {
    fn forward(&self, xs: &Tensor) -> Tensor {
        let mut x = xs.shallow_clone();
        for (i, layer) in self.fc.iter().enumerate() {
            x = x.apply(layer);
            if i + 1 < self.fc.len() {
                x = x.relu(); // dropout (training only) would follow fc1/fc2: inactive here
            }
        }
        match self.output {
            Output::Identity => x,
            Output::Softmax => x.softmax(-1, Kind::Float),
            Output::Sigmoid => x.sigmoid(),
        }
    }
}

fn load(path: &str) -> Result<Box<dyn Model>> {
    runner_common::read_file(path, "model file")?;
    let name = Path::new(path).file_name().and_then(|f| f.to_str()).unwrap_or("").split('.').next().unwrap_or("").to_string();
    let (_, layers, output) = *ARCHITECTURES.iter().find(|(n, _, _)| *n == name).ok_or_else(|| {
        format!("{path}: unknown model '{name}' (file names say the network: navigation, action_classifier, param_extractor)")
    })?;
    let named = Tensor::read_safetensors(path)
        .map_err(|e| format!("cannot read {path} as safetensors: {}", e.to_string().lines().next().unwrap_or("")))?;
    let shape_of = |key: &str| {
        named.iter().find(|(n, _)| n == key).map(|(_, t)| t.size())
            .ok_or_else(|| format!("{path} has no tensor {key} (not a {name} export?)"))
    };
    let mut widths = vec![shape_of("fc1.weight")?[1]];
    for i in 1..=layers {
        widths.push(shape_of(&format!("fc{i}.weight"))?[0]);
    }
    let vs = nn::VarStore::new(Device::Cpu);
    let fc = (0..layers)
        .map(|i| nn::linear(vs.root() / format!("fc{}", i + 1), widths[i], widths[i + 1], Default::default()))
        .collect();
    if named.len() != vs.variables().len() {
        return Err(format!("{path} has {} tensors, {name} has {}", named.len(), vs.variables().len()));
    }
    let _no_grad = tch::no_grad_guard(); // copying into parameters is not a training step
    vs.read_safetensors(path).map_err(|e| format!("cannot load {path} into {name}: {e}"))?;
    Ok(Box::new(DesignNet { _vs: vs, fc, output, input_size: widths[0] }))
}

impl Model for DesignNet {
    fn input_sizes(&self) -> Vec<usize> {
        vec![self.input_size as usize]
    }

    fn run(&mut self, inputs: &[&[f32]]) -> Result<Vec<Vec<f32>>> {
        let _guard = tch::no_grad_guard();
        let x = Tensor::from_slice(inputs[0]).reshape([1, self.input_size]);
        let y = self.forward(&x).to_kind(Kind::Float).flatten(0, -1);
        Vec::<f32>::try_from(&y).map(|v| vec![v]).map_err(|e| e.to_string())
    }
}

fn main() {
    tch::set_num_threads(1); // batch-1 latency: one thread avoids pool hand-off for small MLPs
    std::process::exit(run_main(
        "tch",
        "Run a design network (navigation DQNAgent, HRI heads) rebuilt in tch-rs, weights from <model>.safetensors.",
        load,
    ));
}
