#include "publish/writer_lock.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>
#include <utility>

#include "mdshm/platform/file_trust.hpp"
#include "publish/publisher.hpp"

namespace mdshm::publish {
namespace {

[[noreturn]] void fail(const std::string& path, const std::string& what, int err = 0) {
  throw std::runtime_error(path + ": " + what + (err ? std::string(": ") + std::strerror(err) : std::string()));
}

// "pid 123 (mdshmd, uid 0 (root))": what /proc says about the holder, not what it wrote anywhere.
std::string describe_pid(pid_t pid) {
  std::string out = "pid " + std::to_string(pid);
  std::ifstream comm("/proc/" + std::to_string(pid) + "/comm");
  std::string name;
  std::getline(comm, name);
  struct stat st {};
  const bool have_uid = ::stat(("/proc/" + std::to_string(pid)).c_str(), &st) == 0;
  if (!name.empty() || have_uid) {
    out += " (" + name;
    if (have_uid) out += std::string(name.empty() ? "" : ", ") + platform::describe_uid(st.st_uid);
    out += ")";
  }
  return out;
}

int open_lock(const std::string& path) {
  return ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK, 0600);
}

}  // namespace

pid_t flock_holder(dev_t dev, ino_t ino) {
  // Lines look like "3: FLOCK  ADVISORY  WRITE 1234 00:1a:5678 0 EOF"; blocked waiters add "->".
  std::ifstream in("/proc/locks");
  std::string line;
  char want[64];
  std::snprintf(want, sizeof want, "%02x:%02x:%lu", major(dev), minor(dev), static_cast<unsigned long>(ino));
  while (std::getline(in, line)) {
    std::istringstream ls(line);
    std::string n, kind, mode, rw, pid, id;
    if (!(ls >> n >> kind) || kind == "->" || kind != "FLOCK") continue;
    if (ls >> mode >> rw >> pid >> id && id == want) return static_cast<pid_t>(std::atoi(pid.c_str()));
  }
  return 0;
}

WriterLock WriterLock::acquire(const std::string& path, const std::string& instance, bool replace_untrusted,
                               std::string* note) {
  int fd = open_lock(path);
  struct stat st {};
  std::string why;
  if (fd < 0 && errno == ELOOP) why = "a symbolic link";
  else if (fd < 0) fail(path, "open lock file", errno);
  else if (::fstat(fd, &st) != 0) fail(path, "fstat lock file", errno);
  else if (!S_ISREG(st.st_mode) || st.st_uid != ::geteuid()) why = platform::untrusted_reason(st, ::geteuid());
  if (!why.empty()) {
    struct stat lst {};
    const std::string owner = ::lstat(path.c_str(), &lst) == 0 ? " owned by " + platform::describe_uid(lst.st_uid) : "";
    if (fd >= 0) ::close(fd);
    if (!replace_untrusted)
      fail(path, "lock file not trusted (" + why + ")" + (why.find("owned by") == std::string::npos ? owner : "") +
                     ": remove it, or configure a lock file in a directory only the daemon's user can write");
    if (::unlink(path.c_str()) != 0) fail(path, "remove untrusted lock file", errno);
    if (note) *note = path + ": lock file was " + why + (why.find("owned by") == std::string::npos ? owner : "") + ": replaced";
    fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0 || ::fstat(fd, &st) != 0) fail(path, "create lock file", errno);
  }
  // Owner-only: whoever can open the file can flock it, and so keep every daemon from starting.
  if ((st.st_mode & 0777) != 0600 && ::fchmod(fd, 0600) != 0) {
    const int e = errno;
    ::close(fd);
    fail(path, "fchmod lock file", e);
  }
  if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    const int err = errno;
    ::close(fd);
    if (err != EWOULDBLOCK) fail(path, "flock", err);
    const pid_t holder = flock_holder(st.st_dev, st.st_ino);
    throw WriterLockHeld("instance '" + instance + "' already has a writer: " +
                             (holder > 0 ? describe_pid(holder) : std::string("holder unknown")) + " holds " + path,
                         holder);
  }
  // The pid in the file is for operators reading it by hand; nothing trusts it.
  const std::string pid = std::to_string(::getpid()) + "\n";
  if (::ftruncate(fd, 0) != 0 || ::pwrite(fd, pid.data(), pid.size(), 0) != static_cast<ssize_t>(pid.size())) {
    // Not fatal: the lock is held.
  }
  WriterLock l;
  l.fd_ = fd;
  return l;
}

WriterLock::WriterLock(WriterLock&& o) noexcept : fd_(std::exchange(o.fd_, -1)) {}
WriterLock& WriterLock::operator=(WriterLock&& o) noexcept {
  if (this != &o) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = std::exchange(o.fd_, -1);
  }
  return *this;
}
WriterLock::~WriterLock() {
  if (fd_ >= 0) ::close(fd_);
}

}  // namespace mdshm::publish
