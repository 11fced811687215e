// Consumer registration: a named reader announces itself so operators see who reads, how far
// behind (lag = head - cursor) and whether it is alive. Each Subscription owns one record file in
// the instance's consumers directory; registry_layout.hpp describes the file and the protocol.
//
// Reading the registry (list_consumers, the daemon's reclaim) never maps anyone's file: records
// are read with pread into a local copy and validated, so a record that its owner truncates, grows
// or fills with garbage is at worst listed as invalid.
#pragma once

#include <dirent.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <cstring>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "mdshm/paths.hpp"
#include "mdshm/registry_layout.hpp"
#include "mdshm/series.hpp"

namespace mdshm {

inline std::string consumers_dir(const OpenOptions& o) { return paths::consumers_dir(o.shm_dir, o.instance); }

// Is the process a record names the one that wrote it?
enum class Liveness {
  alive,    // pid, start time, boot and owner all match
  dead,     // gone, a zombie, a reused pid or another boot
  forged,   // the process lives but the file's owner is not its user (e.g. "pid 1" by anyone else)
  unknown,  // /proc is hidden from us (hidepid): cannot tell, so kept
};

inline std::string_view to_string(Liveness l) {
  switch (l) {
    case Liveness::alive: return "alive";
    case Liveness::dead: return "dead";
    case Liveness::forged: return "forged";
    case Liveness::unknown: return "unknown";
  }
  return "unknown";
}

// One directory entry as a reader sees it.
struct RecordEntry {
  std::string file;                      // name inside the consumers directory
  bool regular = false;                  // false: a symlink, directory, fifo... (never opened)
  uid_t owner = 0;
  std::int64_t ctime_s = 0;              // st_ctime: no user can set it back
  RecordProblem problem = RecordProblem::none;
  ConsumerRecord record{};               // valid only if regular and problem == none
};

namespace detail {

// Real and effective uid of a process from /proc/<pid>/status; false if unreadable.
inline bool process_uids(pid_t pid, uid_t& real, uid_t& effective) {
  char path[64];
  std::snprintf(path, sizeof path, "/proc/%d/status", static_cast<int>(pid));
  char buf[4096];
  std::size_t len = 0;
  if (!read_small_file(path, buf, sizeof buf, len)) return false;
  const char* p = std::strstr(buf, "\nUid:");
  if (!p) return false;
  unsigned long r = 0, e = 0;
  if (std::sscanf(p + 5, "%lu %lu", &r, &e) != 2) return false;
  real = static_cast<uid_t>(r);
  effective = static_cast<uid_t>(e);
  return true;
}

// Reads one entry of the consumers directory with pread, never blocking (O_NONBLOCK: a fifo
// must not hang us) and never following links; rereads until two copies agree (bounded).
inline RecordEntry read_record(int dirfd, const char* file) {
  RecordEntry e;
  e.file = file;
  struct stat st {};
  if (::fstatat(dirfd, file, &st, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISREG(st.st_mode)) return e;
  const int fd = ::openat(dirfd, file, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
  if (fd < 0) return e;
  struct stat fst {};
  if (::fstat(fd, &fst) != 0 || !S_ISREG(fst.st_mode) || fst.st_ino != st.st_ino) {
    ::close(fd);
    return e;
  }
  e.regular = true;
  e.owner = fst.st_uid;
  e.ctime_s = fst.st_ctime;
  ConsumerRecord a{}, b{};
  ssize_t n = ::pread(fd, &a, sizeof a, 0);
  for (int i = 0; i < 4 && n == static_cast<ssize_t>(sizeof a); ++i) {
    if (::pread(fd, &b, sizeof b, 0) != static_cast<ssize_t>(sizeof b)) break;
    if (std::memcmp(&a, &b, sizeof a) == 0) break;
    a = b;  // its owner is writing: take the newer copy and compare again
  }
  ::close(fd);
  e.record = a;
  e.problem = n == static_cast<ssize_t>(sizeof a) ? validate_consumer_record(a, static_cast<std::uint64_t>(fst.st_size))
                                                 : RecordProblem::wrong_size;
  return e;
}

// Calls visit(const RecordEntry&) for up to kMaxConsumerFiles entries of the directory (not
// ".", "..", nor the daemon's series manifest). Returns false if entries were left unvisited.
template <class Visit>
bool for_each_record(int dirfd, Visit&& visit) {
  const int dup = ::openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dup < 0) return true;
  DIR* d = ::fdopendir(dup);
  if (!d) {
    ::close(dup);
    return true;
  }
  std::size_t seen = 0;
  bool complete = true;
  while (const dirent* de = ::readdir(d)) {
    const std::string_view n = de->d_name;
    if (n == "." || n == ".." || n == kSeriesManifestName) continue;
    if (seen++ == kMaxConsumerFiles) {
      complete = false;
      break;
    }
    visit(read_record(dirfd, de->d_name));
  }
  ::closedir(d);
  return complete;
}

inline int open_consumers_dir(const std::string& dir, Errc& err) {
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0)
    err = errno == ENOENT ? Errc::not_found
          : (errno == EACCES || errno == EPERM) ? Errc::permission_denied
                                                : Errc::io_error;
  else
    err = Errc::ok;
  return fd;
}

}  // namespace detail

// pid + start time + boot id name one process; the owner check tells a forged entry apart.
inline Liveness judge_record(const ConsumerRecord& r, uid_t owner, const std::array<std::uint8_t, 16>& boot) {
  if (std::memcmp(r.boot_id, boot.data(), kBootIdLen) != 0) return Liveness::dead;
  const auto pid = static_cast<pid_t>(r.pid);
  switch (detail::process_state(pid, r.start_ticks)) {
    case detail::ProcessState::dead: return Liveness::dead;
    case detail::ProcessState::unknown: return Liveness::unknown;
    case detail::ProcessState::alive: break;
  }
  uid_t real = 0, effective = 0;
  if (!detail::process_uids(pid, real, effective)) return Liveness::unknown;
  return owner == real || owner == effective ? Liveness::alive : Liveness::forged;
}

// A fresh record for process `pid`: identity from /proc and the boot id, names truncated to fit
// (NUL-terminated), counters zero.
inline ConsumerRecord new_consumer_record(pid_t pid, std::string_view instance, std::string_view series_id,
                                          std::string_view name) {
  ConsumerRecord r{};
  r.magic = kConsumerMagic;
  r.major = kConsumerMajor;
  r.minor = kConsumerMinor;
  r.record_size = kConsumerRecordSize;
  r.layout_hash = kConsumerLayoutHash;
  r.pid = static_cast<std::uint32_t>(pid);
  r.start_ticks = detail::process_start_ticks(pid);
  const auto boot = detail::boot_id();
  std::memcpy(r.boot_id, boot.data(), kBootIdLen);
  r.registered_wall_ns = detail::wall_ns();
  std::memcpy(r.instance, instance.data(), std::min(instance.size(), kInstanceLen - 1));
  std::memcpy(r.series_id, series_id.data(), std::min(series_id.size(), kSeriesIdLen - 1));
  std::memcpy(r.name, name.data(), std::min(name.size(), kConsumerNameLen - 1));
  return r;
}

// What the inspector shows for one registered consumer. `name` is the raw bytes of the record
// (validated NUL-terminated); print printable_name(name), never name itself.
struct ConsumerInfo {
  std::string name;
  std::string series_id;
  std::string file;
  pid_t pid = 0;
  uid_t owner = 0;
  Liveness liveness = Liveness::unknown;
  bool alive = false;  // liveness is alive or unknown
  std::uint64_t cursor = 0;
  std::uint64_t reads = 0;
  std::uint64_t lapped = 0;
  std::uint64_t registered_wall_ns = 0;
  std::uint64_t last_read_wall_ns = 0;
  bool waiting = false;
};

struct ConsumerListing {
  std::vector<ConsumerInfo> consumers;  // valid records of this instance
  std::size_t invalid = 0;              // entries that are not a valid record (listed nowhere)
  bool complete = true;                 // false: more than kMaxConsumerFiles entries, some unseen
};

// Read-only listing for operators: works for anyone who may read the directory.
inline Errc list_consumers(const OpenOptions& opt, ConsumerListing& out) {
  out = {};
  Errc err;
  const int dirfd = detail::open_consumers_dir(consumers_dir(opt), err);
  if (dirfd < 0) return err;
  const auto boot = detail::boot_id();
  out.complete = detail::for_each_record(dirfd, [&](const RecordEntry& e) {
    if (!e.regular || e.problem != RecordProblem::none ||
        field_string(e.record.instance, kInstanceLen) != opt.instance) {
      ++out.invalid;
      return;
    }
    const ConsumerRecord& r = e.record;
    ConsumerInfo ci;
    ci.name = std::string(field_string(r.name, kConsumerNameLen));
    ci.series_id = std::string(field_string(r.series_id, kSeriesIdLen));
    ci.file = e.file;
    ci.pid = static_cast<pid_t>(r.pid);
    ci.owner = e.owner;
    ci.liveness = judge_record(r, e.owner, boot);
    ci.alive = ci.liveness == Liveness::alive || ci.liveness == Liveness::unknown;
    ci.cursor = r.cursor;
    ci.reads = r.reads;
    ci.lapped = r.lapped;
    ci.registered_wall_ns = r.registered_wall_ns;
    ci.last_read_wall_ns = r.last_read_wall_ns;
    ci.waiting = r.blocked != 0;
    out.consumers.push_back(std::move(ci));
  });
  ::close(dirfd);
  return Errc::ok;
}

inline Errc list_consumers(const OpenOptions& opt, std::vector<ConsumerInfo>& out) {
  ConsumerListing l;
  const Errc e = list_consumers(opt, l);
  out = std::move(l.consumers);
  return e;
}

// A registered reader of one series: Series + cursor + its own record file that shows operators
// where it is. poll() returns what arrived since the last call; wait() blocks for more.
class Subscription {
 public:
  static Result<Subscription> open(std::string_view name, std::string_view series_id, const OpenOptions& opt = {}) {
    if (!valid_consumer_name(name))
      return Error{Errc::invalid_argument, "consumer name must have 1.." + std::to_string(kConsumerNameLen - 1) +
                                               " printable ASCII characters"};
    auto s = Series::open(series_id, opt);
    if (!s) return s.error();
    Subscription sub;
    sub.series_ = std::make_unique<Series>(std::move(s.value()));
    const std::string dir = consumers_dir(opt);
    Errc err;
    sub.dirfd_ = detail::open_consumers_dir(dir, err);
    if (sub.dirfd_ < 0)
      return Error{Errc::registry_unavailable, dir + ": " + std::string(to_string(err)) +
                                                   " (consumers need write access: join the segments' group)"};
    // Start at the bar in progress: a new consumer sees what arrives from now on. Call seek() to
    // replay history.
    const std::uint64_t h = sub.series_->head();
    sub.cursor_.next = h > 0 ? h - 1 : 0;
    ConsumerRecord r = new_consumer_record(::getpid(), opt.instance, series_id, name);
    r.cursor = sub.cursor_.next;
    if (const auto e = sub.create_record_(r); e != Errc::ok)
      return Error{Errc::registry_unavailable, dir + ": cannot create a consumer record: " + std::strerror(errno)};
    return sub;
  }

