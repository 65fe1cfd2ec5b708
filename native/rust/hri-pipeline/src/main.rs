//! The whole HRI text pipeline in Rust: raw text -> `tokenizers` (the exported tokenizer.json)
//! -> command_pipeline.onnx (ONNX Runtime) -> action, slot-tag, colour, direction and turn probabilities
//! -> the tagged words read by the text2num crate -> the decision.
//!
//!     hri_pipeline MODEL TEXT_GOLDEN [--manifest MANIFEST] [--iterations N]
//!
//! TEXT_GOLDEN is text_golden.jsonl beside the model: commands with Python's answers (every output by name,
//! and the decision: action, parameters, refused or not and how). Every line is run at batch 1; every output
//! must be within the manifest's tolerance, and the decision (`decision.rule` = "command") is made here from
//! the manifest's command schema and threshold, exactly as Python makes it (embodied_lib.hri.slots.decide),
//! and compared with Python's. The JSON has the schema every runner
//! prints, with the latency of tokenize + run for the first command.

use hri_command::{same_decision, Pipeline, Schema};
use runner_common::{finish, parse_args, read_verified_manifest, time_runs, verify_model_file, Parity, Result};
use serde_json::Value;

/// The numbers of one golden output (a list, or a list of lists for a per-token output), flattened; anything
/// else is an error naming the line.
fn floats(row: &Value, key: &str, golden: &str, line: usize) -> Result<Vec<f32>> {
    fn push(v: &Value, out: &mut Vec<f32>) -> bool {
        match v {
            Value::Array(items) => items.iter().all(|x| push(x, out)),
            Value::Number(n) => n.as_f64().map(|x| out.push(x as f32)).is_some(),
            _ => false,
        }
    }
    let mut out = Vec::new();
    let value = row.get(key).filter(|v| v.is_array()).ok_or_else(|| format!("{golden} line {line}: no {key}"))?;
    if !push(value, &mut out) {
        return Err(format!("{golden} line {line}: {key} holds a non-number"));
    }
    Ok(out)
}

fn run(model: &str, golden: &str, manifest_path: &str, iterations: usize, public_key: Option<&str>) -> Result<String> {
    let lines = String::from_utf8(runner_common::read_file(golden, "text golden file")?)
        .map_err(|_| format!("{golden} is not UTF-8 text"))?;
    let manifest = read_verified_manifest(manifest_path, public_key)?;   // one read: verified = parsed
    let file = verify_model_file(model, &manifest)?;
    let entry = file.entry.clone();
    let mut pipeline = Pipeline::open(&file, &manifest)?;   // and the tokenizer.json beside it, verified
    let schema = Schema::from_manifest(&manifest)?;
    let mut parity = Parity::new(&manifest, &entry)?.with_rule("command");
    let (mut first_outputs, mut first_text) = (Vec::new(), None);
    for (n, line) in lines.lines().filter(|l| !l.trim().is_empty()).enumerate() {
        let row: Value = serde_json::from_str(line).map_err(|e| format!("{golden} line {}: not JSON ({e})", n + 1))?;
        let text = row["text"].as_str().ok_or_else(|| format!("{golden} line {}: no text", n + 1))?;
        let expected: Vec<Vec<f32>> = pipeline.output_names().iter()
            .map(|name| floats(&row, name, golden, n + 1)).collect::<Result<_>>()?;
        let got = pipeline.run(text)?;
        parity.add(&got.values, &expected.iter().map(Vec::as_slice).collect::<Vec<_>>())?;
        let decided = schema.decide(text, &got)?;
        let python = row.get("decision").ok_or_else(|| format!("{golden} line {}: no decision", n + 1))?;
        parity.record_decision(decided.clone(), same_decision(&decided, python));
        first_outputs.push(got.values[0].clone());
        first_text.get_or_insert_with(|| text.to_string());
    }
    let text = first_text.ok_or_else(|| format!("{golden} holds no commands"))?;
    let ms = time_runs(iterations, || pipeline.run(&text).map(|_| ()))?;
    Ok(parity.report("text_pipeline", model, &manifest, first_outputs.len(), first_outputs, ms))
}

fn main() {
    let what = "Run the HRI text pipeline (tokenizers + ONNX Runtime) on raw text; compare with Python.";
    std::process::exit(match parse_args("hri_pipeline", what) {
        Ok(a) => finish(run(&a.model, &a.golden, &a.manifest, a.iterations, a.public_key.as_deref())),
        Err(code) => code,
    });
}
