// Memory: the shared memory the five default series take (segment files + registry), and the
// resident set of the daemon (mdshmd on config/synthetic.toml, read after 10 s) or, when there is
// no daemon binary, of a fresh process holding a Publisher with the five series.
#pragma once

#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "bench_proc.hpp"

namespace bench {

inline constexpr double kMB = 1e6, kMiB = 1024.0 * 1024.0;

struct FileSize {
  std::uint64_t bytes = 0, allocated = 0;
};
inline FileSize file_size(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return {};
  return {static_cast<std::uint64_t>(st.st_size), static_cast<std::uint64_t>(st.st_blocks) * 512};
}

// VmRSS and friends from /proc/<pid>/status, in kB.
inline std::map<std::string, long> proc_status_kb(pid_t pid) {
  std::map<std::string, long> out;
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line)) {
    const auto c = line.find(':');
    if (c == std::string::npos || line.find("kB") == std::string::npos) continue;
    out[line.substr(0, c)] = std::atol(line.c_str() + c + 1);
  }
  return out;
}

// `mdshm --hold-publisher INSTANCE`: what a daemon is at minimum. Runs until killed.
inline int hold_publisher(const std::string& instance) {
  ScratchInstance inst(instance);
  for (std::size_t i = 0; i < 5; ++i) inst.prefill(i, 10);
  std::printf("holding %s\n", instance.c_str());
  std::fflush(stdout);
  for (;;) ::pause();
}

inline pid_t start_process(const std::vector<std::string>& argv, const std::string& log_path) {
  std::fflush(nullptr);
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (FILE* f = std::fopen(log_path.c_str(), "w")) {
      ::dup2(fileno(f), 1);
      ::dup2(fileno(f), 2);
    }
    std::vector<char*> args;
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    ::execv(args[0], args.data());
    ::_exit(127);
  }
  return pid;
}

inline void stop_process(pid_t pid) {
  ::kill(pid, SIGTERM);
  for (int i = 0; i < 50; ++i) {
    if (::waitpid(pid, nullptr, WNOHANG) == pid) return;
    ::usleep(100'000);
  }
  ::kill(pid, SIGKILL);
  ::waitpid(pid, nullptr, 0);
}

inline void print_rss_row(const char* what, const std::map<std::string, long>& st, const char* note) {
  auto kb = [&](const char* k) { return st.count(k) ? static_cast<double>(st.at(k)) * 1024 / kMB : -1.0; };
  std::printf("| %s | %.1f | %.1f | %.1f | %.1f | %.1f | < 50 MB | %s |\n", what, kb("VmRSS"), kb("VmHWM"), kb("RssAnon"),
              kb("RssFile"), kb("RssShmem"), note);
}

inline void bench_memory(const std::string& daemon, const std::string& config, double daemon_wait_s) {
  std::printf("\n## memory: shared memory of the five default series\n\n");
  std::printf("| file | capacity (bars) | bytes | allocated | MB |\n|---|---:|---:|---:|---:|\n");
  std::uint64_t total = 0, total_alloc = 0, bars = 0;
  {
    unpin();
    ScratchInstance inst;
    for (const auto& s : default_series()) {
      const auto f = file_size(mdshm::paths::segment(kShmDir, inst.name(), s.id));
      total += f.bytes;
      total_alloc += f.allocated;
      bars += s.capacity;
      std::printf("| mdshm.<instance>/%s | %llu | %llu | %llu | %.2f |\n", s.id.c_str(),
                  static_cast<unsigned long long>(s.capacity), static_cast<unsigned long long>(f.bytes),
                  static_cast<unsigned long long>(f.allocated), static_cast<double>(f.bytes) / kMB);
    }
    const auto reg = file_size(mdshm::paths::consumers_dir(kShmDir, inst.name()) + "/" + std::string(mdshm::kSeriesManifestName));
    total += reg.bytes;
    total_alloc += reg.allocated;
    std::printf("| mdshm.<instance>/@consumers/.series | - | %llu | %llu | %.2f |\n", static_cast<unsigned long long>(reg.bytes),
                static_cast<unsigned long long>(reg.allocated), static_cast<double>(reg.bytes) / kMB);
  }
  std::printf("| **total** (target < 32 MB) | %llu | %llu | %llu | **%.2f MB = %.2f MiB** |\n",
              static_cast<unsigned long long>(bars), static_cast<unsigned long long>(total),
              static_cast<unsigned long long>(total_alloc), static_cast<double>(total) / kMB, static_cast<double>(total) / kMiB);

  std::printf("\n## memory: resident set (MB = 10^6 bytes)\n\n");
  std::printf("| process | VmRSS | VmHWM | RssAnon | RssFile | RssShmem | target | note |\n");
  std::printf("|---|---:|---:|---:|---:|---:|---|---|\n");
  const std::string log = "/tmp/bench_shm_rss." + std::to_string(::getpid()) + ".log";
  if (!daemon.empty() && ::access(daemon.c_str(), X_OK) == 0 && ::access(config.c_str(), R_OK) == 0) {
    const std::string instance = ScratchInstance::next_name();
    const pid_t pid = start_process({daemon, "--config", config, "--instance", instance}, log);
    std::this_thread::sleep_for(std::chrono::duration<double>(daemon_wait_s));
    const auto st = proc_status_kb(pid);
    const bool alive = ::waitpid(pid, nullptr, WNOHANG) == 0 && !st.empty();
    if (alive) print_rss_row("mdshmd (synthetic source)", st, ("after " + std::to_string(int(daemon_wait_s)) + " s").c_str());
    else std::printf("| mdshmd | - | - | - | - | - | < 50 MB | exited early: see %s |\n", log.c_str());
    stop_process(pid);
    remove_instance_files(instance);
  } else {
    std::printf("| mdshmd | - | - | - | - | - | < 50 MB | not measured: %s or %s missing |\n", daemon.c_str(),
                config.c_str());
  }
  // Always also the floor: a fresh process (exec'd, so it inherits none of this one's pages)
  // holding a Publisher with the five series.
  const std::string instance = ScratchInstance::next_name();
  char self[4096] = {};
  const ssize_t n = ::readlink("/proc/self/exe", self, sizeof self - 1);
  if (n <= 0) return;
  const pid_t pid = start_process({self, "--hold-publisher", instance}, log);
  std::this_thread::sleep_for(std::chrono::seconds(2));
  print_rss_row("Publisher with the five series, nothing else", proc_status_kb(pid), "after 2 s");
  stop_process(pid);
  remove_instance_files(instance);
  ::unlink(log.c_str());
  std::fflush(stdout);
}

}  // namespace bench
