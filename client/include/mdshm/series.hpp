// mdshm::Series — one series segment mapped read-only. Header-only, no library to link.
//
//   auto s = mdshm::Series::open("eth_1m");          // instance "default", /dev/shm
//   if (!s) { std::cerr << s.error().message; ... }
//   mdshm::Bar bar;
//   if (s->latest(bar) == mdshm::Errc::ok) use(bar);
//
// A Series object is used by one thread at a time (like a std::ifstream): reads may re-map the
// segment when the writer replaced it. Open one per thread; opening costs a few syscalls.
#pragma once

#include <fcntl.h>
#include <sched.h>
#include <time.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <thread>
#include <utility>

#include <poll.h>
#include <sys/inotify.h>

#include "mdshm/platform/file_trust.hpp"
#include "mdshm/layout.hpp"
#include "mdshm/paths.hpp"
#include "mdshm/platform/futex.hpp"
#include "mdshm/platform/proc.hpp"
#include "mdshm/result.hpp"
#include "mdshm/seqlock.hpp"

namespace mdshm {

// How long one read keeps retrying a slot the writer is in the middle of (sequence odd, or moving)
// before it reports Errc::contended. A write takes ~100 ns, but a writer preempted mid-write on a
// loaded host holds the slot for the length of its time slice (600 µs were seen); 2 ms covers that
// and is still far below any timeout a consumer would choose.
inline constexpr std::chrono::nanoseconds kDefaultReadBound = std::chrono::milliseconds(2);

struct OpenOptions {
  // A constructor rather than an aggregate, so {instance, shm_dir} stays complete as fields grow.
  OpenOptions(std::string instance_ = std::string(kDefaultInstance), std::string shm_dir_ = std::string(kDefaultShmDir))
      : instance(std::move(instance_)), shm_dir(std::move(shm_dir_)) {}
  std::string instance;
  std::string shm_dir;
  // The account whose segments are trusted. Empty: the owner of the instance directory (the daemon
  // created it). Set it (e.g. to the uid of user mdshm) so that a directory someone else created
  // before the daemon first started is refused too.
  std::optional<uid_t> expected_owner;
  std::chrono::nanoseconds read_bound = kDefaultReadBound;  // see kDefaultReadBound
};

inline std::string series_path(const OpenOptions& o, std::string_view series_id) {
  return paths::segment(o.shm_dir, o.instance, series_id);
}

enum class WriterState { alive, stalled, dead };
inline std::string_view to_string(WriterState w) {
  return w == WriterState::alive ? "alive" : w == WriterState::stalled ? "stalled" : "dead";
}

// Where a consumer is: the next bar index it has not seen closed, and how many bars it lost to
// lapping so far.
struct Cursor {
  std::uint64_t next = 0;
  std::uint64_t lapped = 0;
};

enum class WaitResult { updated, timeout, writer_dead };

inline constexpr int kMaxReadAttempts = 4096;  // spins-only bound of the benchmarks' raw loops (bench_reads)
inline constexpr auto kHeartbeatDeadline = std::chrono::milliseconds(1000);  // older: writer stalled
inline constexpr auto kHeartbeatSuspect = std::chrono::milliseconds(150);    // writer beats every 50 ms

namespace detail {
using namespace mdshm::platform;  // detail::mono_ns() etc. kept working for code written before the move

inline void cpu_relax() {
#if defined(__x86_64__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  asm volatile("yield");
#endif
}

// The retry policy of one read: spin (the writer is almost always done within a few hundred ns),
// then yield (it may be waiting for our core), then sleep in short steps (it was preempted), and
// give up only when `bound` has passed since the first failed attempt.
class ReadRetry {
 public:
  explicit ReadRetry(std::chrono::nanoseconds bound) : bound_ns_(static_cast<std::uint64_t>(bound.count())) {}
  // Call after a failed attempt; false once the bound has passed.
  bool again() {
    if (++spins_ <= kSpins) {
      cpu_relax();
      return true;
    }
    const std::uint64_t now = platform::mono_ns();
    if (start_ns_ == 0) start_ns_ = now - 1;
    const std::uint64_t elapsed = now - start_ns_;
    if (elapsed >= bound_ns_) return false;
    if (elapsed < kYieldUntilNs) {
      ::sched_yield();
    } else {
      const std::uint64_t nap = std::min<std::uint64_t>(kNapNs, bound_ns_ - elapsed);
      timespec ts{0, static_cast<long>(nap)};
      ::nanosleep(&ts, nullptr);
    }
    return true;
  }