  Subscription(Subscription&& o) noexcept
      : series_(std::move(o.series_)), dirfd_(std::exchange(o.dirfd_, -1)), file_(std::move(o.file_)),
        rec_(std::exchange(o.rec_, nullptr)), cursor_(o.cursor_), seen_(o.seen_) {}
  Subscription& operator=(Subscription&&) = delete;
  ~Subscription() {
    if (rec_) ::munmap(rec_, kConsumerRecordSize);
    if (dirfd_ >= 0) {
      if (!file_.empty()) ::unlinkat(dirfd_, file_.c_str(), 0);
      ::close(dirfd_);
    }
  }

  Series& series() { return *series_; }
  const Cursor& cursor() const { return cursor_; }
  void seek(std::uint64_t next_index) { cursor_.next = next_index; }
  // The record's name inside consumers_dir(): for operators and tests.
  const std::string& record_file() const { return file_; }

  // Bars since the last call (see Series::read_since); updates the record.
  Errc poll(std::span<Bar> out, std::size_t& n) {
    const std::uint64_t lapped_before = cursor_.lapped;
    const Errc e = series_->read_since(cursor_, out, n);
    ConsumerRecord& c = *rec_;
    std::atomic_ref(c.cursor).store(cursor_.next, std::memory_order_relaxed);
    std::atomic_ref(c.reads).fetch_add(1, std::memory_order_relaxed);
    if (cursor_.lapped != lapped_before) std::atomic_ref(c.lapped).store(cursor_.lapped, std::memory_order_relaxed);
    std::atomic_ref(c.last_read_wall_ns).store(detail::wall_ns(), std::memory_order_relaxed);
    return e;
  }

