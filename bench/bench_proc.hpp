// Processes, cores and scratch instances for bench_shm.
//
// Each measurement runs on its own instance (bench-<pid>-<n>) so it never touches a daemon's
// segments; the instance's /dev/shm files are deleted when it ends, and by the SIGINT/SIGTERM
// handler if the run is interrupted (which also kills the reader processes).
#pragma once

#include <dirent.h>
#include <sched.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <memory>
#include <new>
#include <stdexcept>
#include <filesystem>
#include <string>
#include <vector>

#include "mdshm/client.hpp"
#include "publish/publisher.hpp"

namespace bench {

// ---- cores and priority -----------------------------------------------------------------------

inline int online_cores() { return static_cast<int>(::sysconf(_SC_NPROCESSORS_ONLN)); }

// Pin the calling thread (tid 0) or another thread of this process. No-op on a 1-core machine.
inline bool pin_to_core(int core, pid_t tid = 0) {
  if (online_cores() < 2) return false;
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(core % online_cores(), &set);
  return ::sched_setaffinity(tid, sizeof set, &set) == 0;
}

// Back to every core: threads inherit the mask, so do this before creating a Publisher whose
// heartbeat thread should float.
inline void unpin() {
  cpu_set_t set;
  CPU_ZERO(&set);
  for (int c = 0; c < online_cores(); ++c) CPU_SET(c, &set);
  (void)::sched_setaffinity(0, sizeof set, &set);
}

inline void be_nice(int nice) { (void)::setpriority(PRIO_PROCESS, 0, nice); }

// Thread ids of this process other than the caller (the Publisher's heartbeat).
inline std::vector<pid_t> other_threads() {
  std::vector<pid_t> tids;
  if (DIR* d = ::opendir("/proc/self/task")) {
    while (const dirent* e = ::readdir(d)) {
      const pid_t t = static_cast<pid_t>(std::atoi(e->d_name));
      if (t > 0 && t != static_cast<pid_t>(::gettid())) tids.push_back(t);
    }
    ::closedir(d);
  }
  return tids;
}

// ---- memory shared with children ----------------------------------------------------------------

// A T in MAP_SHARED anonymous memory, visible to children forked after it was made. T holds
// std::atomic members only where both sides touch a field concurrently (lock-free atomics are
// address-free, so they work across processes).
template <class T>
class Shared {
 public:
  explicit Shared(std::size_t extra_bytes = 0) : size_(sizeof(T) + extra_bytes) {
    void* p = ::mmap(nullptr, size_, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) throw std::runtime_error("mmap shared scratch memory failed");
    ptr_ = new (p) T{};
  }
  ~Shared() {
    ptr_->~T();
    ::munmap(ptr_, size_);
  }
  Shared(const Shared&) = delete;
  Shared& operator=(const Shared&) = delete;
  T* operator->() { return ptr_; }
  T& operator*() { return *ptr_; }
  // The bytes after T (sample arrays).
  template <class U>
  U* tail() {
    return reinterpret_cast<U*>(reinterpret_cast<char*>(ptr_) + sizeof(T));
  }

