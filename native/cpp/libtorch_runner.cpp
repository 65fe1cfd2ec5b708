// The LibTorch twin: the network rebuilt in C++ from the layer graph the manifest carries
// ("architecture", written by embodied_lib/architecture.py), weights loaded from the Python export.
// It builds every model that has such a graph: the navigation DQNAgent (fc1..fc4), the HRI heads
// ActionClassifier and ParamExtractor, and the manipulation ManipulationNet (average pool,
// normalisation, conv + batch norm + ReLU blocks, spatial softmax, state MLP, head). Nothing about
// a model is written here; a layer it does not know is refused by name.
//
// Why not torch::load(model, "x.pth")? That reads TorchScript-style archives (it looks for
// constants.pkl) and cannot read a Python state_dict. What works: Python saves a *plain dict*,
// torch.save(dict(model.state_dict()), path); C++ unpickles it with torch::pickle_load (an
// OrderedDict fails with "Expected GenericDict") and looks each tensor up by the graph's names.
#include <torch/torch.h>

#include <map>
#include <set>

#include "pth_check.hpp"
#include "runner_common.hpp"

namespace {

using runner::json;

std::string first_line(const std::string& s) { return s.substr(0, s.find('\n')); }

const std::set<std::string> kOps = {"linear", "conv2d", "batch_norm", "relu", "tanh", "sigmoid", "softmax",
                                    "dropout", "avg_pool2d", "normalize", "spatial_softmax", "concat"};

struct Node {
  std::string op, params, out;
  std::vector<std::string> in;
  json attrs;
};

struct TwinModel : runner::Model {
  std::string model_name;
  std::vector<std::string> input_names;
  std::vector<runner::Shape> shapes;  // per input, without the batch dimension
  std::vector<Node> nodes;
  std::map<std::string, torch::Tensor> weights;

  TwinModel(const runner::ModelFile& file, const json& manifest) {
    model_name = manifest.value("model", "?");
    const json& arch = manifest.value("architecture", json());
    if (!arch.is_object())
      throw std::runtime_error("the " + model_name + " manifest has no architecture a twin can rebuild "
                               "(this model runs through the exported-program runtimes instead)");
    for (const auto& input : manifest.at("inputs")) {
      runner::Shape s;
      const json& dims = input.at("shape");
      for (size_t d = 1; d < dims.size(); ++d) s.push_back(dims[d].is_number() ? dims[d].get<int64_t>() : -1);
      shapes.push_back(s);
    }
    input_names = arch.at("inputs").get<std::vector<std::string>>();
    for (size_t i = 0; i < arch.at("nodes").size(); ++i) {
      const json& n = arch["nodes"][i];
      Node node{n.at("op").get<std::string>(), n.value("params", ""), n.value("out", ""), {}, n};
      if (!kOps.count(node.op))
        throw std::runtime_error("unsupported layer '" + node.op + "' (node " + std::to_string(i) + " of the " +
                                 model_name + " architecture); the LibTorch twin builds linear, conv2d, batch_norm, "
                                 "relu, tanh, sigmoid, softmax, dropout, avg_pool2d, normalize, spatial_softmax, concat");
      if (n.contains("in")) node.in = n["in"].get<std::vector<std::string>>();
      nodes.push_back(std::move(node));
    }
    if (!arch.contains("weights") || !arch["weights"].is_object())
      throw std::runtime_error("the " + model_name + " manifest's architecture lists no weights (dtype and shape of each "
                               "tensor); re-export it");
    load_weights(file.path, file.bytes, arch["weights"]);
  }

  // The verified bytes: archive and pickle checked first (pth_check.hpp), then every tensor against `expected`.
  void load_weights(const std::string& path, const std::vector<char>& bytes, const json& expected) {
    pth::check_archive(bytes, path);
    c10::IValue value;
    try {
      value = torch::pickle_load(bytes);
    } catch (const std::exception& e) {
      throw std::runtime_error("cannot read " + path + " as a state_dict .pth: " + first_line(e.what()));
    }
    if (!value.isGenericDict())
      throw std::runtime_error(path + " is not a plain-dict state_dict; save it with torch.save(dict(model.state_dict()))");
    std::map<std::string, torch::Tensor> file;
    for (const auto& item : value.toGenericDict()) {
      if (!item.key().isString() || !item.value().isTensor())
        throw std::runtime_error(path + " holds an entry that is not a named tensor");
      file[item.key().toStringRef()] = item.value().toTensor();
    }
    std::set<std::string> used;
    for (const auto& item : file) {
      if (!expected.contains(item.first))
        throw std::runtime_error(path + " has an entry " + item.first + " the " + model_name + " architecture does not list");
      pth::check_tensor(path, item.first, item.second, expected[item.first]);
    }
    auto need = [&](const std::string& key) {
      const auto it = file.find(key);
      if (it == file.end()) throw std::runtime_error(path + " has no entry " + key + " (not the " + model_name + " weights?)");
      if (it->second.scalar_type() != torch::kFloat32)
        throw std::runtime_error(path + ": " + key + " is not float32; the twin computes in float32");
      used.insert(key);
      weights[key] = it->second;
    };
    for (const Node& n : nodes) {
      const std::string& p = n.params;
      if (n.op == "linear") {
        need(p + ".weight"); need(p + ".bias");
        const auto w = weights[p + ".weight"];
        if (w.dim() != 2 || w.size(0) != n.attrs.at("out_features").get<int64_t>() ||
            w.size(1) != n.attrs.at("in_features").get<int64_t>())
          throw std::runtime_error(path + ": " + p + ".weight has the wrong shape for " + model_name);
      } else if (n.op == "conv2d") {
        need(p + ".weight");
        if (n.attrs.value("bias", false)) need(p + ".bias");
      } else if (n.op == "batch_norm") {
        for (const char* s : {".weight", ".bias", ".running_mean", ".running_var"}) need(p + s);
        used.insert(p + ".num_batches_tracked");  // training bookkeeping, not used at inference
      } else if (n.op == "normalize") {
        need(n.attrs.at("mean").get<std::string>()); need(n.attrs.at("std").get<std::string>());
      } else if (n.op == "spatial_softmax") {
        need(n.attrs.at("grid").get<std::string>());
      }
    }
    std::string unused;
    for (const auto& item : file)
      if (!used.count(item.first)) unused += (unused.empty() ? "" : ", ") + item.first;
    if (!unused.empty()) throw std::runtime_error(path + " has entries the " + model_name + " architecture does not use: " + unused);
  }

