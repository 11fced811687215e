// Exactly one writer per instance: an flock(2) on a lock file. flock, not fcntl locks: an fcntl
// lock is dropped when *any* descriptor of the file is closed by the process, and
// boost::interprocess::file_lock is built on fcntl. The kernel releases flock on process death,
// so kill -9 leaves no stale lock; the pid written into the file is for the error message only.
#pragma once

#include <sys/types.h>

#include <string>

namespace mdshm::publish {

class WriterLock {
 public:
  WriterLock() = default;
  // Throws WriterLockHeld (publisher.hpp) naming the holder's pid, or runtime_error on I/O errors.
  static WriterLock acquire(const std::string& path, const std::string& instance);
  WriterLock(WriterLock&& o) noexcept;
  WriterLock& operator=(WriterLock&& o) noexcept;
  ~WriterLock();

 private:
  int fd_ = -1;
};

}  // namespace mdshm::publish