 private:
  std::size_t size_;
  T* ptr_;
};

// ---- children -------------------------------------------------------------------------------------

namespace detail {
inline std::array<pid_t, 256> g_children{};
inline std::atomic<int> g_child_count{0};
}  // namespace detail

// Fork a child that runs f() and exits with its return value. It dies with the parent.
template <class F>
pid_t spawn(F&& f) {
  std::fflush(nullptr);
  const pid_t pid = ::fork();
  if (pid < 0) throw std::runtime_error(std::string("fork: ") + std::strerror(errno));
  if (pid == 0) {
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    int rc = 0;
    try {
      rc = f();
    } catch (const std::exception& e) {
      std::fprintf(stderr, "bench child %d: %s\n", ::getpid(), e.what());
      rc = 99;
    }
    std::fflush(nullptr);
    ::_exit(rc);
  }
  const int i = detail::g_child_count.fetch_add(1);
  if (i < static_cast<int>(detail::g_children.size())) detail::g_children[static_cast<std::size_t>(i)] = pid;
  return pid;
}

// Wait for every child spawned so far; false if any failed.
inline bool reap_children() {
  bool ok = true;
  const int n = std::min<int>(detail::g_child_count.load(), static_cast<int>(detail::g_children.size()));
  for (int i = 0; i < n; ++i) {
    pid_t& p = detail::g_children[static_cast<std::size_t>(i)];
    if (p <= 0) continue;
    int st = 0;
    if (::waitpid(p, &st, 0) == p && !(WIFEXITED(st) && WEXITSTATUS(st) == 0)) {
      std::fprintf(stderr, "bench child %d failed (status 0x%x)\n", p, st);
      ok = false;
    }
    p = 0;
  }
  detail::g_child_count.store(0);
  return ok;
}

// ---- scratch instances ------------------------------------------------------------------------------

inline const char* kShmDir = "/dev/shm";

// The five default series (DESIGN.md) with their default capacities.
inline std::vector<mdshm::publish::SeriesSpec> default_series() {
  return {{"eth_ticks", "ETHUSDT", 1, 86400},
          {"eth_1m", "ETHUSDT", 60, 10080},
          {"eth_1h", "ETHUSDT", 3600, 8760},
          {"eth_1d", "ETHUSDT", 86400, 3650},
          {"btc_ticks", "BTCUSDT", 1, 86400}};
}

namespace detail {
// Paths to unlink from the signal handler (unlink is async-signal-safe; building strings is not).
inline char g_live_paths[24][160];
inline std::atomic<int> g_live_count{0};

inline void on_signal(int sig) {
  const int n = std::min<int>(g_child_count.load(), static_cast<int>(g_children.size()));
  for (int i = 0; i < n; ++i)
    if (g_children[static_cast<std::size_t>(i)] > 0) ::kill(g_children[static_cast<std::size_t>(i)], SIGKILL);
  for (int i = 0; i < g_live_count.load(); ++i)
    if (::unlink(g_live_paths[i]) != 0) ::rmdir(g_live_paths[i]);  // the instance directory comes last
  ::_exit(128 + sig);
}
}  // namespace detail

inline void install_cleanup_handler() {
  struct sigaction sa {};
  sa.sa_handler = detail::on_signal;
  ::sigaction(SIGINT, &sa, nullptr);
  ::sigaction(SIGTERM, &sa, nullptr);
}

// Delete an instance's directory: segments, registry, lock, half-made temporaries.
inline void remove_instance_files(const std::string& instance) {
  std::error_code ec;
  std::filesystem::remove_all(mdshm::paths::instance_dir(kShmDir, instance), ec);
}

// A Publisher on a fresh, uniquely named instance holding the five default series. Its files are
// deleted when the object dies.
class ScratchInstance {
 public:
  explicit ScratchInstance(std::string name = next_name()) : name_(std::move(name)) {
    remember_paths();
    mdshm::publish::PublisherOptions opt;
    opt.segments.shm_dir = kShmDir;
    opt.segments.instance = name_;
    opt.segments.mode = 0600;
    pub_ = std::make_unique<mdshm::publish::Publisher>(opt, default_series());
  }
  ~ScratchInstance() {
    pub_.reset();
    remove_instance_files(name_);
    detail::g_live_count.store(0);
  }
  ScratchInstance(const ScratchInstance&) = delete;
  ScratchInstance& operator=(const ScratchInstance&) = delete;

  const std::string& name() const { return name_; }
  mdshm::publish::Publisher& publisher() { return *pub_; }
  mdshm::publish::SegmentWriter& writer(std::size_t i) { return pub_->at(i); }
  mdshm::OpenOptions open_options() const { return {name_, kShmDir}; }

  // `closed` closed bars then one in progress in series i; returns the bar in progress, which
  // callers then rewrite in place (same open time) as a live feed does between trades.
  mdshm::Bar prefill(std::size_t i, std::size_t closed = 400) {
    auto& w = writer(i);
    const std::int64_t step = std::int64_t{w.spec().interval_s} * 1000;
    const std::int64_t t0 = (1'660'000'000'000LL / step) * step;
    mdshm::Bar b = make_bar(t0, 1900.0);
    for (std::size_t k = 0; k <= closed; ++k) {
      b = make_bar(t0 + static_cast<std::int64_t>(k) * step, 1900.0 + static_cast<double>(k % 50));
      b.flags = k < closed ? mdshm::flag::closed : mdshm::flag::in_progress;
      w.publish(b);
    }
    return b;
  }
  static mdshm::Bar make_bar(std::int64_t open_ms, double price) {
    mdshm::Bar b{};
    b.open_time_ms = open_ms;
    b.open = b.low = price - 1;
    b.high = price + 1;
    b.close = price;
    b.volume = 10;
    b.quote_volume = 10 * price;
    b.trade_count = 5;
    b.first_trade_id = b.last_trade_id = -1;
    b.flags = mdshm::flag::in_progress;
    return b;
  }

  static std::string next_name() {
    static int n = 0;
    return "bench-" + std::to_string(::getpid()) + "-" + std::to_string(n++);
  }

 private:
  void remember_paths() {
    std::vector<std::string> paths;
    for (const auto& s : default_series()) {
      paths.push_back(mdshm::paths::segment(kShmDir, name_, s.id));
      paths.push_back(mdshm::paths::segment_temp(kShmDir, name_, s.id));
    }
    paths.push_back(mdshm::paths::consumers_dir(kShmDir, name_) + "/" + std::string(mdshm::kSeriesManifestName));
    paths.push_back(mdshm::paths::consumers_dir(kShmDir, name_));
    paths.push_back(mdshm::paths::lock(kShmDir, name_));
    paths.push_back(mdshm::paths::instance_dir(kShmDir, name_));
    int i = 0;
    for (const auto& p : paths) std::snprintf(detail::g_live_paths[i++], sizeof detail::g_live_paths[0], "%s", p.c_str());
    detail::g_live_count.store(i);
  }

  std::string name_;
  std::unique_ptr<mdshm::publish::Publisher> pub_;
};

}  // namespace bench
