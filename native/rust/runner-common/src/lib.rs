//! The command-line contract shared with the C++ runners (native/cpp/runner_common.hpp):
//!
//!     <runner> MODEL GOLDEN [--manifest MANIFEST] [--iterations N] [--public-key PEM]
//!
//! MANIFEST is the export folder's manifest.json (default: beside MODEL): how each output is judged,
//! the tolerance, the input shapes, and for the twins the layer graph. Each golden vector runs at batch
//! 1 and is compared with the eager output stored beside it; then N timed runs of vector 0 (after
//! warm-up) give p50/p99/mean latency (nearest-rank percentiles). Output: one JSON object of the schema
//! in embodied_lib.native.RUNNER_KEYS, the text pipeline's too. Any problem prints one line
//! `error: ...` and exits 1 (usage errors exit 2).
//!
//! Trust (embodied_lib/export/trust.py): before the model is opened, its sha256 and size must be the
//! manifest's; with `--public-key` the manifest's Ed25519 signature (manifest.sig beside it) must verify.
//! Files are read only if they are regular files under a size cap; every size read from a file is
//! checked arithmetic; golden outputs must be finite; inputs must be inside the manifest's `valid` range.
use std::io::Write as _;
use std::path::Path;
use std::time::Instant;

use serde_json::{json, Value};

pub type Result<T> = std::result::Result<T, String>;

pub struct Tensor {
    pub name: String,
    pub shape: Vec<i64>,
    pub data: Vec<f32>,
}

impl Tensor {
    pub fn row_shape(&self) -> Vec<i64> {
        self.shape.iter().skip(1).copied().collect()
    }
    pub fn row_size(&self) -> usize {
        self.shape.iter().skip(1).product::<i64>().max(0) as usize
    }
    pub fn row(&self, r: usize) -> &[f32] {
        let n = self.row_size();
        &self.data[r * n..(r + 1) * n]
    }
}

pub struct Golden {
    pub inputs: Vec<Tensor>,
    pub outputs: Vec<Tensor>,
    pub count: usize,
}

/// Largest file any runner reads whole (golden vectors, manifests, keys); models are hashed in a stream.
pub const MAX_FILE_BYTES: u64 = 512 << 20;
pub const MAX_ITERATIONS: u64 = 1_000_000;
const MAX_RANK: usize = 8;
const MAX_NAME: usize = 256;

/// A regular file (not a FIFO, a device or a directory) of at most `cap` bytes, else an error naming it.
fn check_meta(meta: &std::fs::Metadata, path: &str, what: &str, cap: u64) -> Result<u64> {
    if !meta.is_file() {
        return Err(format!("{what} {path} is not a regular file"));
    }
    if meta.len() == 0 {
        return Err(format!("{what} {path} is empty"));
    }
    if meta.len() > cap {
        return Err(format!("{what} {path} has {} bytes, more than the {cap} a {what} may have", meta.len()));
    }
    Ok(meta.len())
}

pub fn check_regular(path: &str, what: &str, cap: u64) -> Result<u64> {
    let meta = std::fs::metadata(path).map_err(|e| format!("{what} {path} not found or unreadable ({e})"))?;
    check_meta(&meta, path, what, cap)
}

/// Linux's O_NONBLOCK: opening a FIFO for reading returns at once (and fstat refuses it) instead of waiting.
const O_NONBLOCK: i32 = 0o4000;

/// The whole file from one open descriptor, checked with fstat on that descriptor (what is checked is what is
/// read). Every file a runner uses is read through here, once.
pub fn read_capped(path: &str, what: &str, cap: u64) -> Result<Vec<u8>> {
    use std::io::Read as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let file = std::fs::OpenOptions::new().read(true).custom_flags(O_NONBLOCK).open(path)
        .map_err(|e| format!("{what} {path} not found or unreadable ({e})"))?;
    let size = check_meta(&file.metadata().map_err(|e| format!("{what} {path} unreadable ({e})"))?, path, what, cap)?;
    let mut bytes = Vec::with_capacity(size as usize);
    file.take(cap + 1).read_to_end(&mut bytes).map_err(|e| format!("{what} {path} unreadable ({e})"))?;
    if bytes.len() as u64 > cap {
        return Err(format!("{what} {path} grew past {cap} bytes while being read"));
    }
    Ok(bytes)
}

