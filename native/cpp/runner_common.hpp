// The command-line contract shared by every C++ runner (and mirrored by the Rust ones):
//
//   <runner> MODEL GOLDEN [--manifest MANIFEST] [--iterations N] [--public-key PEM]
//
// MODEL is an exported file, GOLDEN the golden.bin next to it (format: embodied_lib/export/golden.py),
// MANIFEST the export folder's manifest.json (default: beside MODEL). The manifest says how each output
// is judged (argmax, or a binary decision on a continuous value), the tolerance, the input shapes, and
// for the twins the layer graph. Each golden vector is run at batch 1 and compared with the eager output
// stored beside it; then N timed runs of vector 0 (after warm-up) give p50/p99/mean latency
// (nearest-rank percentiles, as in Python). Output: one JSON object, the schema of
// embodied_lib.native.RUNNER_KEYS. Any problem (missing or bad file, wrong input size) prints one line
// "error: ..." and exits 1; usage errors exit 2.
//
// Trust (embodied_lib/export/trust.py): before a runtime opens MODEL, its size and sha256 must be the
// manifest's (OpenSSL libcrypto); with --public-key the manifest's Ed25519 signature (manifest.sig)
// must verify, and code-carrying formats (AOTInductor) refuse to run without one. Files are read only
// if they are regular files under a size cap; every size read from a file is checked arithmetic; golden
// outputs must be finite and inputs inside the manifest's "valid" range.
#pragma once

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <functional>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <cerrno>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <numeric>
#include <stdexcept>
#include <string>
#include <vector>

namespace runner {

using json = nlohmann::json;
using Shape = std::vector<int64_t>;

constexpr uint64_t kMaxFileBytes = 512ull << 20;   // golden vectors, manifests, keys (read whole)
constexpr uint64_t kMaxModelBytes = 4ull << 30;    // model files (hashed in a stream)
constexpr long long kMaxIterations = 1000000;
constexpr uint32_t kMaxRank = 8, kMaxName = 256;

// Products of shapes already checked (every dimension > 0, total bounded by the file size).
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

// A regular file (not a FIFO, a device or a directory) of 1..cap bytes; its size.
inline uint64_t check_size(const struct stat& st, const std::string& path, const char* what, uint64_t cap) {
  if (!S_ISREG(st.st_mode)) throw std::runtime_error(std::string(what) + " " + path + " is not a regular file");
  const uint64_t size = static_cast<uint64_t>(st.st_size);
  if (size == 0) throw std::runtime_error(std::string(what) + " " + path + " is empty");
  if (size > cap)
    throw std::runtime_error(std::string(what) + " " + path + " has " + std::to_string(size) + " bytes, more than " +
                             std::to_string(cap));
  return size;
}

inline uint64_t check_regular(const std::string& path, const char* what, uint64_t cap) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) throw std::runtime_error(std::string(what) + " " + path + " not found or unreadable");
  return check_size(st, path, what, cap);
}

// The whole file from one open descriptor (checked with fstat on that descriptor, so what is checked is what is
// read; O_NONBLOCK so a FIFO is refused instead of waited on). Every file a runner uses is read through here once.
inline std::vector<char> read_file(const std::string& path, const char* what, uint64_t cap = kMaxFileBytes) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) throw std::runtime_error(std::string(what) + " " + path + " not found or unreadable");
  struct Closer { int fd; ~Closer() { ::close(fd); } } closer{fd};
  struct stat st {};
  if (::fstat(fd, &st) != 0) throw std::runtime_error(std::string(what) + " " + path + " not found or unreadable");
  const uint64_t size = check_size(st, path, what, cap);
  std::vector<char> bytes(size);
  uint64_t got = 0;
  while (got < size) {
    const ssize_t n = ::read(fd, bytes.data() + got, size - got);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) throw std::runtime_error(std::string(what) + " " + path + " changed while read");
    got += static_cast<uint64_t>(n);
  }
  return bytes;
}

// sha256 (hex) of bytes in memory, through OpenSSL's EVP interface.
inline std::string sha256_hex(const std::vector<char>& bytes) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  if (EVP_Digest(bytes.data(), bytes.size(), digest, &n, EVP_sha256(), nullptr) != 1) throw std::runtime_error("sha256 unavailable");
  static const char* hex = "0123456789abcdef";
  std::string out;
  for (unsigned int i = 0; i < n; ++i) { out += hex[digest[i] >> 4]; out += hex[digest[i] & 15]; }
  return out;
}

