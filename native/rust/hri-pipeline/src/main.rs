//! The whole HRI text pipeline in Rust: raw text -> `tokenizers` (the exported tokenizer.json)
//! -> command_pipeline.onnx (ONNX Runtime) -> action probabilities and parameters.
//!
//!     hri_pipeline MODEL TEXT_GOLDEN [--manifest MANIFEST] [--iterations N]
//!
//! TEXT_GOLDEN is text_golden.jsonl beside the model: commands with Python's answers (probabilities
//! and parameters). Every line is run at batch 1 and judged as the manifest says (the action's argmax,
//! both outputs within its tolerance); the JSON has the schema every runner prints, with the latency
//! of tokenize + run for the first command.
use std::path::Path;

use ort::value::Tensor;
use runner_common::{finish, parse_args, read_manifest, time_runs, Parity, Result};
use serde_json::Value;
use tokenizers::{Tokenizer, TruncationParams};

struct Pipeline {
    tokenizer: Tokenizer,
    onnx: ort_runner::OrtSession,
}

impl Pipeline {
    fn open(model: &str, manifest: &Value) -> Result<Self> {
        let max_tokens = manifest["metadata"]["max_tokens"].as_u64().ok_or("the manifest has no metadata.max_tokens")? as usize;
        let tokenizer_path = Path::new(model).with_file_name("tokenizer.json");
        let mut tokenizer = Tokenizer::from_file(&tokenizer_path)
            .map_err(|e| format!("cannot read tokenizer {}: {e}", tokenizer_path.display()))?;
        tokenizer
            .with_truncation(Some(TruncationParams { max_length: max_tokens, ..Default::default() }))
            .map_err(|e| e.to_string())?;
        tokenizer.with_padding(None);
        let onnx = ort_runner::open(model)?;
        if onnx.names != ["input_ids", "attention_mask"] {
            return Err(format!("{model} takes {:?}, not [input_ids, attention_mask]: not a text pipeline", onnx.names));
        }
        Ok(Self { tokenizer, onnx })
    }

    /// [action probabilities, parameters] for one command.
    fn run(&mut self, text: &str) -> Result<Vec<Vec<f32>>> {
        let encoding = self.tokenizer.encode(text, true).map_err(|e| format!("tokenizing {text:?}: {e}"))?;
        let ids: Vec<i64> = encoding.get_ids().iter().map(|&i| i64::from(i)).collect();
        let mask: Vec<i64> = encoding.get_attention_mask().iter().map(|&m| i64::from(m)).collect();
        let shape = vec![1i64, ids.len() as i64];
        let inputs = vec![
            ("input_ids".to_string(), Tensor::from_array((shape.clone(), ids)).map_err(|e| e.to_string())?),
            ("attention_mask".to_string(), Tensor::from_array((shape, mask)).map_err(|e| e.to_string())?),
        ];
        let outputs = self.onnx.session.run(inputs).map_err(|e| format!("ONNX Runtime run failed: {e}"))?;
        let (_, probs) = outputs["action_probs"].try_extract_tensor::<f32>().map_err(|e| e.to_string())?;
        let (_, params) = outputs["params"].try_extract_tensor::<f32>().map_err(|e| e.to_string())?;
        Ok(vec![probs.to_vec(), params.to_vec()])
    }
}

/// A list of numbers from one golden line; anything else is an error naming the line.
fn floats(row: &Value, key: &str, golden: &str, line: usize) -> Result<Vec<f32>> {
    row[key].as_array().ok_or_else(|| format!("{golden} line {line}: no {key}"))?
        .iter()
        .map(|v| v.as_f64().map(|x| x as f32).ok_or_else(|| format!("{golden} line {line}: {key} holds a non-number")))
        .collect()
}

fn run(model: &str, golden: &str, manifest_path: &str, iterations: usize) -> Result<String> {
    let lines = String::from_utf8(runner_common::read_file(golden, "text golden file")?)
        .map_err(|_| format!("{golden} is not UTF-8 text"))?;
    let manifest = read_manifest(manifest_path)?;
    let mut pipeline = Pipeline::open(model, &manifest)?;
    let mut parity = Parity::new(&manifest)?;
    let (mut first_outputs, mut first_text) = (Vec::new(), None);
    for (n, line) in lines.lines().filter(|l| !l.trim().is_empty()).enumerate() {
        let row: Value = serde_json::from_str(line).map_err(|e| format!("{golden} line {}: not JSON ({e})", n + 1))?;
        let text = row["text"].as_str().ok_or_else(|| format!("{golden} line {}: no text", n + 1))?;
        let expected = [floats(&row, "probs", golden, n + 1)?, floats(&row, "params", golden, n + 1)?];
        let got = pipeline.run(text)?;
        parity.add(&got, &[&expected[0], &expected[1]])?;
        first_outputs.push(got[0].clone());
        first_text.get_or_insert_with(|| text.to_string());
    }
    let text = first_text.ok_or_else(|| format!("{golden} holds no commands"))?;
    let ms = time_runs(iterations, || pipeline.run(&text).map(|_| ()))?;
    Ok(parity.report("text_pipeline", model, &manifest, first_outputs.len(), first_outputs, ms))
}

fn main() {
    let what = "Run the HRI text pipeline (tokenizers + ONNX Runtime) on raw text; compare with Python.";
    std::process::exit(match parse_args("hri_pipeline", what) {
        Ok(a) => finish(run(&a.model, &a.golden, &a.manifest, a.iterations)),
        Err(code) => code,
    });
}
