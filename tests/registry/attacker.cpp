// mdshm-registry-attacker: what a hostile member of the readers' group can do to the consumer
// registry. The attack suite runs it as an unprivileged user (setpriv) against a root writer.
//
//   attacker --instance I [--shm-dir D] ACTION [args]
//     abuse SECONDS   for SECONDS: create records of its own, then truncate, grow and fill them with
//                     0xFF; try the same on every other file of the registry (counted as denied or
//                     done); add a fifo, a symlink and a directory to the consumers directory
//     ansi SECONDS    register a consumer whose name holds ANSI escapes and a BEL, hold it SECONDS
//     fake-pid1 N     create N records that claim to be pid 1 (its real start time and boot id)
//
// Prints "key=value" lines: others_modified (files not its own it managed to change: must be 0
// on a safe registry), others_denied, own_abused, forged.
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "attacker_forge.hpp"
#include "mdshm/paths.hpp"

namespace {

struct Counts {
  long others_modified = 0, others_denied = 0, own_abused = 0, forged = 0;
};

// Every regular file an attacker might aim at: the old shared table (if any) and every entry of
// the consumers directory.
std::vector<std::string> targets(const std::string& shm_dir, const std::string& inst) {
  std::vector<std::string> out;
  const std::string legacy = mdshm::paths::legacy_registry(shm_dir, inst);
  if (::access(legacy.c_str(), F_OK) == 0) out.push_back(legacy);
  const std::string dir = mdshm::paths::consumers_dir(shm_dir, inst);
  if (DIR* d = ::opendir(dir.c_str())) {
    while (const dirent* e = ::readdir(d))
      if (e->d_name[0] != '.' || std::strlen(e->d_name) > 2) out.push_back(dir + "/" + e->d_name);
    ::closedir(d);
  }
  return out;
}

// Truncate, grow, fill with 0xFF: returns true if any of it took effect.
bool abuse_file(const std::string& path) {
  struct stat st {};
  if (::lstat(path.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) return false;
  const int fd = ::open(path.c_str(), O_RDWR | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) return false;
  const std::vector<unsigned char> ff(static_cast<std::size_t>(st.st_size > 0 ? st.st_size : 192), 0xFF);
  bool changed = ::pwrite(fd, ff.data(), ff.size(), 0) > 0;
  changed |= ::ftruncate(fd, 0) == 0;
  changed |= ::ftruncate(fd, 1 << 20) == 0;
  changed |= ::ftruncate(fd, 7) == 0;
  ::close(fd);
  return changed;
}

void abuse(const std::string& shm_dir, const std::string& inst, double seconds, Counts& c) {
  const std::string dir = mdshm::paths::consumers_dir(shm_dir, inst);
  const auto me = ::getuid();
  const auto end = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
  int round = 0;
  do {
    c.forged += forge_records(shm_dir, inst, ForgeKind::own, 4, "abuser");
    for (const auto& t : targets(shm_dir, inst)) {
      struct stat st {};
      if (::lstat(t.c_str(), &st) != 0) continue;
      const bool mine = st.st_uid == me;
      const bool changed = abuse_file(t);
      if (mine) c.own_abused += changed;
      else if (changed) ++c.others_modified;
      else ++c.others_denied;
    }
    const std::string tag = dir + "/x" + std::to_string(::getpid()) + "." + std::to_string(round++);
    (void)::mkfifo((tag + ".fifo").c_str(), 0666);
    (void)::symlink("/etc/shadow", (tag + ".link").c_str());
    (void)::mkdir((tag + ".dir").c_str(), 0777);
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  } while (std::chrono::steady_clock::now() < end);
}

}  // namespace

int main(int argc, char** argv) {
  std::string inst, shm_dir = "/dev/shm";
  int i = 1;
  for (; i + 1 < argc && argv[i][0] == '-'; i += 2) {
    if (std::strcmp(argv[i], "--instance") == 0) inst = argv[i + 1];
    else if (std::strcmp(argv[i], "--shm-dir") == 0) shm_dir = argv[i + 1];
  }
  if (inst.empty() || i + 1 >= argc) {
    std::fprintf(stderr, "usage: %s --instance I [--shm-dir D] abuse|ansi|fake-pid1 ARG\n", argv[0]);
    return 64;
  }
  const std::string action = argv[i];
  const double arg = std::atof(argv[i + 1]);
  Counts c;
  if (action == "abuse") {
    abuse(shm_dir, inst, arg, c);
  } else if (action == "ansi") {
    c.forged = forge_records(shm_dir, inst, ForgeKind::ansi_name, 1, "\x1b[31mEVIL\x1b[0m\x07");
    std::printf("forged=%ld\n", c.forged);
    std::fflush(stdout);
    std::this_thread::sleep_for(std::chrono::duration<double>(arg));
    return c.forged > 0 ? 0 : 1;
  } else if (action == "fake-pid1") {
    c.forged = forge_records(shm_dir, inst, ForgeKind::pid1, static_cast<int>(arg), "fake");
  } else {
    std::fprintf(stderr, "unknown action %s\n", action.c_str());
    return 64;
  }
  std::printf("others_modified=%ld\nothers_denied=%ld\nown_abused=%ld\nforged=%ld\n", c.others_modified,
              c.others_denied, c.own_abused, c.forged);
  return 0;
}
