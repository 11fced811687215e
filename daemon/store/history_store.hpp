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
#pragma once

#include <chrono>
#include <cstdint>
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

  const StoreStats& stats() const { return stats_; }
  const std::string& path() const { return path_; }
  const StoreOptions& options() const { return opt_; }

 private:
  HistoryStore() = default;
  void close_() noexcept;
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
};

const char* to_string(FsyncPolicy p);

}  // namespace mdshm::store
