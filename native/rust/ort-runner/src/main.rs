//! Runs an exported .onnx with ONNX Runtime through the `ort` crate on golden vectors.
use ort::value::Tensor;
use ort_runner::OrtSession;
use runner_common::{run_main, Model, Result};

struct OrtModel(OrtSession);

impl Model for OrtModel {
    /// -1 where the model leaves a dimension dynamic: the concrete size comes from the input itself.
    fn input_shapes(&self) -> Vec<Vec<i64>> {
        self.0.shapes.clone()
    }

    fn run(&mut self, inputs: &[&[f32]], shapes: &[Vec<i64>]) -> Result<Vec<Vec<f32>>> {
        let mut values = Vec::new();
        for ((name, shape), data) in self.0.names.iter().zip(shapes).zip(inputs) {
            let full: Vec<i64> = std::iter::once(1).chain(shape.iter().copied()).collect();
            let tensor = Tensor::from_array((full, data.to_vec())).map_err(|e| e.to_string())?;
            values.push((name.clone(), tensor));
        }
        let outputs = self.0.session.run(values).map_err(|e| format!("ONNX Runtime run failed: {e}"))?;
        let mut result = Vec::new();
        for (_, value) in outputs.iter() {
            let (_, data) = value.try_extract_tensor::<f32>().map_err(|e| e.to_string())?;
            result.push(data.to_vec());
        }
        Ok(result)
    }
}

fn main() {
    std::process::exit(run_main("ort", "Run an ONNX model with ONNX Runtime (ort crate) on golden vectors.",
                                |file, _manifest| Ok(Box::new(OrtModel(ort_runner::open(&file)?)))));
}
