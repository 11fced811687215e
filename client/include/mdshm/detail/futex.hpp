// futex(2) wrappers. glibc has no wrapper; std::atomic::wait cannot wait across processes with a
// timeout, so the two calls we need are written here.
#pragma once

#include <linux/futex.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <climits>
#include <cstdint>

namespace mdshm::detail {

// Shared futex (across processes): the word lives in a MAP_SHARED mapping, possibly read-only.
// Returns 0 when woken, ETIMEDOUT, EAGAIN (value already changed) or EINTR.
inline int futex_wait_shared(const std::uint32_t* word, std::uint32_t expected, std::chrono::nanoseconds timeout) {
  if (timeout.count() < 0) timeout = std::chrono::nanoseconds(0);
  timespec ts{static_cast<time_t>(timeout.count() / 1'000'000'000), static_cast<long>(timeout.count() % 1'000'000'000)};
  const long r = ::syscall(SYS_futex, word, FUTEX_WAIT, expected, &ts, nullptr, 0);
  return r == 0 ? 0 : errno;
}

inline int futex_wake_shared(const std::uint32_t* word, int n = INT_MAX) {
  return static_cast<int>(::syscall(SYS_futex, word, FUTEX_WAKE, n, nullptr, nullptr, 0));
}

inline int futex_wait_private(const std::uint32_t* word, std::uint32_t expected, std::chrono::nanoseconds timeout) {
  timespec ts{static_cast<time_t>(timeout.count() / 1'000'000'000), static_cast<long>(timeout.count() % 1'000'000'000)};
  const long r = ::syscall(SYS_futex, word, FUTEX_WAIT_PRIVATE, expected, &ts, nullptr, 0);
  return r == 0 ? 0 : errno;
}

inline int futex_wake_private(const std::uint32_t* word, int n) {
  return static_cast<int>(::syscall(SYS_futex, word, FUTEX_WAKE_PRIVATE, n, nullptr, nullptr, 0));
}

}  // namespace mdshm::detail
