// The readers every C++ runner trusts with outside bytes, without a runtime behind them: built with
// AddressSanitizer + UndefinedBehaviorSanitizer by tests/test_native_sanitizers.py and run on crafted
// golden files, manifests and arguments. Each file must give a clean "error: ..." or be accepted; any
// sanitizer report aborts the program (-fno-sanitize-recover), which the test sees.
//
//   golden_check GOLDEN... [--manifest M] [--iterations VALUE]...
#include "runner_common.hpp"

int main(int argc, char** argv) {
  std::string manifest_path;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--manifest" && i + 1 < argc) { manifest_path = argv[++i]; continue; }
    if (a == "--iterations" && i + 1 < argc) {
      std::printf("iterations %s -> %d\n", argv[i + 1], runner::parse_iterations(argv[i + 1]));
      ++i;
      continue;
    }
    try {
      const runner::Golden g = runner::read_golden(a);
      if (!manifest_path.empty()) {
        const runner::json manifest = runner::read_manifest(manifest_path);
        std::vector<runner::Shape> model_shapes(g.inputs.size(), runner::Shape(8, -1));
        runner::resolve_shapes(g, manifest, model_shapes);
        const runner::DecisionRule rule(manifest.at("outputs"));
        for (int64_t r = 0; r < g.count; ++r)
          if (!rule.name.empty()) rule.decide(g.outputs[rule.output].data.data() + r * g.outputs[rule.output].row_size(),
                                              g.outputs[rule.output].row_size());
      }
      std::printf("ok %s: %zu inputs, %zu outputs, %lld vectors\n", a.c_str(), g.inputs.size(), g.outputs.size(),
                  static_cast<long long>(g.count));
    } catch (const std::exception& e) {
      std::printf("error %s: %s\n", a.c_str(), e.what());
    }
  }
  return 0;
}
