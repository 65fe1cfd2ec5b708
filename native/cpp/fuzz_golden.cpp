// libFuzzer target for the golden-vector reader every C++ runner uses (`make fuzz`): any input must
// parse or throw std::runtime_error; AddressSanitizer/UBSan stop at anything else.
#include "runner_common.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::vector<char> bytes(reinterpret_cast<const char*>(data), reinterpret_cast<const char*>(data) + size);
  try {
    runner::parse_golden(bytes, "fuzz input");
  } catch (const std::runtime_error&) {
  }
  return 0;
}