inline std::string sibling(const std::string& path, const std::string& name) {
  const size_t slash = path.find_last_of('/');
  return (slash == std::string::npos ? std::string() : path.substr(0, slash + 1)) + name;
}

// manifest.sig beside the manifest must be an Ed25519 signature of its exact bytes (`message`, as the caller read
// them: the bytes it then parses) by the PEM public key.
inline void verify_signature(const std::string& manifest_path, const std::vector<char>& message,
                             const std::string& public_key) {
  const std::vector<char> pem = read_file(public_key, "public key");
  std::unique_ptr<BIO, decltype(&BIO_free)> bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())), BIO_free);
  std::unique_ptr<EVP_PKEY, decltype(&EVP_PKEY_free)> key(PEM_read_bio_PUBKEY(bio.get(), nullptr, nullptr, nullptr),
                                                          EVP_PKEY_free);
  if (!key || EVP_PKEY_id(key.get()) != EVP_PKEY_ED25519)
    throw std::runtime_error("public key " + public_key + " is not an Ed25519 PEM public key");
  const std::string sig_path = sibling(manifest_path, "manifest.sig");
  const std::vector<char> sig = read_file(sig_path, "manifest signature");
  std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(EVP_MD_CTX_new(), EVP_MD_CTX_free);
  const bool ok = ctx && EVP_DigestVerifyInit(ctx.get(), nullptr, nullptr, nullptr, key.get()) == 1 &&
                  EVP_DigestVerify(ctx.get(), reinterpret_cast<const unsigned char*>(sig.data()), sig.size(),
                                   reinterpret_cast<const unsigned char*>(message.data()), message.size()) == 1;
  if (!ok)
    throw std::runtime_error("the signature " + sig_path + " does not verify against the public key " + public_key +
                             ": the manifest was changed after signing, or signed by another key");
}

// The process's peak resident memory so far: VmHWM of /proc/self/status, in MiB (0 where unreadable).
// Not getrusage's ru_maxrss: Linux carries it across fork + exec, so a runner started by a large Python
// process would report the parent's peak.
inline double peak_rss_mb() {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line))
    if (line.rfind("VmHWM:", 0) == 0) return std::strtod(line.c_str() + 6, nullptr) / 1024.0;
  return 0.0;
}

// A model file's bytes as read once, checked against the manifest: what the runtime loads (from memory, or a
// private copy for a loader that only takes paths), never the path again.
struct ModelFile {
  std::string path;         // names the file in errors
  std::vector<char> bytes;  // the bytes that were hashed
  json entry;               // the manifest's entry for them
};

// Why a model file's manifest entry forbids loading it (embodied_lib.export.parity.refusal), or "" when it may load:
// every artifact carries the verdict of the parity check the export ran on it, and only "passed": true is served.
inline std::string parity_refusal(const std::string& model, const json& entry) {
  const json verdict = entry.value("parity", json::object());
  if (verdict.is_object() && verdict.contains("passed") && verdict["passed"].is_boolean() && verdict["passed"].get<bool>())
    return "";
  if (!verdict.is_object() || !verdict.contains("passed"))
    return model + " has no parity verdict in its manifest (an export from before verdicts were recorded, or an "
                   "edited manifest); re-export it";
  const json diff = verdict.value("max_abs_diff", json());
  std::string agreement;
  const json shares = verdict.value("decision_agreement", json::object());   // a named copy: items() only refers to it
  if (shares.is_object())
    for (const auto& [name, share] : shares.items())
      agreement += (agreement.empty() ? "" : ", ") + name + " " + (share.is_number() ? std::to_string(share.get<double>()) : "?");
  return model + " failed its parity check at export (max |diff| " +
         (diff.is_number() ? std::to_string(diff.get<double>()) : std::string("NaN/Inf")) + " against a tolerance of " +
         verdict.value("tolerance", json()).dump() + ", decision agreement " + (agreement.empty() ? "n/a" : agreement) +
         " against " + verdict.value("agreement", json()).dump() + " required); it is never served";
}

