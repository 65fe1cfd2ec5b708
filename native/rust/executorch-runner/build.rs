//! Links the ExecuTorch shared libraries of the pip wheel (EXECUTORCH_LIB_DIR, set by embodied_lib.native.rust_env).
//! XNNPACK and the optimized kernels register themselves from static constructors and export nothing this binary
//! calls, so rustc's default --as-needed would drop them (the wheel's executorch-config.cmake has the same note); the
//! runtime and threadpool are kept the same way. The quantized kernels are for the text pipeline's dynamic INT8
//! program (quantized_decomposed::embedding_byte, its int8 token table).
fn main() {
    println!("cargo::rerun-if-env-changed=EXECUTORCH_LIB_DIR");
    let lib = std::env::var("EXECUTORCH_LIB_DIR")
        .expect("EXECUTORCH_LIB_DIR is not set: build through `python -m embodied_lib.native build` (make native)");
    println!("cargo::rustc-link-search=native={lib}");
    println!("cargo::rustc-link-arg-bins=-Wl,--push-state,--no-as-needed,-lexecutorch,-lexecutorch_threadpool,\
              -lexecutorch_kernels_optimized,-lexecutorch_kernels_quantized,-lexecutorch_backend_xnnpack,--pop-state");
    println!("cargo::rustc-link-arg-bins=-Wl,-rpath,{lib}");
}
