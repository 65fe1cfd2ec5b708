//! The whole HRI text pipeline in Rust: raw text -> `tokenizers` (the exported tokenizer.json)
//! -> command_pipeline.onnx (ONNX Runtime) -> action probabilities and parameters.
//!
//!     hri_pipeline MODEL TEXT_GOLDEN [--iterations N]
//!
//! TEXT_GOLDEN is text_golden.jsonl beside the model: commands with Python's answers. Every line
//! is run at batch 1; the JSON output says how many actions agree with Python, the largest
//! probability difference, and the latency of tokenize + run for the first command.
use std::path::Path;

use ort::value::Tensor;
use runner_common::{finish, latency_json, parse_args, time_runs, Result};
use tokenizers::{Tokenizer, TruncationParams};

const MAX_TOKENS: usize = 64; // embodied_lib.models.hri.MAX_TOKENS

struct Pipeline {
    tokenizer: Tokenizer,
    onnx: ort_session::OrtSession,
}

impl Pipeline {
    fn open(model: &str) -> Result<Self> {
        let tokenizer_path = Path::new(model).with_file_name("tokenizer.json");
        let mut tokenizer = Tokenizer::from_file(&tokenizer_path)
            .map_err(|e| format!("cannot read tokenizer {}: {e}", tokenizer_path.display()))?;
        tokenizer
            .with_truncation(Some(TruncationParams { max_length: MAX_TOKENS, ..Default::default() }))
            .map_err(|e| e.to_string())?;
        tokenizer.with_padding(None);
        let onnx = ort_session::open(model)?;
        if onnx.names != ["input_ids", "attention_mask"] {
            return Err(format!("{model} takes {:?}, not [input_ids, attention_mask]: not a text pipeline", onnx.names));
        }
        Ok(Self { tokenizer, onnx })
    }

    /// (action probabilities, parameters) for one command.
    fn run(&mut self, text: &str) -> Result<(Vec<f32>, Vec<f32>)> {
        let encoding = self.tokenizer.encode(text, true).map_err(|e| format!("tokenizing {text:?}: {e}"))?;
        let ids: Vec<i64> = encoding.get_ids().iter().map(|&i| i as i64).collect();
        let mask: Vec<i64> = encoding.get_attention_mask().iter().map(|&m| m as i64).collect();
        let shape = vec![1i64, ids.len() as i64];
        let inputs = vec![
            ("input_ids".to_string(), Tensor::from_array((shape.clone(), ids)).map_err(|e| e.to_string())?),
            ("attention_mask".to_string(), Tensor::from_array((shape, mask)).map_err(|e| e.to_string())?),
        ];
        let outputs = self.onnx.session.run(inputs).map_err(|e| format!("ONNX Runtime run failed: {e}"))?;
        let (_, probs) = outputs["action_probs"].try_extract_tensor::<f32>().map_err(|e| e.to_string())?;
        let (_, params) = outputs["params"].try_extract_tensor::<f32>().map_err(|e| e.to_string())?;
        Ok((probs.to_vec(), params.to_vec()))
    }
}

fn argmax(v: &[f32]) -> usize {
    v.iter().enumerate().fold(0, |best, (i, x)| if *x > v[best] { i } else { best })
}

fn run(model: &str, golden: &str, iterations: usize) -> Result<String> {
    let lines = String::from_utf8(runner_common::read_file(golden, "text golden file")?)
        .map_err(|_| format!("{golden} is not UTF-8 text"))?;
    let mut pipeline = Pipeline::open(model)?;
    let (mut total, mut agree, mut max_diff, mut disagreements) = (0usize, 0usize, 0f64, Vec::new());
    let mut first_text = None;
    for (n, line) in lines.lines().filter(|l| !l.trim().is_empty()).enumerate() {
        let row: serde_json::Value =
            serde_json::from_str(line).map_err(|e| format!("{golden} line {}: not JSON ({e})", n + 1))?;
        let text = row["text"].as_str().ok_or_else(|| format!("{golden} line {}: no text", n + 1))?;
        let expected: Vec<f64> = row["probs"].as_array().ok_or_else(|| format!("{golden} line {}: no probs", n + 1))?
            .iter().map(|v| v.as_f64().unwrap_or(f64::NAN)).collect();
        let (probs, _params) = pipeline.run(text)?;
        if probs.len() != expected.len() {
            return Err(format!("model gives {} probabilities, {golden} has {}", probs.len(), expected.len()));
        }
        for (a, b) in probs.iter().zip(&expected) {
            max_diff = max_diff.max((*a as f64 - b).abs());
        }
        total += 1;
        if argmax(&probs) as u64 == row["action"].as_u64().unwrap_or(u64::MAX) {
            agree += 1;
        } else {
            disagreements.push(serde_json::Value::from(text));
        }
        first_text.get_or_insert_with(|| text.to_string());
    }
    let text = first_text.ok_or_else(|| format!("{golden} holds no commands"))?;
    let ms = time_runs(iterations, || pipeline.run(&text).map(|_| ()))?;
    Ok(format!(
        "{{\"runner\":\"rust-text-pipeline\",\"model\":\"{model}\",\"commands\":{total},\"action_agreement\":{agree},\
         \"disagreements\":{},\"max_abs_diff\":{max_diff:e},\"latency_ms\":{}}}",
        serde_json::Value::from(disagreements), latency_json(ms)))
}

fn main() {
    let what = "Run the HRI text pipeline (tokenizers + ONNX Runtime) on raw text; compare with Python.";
    std::process::exit(match parse_args("hri_pipeline", what) {
        Ok(a) => finish(run(&a.model, &a.golden, a.iterations)),
        Err(code) => code,
    });
}
