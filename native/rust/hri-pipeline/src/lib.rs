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
    outputs: Vec<String>,
}

/// One command through the model: every output in the manifest's order, flattened, each token's character
/// offsets in the text (what a tagged token says is found by them) and the word each token is a piece of.
pub struct Outputs {
    pub values: Vec<Vec<f32>>,
    pub offsets: Vec<(usize, usize)>,
    pub word_ids: Vec<Option<u32>>,
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
        let outputs: Vec<String> = manifest["outputs"].as_array().ok_or("the manifest lists no outputs")?
            .iter().map(|o| o["name"].as_str().map(String::from).ok_or("an output has no name"))
            .collect::<std::result::Result<_, _>>()?;
        Ok(Self { tokenizer, onnx, outputs })
    }

    /// The names of the outputs, in the manifest's order.
    pub fn output_names(&self) -> &[String] {
        &self.outputs
    }

    /// Every output for one command, and its tokens' character offsets.
    pub fn run(&mut self, text: &str) -> Result<Outputs> {
        let encoding = self.tokenizer.encode_char_offsets(text, true).map_err(|e| format!("tokenizing {text:?}: {e}"))?;
        let ids: Vec<i64> = encoding.get_ids().iter().map(|&i| i64::from(i)).collect();
        let mask: Vec<i64> = encoding.get_attention_mask().iter().map(|&m| i64::from(m)).collect();
        let shape = vec![1i64, ids.len() as i64];
        let inputs = vec![
            ("input_ids".to_string(), Tensor::from_array((shape.clone(), ids)).map_err(|e| e.to_string())?),
            ("attention_mask".to_string(), Tensor::from_array((shape, mask)).map_err(|e| e.to_string())?),
        ];
        let outputs = self.onnx.session.run(inputs).map_err(|e| format!("ONNX Runtime run failed: {e}"))?;
        let mut values = Vec::with_capacity(self.outputs.len());
        for name in &self.outputs {
            let value = outputs.get(name.as_str()).ok_or_else(|| format!("the model gives no output {name}"))?;
            let (_, data) = value.try_extract_tensor::<f32>().map_err(|e| e.to_string())?;
            values.push(data.to_vec());
        }
        Ok(Outputs { values, offsets: encoding.get_offsets().to_vec(), word_ids: encoding.get_word_ids().to_vec() })
    }
}