 private:
  static constexpr int kSpins = 256;                  // ~2-10 µs of pause instructions
  static constexpr std::uint64_t kYieldUntilNs = 50'000;
  static constexpr std::uint64_t kNapNs = 20'000;     // a preempted writer needs a CPU: give ours up
  std::uint64_t bound_ns_;
  std::uint64_t start_ns_ = 0;
  int spins_ = 0;
};

// A read-only mapping of a whole file, validated. Shared by Series and the inspector.
class Mapping {
 public:
  Mapping() = default;
  ~Mapping() { reset(); }
  Mapping(Mapping&& o) noexcept { *this = std::move(o); }
  Mapping& operator=(Mapping&& o) noexcept {
    if (this != &o) {
      reset();
      base_ = std::exchange(o.base_, nullptr);
      size_ = std::exchange(o.size_, 0);
      ino_ = o.ino_;
      dev_ = o.dev_;
    }
    return *this;
  }
  // Maps `path` if it is a regular file (never through a symlink) owned by `expected_owner` (empty:
  // the owner of the directory it is in) that nobody else may write (file_trust.hpp).
  static Errc map(const std::string& path, Mapping& out, std::string* detail_msg = nullptr,
                  std::optional<uid_t> expected_owner = std::nullopt) {
    auto refuse = [&](Errc e, const std::string& why) {
      if (detail_msg) *detail_msg = why;
      return e;
    };
    const auto slash = path.rfind('/');
    const std::string dir = slash == std::string::npos ? "." : slash == 0 ? "/" : path.substr(0, slash);
    const int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (dfd < 0) {
      const int e = errno;
      if (e == ELOOP || e == ENOTDIR) return refuse(Errc::symlink_refused, dir + " is not a directory (a symlink?)");
      return refuse(e == ENOENT ? Errc::not_found : (e == EACCES || e == EPERM) ? Errc::permission_denied : Errc::io_error,
                    std::strerror(e));
    }
    struct stat dst {};
    const bool dir_ok = ::fstat(dfd, &dst) == 0;
    const char* name = path.c_str() + (slash == std::string::npos ? 0 : slash + 1);
    const int fd = ::openat(dfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
    const int open_errno = errno;
    struct stat lst {};
    const bool link_known = fd < 0 && open_errno == ELOOP && ::fstatat(dfd, name, &lst, AT_SYMLINK_NOFOLLOW) == 0;
    ::close(dfd);
    if (fd < 0) {
      if (open_errno == ELOOP)
        return refuse(Errc::symlink_refused,
                      (link_known ? "owned by " + describe_uid(lst.st_uid) + ", " : std::string()) + "not followed");
      return refuse(open_errno == ENOENT                             ? Errc::not_found
                    : (open_errno == EACCES || open_errno == EPERM) ? Errc::permission_denied
                                                                    : Errc::io_error,
                    std::strerror(open_errno));
    }
    struct stat st {};
    if (!dir_ok || ::fstat(fd, &st) != 0) {
      ::close(fd);
      return Errc::io_error;
    }
    const uid_t writer = expected_owner.value_or(dst.st_uid);
    std::string why = untrusted_reason(st, writer);
    if (why.empty() && !expected_owner && (dst.st_mode & (S_IWGRP | S_IWOTH)))
      why = "its directory " + dir + " is writable by others, so its owner proves nothing";
    if (!why.empty()) {
      ::close(fd);
      return refuse(S_ISREG(st.st_mode) ? Errc::untrusted_owner : Errc::io_error, why);
    }
    if (st.st_size < static_cast<off_t>(kHeaderSize)) {
      ::close(fd);
      return Errc::too_small;
    }
    void* p = ::mmap(nullptr, static_cast<std::size_t>(st.st_size), PROT_READ, MAP_SHARED, fd, 0);
    ::close(fd);
    if (p == MAP_FAILED) return Errc::io_error;
    out.reset();
    out.base_ = p;
    out.size_ = static_cast<std::size_t>(st.st_size);
    out.ino_ = st.st_ino;
    out.dev_ = st.st_dev;
    return Errc::ok;
  }
  void reset() {
    if (base_) ::munmap(base_, size_);
    base_ = nullptr;
    size_ = 0;
  }
  // True if `path` now names another file than the one mapped (replaced or removed).
  bool replaced_at(const std::string& path) const {
    struct stat st {};
    if (::lstat(path.c_str(), &st) != 0) return true;
    return st.st_ino != ino_ || st.st_dev != dev_;
  }
  const void* base() const { return base_; }
  std::size_t size() const { return size_; }

 private:
  void* base_ = nullptr;
  std::size_t size_ = 0;
  ino_t ino_ = 0;
  dev_t dev_ = 0;
};

// Wakes wait_open() when a name appears in the segment directory (inotify), or after the slice.
// Watches the instance directory, or the shm directory while the former does not exist yet.
class DirWatch {
 public:
  DirWatch(const std::string& dir, const std::string& parent) : fd_(::inotify_init1(IN_NONBLOCK | IN_CLOEXEC)) {
    if (fd_ < 0) return;
    constexpr std::uint32_t kMask = IN_CREATE | IN_MOVED_TO | IN_ATTRIB | IN_CLOSE_WRITE;
    if (::inotify_add_watch(fd_, dir.c_str(), kMask) < 0 && ::inotify_add_watch(fd_, parent.c_str(), kMask) < 0) {
      ::close(fd_);
      fd_ = -1;
    }
  }
  ~DirWatch() {
    if (fd_ >= 0) ::close(fd_);
  }
  DirWatch(const DirWatch&) = delete;
  DirWatch& operator=(const DirWatch&) = delete;
  void wait(std::chrono::nanoseconds slice) {
    const int ms = static_cast<int>(std::max<std::int64_t>(
        1, std::chrono::duration_cast<std::chrono::milliseconds>(slice).count()));
    if (fd_ < 0) {
      std::this_thread::sleep_for(std::chrono::milliseconds(std::min(ms, 20)));  // no inotify: poll
      return;
    }
    pollfd p{fd_, POLLIN, 0};
    if (::poll(&p, 1, ms) > 0) {
      alignas(inotify_event) char buf[4096];
      while (::read(fd_, buf, sizeof buf) > 0) {}
    }
  }

