// In its own translation unit so GCC does not pair the inlined malloc/free against new/delete.
#include "alloc_counter.hpp"

#include <cstdlib>
#include <new>

namespace mdshm::parse::test {
std::atomic<bool> g_counting{false};
std::atomic<long> g_allocations{0};
}  // namespace mdshm::parse::test

void* operator new(std::size_t n) {
  if (mdshm::parse::test::g_counting.load(std::memory_order_relaxed))
    mdshm::parse::test::g_allocations.fetch_add(1, std::memory_order_relaxed);
  if (void* p = std::malloc(n ? n : 1)) return p;
  throw std::bad_alloc();
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
// simdjson allocates with the nothrow form: it must pair with the replaced delete above.
void* operator new(std::size_t n, const std::nothrow_t&) noexcept {
  if (mdshm::parse::test::g_counting.load(std::memory_order_relaxed))
    mdshm::parse::test::g_allocations.fetch_add(1, std::memory_order_relaxed);
  return std::malloc(n ? n : 1);
}