  std::vector<runner::Shape> input_shapes() const override { return shapes; }

  torch::Tensor forward(const std::vector<torch::Tensor>& inputs) const {
    std::map<std::string, torch::Tensor> values;
    for (size_t i = 0; i < input_names.size() && i < inputs.size(); ++i) values[input_names[i]] = inputs[i];
    torch::Tensor x = inputs.at(0);
    for (const Node& n : nodes) {
      std::vector<torch::Tensor> args;
      for (const auto& name : n.in) {
        const auto it = values.find(name);
        if (it == values.end()) throw std::runtime_error("architecture refers to an unknown value '" + name + "'");
        args.push_back(it->second);
      }
      if (args.empty()) args.push_back(x);
      const torch::Tensor& a = args[0];
      const std::string& p = n.params;
      if (n.op == "linear") x = torch::linear(a, weights.at(p + ".weight"), weights.at(p + ".bias"));
      else if (n.op == "conv2d") {
        const int64_t s = n.attrs.at("stride").get<int64_t>(), pad = n.attrs.at("padding").get<int64_t>();
        x = torch::conv2d(a, weights.at(p + ".weight"),
                          n.attrs.value("bias", false) ? weights.at(p + ".bias") : torch::Tensor(), {s, s}, {pad, pad});
      } else if (n.op == "batch_norm")
        x = torch::batch_norm(a, weights.at(p + ".weight"), weights.at(p + ".bias"), weights.at(p + ".running_mean"),
                              weights.at(p + ".running_var"), false, 0.0, n.attrs.at("eps").get<double>(), false);
      else if (n.op == "relu") x = torch::relu(a);
      else if (n.op == "tanh") x = torch::tanh(a);
      else if (n.op == "sigmoid") x = torch::sigmoid(a);
      else if (n.op == "softmax") x = torch::softmax(a, -1);
      else if (n.op == "dropout") x = a;  // inactive at inference
      else if (n.op == "avg_pool2d") {
        const int64_t k = n.attrs.at("kernel").get<int64_t>();
        x = torch::avg_pool2d(a, {k, k});
      } else if (n.op == "normalize")
        x = (a - weights.at(n.attrs.at("mean").get<std::string>())) / weights.at(n.attrs.at("std").get<std::string>());
      else if (n.op == "spatial_softmax")
        x = torch::matmul(torch::softmax(a.flatten(2), -1), weights.at(n.attrs.at("grid").get<std::string>())).flatten(1);
      else if (n.op == "concat") x = torch::cat(args, -1);
      if (!n.out.empty()) values[n.out] = x;
    }
    return x;
  }

  std::vector<std::vector<float>> run(const std::vector<const float*>& inputs,
                                      const std::vector<runner::Shape>& concrete) override {
    torch::NoGradGuard no_grad;
    std::vector<torch::Tensor> tensors;
    for (size_t i = 0; i < inputs.size(); ++i) {
      std::vector<int64_t> shape{1};
      shape.insert(shape.end(), concrete[i].begin(), concrete[i].end());
      tensors.push_back(torch::from_blob(const_cast<float*>(inputs[i]), shape, torch::kFloat32));
    }
    const torch::Tensor y = forward(tensors).contiguous();
    return {std::vector<float>(y.data_ptr<float>(), y.data_ptr<float>() + y.numel())};
  }
};

}  // namespace

int main(int argc, char** argv) {
  torch::set_num_threads(1);  // batch-1 latency: one thread avoids pool hand-off for these small networks
  return runner::run_main(argc, argv, "libtorch",
                          "Run the LibTorch twin: the network rebuilt from the manifest's layer graph (navigation,\n"
                          "manipulation, the HRI heads), weights from the plain-dict .pth.",
                          [](runner::ModelFile& file, const json& manifest) {
                            return std::make_unique<TwinModel>(file, manifest);
                          });
}
