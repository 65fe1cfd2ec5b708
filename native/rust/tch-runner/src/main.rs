//! The tch-rs twin: the network rebuilt from the layer graph the manifest carries ("architecture",
//! written by embodied_lib/architecture.py), weights read from the exported .safetensors by the graph's
//! names. It builds every model that has such a graph: the navigation DQNAgent, the HRI heads and the
//! manipulation ManipulationNet (average pool, normalisation, conv + batch norm + ReLU blocks, spatial
//! softmax, state MLP, head). Nothing about a model is written here; a layer it does not know is refused
//! by name.
use std::collections::{HashMap, HashSet};

use runner_common::{manifest_input_shapes, run_main, Model, ModelFile, Result};
use safetensors::{Dtype, SafeTensors};
use serde_json::Value;
use tch::{Kind, Tensor};

const OPS: [&str; 12] = ["linear", "conv2d", "batch_norm", "relu", "tanh", "sigmoid", "softmax", "dropout", "avg_pool2d",
                         "normalize", "spatial_softmax", "concat"];

struct Node {
    op: String,
    params: String,
    inputs: Vec<String>,
    out: Option<String>,
    attrs: Value,
}

impl Node {
    fn int(&self, key: &str) -> Result<i64> {
        self.attrs[key].as_i64().ok_or_else(|| format!("{} node has no integer {key}", self.op))
    }
    fn name(&self, key: &str) -> Result<String> {
        self.attrs[key].as_str().map(String::from).ok_or_else(|| format!("{} node has no {key}", self.op))
    }
}

struct Twin {
    input_names: Vec<String>,
    shapes: Vec<Vec<i64>>,
    nodes: Vec<Node>,
    weights: HashMap<String, Tensor>,
}

impl Twin {
    fn load(file: &ModelFile, manifest: &Value) -> Result<Self> {
        let path = file.path.as_str();
        let model = manifest["model"].as_str().unwrap_or("?");
        let arch = manifest["architecture"].as_object().ok_or_else(|| {
            format!("the {model} manifest has no architecture a twin can rebuild (this model runs through the exported-program runtimes instead)")
        })?;
        let input_names: Vec<String> = arch["inputs"].as_array().ok_or("architecture lists no inputs")?
            .iter().filter_map(|v| v.as_str().map(String::from)).collect();
        let mut nodes = Vec::new();
        for (i, n) in arch["nodes"].as_array().ok_or("architecture lists no nodes")?.iter().enumerate() {
            let op = n["op"].as_str().unwrap_or("").to_string();
            if !OPS.contains(&op.as_str()) {
                return Err(format!("unsupported layer '{op}' (node {i} of the {model} architecture); the tch twin builds {}", OPS.join(", ")));
            }
            nodes.push(Node {
                op,
                params: n["params"].as_str().unwrap_or("").to_string(),
                inputs: n["in"].as_array().map(|a| a.iter().filter_map(|v| v.as_str().map(String::from)).collect()).unwrap_or_default(),
                out: n["out"].as_str().map(String::from),
                attrs: n.clone(),
            });
        }
        let expected = arch.get("weights").and_then(Value::as_object)
            .ok_or_else(|| format!("the {model} manifest's architecture lists no weights (dtype and shape of each tensor); re-export it"))?;
        let file = read_weights(path, &file.bytes, expected)?;
        let (mut weights, mut used) = (HashMap::new(), HashSet::new());
        let mut need = |key: String| -> Result<()> {
            let t = file.get(&key).ok_or_else(|| format!("{path} has no tensor {key} (not the {model} weights?)"))?;
            if t.kind() != Kind::Float {
                return Err(format!("{path}: {key} is not float32; the twin computes in float32"));
            }
            weights.insert(key.clone(), t.shallow_clone());
            used.insert(key);
            Ok(())
        };
        for n in &nodes {
            let p = &n.params;
            match n.op.as_str() {
                "linear" => {
                    need(format!("{p}.weight"))?;
                    need(format!("{p}.bias"))?;
                }
                "conv2d" => {
                    need(format!("{p}.weight"))?;
                    if n.attrs["bias"].as_bool().unwrap_or(false) {
                        need(format!("{p}.bias"))?;
                    }
                }
                "batch_norm" => {
                    for s in ["weight", "bias", "running_mean", "running_var"] {
                        need(format!("{p}.{s}"))?;
                    }
                }
                "normalize" => {
                    need(n.name("mean")?)?;
                    need(n.name("std")?)?;
                }
                "spatial_softmax" => need(n.name("grid")?)?,
                _ => {}
            }
        }
        for n in nodes.iter().filter(|n| n.op == "linear") {
            let w = &weights[&format!("{}.weight", n.params)];
            if w.size() != [n.int("out_features")?, n.int("in_features")?] {
                return Err(format!("{path}: {}.weight has the wrong shape for {model}", n.params));
            }
        }
        // batch norm's training counter is bookkeeping, not a weight
        let unused: Vec<&String> = file.keys().filter(|k| !used.contains(*k) && !k.ends_with(".num_batches_tracked")).collect();
        if !unused.is_empty() {
            return Err(format!("{path} has tensors the {model} architecture does not use: {unused:?}"));
        }
        Ok(Self { input_names, shapes: manifest_input_shapes(manifest)?, nodes, weights })
    }

    fn w(&self, key: &str) -> Result<&Tensor> {
        self.weights.get(key).ok_or_else(|| format!("no weight {key}"))
    }

