// One exported network behind a fixed-buffer interface: inputs and outputs are allocated once at start-up
// (sizes from the manifest, batch 1) and every run reads and writes those same buffers, so the control loop
// allocates nothing. Opened through the trust checks every runner uses (size + sha256 from the manifest).
//   ExecuTorch   the .pte through the Module API's Method: set_input / execute / get_output on planned memory
//   ONNX Runtime a Session run on an IoBinding of preallocated input and output tensors
// Threads per model: ONNX Runtime's intra-op threads are the session's own. ExecuTorch's XNNPACK takes the one
// process-wide pool when a method is loaded, and two models' calls on a pool of several threads take turns in it
// (pthreadpool runs one parallel job at a time), so a model given one thread is loaded without the pool and runs
// on its own worker only: a navigation call never waits for manipulation's.
#pragma once

#include <optional>

#include <executorch/extension/module/module.h>
#include <executorch/extension/tensor/tensor.h>
#include <onnxruntime_cxx_api.h>

#include "../executorch_load.hpp"
#include "../runner_common.hpp"

#include <executorch/extension/threadpool/threadpool_guard.h>

// The wheel ships libexecutorch_threadpool.so without this header; these two declarations are its API
// (extension/threadpool/threadpool.h): the shared pool XNNPACK runs on, resized to the controller's threads.
namespace executorch::extension::threadpool {
class ThreadPool {
 public:
  bool _unsafe_reset_threadpool(uint32_t num_threads);
  size_t get_thread_count() const;
};
ThreadPool* get_threadpool();
}  // namespace executorch::extension::threadpool

namespace controller {

using json = nlohmann::json;

struct Network {
  std::vector<std::string> input_names, output_names;
  std::vector<runner::Shape> input_shapes, output_shapes;  // with the batch dimension (1)
  std::vector<std::vector<float>> inputs, outputs;          // preallocated
  std::vector<double> output_limits;                        // per output, the manifest's max_abs
  std::string path;                                         // the model file, named in errors
  virtual ~Network() = default;
  virtual void run() = 0;                                   // inputs -> outputs; throws on a runtime error
  float* input(size_t i) { return inputs[i].data(); }
  const float* output(size_t i) const { return outputs[i].data(); }

 protected:
  // Shapes from the manifest's declarations ("batch" -> 1), buffers sized from them.
  void declare(const json& manifest) {
    auto shapes = [](const json& list, std::vector<std::string>& names, std::vector<runner::Shape>& shapes) {
      for (const json& t : list) {
        names.push_back(t.at("name").get<std::string>());
        runner::Shape s;
        for (const json& d : t.at("shape")) s.push_back(d.is_number_integer() ? d.get<int64_t>() : 1);
        shapes.push_back(s);
      }
    };
    shapes(manifest.at("inputs"), input_names, input_shapes);
    shapes(manifest.at("outputs"), output_names, output_shapes);
    for (const auto& s : input_shapes) inputs.emplace_back(size_t(runner::product(s)), 0.0f);
    for (const auto& s : output_shapes) outputs.emplace_back(size_t(runner::product(s)), 0.0f);
    for (size_t k = 0; k < outputs.size(); ++k) output_limits.push_back(runner::output_limit(manifest, k));
  }

  // Outputs far beyond anything the model can produce (the manifest's max_abs) are a failure, not an answer:
  // the guard falls back (model_error). NaN and Inf are left to the guard's own check (non_finite_output).
  void check_limits() const {
    for (size_t k = 0; k < outputs.size(); ++k)
      for (const float v : outputs[k])
        if (std::fabs(v) > output_limits[k] && std::isfinite(v))
          throw std::runtime_error(path + " returned " + std::to_string(v) + " in " + output_names[k] +
                                   ", beyond the " + std::to_string(output_limits[k]) + " the manifest allows");
  }
};

using runner::et_error;

class ExecuTorchNetwork : public Network {
 public:
  ExecuTorchNetwork(runner::ModelFile& file, const json& manifest, bool shared_pool)
      : program(runner::open_executorch(std::move(file.bytes), file.path)) {
    declare(manifest);
    path = file.path;
    module = program.module.get();
    // XNNPACK binds its threadpool when the method loads (xnn_create_runtime): without the pool, this model's
    // calls run on the calling thread alone and never queue behind another model's in the shared pool
    std::optional<executorch::extension::threadpool::NoThreadPoolGuard> alone;
    if (!shared_pool) alone.emplace();
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
    auto m = module->method("forward");  // the Method itself: execute() without the Module's per-call vectors
#pragma GCC diagnostic pop
    if (!m.ok()) throw std::runtime_error("program " + path + " has no forward method");
    method = *m;
    if (method->inputs_size() != inputs.size() || method->outputs_size() != outputs.size())
      throw std::runtime_error(path + " does not have the manifest's inputs and outputs");
    for (size_t i = 0; i < inputs.size(); ++i) {
      std::vector<executorch::aten::SizesType> sizes(input_shapes[i].begin(), input_shapes[i].end());
      tensors.push_back(executorch::extension::make_tensor_ptr(sizes, inputs[i].data()));
    }
  }

