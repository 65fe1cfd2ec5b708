// Runs an ExecuTorch program (.pte, XNNPACK-lowered) with the Module API.
// ExecuTorch executes .pte files; a .pt2 (torch.export / AOTInductor) is not something it can load.
#include <executorch/extension/module/module.h>
#include <executorch/extension/tensor/tensor.h>

#include "executorch_load.hpp"
#include "runner_common.hpp"

using executorch::extension::Module;
using executorch::extension::make_tensor_ptr;
using executorch::extension::TensorPtr;
using executorch::runtime::Error;
using executorch::runtime::EValue;

namespace {

std::string error_name(Error e) { return runner::et_error(e); }

struct ExecuTorchModel : runner::Model {
  runner::ExecuTorchProgram program;
  Module* module = nullptr;
  std::vector<runner::Shape> feature_shapes;  // per input, without the batch dimension (upper bounds if dynamic)

  explicit ExecuTorchModel(runner::ModelFile& file) : program(runner::open_executorch(std::move(file.bytes), file.path)) {
    const std::string& path = file.path;
    module = program.module.get();
    auto meta = module->method_meta("forward");
    if (!meta.ok()) throw std::runtime_error("program " + path + " has no forward method");
    for (size_t i = 0; i < meta->num_inputs(); ++i) {
      auto info = meta->input_tensor_meta(i);
      if (!info.ok()) throw std::runtime_error("input " + std::to_string(i) + " of " + path + " is not a tensor");
      auto sizes = info->sizes();
      if (sizes.empty()) throw std::runtime_error("input " + std::to_string(i) + " of " + path + " has rank 0");
      feature_shapes.emplace_back(sizes.begin() + 1, sizes.end());
    }
  }

  // A dynamic dimension reads as its upper bound here; the manifest says which are dynamic.
  std::vector<runner::Shape> input_shapes() const override { return feature_shapes; }

  std::vector<std::vector<float>> run(const std::vector<const float*>& inputs,
                                      const std::vector<runner::Shape>& concrete) override {
    std::vector<TensorPtr> tensors;
    std::vector<EValue> values;
    for (size_t i = 0; i < inputs.size(); ++i) {
      std::vector<int32_t> shape{1};
      for (int64_t d : concrete[i]) shape.push_back(static_cast<int32_t>(d));
      tensors.push_back(make_tensor_ptr(shape, const_cast<float*>(inputs[i])));
      values.emplace_back(tensors.back());
    }
    auto result = module->forward(values);
    if (!result.ok()) throw std::runtime_error("ExecuTorch forward failed (error " + error_name(result.error()) + ")");
    std::vector<std::vector<float>> outputs;
    for (const EValue& v : *result) {
      if (!v.isTensor()) throw std::runtime_error("ExecuTorch forward returned an output that is not a tensor");
      const auto& t = v.toTensor();
      if (t.scalar_type() != executorch::aten::ScalarType::Float)
        throw std::runtime_error("ExecuTorch forward returned an output that is not float32");
      const float* p = t.const_data_ptr<float>();
      outputs.emplace_back(p, p + t.numel());
    }
    return outputs;
  }
};

}  // namespace

int main(int argc, char** argv) {
  return runner::run_main(argc, argv, "executorch", "Run an ExecuTorch .pte (XNNPACK) on golden vectors.",
                          [](runner::ModelFile& file, const runner::json&) { return std::make_unique<ExecuTorchModel>(file); });
}