  WaitResult wait(std::chrono::nanoseconds timeout) {
    std::atomic_ref(rec_->blocked).store(1U, std::memory_order_relaxed);  // shown to operators only
    const auto r = series_->wait(timeout);  // tracks what poll() handed out
    std::atomic_ref(rec_->blocked).store(0U, std::memory_order_relaxed);
    seen_ = series_->updates();
    return r;
  }

 private:
  Subscription() = default;

  // O_EXCL under a random name (nobody can pre-create it for us), the whole record in one pwrite,
  // then mapped: only we can write or shrink this file.
  Errc create_record_(const ConsumerRecord& r) {
    for (int attempt = 0; attempt < 8; ++attempt) {
      std::uint64_t rnd = 0;
      if (::getrandom(&rnd, sizeof rnd, 0) != static_cast<ssize_t>(sizeof rnd)) rnd ^= detail::mono_ns() * 0x9E3779B97F4A7C15ULL;
      char name[64];
      std::snprintf(name, sizeof name, "%.*s%u.%016llx", static_cast<int>(kRecordPrefix.size()), kRecordPrefix.data(),
                    r.pid, static_cast<unsigned long long>(rnd));
      const int fd = ::openat(dirfd_, name, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, kRecordMode);
      if (fd < 0) {
        if (errno == EEXIST) continue;
        return Errc::io_error;
      }
      ::fchmod(fd, kRecordMode);  // whatever the umask: the daemon and operators must read it
      void* p = MAP_FAILED;
      if (::pwrite(fd, &r, sizeof r, 0) == static_cast<ssize_t>(sizeof r))
        p = ::mmap(nullptr, kConsumerRecordSize, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
      const int saved = errno;
      ::close(fd);
      if (p == MAP_FAILED) {
        ::unlinkat(dirfd_, name, 0);
        errno = saved;
        return Errc::io_error;
      }
      rec_ = static_cast<ConsumerRecord*>(p);
      file_ = name;
      return Errc::ok;
    }
    errno = EEXIST;
    return Errc::io_error;
  }

  std::unique_ptr<Series> series_;
  int dirfd_ = -1;
  std::string file_;
  ConsumerRecord* rec_ = nullptr;
  Cursor cursor_;
  std::uint64_t seen_ = 0;
};

}  // namespace mdshm
