// The command-line contract shared by every C++ runner (and mirrored by the Rust ones):
//
//   <runner> MODEL GOLDEN [--manifest MANIFEST] [--iterations N]
//
// MODEL is an exported file, GOLDEN the golden.bin next to it (format: embodied_lib/export/golden.py),
// MANIFEST the export folder's manifest.json (default: beside MODEL). The manifest says how each output
// is judged (argmax, or a binary decision on a continuous value), the tolerance, the input shapes, and
// for the twins the layer graph. Each golden vector is run at batch 1 and compared with the eager output
// stored beside it; then N timed runs of vector 0 (after warm-up) give p50/p99/mean latency
// (nearest-rank percentiles, as in Python). Output: one JSON object, the schema of
// embodied_lib.native.RUNNER_KEYS. Any problem (missing or bad file, wrong input size) prints one line
// "error: ..." and exits 1; usage errors exit 2.
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
#include <memory>
#include <nlohmann/json.hpp>
#include <numeric>
#include <stdexcept>
#include <string>
#include <vector>

namespace runner {

using json = nlohmann::json;
using Shape = std::vector<int64_t>;

inline int64_t product(const Shape& s, size_t from = 0) {
  int64_t n = 1;
  for (size_t i = from; i < s.size(); ++i) n *= s[i];
  return n;
}

inline std::string shape_str(const Shape& s) {
  std::string out = "[";
  for (size_t i = 0; i < s.size(); ++i) out += (i ? ", " : "") + (s[i] < 0 ? std::string("?") : std::to_string(s[i]));
  return out + "]";
}

struct Tensor {
  std::string name;
  Shape shape;
  std::vector<float> data;
  int64_t rows() const { return shape.empty() ? 0 : shape[0]; }
  Shape row_shape() const { return Shape(shape.begin() + 1, shape.end()); }
  int64_t row_size() const { return product(shape, 1); }
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
    const int64_t count = product(t.shape);
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

inline json read_manifest(const std::string& path) {
  const std::vector<char> bytes = read_file(path, "manifest");
  try {
    return json::parse(bytes.begin(), bytes.end());
  } catch (const json::exception& e) {
    throw std::runtime_error("manifest " + path + " is not valid JSON: " + e.what());
  }
}

// manifest.json beside the model file, unless --manifest says otherwise.
inline std::string default_manifest(const std::string& model) {
  const size_t slash = model.find_last_of('/');
  return (slash == std::string::npos ? std::string() : model.substr(0, slash + 1)) + "manifest.json";
}

// What a runtime must provide: per-input feature shapes it expects (batch excluded; -1 where the
// model leaves a dimension dynamic) and a batch-1 forward pass on inputs of the given feature shapes.
struct Model {
  virtual ~Model() = default;
  virtual std::vector<Shape> input_shapes() const = 0;
  virtual std::vector<std::vector<float>> run(const std::vector<const float*>& inputs,
                                              const std::vector<Shape>& shapes) = 0;
};

// The decision a model's outputs carry, from the manifest's "judged" entries: the argmax of the first
// discrete/probabilities output, else the first binary decision of a continuous output, else none.
struct DecisionRule {
  std::string name;   // "argmax", a decision's name (e.g. "gripper_closed"), or "" for none
  size_t output = 0;
  int64_t index = -1;  // element of a binary decision
  double above = 0.0;

