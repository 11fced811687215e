// At most `per_window` lines per 10 s per kind of problem, then one line saying how many were
// suppressed: bad input must never flood the log. Hand-written because spdlog 1.10 has no rate
// limiting of its own.
#pragma once

#include <time.h>

#include <cstdint>
#include <spdlog/spdlog.h>
#include <string>
#include <utility>

namespace mdshm::feed {

inline std::int64_t mono_ns() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return std::int64_t{ts.tv_sec} * 1'000'000'000 + ts.tv_nsec;
}

class BoundedLog {
 public:
  explicit BoundedLog(std::string what, int per_window = 5) : what_(std::move(what)), per_window_(per_window) {}
  template <class... Args>
  void warn(fmt::format_string<Args...> f, Args&&... args) {
    const auto now = mono_ns();
    if (now - window_start_ > 10'000'000'000) {
      if (suppressed_) spdlog::warn("{}: {} more suppressed in the last 10 s", what_, suppressed_);
      window_start_ = now;
      in_window_ = 0;
      suppressed_ = 0;
    }
    if (in_window_++ < per_window_) spdlog::warn(f, std::forward<Args>(args)...);
    else ++suppressed_;
  }

 private:
  std::string what_;
  int per_window_;
  std::int64_t window_start_ = 0;
  int in_window_ = 0;
  std::uint64_t suppressed_ = 0;
};

}  // namespace mdshm::feed
