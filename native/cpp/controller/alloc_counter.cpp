// A counting allocator for the controller's allocation check, preloaded (LD_PRELOAD) into a test run:
// malloc and friends are counted on the threads that switched counting on (the controller's loop and its
// inference workers, not the simulator's renderer), then forwarded to glibc. operator new calls malloc, so
// C++ allocations are counted too. The controller finds the two functions with dlsym; without the preload it
// reports allocations_in_loop as null.
#include <atomic>
#include <cstddef>

extern "C" {
void* __libc_malloc(size_t);
void* __libc_calloc(size_t, size_t);
void* __libc_realloc(void*, size_t);
void* __libc_memalign(size_t, size_t);
}

namespace {
std::atomic<long> total{0};
thread_local bool counting = false;
inline void count() {
  if (counting) total.fetch_add(1, std::memory_order_relaxed);
}
}  // namespace

extern "C" {
__attribute__((visibility("default"))) void embodied_alloc_counting(int on) { counting = on != 0; }
__attribute__((visibility("default"))) long embodied_alloc_total() { return total.load(); }

void* malloc(size_t n) {
  count();
  return __libc_malloc(n);
}
void* calloc(size_t n, size_t size) {
  count();
  return __libc_calloc(n, size);
}
void* realloc(void* p, size_t n) {
  count();
  return __libc_realloc(p, n);
}
void* memalign(size_t alignment, size_t n) {
  count();
  return __libc_memalign(alignment, n);
}
void* aligned_alloc(size_t alignment, size_t n) {
  count();
  return __libc_memalign(alignment, n);
}
int posix_memalign(void** out, size_t alignment, size_t n) {
  count();
  void* p = __libc_memalign(alignment, n);
  if (!p) return 12;  // ENOMEM
  *out = p;
  return 0;
}
}
