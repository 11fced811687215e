#include "publish/publisher.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <chrono>
#include <cstring>
#include <map>
#include <system_error>
#include <thread>

#include "mdshm/paths.hpp"
#include "mdshm/platform/proc.hpp"
#include "mdshm/registry.hpp"
#include "publish/instance_dir.hpp"
#include "publish/writer_lock.hpp"

namespace mdshm::publish {
namespace {

using namespace std::chrono_literals;

template <class T>
std::atomic_ref<T> aref(T& v) {
  return std::atomic_ref<T>(v);
}

}  // namespace

struct Publisher::Impl {
  PublisherOptions opt;
  WriterLock lock;
  std::vector<SegmentWriter> writers;
  std::vector<AttachInfo> info;
  std::string consumers_dir;
  int consumers_fd = -1;  // -1: no registry (the directory could not be made ours); publishing goes on
  std::thread heartbeat;
  std::atomic<bool> stop{false};

  void log(LogLevel l, const std::string& m) const {
    if (opt.log) opt.log(l, m);
  }

  void open_registry(const std::vector<SeriesSpec>& series);
  void write_series_manifest(const std::vector<SeriesSpec>& series) const;
  std::size_t reclaim();
};

namespace {
std::string fmt_mode(mode_t m) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "%04o", static_cast<unsigned>(m & 07777));
  return buf;
}
}  // namespace

