//! Opening an ONNX model with the onnxruntime wheel's library (`load-dynamic`, ORT_DYLIB_PATH).
use ort::environment::Environment;
use ort::session::Session;
use runner_common::{ModelFile, Result};

pub struct OrtSession {
    pub session: Session,
    _environment: Environment, // declared after the session: dropped after it
    pub names: Vec<String>,
    pub shapes: Vec<Vec<i64>>, // per input, without the batch dimension (-1 = dynamic)
}

/// A verified model (its bytes, never its path again).
pub fn open(file: &ModelFile) -> Result<OrtSession> {
    let path = &file.path;
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
        .commit_from_memory(&file.bytes)
        .map_err(|e| format!("cannot load {path} as an ONNX model: {}", e.to_string().lines().next().unwrap_or("")))?;
    let mut names = Vec::new();
    let mut shapes = Vec::new();
    for input in session.inputs() {
        let shape = input.dtype().tensor_shape().ok_or_else(|| format!("input {} is not a tensor", input.name()))?;
        names.push(input.name().to_string());
        shapes.push(shape.iter().skip(1).copied().collect());
    }
    Ok(OrtSession { session, _environment: environment, names, shapes })
}
