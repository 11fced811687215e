// Consumer registration: a named reader announces itself so operators see who reads, how far
// behind (lag = head - cursor) and whether it is alive. Lives in mdshm.<instance>/@registry, apart
// from the data (registry_layout.hpp says why). Entries of dead processes are reclaimed by the
// daemon every second, and by any registering consumer that finds the table full.
#pragma once

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "mdshm/registry_layout.hpp"
#include "mdshm/series.hpp"

namespace mdshm {

namespace detail {
inline std::shared_ptr<void> map_registry(const std::string& path, bool writable, Errc& err) {
  const int fd = ::open(path.c_str(), (writable ? O_RDWR : O_RDONLY) | O_CLOEXEC);
  if (fd < 0) {
    err = errno == ENOENT ? Errc::not_found : (errno == EACCES || errno == EPERM) ? Errc::permission_denied
                                                                                : Errc::io_error;
    return nullptr;
  }
  struct stat st {};
  ::fstat(fd, &st);
  if (st.st_size < static_cast<off_t>(kRegistrySize)) {
    ::close(fd);
    err = Errc::too_small;
    return nullptr;
  }
  void* p = ::mmap(nullptr, kRegistrySize, PROT_READ | (writable ? PROT_WRITE : 0), MAP_SHARED, fd, 0);
  ::close(fd);
  if (p == MAP_FAILED) {
    err = Errc::io_error;
    return nullptr;
  }
  std::shared_ptr<void> m(p, [](void* q) { ::munmap(q, kRegistrySize); });
  if (!registry_valid(p, kRegistrySize)) {
    err = Errc::bad_magic;
    return nullptr;
  }
  err = Errc::ok;
  return m;
}
}  // namespace detail

// What the inspector shows for one registered consumer.
struct ConsumerInfo {
  std::string name;
  std::string series_id;
  pid_t pid = 0;
  bool alive = false;
  std::uint64_t cursor = 0;
  std::uint64_t reads = 0;
  std::uint64_t lapped = 0;
  std::uint64_t last_read_wall_ns = 0;
  bool waiting = false;
};

// Read-only listing for operators.
inline Errc list_consumers(const OpenOptions& opt, std::vector<ConsumerInfo>& out) {
  out.clear();
  Errc err;
  auto m = detail::map_registry(registry_path(opt), false, err);
  if (!m) return err;
  const auto v = registry_view(m.get());
  for (std::size_t i = 0; i < kRegistryConsumerSlots; ++i) {
    const ConsumerSlot& c = v.consumers[i];
    const auto pid = load_field(c.pid, std::memory_order_acquire);
    if (pid == 0) continue;
    ConsumerInfo ci;
    ci.pid = static_cast<pid_t>(pid);
    ci.name = std::string(field_string(c.name, kConsumerNameLen));
    ci.series_id = std::string(field_string(c.series_id, kSeriesIdLen));
    ci.cursor = load_field(c.cursor);
    ci.reads = load_field(c.reads);
    ci.lapped = load_field(c.lapped);
    ci.last_read_wall_ns = load_field(c.last_read_wall_ns);
    ci.waiting = load_field(c.waiting) != 0;
    ci.alive = detail::process_state(ci.pid, load_field(c.start_ticks)) != detail::ProcessState::dead;
    out.push_back(std::move(ci));
  }
  return Errc::ok;
}

// A registered reader of one series: Series + cursor + a registry slot that shows operators
// where it is. poll() returns what arrived since the last call; wait() blocks for more.
class Subscription {
 public:
  static Result<Subscription> open(std::string_view name, std::string_view series_id, const OpenOptions& opt = {}) {
    if (name.empty() || name.size() >= kConsumerNameLen)
      return Error{Errc::invalid_argument, "consumer name must have 1.." + std::to_string(kConsumerNameLen - 1) + " chars"};
    auto s = Series::open(series_id, opt);
    if (!s) return s.error();
    Subscription sub;
    sub.series_ = std::make_unique<Series>(std::move(s.value()));
    Errc err;
    sub.registry_ = detail::map_registry(registry_path(opt), true, err);
    if (!sub.registry_)
      return Error{Errc::registry_unavailable, registry_path(opt) + ": " + std::string(to_string(err)) +
                                                   " (consumers need write access: join the segments' group)"};
    const auto v = registry_view(sub.registry_.get());
    const auto pid = static_cast<std::uint32_t>(::getpid());
    for (int pass = 0; pass < 2 && !sub.slot_; ++pass) {
      for (std::size_t i = 0; i < kRegistryConsumerSlots && !sub.slot_; ++i) {
        std::uint32_t expected = 0;
        if (std::atomic_ref<std::uint32_t>(v.consumers[i].pid).compare_exchange_strong(expected, pid))
          sub.slot_ = &v.consumers[i];
      }
      if (!sub.slot_) reclaim_dead(v);  // table full: free the slots of dead consumers, try again
    }
    if (!sub.slot_) return Error{Errc::registry_full, "no free consumer slot in " + registry_path(opt)};
    ConsumerSlot& c = *sub.slot_;
    auto rl = [](auto& f, auto val) { std::atomic_ref(f).store(val, std::memory_order_relaxed); };
    rl(c.start_ticks, detail::process_start_ticks(::getpid()));
    rl(c.registered_wall_ns, detail::wall_ns());
    rl(c.reads, std::uint64_t{0});
    rl(c.lapped, std::uint64_t{0});
    rl(c.waiting, std::uint64_t{0});
    for (std::size_t i = 0; i < kConsumerNameLen; ++i) rl(c.name[i], i < name.size() ? name[i] : '\0');
    for (std::size_t i = 0; i < kSeriesIdLen; ++i) rl(c.series_id[i], i < series_id.size() ? series_id[i] : '\0');
    // Start at the bar in progress: a new consumer sees what arrives from now on. Call seek() to
    // replay history.
    const std::uint64_t h = sub.series_->head();
    sub.cursor_.next = h > 0 ? h - 1 : 0;
    rl(c.cursor, sub.cursor_.next);
    for (std::size_t i = 0; i < kRegistrySeriesSlots; ++i)
      if (field_string(v.series[i].series_id, kSeriesIdLen) == series_id) sub.series_bit_ = 1ULL << i;
    return sub;
  }

