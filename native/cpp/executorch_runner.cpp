// Runs an ExecuTorch program (.pte, XNNPACK-lowered) with the Module API.
// ExecuTorch executes .pte files; a .pt2 (torch.export / AOTInductor) is not something it can load.
#include <executorch/extension/module/module.h>
#include <executorch/extension/tensor/tensor.h>

#include "runner_common.hpp"

using executorch::extension::Module;
using executorch::extension::make_tensor_ptr;
using executorch::extension::TensorPtr;
using executorch::runtime::Error;
using executorch::runtime::EValue;

namespace {

std::string error_name(Error e) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "0x%x", static_cast<unsigned>(e));
  return buf;
}

struct ExecuTorchModel : runner::Model {
  std::unique_ptr<Module> module;
  std::vector<runner::Shape> feature_shapes;  // per input, without the batch dimension (upper bounds if dynamic)

  explicit ExecuTorchModel(const std::string& path) {
    const std::vector<char> head = runner::read_file(path, "model file");
    if (head.size() < 8 || head[4] != 'E' || head[5] != 'T')
      throw std::runtime_error(path + " is not an ExecuTorch .pte file (bad header); re-export it");
    module = std::make_unique<Module>(path);
    const Error err = module->load_forward();
    if (err != Error::Ok)
      throw std::runtime_error("cannot load " + path + " as an ExecuTorch program (error " + error_name(err) +
                               "; truncated or not a .pte?)");
    auto meta = module->method_meta("forward");
    if (!meta.ok()) throw std::runtime_error("program " + path + " has no forward method");
    for (size_t i = 0; i < meta->num_inputs(); ++i) {
      auto info = meta->input_tensor_meta(i);
      if (!info.ok()) throw std::runtime_error("input " + std::to_string(i) + " of " + path + " is not a tensor");
      auto sizes = info->sizes();
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
      const auto& t = v.toTensor();
      const float* p = t.const_data_ptr<float>();
      outputs.emplace_back(p, p + t.numel());
    }
    return outputs;
  }
};

}  // namespace

int main(int argc, char** argv) {
  return runner::run_main(argc, argv, "executorch", "Run an ExecuTorch .pte (XNNPACK) on golden vectors.",
                          [](const std::string& path, const runner::json&) { return std::make_unique<ExecuTorchModel>(path); });
}
