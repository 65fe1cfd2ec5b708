//! Runs an ExecuTorch program (.pte: XNNPACK-lowered, INT8, or not delegated) through the `executorch` crate on
//! golden vectors: the Rust twin of native/cpp/executorch_runner.cpp, with the same CLI, checks and JSON. Inputs are
//! float32 or int64 (the text pipeline's token ids and mask, stored as whole float32 numbers in golden.bin).
//!
//! The program is opened from the bytes runner-common verified (size, sha256, signature), never from its path again,
//! with ExecuTorch's internal-consistency verification of the flatbuffer tables (the C++ runner's reason: with the
//! default, minimal verification a .pte with a few flipped header bytes made the runtime read wild pointers).
use executorch::data_loader::BufferDataLoader;
use executorch::evalue::{EValue, Tag};
use executorch::memory::{HierarchicalAllocator, MallocMemoryAllocator, MemoryManager};
use executorch::program::{Method, Program, ProgramVerification};
use executorch::tensor::{DimOrderType, RawTensor, RawTensorImpl, ScalarType, SizesType, StridesType};
use executorch::util::Span;
use runner_common::{run_main, Model, ModelFile, Result};

/// The program, its loader and its memory live as long as the process (one model per run): leaking them gives the
/// loaded method the 'static lifetime a boxed Model needs, without a self-referential struct.
fn leak<T>(value: T) -> &'static mut T {
    Box::leak(Box::new(value))
}

/// A 64-byte aligned copy of the program: ExecuTorch hands out pointers into it (constant and delegate segments).
fn aligned_copy(bytes: &[u8]) -> &'static [u8] {
    #[repr(C, align(64))]
    #[derive(Clone, Copy)]
    struct Block([u8; 64]);
    let blocks: &'static mut [Block] = Box::leak(vec![Block([0; 64]); bytes.len().div_ceil(64)].into_boxed_slice());
    // Safety: Block is 64 plain bytes with no padding, so the blocks are one contiguous byte buffer of that length.
    let buffer = unsafe { std::slice::from_raw_parts_mut(blocks.as_mut_ptr().cast::<u8>(), blocks.len() * 64) };
    buffer[..bytes.len()].copy_from_slice(bytes);
    &buffer[..bytes.len()]
}

struct ExecuTorchModel {
    method: Method<'static>,
    /// Per input, without the batch dimension (a dynamic dimension reads as its upper bound; the manifest says which).
    feature_shapes: Vec<Vec<i64>>,
    /// Per input: int64 (token ids, attention masks) or float32; int64 inputs are copied into `long_inputs`.
    long: Vec<bool>,
    long_inputs: Vec<Vec<i64>>,
}

/// Golden vectors store every tensor as float32; an int64 input must hold whole numbers, exactly representable.
fn to_long(values: &[f32], into: &mut Vec<i64>, input: usize) -> Result<()> {
    into.clear();
    for &v in values {
        if v.fract() != 0.0 || v.abs() > (1u32 << 24) as f32 {
            return Err(format!("input {input} is int64, but the golden file holds {v}, not a whole number"));
        }
        into.push(v as i64);
    }
    Ok(())
}

impl ExecuTorchModel {
    fn open(file: &ModelFile) -> Result<Self> {
        let path = &file.path;
        if file.bytes.len() < 8 || &file.bytes[4..6] != b"ET" {
            return Err(format!("{path} is not an ExecuTorch .pte file (bad header); re-export it"));
        }
        let loader = leak(BufferDataLoader::new(aligned_copy(&file.bytes)));
        let program = leak(Program::load(loader, Some(ProgramVerification::InternalConsistency)).map_err(|e| {
            format!("cannot load {path} as an ExecuTorch program ({e}: its program tables do not verify; \
                     truncated, corrupted or not a .pte?)")
        })?);
        let meta = program.method_meta(c"forward").map_err(|_| format!("program {path} has no forward method"))?;
        // the crate's Execution tracks set inputs in a 64-bit mask (and asserts it): more is a crafted program
        if meta.num_inputs() > 64 {
            return Err(format!("program {path} declares {} inputs (at most 64)", meta.num_inputs()));
        }
        let (mut feature_shapes, mut long) = (Vec::new(), Vec::new());
        for i in 0..meta.num_inputs() {
            let info = meta.input_tensor_meta(i).map_err(|_| format!("input {i} of {path} is not a tensor"))?;
            match info.scalar_type() {
                ScalarType::Float => long.push(false),
                ScalarType::Long => long.push(true),
                other => return Err(format!("input {i} of {path} is {other:?}, not float32 or int64")),
            }
            let sizes = info.sizes();
            if sizes.is_empty() {
                return Err(format!("input {i} of {path} has rank 0"));
            }
            feature_shapes.push(sizes[1..].iter().map(|&d| d as i64).collect());
        }
        // The memory-planned buffers the program asks for (activations), then the method's own structures.
        let mut arenas = Vec::new();
        for i in 0..meta.num_memory_planned_buffers() {
            let size = meta.memory_planned_buffer_size(i).map_err(|e| format!("{path}: planned buffer {i}: {e}"))?;
            if size > runner_common::MAX_FILE_BYTES as usize {
                return Err(format!("{path} asks for a planned buffer of {size} bytes (at most {})",
                                   runner_common::MAX_FILE_BYTES));
            }
            arenas.push(Span::from_slice(Box::leak(vec![0u8; size].into_boxed_slice())));
        }
        let planned = leak(HierarchicalAllocator::new(Box::leak(arenas.into_boxed_slice())));
        let allocator = leak(MallocMemoryAllocator::new());
        let temp = leak(MallocMemoryAllocator::new());
        let memory = leak(MemoryManager::new(allocator, Some(planned), Some(temp)));
        let method = program.load_method(c"forward", memory, None, None, None).map_err(|e| {
            format!("cannot load the forward method of {path} ({e}; a damaged program, or one for kernels or \
                     backends this runtime lacks)")
        })?;
        let long_inputs = vec![Vec::new(); long.len()];
        Ok(Self { method, feature_shapes, long, long_inputs })
    }
}