    fn forward(&self, inputs: Vec<Tensor>) -> Result<Tensor> {
        let mut values: HashMap<&str, Tensor> = HashMap::new();
        for (name, t) in self.input_names.iter().zip(&inputs) {
            values.insert(name, t.shallow_clone());
        }
        let mut x = inputs.first().ok_or("no inputs")?.shallow_clone();
        for n in &self.nodes {
            let args: Vec<Tensor> = if n.inputs.is_empty() {
                vec![x.shallow_clone()]
            } else {
                n.inputs.iter()
                    .map(|name| values.get(name.as_str()).map(|t| t.shallow_clone()).ok_or_else(|| format!("architecture refers to an unknown value '{name}'")))
                    .collect::<Result<_>>()?
            };
            let a = &args[0];
            let p = &n.params;
            x = match n.op.as_str() {
                "linear" => a.linear(self.w(&format!("{p}.weight"))?, Some(self.w(&format!("{p}.bias"))?)),
                "conv2d" => {
                    let (s, pad) = (n.int("stride")?, n.int("padding")?);
                    let bias = if n.attrs["bias"].as_bool().unwrap_or(false) { Some(self.w(&format!("{p}.bias"))?) } else { None };
                    a.conv2d(self.w(&format!("{p}.weight"))?, bias, [s, s], [pad, pad], [1, 1], 1)
                }
                "batch_norm" => a.batch_norm(
                    Some(self.w(&format!("{p}.weight"))?), Some(self.w(&format!("{p}.bias"))?),
                    Some(self.w(&format!("{p}.running_mean"))?), Some(self.w(&format!("{p}.running_var"))?),
                    false, 0.0, n.attrs["eps"].as_f64().ok_or("batch_norm node has no eps")?, false),
                "relu" => a.relu(),
                "tanh" => a.tanh(),
                "sigmoid" => a.sigmoid(),
                "softmax" => a.softmax(-1, Kind::Float),
                "dropout" => a.shallow_clone(), // inactive at inference
                "avg_pool2d" => {
                    let k = n.int("kernel")?;
                    a.avg_pool2d([k, k], [k, k], [0, 0], false, true, None)
                }
                "normalize" => (a - self.w(&n.name("mean")?)?) / self.w(&n.name("std")?)?,
                "spatial_softmax" => a.flatten(2, -1).softmax(-1, Kind::Float).matmul(self.w(&n.name("grid")?)?).flatten(1, -1),
                "concat" => Tensor::cat(&args, -1),
                other => return Err(format!("unsupported layer '{other}'")),
            };
            if let Some(out) = &n.out {
                values.insert(out, x.shallow_clone());
            }
        }
        Ok(x)
    }
}

impl Model for Twin {
    fn input_shapes(&self) -> Vec<Vec<i64>> {
        self.shapes.clone()
    }

    fn run(&mut self, inputs: &[&[f32]], shapes: &[Vec<i64>]) -> Result<Vec<Vec<f32>>> {
        let _guard = tch::no_grad_guard();
        let tensors = inputs.iter().zip(shapes)
            .map(|(data, shape)| Tensor::from_slice(data).reshape(std::iter::once(1).chain(shape.iter().copied()).collect::<Vec<i64>>()))
            .collect();
        let y = self.forward(tensors)?.to_kind(Kind::Float).flatten(0, -1);
        Vec::<f32>::try_from(&y).map(|v| vec![v]).map_err(|e| e.to_string())
    }
}

/// Every tensor of the verified .safetensors bytes, each exactly the dtype and shape the architecture lists
/// (nothing is converted: F32 bytes relabelled I32 are refused, not cast back), made into tch tensors.
/// The safetensors crate checks the header and that each tensor's byte range fits its dtype and shape.
fn read_weights(path: &str, bytes: &[u8], expected: &serde_json::Map<String, Value>) -> Result<HashMap<String, Tensor>> {
    let tensors = SafeTensors::deserialize(bytes)
        .map_err(|e| format!("cannot read {path} as safetensors: {e:?}"))?;
    let mut out = HashMap::new();
    for (name, view) in tensors.tensors() {
        let spec = expected.get(&name).ok_or_else(|| format!("{path} has a tensor {name} the architecture does not list"))?;
        let (dtype, kind) = match spec["dtype"].as_str() {
            Some("float32") => (Dtype::F32, Kind::Float),
            Some("int64") => (Dtype::I64, Kind::Int64),
            other => return Err(format!("the manifest lists {name} as {other:?}; the twin takes float32 weights")),
        };
        if view.dtype() != dtype {
            return Err(format!("{path}: {name} is {:?}, the architecture says {dtype:?} (a relabelled tensor is not loaded)", view.dtype()));
        }
        let shape: Vec<i64> = view.shape().iter().map(|&d| d as i64).collect();
        let want: Vec<i64> = spec["shape"].as_array().map(|a| a.iter().filter_map(Value::as_i64).collect()).unwrap_or_default();
        if shape != want {
            return Err(format!("{path}: {name} has shape {shape:?}, the architecture says {want:?}"));
        }
        out.insert(name, Tensor::from_data_size(view.data(), &shape, kind));
    }
    Ok(out)
}

fn main() {
    tch::set_num_threads(1); // batch-1 latency: one thread avoids pool hand-off for these small networks
    std::process::exit(run_main(
        "tch",
        "Run the tch-rs twin: the network rebuilt from the manifest's layer graph (navigation, manipulation,\n\
         the HRI heads), weights from <model>.safetensors.",
        |file, manifest| Ok(Box::new(Twin::load(&file, manifest)?)),
    ));
}