// The consumers directory: ours, sticky and setgid, group-writable when the segments are
// group-readable (registry_layout.hpp explains the protocol). Never fatal: without it consumers
// cannot register, but the market data is unaffected.
void Publisher::Impl::open_registry(const std::vector<SeriesSpec>& series) {
  const SegmentOptions& so = opt.segments;
  consumers_dir = paths::consumers_dir(so.shm_dir, so.instance);
  // The shared table of layout 1 is gone: remove ours if a previous version left one.
  const std::string legacy = paths::legacy_registry(so.shm_dir, so.instance);
  struct stat lst {};
  if (::lstat(legacy.c_str(), &lst) == 0 && lst.st_uid == ::geteuid() && ::unlink(legacy.c_str()) == 0)
    log(LogLevel::info, "removed the old shared registry " + legacy + " (consumers now have one file each)");

  mode_t mode = kConsumersDirBaseMode;
  if (so.mode & 0040) mode |= 0070;
  if (so.mode & 0004) mode |= 0005;
  if (::mkdir(consumers_dir.c_str(), 0700) != 0 && errno != EEXIST) {
    log(LogLevel::error, consumers_dir + ": mkdir: " + std::strerror(errno) + "; consumers cannot register");
    return;
  }
  const int fd = ::open(consumers_dir.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  struct stat st {};
  if (fd < 0 || ::fstat(fd, &st) != 0 || st.st_uid != ::geteuid()) {
    struct stat who {};
    const bool known = ::lstat(consumers_dir.c_str(), &who) == 0;
    log(LogLevel::error, consumers_dir + ": not a directory of ours (" +
                             (known ? "owner uid " + std::to_string(who.st_uid) + ", mode " +
                                          fmt_mode(who.st_mode)
                                    : std::string(std::strerror(errno))) +
                             "); consumers cannot register until it is removed");
    if (fd >= 0) ::close(fd);
    return;
  }
  if (so.group != static_cast<gid_t>(-1) && st.st_gid != so.group && ::fchown(fd, static_cast<uid_t>(-1), so.group) != 0)
    log(LogLevel::warn, consumers_dir + ": chgrp: " + std::strerror(errno));
  if ((st.st_mode & 07777) != mode && ::fchmod(fd, mode) != 0)
    log(LogLevel::warn, consumers_dir + ": chmod: " + std::strerror(errno));
  consumers_fd = fd;
  write_series_manifest(series);
}

// ".series": the series this daemon publishes, so that `mdshm check` can report a deleted segment
// as missing. Ours alone (0644 in a sticky directory): no consumer can change it.
void Publisher::Impl::write_series_manifest(const std::vector<SeriesSpec>& series) const {
  const std::string tmp = std::string(kSeriesManifestName) + ".new";
  ::unlinkat(consumers_fd, tmp.c_str(), 0);
  const int fd = ::openat(consumers_fd, tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
  if (fd < 0) {
    log(LogLevel::warn, consumers_dir + "/" + tmp + ": " + std::strerror(errno));
    return;
  }
  std::string text;
  for (const auto& s : series) text += s.id + "\n";
  const bool ok = ::fchmod(fd, 0644) == 0 && ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size());
  ::close(fd);
  if (!ok || ::renameat(consumers_fd, tmp.c_str(), consumers_fd, std::string(kSeriesManifestName).c_str()) != 0) {
    log(LogLevel::warn, consumers_dir + "/" + std::string(kSeriesManifestName) + ": " + std::strerror(errno));
    ::unlinkat(consumers_fd, tmp.c_str(), 0);
  }
}

// One pass over the consumers directory: removes what no live consumer owns. Reads at most
// kMaxConsumerFiles entries with pread (never mmap: their owners may truncate them any time).
std::size_t Publisher::Impl::reclaim() {
  if (consumers_fd < 0) return 0;
  const auto boot = platform::boot_id();
  const auto now_s = static_cast<std::int64_t>(platform::wall_ns() / 1'000'000'000ULL);
  std::map<std::uint32_t, std::size_t> per_process;
  std::size_t dead = 0, forged = 0, invalid = 0, other = 0;
  auto remove = [this](const RecordEntry& e, std::size_t& counter) {
    if (::unlinkat(consumers_fd, e.file.c_str(), 0) == 0 ||
        (errno == EISDIR && ::unlinkat(consumers_fd, e.file.c_str(), AT_REMOVEDIR) == 0))
      ++counter;
  };
  detail::for_each_record(consumers_fd, [&](const RecordEntry& e) {
    if (e.file == std::string(kSeriesManifestName) + ".new") return;
    if (!e.regular) return remove(e, other);
    if (e.problem != RecordProblem::none ||
        field_string(e.record.instance, kInstanceLen) != opt.segments.instance) {
      if (now_s - e.ctime_s >= kInvalidRecordGraceSec) remove(e, invalid);
      return;
    }
    switch (judge_record(e.record, e.owner, boot)) {
      case Liveness::dead: return remove(e, dead);
      case Liveness::forged: return remove(e, forged);
      case Liveness::alive:
      case Liveness::unknown:
        if (++per_process[e.record.pid] > kMaxRecordsPerProcess) remove(e, other);
        return;
    }
  });
  const std::size_t n = dead + forged + invalid + other;
  if (n > 0)
    log(LogLevel::info, "consumer registry: removed " + std::to_string(n) + " record(s): " + std::to_string(dead) +
                            " dead, " + std::to_string(forged) + " forged, " + std::to_string(invalid) +
                            " invalid, " + std::to_string(other) + " other");
  return n;
}

Publisher::Publisher(PublisherOptions opt, const std::vector<SeriesSpec>& series) : impl_(std::make_unique<Impl>()) {
  Impl& m = *impl_;
  m.opt = std::move(opt);
  std::vector<std::string> notes;
  if (m.opt.segments.mode & 0022) {  // readers trust a segment only if no one else may write it
    notes.push_back("shm.mode: segments are never writable by group or others; group/other write bits ignored");
    m.opt.segments.mode &= ~mode_t{0022};
  }
  if (series.size() > kMaxSeriesPerInstance)
    throw std::runtime_error(std::to_string(series.size()) + " series configured; at most " +
                             std::to_string(kMaxSeriesPerInstance) + " per instance");
  prepare_instance_dir(m.opt.segments, notes);  // before anything is opened in it
  const bool own_lock = m.opt.lock_path.empty();
  if (own_lock) m.opt.lock_path = paths::lock(m.opt.segments.shm_dir, m.opt.segments.instance);
  notes.emplace_back();
  m.lock = WriterLock::acquire(m.opt.lock_path, m.opt.segments.instance, own_lock, &notes.back());
  for (const auto& n : notes)
    if (!n.empty()) m.log(LogLevel::warn, n);
  m.open_registry(series);
  m.reclaim();  // what consumers of a previous run left, before anyone new registers
  for (const auto& s : series) {
    AttachInfo info;
    m.writers.push_back(SegmentWriter::open(m.opt.segments, s, &info));
    switch (info.outcome) {
      case AttachOutcome::created: m.log(LogLevel::info, "series " + s.id + ": created " + m.writers.back().path()); break;
      case AttachOutcome::reattached:
        m.log(LogLevel::info, "series " + s.id + ": re-attached " + m.writers.back().path() + " (generation " +
                                  std::to_string(info.generation) + ", " + std::to_string(info.bars_kept) +
                                  " bars kept)");
        break;
      case AttachOutcome::replaced:
        m.log(LogLevel::warn, "series " + s.id + ": replaced incompatible segment " + m.writers.back().path() +
                                  ": " + info.reason);
        break;
    }
    m.info.push_back(info);
  }
  m.heartbeat = std::thread([&m] {
    auto next_reclaim = std::chrono::steady_clock::now() + 1s;
    while (!m.stop.load()) {
      for (auto& w : m.writers) {
        w.heartbeat();
        // Safety net for publishes whose caller did not call wake_readers() (backfill, repair):
        // their blocked readers wake within one heartbeat instead of their 250 ms slice.
        w.wake_readers();
      }
      if (std::chrono::steady_clock::now() >= next_reclaim) {
        m.reclaim();
        next_reclaim += 1s;
      }
      std::this_thread::sleep_for(50ms);
    }
  });
}

Publisher::~Publisher() {
  Impl& m = *impl_;
  m.stop.store(true);
  if (m.heartbeat.joinable()) m.heartbeat.join();
  for (auto& w : m.writers) w.wake_readers();
  if (m.consumers_fd >= 0) ::close(m.consumers_fd);
}

std::size_t Publisher::size() const { return impl_->writers.size(); }
SegmentWriter& Publisher::at(std::size_t i) { return impl_->writers.at(i); }
SegmentWriter* Publisher::find(std::string_view id) {
  for (auto& w : impl_->writers)
    if (w.spec().id == id) return &w;
  return nullptr;
}
const std::vector<AttachInfo>& Publisher::attach_info() const { return impl_->info; }
std::string Publisher::consumers_dir() const { return impl_->consumers_dir; }
std::size_t Publisher::reclaim_dead_consumers() { return impl_->reclaim(); }
std::size_t Publisher::wake_readers() {
  std::size_t n = 0;
  for (auto& w : impl_->writers) n += w.wake_readers() ? 1 : 0;
  return n;
}

}  // namespace mdshm::publish
