// Runs an ExecuTorch program (.pte, XNNPACK-lowered) with the Module API.
// ExecuTorch executes .pte files; a .pt2 (torch.export / AOTInductor) is not something it can load.
// Inputs are float32 or int64 (the text pipeline's token ids and mask, stored as whole float32 numbers in golden.bin).
#include <cmath>

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
  std::vector<bool> is_long;                  // per input: int64, copied into long_inputs, or float32
  std::vector<std::vector<int64_t>> long_inputs;

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
      const auto type = info->scalar_type();
      if (type != executorch::aten::ScalarType::Float && type != executorch::aten::ScalarType::Long)
        throw std::runtime_error("input " + std::to_string(i) + " of " + path + " is neither float32 nor int64");
      is_long.push_back(type == executorch::aten::ScalarType::Long);
    }
    long_inputs.resize(is_long.size());
  }

  // A dynamic dimension reads as its upper bound here; the manifest says which are dynamic.
  std::vector<runner::Shape> input_shapes() const override { return feature_shapes; }

  std::vector<std::vector<float>> run(const std::vector<const float*>& inputs,
                                      const std::vector<runner::Shape>& concrete) override {
    if (inputs.size() != is_long.size())
      throw std::runtime_error("the program takes " + std::to_string(is_long.size()) + " inputs, got " +
                               std::to_string(inputs.size()));
    std::vector<TensorPtr> tensors;
    std::vector<EValue> values;
    for (size_t i = 0; i < inputs.size(); ++i) {
      std::vector<int32_t> shape{1};
      size_t numel = 1;
      for (int64_t d : concrete[i]) shape.push_back(static_cast<int32_t>(d)), numel *= size_t(d);
      if (is_long[i]) {  // golden.bin holds float32: an int64 input must be whole numbers, exactly representable
        auto& ids = long_inputs[i];
        ids.resize(numel);
        for (size_t k = 0; k < numel; ++k) {
          const float v = inputs[i][k];
          if (v != std::trunc(v) || std::fabs(v) > float(1 << 24))
            throw std::runtime_error("input " + std::to_string(i) + " is int64, but the golden file holds " +
                                     std::to_string(v) + ", not a whole number");
          ids[k] = static_cast<int64_t>(v);
        }
        tensors.push_back(make_tensor_ptr(shape, ids.data(), executorch::aten::ScalarType::Long));
      } else {
        tensors.push_back(make_tensor_ptr(shape, const_cast<float*>(inputs[i])));
      }
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
