// The writer side of one series segment. Single writer per instance (see writer_lock.hpp); not
// thread-safe for publish/amend (one feed thread), while heartbeat() and the stat counters may be
// called from any thread.
#pragma once

#include <sys/types.h>

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <utility>

#include "mdshm/layout.hpp"

namespace mdshm::publish {

struct SeriesSpec {
  // Constructors rather than an aggregate, so {id, symbol, interval, capacity} stays complete.
  SeriesSpec() = default;
  SeriesSpec(std::string id_, std::string symbol_, std::uint32_t interval_s_, std::uint64_t capacity_,
             std::string source_kind_ = {}, std::string source_endpoint_ = {})
      : id(std::move(id_)), symbol(std::move(symbol_)), interval_s(interval_s_), capacity(capacity_),
        source_kind(std::move(source_kind_)), source_endpoint(std::move(source_endpoint_)) {}
  std::string id;          // series id, e.g. "eth_ticks"
  std::string symbol;      // exchange symbol, upper case, e.g. "ETHUSDT"
  std::uint32_t interval_s = 0;
  std::uint64_t capacity = 0;
  // Where the bars come from (layout.hpp lines 13-14). A segment recorded with another source is
  // replaced, never re-attached. Empty kind: not recorded and not checked (test writers).
  std::string source_kind;      // "binance", "synthetic"
  std::string source_endpoint;  // e.g. the WebSocket URL, or the synthetic seed
};

struct SegmentOptions {
  std::string shm_dir = std::string(kDefaultShmDir);
  std::string instance = std::string(kDefaultInstance);
  mode_t mode = 0640;      // never world-writable: open() refuses o+w
  gid_t group = static_cast<gid_t>(-1);  // -1 = keep the creator's group
};

enum class AttachOutcome { created, reattached, replaced };

struct AttachInfo {
  AttachOutcome outcome = AttachOutcome::created;
  std::string reason;          // why a segment was replaced (for the log)
  std::uint64_t generation = 0;
  std::uint64_t bars_kept = 0; // bars held after a re-attach
};

std::string segment_path(const SegmentOptions& opt, std::string_view series_id);

// Which latency_hist bucket a sample falls in: floor(log2(ns)), the last bucket open-ended.
std::size_t latency_bucket(std::uint64_t ns);

// Counters of one thread, applied to a segment header by SegmentWriter::flush() in one call. The
// hot path adds here (plain memory of its own) instead of doing ~5 atomic read-modify-writes on
// the shared header per trade and series; readers see the sums at the next flush.
struct StatBatch {
  std::array<std::uint64_t, kStatSlots> add{};
  std::array<std::uint64_t, kLatencyBuckets> hist{};
  std::uint64_t latency_max_ns = 0;
  std::uint32_t touched = 0;  // bit per Stat slot with a non-zero add
  bool latency = false;       // some hist bucket is non-zero

  void add_stat(Stat s, std::uint64_t n = 1) {
    const auto i = static_cast<std::size_t>(s);
    add[i] += n;
    touched |= std::uint32_t{1} << i;
  }
  void record_latency(std::uint64_t ns) {
    ++hist[latency_bucket(ns)];
    add_stat(Stat::latency_count);
    add_stat(Stat::latency_sum_ns, ns);
    if (ns > latency_max_ns) latency_max_ns = ns;
    latency = true;
  }
  bool empty() const { return touched == 0 && !latency; }
};
static_assert(kStatSlots <= 32, "StatBatch::touched has one bit per slot");

class SegmentWriter {
 public:
  // Create, re-attach (compatible segment: bars kept, generation bumped) or replace (incompatible:
  // old file marked retired where possible, unlinked, a new one created; info->reason says why).
  // Throws std::runtime_error naming the path and the cause (ENOSPC from posix_fallocate, EACCES…).
  static SegmentWriter open(const SegmentOptions& opt, const SeriesSpec& spec, AttachInfo* info = nullptr);

  SegmentWriter(SegmentWriter&&) noexcept;
  SegmentWriter& operator=(SegmentWriter&&) noexcept;
  SegmentWriter(const SegmentWriter&) = delete;
  SegmentWriter& operator=(const SegmentWriter&) = delete;
  ~SegmentWriter();

  // Update the newest bar in place (same open_time_ms) or start the next bar (later open time).
  // An older open time changes nothing and returns false. O(1), no syscall: blocked readers are
  // woken by wake_readers(), which the caller runs once per batch.
  bool publish(const Bar& bar);
  // Rewrite a bar still held in the ring with the same open time (reconciliation); bumps `amends`.
  bool amend(std::uint64_t bar_index, const Bar& bar);

  // Wakes the readers blocked on this segment if anything was published since the last call:
  // one FUTEX_WAKE of ONE sleeper, which wakes the others before it returns (see Series::wait),
  // so the cost here does not grow with the number of readers and no reader-writable memory is
  // read. Without anything published it is a load. Any thread: the feed thread calls it after
  // each batch of socket reads, the heartbeat thread every 50 ms for callers that forget.
  // Returns true if it made the syscall.
  bool wake_readers();

  std::uint64_t head() const;                          // newest bar index + 1 (0 = empty)
  std::optional<Bar> newest() const;
  std::optional<Bar> bar_at(std::uint64_t bar_index) const;  // nullopt if not (or no longer) held

  void heartbeat();                                    // any thread
  void add_stat(Stat s, std::uint64_t n = 1);          // any thread
  void set_stat(Stat s, std::uint64_t v);              // any thread
  std::uint64_t stat(Stat s) const;
  void record_latency(std::uint64_t ns);               // event -> publish, any thread
  // Applies `batch` to the header (one atomic add per touched counter and bucket, the max kept)
  // and empties it. Any thread; the batch belongs to the caller.
  void flush(StatBatch& batch);

  const SeriesSpec& spec() const { return spec_; }
  const std::string& path() const { return path_; }
  std::uint64_t generation() const;
  SegmentHeader* header() { return hdr_; }
  const SegmentHeader* header() const { return hdr_; }

 private:
  SegmentWriter() = default;
  void close_();
  void announce_(std::uint64_t wall_ns);

  SeriesSpec spec_;
  std::string path_;
  SegmentHeader* hdr_ = nullptr;
  BarSlot* ring_ = nullptr;
  std::size_t map_size_ = 0;
  std::uint64_t head_ = 0;          // writer's own copy of hdr_->head
  std::int64_t newest_open_ms_ = 0;
  std::uint32_t dirty_ = 0;         // 1: published since the last wake_readers() (atomic_ref)
};

}  // namespace mdshm::publish