 private:
  int fd_ = -1;
};

}  // namespace detail

class ClosedView;

class Series {
 public:
  static Result<Series> open(std::string_view series_id, const OpenOptions& opt = {}) {
    if (!valid_series_id(series_id) || !valid_instance(opt.instance))
      return Error{Errc::invalid_argument, "invalid series id or instance: '" + std::string(series_id) + "'"};
    return open_path(series_path(opt, series_id), opt);
  }

  // Open a segment file by path (the inspector uses this for every file it finds).
  static Result<Series> open_path(std::string path, const OpenOptions& opt = {}) {
    Series s;
    s.path_ = std::move(path);
    s.opt_ = opt;
    std::string why;
    const Errc e = s.map_(&why);
    if (e != Errc::ok)
      return Error{e, s.path_ + ": " + std::string(to_string(e)) + (why.empty() ? "" : " (" + why + ")")};
    return s;
  }

  Series(Series&&) noexcept = default;
  Series& operator=(Series&&) noexcept = default;
  ~Series() = default;

  // ---- identity ------------------------------------------------------------------------------
  std::string_view id() const { return field_string(h_->series_id, kSeriesIdLen); }
  std::string_view symbol() const { return field_string(h_->symbol, kSymbolLen); }
  std::string_view instance() const { return field_string(h_->instance, kInstanceLen); }
  std::uint32_t interval_s() const { return interval_s_; }
  std::uint64_t capacity() const { return cap_; }
  const std::string& path() const { return path_; }
  const SegmentHeader& header() const { return *h_; }

