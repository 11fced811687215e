// Process identity helpers shared by the writer and the client: boot id, process start time and
// liveness. A pid alone is not an identity (pids are reused); pid + start time + boot id is.
#pragma once

#include <fcntl.h>
#include <signal.h>
#include <time.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>

namespace mdshm::platform {

inline std::uint64_t clock_ns(clockid_t clk) {
  timespec ts{};
  ::clock_gettime(clk, &ts);
  return static_cast<std::uint64_t>(ts.tv_sec) * 1'000'000'000ULL + static_cast<std::uint64_t>(ts.tv_nsec);
}
inline std::uint64_t mono_ns() { return clock_ns(CLOCK_MONOTONIC); }
inline std::uint64_t wall_ns() { return clock_ns(CLOCK_REALTIME); }

inline bool read_small_file(const char* path, char* buf, std::size_t cap, std::size_t& len) {
  const int fd = ::open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  const ssize_t n = ::read(fd, buf, cap - 1);
  ::close(fd);
  if (n <= 0) return false;
  len = static_cast<std::size_t>(n);
  buf[len] = '\0';
  return true;
}

// /proc/sys/kernel/random/boot_id ("c7bec3b4-6b71-...") as 16 raw bytes; zeros if unreadable.
inline std::array<std::uint8_t, 16> boot_id() {
  std::array<std::uint8_t, 16> id{};
  char buf[64];
  std::size_t len = 0;
  if (!read_small_file("/proc/sys/kernel/random/boot_id", buf, sizeof buf, len)) return id;
  std::size_t k = 0;
  auto hex = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  for (std::size_t i = 0; i + 1 < len && k < 16;) {
    const int hi = hex(buf[i]);
    if (hi < 0) { ++i; continue; }
    const int lo = hex(buf[i + 1]);
    if (lo < 0) break;
    id[k++] = static_cast<std::uint8_t>(hi * 16 + lo);
    i += 2;
  }
  return id;
}

// Field 22 of /proc/<pid>/stat: start time in clock ticks since boot. 0 if the process is gone.
inline std::uint64_t process_start_ticks(pid_t pid) {
  char path[64];
  std::snprintf(path, sizeof path, "/proc/%d/stat", static_cast<int>(pid));
  char buf[1024];
  std::size_t len = 0;
  if (!read_small_file(path, buf, sizeof buf, len)) return 0;
  // The command name (field 2) may contain spaces and parentheses: count fields after the last ')'.
  const char* p = std::strrchr(buf, ')');
  if (!p) return 0;
  int field = 2;
  for (++p; *p && field < 22; ++p)
    if (*p == ' ') ++field;
  return std::strtoull(p, nullptr, 10);
}

enum class ProcessState { alive, dead, unknown };

// Alive iff the pid exists with the same start time (a reused pid is a different process).
inline ProcessState process_state(pid_t pid, std::uint64_t start_ticks) {
  if (pid <= 0) return ProcessState::dead;
  if (::kill(pid, 0) != 0 && errno == ESRCH) return ProcessState::dead;
  const std::uint64_t now_ticks = process_start_ticks(pid);
  if (now_ticks == 0) return ProcessState::unknown;  // /proc hidden (hidepid): trust kill()
  if (start_ticks != 0 && now_ticks != start_ticks) return ProcessState::dead;
  // A zombie (killed, not yet reaped) is dead for our purpose.
  char path[64];
  std::snprintf(path, sizeof path, "/proc/%d/stat", static_cast<int>(pid));
  char buf[1024];
  std::size_t len = 0;
  if (read_small_file(path, buf, sizeof buf, len)) {
    const char* p = std::strrchr(buf, ')');
    if (p && p[1] == ' ' && (p[2] == 'Z' || p[2] == 'X')) return ProcessState::dead;
  }
  return ProcessState::alive;
}

}  // namespace mdshm::platform
