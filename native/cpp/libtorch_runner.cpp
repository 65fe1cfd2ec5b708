// The navigation DQNAgent written again as a LibTorch module, its weights loaded from the Python export.
//
// Why not torch::load(model, "x.pth")? That reads TorchScript-style archives (it looks for
// constants.pkl) and cannot read a Python state_dict. What works: Python saves a *plain dict*,
// torch.save(dict(model.state_dict()), path); C++ unpickles it with torch::pickle_load (an
// OrderedDict fails with "Expected GenericDict") and copies each tensor into named_parameters().
#include <torch/torch.h>

#include "runner_common.hpp"

namespace {

// Mirrors embodied_lib/models/navigation.py: the names fc1..fc4 are the contract.
struct DQNAgentImpl : torch::nn::Module {
  torch::nn::Linear fc1{nullptr}, fc2{nullptr}, fc3{nullptr}, fc4{nullptr};
  DQNAgentImpl(int64_t state_size, int64_t action_size) {
    fc1 = register_module("fc1", torch::nn::Linear(state_size, 256));
    fc2 = register_module("fc2", torch::nn::Linear(256, 256));
    fc3 = register_module("fc3", torch::nn::Linear(256, 256));
    fc4 = register_module("fc4", torch::nn::Linear(256, action_size));
  }
  torch::Tensor forward(torch::Tensor x) {
    x = torch::dropout(torch::relu(fc1->forward(x)), 0.2, is_training());
    x = torch::dropout(torch::relu(fc2->forward(x)), 0.2, is_training());
    x = torch::relu(fc3->forward(x));
    return fc4->forward(x);
  }
};
TORCH_MODULE(DQNAgent);

std::string first_line(const std::string& s) { return s.substr(0, s.find('\n')); }

struct LibTorchModel : runner::Model {
  DQNAgent model{nullptr};
  int64_t state_size = 0;

  explicit LibTorchModel(const std::string& path) {
    const std::vector<char> bytes = runner::read_file(path, "model file");
    c10::IValue value;
    try {
      value = torch::pickle_load(bytes);
    } catch (const std::exception& e) {
      throw std::runtime_error("cannot read " + path + " as a state_dict .pth: " + first_line(e.what()));
    }
    if (!value.isGenericDict())
      throw std::runtime_error(path + " is not a plain-dict state_dict; save it with torch.save(dict(model.state_dict()))");
    const auto dict = value.toGenericDict();
    auto tensor = [&](const std::string& key) {
      if (!dict.contains(key)) throw std::runtime_error(path + " has no entry " + key + " (not a DQNAgent state_dict?)");
      return dict.at(key).toTensor();
    };
    state_size = tensor("fc1.weight").size(1);
    model = DQNAgent(state_size, tensor("fc4.weight").size(0));
    torch::NoGradGuard no_grad;
    size_t copied = 0;
    for (auto& p : model->named_parameters()) {
      const torch::Tensor src = tensor(p.key());
      if (src.sizes() != p.value().sizes())
        throw std::runtime_error(path + ": " + p.key() + " has the wrong shape for DQNAgent");
      p.value().copy_(src);
      ++copied;
    }
    if (copied != dict.size()) throw std::runtime_error(path + " has entries DQNAgent does not know");
    model->eval();
  }

  std::vector<int64_t> input_sizes() const override { return {state_size}; }

  std::vector<std::vector<float>> run(const std::vector<const float*>& inputs) override {
    torch::NoGradGuard no_grad;
    const torch::Tensor x = torch::from_blob(const_cast<float*>(inputs[0]), {1, state_size}, torch::kFloat32);
    const torch::Tensor q = model->forward(x).contiguous();
    return {std::vector<float>(q.data_ptr<float>(), q.data_ptr<float>() + q.numel())};
  }
};

}  // namespace

int main(int argc, char** argv) {
  torch::set_num_threads(1);  // batch-1 latency: one thread avoids pool hand-off for a small MLP
  return runner::run_main(argc, argv, "libtorch",
                          "Run the navigation DQNAgent rebuilt in LibTorch, weights from a plain-dict .pth.",
                          [](const std::string& path) { return std::make_unique<LibTorchModel>(path); });
}