pub fn read_file(path: &str, what: &str) -> Result<Vec<u8>> {
    read_capped(path, what, MAX_FILE_BYTES)
}

/// sha256 (hex) of bytes in memory.
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

/// A model file's bytes as read once and checked against the manifest: what the runtime loads (from memory),
/// never the path again.
pub struct ModelFile {
    pub path: String,
    pub bytes: Vec<u8>,
    pub entry: Value,
}

/// Why an artifact's manifest entry forbids loading it (embodied_lib.export.parity.refusal), or None when it may
/// load: every artifact carries the verdict of the parity check the export ran on it, and only `"passed": true` is
/// served.
pub fn parity_refusal(model: &str, entry: &Value) -> Option<String> {
    let verdict = &entry["parity"];
    match verdict["passed"].as_bool() {
        Some(true) => None,
        None => Some(format!("{model} has no parity verdict in its manifest (an export from before verdicts were \
                              recorded, or an edited manifest); re-export it")),
        Some(false) => {
            let agreement = verdict["decision_agreement"].as_object().map(|m| {
                m.iter().map(|(k, v)| format!("{k} {}", v.as_f64().map_or("?".into(), |x| format!("{x:.3}"))))
                    .collect::<Vec<_>>().join(", ")
            }).filter(|s| !s.is_empty()).unwrap_or_else(|| "n/a".into());
            let diff = verdict["max_abs_diff"].as_f64().map_or("NaN/Inf".into(), |d| format!("{d:.4}"));
            Some(format!("{model} failed its parity check at export (max |diff| {diff} against a tolerance of {}, \
                          decision agreement {agreement} against {} required); it is never served",
                         verdict["tolerance"], verdict["agreement"]))
        }
    }
}

/// The model file is one the manifest lists (same size and sha256, whatever its name), and an artifact whose parity
/// verdict passed (parity_refusal). Runs before any runtime parses the file. Returns its bytes and its manifest entry.
pub fn verify_model_file(model: &str, manifest: &Value) -> Result<ModelFile> {
    let bytes = read_capped(model, "model file", 4 << 30)?;
    let (size, digest) = (bytes.len() as u64, sha256_hex(&bytes));
    let matches = |a: &&Value| a["sha256"].as_str() == Some(digest.as_str()) && a["bytes"].as_u64() == Some(size);
    if let Some(entry) = manifest["artifacts"].as_array().into_iter().flatten().find(matches) {
        if let Some(refused) = parity_refusal(model, entry) {
            return Err(refused);
        }
        return Ok(ModelFile { path: model.to_string(), bytes, entry: entry.clone() });
    }
    let entry = manifest["extra_files"].as_array().into_iter().flatten().find(matches)
        .cloned()
        .ok_or_else(|| format!("{model} ({size} bytes) matches no file the manifest lists by size and sha256 \
                                (truncated, corrupted or replaced?)"))?;
    Ok(ModelFile { path: model.to_string(), bytes, entry })
}

/// The process's peak resident memory so far (VmHWM in /proc/self/status), in MiB; 0 where it cannot be read.
pub fn peak_rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status").ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("VmHWM:"))
            .and_then(|l| l.split_whitespace().nth(1)).and_then(|kb| kb.parse::<f64>().ok()))
        .map_or(0.0, |kb| kb / 1024.0)
}

/// manifest.sig beside the manifest must be an Ed25519 signature of `message` (the manifest's bytes as the caller
/// read them, and then parses) by the PEM public key.
pub fn verify_signature(manifest_path: &str, message: &[u8], public_key: &str) -> Result<()> {
    use ed25519_dalek::pkcs8::DecodePublicKey as _;
    use ed25519_dalek::{Signature, Verifier as _, VerifyingKey};
    let pem = String::from_utf8(read_file(public_key, "public key")?).map_err(|_| format!("public key {public_key} is not PEM text"))?;
    let key = VerifyingKey::from_public_key_pem(&pem).map_err(|e| format!("public key {public_key} is not an Ed25519 PEM public key ({e})"))?;
    let sig_path = Path::new(manifest_path).with_file_name("manifest.sig").to_string_lossy().into_owned();
    let sig = read_file(&sig_path, "manifest signature")?;
    let sig = Signature::from_slice(&sig).map_err(|_| format!("{sig_path} is not an Ed25519 signature (64 bytes)"))?;
    key.verify(message, &sig)
        .map_err(|_| format!("the signature {sig_path} does not verify against the public key {public_key}: \
                              the manifest was changed after signing, or signed by another key"))
}

