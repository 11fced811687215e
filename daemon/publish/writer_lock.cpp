#include "publish/writer_lock.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <utility>

#include "publish/publisher.hpp"

namespace mdshm::publish {

WriterLock WriterLock::acquire(const std::string& path, const std::string& instance) {
  const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
  if (fd < 0) throw std::runtime_error(path + ": open lock file: " + std::strerror(errno));
  if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    const int err = errno;
    char buf[32] = {};
    const ssize_t n = ::pread(fd, buf, sizeof buf - 1, 0);
    ::close(fd);
    if (err != EWOULDBLOCK) throw std::runtime_error(path + ": flock: " + std::strerror(err));
    const pid_t holder = n > 0 ? static_cast<pid_t>(std::atoi(buf)) : 0;
    throw WriterLockHeld("instance '" + instance + "' already has a writer: pid " +
                             (holder > 0 ? std::to_string(holder) : std::string("unknown")) + " holds " + path,
                         holder);
  }
  const std::string pid = std::to_string(::getpid()) + "\n";
  if (::ftruncate(fd, 0) != 0 || ::pwrite(fd, pid.data(), pid.size(), 0) != static_cast<ssize_t>(pid.size())) {
    // Not fatal: the lock is held; only the message for a second writer loses the pid.
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
