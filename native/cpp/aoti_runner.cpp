// Runs an AOTInductor package (.aoti.pt2) with torch::inductor::AOTIModelPackageLoader.
// The export stores each input's per-vector size in the package metadata
// ("embodied.input_shapes", e.g. "256" or "3x400x400;10": per input, ';'-separated, batch left out),
// so a wrong-size input is refused before the compiled code runs.
#include <ATen/ATen.h>
#include <torch/csrc/inductor/aoti_package/model_package_loader.h>

#include <sstream>

#include "runner_common.hpp"

namespace {

struct AotiModel : runner::Model {
  std::unique_ptr<torch::inductor::AOTIModelPackageLoader> loader;
  std::vector<std::vector<int64_t>> shapes;  // per input, without the batch dimension

  explicit AotiModel(const runner::ModelFile& file) {
    const std::string& path = file.path;
    const std::vector<char>& head = file.bytes;
    if (head.size() < 4 || head[0] != 'P' || head[1] != 'K')
      throw std::runtime_error(path + " is not an AOTInductor package (not a zip archive); re-export it");
    try {  // the loader takes a path: a private copy of the verified bytes, not the export folder's file
      const runner::PrivateCopy copy(file.bytes, "model.aoti.pt2");
      loader = std::make_unique<torch::inductor::AOTIModelPackageLoader>(copy.path);
    } catch (const std::exception& e) {
      std::string what = e.what();
      throw std::runtime_error("cannot load " + path + " as an AOTInductor package: " + what.substr(0, what.find('\n')));
    }
    const auto meta = loader->get_metadata();
    const auto it = meta.find("embodied.input_shapes");
    if (it == meta.end()) throw std::runtime_error(path + " lacks embodied.input_shapes metadata; re-export it");
    std::stringstream s(it->second);
    for (std::string input; std::getline(s, input, ';');) {
      std::stringstream dims(input);
      shapes.emplace_back();
      for (std::string d; std::getline(dims, d, 'x');)  // a named (dynamic) dimension reads as -1
        shapes.back().push_back(!d.empty() && std::all_of(d.begin(), d.end(), ::isdigit) ? std::stoll(d) : -1);
    }
  }

  std::vector<runner::Shape> input_shapes() const override { return shapes; }

  std::vector<std::vector<float>> run(const std::vector<const float*>& inputs,
                                      const std::vector<runner::Shape>& concrete) override {
    std::vector<at::Tensor> tensors;
    for (size_t i = 0; i < inputs.size(); ++i) {
      std::vector<int64_t> shape{1};
      shape.insert(shape.end(), concrete[i].begin(), concrete[i].end());
      tensors.push_back(at::from_blob(const_cast<float*>(inputs[i]), shape, at::kFloat));
    }
    std::vector<std::vector<float>> outputs;
    for (const at::Tensor& t : loader->run(tensors)) {
      const at::Tensor c = t.contiguous();
      outputs.emplace_back(c.data_ptr<float>(), c.data_ptr<float>() + c.numel());
    }
    return outputs;
  }
};

}  // namespace

int main(int argc, char** argv) {
  return runner::run_main(argc, argv, "aoti", "Run an AOTInductor package (.aoti.pt2) on golden vectors.",
                          [](runner::ModelFile& file, const runner::json&) { return std::make_unique<AotiModel>(file); },
                          /*carries_code=*/true);
}
