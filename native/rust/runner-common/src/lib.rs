//! The command-line contract shared with the C++ runners (native/cpp/runner_common.hpp):
//!
//!     <runner> MODEL GOLDEN [--iterations N]
//!
//! Each golden vector runs at batch 1 and is compared with the eager output stored beside it;
//! then N timed runs of vector 0 (after warm-up) give p50/p99/mean latency. Output: one JSON
//! object. Any problem prints one line `error: ...` and exits 1 (usage errors exit 2).
use std::fmt::Write as _;
use std::io::Write as _;
use std::time::Instant;

pub type Result<T> = std::result::Result<T, String>;

pub struct Tensor {
    pub name: String,
    pub shape: Vec<i64>,
    pub data: Vec<f32>,
}

impl Tensor {
    pub fn row_size(&self) -> usize {
        self.shape.iter().skip(1).product::<i64>() as usize
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

pub fn read_file(path: &str, what: &str) -> Result<Vec<u8>> {
    let bytes = std::fs::read(path).map_err(|e| format!("{what} {path} not found or unreadable ({e})"))?;
    if bytes.is_empty() {
        return Err(format!("{what} {path} is empty"));
    }
    Ok(bytes)
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
    let u32_at = |s: &[u8]| u32::from_le_bytes(s.try_into().unwrap()) as usize;
    let count = u32_at(take(4)?);
    let (mut inputs, mut outputs) = (Vec::new(), Vec::new());
    for _ in 0..count {
        let len = u32_at(take(4)?);
        let name = String::from_utf8_lossy(take(len)?).into_owned();
        let rank = u32_at(take(4)?);
        let shape: Vec<i64> = take(8 * rank)?.chunks(8).map(|c| i64::from_le_bytes(c.try_into().unwrap())).collect();
        let n = shape.iter().product::<i64>() as usize;
        let data: Vec<f32> = take(4 * n)?.chunks(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect();
        let t = Tensor { name, shape, data };
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
    Ok(Golden { inputs, outputs, count })
}

/// What a runtime provides: per-input value counts it expects (batch excluded) and a batch-1 run.
pub trait Model {
    fn input_sizes(&self) -> Vec<usize>;
    fn run(&mut self, inputs: &[&[f32]]) -> Result<Vec<Vec<f32>>>;
}

fn usage(prog: &str, what: &str) -> String {
    format!(
        "usage: {prog} MODEL GOLDEN [--iterations N]\n\n{what}\n\n\
         \x20 MODEL            exported model file (see exports/<model>/manifest.json)\n\
         \x20 GOLDEN           golden.bin with inputs and expected outputs\n\
         \x20 --iterations N   timed batch-1 runs after warm-up (default 100)\n\
         \x20 -h, --help       this help\n\n\
         Prints JSON: outputs, argmax actions, max_abs_diff vs golden, latency p50/p99/mean (ms).\n"
    )
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let i = ((p / 100.0 * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i]
}

pub struct Args {
    pub model: String,
    pub golden: String,
    pub iterations: usize,
}

/// The shared command line. `Err(code)`: help was printed (0) or the arguments were wrong (2).
pub fn parse_args(name: &str, what: &str) -> std::result::Result<Args, i32> {
    let args: Vec<String> = std::env::args().collect();
    let prog = args.first().map(String::as_str).unwrap_or(name);
    let (mut positional, mut iterations) = (Vec::new(), 100usize);
    let mut it = args.iter().skip(1);
    while let Some(a) = it.next() {
        match a.as_str() {
            "-h" | "--help" => {
                print!("{}", usage(prog, what));
                return Err(0);
            }
            "--iterations" => match it.next().and_then(|v| v.parse::<usize>().ok()).filter(|&v| v > 0) {
                Some(v) => iterations = v,
                None => {
                    eprintln!("error: --iterations must be a positive integer");
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
    Ok(Args { model: positional[0].clone(), golden: positional[1].clone(), iterations })
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

/// Parses arguments, loads golden vectors and the model (via `load`), checks, runs, prints JSON.
pub fn run_main(name: &str, what: &str, load: impl FnOnce(&str) -> Result<Box<dyn Model>>) -> i32 {
    match parse_args(name, what) {
        Ok(a) => finish(run(name, &a.model, &a.golden, a.iterations, load)),
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

/// p50 / p99 / mean of timings in milliseconds, as the JSON fragment every runner prints.
pub fn latency_json(mut ms: Vec<f64>) -> String {
    let mean = ms.iter().sum::<f64>() / ms.len() as f64;
    ms.sort_by(|a, b| a.partial_cmp(b).unwrap());
    format!("{{\"p50\":{},\"p99\":{},\"mean\":{mean},\"iterations\":{},\"batch\":1}}",
            percentile(&ms, 50.0), percentile(&ms, 99.0), ms.len())
}

fn run(name: &str, model_path: &str, golden_path: &str, iterations: usize,
       load: impl FnOnce(&str) -> Result<Box<dyn Model>>) -> Result<String> {
    let g = read_golden(golden_path)?;
    let mut model = load(model_path)?;
    let sizes = model.input_sizes();
    if sizes.len() != g.inputs.len() {
        return Err(format!("model takes {} inputs, golden file has {}", sizes.len(), g.inputs.len()));
    }
    for (want, t) in sizes.iter().zip(&g.inputs) {
        if *want != t.row_size() {
            return Err(format!("input {} has {} values per vector, the model expects {want}", t.name, t.row_size()));
        }
        if let Some(j) = t.data.iter().position(|v| !v.is_finite()) {
            return Err(format!("input {} vector {} contains NaN or Inf", t.name, j / t.row_size()));
        }
    }
    let row = |r: usize| g.inputs.iter().map(|t| t.row(r)).collect::<Vec<_>>();
    let (mut max_diff, mut actions, mut first) = (0f64, Vec::new(), Vec::new());
    for r in 0..g.count {
        let out = model.run(&row(r))?;
        if out.len() != g.outputs.len() {
            return Err("model returned an unexpected number of outputs".into());
        }
        for (o, want) in out.iter().zip(&g.outputs) {
            if o.len() != want.row_size() {
                return Err(format!("output {} has {} values, expected {}", want.name, o.len(), want.row_size()));
            }
            for (a, b) in o.iter().zip(want.row(r)) {
                max_diff = max_diff.max((*a as f64 - *b as f64).abs());
            }
        }
        let argmax = out[0].iter().enumerate().fold(0, |best, (i, v)| if *v > out[0][best] { i } else { best });
        actions.push(argmax);
        first.push(out[0].clone());
    }
    let x0 = row(0);
    let ms = time_runs(iterations, || model.run(&x0).map(|_| ()))?;
    let mut s = String::new();
    let list = |v: &[f32]| v.iter().map(|x| format!("{x:?}")).collect::<Vec<_>>().join(",");
    write!(s, "{{\"runner\":\"{name}\",\"model\":\"{model_path}\",\"vectors\":{},\"max_abs_diff\":{max_diff:e},", g.count).unwrap();
    write!(s, "\"actions\":[{}],", actions.iter().map(|a| a.to_string()).collect::<Vec<_>>().join(",")).unwrap();
    write!(s, "\"outputs\":[{}],", first.iter().map(|o| format!("[{}]", list(o))).collect::<Vec<_>>().join(",")).unwrap();
    write!(s, "\"latency_ms\":{}}}", latency_json(ms)).unwrap();
    Ok(s)
}
