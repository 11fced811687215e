#include "publish/publisher.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <system_error>
#include <thread>

#include "mdshm/paths.hpp"
#include "mdshm/platform/proc.hpp"
#include "mdshm/registry_layout.hpp"
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
  std::string registry_path;
  void* registry = nullptr;
  RegistryView reg{};
  std::thread heartbeat;
  std::atomic<bool> stop{false};

  void log(LogLevel l, const std::string& m) const {
    if (opt.log) opt.log(l, m);
  }

  void open_registry(const std::vector<SeriesSpec>& series);
  std::size_t reclaim();
};

void Publisher::Impl::open_registry(const std::vector<SeriesSpec>& series) {
  registry_path = paths::registry(opt.segments.shm_dir, opt.segments.instance);
  // Consumers write the registry (their slot, waiter counts): group-writable when group-readable.
  mode_t mode = opt.segments.mode;
  if (mode & 0040) mode |= 0020;
  mode &= ~mode_t{0002};
  int fd = ::open(registry_path.c_str(), O_RDWR | O_CLOEXEC | O_NOFOLLOW);
  bool fresh = false;
  if (fd >= 0) {
    struct stat st {};
    ::fstat(fd, &st);
    void* p = ::mmap(nullptr, kRegistrySize, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    const bool ok = p != MAP_FAILED && registry_valid(p, static_cast<std::uint64_t>(st.st_size));
    if (p != MAP_FAILED) ::munmap(p, kRegistrySize);
    if (!ok) {
      ::close(fd);
      ::unlink(registry_path.c_str());
      log(LogLevel::warn, "registry " + registry_path + " incompatible or damaged: replaced");
      fd = -1;
    }
  }
  if (fd < 0) {
    const std::string tmp = registry_path + ".new";
    ::unlink(tmp.c_str());
    fd = ::open(tmp.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, mode);
    if (fd < 0) throw std::runtime_error(tmp + ": create registry: " + std::strerror(errno));
    ::fchmod(fd, mode);
    if (opt.segments.group != static_cast<gid_t>(-1)) (void)::fchown(fd, static_cast<uid_t>(-1), opt.segments.group);
    if (const int e = ::posix_fallocate(fd, 0, kRegistrySize); e != 0) {
      ::close(fd);
      ::unlink(tmp.c_str());
      throw std::runtime_error(tmp + ": reserve registry: " + std::strerror(e));
    }
    if (::rename(tmp.c_str(), registry_path.c_str()) != 0)
      throw std::runtime_error(registry_path + ": rename: " + std::strerror(errno));
    fresh = true;
  } else {
    ::fchmod(fd, mode);
  }
  registry = ::mmap(nullptr, kRegistrySize, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  ::close(fd);
  if (registry == MAP_FAILED) throw std::runtime_error(registry_path + ": mmap: " + std::strerror(errno));
  reg = registry_view(registry);
  RegistryHeader& h = *reg.header;
  if (fresh) {
    h.magic = kRegistryMagic;
    h.major = kRegistryMajor;
    h.minor = kRegistryMinor;
    h.layout_hash = kRegistryHash;
    h.series_slots = kRegistrySeriesSlots;
    h.consumer_slots = kRegistryConsumerSlots;
    std::strncpy(h.instance, opt.segments.instance.c_str(), kInstanceLen - 1);
  }
  aref(h.writer_pid).store(static_cast<std::uint32_t>(::getpid()), std::memory_order_relaxed);
  aref(h.generation).fetch_add(1, std::memory_order_relaxed);
  // Register our series names (keeping entries, and waiter counts, of a previous run).
  for (const auto& s : series) {
    RegistrySeries* free_slot = nullptr;
    bool found = false;
    for (std::size_t i = 0; i < kRegistrySeriesSlots && !found; ++i) {
      auto& e = reg.series[i];
      if (field_string(e.series_id, kSeriesIdLen) == s.id) found = true;
      else if (!free_slot && e.series_id[0] == '\0') free_slot = &e;
    }
    if (!found) {
      if (!free_slot) throw std::runtime_error(registry_path + ": series table full");
      std::strncpy(free_slot->series_id, s.id.c_str(), kSeriesIdLen - 1);
    }
  }
  aref(h.state).store(static_cast<std::uint32_t>(SegmentState::ready), std::memory_order_release);
}

std::size_t Publisher::Impl::reclaim() {
  std::size_t n = 0;
  for (std::size_t i = 0; i < kRegistryConsumerSlots; ++i) {
    ConsumerSlot& c = reg.consumers[i];
    const std::uint32_t pid = aref(c.pid).load(std::memory_order_acquire);
    if (pid == 0) continue;
    if (platform::process_state(static_cast<pid_t>(pid), load_field(c.start_ticks)) != platform::ProcessState::dead)
      continue;
    // The owner is dead and cannot touch the slot any more: give back its waiter counts, then
    // free the slot (CAS, in case another reclaimer got there first).
    std::uint32_t expected = pid;
    const std::uint64_t waiting = aref(c.waiting).exchange(0, std::memory_order_acq_rel);
    for (std::size_t b = 0; b < kRegistrySeriesSlots; ++b)
      if (waiting & (1ULL << b)) aref(reg.series[b].waiters).fetch_sub(1, std::memory_order_acq_rel);
    if (aref(c.pid).compare_exchange_strong(expected, 0, std::memory_order_acq_rel)) ++n;
  }
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
  prepare_instance_dir(m.opt.segments, notes);  // before anything is opened in it
  const bool own_lock = m.opt.lock_path.empty();
  if (own_lock) m.opt.lock_path = paths::lock(m.opt.segments.shm_dir, m.opt.segments.instance);
  notes.emplace_back();
  m.lock = WriterLock::acquire(m.opt.lock_path, m.opt.segments.instance, own_lock, &notes.back());
  for (const auto& n : notes)
    if (!n.empty()) m.log(LogLevel::warn, n);
  m.open_registry(series);
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
    auto next_reclaim = std::chrono::steady_clock::now();
    while (!m.stop.load()) {
      for (auto& w : m.writers) {
        w.heartbeat();
        // Safety net for publishes whose caller did not call wake_readers() (backfill, repair):
        // their blocked readers wake within one heartbeat instead of their 250 ms slice.
        w.wake_readers();
      }
      if (std::chrono::steady_clock::now() >= next_reclaim) {
        if (const auto n = m.reclaim(); n > 0) m.log(LogLevel::info, "reclaimed " + std::to_string(n) + " dead consumer(s)");
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
  if (m.registry && m.registry != MAP_FAILED) ::munmap(m.registry, kRegistrySize);
}

std::size_t Publisher::size() const { return impl_->writers.size(); }
SegmentWriter& Publisher::at(std::size_t i) { return impl_->writers.at(i); }
SegmentWriter* Publisher::find(std::string_view id) {
  for (auto& w : impl_->writers)
    if (w.spec().id == id) return &w;
  return nullptr;
}
const std::vector<AttachInfo>& Publisher::attach_info() const { return impl_->info; }
std::string Publisher::registry_path() const { return impl_->registry_path; }
std::size_t Publisher::reclaim_dead_consumers() { return impl_->reclaim(); }
std::size_t Publisher::wake_readers() {
  std::size_t n = 0;
  for (auto& w : impl_->writers) n += w.wake_readers() ? 1 : 0;
  return n;
}

}  // namespace mdshm::publish