  void run() override {
    for (size_t i = 0; i < tensors.size(); ++i) {
      const auto err = method->set_input(executorch::runtime::EValue(*tensors[i]), i);
      if (err != executorch::runtime::Error::Ok) throw std::runtime_error("ExecuTorch set_input failed (" + et_error(err) + ")");
    }
    const auto err = method->execute();
    if (err != executorch::runtime::Error::Ok) throw std::runtime_error("ExecuTorch execute failed (" + et_error(err) + ")");
    for (size_t i = 0; i < outputs.size(); ++i) {
      const auto& value = method->get_output(i);
      if (!value.isTensor()) throw std::runtime_error("ExecuTorch output is not a tensor");
      const auto& t = value.toTensor();
      if (size_t(t.numel()) != outputs[i].size()) throw std::runtime_error("ExecuTorch output has an unexpected size");
      if (t.scalar_type() != executorch::aten::ScalarType::Float) throw std::runtime_error("ExecuTorch output is not float32");
      std::memcpy(outputs[i].data(), t.const_data_ptr<float>(), outputs[i].size() * sizeof(float));
    }
    check_limits();
  }

 private:
  runner::ExecuTorchProgram program;
  executorch::extension::Module* module = nullptr;
  executorch::runtime::Method* method = nullptr;
  std::vector<executorch::extension::TensorPtr> tensors;
};

class OrtNetwork : public Network {
 public:
  OrtNetwork(const runner::ModelFile& file, const json& manifest, int threads) {
    declare(manifest);
    path = file.path;
    Ort::SessionOptions options;
    options.SetIntraOpNumThreads(threads);
    options.SetInterOpNumThreads(1);
    try {  // from the verified bytes, not the path
      session = std::make_unique<Ort::Session>(env(), file.bytes.data(), file.bytes.size(), options);
    } catch (const Ort::Exception& e) {
      throw std::runtime_error("cannot load " + path + " as an ONNX model: " + std::string(e.what()).substr(0, 200));
    }
    for (size_t i = 0; i < inputs.size(); ++i)
      in_values.push_back(Ort::Value::CreateTensor<float>(memory, inputs[i].data(), inputs[i].size(),
                                                          input_shapes[i].data(), input_shapes[i].size()));
    for (size_t i = 0; i < outputs.size(); ++i)
      out_values.push_back(Ort::Value::CreateTensor<float>(memory, outputs[i].data(), outputs[i].size(),
                                                           output_shapes[i].data(), output_shapes[i].size()));
    // bound once: every run reads and writes the same OrtValues (IoBinding), no per-call name or value lists
    binding = std::make_unique<Ort::IoBinding>(*session);
    for (size_t i = 0; i < inputs.size(); ++i) binding->BindInput(input_names[i].c_str(), in_values[i]);
    for (size_t i = 0; i < outputs.size(); ++i) binding->BindOutput(output_names[i].c_str(), out_values[i]);
  }

  void run() override {
    try {
      session->Run(run_options, *binding);
    } catch (const Ort::Exception& e) {
      throw std::runtime_error(std::string("ONNX Runtime run failed: ") + e.what());
    }
    check_limits();
  }

 private:
  static Ort::Env& env() {
    static Ort::Env e{ORT_LOGGING_LEVEL_ERROR, "embodied_controller"};
    return e;
  }
  Ort::MemoryInfo memory = Ort::MemoryInfo::CreateCpu(OrtArenaAllocator, OrtMemTypeDefault);
  std::unique_ptr<Ort::Session> session;
  Ort::RunOptions run_options;
  std::vector<Ort::Value> in_values, out_values;
  std::unique_ptr<Ort::IoBinding> binding;
};

// The runtimes the controller takes, and the manifest format each reads.
inline const char* format_of(const std::string& runtime) {
  if (runtime == "executorch") return "executorch";
  if (runtime == "executorch_int8") return "executorch_int8";
  if (runtime == "onnxruntime") return "onnx";
  if (runtime == "onnxruntime_int8") return "onnx_int8";
  return nullptr;
}

// The file the controller loads for `runtime` (it runs batch 1): ExecuTorch's batch-1 program where the manifest
// lists one (embodied_lib.export.manifest.batch1_format; the dynamic-batch .pte plans activation memory for its
// largest batch), else the runtime's own format.
inline std::string model_file(const std::string& export_dir, const json& manifest, const std::string& runtime) {
  const char* format = format_of(runtime);
  if (!format) throw std::runtime_error("unknown runtime " + runtime);
  const std::string batch1 = runtime == "executorch" ? "executorch_batch1" : "";
  std::string file, batch1_file;
  for (const json& a : manifest.at("artifacts")) {
    const std::string f = a.value("format", "");
    if (f == format) file = a.at("file").get<std::string>();
    if (!batch1.empty() && f == batch1) batch1_file = a.at("file").get<std::string>();
  }
  if (!batch1_file.empty()) return batch1_file;
  if (file.empty()) throw std::runtime_error(export_dir + " has no " + format + " artifact; re-export it");
  return file;
}

// The model file of `runtime` in an export folder (model_file), checked against its manifest, then opened to run
// on `threads` threads (ExecuTorch: more than one means the shared pool, sized by set_executorch_threads).
inline std::unique_ptr<Network> open_network(const std::string& export_dir, const json& manifest,
                                             const std::string& runtime, int threads, const std::string& replace_file = "") {
  const std::string path = replace_file.empty() ? export_dir + "/" + model_file(export_dir, manifest, runtime) : replace_file;
  runner::ModelFile verified = runner::verify_model_file(path, manifest);   // read once; these bytes are loaded
  if (runtime.rfind("executorch", 0) == 0) return std::make_unique<ExecuTorchNetwork>(verified, manifest, threads > 1);
  return std::make_unique<OrtNetwork>(verified, manifest, threads);
}

// Before any model loads: the shared pool's size, the one count above 1 among the models' (1 if none).
inline void set_executorch_threads(uint32_t n) {
  if (auto* pool = executorch::extension::threadpool::get_threadpool()) pool->_unsafe_reset_threadpool(n);
}

}  // namespace controller