  // ---- counters (a spinning reader polls updates()) ------------------------------------------
  std::uint64_t head() const { return load_field(h_->head, std::memory_order_acquire); }
  std::uint64_t updates() const { return load_field(h_->updates, std::memory_order_acquire); }
  std::uint64_t generation() const { return load_field(h_->generation, std::memory_order_acquire); }
  std::uint64_t stat(Stat s) const { return load_field(h_->stats[static_cast<std::size_t>(s)]); }
  // Bars held right now: min(head, capacity).
  std::uint64_t size() const { return std::min(head(), cap_); }

  // ---- reads ---------------------------------------------------------------------------------
  // The newest bar (in progress or just closed), from the latch: never blocked by the writer.
  // *version: the update count this version of the bar was published as (the writer fills the
  // latch just before it counts the update, so it may be updates() + 1). A caller that spins on
  // updates() compares versions, not updates(), to skip a bar it already has; wait(timeout)
  // does that for it (latest() marks the version seen).
  Errc latest(Bar& out, std::uint64_t* index = nullptr, std::uint64_t* version = nullptr) {
    if (const Errc e = check_state_(); e != Errc::ok) return e;
    for (detail::ReadRetry retry(opt_.read_bound);;) {
      std::uint64_t idx = 0, ver = 0;
      if (seqlock::try_read_latch(h_->latch_seq, h_->latch, idx, out, &ver)) {
        if (idx == kEmptySlot) return Errc::empty;
        if (index) *index = idx;
        if (version) *version = ver;
        seen_ = std::max(seen_, ver);
        return Errc::ok;
      }
      if (!retry.again()) return Errc::contended;
    }
  }

  // One bar by index. not_held if it is newer than the head or was lapped.
  Errc read(std::uint64_t index, Bar& out) {
    if (const Errc e = check_state_(); e != Errc::ok) return e;
    return read_slot_(index, out);
  }

  // The newest out.size() bars (fewer if fewer are held), oldest first, into the caller's
  // buffer. Consistent: every bar is a seqlock-consistent copy, and no bar was started while the
  // window was being copied (else it is retried, a bounded number of times). n = bars written.
  Errc last_n(std::span<Bar> out, std::size_t& n) {
    n = 0;
    if (const Errc e = check_state_(); e != Errc::ok) return e;
    for (int attempt = 0; attempt < 64; ++attempt) {
      const std::uint64_t h0 = head();
      if (h0 == 0) return Errc::empty;
      const std::uint64_t want = std::min<std::uint64_t>({out.size(), h0, cap_});
      if (want == 0) return Errc::ok;
      Errc e = Errc::ok;
      for (std::uint64_t i = 0; i + 1 < want && e == Errc::ok; ++i) e = read_slot_(h0 - want + i, out[i]);
      // The newest bar is the one the writer rewrites: take it from the latch, which a busy
      // writer cannot starve, and fall back to its slot if the latch already moved on.
      if (e == Errc::ok) e = read_newest_(h0 - 1, out[want - 1]);
      if (e == Errc::ok && head() == h0) {
        n = static_cast<std::size_t>(want);
        return Errc::ok;
      }
      if (e != Errc::ok && e != Errc::not_held && e != Errc::lapped) return e;
    }
    return Errc::contended;
  }

