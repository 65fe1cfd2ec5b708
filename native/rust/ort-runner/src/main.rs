//! Runs an exported .onnx with ONNX Runtime through the `ort` crate. `load-dynamic`: the runtime
//! library is the onnxruntime wheel's, given by ORT_DYLIB_PATH (make native / the tests set it).
use ort::environment::Environment;
use ort::session::Session;
use ort::value::Tensor;
use runner_common::{run_main, Model, Result};

struct OrtModel {
    session: Session,
    _environment: Environment,
    names: Vec<String>,
    shapes: Vec<Vec<i64>>, // per input, without the batch dimension
}

fn load(path: &str) -> Result<Box<dyn Model>> {
    runner_common::read_file(path, "model file")?;
    let dylib = std::env::var("ORT_DYLIB_PATH")
        .map_err(|_| "ORT_DYLIB_PATH is not set; point it at the onnxruntime wheel's libonnxruntime.so.*".to_string())?;
    let environment = ort::init_from(&dylib)
        .map_err(|e| format!("cannot load ONNX Runtime from {dylib}: {e}"))?
        .build()
        .map_err(|e| format!("cannot start ONNX Runtime: {e}"))?;
    let session = Session::builder(&environment)
        .map_err(|e| e.to_string())?
        .with_intra_threads(1)
        .map_err(|e| e.to_string())?
        .commit_from_file(path)
        .map_err(|e| format!("cannot load {path} as an ONNX model: {}", e.to_string().lines().next().unwrap_or("")))?;
    let mut names = Vec::new();
    let mut shapes = Vec::new();
    for input in session.inputs() {
        let shape = input.dtype().tensor_shape().ok_or_else(|| format!("input {} is not a tensor", input.name()))?;
        names.push(input.name().to_string());
        shapes.push(shape.iter().skip(1).copied().collect());
    }
    Ok(Box::new(OrtModel { session, _environment: environment, names, shapes }))
}

impl Model for OrtModel {
    fn input_sizes(&self) -> Vec<usize> {
        self.shapes.iter().map(|s| s.iter().product::<i64>() as usize).collect()
    }

    fn run(&mut self, inputs: &[&[f32]]) -> Result<Vec<Vec<f32>>> {
        let mut values = Vec::new();
        for ((name, shape), data) in self.names.iter().zip(&self.shapes).zip(inputs) {
            let full: Vec<i64> = std::iter::once(1).chain(shape.iter().copied()).collect();
            let tensor = Tensor::from_array((full, data.to_vec())).map_err(|e| e.to_string())?;
            values.push((name.clone(), tensor));
        }
        let outputs = self.session.run(values).map_err(|e| format!("ONNX Runtime run failed: {e}"))?;
        let mut result = Vec::new();
        for (_, value) in outputs.iter() {
            let (_, data) = value.try_extract_tensor::<f32>().map_err(|e| e.to_string())?;
            result.push(data.to_vec());
        }
        Ok(result)
    }
}

fn main() {
    std::process::exit(run_main("ort", "Run an ONNX model with ONNX Runtime (ort crate) on golden vectors.", load));
}
