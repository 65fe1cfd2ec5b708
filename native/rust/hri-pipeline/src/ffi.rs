//! A small C ABI over the pipeline, for the C++ controller (native/cpp/controller): open once, decide per
//! command, close. Text in and JSON out as NUL-terminated UTF-8; errors come back as messages, never as
//! panics across the boundary.
//!
//!     void* hri_open(const char* model, char* error, size_t error_len);          // NULL on error
//!     int   hri_decide(void* h, const char* text, char* out, size_t out_len);     // 0 ok, 1 error (message in out)
//!     void  hri_close(void* h);
//!
//! `model` is command_pipeline.onnx inside its export folder: the model file and tokenizer.json must match the
//! manifest beside them (size and sha256), as for every runner. The decision JSON is
//! {"action", "params", "refused", "confidence"}: Python's embodied_lib.hri.slots.decide.
use std::ffi::{c_char, c_int, c_void, CStr};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;

use runner_common::{read_manifest, verify_model_file, Result};
use serde_json::json;

use crate::{Pipeline, Schema};

struct Handle {
    pipeline: Pipeline,
    schema: Schema,
}

fn open(model: &str) -> Result<Handle> {
    let manifest_path = Path::new(model).with_file_name("manifest.json").to_string_lossy().into_owned();
    let manifest = read_manifest(&manifest_path)?;
    let file = verify_model_file(model, &manifest)?;
    Ok(Handle { pipeline: Pipeline::open(&file, &manifest)?, schema: Schema::from_manifest(&manifest)? })
}

fn decide(handle: &mut Handle, text: &str) -> Result<String> {
    let outputs = handle.pipeline.run(text)?;
    let mut decision = handle.schema.decide(text, &outputs)?;
    let confidence = outputs.values[0].iter().cloned().fold(f32::NEG_INFINITY, f32::max);
    decision["confidence"] = json!(confidence);
    Ok(decision.to_string())
}

/// Copies `message` into `out` (truncated at a character boundary to fit, always NUL-terminated).
fn write_c(message: &str, out: *mut c_char, len: usize) {
    if out.is_null() || len == 0 {
        return;
    }
    let mut n = message.len().min(len - 1);
    while !message.is_char_boundary(n) {
        n -= 1;
    }
    // SAFETY: the caller gives `len` writable bytes at `out`; n < len.
    unsafe {
        std::ptr::copy_nonoverlapping(message.as_ptr(), out.cast::<u8>(), n);
        *out.add(n) = 0;
    }
}

fn text_of(ptr: *const c_char) -> Result<String> {
    if ptr.is_null() {
        return Err("no text (NULL)".into());
    }
    // SAFETY: the caller passes a NUL-terminated string.
    let bytes = unsafe { CStr::from_ptr(ptr) }.to_bytes();
    String::from_utf8(bytes.to_vec()).map_err(|_| "the text is not UTF-8".to_string())
}

#[no_mangle]
pub extern "C" fn hri_open(model: *const c_char, error: *mut c_char, error_len: usize) -> *mut c_void {
    let result = catch_unwind(|| text_of(model).and_then(|m| open(&m)));
    match result {
        Ok(Ok(handle)) => Box::into_raw(Box::new(handle)).cast(),
        Ok(Err(message)) => {
            write_c(&message, error, error_len);
            std::ptr::null_mut()
        }
        Err(_) => {
            write_c("the HRI pipeline panicked while opening", error, error_len);
            std::ptr::null_mut()
        }
    }
}

#[no_mangle]
pub extern "C" fn hri_decide(handle: *mut c_void, text: *const c_char, out: *mut c_char, out_len: usize) -> c_int {
    if handle.is_null() {
        write_c("no pipeline (hri_open failed)", out, out_len);
        return 1;
    }
    // SAFETY: `handle` came from hri_open and is used by one thread at a time.
    let handle = unsafe { &mut *handle.cast::<Handle>() };
    let result = catch_unwind(AssertUnwindSafe(|| text_of(text).and_then(|t| decide(handle, &t))));
    let (message, code) = match result {
        Ok(Ok(json)) if json.len() < out_len => (json, 0),
        Ok(Ok(_)) => ("the decision does not fit the output buffer".to_string(), 1),
        Ok(Err(message)) => (message, 1),
        Err(_) => ("the HRI pipeline panicked".to_string(), 1),
    };
    write_c(&message, out, out_len);
    code
}

#[no_mangle]
pub extern "C" fn hri_close(handle: *mut c_void) {
    if !handle.is_null() {
        // SAFETY: `handle` came from hri_open and is not used after this.
        drop(unsafe { Box::from_raw(handle.cast::<Handle>()) });
    }
}