  // What arrived since the consumer last looked. Returns bars [c.next, newest] (oldest first, at
  // most out.size()); c.next moves past the bars returned closed, so the bar in progress comes
  // back, updated, on the next call. Bars lost to lapping are skipped and added to c.lapped.
  Errc read_since(Cursor& c, std::span<Bar> out, std::size_t& n) {
    n = 0;
    if (const Errc e = check_state_(); e != Errc::ok) return e;
    for (int attempt = 0; attempt < 64; ++attempt) {
      const std::uint64_t u0 = updates();  // before head: all it counts is in what we read
      const std::uint64_t h0 = head();
      if (h0 == 0) return Errc::ok;
      if (c.next > h0) c.next = h0;  // writer restarted with fewer bars: resume at its head
      const std::uint64_t oldest = h0 > cap_ ? h0 - cap_ : 0;
      if (c.next < oldest) {
        c.lapped += oldest - c.next;
        c.next = oldest;
      }
      const std::uint64_t count = std::min<std::uint64_t>(h0 - c.next, out.size());
      Errc e = Errc::ok;
      std::uint64_t i = 0;
      for (; i < count && e == Errc::ok; ++i) e = read_slot_(c.next + i, out[i]);
      if (e == Errc::lapped || e == Errc::not_held) continue;  // lapped mid-copy: recompute
      if (e != Errc::ok) return e;
      n = static_cast<std::size_t>(count);
      if (count == h0 - c.next) seen_ = std::max(seen_, u0);  // caught up (not cut short by out.size())
      std::uint64_t advance = count;
      if (count > 0 && (out[count - 1].flags & flag::in_progress)) --advance;
      c.next += advance;
      return Errc::ok;
    }
    return Errc::contended;
  }

  // Zero-copy view over up to n closed bars ending just before the bar in progress. Check
  // view.valid() after using it: it says whether any bar was lapped or amended meanwhile.
  Errc closed_view(std::size_t n, ClosedView& view);

  // ---- waiting -------------------------------------------------------------------------------
  // The update count this Series has handed to its caller: set at open, raised by latest() (to
  // the version of the bar it returned), read_since() and wait(). wait(timeout) blocks until the
  // writer has published past it, so a caller that reads, then waits, never misses an update and
  // never gets the same one twice.
  std::uint64_t seen() const { return seen_; }
  void mark_seen(std::uint64_t updates) { seen_ = std::max(seen_, updates); }

  // Block until the writer published something this Series has not handed out (updates() >
  // seen()), the timeout passes, or the writer is found dead. No registry, no shared writes: the
  // reader sleeps on the segment's futex word, which the writer wakes once per batch.
  WaitResult wait(std::chrono::nanoseconds timeout) {
    const WaitResult r = wait_(timeout, [this](std::uint64_t u) { return u > seen_; });
    if (r == WaitResult::updated) seen_ = std::max(seen_, updates());
    return r;
  }

  // Block until updates() != seen (the caller tracks `seen`; prefer wait(timeout) above).
  WaitResult wait(std::uint64_t seen, std::chrono::nanoseconds timeout) {
    return wait_(timeout, [seen](std::uint64_t u) { return u != seen; });
  }

  // Open a series that may not exist yet (a reader started before the daemon): retries while the
  // segment is missing or not ready, woken by inotify on the segment directory (and at least
  // every 100 ms, for a writer that turns a segment ready in place). Any other error is returned
  // at once; a segment still missing at the deadline returns not_found / not_ready.
  static Result<Series> wait_open(std::string_view series_id, const OpenOptions& opt,
                                  std::chrono::nanoseconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    detail::DirWatch watch(paths::instance_dir(opt.shm_dir, opt.instance), opt.shm_dir);
    for (;;) {
      auto s = open(series_id, opt);
      if (s || (s.error().code != Errc::not_found && s.error().code != Errc::not_ready)) return s;
      const auto now = std::chrono::steady_clock::now();
      if (now >= deadline) return s;
      watch.wait(std::min<std::chrono::nanoseconds>(deadline - now, std::chrono::milliseconds(100)));
    }
  }

