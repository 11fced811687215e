// futex(2) wrappers. glibc has no wrapper; std::atomic::wait cannot wait across processes with a
// timeout, so the two calls mdshm needs are written here. Both work on a read-only MAP_SHARED
// mapping: the kernel keys a shared futex by the page, and neither call writes the word.
#pragma once

#include <linux/futex.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <climits>
#include <cstdint>

namespace mdshm::platform {

// Sleeps while *word == expected, at most `timeout`. Returns 0 when woken (by FUTEX_WAKE or
// spuriously), ETIMEDOUT, EAGAIN (the word already differed) or EINTR.
inline int futex_wait_shared(const std::uint32_t* word, std::uint32_t expected, std::chrono::nanoseconds timeout) {
  if (timeout.count() < 0) timeout = std::chrono::nanoseconds(0);
  timespec ts{static_cast<time_t>(timeout.count() / 1'000'000'000), static_cast<long>(timeout.count() % 1'000'000'000)};
  const long r = ::syscall(SYS_futex, word, FUTEX_WAIT, expected, &ts, nullptr, 0);
  return r == 0 ? 0 : errno;
}

// Wakes up to n sleepers of `word`; returns how many it woke.
inline int futex_wake_shared(const std::uint32_t* word, int n = INT_MAX) {
  return static_cast<int>(::syscall(SYS_futex, word, FUTEX_WAKE, n, nullptr, nullptr, 0));
}

}  // namespace mdshm::platform