/// Row-major strides of a dense tensor of these sizes, in elements.
fn dense_strides(sizes: &[SizesType]) -> Vec<StridesType> {
    let mut strides = vec![1 as StridesType; sizes.len()];
    for d in (0..sizes.len().saturating_sub(1)).rev() {
        strides[d] = strides[d + 1] * sizes[d + 1] as StridesType;
    }
    strides
}

impl Model for ExecuTorchModel {
    fn input_shapes(&self) -> Vec<Vec<i64>> {
        self.feature_shapes.clone()
    }

    fn run(&mut self, inputs: &[&[f32]], shapes: &[Vec<i64>]) -> Result<Vec<Vec<f32>>> {
        // Batch 1: sizes [1, features...]; runner-common checked each input's length against its shape.
        let layouts: Vec<(Vec<SizesType>, Vec<DimOrderType>, Vec<StridesType>)> = shapes.iter().map(|shape| {
            let sizes: Vec<SizesType> = std::iter::once(1).chain(shape.iter().map(|&d| d as SizesType)).collect();
            let order = (0..sizes.len() as DimOrderType).collect();
            let strides = dense_strides(&sizes);
            (sizes, order, strides)
        }).collect();
        if inputs.len() != self.long.len() {
            return Err(format!("the program takes {} inputs, got {}", self.long.len(), inputs.len()));
        }
        for (i, data) in inputs.iter().enumerate() {
            if self.long[i] {
                to_long(data, &mut self.long_inputs[i], i)?;
            }
        }
        let mut impls = Vec::new();
        for (i, ((sizes, order, strides), data)) in layouts.iter().zip(inputs).enumerate() {
            // Safety: the data holds exactly the elements of `sizes` (checked by runner-common; an int64 copy has as
            // many), outlives the call, and ExecuTorch only reads inputs.
            let tensor_impl = if self.long[i] {
                unsafe { RawTensorImpl::from_ptr(sizes, self.long_inputs[i].as_mut_ptr(), order, strides) }
            } else {
                unsafe { RawTensorImpl::from_ptr(sizes, data.as_ptr().cast_mut(), order, strides) }
            }
            .map_err(|e| format!("cannot describe an input of shape {sizes:?} ({e})"))?;
            impls.push(tensor_impl);
        }
        // Safety: each RawTensor borrows its impl, which lives until the end of this call.
        let values: Vec<EValue> = impls.iter().map(|i| EValue::new(unsafe { RawTensor::new(i) })).collect();
        let mut execution = self.method.start_execution();
        for (i, value) in values.iter().enumerate() {
            execution.set_input(value, i).map_err(|e| format!("ExecuTorch rejected input {i} ({e})"))?;
        }
        let outputs = execution.execute().map_err(|e| format!("ExecuTorch forward failed ({e})"))?;
        let mut result = Vec::new();
        for k in 0..outputs.len() {
            let value = outputs.get(k);
            if value.tag() != Tag::Tensor {
                return Err("ExecuTorch forward returned an output that is not a tensor".into());
            }
            let tensor = value.as_tensor();
            if tensor.scalar_type() != ScalarType::Float {
                return Err("ExecuTorch forward returned an output that is not float32".into());
            }
            // Safety: a float32 tensor of numel() elements, valid until the next execution.
            let data = unsafe { std::slice::from_raw_parts(tensor.as_data_ptr_raw().cast::<f32>(), tensor.numel()) };
            result.push(data.to_vec());
        }
        Ok(result)
    }
}

fn main() {
    // Safety: once, before any other ExecuTorch call and before any thread starts.
    unsafe { executorch::platform::pal_init() };
    std::process::exit(run_main("executorch_rs", "Run an ExecuTorch .pte with the executorch crate on golden vectors.",
                                |file, _manifest| Ok(Box::new(ExecuTorchModel::open(&file)?))));
}