  // ---- freshness and the writer --------------------------------------------------------------
  std::chrono::nanoseconds update_age() const {
    return since_mono_(load_field(h_->last_update_mono_ns, std::memory_order_relaxed));
  }
  std::chrono::nanoseconds heartbeat_age() const {
    return since_mono_(load_field(h_->heartbeat_mono_ns, std::memory_order_relaxed));
  }
  // Fresh: the writer is alive and published within max_age.
  bool is_fresh(std::chrono::nanoseconds max_age) const {
    return update_age() <= max_age && writer_state() == WriterState::alive;
  }
  // dead: the process is gone (or the host rebooted); stalled: alive but no heartbeat for 1 s.
  // A fresh heartbeat proves the writer alive without a syscall (the common, hot case: the
  // universal snapshot asks for every series); only a late one sends us to the kernel.
  WriterState writer_state() const {
    if (heartbeat_age() <= kHeartbeatSuspect) return WriterState::alive;
    std::uint8_t id[kBootIdLen];
    for (std::size_t i = 0; i < kBootIdLen; ++i) id[i] = load_field(h_->boot_id[i]);
    static const auto mine = platform::boot_id();  // constant until reboot
    if (std::memcmp(id, mine.data(), kBootIdLen) != 0) return WriterState::dead;
    const auto ps = platform::process_state(static_cast<pid_t>(load_field(h_->writer_pid)),
                                          load_field(h_->writer_start_ticks));
    if (ps == platform::ProcessState::dead) return WriterState::dead;
    return heartbeat_age() > kHeartbeatDeadline ? WriterState::stalled : WriterState::alive;
  }
  // The writer restarted (re-attached: same bars, new generation) since open()/refresh().
  bool restarted() const { return generation() != opened_generation_; }

  // Re-open by name: after the writer replaced the segment, or to forget a restart.
  Errc refresh() {
    Series fresh;
    fresh.path_ = path_;
    fresh.opt_ = opt_;
    if (const Errc e = fresh.map_(nullptr); e != Errc::ok) return e;
    *this = std::move(fresh);
    return Errc::ok;
  }

 private:
  friend class ClosedView;
  Series() = default;

  Errc map_(std::string* why) {
    detail::Mapping m;
    if (const Errc e = detail::Mapping::map(path_, m, why, opt_.expected_owner); e != Errc::ok) return e;
    HeaderProblem p = validate_header(m.base(), m.size());
    if (p == HeaderProblem::none) p = validate_names(*static_cast<const SegmentHeader*>(m.base()), path_);
    if (p != HeaderProblem::none) return to_errc(p);
    mapping_ = std::move(m);
    h_ = static_cast<const SegmentHeader*>(mapping_.base());
    ring_ = ring_of(h_);
    cap_ = load_field(h_->capacity);
    interval_s_ = load_field(h_->interval_s);
    opened_generation_ = generation();
    seen_ = updates();
    return Errc::ok;
  }

  Errc check_state_() {
    if (load_field(h_->state, std::memory_order_acquire) == static_cast<std::uint32_t>(SegmentState::ready))
      return Errc::ok;
    // Re-attaching writer (transient) or retired segment: try the file now at our path.
    const Errc e = refresh();
    return e == Errc::ok ? Errc::ok : e;
  }