/// Reads golden.bin (format: embodied_lib/export/golden.py).
pub fn read_golden(path: &str) -> Result<Golden> {
    let b = read_file(path, "golden-vector file")?;
    let truncated = || format!("golden-vector file {path} is truncated");
    let mut pos = 0usize;
    let mut take = |n: usize| -> Result<&[u8]> {
        let s = b.get(pos..pos + n).ok_or_else(truncated)?;
        pos += n;
        Ok(s)
    };
    if take(8)? != b"EMBGOLD1" {
        return Err(format!("{path} is not a golden-vector file"));
    }
    let u32_at = |s: &[u8]| s.try_into().map(|a| u32::from_le_bytes(a) as usize).map_err(|_| truncated());
    let count = u32_at(take(4)?)?;
    let (mut inputs, mut outputs) = (Vec::new(), Vec::new());
    for _ in 0..count.min(64) {
        let len = u32_at(take(4)?)?;
        if len > MAX_NAME {
            return Err(format!("{path}: a tensor name of {len} bytes (at most {MAX_NAME})"));
        }
        let name = String::from_utf8_lossy(take(len)?).into_owned();
        let rank = u32_at(take(4)?)?;
        if !(1..=MAX_RANK).contains(&rank) {
            return Err(format!("{path}: tensor {name} has rank {rank} (1 to {MAX_RANK})"));
        }
        let shape: Vec<i64> = take(8 * rank)?.chunks(8).map(|c| i64::from_le_bytes(c.try_into().unwrap_or([0; 8]))).collect();
        let mut n = 1usize;
        for &d in &shape {
            if d <= 0 {
                return Err(format!("{path}: tensor {name} has a dimension of {d} (every dimension must be > 0)"));
            }
            n = n.checked_mul(d as usize).filter(|&n| n <= b.len() / 4)
                .ok_or_else(|| format!("{path}: tensor {name} of shape {shape:?} is larger than the file"))?;
        }
        let data: Vec<f32> = take(4 * n)?.chunks(4).map(|c| f32::from_le_bytes(c.try_into().unwrap_or([0; 4]))).collect();
        let t = Tensor { name, shape, data };
        if t.name.starts_with("output.") && t.data.iter().any(|v| !v.is_finite()) {
            return Err(format!("{path}: expected output {} holds NaN or Inf, so nothing can be compared with it", t.name));
        }
        if t.name.starts_with("input.") {
            inputs.push(t);
        } else if t.name.starts_with("output.") {
            outputs.push(t);
        }
    }
    if inputs.is_empty() || outputs.is_empty() {
        return Err(format!("{path} holds no input/output tensors"));
    }
    let count = inputs[0].shape[0] as usize;
    if let Some(t) = inputs.iter().chain(&outputs).find(|t| t.shape[0] as usize != count) {
        return Err(format!("{path}: {} has {} rows but {} has {count}; every tensor needs one row per vector",
                           t.name, t.shape[0], inputs[0].name));
    }
    Ok(Golden { inputs, outputs, count })
}

pub fn read_manifest(path: &str) -> Result<Value> {
    read_verified_manifest(path, None)
}

/// The manifest from one read; with a public key, its signature is checked over those same bytes first.
pub fn read_verified_manifest(path: &str, public_key: Option<&str>) -> Result<Value> {
    let bytes = read_file(path, "manifest")?;
    if let Some(key) = public_key {
        verify_signature(path, &bytes, key)?;
    }
    serde_json::from_slice(&bytes).map_err(|e| format!("manifest {path} is not valid JSON: {e}"))
}

/// Per-input feature shapes the manifest declares (batch excluded; -1 for a named, dynamic dimension).
pub fn manifest_input_shapes(manifest: &Value) -> Result<Vec<Vec<i64>>> {
    let inputs = manifest["inputs"].as_array().ok_or("the manifest lists no inputs")?;
    Ok(inputs
        .iter()
        .map(|i| i["shape"].as_array().map(|s| s.iter().skip(1).map(|d| d.as_i64().unwrap_or(-1)).collect()).unwrap_or_default())
        .collect())
}