  Subscription(Subscription&& o) noexcept
      : series_(std::move(o.series_)), registry_(std::move(o.registry_)), slot_(std::exchange(o.slot_, nullptr)),
        cursor_(o.cursor_), series_bit_(o.series_bit_) {}
  Subscription& operator=(Subscription&&) = delete;
  ~Subscription() {
    if (slot_) std::atomic_ref<std::uint32_t>(slot_->pid).store(0, std::memory_order_release);
  }

  Series& series() { return *series_; }
  const Cursor& cursor() const { return cursor_; }
  void seek(std::uint64_t next_index) { cursor_.next = next_index; }

  // Bars since the last call (see Series::read_since); updates the registry slot.
  Errc poll(std::span<Bar> out, std::size_t& n) {
    const std::uint64_t lapped_before = cursor_.lapped;
    const Errc e = series_->read_since(cursor_, out, n);
    auto& c = *slot_;
    std::atomic_ref(c.cursor).store(cursor_.next, std::memory_order_relaxed);
    std::atomic_ref(c.reads).fetch_add(1, std::memory_order_relaxed);
    if (cursor_.lapped != lapped_before)
      std::atomic_ref(c.lapped).store(cursor_.lapped, std::memory_order_relaxed);
    std::atomic_ref(c.last_read_wall_ns).store(detail::wall_ns(), std::memory_order_relaxed);
    return e;
  }

  WaitResult wait(std::chrono::nanoseconds timeout) {
    std::atomic_ref(slot_->waiting).fetch_or(series_bit_, std::memory_order_relaxed);
    const auto r = series_->wait(timeout);  // tracks what poll() handed out
    std::atomic_ref(slot_->waiting).fetch_and(~series_bit_, std::memory_order_relaxed);
    seen_ = series_->updates();
    return r;
  }

 private:
  Subscription() = default;
  static void reclaim_dead(const RegistryView& v) {
    for (std::size_t i = 0; i < kRegistryConsumerSlots; ++i) {
      ConsumerSlot& c = v.consumers[i];
      std::uint32_t pid = std::atomic_ref(c.pid).load(std::memory_order_acquire);
      if (pid == 0) continue;
      if (detail::process_state(static_cast<pid_t>(pid), std::atomic_ref(c.start_ticks).load()) !=
          detail::ProcessState::dead)
        continue;
      const std::uint64_t waiting = std::atomic_ref(c.waiting).exchange(0);
      for (std::size_t b = 0; b < kRegistrySeriesSlots; ++b)
        if (waiting & (1ULL << b)) std::atomic_ref(v.series[b].waiters).fetch_sub(1);
      std::atomic_ref(c.pid).compare_exchange_strong(pid, 0);
    }
  }

  std::unique_ptr<Series> series_;
  std::shared_ptr<void> registry_;
  ConsumerSlot* slot_ = nullptr;
  Cursor cursor_;
  std::uint64_t series_bit_ = 0;
  std::uint64_t seen_ = 0;
};

}  // namespace mdshm