// MODEL is a file the manifest lists (same size and sha256, whatever its name), and an artifact whose parity verdict
// passed (parity_refusal). Runs before any runtime parses it.
inline ModelFile verify_model_file(const std::string& model, const json& manifest) {
  ModelFile file{model, read_file(model, "model file", kMaxModelBytes), json()};
  const uint64_t size = file.bytes.size();
  const std::string digest = sha256_hex(file.bytes);
  for (const char* key : {"artifacts", "extra_files"})
    if (manifest.contains(key) && manifest[key].is_array())
      for (const json& a : manifest[key])
        if (a.is_object() && a.contains("sha256") && a["sha256"] == digest && a.contains("bytes") &&
            a["bytes"].is_number_unsigned() && a["bytes"].get<uint64_t>() == size) {
          if (std::string(key) == "artifacts") {
            const std::string refused = parity_refusal(model, a);
            if (!refused.empty()) throw std::runtime_error(refused);
          }
          file.entry = a;
          return file;
        }
  throw std::runtime_error(model + " (" + std::to_string(size) + " bytes) matches no file the manifest lists by size "
                           "and sha256 (truncated, corrupted or replaced?)");
}

// Verified bytes written to a fresh 0700 folder for a loader that only takes a path; removed when it goes.
struct PrivateCopy {
  std::string dir, path;
  PrivateCopy(const std::vector<char>& bytes, const std::string& name) {
    std::string tmpl = (std::getenv("TMPDIR") ? std::string(std::getenv("TMPDIR")) : std::string("/tmp")) + "/embodied-XXXXXX";
    if (!::mkdtemp(tmpl.data())) throw std::runtime_error("cannot make a private folder for a copy of the model");
    dir = tmpl;
    path = dir + "/" + name;
    const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    bool ok = fd >= 0;
    for (size_t done = 0; ok && done < bytes.size();) {
      const ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
      ok = n > 0;
      done += ok ? size_t(n) : 0;
    }
    if (fd >= 0) ::close(fd);
    if (!ok) { remove(); throw std::runtime_error("cannot write a private copy of the model to " + dir); }
  }
  PrivateCopy(const PrivateCopy&) = delete;
  PrivateCopy& operator=(const PrivateCopy&) = delete;
  ~PrivateCopy() { remove(); }
  void remove() const { ::unlink(path.c_str()); ::rmdir(dir.c_str()); }
};

// The largest magnitude output k may hold (the manifest's "max_abs", from embodied_lib.export.output_limit);
// infinity where the manifest gives none. Anything beyond is a damaged file or a failed runtime, not an answer.
inline double output_limit(const json& manifest, size_t k) {
  const json& outputs = manifest.at("outputs");
  if (k >= outputs.size() || !outputs[k].is_object()) return INFINITY;
  const json limit = outputs[k].value("max_abs", json());
  return limit.is_number() && limit.get<double>() > 0 ? limit.get<double>() : INFINITY;
}

// Outputs that are finite and inside their limits, else an error naming the model file.
inline void check_outputs(const std::string& model, const json& manifest, size_t k, const std::string& name,
                          const float* v, size_t n) {
  const double limit = output_limit(manifest, k);
  for (size_t j = 0; j < n; ++j) {
    if (!std::isfinite(v[j])) throw std::runtime_error(model + " returned NaN or Inf in output " + name);
    if (std::fabs(double(v[j])) > limit)
      throw std::runtime_error(model + " returned " + std::to_string(v[j]) + " in output " + name + ", beyond the " +
                               std::to_string(limit) + " the manifest says this model can produce (damaged file?)");
  }
}