/// What a runtime provides: per-input feature shapes it expects (batch excluded, -1 where dynamic) and
/// a batch-1 run on inputs of the given feature shapes.
pub trait Model {
    fn input_shapes(&self) -> Vec<Vec<i64>>;
    fn run(&mut self, inputs: &[&[f32]], shapes: &[Vec<i64>]) -> Result<Vec<Vec<f32>>>;
}

/// The decision a model's outputs carry, from the manifest's "judged" entries: the argmax of the first
/// discrete/probabilities output, else the first binary decision of a continuous output, else none.
pub struct DecisionRule {
    pub name: Option<String>,
    pub output: usize,
    index: usize,
    above: f64,
}

impl DecisionRule {
    pub fn from_manifest(manifest: &Value) -> Self {
        let outputs = manifest["outputs"].as_array().cloned().unwrap_or_default();
        for (k, o) in outputs.iter().enumerate() {
            if matches!(o["judged"]["kind"].as_str(), Some("discrete") | Some("probabilities")) {
                return Self { name: Some("argmax".into()), output: k, index: 0, above: 0.0 };
            }
        }
        for (k, o) in outputs.iter().enumerate() {
            if let Some(d) = o["judged"]["decisions"].as_array().and_then(|d| d.first()) {
                return Self {
                    name: d["name"].as_str().map(String::from),
                    output: k,
                    index: d["index"].as_u64().unwrap_or(u64::MAX) as usize,
                    above: d["above"].as_f64().unwrap_or(0.0),
                };
            }
        }
        Self { name: None, output: 0, index: 0, above: 0.0 }
    }

    /// (decision, margin): the margin is how far the value is from flipping the decision.
    pub fn decide(&self, v: &[f32]) -> Result<(i64, f64)> {
        if self.name.as_deref() == Some("argmax") {
            let best = v.iter().enumerate().fold(0, |b, (i, x)| if *x > v[b] { i } else { b });
            let second = v.iter().enumerate().filter(|(i, _)| *i != best).map(|(_, x)| *x as f64).fold(f64::NEG_INFINITY, f64::max);
            return Ok((best as i64, v[best] as f64 - second));
        }
        let x = *v.get(self.index).ok_or_else(|| format!("decision reads element {} of an output with {} values", self.index, v.len()))?;
        Ok((i64::from(x as f64 > self.above), (x as f64 - self.above).abs()))
    }
}

/// Max |diff| per output, and decision agreement, accumulated over vectors: the parity every runner reports.
pub struct Parity {
    names: Vec<String>,
    limits: Vec<f64>,
    max_by_output: Vec<f64>,
    rule: DecisionRule,
    tolerance: f64,
    tie_margin: f64,
    required_agreement: f64,
    agree: usize,
    compared: usize,
    decisions: Vec<Value>,
}

impl Parity {
    /// ``entry``: the model file's manifest entry; an INT8 file carries its own rule (embodied_lib.export.parity_rule):
    /// a looser value tolerance and the share of decisions that must stay. A float file: the model's tolerance, all.
    pub fn new(manifest: &Value, entry: &Value) -> Result<Self> {
        let names: Vec<String> = manifest["outputs"].as_array().ok_or("the manifest lists no outputs")?
            .iter().map(|o| o["name"].as_str().unwrap_or("?").to_string()).collect();
        let model_tolerance = manifest["tolerance"].as_f64().ok_or("the manifest has no tolerance")?;
        let rule = &entry["parity"];
        // the largest magnitude each output can hold (embodied_lib.export.output_limit); beyond it, a damaged file
        let limits = manifest["outputs"].as_array().into_iter().flatten()
            .map(|o| o["max_abs"].as_f64().filter(|v| *v > 0.0).unwrap_or(f64::INFINITY)).collect();
        Ok(Self { max_by_output: vec![0.0; names.len()], names, limits, rule: DecisionRule::from_manifest(manifest),
                  tolerance: rule["tolerance"].as_f64().unwrap_or(model_tolerance),
                  tie_margin: rule["tie_margin"].as_f64().unwrap_or(model_tolerance),
                  required_agreement: rule["agreement"].as_f64().unwrap_or(1.0),
                  agree: 0, compared: 0, decisions: Vec::new() })
    }

