// Runs an ONNX model with the ONNX Runtime C++ API (the runtime library of the onnxruntime wheel).
#include <onnxruntime_cxx_api.h>

#include "runner_common.hpp"

namespace {

struct OrtModel : runner::Model {
  Ort::Env env{ORT_LOGGING_LEVEL_ERROR, "embodied"};
  std::unique_ptr<Ort::Session> session;
  std::vector<std::string> input_names, output_names;
  std::vector<std::vector<int64_t>> feature_shapes;  // per input, without the batch dimension
  Ort::MemoryInfo memory = Ort::MemoryInfo::CreateCpu(OrtArenaAllocator, OrtMemTypeDefault);

  explicit OrtModel(const runner::ModelFile& file) {
    const std::string& path = file.path;
    Ort::SessionOptions options;
    options.SetIntraOpNumThreads(1);
    try {  // from the verified bytes, not the path
      session = std::make_unique<Ort::Session>(env, file.bytes.data(), file.bytes.size(), options);
    } catch (const Ort::Exception& e) {
      throw std::runtime_error("cannot load " + path + " as an ONNX model: " + std::string(e.what()).substr(0, 200));
    }
    Ort::AllocatorWithDefaultOptions alloc;
    for (size_t i = 0; i < session->GetInputCount(); ++i) {
      input_names.push_back(session->GetInputNameAllocated(i, alloc).get());
      auto shape = session->GetInputTypeInfo(i).GetTensorTypeAndShapeInfo().GetShape();
      feature_shapes.emplace_back(shape.begin() + 1, shape.end());
    }
    for (size_t i = 0; i < session->GetOutputCount(); ++i)
      output_names.push_back(session->GetOutputNameAllocated(i, alloc).get());
  }

  std::vector<runner::Shape> input_shapes() const override { return feature_shapes; }  // -1: dynamic

  std::vector<std::vector<float>> run(const std::vector<const float*>& inputs,
                                      const std::vector<runner::Shape>& concrete) override {
    std::vector<Ort::Value> values;
    std::vector<const char*> in_names, out_names;
    for (size_t i = 0; i < inputs.size(); ++i) {
      std::vector<int64_t> shape{1};
      shape.insert(shape.end(), concrete[i].begin(), concrete[i].end());
      const size_t n = std::accumulate(shape.begin(), shape.end(), size_t{1}, std::multiplies<size_t>());
      values.push_back(Ort::Value::CreateTensor<float>(memory, const_cast<float*>(inputs[i]), n, shape.data(),
                                                       shape.size()));
      in_names.push_back(input_names[i].c_str());
    }
    for (const auto& n : output_names) out_names.push_back(n.c_str());
    auto results = session->Run(Ort::RunOptions{nullptr}, in_names.data(), values.data(), values.size(),
                                out_names.data(), out_names.size());
    std::vector<std::vector<float>> outputs;
    for (auto& r : results) {
      const float* p = r.GetTensorData<float>();
      outputs.emplace_back(p, p + r.GetTensorTypeAndShapeInfo().GetElementCount());
    }
    return outputs;
  }
};

}  // namespace

int main(int argc, char** argv) {
  return runner::run_main(argc, argv, "onnxruntime", "Run an ONNX model with ONNX Runtime on golden vectors.",
                          [](runner::ModelFile& file, const runner::json&) { return std::make_unique<OrtModel>(file); });
}