/// The command schema of the manifest: how the pipeline's outputs become what the robot does
/// (Python's embodied_lib.hri.slots, the same rules read from the same manifest).
pub struct Schema {
    actions: Vec<String>,
    colours: Vec<String>,
    parameters: Map<String, Value>, // name -> the schema's parameter entry
    tags: Vec<String>,
    words: Value,                   // command_schema.slots.words: the parser's word table
    colour_classes: Vec<String>,
    direction_classes: Vec<String>,
    turn_classes: Vec<String>,
    needs: Map<String, Value>,
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

fn strings(v: &Value, what: &str) -> Result<Vec<String>> {
    v.as_array().ok_or_else(|| format!("the manifest's command schema has no {what}"))?
        .iter().map(|s| s.as_str().map(String::from).ok_or_else(|| format!("{what} holds a non-string")))
        .collect()
}

fn argmax(values: &[f32]) -> usize {
    values.iter().enumerate().fold(0, |b, (i, x)| if *x > values[b] { i } else { b })
}

/// One slot's words after text2num: numbers and words, as Python's embodied_lib.hri.slots._items splits them.
fn items(s: &str) -> Vec<String> {
    let c: Vec<char> = s.chars().collect();
    let digit = |i: usize| i < c.len() && c[i].is_ascii_digit();
    let (mut out, mut i) = (Vec::new(), 0);
    while i < c.len() {
        if digit(i) || (c[i] == '-' && digit(i + 1)) {
            let mut j = i + 1;
            while digit(j) { j += 1; }
            if j < c.len() && c[j] == '.' && digit(j + 1) {
                j += 1;
                while digit(j) { j += 1; }
            }
            out.push(c[i..j].iter().collect());
            i = j;
        } else if c[i].is_alphabetic() {
            let mut j = i + 1;
            while j < c.len() && (c[j].is_alphabetic() || (c[j] == '-' && j + 1 < c.len() && c[j + 1].is_alphabetic())) { j += 1; }
            out.push(c[i..j].iter().collect());
            i = j;
        } else {
            i += 1;
        }
    }
    out
}

/// Python's slots._words: the command as text2num tokens, as character ranges: ASCII words (hyphens inside),
/// digit numbers with a decimal part, runs of spaces, and every other character alone.
fn words(c: &[char]) -> Vec<(usize, usize)> {
    let letter = |i: usize| i < c.len() && c[i].is_ascii_alphabetic();
    let digit = |i: usize| i < c.len() && c[i].is_ascii_digit();
    let space = |i: usize| i < c.len() && matches!(c[i], ' ' | '\t' | '\n' | '\r');
    let (mut out, mut i) = (Vec::new(), 0);
    while i < c.len() {
        let mut j = i + 1;
        if letter(i) {
            while letter(j) || (j < c.len() && c[j] == '-' && letter(j + 1)) { j += 1; }
        } else if digit(i) {
            while digit(j) { j += 1; }
            if j < c.len() && c[j] == '.' && digit(j + 1) {
                j += 2;
                while digit(j) { j += 1; }
            }
        } else if space(i) {
            while space(j) { j += 1; }
        }
        out.push((i, j));
        i = j;
    }
    out
}

/// One word as text2num's find_numbers reads it (ASCII lower case, as Python's slots._Word).
struct Word(String);

impl text2num::Token for &Word {
    fn text(&self) -> std::borrow::Cow<'_, str> { self.0.as_str().into() }
    fn text_lowercase(&self) -> std::borrow::Cow<'_, str> { self.0.as_str().into() }
}

/// Python's slots.number_ranges: the character ranges of the numbers the command says, each one whole (digits,
/// and numbers in words as text2num's find_numbers finds them at threshold 0).
fn number_ranges(c: &[char]) -> Vec<(usize, usize)> {
    let tokens = words(c);
    let mut ranges: Vec<(usize, usize)> = tokens.iter().copied().filter(|&(a, _)| c[a].is_ascii_digit()).collect();
    let list: Vec<Word> = tokens.iter().map(|&(a, b)| Word(c[a..b].iter().collect::<String>().to_ascii_lowercase())).collect();
    for o in text2num::find_numbers(list.iter(), &text2num::Language::english(), 0.0) {
        ranges.push((tokens[o.start].0, tokens[o.end - 1].1));
    }
    ranges.sort_unstable();
    ranges
}

/// What one slot span reads as: a value, or why it cannot be read.
struct Reading {
    value: Option<f64>,
    problem: bool,
}

impl Schema {
    pub fn from_manifest(manifest: &Value) -> Result<Self> {
        let meta = &manifest["metadata"];
        let schema = &meta["command_schema"];
        let mut parameters = Map::new();
        for p in schema["parameters"].as_array().ok_or("the manifest has no command_schema.parameters")? {
            let name = p["name"].as_str().ok_or("a schema parameter has no name")?.to_string();
            parameters.insert(name, p.clone());
        }
        let classes = &schema["classes"];
        Ok(Self {
            actions: strings(&schema["actions"], "actions")?,
            colours: strings(&schema["colours"], "colours")?,
            parameters,
            tags: strings(&schema["slots"]["tags"], "slots.tags")?,
            words: schema["slots"]["words"].clone(),
            colour_classes: strings(&classes["colour"], "classes.colour")?,
            direction_classes: strings(&classes["direction"], "classes.direction")?,
            turn_classes: strings(&classes["turn"], "classes.turn")?,
            needs: schema["needs"].as_object().cloned().ok_or("the manifest's command schema has no needs")?,
            threshold: meta["confidence_threshold"].as_f64().unwrap_or(0.0),
            text: TextRules::from_schema(&schema["text"])?,
        })
    }

    fn range(&self, name: &str, key: &str) -> Result<(f64, f64)> {
        let r = self.parameters.get(name).and_then(|p| p[key].as_array()).ok_or_else(|| format!("parameter {name} has no {key}"))?;
        Ok((r[0].as_f64().unwrap_or(0.0), r[1].as_f64().unwrap_or(0.0)))
    }

