// Counts heap allocations (global operator new, replaced in alloc_counter.cpp) while g_counting is
// set: the parser's steady state must make none.
#pragma once
#include <atomic>

namespace mdshm::parse::test {
extern std::atomic<bool> g_counting;
extern std::atomic<long> g_allocations;
}  // namespace mdshm::parse::test
