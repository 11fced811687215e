#include "app/preflight.hpp"

#include <arpa/inet.h>
#include <grp.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <filesystem>
#include <string>

#include "mdshm/layout.hpp"

namespace mdshm::app {

namespace {

// "" when `dir` is a directory this process can create files in; otherwise why not.
std::string directory_problem(const std::string& dir) {
  struct stat st {};
  if (::stat(dir.c_str(), &st) != 0) return "directory " + dir + " does not exist";
  if (!S_ISDIR(st.st_mode)) return dir + " is not a directory";
  if (::access(dir.c_str(), W_OK | X_OK) != 0) return "directory " + dir + " is not writable by this user";
  return {};
}

bool listen_host_ok(std::string host) {
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  if (host == "localhost") return true;
  unsigned char buf[sizeof(in6_addr)];
  return ::inet_pton(AF_INET, host.c_str(), buf) == 1 || ::inet_pton(AF_INET6, host.c_str(), buf) == 1;
}

std::string mib(std::uint64_t bytes) { return std::to_string((bytes + (1u << 20) - 1) >> 20) + " MiB"; }

}  // namespace

std::vector<config::ConfigError> preflight(const config::Config& cfg) {
  std::vector<config::ConfigError> out;
  auto error = [&](std::string key, std::string message) { out.push_back({std::move(key), 0, std::move(message)}); };

  if (auto why = directory_problem(cfg.shm.dir); !why.empty()) {
    error("shm.dir", why);
  } else {
    std::uint64_t need = 0;
    for (const auto& s : cfg.series) need += segment_size(s.capacity);
    struct statvfs fs {};
    if (::statvfs(cfg.shm.dir.c_str(), &fs) == 0) {
      const std::uint64_t total = std::uint64_t{fs.f_blocks} * fs.f_frsize;
      if (need > total)
        error("series", "the segments need " + mib(need) + " but the filesystem of " + cfg.shm.dir + " holds only " +
                            mib(total));
    }
  }
  if (!cfg.shm.group.empty()) {
    std::string buf(16384, '\0');
    group g{};
    group* found = nullptr;
    if (::getgrnam_r(cfg.shm.group.c_str(), &g, buf.data(), buf.size(), &found) != 0 || !found)
      error("shm.group", "no such group '" + cfg.shm.group + "'");
  }
  if (!cfg.shm.lock_file.empty()) {
    const auto parent = std::filesystem::path(cfg.shm.lock_file).parent_path().string();
    if (auto why = directory_problem(parent.empty() ? "/" : parent); !why.empty()) error("shm.lock_file", why);
  }
  if (!cfg.metrics.listen.empty() && !listen_host_ok(cfg.metrics.listen.substr(0, cfg.metrics.listen.rfind(':'))))
    error("metrics.listen", "host of '" + cfg.metrics.listen + "' must be an IP address or localhost");
  return out;
}

}  // namespace mdshm::app
