// Exactly one writer per instance: an flock(2) on a lock file. flock, not fcntl locks: an fcntl
// lock is dropped when *any* descriptor of the file is closed by the process, and
// boost::interprocess::file_lock is built on fcntl. The kernel releases flock on process death,
// so kill -9 leaves no stale lock.
//
// The lock file is trusted like a segment (file_trust.hpp): a regular file owned by our euid,
// mode 0600, so no other account can open it and flock it to deny start-up. The holder named in
// the error comes from the kernel (/proc/locks), never from the file's contents.
#pragma once

#include <sys/types.h>

#include <string>

namespace mdshm::publish {

class WriterLock {
 public:
  WriterLock() = default;
  // Throws WriterLockHeld (publisher.hpp) naming the holder the kernel reports, or runtime_error
  // on I/O errors and on an untrusted lock file. `replace_untrusted`: the file lives in our own
  // instance directory, so a symlink or someone else's file there is removed and recreated (and
  // `note` says so) instead of refused.
  static WriterLock acquire(const std::string& path, const std::string& instance, bool replace_untrusted = false,
                            std::string* note = nullptr);
  WriterLock(WriterLock&& o) noexcept;
  WriterLock& operator=(WriterLock&& o) noexcept;
  ~WriterLock();

 private:
  int fd_ = -1;
};

// The process holding an flock on the file (device, inode), from /proc/locks; 0 if none is listed.
pid_t flock_holder(dev_t dev, ino_t ino);

}  // namespace mdshm::publish
