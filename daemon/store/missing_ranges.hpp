// Which bars of a time range the store lacks, as half-open ranges of open times, so that REST is
// asked only for the gap ("history already on disk is never fetched again").
#pragma once

#include <cstdint>
#include <span>
#include <vector>

namespace mdshm::store {

struct TimeRange {
  std::int64_t from_ms;  // open time of the first missing bar
  std::int64_t to_ms;    // exclusive: open time of the last missing bar + one interval
  friend bool operator==(const TimeRange&, const TimeRange&) = default;
};

// Bars whose open time t satisfies from_ms <= t < to_ms (t aligned to the interval with
// bar_open_ms) and is absent from `present_open_ms` (sorted ascending; duplicates allowed; times
// outside the range ignored). Ranges come out ascending and maximal (adjacent gaps merged).
std::vector<TimeRange> missing_ranges(std::span<const std::int64_t> present_open_ms, std::int64_t from_ms,
                                      std::int64_t to_ms, std::uint32_t interval_s);

// Number of bars a range covers.
std::int64_t bars_in(const TimeRange& r, std::uint32_t interval_s);

}  // namespace mdshm::store
