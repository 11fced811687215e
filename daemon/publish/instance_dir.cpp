#include "publish/instance_dir.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <stdexcept>

#include "mdshm/platform/file_trust.hpp"
#include "mdshm/platform/proc.hpp"
#include "mdshm/paths.hpp"

namespace mdshm::publish {
namespace {

[[noreturn]] void fail(const std::string& path, const std::string& what, int err = 0) {
  throw std::runtime_error(path + ": " + what + (err ? std::string(": ") + std::strerror(err) : std::string()));
}

// Read and search bits for whoever may read the segments, write for the owner only.
mode_t dir_mode(mode_t segment_mode) {
  mode_t m = 0700;
  if (segment_mode & 0040) m |= 0050;
  if (segment_mode & 0004) m |= 0005;
  return m;
}

// Another user could rename or delete our directory inside `shm_dir`: refuse it.
void check_parent(const std::string& shm_dir) {
  struct stat st {};
  if (::stat(shm_dir.c_str(), &st) != 0) fail(shm_dir, "shm dir", errno);
  if (!S_ISDIR(st.st_mode)) fail(shm_dir, "shm dir is not a directory");
  if (st.st_uid != 0 && st.st_uid != ::geteuid())
    fail(shm_dir, "shm dir is owned by " + platform::describe_uid(st.st_uid) +
                      ", who could replace the instance directory; use a directory owned by root or by the daemon's user");
  if ((st.st_mode & (S_IWGRP | S_IWOTH)) && !(st.st_mode & S_ISVTX))
    fail(shm_dir, "shm dir is writable by other users and not sticky: they could replace the instance directory");
}

// Best effort: empty a directory moved aside (its files only, through its descriptor, so no
// symlink in it is ever followed) and remove it. What cannot be removed stays, named in the log.
bool remove_shallow(const std::string& path) {
  const int dfd = ::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (dfd < 0) return ::unlink(path.c_str()) == 0;  // a file or symlink that was squatting the name
  if (DIR* d = ::fdopendir(dfd)) {
    while (const dirent* e = ::readdir(d))
      if (std::strcmp(e->d_name, ".") != 0 && std::strcmp(e->d_name, "..") != 0) (void)::unlinkat(dfd, e->d_name, 0);
    ::closedir(d);  // closes dfd
  } else {
    ::close(dfd);
  }
  return ::rmdir(path.c_str()) == 0;
}

}  // namespace

void prepare_instance_dir(const SegmentOptions& opt, std::vector<std::string>& notes) {
  if (!valid_instance(opt.instance)) fail(opt.instance, "invalid instance name");
  check_parent(opt.shm_dir);
  const std::string path = paths::instance_dir(opt.shm_dir, opt.instance);
  const uid_t me = ::geteuid();
  const mode_t want = dir_mode(opt.mode);
  for (int attempt = 0; attempt < 3; ++attempt) {
    if (::mkdir(path.c_str(), want) != 0 && errno != EEXIST) fail(path, "create instance directory", errno);
    struct stat lst {};
    if (::lstat(path.c_str(), &lst) != 0) {
      if (errno == ENOENT) continue;  // removed under us: create again
      fail(path, "instance directory", errno);
    }
    std::string why = platform::untrusted_reason(lst, me, /*want_dir=*/true);
    if (why.find("owned by") == std::string::npos) why += " owned by " + platform::describe_uid(lst.st_uid);
    const bool ours = S_ISDIR(lst.st_mode) && lst.st_uid == me;
    if (ours) {
      const int fd = ::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
      if (fd < 0) fail(path, "open instance directory", errno);
      struct stat st {};
      if (::fstat(fd, &st) != 0 || st.st_uid != me || !S_ISDIR(st.st_mode)) {
        ::close(fd);
        continue;  // swapped between lstat and open: look again
      }
      if ((st.st_mode & 07777) != want) {
        if (st.st_mode & (S_IWGRP | S_IWOTH)) {
          char m[8];
          std::snprintf(m, sizeof m, "%04o", static_cast<unsigned>(want));
          notes.push_back(path + ": instance directory was " + why + ": mode corrected to " + m);
        }
        if (::fchmod(fd, want) != 0) { const int e = errno; ::close(fd); fail(path, "fchmod instance directory", e); }
      }
      if (opt.group != static_cast<gid_t>(-1) && st.st_gid != opt.group &&
          ::fchown(fd, static_cast<uid_t>(-1), opt.group) != 0) {
        const int e = errno;
        ::close(fd);
        fail(path, "fchown instance directory to group " + std::to_string(opt.group), e);
      }
      ::close(fd);
      return;
    }
    // Squatted: somebody else's directory, or a file or symlink at the name. Move it aside if we
    // may (only root may in a sticky /dev/shm), never write into it, never follow it.
    const std::string aside = path + ".untrusted-" + std::to_string(lst.st_uid) + "-" + std::to_string(platform::wall_ns());
    if (::rename(path.c_str(), aside.c_str()) != 0) {
      const int e = errno;
      fail(path, "instance directory is " + why + "; it cannot be trusted and cannot be replaced (" +
                     std::strerror(e) + "): remove it as root, or choose another instance");
    }
    const bool removed = remove_shallow(aside);
    notes.push_back(path + ": instance directory was " + why + ": not trusted, replaced" +
                    (removed ? std::string() : " (the old one is left at " + aside + ")"));
  }
  fail(path, "instance directory keeps being replaced by someone else");
}

}  // namespace mdshm::publish