// Parses golden.bin bytes; `path` only names the source in errors (the fuzz target feeds bytes directly).
inline Golden parse_golden(const std::vector<char>& b, const std::string& path) {
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
  for (uint32_t i = 0; i < n && i < 64; ++i) {
    Tensor t;
    const uint32_t len = u32();
    if (len > kMaxName) throw std::runtime_error(path + ": a tensor name of " + std::to_string(len) + " bytes");
    need(len);
    t.name.assign(&b[pos], len);
    pos += len;
    const uint32_t rank = u32();
    if (rank < 1 || rank > kMaxRank)
      throw std::runtime_error(path + ": tensor " + t.name + " has rank " + std::to_string(rank) + " (1 to 8)");
    need(8ull * rank);
    t.shape.resize(rank);
    std::memcpy(t.shape.data(), &b[pos], 8ull * rank);
    pos += 8ull * rank;
    uint64_t count = 1;  // checked: every dimension > 0, the product never past what the file holds
    for (const int64_t d : t.shape) {
      if (d <= 0) throw std::runtime_error(path + ": tensor " + t.name + " has a dimension of " + std::to_string(d));
      if (static_cast<uint64_t>(d) > b.size() / 4 / count)
        throw std::runtime_error(path + ": tensor " + t.name + " of shape " + shape_str(t.shape) + " is larger than the file");
      count *= static_cast<uint64_t>(d);
    }
    need(4ull * count);
    t.data.resize(count);
    std::memcpy(t.data.data(), &b[pos], 4ull * count);
    pos += 4ull * count;
    if (t.name.rfind("output.", 0) == 0)
      for (const float v : t.data)
        if (!std::isfinite(v))
          throw std::runtime_error(path + ": expected output " + t.name + " holds NaN or Inf, so nothing can be compared with it");
    if (t.name.rfind("input.", 0) == 0) g.inputs.push_back(std::move(t));
    else if (t.name.rfind("output.", 0) == 0) g.outputs.push_back(std::move(t));
  }
  if (g.inputs.empty() || g.outputs.empty()) throw std::runtime_error(path + " holds no input/output tensors");
  g.count = g.inputs[0].rows();
  for (const auto* list : {&g.inputs, &g.outputs})
    for (const Tensor& t : *list)
      if (t.rows() != g.count)
        throw std::runtime_error(path + ": " + t.name + " has " + std::to_string(t.rows()) + " rows but " + g.inputs[0].name +
                                 " has " + std::to_string(g.count) + "; every tensor needs one row per vector");
  return g;
}

inline Golden read_golden(const std::string& path) { return parse_golden(read_file(path, "golden-vector file"), path); }

inline json parse_manifest(const std::vector<char>& bytes, const std::string& path) {
  try {
    return json::parse(bytes.begin(), bytes.end());
  } catch (const json::exception& e) {
    throw std::runtime_error("manifest " + path + " is not valid JSON: " + e.what());
  }
}

inline json read_manifest(const std::string& path) { return parse_manifest(read_file(path, "manifest"), path); }

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
  std::string model, golden, manifest, public_key;
  int iterations = 100;
};

// A decimal integer in [1, kMaxIterations], digits only ("1e3", "5abc", "-1" and "" are not); -1 if not.
inline int parse_iterations(const std::string& v) {
  if (v.empty() || v.size() > 7 || !std::all_of(v.begin(), v.end(), [](char c) { return c >= '0' && c <= '9'; })) return -1;
  const long long n = std::stoll(v);
  return n >= 1 && n <= kMaxIterations ? static_cast<int>(n) : -1;
}

