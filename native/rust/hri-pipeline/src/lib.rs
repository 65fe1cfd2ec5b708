//! The HRI text pipeline as a library: raw text -> `tokenizers` (the exported tokenizer.json) ->
//! command_pipeline.onnx (ONNX Runtime) -> probabilities and parameters -> the decision Python makes
//! (embodied_lib.hri.commands.decide) from the manifest's command schema. Used by the `hri_pipeline` runner
//! (parity on text golden files) and, through the C ABI of `ffi`, by the C++ controller's missions.
use std::path::Path;

use ort::value::Tensor;
use runner_common::{verify_model_file, ModelFile, Result};
use serde_json::{json, Map, Value};
use tokenizers::{Tokenizer, TruncationParams};

pub mod ffi;

pub struct Pipeline {
    tokenizer: Tokenizer,
    onnx: ort_runner::OrtSession,
}

impl Pipeline {
    /// The verified model file, and the tokenizer.json beside it checked against the same manifest (a swapped
    /// vocabulary turns "red" into "blue"); both are built from the bytes that were hashed.
    pub fn open(model: &ModelFile, manifest: &Value) -> Result<Self> {
        let max_tokens = manifest["metadata"]["max_tokens"].as_u64().ok_or("the manifest has no metadata.max_tokens")? as usize;
        let tokenizer_path = Path::new(&model.path).with_file_name("tokenizer.json").to_string_lossy().into_owned();
        let tokenizer_file = verify_model_file(&tokenizer_path, manifest)?;
        let mut tokenizer = Tokenizer::from_bytes(&tokenizer_file.bytes)
            .map_err(|e| format!("cannot read tokenizer {tokenizer_path}: {e}"))?;
        tokenizer
            .with_truncation(Some(TruncationParams { max_length: max_tokens, ..Default::default() }))
            .map_err(|e| e.to_string())?;
        tokenizer.with_padding(None);
        let onnx = ort_runner::open(model)?;
        if onnx.names != ["input_ids", "attention_mask"] {
            return Err(format!("{} takes {:?}, not [input_ids, attention_mask]: not a text pipeline", model.path, onnx.names));
        }
        Ok(Self { tokenizer, onnx })
    }