  explicit DecisionRule(const json& outputs) {
    for (size_t k = 0; k < outputs.size(); ++k) {
      const json& judged = outputs[k].value("judged", json::object());
      const std::string kind = judged.value("kind", "");
      if (kind == "discrete" || kind == "probabilities") { name = "argmax"; output = k; return; }
    }
    for (size_t k = 0; k < outputs.size(); ++k) {
      const json& judged = outputs[k].value("judged", json::object());
      if (judged.contains("decisions") && !judged["decisions"].empty()) {
        const json& d = judged["decisions"][0];
        name = d.at("name").get<std::string>(); output = k;
        index = d.at("index").get<int64_t>(); above = d.value("above", 0.0);
        return;
      }
    }
  }
  // (decision, margin): how far the value is from flipping the decision
  std::pair<int64_t, double> decide(const float* v, int64_t n) const {
    if (name == "argmax") {
      int64_t best = std::max_element(v, v + n) - v;
      double second = -INFINITY;
      for (int64_t j = 0; j < n; ++j) if (j != best) second = std::max(second, double(v[j]));
      return {best, double(v[best]) - second};
    }
    if (index < 0 || index >= n) throw std::runtime_error("decision " + name + " reads element " + std::to_string(index) +
                                                          " of an output with " + std::to_string(n) + " values");
    return {v[index] > above ? 1 : 0, std::fabs(double(v[index]) - above)};
  }
};

struct Options {
  std::string model, golden, manifest;
  int iterations = 100;
};

inline void usage(const char* prog, const char* what, std::FILE* to) {
  std::fprintf(to,
               "usage: %s MODEL GOLDEN [--manifest MANIFEST] [--iterations N]\n\n"
               "%s\n\n"
               "  MODEL            exported model file (see exports/<model>/manifest.json)\n"
               "  GOLDEN           golden.bin with inputs and expected outputs\n"
               "  --manifest M     the export's manifest.json (default: beside MODEL)\n"
               "  --iterations N   timed batch-1 runs after warm-up (default 100)\n"
               "  -h, --help       this help\n\n"
               "Prints JSON: max_abs_diff (overall and per output) vs golden, the decision the outputs carry\n"
               "(argmax or a binary decision, as the manifest judges them) and its agreement, latency p50/p99/mean (ms).\n",
               prog, what);
}

// Nearest rank: sorted[ceil(p / 100 * n) - 1], the definition Python and Rust use too.
inline double percentile(std::vector<double> v, double p) {
  std::sort(v.begin(), v.end());
  const size_t i = std::min(v.size() - 1, static_cast<size_t>(std::ceil(p / 100.0 * v.size())) - 1);
  return v[i];
}

// The concrete per-vector shape of every input: the golden's, checked against the manifest (static
// dimensions must match, named ones are dynamic) and against what the model reports where it is static.
inline std::vector<Shape> resolve_shapes(const Golden& g, const json& manifest, const std::vector<Shape>& model_shapes) {
  const json& inputs = manifest.at("inputs");
  if (model_shapes.size() != g.inputs.size() || inputs.size() != g.inputs.size())
    throw std::runtime_error("model takes " + std::to_string(model_shapes.size()) + " inputs, the manifest " +
                             std::to_string(inputs.size()) + ", golden file has " + std::to_string(g.inputs.size()));
  std::vector<Shape> shapes;
  for (size_t k = 0; k < g.inputs.size(); ++k) {
    const Tensor& t = g.inputs[k];
    const Shape got = t.row_shape();
    const json& declared = inputs[k].at("shape");
    Shape expected;
    for (size_t d = 1; d < declared.size(); ++d) expected.push_back(declared[d].is_number() ? declared[d].get<int64_t>() : -1);
    bool ok = got.size() == expected.size();
    for (size_t d = 0; ok && d < got.size(); ++d) {
      ok = got[d] > 0 && (expected[d] < 0 || expected[d] == got[d]);
      const Shape& m = model_shapes[k];
      if (ok && expected[d] >= 0 && d < m.size() && m[d] >= 0) ok = m[d] == got[d];
    }
    if (!ok)
      throw std::runtime_error("input " + t.name + " has " + std::to_string(t.row_size()) + " values per vector " +
                               shape_str(got) + ", the model expects " + shape_str(expected) + " (" +
                               std::to_string(product(expected) < 0 ? -1 : product(expected)) + ")");
    for (size_t j = 0; j < t.data.size(); ++j)
      if (!std::isfinite(t.data[j]))
        throw std::runtime_error("input " + t.name + " vector " + std::to_string(j / t.row_size()) + " contains NaN or Inf");
    shapes.push_back(got);
  }
  return shapes;
}

// Parses arguments, loads the golden vectors, the manifest and the model (via `load`), checks, runs, prints.
inline int run_main(int argc, char** argv, const char* runner_name, const char* what,
                    const std::function<std::unique_ptr<Model>(const std::string&, const json&)>& load) {
  Options o;
  std::vector<std::string> positional;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "-h" || a == "--help") { usage(argv[0], what, stdout); return 0; }
    if (a == "--iterations") {
      if (i + 1 >= argc) { std::fprintf(stderr, "error: --iterations needs a number\n"); return 2; }
      try { o.iterations = std::stoi(argv[++i]); } catch (...) { o.iterations = -1; }
      if (o.iterations < 1) { std::fprintf(stderr, "error: --iterations must be a positive integer\n"); return 2; }
    } else if (a == "--manifest") {
      if (i + 1 >= argc) { std::fprintf(stderr, "error: --manifest needs a path\n"); return 2; }
      o.manifest = argv[++i];
    } else if (!a.empty() && a[0] == '-') {
      std::fprintf(stderr, "error: unknown option %s (see --help)\n", a.c_str()); return 2;
    } else {
      positional.push_back(a);
    }
  }
  if (positional.size() != 2) { usage(argv[0], what, stderr); return 2; }
  o.model = positional[0];
  o.golden = positional[1];
  if (o.manifest.empty()) o.manifest = default_manifest(o.model);
  try {
    const Golden g = read_golden(o.golden);
    const json manifest = read_manifest(o.manifest);
    std::unique_ptr<Model> model = load(o.model, manifest);
    const std::vector<Shape> shapes = resolve_shapes(g, manifest, model->input_shapes());
    const json& declared_outputs = manifest.at("outputs");
    if (declared_outputs.size() != g.outputs.size())
      throw std::runtime_error("the manifest declares " + std::to_string(declared_outputs.size()) +
                               " outputs, the golden file has " + std::to_string(g.outputs.size()));
    const DecisionRule rule(declared_outputs);
    const double tolerance = manifest.at("tolerance").get<double>();
    auto row = [&](int64_t r) {
      std::vector<const float*> in;
      for (const Tensor& t : g.inputs) in.push_back(t.data.data() + r * t.row_size());
      return in;
    };
    json first_outputs = json::array(), decisions = json::array(), by_output = json::object();
    std::vector<double> max_by_output(g.outputs.size(), 0.0);
    int64_t agree = 0, compared = 0;
    for (int64_t r = 0; r < g.count; ++r) {
      const auto out = model->run(row(r), shapes);
      if (out.size() != g.outputs.size()) throw std::runtime_error("model returned an unexpected number of outputs");
      for (size_t k = 0; k < out.size(); ++k) {
        const Tensor& want = g.outputs[k];
        if (static_cast<int64_t>(out[k].size()) != want.row_size())
          throw std::runtime_error("output " + want.name + " has " + std::to_string(out[k].size()) +
                                   " values, expected " + std::to_string(want.row_size()));
        for (int64_t j = 0; j < want.row_size(); ++j)
          max_by_output[k] = std::max(max_by_output[k], std::fabs(double(out[k][j]) - want.data[r * want.row_size() + j]));
      }
      first_outputs.push_back(out[0]);
      if (!rule.name.empty()) {
        const Tensor& want = g.outputs[rule.output];
        const auto have = rule.decide(out[rule.output].data(), want.row_size());
        const auto expected = rule.decide(want.data.data() + r * want.row_size(), want.row_size());
        decisions.push_back(have.first);
        if (expected.second > tolerance) {  // a near-tie in the reference is not a decision to keep
          ++compared;
          agree += have.first == expected.first;
        }
      }
    }
    for (size_t k = 0; k < g.outputs.size(); ++k) by_output[declared_outputs[k].at("name").get<std::string>()] = max_by_output[k];
    const double max_diff = *std::max_element(max_by_output.begin(), max_by_output.end());
    const auto x0 = row(0);
    for (int i = 0; i < std::min(o.iterations, 20); ++i) model->run(x0, shapes);  // warm-up
    std::vector<double> ms;
    for (int i = 0; i < o.iterations; ++i) {
      const auto t0 = std::chrono::steady_clock::now();
      model->run(x0, shapes);
      ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
    }
    const json result = {
        {"runner", runner_name}, {"model", o.model}, {"model_name", manifest.value("model", "")},
        {"vectors", g.count}, {"max_abs_diff", max_diff}, {"max_abs_diff_by_output", by_output},
        {"tolerance", tolerance},
        {"decision", {{"rule", rule.name.empty() ? json(nullptr) : json(rule.name)}, {"agreement", agree},
                      {"compared", compared}, {"values", decisions}}},
        {"passed", max_diff <= tolerance && agree == compared},
        {"outputs", first_outputs},
        {"latency_ms", {{"p50", percentile(ms, 50)}, {"p99", percentile(ms, 99)},
                        {"mean", std::accumulate(ms.begin(), ms.end(), 0.0) / ms.size()},
                        {"iterations", o.iterations}, {"batch", 1}}}};
    std::cout << result.dump() << std::endl;
    return 0;
  } catch (const std::exception& e) {
    std::string msg = e.what();
    std::replace(msg.begin(), msg.end(), '\n', ' ');
    std::fprintf(stderr, "error: %s\n", msg.substr(0, 400).c_str());
    return 1;
  }
}

}  // namespace runner
