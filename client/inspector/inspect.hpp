// What every inspector command shares: finding an instance's segments, reading one segment's
// status, the health rule (check, watch, list) and text formatting.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "mdshm/client.hpp"

namespace mdshm::inspect {

struct Options {
  OpenOptions open;
  bool json = false;
};

// One segment file of the instance, opened if compatible. An incompatible or garbage file keeps
// `error` (code and message) and whatever identity could be read safely.
struct Segment {
  std::string series;                 // from the file name
  std::string path;
  std::optional<Series> handle;       // set iff the segment validated
  Errc error = Errc::ok;
  std::string error_text;
  std::optional<std::uint16_t> layout_major, layout_minor;  // when the magic matched
};

// Every data segment of the instance (the files of mdshm.<instance>/ not starting with @), sorted by series.
std::vector<Segment> scan(const OpenOptions& opt);
// Why nothing of the instance can be seen at all, before any command runs: a --shm-dir that does
// not exist, or an instance directory this account may not read (naming the group to join).
std::optional<std::string> access_problem(const OpenOptions& opt);
// The other instances whose directories are in opt.shm_dir (sorted): a mistyped --instance is
// the usual reason for "no segments".
std::vector<std::string> other_instances(const OpenOptions& opt);
// One series by name; error not_found if there is no file.
Segment open_segment(const OpenOptions& opt, std::string_view series);
// Series ids the writer publishes, from its manifest in the consumers directory (empty if none).
std::vector<std::string> registered_series(const OpenOptions& opt);

// A consistent-enough snapshot of one compatible segment for display.
struct Status {
  std::string symbol;
  std::uint32_t interval_s = 0;
  std::uint64_t capacity = 0, head = 0, bars = 0, updates = 0, generation = 0, amends = 0;
  std::uint32_t writer_pid = 0;
  WriterState writer = WriterState::dead;
  double update_age_s = 0, heartbeat_age_s = 0;
  std::uint16_t layout_major = 0, layout_minor = 0;
  std::int64_t exchange_offset_ms = 0;  // the writer's source clock minus local wall clock
  bool has_latest = false;
  Bar latest{};
  std::uint64_t latest_index = 0;
  // Among the newest kRecentBars bars: how many a gap left not_repaired (REST could not fill it yet).
  std::size_t recent_bars = 0, recent_not_repaired = 0;
  // The history store's health as the writer published it (Stat::store_*).
  StoreState store_state = StoreState::none;
  std::uint64_t store_pending_bars = 0, store_write_errors = 0, store_last_errno = 0;
};
inline constexpr std::size_t kRecentBars = 256;
Status status_of(Series& s);

// Stats that hold a two's complement value (the others are counts and gauges).
inline bool stat_is_signed(Stat s) { return s == Stat::exchange_offset_ms; }

// Health, the exit codes of `mdshm check`.
enum class Health { ok = 0, stale = 1, failed = 2 };
std::string_view to_string(Health h);

struct Problem {
  Health severity = Health::ok;
  std::string series;
  std::string reason;
};

// The freshness rule (docs/OPERATIONS.md, "mdshm check"). Appends the problems of one segment.
// Liveness is the client's rule (Series::writer_state(), what `list` shows): a writer whose
// heartbeat is older than kHeartbeatDeadline is stalled, whatever max_age says.
void judge(const Segment& seg, const Status* st, double max_age_s, std::int64_t now_ms, std::vector<Problem>& out);
Health worst(const std::vector<Problem>& ps);

// --max-age and the like: a finite number of seconds in (0, kMaxAgeLimitS]; otherwise why not.
inline constexpr double kMaxAgeLimitS = 30.0 * 86400;
std::string age_problem(double seconds);

// Consumers of one series, with lag = head - cursor, sorted by name. `listing` (optional) gets
// the whole directory's counts: invalid entries, whether every entry was looked at.
struct ConsumerRow {
  ConsumerInfo info;
  std::uint64_t lag = 0;
};
std::vector<ConsumerRow> consumers_of(const OpenOptions& opt, std::string_view series, std::uint64_t head,
                                      Errc* registry_error = nullptr, ConsumerListing* listing = nullptr);

// ---- formatting ----------------------------------------------------------------------------
std::string iso_time_ms(std::int64_t ms);   // 2022-08-14T00:01:00Z (".123" when not whole seconds)
std::string iso_time_ns(std::uint64_t ns);
std::string interval_name(std::uint32_t seconds);  // 1s 1m 1h 1d 1w, else "<n>s"
std::string flag_names(std::uint32_t flags, char sep = ',');
std::vector<std::string_view> flag_list(std::uint32_t flags);
std::string age_text(double seconds);        // 0.05s, 12s, 3m20s, 2h05m, 1d03h
std::int64_t now_ms();
// Latency percentile (0..1) from the log2 histogram: the upper bound of the bucket that holds it.
std::optional<std::uint64_t> latency_percentile_ns(const SegmentHeader& h, double q);

}  // namespace mdshm::inspect