    /// [action probabilities, parameters] for one command.
    pub fn run(&mut self, text: &str) -> Result<Vec<Vec<f32>>> {
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

/// The command schema of the manifest: how to turn probabilities and parameters into what the robot does.
pub struct Schema {
    actions: Vec<String>,
    colours: Vec<String>,
    encoded: Map<String, Value>, // parameter name -> [lo, hi]
    valid: Map<String, Value>,
    index: Map<String, Value>,
    used_by: Map<String, Value>,
    decoding: Value,
    threshold: f64,
    text: TextRules,
}

/// Python's embodied_lib.hri.commands.text_problem, from the schema's "text" rules: text that is refused
/// before any model reads it. (A lone surrogate cannot reach here: Rust strings are valid UTF-8, and the
/// golden reader refuses JSON that holds one.)
struct TextRules {
    bidi_controls: Vec<u32>,
    largest_number: f64,
    metre_units: Vec<String>,
}

impl TextRules {
    fn from_schema(text: &Value) -> Result<Self> {
        Ok(Self {
            bidi_controls: text["bidi_controls"].as_array().ok_or("command_schema.text has no bidi_controls")?
                .iter().map(|v| v.as_u64().map(|c| c as u32).ok_or("a bidi control is not a code point"))
                .collect::<std::result::Result<_, _>>()?,
            largest_number: text["largest_number"].as_f64().ok_or("command_schema.text has no largest_number")?,
            metre_units: text["metre_units"].as_array().ok_or("command_schema.text has no metre_units")?
                .iter().filter_map(|v| v.as_str().map(str::to_lowercase)).collect(),
        })
    }

    /// Some(reason) when the text cannot be a command.
    fn problem(&self, text: &str) -> Option<&'static str> {
        if text.chars().any(|c| self.bidi_controls.contains(&(c as u32))) {
            return Some("bidirectional control characters");
        }
        if !text.chars().any(char::is_alphanumeric) {
            return Some("no words");
        }
        let chars: Vec<char> = text.chars().collect();
        let mut i = 0;
        while i < chars.len() {
            if !chars[i].is_ascii_digit() {
                i += 1;
                continue;
            }
            // Python's regex (ASCII): -?\d+(\.\d+)?(e[+-]?\d+)?, optional spaces, a metre unit not followed by [a-z0-9_]
            let negative = i > 0 && chars[i - 1] == '-';
            let start = i;
            while i < chars.len() && chars[i].is_ascii_digit() { i += 1; }
            if i + 1 < chars.len() && chars[i] == '.' && chars[i + 1].is_ascii_digit() {
                i += 1;
                while i < chars.len() && chars[i].is_ascii_digit() { i += 1; }
            }
            if i < chars.len() && (chars[i] == 'e' || chars[i] == 'E') {
                let sign = usize::from(i + 1 < chars.len() && (chars[i + 1] == '+' || chars[i + 1] == '-'));
                if i + 1 + sign < chars.len() && chars[i + 1 + sign].is_ascii_digit() {
                    i += 1 + sign;
                    while i < chars.len() && chars[i].is_ascii_digit() { i += 1; }
                }
            }
            let number: String = chars[start..i].iter().collect();
            let mut value = number.parse::<f64>().unwrap_or(f64::INFINITY);
            let mut j = i;
            while j < chars.len() && chars[j].is_whitespace() { j += 1; }
            let rest: String = chars[j..].iter().collect::<String>().to_lowercase();
            let after_is_word = |unit: &str| rest[unit.len()..].chars().next().is_some_and(|c| c.is_ascii_alphanumeric() || c == '_');
            if self.metre_units.iter().any(|u| rest.starts_with(u.as_str()) && !after_is_word(u)) {
                value *= 100.0;
            }
            if negative { value = -value; }
            if value.abs() > self.largest_number {
                return Some("a number beyond any parameter");
            }
        }
        None
    }
}

impl Schema {
    pub fn from_manifest(manifest: &Value) -> Result<Self> {
        let meta = &manifest["metadata"];
        let schema = &meta["command_schema"];
        let strings = |v: &Value| -> Vec<String> { v.as_array().map(|a| a.iter().filter_map(|s| s.as_str().map(String::from)).collect()).unwrap_or_default() };
        let (mut encoded, mut valid, mut index, mut used_by) = (Map::new(), Map::new(), Map::new(), Map::new());
        for p in schema["parameters"].as_array().ok_or("the manifest has no command_schema.parameters")? {
            let name = p["name"].as_str().ok_or("a schema parameter has no name")?.to_string();
            encoded.insert(name.clone(), p["encoded_range"].clone());
            valid.insert(name.clone(), p["range"].clone());
            index.insert(name.clone(), p["index"].clone());
            used_by.insert(name, p["used_by"].clone());
        }
        Ok(Self {
            actions: strings(&schema["actions"]),
            colours: strings(&schema["colours"]),
            encoded, valid, index, used_by,
            decoding: schema["decoding"].clone(),
            threshold: meta["confidence_threshold"].as_f64().unwrap_or(0.0),
            text: TextRules::from_schema(&schema["text"])?,
        })
    }

    fn value(&self, params: &[f32], name: &str) -> Result<f64> {
        let i = self.index[name].as_u64().ok_or_else(|| format!("parameter {name} has no index"))? as usize;
        let range = self.encoded[name].as_array().ok_or_else(|| format!("parameter {name} has no encoded_range"))?;
        let (lo, hi) = (range[0].as_f64().unwrap_or(0.0), range[1].as_f64().unwrap_or(1.0));
        let v = *params.get(i).ok_or_else(|| format!("no parameter {i}"))? as f64;
        Ok(lo + v * (hi - lo))
    }

