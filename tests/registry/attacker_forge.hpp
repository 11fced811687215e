// The attacker's forgeries, written straight into the consumers directory (what any user can do
// with or without our client library).
#pragma once

#include <fcntl.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <string>

#include "mdshm/paths.hpp"
#include "mdshm/registry.hpp"

enum class ForgeKind {
  own,        // a well-formed record of this process (it dies with it)
  ansi_name,  // the same with a name full of escape sequences
  pid1,       // claims to be pid 1, with pid 1's real start time and the boot id
};

inline int forge_records(const std::string& shm_dir, const std::string& inst, ForgeKind kind, int n, const char* name) {
  using namespace mdshm;
  const std::string dir = paths::consumers_dir(shm_dir, inst);
  const pid_t pid = kind == ForgeKind::pid1 ? 1 : ::getpid();
  ConsumerRecord r = new_consumer_record(pid, inst, "eth_1m", name);
  if (r.start_ticks == 0) r.start_ticks = 1;
  static int seq = 0;
  int made = 0;
  for (int i = 0; i < n; ++i) {
    const std::string path = dir + "/" + std::string(kRecordPrefix) + std::to_string(pid) + ".f" +
                             std::to_string(::getpid()) + "_" + std::to_string(seq++);
    const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
    if (fd < 0) continue;
    made += ::pwrite(fd, &r, sizeof r, 0) == static_cast<ssize_t>(sizeof r);
    ::close(fd);
  }
  return made;
}
