// A patched opener for the "verify what you use" tests (tests/test_hostile_files.py), preloaded into a runner,
// the controller or Python: it logs every open of a watched path and, the first time a trigger path is opened,
// renames a replacement file over a target path, as an attacker racing the load would. A loader that opens a
// path twice (once to hash, once to load) then loads the replacement; one that reads each file once does not.
//
//   EMBODIED_SWAP="trigger|target|replacement;..."   EMBODIED_OPEN_LOG=/path/to/log   (absolute paths)
//   EMBODIED_OPEN_WATCH="path;..."   more paths to log (triggers and targets are logged anyway)
#include <dlfcn.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cstdio>
#include <mutex>
#include <string>
#include <vector>

namespace {

struct Swap { std::string trigger, target, replacement; bool done = false; };

std::mutex& lock() { static std::mutex m; return m; }

std::vector<Swap>& swaps() {
  static std::vector<Swap> all = [] {
    std::vector<Swap> out;
    const char* spec = getenv("EMBODIED_SWAP");
    std::string s = spec ? spec : "";
    size_t start = 0;
    while (start < s.size()) {
      size_t end = s.find(';', start);
      if (end == std::string::npos) end = s.size();
      const std::string item = s.substr(start, end - start);
      const size_t a = item.find('|'), b = item.find('|', a + 1);
      if (a != std::string::npos && b != std::string::npos)
        out.push_back({item.substr(0, a), item.substr(a + 1, b - a - 1), item.substr(b + 1)});
      start = end + 1;
    }
    return out;
  }();
  return all;
}

bool watched_by_name(const char* path) {
  const char* watch = getenv("EMBODIED_OPEN_WATCH");
  if (!watch) return false;
  const std::string all = std::string(";") + watch + ";";
  return all.find(std::string(";") + path + ";") != std::string::npos;
}

void after_open(const char* path, bool opened) {
  if (!path) return;
  std::lock_guard<std::mutex> guard(lock());
  bool watched = watched_by_name(path);
  for (const Swap& s : swaps()) watched = watched || s.trigger == path || s.target == path;
  if (!watched) return;
  if (const char* log = getenv("EMBODIED_OPEN_LOG")) {
    static int (*real_open)(const char*, int, ...) = reinterpret_cast<int (*)(const char*, int, ...)>(dlsym(RTLD_NEXT, "open"));
    const int fd = real_open(log, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
    if (fd >= 0) {
      const std::string line = std::string(path) + "\n";
      if (::write(fd, line.data(), line.size()) < 0) {}
      ::close(fd);
    }
  }
  if (!opened) return;
  for (Swap& s : swaps())
    if (!s.done && s.trigger == path) {
      s.done = true;
      std::rename(s.replacement.c_str(), s.target.c_str());
    }
}

template <typename F>
F next(const char* name) { return reinterpret_cast<F>(dlsym(RTLD_NEXT, name)); }

}  // namespace

extern "C" {

#define EMBODIED_OPEN(NAME)                                                        \
  int NAME(const char* path, int flags, ...) {                                     \
    static auto real = next<int (*)(const char*, int, ...)>(#NAME);                \
    mode_t mode = 0;                                                               \
    if (flags & (O_CREAT | O_TMPFILE)) { va_list ap; va_start(ap, flags); mode = va_arg(ap, int); va_end(ap); } \
    const int fd = real(path, flags, mode);                                        \
    after_open(path, fd >= 0);                                                     \
    return fd;                                                                     \
  }
EMBODIED_OPEN(open)
EMBODIED_OPEN(open64)

#define EMBODIED_OPENAT(NAME)                                                      \
  int NAME(int dir, const char* path, int flags, ...) {                            \
    static auto real = next<int (*)(int, const char*, int, ...)>(#NAME);           \
    mode_t mode = 0;                                                               \
    if (flags & (O_CREAT | O_TMPFILE)) { va_list ap; va_start(ap, flags); mode = va_arg(ap, int); va_end(ap); } \
    const int fd = real(dir, path, flags, mode);                                   \
    after_open(path, fd >= 0);                                                     \
    return fd;                                                                     \
  }
EMBODIED_OPENAT(openat)
EMBODIED_OPENAT(openat64)

#define EMBODIED_FOPEN(NAME)                                                       \
  FILE* NAME(const char* path, const char* mode) {                                 \
    static auto real = next<FILE* (*)(const char*, const char*)>(#NAME);           \
    FILE* f = real(path, mode);                                                    \
    after_open(path, f != nullptr);                                                \
    return f;                                                                      \
  }
EMBODIED_FOPEN(fopen)
EMBODIED_FOPEN(fopen64)
}