    /// Python's word_tags and slot_spans: the words of each slot, from the argmax tag of each token (a word keeps
    /// its tags only when all its pieces are tagged with one slot) and the tokens' offsets.
    fn slot_spans(&self, text: &[char], outputs: &Outputs, action: &str) -> Result<Vec<(String, usize, usize, bool)>> {
        let (offsets, slot_probs) = (&outputs.offsets, &outputs.values[1]);
        let k = self.tags.len();
        let mut tags: Vec<usize> = (0..offsets.len())
            .map(|t| slot_probs.get(t * k..(t + 1) * k).map(argmax).ok_or("fewer slot scores than tokens"))
            .collect::<std::result::Result<_, _>>()?;
        // Python's action_slot_tags: an action with one number to read has every tagged word in that slot
        let numeric: Vec<&str> = ["row", "col", "distance", "angle"].into_iter().filter(|s| self.needs(action, s)).collect();
        if let [slot] = numeric[..] {
            for tag in &mut tags {
                if *tag != 0 {
                    let name = format!("{}{}", &self.tags[*tag][..2], slot);
                    *tag = self.tags.iter().position(|t| *t == name).ok_or_else(|| format!("no tag {name}"))?;
                }
            }
        }
        let slot_of = |tag: usize| if tag == 0 { None } else { self.tags[tag].split_once('-').map(|(_, s)| s.to_string()) };
        let mut words: std::collections::BTreeMap<u32, Vec<usize>> = std::collections::BTreeMap::new();
        for (i, w) in outputs.word_ids.iter().enumerate() {
            if let Some(w) = w { if i < tags.len() { words.entry(*w).or_default().push(i); } }
        }
        for pieces in words.values() {
            let first = slot_of(tags[pieces[0]]);
            if pieces.iter().any(|&i| slot_of(tags[i]) != first) {
                for &i in pieces { tags[i] = 0; }
            }
        }
        let mut spans: Vec<(String, usize, usize)> = Vec::new();
        let mut open = false;
        for (t, &(start, end)) in offsets.iter().enumerate() {
            let tag = &self.tags[tags[t]];
            if end <= start || tag == "O" {
                open = false;
                continue;
            }
            let (bio, slot) = tag.split_once('-').ok_or_else(|| format!("a tag without B- or I-: {tag}"))?;
            match spans.last_mut() {
                Some(last) if open && bio == "I" && last.0 == slot => last.2 = end,
                _ => spans.push((slot.to_string(), start, end)),
            }
            open = true;
        }
        // Python's _span_ranges: each span widened to every number it touches; a number two slots touch is a problem
        let numbers = if spans.is_empty() { Vec::new() } else { number_ranges(text) };
        let mut touched: Vec<((usize, usize), Vec<String>)> = Vec::new();
        for span in &mut spans {
            let (start, end) = (span.1, span.2);
            for &(a, b) in &numbers {
                if a < end && b > start {
                    span.1 = span.1.min(a);
                    span.2 = span.2.max(b);
                    match touched.iter_mut().find(|(r, _)| *r == (a, b)) {
                        Some((_, slots)) => if !slots.contains(&span.0) { slots.push(span.0.clone()) },
                        None => touched.push(((a, b), vec![span.0.clone()])),
                    }
                }
            }
        }
        let split: Vec<(usize, usize)> = touched.into_iter().filter(|(_, s)| s.len() > 1).map(|(r, _)| r).collect();
        let mut out: Vec<(String, usize, usize, bool)> = Vec::new();
        for (slot, mut start, end) in spans {
            let problem = split.iter().any(|&(a, b)| a < end && b > start);
            if start > 0 && text[start - 1] == '-' && (start < 2 || !text[start - 2].is_alphanumeric()) {
                start -= 1;
            }
            let span = (slot, start.min(text.len()), end.min(text.len()), problem);
            if !out.contains(&span) {
                out.push(span);
            }
        }
        Ok(out)
    }

