// The command-line contract shared by every C++ runner (and mirrored by the Rust ones):
//
//   <runner> MODEL GOLDEN [--iterations N]
//
// MODEL is an exported file, GOLDEN the golden.bin next to it (format: embodied_lib/export/golden.py).
// Each golden vector is run at batch 1 and compared with the eager output stored beside it; then
// N timed runs of vector 0 (after warm-up) give p50/p99/mean latency. Output: one JSON object.
// Any problem (missing or bad file, wrong input size) prints one line "error: ..." and exits 1.
#pragma once

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <functional>
#include <iostream>
#include <numeric>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

namespace runner {

struct Tensor {
  std::string name;
  std::vector<int64_t> shape;
  std::vector<float> data;
  int64_t rows() const { return shape.empty() ? 0 : shape[0]; }
  int64_t row_size() const {
    return std::accumulate(shape.begin() + 1, shape.end(), int64_t{1}, std::multiplies<int64_t>());
  }
};

struct Golden {
  std::vector<Tensor> inputs, outputs;  // in the model's order
  int64_t count = 0;
};

inline std::vector<char> read_file(const std::string& path, const char* what) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw std::runtime_error(std::string(what) + " " + path + " not found or unreadable");
  std::vector<char> bytes((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  if (bytes.empty()) throw std::runtime_error(std::string(what) + " " + path + " is empty");
  return bytes;
}

inline Golden read_golden(const std::string& path) {
  const std::vector<char> b = read_file(path, "golden-vector file");
  size_t pos = 0;
  auto need = [&](size_t n) {
    if (pos + n > b.size()) throw std::runtime_error("golden-vector file " + path + " is truncated");
  };
  auto u32 = [&]() { need(4); uint32_t v; std::memcpy(&v, &b[pos], 4); pos += 4; return v; };
  need(8);
  if (std::string(&b[0], 8) != "EMBGOLD1") throw std::runtime_error(path + " is not a golden-vector file");
  pos = 8;
  Golden g;
  const uint32_t n = u32();
  for (uint32_t i = 0; i < n; ++i) {
    Tensor t;
    const uint32_t len = u32();
    need(len);
    t.name.assign(&b[pos], len);
    pos += len;
    const uint32_t rank = u32();
    need(8ull * rank);
    t.shape.resize(rank);
    std::memcpy(t.shape.data(), &b[pos], 8ull * rank);
    pos += 8ull * rank;
    const int64_t count = std::accumulate(t.shape.begin(), t.shape.end(), int64_t{1}, std::multiplies<int64_t>());
    need(4ull * count);
    t.data.resize(count);
    std::memcpy(t.data.data(), &b[pos], 4ull * count);
    pos += 4ull * count;
    if (t.name.rfind("input.", 0) == 0) g.inputs.push_back(std::move(t));
    else if (t.name.rfind("output.", 0) == 0) g.outputs.push_back(std::move(t));
  }
  if (g.inputs.empty() || g.outputs.empty()) throw std::runtime_error(path + " holds no input/output tensors");
  g.count = g.inputs[0].rows();
  return g;
}

// What a runtime must provide: per-input feature sizes it expects (batch excluded; -1 if unknown)
// and a batch-1 forward pass returning the flattened outputs.
struct Model {
  virtual ~Model() = default;
  virtual std::vector<int64_t> input_sizes() const = 0;
  virtual std::vector<std::vector<float>> run(const std::vector<const float*>& inputs) = 0;
};

// Values per vector of each input, from per-input shapes without the batch dimension.
template <typename Dim>
std::vector<int64_t> feature_sizes(const std::vector<std::vector<Dim>>& shapes) {
  std::vector<int64_t> out;
  for (const auto& s : shapes) out.push_back(std::accumulate(s.begin(), s.end(), int64_t{1}, std::multiplies<int64_t>()));
  return out;
}

struct Options {
  std::string model, golden;
  int iterations = 100;
};

inline void usage(const char* prog, const char* what, std::FILE* to) {
  std::fprintf(to,
               "usage: %s MODEL GOLDEN [--iterations N]\n\n"
               "%s\n\n"
               "  MODEL            exported model file (see exports/<model>/manifest.json)\n"
               "  GOLDEN           golden.bin with inputs and expected outputs\n"
               "  --iterations N   timed batch-1 runs after warm-up (default 100)\n"
               "  -h, --help       this help\n\n"
               "Prints JSON: outputs, argmax actions, max_abs_diff vs golden, latency p50/p99/mean (ms).\n",
               prog, what);
}

inline std::string json_floats(const std::vector<float>& v) {
  std::ostringstream s;
  s.precision(9);
  s << "[";
  for (size_t i = 0; i < v.size(); ++i) s << (i ? "," : "") << v[i];
  return s.str() + "]";
}

inline double percentile(std::vector<double> v, double p) {
  std::sort(v.begin(), v.end());
  const size_t i = std::min(v.size() - 1, static_cast<size_t>(std::ceil(p / 100.0 * v.size())) - 1);
  return v[i];
}

// Parses arguments, loads the golden vectors and the model (via `load`), checks sizes, runs, prints.
inline int run_main(int argc, char** argv, const char* runner_name, const char* what,
                    const std::function<std::unique_ptr<Model>(const std::string&)>& load) {
  Options o;
  std::vector<std::string> positional;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "-h" || a == "--help") { usage(argv[0], what, stdout); return 0; }
    if (a == "--iterations") {
      if (i + 1 >= argc) { std::fprintf(stderr, "error: --iterations needs a number\n"); return 2; }
      try { o.iterations = std::stoi(argv[++i]); } catch (...) { o.iterations = -1; }
      if (o.iterations < 1) { std::fprintf(stderr, "error: --iterations must be a positive integer\n"); return 2; }
    } else if (!a.empty() && a[0] == '-') {
      std::fprintf(stderr, "error: unknown option %s (see --help)\n", a.c_str()); return 2;
    } else {
      positional.push_back(a);
    }
  }
  if (positional.size() != 2) { usage(argv[0], what, stderr); return 2; }
  o.model = positional[0];
  o.golden = positional[1];
  try {
    const Golden g = read_golden(o.golden);
    std::unique_ptr<Model> model = load(o.model);
    const std::vector<int64_t> sizes = model->input_sizes();
    if (sizes.size() != g.inputs.size())
      throw std::runtime_error("model takes " + std::to_string(sizes.size()) + " inputs, golden file has " +
                               std::to_string(g.inputs.size()));
    for (size_t k = 0; k < sizes.size(); ++k)
      if (sizes[k] >= 0 && sizes[k] != g.inputs[k].row_size())
        throw std::runtime_error("input " + g.inputs[k].name + " has " + std::to_string(g.inputs[k].row_size()) +
                                 " values per vector, the model expects " + std::to_string(sizes[k]));
    for (const Tensor& t : g.inputs)
      for (size_t j = 0; j < t.data.size(); ++j)
        if (!std::isfinite(t.data[j]))
          throw std::runtime_error("input " + t.name + " vector " + std::to_string(j / t.row_size()) +
                                   " contains NaN or Inf");
    auto row = [&](int64_t r) {
      std::vector<const float*> in;
      for (const Tensor& t : g.inputs) in.push_back(t.data.data() + r * t.row_size());
      return in;
    };
    std::vector<std::vector<float>> first_outputs;
    std::vector<int64_t> actions;
    double max_diff = 0.0;
    for (int64_t r = 0; r < g.count; ++r) {
      const auto out = model->run(row(r));
      if (out.size() != g.outputs.size()) throw std::runtime_error("model returned an unexpected number of outputs");
      for (size_t k = 0; k < out.size(); ++k) {
        const Tensor& want = g.outputs[k];
        if (static_cast<int64_t>(out[k].size()) != want.row_size())
          throw std::runtime_error("output " + want.name + " has " + std::to_string(out[k].size()) +
                                   " values, expected " + std::to_string(want.row_size()));
        for (int64_t j = 0; j < want.row_size(); ++j)
          max_diff = std::max(max_diff, std::fabs(double(out[k][j]) - want.data[r * want.row_size() + j]));
      }
      actions.push_back(std::max_element(out[0].begin(), out[0].end()) - out[0].begin());
      first_outputs.push_back(out[0]);
    }
    const auto x0 = row(0);
    for (int i = 0; i < std::min(o.iterations, 20); ++i) model->run(x0);  // warm-up
    std::vector<double> ms;
    for (int i = 0; i < o.iterations; ++i) {
      const auto t0 = std::chrono::steady_clock::now();
      model->run(x0);
      ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
    }
    std::ostringstream s;
    s << "{\"runner\":\"" << runner_name << "\",\"model\":\"" << o.model << "\",\"vectors\":" << g.count
      << ",\"max_abs_diff\":" << max_diff << ",\"actions\":[";
    for (size_t i = 0; i < actions.size(); ++i) s << (i ? "," : "") << actions[i];
    s << "],\"outputs\":[";
    for (size_t i = 0; i < first_outputs.size(); ++i) s << (i ? "," : "") << json_floats(first_outputs[i]);
    s << "],\"latency_ms\":{\"p50\":" << percentile(ms, 50) << ",\"p99\":" << percentile(ms, 99)
      << ",\"mean\":" << std::accumulate(ms.begin(), ms.end(), 0.0) / ms.size()
      << ",\"iterations\":" << o.iterations << ",\"batch\":1}}";
    std::cout << s.str() << std::endl;
    return 0;
  } catch (const std::exception& e) {
    std::string msg = e.what();
    std::replace(msg.begin(), msg.end(), '\n', ' ');
    std::fprintf(stderr, "error: %s\n", msg.substr(0, 400).c_str());
    return 1;
  }
}

}  // namespace runner
