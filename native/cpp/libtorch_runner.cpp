// The design's networks written again as LibTorch modules, weights loaded from the Python export:
// the navigation DQNAgent (fc1..fc4) and the HRI heads ActionClassifier (fc1, fc2 -> softmax) and
// ParamExtractor (fc1..fc3 -> sigmoid). Which one a file holds is its name, exports/<model>/<model>.pth.
//
// Why not torch::load(model, "x.pth")? That reads TorchScript-style archives (it looks for
// constants.pkl) and cannot read a Python state_dict. What works: Python saves a *plain dict*,
// torch.save(dict(model.state_dict()), path); C++ unpickles it with torch::pickle_load (an
// OrderedDict fails with "Expected GenericDict") and copies each tensor into named_parameters().
#include <torch/torch.h>

#include <map>

#include "runner_common.hpp"

namespace {

enum class Output { Identity, Softmax, Sigmoid };

struct Architecture {
  int layers;      // fc1..fcN, ReLU between them
  Output output;   // applied after fcN
  int dropouts;    // dropout after fc1..fc<dropouts> (inactive in eval, kept so train() means the same)
  double p;
};

// Mirrors embodied_lib/models/navigation.py and embodied_lib/models/hri.py; layer widths come from the weights.
const std::map<std::string, Architecture> kArchitectures = {
    {"navigation", {4, Output::Identity, 2, 0.2}},       // DQNAgent
    {"action_classifier", {2, Output::Softmax, 1, 0.1}},  // ActionClassifier
    {"param_extractor", {3, Output::Sigmoid, 2, 0.1}},   // ParamExtractor
};

struct DesignNetImpl : torch::nn::Module {
  std::vector<torch::nn::Linear> fc;
  Architecture arch;
  DesignNetImpl(const Architecture& a, const std::vector<int64_t>& widths) : arch(a) {
    for (int i = 0; i < a.layers; ++i)
      fc.push_back(register_module("fc" + std::to_string(i + 1), torch::nn::Linear(widths[i], widths[i + 1])));
  }
  torch::Tensor forward(torch::Tensor x) {
    for (int i = 0; i < arch.layers; ++i) {
      x = fc[i]->forward(x);
      if (i + 1 < arch.layers) {
        x = torch::relu(x);
        if (i < arch.dropouts) x = torch::dropout(x, arch.p, is_training());
      }
    }
    if (arch.output == Output::Softmax) return torch::softmax(x, -1);
    if (arch.output == Output::Sigmoid) return torch::sigmoid(x);
    return x;
  }
};
TORCH_MODULE(DesignNet);

std::string first_line(const std::string& s) { return s.substr(0, s.find('\n')); }

std::string model_name(const std::string& path) {
  const size_t slash = path.find_last_of('/');
  std::string file = path.substr(slash == std::string::npos ? 0 : slash + 1);
  return file.substr(0, file.find('.'));
}

struct LibTorchModel : runner::Model {
  DesignNet model{nullptr};
  int64_t input_size = 0;

  explicit LibTorchModel(const std::string& path) {
    const std::vector<char> bytes = runner::read_file(path, "model file");
    const std::string name = model_name(path);
    const auto arch = kArchitectures.find(name);
    if (arch == kArchitectures.end())
      throw std::runtime_error(path + ": unknown model '" + name +
                               "' (file names say the network: navigation, action_classifier, param_extractor)");
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
      if (!dict.contains(key)) throw std::runtime_error(path + " has no entry " + key + " (not a " + name + " state_dict?)");
      const c10::IValue v = dict.at(key);
      if (!v.isTensor()) throw std::runtime_error(path + ": entry " + key + " is not a tensor");
      return v.toTensor();
    };
    std::vector<int64_t> widths{tensor("fc1.weight").size(1)};
    for (int i = 1; i <= arch->second.layers; ++i) widths.push_back(tensor("fc" + std::to_string(i) + ".weight").size(0));
    input_size = widths[0];
    model = DesignNet(arch->second, widths);
    torch::NoGradGuard no_grad;
    size_t copied = 0;
    for (auto& p : model->named_parameters()) {
      const torch::Tensor src = tensor(p.key());
      if (src.sizes() != p.value().sizes())
        throw std::runtime_error(path + ": " + p.key() + " has the wrong shape for " + name);
      p.value().copy_(src);
      ++copied;
    }
    if (copied != dict.size()) throw std::runtime_error(path + " has entries " + name + " does not know");
    model->eval();
  }

  std::vector<int64_t> input_sizes() const override { return {input_size}; }

  std::vector<std::vector<float>> run(const std::vector<const float*>& inputs) override {
    torch::NoGradGuard no_grad;
    const torch::Tensor x = torch::from_blob(const_cast<float*>(inputs[0]), {1, input_size}, torch::kFloat32);
    const torch::Tensor y = model->forward(x).contiguous();
    return {std::vector<float>(y.data_ptr<float>(), y.data_ptr<float>() + y.numel())};
  }
};

}  // namespace

int main(int argc, char** argv) {
  torch::set_num_threads(1);  // batch-1 latency: one thread avoids pool hand-off for small MLPs
  return runner::run_main(argc, argv, "libtorch",
                          "Run a design network (navigation DQNAgent, HRI heads) rebuilt in LibTorch, weights from a\n"
                          "plain-dict .pth named <model>.pth.",
                          [](const std::string& path) { return std::make_unique<LibTorchModel>(path); });
}