    /// Python's untagged_numbers: the numbers said outside every slot span (text2num at the table's
    /// untagged_threshold, on the text with the spans blanked out).
    fn untagged_numbers(&self, text: &[char], spans: &[(String, usize, usize, bool)]) -> Vec<String> {
        let mut rest = text.to_vec();
        for (_, start, end, _) in spans {
            for c in &mut rest[*start..(*end).max(*start)] { *c = ' '; }
        }
        let threshold = self.words["untagged_threshold"].as_f64().unwrap_or(0.0);
        let lower = rest.iter().collect::<String>().to_lowercase();
        let digits = text2num::replace_numbers_in_text(&lower, &text2num::Language::english(), threshold);
        items(&digits).into_iter().filter(|i| i.starts_with(|c: char| c.is_ascii_digit() || c == '-')).collect()
    }

    /// Python's _quantity_items: the slot's words after text2num (threshold 0) from the first one that says how
    /// much (a number, an article, an amount, a unit of the slot, an ignored word); empty when none does.
    fn quantity_items(&self, slot: &str, words: &str) -> Vec<String> {
        let table = &self.words;
        let digits = text2num::replace_numbers_in_text(&words.to_lowercase(), &text2num::Language::english(), 0.0);
        let all = items(&digits);
        let first = all.iter().position(|item| {
            item.starts_with(|c: char| c.is_ascii_digit() || c == '-') || item == "a" || item == "an"
                || table["slot_amounts"][slot][item].is_number() || table["amounts"][item].is_number()
                || table["units"][slot][item].is_number()
                || table["ignored"].as_array().is_some_and(|a| a.iter().any(|w| w.as_str() == Some(item)))
        });
        first.map_or_else(Vec::new, |k| all[k..].to_vec())
    }

    /// Python's read_number over the slot's quantity_items: the schema's word table.
    fn read_number(&self, slot: &str, items: Vec<String>) -> Reading {
        let bad = Reading { value: None, problem: true };
        let table = &self.words;
        let (mut amounts, mut numbers, mut unit, mut article) = (Vec::new(), 0, None::<f64>, false);
        for item in items {
            let first = item.chars().next().unwrap_or(' ');
            if first.is_ascii_digit() || (first == '-' && item.len() > 1) {
                match item.parse::<f64>() {
                    Ok(v) => amounts.push(v),
                    Err(_) => return bad,
                }
                numbers += 1;
            } else if item == "a" || item == "an" {
                article = true;
            } else if let Some(v) = table["slot_amounts"][slot][&item].as_f64() {
                amounts.push(v);
            } else if let Some(v) = table["amounts"][&item].as_f64() {
                amounts.push(v);
            } else if let Some(v) = table["units"][slot][&item].as_f64() {
                if unit.is_some() {
                    return bad;
                }
                unit = Some(v);
            } else if !table["ignored"].as_array().is_some_and(|a| a.iter().any(|w| w.as_str() == Some(&item))) {
                return bad;
            }
        }
        if numbers > 1 {
            return bad;
        }
        if article && unit.is_some() && amounts.is_empty() {
            amounts.push(1.0);
        }
        if amounts.is_empty() {
            return bad;
        }
        let unit = match unit.or_else(|| table["default_unit"][slot].as_f64()) {
            Some(u) => u,
            None => return bad,
        };
        let mut value = 1.0;
        for a in amounts {
            value *= a;
        }
        value *= unit;
        let whole = table["whole"].as_array().is_some_and(|a| a.iter().any(|w| w.as_str() == Some(slot)));
        if !value.is_finite() || (whole && value.fract() != 0.0) {
            return bad;
        }
        Reading { value: Some(value), problem: false }
    }

    /// Python's _one_value: the single value the words give a slot (None and a problem when they do not).
    fn one_value(readings: &[(String, Reading)], slot: &str) -> (Option<f64>, bool) {
        let found: Vec<&Reading> = readings.iter().filter(|(s, _)| s == slot).map(|(_, r)| r).collect();
        if found.is_empty() || found.iter().any(|r| r.problem) {
            return (None, true);
        }
        let first = found[0].value;
        if found.iter().any(|r| r.value != first) {
            return (None, true);
        }
        (first, false)
    }