    fn limit(&self, key: &str) -> Result<f64> {
        self.decoding[key].as_f64().ok_or_else(|| format!("command_schema.decoding has no {key}"))
    }

    /// Does `action` use the parameter `name` (the schema's used_by)?
    fn uses(&self, action: &str, name: &str) -> bool {
        self.used_by.get(name).and_then(Value::as_array).is_some_and(|a| a.iter().any(|v| v.as_str() == Some(action)))
    }

    /// Python's embodied_lib.hri.commands.decide, from the schema: {"action", "params", "refused"}.
    pub fn decide(&self, text: &str, probs: &[f32], params: &[f32]) -> Result<Value> {
        if self.text.problem(text).is_some() {
            return Ok(json!({"action": null, "params": {}, "refused": "bad text"}));
        }
        let best = probs.iter().enumerate().fold(0, |b, (i, x)| if *x > probs[b] { i } else { b });
        let action = self.actions.get(best).ok_or("more probabilities than actions")?.as_str();
        let (mut out, mut problem) = (Map::new(), false);
        if self.uses(action, "row") {
            for key in ["row", "col"] {
                let cell = self.value(params, key)?.round();
                let valid = self.valid[key].as_array().ok_or("no valid range")?;
                problem |= cell < valid[0].as_f64().unwrap_or(0.0) || cell > valid[1].as_f64().unwrap_or(0.0);
                out.insert(key.into(), json!(cell as i64));
            }
        }
        if self.colours.first().is_some_and(|c| self.uses(action, &format!("colour_{c}"))) {
            let scores: Vec<f64> = self.colours.iter().map(|c| self.value(params, &format!("colour_{c}"))).collect::<Result<_>>()?;
            let best = scores.iter().enumerate().fold(0, |b, (i, x)| if *x > scores[b] { i } else { b });
            let known = scores.get(best).copied().unwrap_or(0.0) >= self.limit("colour_min")?;
            problem |= !known;
            out.insert("colour".into(), if known { json!(self.colours[best]) } else { Value::Null });
        }
        if self.uses(action, "distance") {
            let (dx, dy) = (self.value(params, "direction_x")?, self.value(params, "direction_y")?);
            let direction = if dx.abs() >= dy.abs() { if dx > 0.0 { "right" } else { "left" } } else if dy > 0.0 { "forward" } else { "backward" };
            let d = (self.value(params, "distance")? * 10.0).round() / 10.0;
            problem |= d > self.limit("distance_refused_above_cm")? || d < self.limit("distance_refused_below_cm")?;
            out.insert("direction".into(), json!(direction));
            out.insert("distance_cm".into(), json!(d));
        }
        if self.uses(action, "angle") {
            let a = (self.value(params, "angle")? * 10.0).round() / 10.0;
            problem |= a.abs() > self.limit("angle_refused_above_deg")?;
            out.insert("angle_deg".into(), json!(a));
        }
        let refused = if (probs[best] as f64) < self.threshold { json!("low confidence") }
                      else if problem { json!("out of range") } else { Value::Null };
        Ok(json!({"action": action, "params": out, "refused": refused}))
    }
}

/// The same decision as Python's: equal action, refusal and parameters (distances and angles within
/// the 0.1 they are rounded to, so a rounding tie cannot count as a difference).
pub fn same_decision(a: &Value, b: &Value) -> bool {
    if a["action"] != b["action"] || a["refused"] != b["refused"] {
        return false;
    }
    let (pa, pb) = (a["params"].as_object(), b["params"].as_object());
    match (pa, pb) {
        (Some(pa), Some(pb)) => pa.len() == pb.len() && pa.iter().all(|(k, va)| match (va.as_f64(), pb.get(k).and_then(Value::as_f64)) {
            (Some(x), Some(y)) if k == "distance_cm" || k == "angle_deg" => (x - y).abs() <= 0.1 + 1e-9,
            _ => pb.get(k) == Some(va),
        }),
        _ => false,
    }
}

