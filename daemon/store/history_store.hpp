// The on-disk history of closed bars, one append-only file per series (format: store_format.hpp).
//
// Lifecycle: open() loads and validates the file (cutting a torn tail, skipping corrupt records),
// the daemon publishes the loaded bars, asks missing() which ranges REST must fill, then append()s
// every closed or amended bar. The last record for an open time wins on load. When the file holds
// more than compact_factor x capacity records it is rewritten to the newest `capacity` bars
// (temp file + fsync + rename: a crash leaves either the old or the new file, never a mix).
//
// One writer per file, enforced by flock (a second open fails with EWOULDBLOCK). Not thread-safe:
// one thread owns a HistoryStore. open() throws StoreError; append/flush/compact return Status
// (errors as values: the feed thread decides how to log and count).
//
// Faults heal: a bar whose append fails (ENOSPC, EIO, ...) stays queued in memory (at most
// kMaxPendingBars per series, oldest dropped and counted beyond) and is written, in order, by the
// next append or maybe_sync() once retry_interval has passed and the disk takes it again. A store
// that cannot even be opened (read-only or missing directory, permissions) comes from
// open_or_defer() as "unavailable": it queues bars the same way and retries the open. health()
// says which state the store is in; the daemon publishes it as Stat::store_*.
//
// Damage is kept: records with a bad checksum in the middle of the file, or more than one garbage
// record at its end, are not a torn write but damage (bit rot, a bad sector, a foreign writer). The
// good records are salvaged into a fresh file and the damaged one is kept aside as
// <file>.damaged-<unix seconds> for inspection; only a partial last record, a single garbage last
// record (a torn append) and zero-filled space after the last record are cut.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <span>
#include <stdexcept>
#include <string>
#include <vector>

#include "mdshm/layout.hpp"
#include "store/missing_ranges.hpp"
#include "store/store_format.hpp"

namespace mdshm::store {

enum class FsyncPolicy { never, interval, always };
// What open() does with a file that belongs to another series, interval, format version or build.
enum class MismatchPolicy { refuse, move_aside };

struct StoreOptions {
  std::string dir;                // files go to <dir>/<instance>/<series>.bars (created if absent)
  std::string instance = std::string(kDefaultInstance);
  SeriesIdentity series;
  std::uint64_t capacity = 0;     // bars worth keeping (the segment's capacity); > 0
  FsyncPolicy fsync = FsyncPolicy::interval;
  std::chrono::milliseconds fsync_interval{1000};
  double compact_factor = 2.0;    // compact when records on disk > factor x capacity; 0 disables
  MismatchPolicy on_mismatch = MismatchPolicy::refuse;
  std::chrono::milliseconds retry_interval{1000};  // between attempts while the store is failing
};

// Closed bars a failing store keeps in memory per series (112 bytes each: 7 MiB). More are dropped,
// oldest first, and counted in StoreHealth::lost (REST backfill refills them after a restart).
inline constexpr std::size_t kMaxPendingBars = std::size_t{1} << 16;

// What the daemon publishes about a store (Stat::store_*); reported to the observer on each change.
struct StoreHealth {
  StoreState state = StoreState::ok;
  std::uint64_t pending = 0;          // closed bars waiting to be written
  std::uint64_t errors = 0;           // failed appends, syncs and re-opens since start
  int last_errno = 0;                 // of the newest failure
  std::string last_error;             // its message (path and cause)
  std::uint64_t lost = 0;             // pending bars dropped beyond kMaxPendingBars
  std::uint64_t corrupt_records = 0;  // bad-checksum records found by open (and re-opens)
};

struct StoreStats {
  std::uint64_t loaded = 0;               // distinct bars returned by open()
  std::uint64_t records_read = 0;         // valid records found on open (amends included)
  std::uint64_t torn_tail_bytes_cut = 0;  // partial or invalid trailing bytes truncated on open
  std::uint64_t corrupt_skipped = 0;      // invalid records between valid ones, skipped on open
  std::uint64_t appended = 0;             // records appended since open
  std::uint64_t append_errors = 0;
  std::uint64_t syncs = 0;
  std::uint64_t compactions = 0;
  std::uint64_t records_on_disk = 0;      // current file size in records (valid or not)
};

// Thrown by open(). `sys_errno` is 0 for a format problem (e.g. header of another series).
struct StoreError : std::runtime_error {
  enum class Kind { io, header_mismatch, locked, bad_options };
  StoreError(Kind k, int err, const std::string& what) : std::runtime_error(what), kind(k), sys_errno(err) {}
  Kind kind;
  int sys_errno;
};

// Result of a write-side call. ok() or a message naming the path and the cause ("... : No space
// left on device (ENOSPC)").
struct Status {
  int sys_errno = 0;
  std::string message;
  bool ok() const { return message.empty(); }
  static Status success() { return {}; }
};

std::string store_path(const std::string& dir, const std::string& instance, const std::string& series_id);

class HistoryStore {
 public:
  static HistoryStore open(const StoreOptions& opt);
  // As open(), but an I/O failure (EROFS, EACCES, ENOSPC, EIO, ...) yields an unavailable store that
  // queues appended bars and retries the open every retry_interval instead of throwing. Options,
  // lock and header problems still throw.
  static HistoryStore open_or_defer(const StoreOptions& opt);

