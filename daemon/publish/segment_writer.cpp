#include "publish/segment_writer.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <system_error>
#include <utility>
#include <vector>

#include "mdshm/platform/file_trust.hpp"
#include "mdshm/paths.hpp"
#include "mdshm/platform/futex.hpp"
#include "mdshm/platform/proc.hpp"
#include "mdshm/seqlock.hpp"
#include "publish/instance_dir.hpp"

namespace mdshm::publish {
namespace {

[[noreturn]] void fail(const std::string& path, const std::string& what, int err = 0) {
  std::string msg = path + ": " + what;
  if (err) msg += ": " + std::generic_category().message(err);
  throw std::runtime_error(msg);
}

template <class T>
void store_rel(T& field, T v) {
  std::atomic_ref<T>(field).store(v, std::memory_order_release);
}
template <class T>
void store_rlx(T& field, T v) {
  std::atomic_ref<T>(field).store(v, std::memory_order_relaxed);
}

void copy_name(char* dst, std::size_t len, std::string_view s) {
  std::memset(dst, 0, len);
  std::memcpy(dst, s.data(), std::min(s.size(), len - 1));
}

void validate_spec(const SegmentOptions& opt, const SeriesSpec& s) {
  if (!valid_series_id(s.id)) throw std::runtime_error("series id '" + s.id + "' invalid: use [a-z0-9_], < 32 chars");
  if (!valid_instance(opt.instance))
    throw std::runtime_error("instance '" + opt.instance + "' invalid: use [A-Za-z0-9_-], < 32 chars");
  if (s.symbol.empty() || s.symbol.size() >= kSymbolLen)
    throw std::runtime_error("series " + s.id + ": symbol '" + s.symbol + "' must have 1..15 characters");
  if (s.interval_s == 0) throw std::runtime_error("series " + s.id + ": interval must be > 0");
  if (s.capacity == 0 || s.capacity > kMaxCapacity)
    throw std::runtime_error("series " + s.id + ": capacity must be 1.." + std::to_string(kMaxCapacity));
  if (opt.mode & 0022) throw std::runtime_error("segment mode must not be group- or world-writable");
  if (s.source_kind.size() >= kSourceKindLen || s.source_endpoint.size() >= kSourceEndpointLen)
    throw std::runtime_error("series " + s.id + ": source kind or endpoint too long");
}

// Why an existing segment cannot be re-attached; empty if it can.
std::string incompatibility(const SegmentHeader& h, std::uint64_t file_size, const SeriesSpec& s) {
  if (file_size < kHeaderSize) return "file smaller than a header (" + std::to_string(file_size) + " bytes)";
  if (h.magic != kMagic) return "bad magic";
  if (h.layout_major != kLayoutMajor)
    return "layout major " + std::to_string(h.layout_major) + " != " + std::to_string(kLayoutMajor);
  if (h.layout_hash != kLayoutHash) return "layout hash differs";
  if (h.arch != static_cast<std::uint32_t>(kThisArch) || h.endian_tag != kEndianTag) return "other architecture";
  if (h.header_size != kHeaderSize || h.record_size != kRecordSize || h.ring_offset != kHeaderSize)
    return "header/record size differs";
  if (h.capacity != s.capacity)
    return "capacity " + std::to_string(h.capacity) + " != configured " + std::to_string(s.capacity);
  if (h.interval_s != s.interval_s)
    return "interval " + std::to_string(h.interval_s) + "s != configured " + std::to_string(s.interval_s) + "s";
  if (field_string(h.symbol, kSymbolLen) != s.symbol)
    return "symbol " + std::string(field_string(h.symbol, kSymbolLen)) + " != configured " + s.symbol;
  if (field_string(h.series_id, kSeriesIdLen) != s.id) return "series id differs";
  if (file_size != segment_size(h.capacity)) return "file size does not match capacity";
  if (h.generation == 0) return "never finished initialising";
  if (!s.source_kind.empty()) {
    const auto kind = field_string(h.source_kind, kSourceKindLen);
    const auto endpoint = field_string(h.source_endpoint, kSourceEndpointLen);
    if (kind.empty()) return "segment records no source (written before layout 2.0): its bars may be made up";
    if (kind != s.source_kind || endpoint != s.source_endpoint || field_string(h.source_symbol, kSourceSymbolLen) != s.symbol)
      return "source " + std::string(kind) + " " + std::string(endpoint) + " != configured " + s.source_kind + " " +
             s.source_endpoint;
  }
  return {};
}

void stamp_writer(SegmentHeader& h) {
  const pid_t pid = ::getpid();
  store_rlx(h.writer_pid, static_cast<std::uint32_t>(pid));
  store_rlx(h.writer_start_ticks, platform::process_start_ticks(pid));
  store_rlx(h.writer_start_wall_ns, platform::wall_ns());
  const auto id = platform::boot_id();
  for (std::size_t i = 0; i < kBootIdLen; ++i) store_rlx(h.boot_id[i], id[i]);
  store_rlx(h.heartbeat_mono_ns, platform::mono_ns());
  store_rlx(h.heartbeat_wall_ns, platform::wall_ns());
}

void* map_rw(int fd, std::size_t size, const std::string& path) {
  void* p = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (p == MAP_FAILED) fail(path, "mmap", errno);
  return p;
}

}  // namespace

std::string segment_path(const SegmentOptions& opt, std::string_view series_id) {
  return paths::segment(opt.shm_dir, opt.instance, series_id);
}

SegmentWriter SegmentWriter::open(const SegmentOptions& opt, const SeriesSpec& spec, AttachInfo* info) {
  validate_spec(opt, spec);
  std::vector<std::string> notes;  // the Publisher verified the directory first and logged these
  prepare_instance_dir(opt, notes);
  AttachInfo local;
  AttachInfo& out = info ? *info : local;
  out = {};
  SegmentWriter w;
  w.spec_ = spec;
  w.path_ = segment_path(opt, spec.id);
  const std::size_t size = segment_size(spec.capacity);

  // --- try to re-attach ----------------------------------------------------------------------
  // Only a file we own and nobody else may write is mapped at all: another account could shrink
  // it under us (SIGBUS) or write bars into it. O_NONBLOCK: a FIFO at the name must not hang us.
  int old_fd = ::open(w.path_.c_str(), O_RDWR | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
  int retire_fd = -1;  // a trusted, incompatible segment: retired once its replacement is in place
  if (old_fd < 0 && errno == ELOOP) {
    struct stat lst {};
    out.outcome = AttachOutcome::replaced;
    out.reason = "not trusted: a symbolic link" +
                 (::lstat(w.path_.c_str(), &lst) == 0 ? " owned by " + platform::describe_uid(lst.st_uid) : std::string());
  } else if (old_fd >= 0) {
    struct stat st {};
    ::fstat(old_fd, &st);
    const auto file_size = static_cast<std::uint64_t>(st.st_size);
    std::string why;
    if (const auto distrust = platform::untrusted_reason(st, ::geteuid()); !distrust.empty())
      why = "not trusted: " + distrust;
    else if (file_size < kHeaderSize) why = "file smaller than a header (" + std::to_string(file_size) + " bytes)";
    if (why.empty()) {
      auto* h = static_cast<SegmentHeader*>(map_rw(old_fd, kHeaderSize, w.path_));
      why = incompatibility(*h, file_size, spec);
      if (!why.empty() && h->magic == kMagic) retire_fd = ::dup(old_fd);
      ::munmap(h, kHeaderSize);
    }
    if (why.empty()) {
      ::fchmod(old_fd, opt.mode);
      if (opt.group != static_cast<gid_t>(-1) && ::fchown(old_fd, static_cast<uid_t>(-1), opt.group) != 0)
        fail(w.path_, "fchown to group " + std::to_string(opt.group), errno);
      w.hdr_ = static_cast<SegmentHeader*>(map_rw(old_fd, size, w.path_));
      ::close(old_fd);
      w.map_size_ = size;
      w.ring_ = ring_of(w.hdr_);
      SegmentHeader& h = *w.hdr_;
      store_rel(h.state, static_cast<std::uint32_t>(SegmentState::creating));
      // Repair what a killed writer may have left half-written: a slot with an odd sequence.
      w.head_ = h.head;
      for (std::uint64_t i = 0; i < spec.capacity; ++i) {
        BarSlot& s = w.ring_[i];
        if (s.seq & 1) {
          std::uint64_t li = 0;
          Bar lb{};
          // Readers of the old generation may still be copying: write through the atomics too.
          if (!(seqlock::try_read_latch(h.latch_seq, h.latch, li, lb) && li == s.bar_index)) {
            lb = s.bar;
            lb.flags |= flag::not_repaired;  // torn by the crash: values of two versions of one bar
          }
          seqlock::store_words(s.bar, lb);
          store_rel(s.seq, s.seq + 1);
        }
      }
      // Also make the latch sequence even-consistent (a writer killed between its two steps).
      if (w.head_ > 0) {
        const BarSlot& newest = w.ring_[(w.head_ - 1) % spec.capacity];
        if (newest.bar_index == w.head_ - 1) {
          w.newest_open_ms_ = newest.bar.open_time_ms;
          seqlock::write_latch(h.latch_seq, h.latch, w.head_ - 1, newest.bar, h.updates);
        } else {
          w.head_ = 0;  // ring inconsistent with head: start empty rather than serve a wrong bar
          store_rel(h.head, std::uint64_t{0});
        }
      }
      stamp_writer(h);
      const std::uint64_t gen = h.generation + 1;
      store_rel(h.generation, gen);
      store_rel(h.state, static_cast<std::uint32_t>(SegmentState::ready));
      out.outcome = AttachOutcome::reattached;
      out.generation = gen;
      out.bars_kept = std::min<std::uint64_t>(w.head_, spec.capacity);
      return w;
    }
    ::close(old_fd);
    out.outcome = AttachOutcome::replaced;
    out.reason = why;
  } else if (errno != ENOENT) {
    fail(w.path_, "open existing segment", errno);
  }
  // A trusted but incompatible old segment is retired only once its replacement is reserved and
  // in place: a full /dev/shm leaves readers the old segment, not a retired one.
  struct OldSegment {
    int fd;
    ~OldSegment() {
      if (fd >= 0) ::close(fd);
    }
    void retire() const {
      if (fd < 0) return;
      void* p = ::mmap(nullptr, kHeaderSize, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
      if (p == MAP_FAILED) return;
      store_rel(static_cast<SegmentHeader*>(p)->state, static_cast<std::uint32_t>(SegmentState::retired));
      ::munmap(p, kHeaderSize);
    }
  } const old{retire_fd};

  // --- create under a temporary name, publish with rename ------------------------------------
  // Readers never see a half-initialised file at the series' path: they see either the old
  // (retired) segment, nothing, or the new one in state ready.
  const std::string tmp = paths::segment_temp(opt.shm_dir, opt.instance, spec.id);
  ::unlink(tmp.c_str());
  const int fd = ::open(tmp.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, opt.mode);
  if (fd < 0) fail(tmp, "create segment", errno);
  auto cleanup = [&] { ::close(fd); ::unlink(tmp.c_str()); };
  if (::fchmod(fd, opt.mode) != 0) { const int e = errno; cleanup(); fail(tmp, "fchmod", e); }
  if (opt.group != static_cast<gid_t>(-1) && ::fchown(fd, static_cast<uid_t>(-1), opt.group) != 0) {
    const int e = errno; cleanup(); fail(tmp, "fchown to group " + std::to_string(opt.group), e);
  }
  // posix_fallocate reserves the pages now: a full /dev/shm is this clean error, not a SIGBUS later.
  if (const int e = ::posix_fallocate(fd, 0, static_cast<off_t>(size)); e != 0) {
    cleanup();
    fail(tmp, "reserve " + std::to_string(size) + " bytes (is /dev/shm full?" +
                  std::string(old.fd >= 0 ? " The old segment stays readable)" : ")"), e);
  }
  void* base = nullptr;
  try { base = map_rw(fd, size, tmp); } catch (...) { cleanup(); throw; }
  ::close(fd);
  w.hdr_ = static_cast<SegmentHeader*>(base);
  w.map_size_ = size;
  w.ring_ = ring_of(w.hdr_);
  SegmentHeader& h = *w.hdr_;
  h.magic = kMagic;
  h.layout_major = kLayoutMajor;
  h.layout_minor = kLayoutMinor;
  h.state = static_cast<std::uint32_t>(SegmentState::creating);
  h.layout_hash = kLayoutHash;
  h.header_size = kHeaderSize;
  h.record_size = kRecordSize;
  h.arch = static_cast<std::uint32_t>(kThisArch);
  h.endian_tag = kEndianTag;
  h.capacity = spec.capacity;
  h.interval_s = spec.interval_s;
  h.ring_offset = kHeaderSize;
  copy_name(h.symbol, kSymbolLen, spec.symbol);
  copy_name(h.series_id, kSeriesIdLen, spec.id);
  copy_name(h.instance, kInstanceLen, opt.instance);
  copy_name(h.source_kind, kSourceKindLen, spec.source_kind);
  copy_name(h.source_endpoint, kSourceEndpointLen, spec.source_endpoint);
  copy_name(h.source_symbol, kSourceSymbolLen, spec.source_kind.empty() ? std::string() : spec.symbol);
  h.created_wall_ns = platform::wall_ns();
  for (std::uint64_t i = 0; i < spec.capacity; ++i) w.ring_[i].bar_index = kEmptySlot;
  h.latch[0].bar_index = h.latch[1].bar_index = kEmptySlot;
  stamp_writer(h);
  h.generation = 1;
  store_rel(h.state, static_cast<std::uint32_t>(SegmentState::ready));
  if (::rename(tmp.c_str(), w.path_.c_str()) != 0) {
    const int e = errno;
    ::unlink(tmp.c_str());
    fail(w.path_, "rename new segment into place", e);
  }
  old.retire();  // readers that still map it re-open by name and find the new one
  if (out.outcome != AttachOutcome::replaced) out.outcome = AttachOutcome::created;
  out.generation = 1;
  return w;
}

SegmentWriter::SegmentWriter(SegmentWriter&& o) noexcept { *this = std::move(o); }

SegmentWriter& SegmentWriter::operator=(SegmentWriter&& o) noexcept {
  if (this != &o) {
    close_();
    spec_ = std::move(o.spec_);
    path_ = std::move(o.path_);
    hdr_ = std::exchange(o.hdr_, nullptr);
    ring_ = std::exchange(o.ring_, nullptr);
    map_size_ = std::exchange(o.map_size_, 0);
    head_ = o.head_;
    newest_open_ms_ = o.newest_open_ms_;
    dirty_ = o.dirty_;
  }
  return *this;
}

SegmentWriter::~SegmentWriter() { close_(); }

void SegmentWriter::close_() {
  if (hdr_) ::munmap(hdr_, map_size_);
  hdr_ = nullptr;
}

bool SegmentWriter::publish(const Bar& bar) {
  const bool have = head_ > 0;
  if (have && bar.open_time_ms < newest_open_ms_) return false;
  const bool same = have && bar.open_time_ms == newest_open_ms_;
  const std::uint64_t idx = same ? head_ - 1 : head_;
  Bar b = bar;
  if (b.update_wall_ns == 0) b.update_wall_ns = static_cast<std::int64_t>(platform::wall_ns());
  seqlock::write_slot(ring_[idx % spec_.capacity], idx, b);
  SegmentHeader& h = *hdr_;
  seqlock::write_latch(h.latch_seq, h.latch, idx, b, h.updates + 1);  // announce_ makes it so
  if (!same) {
    head_ = idx + 1;
    newest_open_ms_ = b.open_time_ms;
    store_rel(h.head, head_);
  }
  announce_(static_cast<std::uint64_t>(b.update_wall_ns));
  return true;
}

// Tells readers a publish happened: times, the spin counter and the futex word; marks the
// segment for the next wake_readers(). Stores only: nothing a reader can write is read here.
void SegmentWriter::announce_(std::uint64_t wall_ns) {
  SegmentHeader& h = *hdr_;
  store_rlx(h.last_update_mono_ns, platform::mono_ns());
  store_rlx(h.last_update_wall_ns, wall_ns);
  const std::uint64_t n = h.updates + 1;
  store_rel(h.updates, n);
  // After `updates`: a reader that loads the word (acquire) and then `updates` sees the new
  // count whenever it saw the new word, so it cannot sleep on a word that already moved.
  store_rel(h.futex_word, static_cast<std::uint32_t>(n));
  // Release pairs with wake_readers()' exchange, possibly on another thread: whoever clears the
  // flag this store set issues its FUTEX_WAKE after the word above changed. A plain store, not
  // an RMW: the flag is daemon-private memory and costs nothing next to the seqlock writes.
  std::atomic_ref<std::uint32_t>(dirty_).store(1, std::memory_order_release);
}

bool SegmentWriter::wake_readers() {
  std::atomic_ref<std::uint32_t> dirty(dirty_);
  if (dirty.load(std::memory_order_relaxed) == 0) return false;
  if (dirty.exchange(0, std::memory_order_acq_rel) == 0) return false;
  platform::futex_wake_shared(&hdr_->futex_word, 1);
  return true;
}

bool SegmentWriter::amend(std::uint64_t bar_index, const Bar& bar) {
  if (bar_index >= head_ || bar_index + spec_.capacity < head_) return false;
  BarSlot& slot = ring_[bar_index % spec_.capacity];
  if (slot.bar_index != bar_index || slot.bar.open_time_ms != bar.open_time_ms) return false;
  Bar b = bar;
  if (b.update_wall_ns == 0) b.update_wall_ns = static_cast<std::int64_t>(platform::wall_ns());
  SegmentHeader& h = *hdr_;
  // Count first: a zero-copy view that overlaps this write sees `amends` change and is rejected.
  std::atomic_ref<std::uint64_t>(h.amends).fetch_add(1, std::memory_order_seq_cst);
  seqlock::write_slot(slot, bar_index, b);
  if (bar_index + 1 == head_) seqlock::write_latch(h.latch_seq, h.latch, bar_index, b, h.updates + 1);
  announce_(static_cast<std::uint64_t>(b.update_wall_ns));
  return true;
}

std::uint64_t SegmentWriter::head() const { return head_; }

std::optional<Bar> SegmentWriter::bar_at(std::uint64_t bar_index) const {
  if (bar_index >= head_ || bar_index + spec_.capacity < head_) return std::nullopt;
  const BarSlot& slot = ring_[bar_index % spec_.capacity];
  if (slot.bar_index != bar_index) return std::nullopt;
  return slot.bar;  // only the writer thread writes the ring: its own reads cannot race
}

std::optional<Bar> SegmentWriter::newest() const {
  if (head_ == 0) return std::nullopt;
  return bar_at(head_ - 1);
}

void SegmentWriter::heartbeat() {
  store_rlx(hdr_->heartbeat_mono_ns, platform::mono_ns());
  store_rlx(hdr_->heartbeat_wall_ns, platform::wall_ns());
}

void SegmentWriter::add_stat(Stat s, std::uint64_t n) {
  std::atomic_ref<std::uint64_t>(hdr_->stats[static_cast<std::size_t>(s)]).fetch_add(n, std::memory_order_relaxed);
}
void SegmentWriter::set_stat(Stat s, std::uint64_t v) { store_rlx(hdr_->stats[static_cast<std::size_t>(s)], v); }
std::uint64_t SegmentWriter::stat(Stat s) const { return load_field(hdr_->stats[static_cast<std::size_t>(s)]); }

std::size_t latency_bucket(std::uint64_t ns) {
  return std::min<std::size_t>(kLatencyBuckets - 1, 63 - std::countl_zero(ns | 1));
}

namespace {
void raise_max(std::uint64_t& field, std::uint64_t v) {
  std::atomic_ref<std::uint64_t> mx(field);
  std::uint64_t cur = mx.load(std::memory_order_relaxed);
  while (v > cur && !mx.compare_exchange_weak(cur, v, std::memory_order_relaxed)) {}
}
}  // namespace

void SegmentWriter::record_latency(std::uint64_t ns) {
  std::atomic_ref<std::uint64_t>(hdr_->latency_hist[latency_bucket(ns)]).fetch_add(1, std::memory_order_relaxed);
  add_stat(Stat::latency_count);
  add_stat(Stat::latency_sum_ns, ns);
  raise_max(hdr_->stats[static_cast<std::size_t>(Stat::latency_max_ns)], ns);
}

void SegmentWriter::flush(StatBatch& b) {
  if (b.empty()) return;
  for (std::uint32_t bits = b.touched; bits; bits &= bits - 1) {
    const auto i = static_cast<std::size_t>(std::countr_zero(bits));
    add_stat(static_cast<Stat>(i), b.add[i]);
  }
  if (b.latency) {
    for (std::size_t i = 0; i < kLatencyBuckets; ++i)
      if (b.hist[i]) std::atomic_ref<std::uint64_t>(hdr_->latency_hist[i]).fetch_add(b.hist[i], std::memory_order_relaxed);
    raise_max(hdr_->stats[static_cast<std::size_t>(Stat::latency_max_ns)], b.latency_max_ns);
  }
  b = StatBatch{};
}

std::uint64_t SegmentWriter::generation() const { return load_field(hdr_->generation); }

}  // namespace mdshm::publish