  Errc read_slot_(std::uint64_t index, Bar& out) const {
    const BarSlot& slot = ring_[index % cap_];
    // Bar i is written to its slot before the head moves past i: if the head was past `index`
    // before the copy, the slot holds `index` or a newer bar (lapped), never an older one.
    const std::uint64_t head_before = head();
    for (detail::ReadRetry retry(opt_.read_bound);;) {
      std::uint64_t got = 0;
      const auto st = seqlock::try_read_slot(slot, got, out);
      if (st == seqlock::ReadStatus::ok) {
        if (got == index) return Errc::ok;
        if (got != kEmptySlot && got > index) {
          // The writer stores head = i before it writes slot i, so after the consistent copy (its
          // acquire) the head is at least the index found: a bar beyond it is damage, not a race.
          return got > head() ? Errc::corrupt : Errc::lapped;
        }
        if (index < head_before && index + cap_ >= head_before) return Errc::corrupt;  // should be held
        return Errc::not_held;  // not written yet
      }
      if (!retry.again()) break;
    }
    // A sequence stuck odd means a write that will never finish: say so rather than "busy".
    return writer_state() == WriterState::dead ? Errc::writer_dead : Errc::contended;
  }

  Errc read_newest_(std::uint64_t index, Bar& out) const {
    for (detail::ReadRetry retry(opt_.read_bound);;) {
      std::uint64_t got = 0;
      if (seqlock::try_read_latch(h_->latch_seq, h_->latch, got, out)) {
        if (got == index) return Errc::ok;
        break;  // a newer bar started: the slot holds the final version of ours
      }
      if (!retry.again()) break;
    }
    return read_slot_(index, out);
  }

  // The wait loop. `done(updates)` says whether the caller's condition holds. The futex word is
  // loaded before `updates` (the writer stores them in the other order), and the sleep expects
  // the word as loaded, so a publish between the check and the sleep makes the sleep return at
  // once. The word is only a doorbell, never the condition: a writer killed between storing
  // `updates` and the word leaves them unequal for good, which must not read as "updated".
  template <class Done>
  WaitResult wait_(std::chrono::nanoseconds timeout, Done done) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    WaitResult r = WaitResult::timeout;
    bool pass_on = false;  // woken by a publish: wake the other sleepers before returning
    for (;;) {
      const std::uint32_t word = load_field(h_->futex_word, std::memory_order_acquire);
      if (done(updates())) {
        r = WaitResult::updated;
        break;
      }
      const auto now = std::chrono::steady_clock::now();
      if (now >= deadline) break;
      // Slices of at most 250 ms notice a dead writer within a second.
      const auto slice = std::min<std::chrono::nanoseconds>(deadline - now, std::chrono::milliseconds(250));
      const int rc = platform::futex_wait_shared(&h_->futex_word, word, slice);
      // The writer wakes ONE sleeper per batch; the one woken wakes the rest (only if the word
      // really moved: a spurious wake-up passing itself on would ping-pong among readers).
      if (rc == 0 && load_field(h_->futex_word, std::memory_order_relaxed) != word) pass_on = true;
      // Two missed heartbeats make the writer suspect: then ask the kernel whether it lives.
      if (heartbeat_age() > kHeartbeatSuspect && writer_state() == WriterState::dead) {
        r = WaitResult::writer_dead;
        break;
      }
    }
    if (pass_on) platform::futex_wake_shared(&h_->futex_word);
    if (r != WaitResult::updated && (load_field(h_->state) != static_cast<std::uint32_t>(SegmentState::ready) ||
                                     mapping_.replaced_at(path_))) {
      // The writer replaced the segment: re-open by name so the next read sees the new one.
      if (refresh() == Errc::ok) r = WaitResult::updated;
    }
    return r;
  }

  static std::chrono::nanoseconds since_mono_(std::uint64_t t) {
    const std::uint64_t now = platform::mono_ns();
    return std::chrono::nanoseconds(now > t ? static_cast<std::int64_t>(now - t) : 0);
  }