  HistoryStore(HistoryStore&&) noexcept;
  HistoryStore& operator=(HistoryStore&&) noexcept;
  HistoryStore(const HistoryStore&) = delete;
  HistoryStore& operator=(const HistoryStore&) = delete;
  ~HistoryStore();  // flushes unless policy is never; errors there are lost, so call flush() first

  // The newest `capacity` distinct bars loaded by open(), ascending by open time, flags as stored
  // (the caller adds flag::from_store). Moved out by take_loaded().
  const std::vector<Bar>& loaded() const { return loaded_; }
  std::vector<Bar> take_loaded() { return std::move(loaded_); }
  // Lines for the log about what open() found and did (torn tail cut, file moved aside, ...).
  const std::vector<std::string>& notes() const { return notes_; }

  // Persists one closed bar (a new one, or an amendment of one already stored). The open time must
  // be aligned to the interval and the values sane, or the bar is refused (it would be dropped on
  // load anyway). May fsync (policy) and compact (size). On error the file is left as it was.
  [[nodiscard]] Status append(const Bar& bar);
  [[nodiscard]] Status append(std::span<const Bar> bars);
  // fdatasync now if anything was appended since the last sync.
  [[nodiscard]] Status flush();
  // For the "interval" policy from a timer: syncs if dirty and the interval has passed since the
  // last sync. `now` is steady_clock time.
  [[nodiscard]] Status maybe_sync(std::chrono::steady_clock::time_point now);
  // Rewrites the file to the newest `capacity` bars now, whatever its size.
  [[nodiscard]] Status compact();

  // Ranges of open times in [from_ms, to_ms) the store holds no bar for (see missing_ranges.hpp).
  std::vector<TimeRange> missing(std::int64_t from_ms, std::int64_t to_ms) const;
  bool contains(std::int64_t open_time_ms) const;
  std::size_t distinct_bars() const { return open_times_.size(); }

  const StoreHealth& health() const { return health_; }
  // Called with the current health now and after every change of it (same thread as the store).
  void observe(std::function<void(const StoreHealth&)> fn);

  const StoreStats& stats() const { return stats_; }
  const std::string& path() const { return path_; }
  const StoreOptions& options() const { return opt_; }

 private:
  HistoryStore() = default;
  void close_() noexcept;
  Status drain_(std::chrono::steady_clock::time_point now, bool force);
  bool reopen_();
  void failed_(int err, const std::string& message);
  void set_health_(StoreState state);
  Status pending_status_() const;
  Status write_records_(const Record* recs, std::size_t n);
  Status sync_();
  Status compact_if_due_();
  void remember_(std::int64_t open_time_ms);

  StoreOptions opt_;
  std::string path_;
  int fd_ = -1;
  std::uint64_t end_offset_ = 0;   // where the next record goes (always header + k x record)
  std::uint64_t next_sequence_ = 0;
  bool dirty_ = false;
  std::chrono::steady_clock::time_point last_sync_{};
  std::vector<std::int64_t> open_times_;  // distinct open times on disk, ascending
  std::vector<Bar> loaded_;
  std::vector<std::string> notes_;
  StoreStats stats_;
  std::deque<Bar> pending_;                         // closed bars not written yet, oldest first
  std::chrono::steady_clock::time_point last_attempt_{};
  StoreHealth health_;
  std::function<void(const StoreHealth&)> observer_;
};

const char* to_string(FsyncPolicy p);

}  // namespace mdshm::store