    /// One vector: the runtime's outputs against the expected ones, in manifest order.
    pub fn add(&mut self, got: &[Vec<f32>], expected: &[&[f32]]) -> Result<()> {
        let custom_rule = self.rule.output == usize::MAX;
        if got.len() != self.names.len() || expected.len() != self.names.len() {
            return Err(format!("the manifest declares {} outputs, the model gave {}, the reference has {}",
                               self.names.len(), got.len(), expected.len()));
        }
        for (k, (g, e)) in got.iter().zip(expected).enumerate() {
            if g.len() != e.len() {
                return Err(format!("output {} has {} values, expected {}", self.names[k], g.len(), e.len()));
            }
            if g.iter().any(|v| !v.is_finite()) {
                return Err(format!("the model returned NaN or Inf in output {}", self.names[k]));
            }
            let limit = self.limits.get(k).copied().unwrap_or(f64::INFINITY);
            if let Some(v) = g.iter().find(|v| (**v as f64).abs() > limit) {
                return Err(format!("the model returned {v} in output {}, beyond the {limit} the manifest says it can \
                                    produce (damaged file?)", self.names[k]));
            }
            for (a, b) in g.iter().zip(e.iter()) {
                self.max_by_output[k] = self.max_by_output[k].max((*a as f64 - *b as f64).abs());
            }
        }
        if self.rule.name.is_some() && !custom_rule {
            let (have, _) = self.rule.decide(&got[self.rule.output])?;
            let (want, margin) = self.rule.decide(expected[self.rule.output])?;
            if margin > self.tie_margin {  // a near-tie in the reference is not a decision to keep
                self.record_decision(json!(have), have == want);
            } else {
                self.decisions.push(json!(have));
            }
        }
        Ok(())
    }

    /// Replace the manifest's rule by one the runner computes itself (the text pipeline's whole command).
    pub fn with_rule(mut self, name: &str) -> Self {
        self.rule = DecisionRule { name: Some(name.to_string()), output: usize::MAX, index: 0, above: 0.0 };
        self
    }

    /// One compared decision: what the runner decided, and whether it is the reference's.
    pub fn record_decision(&mut self, decision: Value, agrees: bool) {
        self.decisions.push(decision);
        self.compared += 1;
        self.agree += usize::from(agrees);
    }

    /// The runner JSON (RUNNER_KEYS), given the other fields.
    pub fn report(&self, runner: &str, model: &str, manifest: &Value, vectors: usize, outputs: Vec<Vec<f32>>, ms: Vec<f64>) -> String {
        let max_diff = self.max_by_output.iter().copied().fold(0.0, f64::max);
        let by_output: serde_json::Map<String, Value> =
            self.names.iter().cloned().zip(self.max_by_output.iter().map(|v| json!(v))).collect();
        json!({
            "runner": runner, "model": model, "model_name": manifest["model"].as_str().unwrap_or(""),
            "vectors": vectors, "max_abs_diff": max_diff, "max_abs_diff_by_output": by_output,
            "tolerance": self.tolerance,
            "decision": {"rule": self.rule.name, "agreement": self.agree, "compared": self.compared, "values": self.decisions},
            "required_agreement": self.required_agreement,
            "passed": max_diff <= self.tolerance && self.agree as f64 >= self.required_agreement * self.compared as f64 - 1e-9,
            "outputs": outputs, "latency_ms": latency_json(ms), "peak_rss_mb": peak_rss_mb(),
        })
        .to_string()
    }
}

fn usage(prog: &str, what: &str) -> String {
    format!(
        "usage: {prog} MODEL GOLDEN [--manifest MANIFEST] [--iterations N] [--public-key PEM]\n\n{what}\n\n\
         \x20 MODEL            exported model file (see exports/<model>/manifest.json)\n\
         \x20 GOLDEN           golden vectors with inputs and expected outputs\n\
         \x20 --manifest M     the export's manifest.json (default: beside MODEL)\n\
         \x20 --iterations N   timed batch-1 runs after warm-up (default 100, at most 1000000)\n\
         \x20 --public-key K   verify the manifest's Ed25519 signature (manifest.sig) with this PEM key\n\
         \x20 -h, --help       this help\n\n\
         Prints JSON: max_abs_diff (overall and per output) vs golden, the decision the outputs carry\n\
         (argmax or a binary decision, as the manifest judges them) and its agreement, latency p50/p99/mean (ms).\n"
    )
}