  std::string path_;
  OpenOptions opt_;
  detail::Mapping mapping_;
  const SegmentHeader* h_ = nullptr;
  const BarSlot* ring_ = nullptr;
  std::uint64_t cap_ = 0;
  std::uint32_t interval_s_ = 0;
  std::uint64_t opened_generation_ = 0;
  std::uint64_t seen_ = 0;
};

// Zero-copy: reads go straight to the mapped ring (relaxed atomic loads, so even a read that
// races with the writer lapping it is defined behaviour), then valid() says whether the writer
// touched any of it meanwhile. Closed bars are immutable until lapped, except for one amendment
// by reconciliation, which bumps the header's `amends` counter.
class ClosedView {
 public:
  std::size_t size() const { return n_; }
  std::uint64_t first_index() const { return first_; }
  std::int64_t open_time_ms(std::size_t i) const { return load_field(slot_(i).bar.open_time_ms); }
  double open(std::size_t i) const { return load_field(slot_(i).bar.open); }
  double high(std::size_t i) const { return load_field(slot_(i).bar.high); }
  double low(std::size_t i) const { return load_field(slot_(i).bar.low); }
  double close(std::size_t i) const { return load_field(slot_(i).bar.close); }
  double volume(std::size_t i) const { return load_field(slot_(i).bar.volume); }
  std::uint32_t flags(std::size_t i) const { return load_field(slot_(i).bar.flags); }
  Bar bar(std::size_t i) const {
    Bar b;
    seqlock::load_words(b, slot_(i).bar);
    return b;
  }
  // True iff no bar of the view was lapped or amended since it was taken. Why checking one slot
  // suffices: the writer laps slots in index order, so before it overwrites any slot of the view
  // it has overwritten the first one, whose sequence it bumps before its release fence. A reader
  // that saw any overwritten byte therefore sees the first slot's new sequence after this acquire
  // fence. Amendments bump `amends` before their fence, likewise.
  // The generation too: a restarting writer repairs torn slots in place without touching
  // `amends`, and the view may cover one of them.
  bool valid() const {
    std::atomic_thread_fence(std::memory_order_acquire);
    if (n_ == 0) return true;
    return load_field(h_->amends, std::memory_order_relaxed) == amends_ &&
           load_field(h_->generation, std::memory_order_relaxed) == generation_ &&
           load_field(slot_(0).seq, std::memory_order_relaxed) == first_seq_;
  }

 private:
  friend class Series;
  const BarSlot& slot_(std::size_t i) const { return ring_[(first_ + i) % cap_]; }
  const SegmentHeader* h_ = nullptr;
  const BarSlot* ring_ = nullptr;
  std::uint64_t cap_ = 1;
  std::uint64_t first_ = 0;
  std::size_t n_ = 0;
  std::uint64_t amends_ = 0;
  std::uint64_t generation_ = 0;
  std::uint64_t first_seq_ = 0;
};

inline Errc Series::closed_view(std::size_t n, ClosedView& v) {
  if (const Errc e = check_state_(); e != Errc::ok) return e;
  v = ClosedView{};
  v.h_ = h_;
  v.ring_ = ring_;
  v.cap_ = cap_;
  v.amends_ = load_field(h_->amends, std::memory_order_acquire);
  v.generation_ = load_field(h_->generation, std::memory_order_acquire);
  const std::uint64_t h = head();
  if (h == 0) return Errc::empty;
  // Closed bars are [oldest held, h - 1); the newest may still be in progress. Leave one slot
  // of margin at the old end: it is the next to be overwritten.
  Bar newest{};
  std::uint64_t closed_end = h - 1;
  if (read_slot_(h - 1, newest) == Errc::ok && (newest.flags & flag::closed)) closed_end = h;
  const std::uint64_t oldest = h > cap_ ? h - cap_ + 1 : 0;
  const std::uint64_t avail = closed_end > oldest ? closed_end - oldest : 0;
  v.n_ = static_cast<std::size_t>(std::min<std::uint64_t>(n, avail));
  v.first_ = closed_end - v.n_;
  if (v.n_ == 0) return Errc::ok;
  v.first_seq_ = load_field(v.slot_(0).seq, std::memory_order_acquire);
  if ((v.first_seq_ & 1) || load_field(v.slot_(0).bar_index) != v.first_) return Errc::lapped;
  return Errc::ok;
}

}  // namespace mdshm