inline void usage(const char* prog, const char* what, std::FILE* to) {
  std::fprintf(to,
               "usage: %s MODEL GOLDEN [--manifest MANIFEST] [--iterations N] [--public-key PEM]\n\n"
               "%s\n\n"
               "  MODEL            exported model file (see exports/<model>/manifest.json)\n"
               "  GOLDEN           golden.bin with inputs and expected outputs\n"
               "  --manifest M     the export's manifest.json (default: beside MODEL)\n"
               "  --iterations N   timed batch-1 runs after warm-up (default 100, at most 1000000)\n"
               "  --public-key K   verify the manifest's Ed25519 signature (manifest.sig) with this PEM key\n"
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

// The manifest's value rules for one input (Python's ModelSpec.check_inputs): inside "valid" [lo, hi],
// and no all-zero row where it says "nonzero_rows".
inline void check_values(const Tensor& t, const json& declared) {
  const json valid = declared.value("valid", json());
  if (!valid.is_array() || valid.size() != 2 || !valid[0].is_number() || !valid[1].is_number())
    throw std::runtime_error("the manifest gives input " + t.name + " no valid range [lo, hi]");
  const double lo = valid[0].get<double>(), hi = valid[1].get<double>();
  for (const float v : t.data)
    if (v < lo || v > hi)
      throw std::runtime_error("input " + t.name + " holds " + std::to_string(v) + ", outside the valid range [" +
                               std::to_string(lo) + ", " + std::to_string(hi) + "]");
  if (declared.value("nonzero_rows", false))
    for (int64_t r = 0; r < t.rows(); ++r) {
      const float* row = t.data.data() + r * t.row_size();
      if (std::all_of(row, row + t.row_size(), [](float v) { return v == 0.0f; }))
        throw std::runtime_error("input " + t.name + " has a row of zeros (an attention mask must keep at least one token)");
    }
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
    check_values(t, inputs[k]);
    shapes.push_back(got);
  }
  return shapes;
}

// Parses arguments, loads the golden vectors, the manifest and the model (via `load`), checks, runs, prints.
// carries_code: the format runs code when loaded (AOTInductor), so it needs --public-key and a valid signature.
inline int run_main(int argc, char** argv, const char* runner_name, const char* what,
                    const std::function<std::unique_ptr<Model>(ModelFile&, const json&)>& load,
                    bool carries_code = false) {
  Options o;
  std::vector<std::string> positional;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "-h" || a == "--help") { usage(argv[0], what, stdout); return 0; }
    if (a == "--iterations") {
      if (i + 1 >= argc) { std::fprintf(stderr, "error: --iterations needs a number\n"); return 2; }
      o.iterations = parse_iterations(argv[++i]);
      if (o.iterations < 1) { std::fprintf(stderr, "error: --iterations must be an integer from 1 to %lld\n", kMaxIterations); return 2; }
    } else if (a == "--public-key") {
      if (i + 1 >= argc) { std::fprintf(stderr, "error: --public-key needs a PEM file\n"); return 2; }
      o.public_key = argv[++i];
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
    const std::vector<char> manifest_bytes = read_file(o.manifest, "manifest");   // one read: verified = parsed
    if (carries_code && o.public_key.empty())
      throw std::runtime_error(std::string(runner_name) + " files carry code that runs when loaded; give --public-key with "
                               "the key that signed the manifest (python -m embodied_lib.export.trust)");
    if (!o.public_key.empty()) verify_signature(o.manifest, manifest_bytes, o.public_key);
    const json manifest = parse_manifest(manifest_bytes, o.manifest);
    ModelFile file = verify_model_file(o.model, manifest);
    const json entry = file.entry;
    std::unique_ptr<Model> model = load(file, manifest);
    const std::vector<Shape> shapes = resolve_shapes(g, manifest, model->input_shapes());
    const json& declared_outputs = manifest.at("outputs");
    if (declared_outputs.size() != g.outputs.size())
      throw std::runtime_error("the manifest declares " + std::to_string(declared_outputs.size()) +
                               " outputs, the golden file has " + std::to_string(g.outputs.size()));
    const DecisionRule rule(declared_outputs);
    // How this file is judged (embodied_lib.export.parity_rule): an INT8 artifact carries a looser value
    // tolerance and the share of decisions that must stay; a float one, the model's tolerance and all of them.
    const json rule_of_file = entry.value("parity", json::object());
    const double tolerance = rule_of_file.value("tolerance", manifest.at("tolerance").get<double>());
    const double tie_margin = rule_of_file.value("tie_margin", manifest.at("tolerance").get<double>());
    const double required_agreement = rule_of_file.value("agreement", 1.0);
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
        check_outputs(o.model, manifest, k, want.name, out[k].data(), out[k].size());
        for (int64_t j = 0; j < want.row_size(); ++j)
          max_by_output[k] = std::max(max_by_output[k], std::fabs(double(out[k][j]) - want.data[r * want.row_size() + j]));
      }
      first_outputs.push_back(out[0]);
      if (!rule.name.empty()) {
        const Tensor& want = g.outputs[rule.output];
        const auto have = rule.decide(out[rule.output].data(), want.row_size());
        const auto expected = rule.decide(want.data.data() + r * want.row_size(), want.row_size());
        decisions.push_back(have.first);
        if (expected.second > tie_margin) {  // a near-tie in the reference is not a decision to keep
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
        {"required_agreement", required_agreement},
        {"passed", max_diff <= tolerance && agree >= required_agreement * compared - 1e-9},
        {"peak_rss_mb", peak_rss_mb()},
        {"outputs", first_outputs},
        {"latency_ms", {{"p50", percentile(ms, 50)}, {"p99", percentile(ms, 99)},
                        {"mean", std::accumulate(ms.begin(), ms.end(), 0.0) / ms.size()},
                        {"iterations", o.iterations}, {"batch", 1}}}};
    std::cout << result.dump(-1, ' ', false, json::error_handler_t::replace) << std::endl;  // a non-UTF-8 path stays valid JSON
    return 0;
  } catch (const std::exception& e) {
    std::string msg = e.what();
    std::replace(msg.begin(), msg.end(), '\n', ' ');
    std::fprintf(stderr, "error: %s\n", msg.substr(0, 400).c_str());
    return 1;
  }
}

}  // namespace runner
