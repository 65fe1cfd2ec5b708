// An ExecuTorch program opened from the bytes a runner verified (runner::ModelFile), never from its path again,
// with the program's internal-consistency verification: ExecuTorch checks the flatbuffer's tables (offsets,
// lengths, indices) before it uses them. With the default, minimal verification a .pte with a few flipped bytes
// in its header tables made the runtime read wild pointers (SIGSEGV) instead of returning an error.
#pragma once

#include <executorch/extension/data_loader/buffer_data_loader.h>
#include <executorch/extension/module/module.h>

#include <chrono>
#include <cstdio>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

namespace runner {

inline std::string et_error(executorch::runtime::Error e) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "0x%x", static_cast<unsigned>(e));
  return buf;
}

// The program's bytes and the Module that reads them (BufferDataLoader does not copy: the bytes live here).
struct ExecuTorchProgram {
  std::vector<char> bytes;
  std::unique_ptr<executorch::extension::Module> module;
  double load_ms = 0.0;  // program verification + method load
};

// Takes the verified bytes (moved out of `file`) and loads the forward method; errors name the file.
inline ExecuTorchProgram open_executorch(std::vector<char>&& bytes, const std::string& path) {
  ExecuTorchProgram p;
  p.bytes = std::move(bytes);
  if (p.bytes.size() < 8 || p.bytes[4] != 'E' || p.bytes[5] != 'T')
    throw std::runtime_error(path + " is not an ExecuTorch .pte file (bad header); re-export it");
  const auto t0 = std::chrono::steady_clock::now();
  p.module = std::make_unique<executorch::extension::Module>(
      std::make_unique<executorch::extension::BufferDataLoader>(p.bytes.data(), p.bytes.size()));
  auto err = p.module->load(executorch::runtime::Program::Verification::InternalConsistency);
  if (err != executorch::runtime::Error::Ok)
    throw std::runtime_error("cannot load " + path + " as an ExecuTorch program (error " + et_error(err) +
                             ": its program tables do not verify; truncated, corrupted or not a .pte?)");
  err = p.module->load_forward();
  if (err != executorch::runtime::Error::Ok)
    throw std::runtime_error("cannot load the forward method of " + path + " (error " + et_error(err) +
                             "; a damaged program, or one for kernels or backends this runtime lacks)");
  p.load_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  return p;
}

}  // namespace runner