    fn needs(&self, action: &str, what: &str) -> bool {
        self.needs.get(action).and_then(Value::as_array).is_some_and(|a| a.iter().any(|v| v.as_str() == Some(what)))
    }

    /// Python's embodied_lib.hri.slots.decide (after text_problem): {"action", "params", "refused"}.
    /// `outputs`: action, slot, colour, direction, turn probabilities in the manifest's order.
    pub fn decide(&self, text: &str, outputs: &Outputs) -> Result<Value> {
        if self.text.problem(text).is_some() {
            return Ok(json!({"action": null, "params": {}, "refused": "bad text"}));
        }
        let v = &outputs.values;
        if v.len() != 5 {
            return Err(format!("a text pipeline gives 5 outputs, this one {}", v.len()));
        }
        let chars: Vec<char> = text.chars().collect();
        let best = argmax(&v[0]);
        let action = self.actions.get(best).ok_or("more probabilities than actions")?.as_str();
        let spans = self.slot_spans(&chars, outputs, action)?;
        let readings: Vec<(String, Reading)> = spans.iter().filter_map(|(slot, start, end, split)| {
            let words: String = chars[*start..(*end).max(*start)].iter().collect();
            if *split {
                return Some((slot.clone(), Reading { value: None, problem: true }));
            }
            // a word tagged by mistake that says no number at all is no reading
            let items = self.quantity_items(slot, &words);
            (!items.is_empty()).then(|| (slot.clone(), self.read_number(slot, items)))
        }).collect();
        let colour = self.colour_classes.get(argmax(&v[2])).ok_or("more colour scores than classes")?;
        let direction = self.direction_classes.get(argmax(&v[3])).ok_or("more direction scores than classes")?;
        let turn = self.turn_classes.get(argmax(&v[4])).ok_or("more turn scores than classes")?;
        let (mut params, mut missing, mut beyond) = (Map::new(), false, false);
        let mut values = Map::new();
        for slot in ["row", "col", "distance"] {
            if self.needs(action, slot) {
                let (value, problem) = Self::one_value(&readings, slot);
                missing |= problem;
                if let Some(x) = value { values.insert(slot.into(), json!(x)); }
            }
        }
        if let (Some(r), Some(c)) = (values.get("row").and_then(Value::as_f64), values.get("col").and_then(Value::as_f64)) {
            for (key, x) in [("row", r), ("col", c)] {
                let (lo, hi) = self.range(key, "range")?;
                beyond |= x < lo || x > hi;
                params.insert(key.into(), json!(x as i64));
            }
        }
        if self.needs(action, "colour") {
            missing |= colour == "none";
            let known = self.colours.contains(colour);
            beyond |= !known;
            params.insert("colour".into(), if known { json!(colour) } else { Value::Null });
        }
        if action == "move" {
            missing |= direction == "none";
            if direction != "none" {
                params.insert("direction".into(), json!(direction));
            }
            if let Some(d) = values.get("distance").and_then(Value::as_f64) {
                let (lo, hi) = self.range("distance", "range")?;
                beyond |= d < lo || d > hi;
                params.insert("distance_cm".into(), json!(d));
            }
        }
        if action == "rotate" {
            let (magnitude, problem) = Self::one_value(&readings, "angle");
            let (_, max_angle) = self.range("angle", "range")?;
            missing |= problem;
            if let Some(m) = magnitude {
                if m < 0.0 {
                    beyond = true;
                } else if turn == "none" && m != max_angle {
                    missing = true;
                }
                beyond |= m > max_angle;
                let sign = if turn == "right" { -1.0 } else { 1.0 };
                params.insert("angle_deg".into(), json!(sign * m));
            }
        }
        missing |= action != "stop" && !self.untagged_numbers(&chars, &spans).is_empty();
        let refused = if (v[0][best] as f64) < self.threshold { json!("low confidence") }
                      else if missing { json!("incomplete") }
                      else if beyond { json!("out of range") } else { Value::Null };
        Ok(json!({"action": action, "params": params, "refused": refused}))
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