/// Nearest rank: sorted[ceil(p / 100 * n) - 1], the definition Python and C++ use too.
fn percentile(sorted: &[f64], p: f64) -> f64 {
    let i = ((p / 100.0 * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i]
}

pub struct Args {
    pub model: String,
    pub golden: String,
    pub manifest: String,
    pub iterations: usize,
    pub public_key: Option<String>,
}

/// A decimal integer in [1, MAX_ITERATIONS], digits only ("1e3", "5abc", "-1" and "" are not).
fn parse_iterations(v: &str) -> Option<usize> {
    if v.is_empty() || v.len() > 7 || !v.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    v.parse::<u64>().ok().filter(|n| (1..=MAX_ITERATIONS).contains(n)).map(|n| n as usize)
}

/// The shared command line. `Err(code)`: help was printed (0) or the arguments were wrong (2).
pub fn parse_args(name: &str, what: &str) -> std::result::Result<Args, i32> {
    let args: Vec<String> = std::env::args().collect();
    let prog = args.first().map(String::as_str).unwrap_or(name);
    let (mut positional, mut iterations, mut manifest, mut public_key) = (Vec::new(), 100usize, None, None);
    let mut it = args.iter().skip(1);
    while let Some(a) = it.next() {
        match a.as_str() {
            "-h" | "--help" => {
                print!("{}", usage(prog, what));
                return Err(0);
            }
            "--iterations" => match it.next().and_then(|v| parse_iterations(v)) {
                Some(v) => iterations = v,
                None => {
                    eprintln!("error: --iterations must be an integer from 1 to {MAX_ITERATIONS}");
                    return Err(2);
                }
            },
            "--public-key" => match it.next() {
                Some(v) => public_key = Some(v.clone()),
                None => {
                    eprintln!("error: --public-key needs a PEM file");
                    return Err(2);
                }
            },
            "--manifest" => match it.next() {
                Some(v) => manifest = Some(v.clone()),
                None => {
                    eprintln!("error: --manifest needs a path");
                    return Err(2);
                }
            },
            s if s.starts_with('-') => {
                eprintln!("error: unknown option {s} (see --help)");
                return Err(2);
            }
            _ => positional.push(a.clone()),
        }
    }
    if positional.len() != 2 {
        eprint!("{}", usage(prog, what));
        return Err(2);
    }
    let manifest = manifest.unwrap_or_else(|| {
        Path::new(&positional[0]).with_file_name("manifest.json").to_string_lossy().into_owned()
    });
    Ok(Args { model: positional[0].clone(), golden: positional[1].clone(), manifest, iterations, public_key })
}

/// Prints the JSON or the one-line error; returns the exit code.
pub fn finish(result: Result<String>) -> i32 {
    match result {
        Ok(json) => {
            // a closed pipe (`| head`) is the reader's choice, not an error worth a panic
            let _ = writeln!(std::io::stdout(), "{json}");
            0
        }
        Err(msg) => {
            eprintln!("error: {}", msg.replace('\n', " ").chars().take(400).collect::<String>());
            1
        }
    }
}

/// Parses arguments, loads golden vectors, manifest and the model (via `load`), checks, runs, prints JSON.
pub fn run_main(name: &str, what: &str, load: impl FnOnce(ModelFile, &Value) -> Result<Box<dyn Model>>) -> i32 {
    match parse_args(name, what) {
        Ok(a) => finish(run(name, &a, load)),
        Err(code) => code,
    }
}

/// Warm-up, then `iterations` timed calls of `f`; the timings in milliseconds.
pub fn time_runs(iterations: usize, mut f: impl FnMut() -> Result<()>) -> Result<Vec<f64>> {
    for _ in 0..iterations.min(20) {
        f()?;
    }
    let mut ms = Vec::with_capacity(iterations);
    for _ in 0..iterations {
        let t0 = Instant::now();
        f()?;
        ms.push(t0.elapsed().as_secs_f64() * 1e3);
    }
    Ok(ms)
}

/// p50 / p99 / mean of timings in milliseconds.
pub fn latency_json(mut ms: Vec<f64>) -> Value {
    let mean = ms.iter().sum::<f64>() / ms.len().max(1) as f64;
    ms.sort_by(|a, b| a.total_cmp(b));
    json!({"p50": percentile(&ms, 50.0), "p99": percentile(&ms, 99.0), "mean": mean, "iterations": ms.len(), "batch": 1})
}

/// The concrete per-vector shape of every input: the golden's, checked against the manifest (static
/// dimensions must match, named ones are dynamic) and against the model where it reports a static size.
pub fn resolve_shapes(g: &Golden, manifest: &Value, model: &[Vec<i64>]) -> Result<Vec<Vec<i64>>> {
    let declared = manifest_input_shapes(manifest)?;
    if model.len() != g.inputs.len() || declared.len() != g.inputs.len() {
        return Err(format!("model takes {} inputs, the manifest {}, golden file has {}", model.len(), declared.len(), g.inputs.len()));
    }
    let mut shapes = Vec::new();
    for ((t, expected), reported) in g.inputs.iter().zip(&declared).zip(model) {
        let got = t.row_shape();
        let ok = got.len() == expected.len()
            && got.iter().enumerate().all(|(d, &n)| {
                n > 0 && (expected[d] < 0 || (expected[d] == n && reported.get(d).map_or(true, |&m| m < 0 || m == n)))
            });
        if !ok {
            return Err(format!("input {} has {} values per vector {:?}, the model expects {:?}", t.name, t.row_size(), got, expected));
        }
        if let Some(j) = t.data.iter().position(|v| !v.is_finite()) {
            return Err(format!("input {} vector {} contains NaN or Inf", t.name, j / t.row_size().max(1)));
        }
        check_values(t, &manifest["inputs"][shapes.len()])?;
        shapes.push(got);
    }
    Ok(shapes)
}

/// The manifest's value rules for one input: inside `valid` [lo, hi], and rows not all zero where it
/// says `nonzero_rows` (Python's embodied_lib.spec.ModelSpec.check_inputs).
pub fn check_values(t: &Tensor, declared: &Value) -> Result<()> {
    let valid = declared["valid"].as_array().ok_or_else(|| format!("the manifest gives input {} no valid range", t.name))?;
    let (lo, hi) = match (valid.first().and_then(Value::as_f64), valid.get(1).and_then(Value::as_f64)) {
        (Some(lo), Some(hi)) => (lo, hi),
        _ => return Err(format!("the manifest's valid range of input {} is not two numbers", t.name)),
    };
    if let Some(v) = t.data.iter().find(|&&v| (v as f64) < lo || (v as f64) > hi) {
        return Err(format!("input {} holds {v}, outside the valid range [{lo}, {hi}]", t.name));
    }
    if declared["nonzero_rows"].as_bool() == Some(true) && t.row_size() > 0 && t.data.chunks(t.row_size()).any(|r| r.iter().all(|&v| v == 0.0)) {
        return Err(format!("input {} has a row of zeros (an attention mask must keep at least one token)", t.name));
    }
    Ok(())
}

fn run(name: &str, a: &Args, load: impl FnOnce(ModelFile, &Value) -> Result<Box<dyn Model>>) -> Result<String> {
    let g = read_golden(&a.golden)?;
    let manifest = read_verified_manifest(&a.manifest, a.public_key.as_deref())?;
    let file = verify_model_file(&a.model, &manifest)?;
    let entry = file.entry.clone();
    let mut model = load(file, &manifest)?;
    let shapes = resolve_shapes(&g, &manifest, &model.input_shapes())?;
    let mut parity = Parity::new(&manifest, &entry)?;
    let row = |r: usize| g.inputs.iter().map(|t| t.row(r)).collect::<Vec<_>>();
    let mut first = Vec::new();
    for r in 0..g.count {
        let out = model.run(&row(r), &shapes)?;
        let expected: Vec<&[f32]> = g.outputs.iter().map(|t| t.row(r)).collect();
        parity.add(&out, &expected).map_err(|e| format!("{}: {e}", a.model))?;
        first.push(out.into_iter().next().unwrap_or_default());
    }
    let x0 = row(0);
    let ms = time_runs(a.iterations, || model.run(&x0, &shapes).map(|_| ()))?;
    Ok(parity.report(name, &a.model, &manifest, g.count, first, ms))
}
