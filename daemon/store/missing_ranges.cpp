#include "store/missing_ranges.hpp"

#include <algorithm>

#include "model/market.hpp"

namespace mdshm::store {

std::vector<TimeRange> missing_ranges(std::span<const std::int64_t> present, std::int64_t from_ms,
                                      std::int64_t to_ms, std::uint32_t interval_s) {
  std::vector<TimeRange> out;
  if (interval_s == 0 || from_ms >= to_ms) return out;
  const std::int64_t len = std::int64_t{interval_s} * 1000;
  std::int64_t t = bar_open_ms(from_ms, interval_s);
  if (t < from_ms) t += len;  // first aligned open time inside the range

  auto it = std::lower_bound(present.begin(), present.end(), t);
  while (t < to_ms) {
    while (it != present.end() && *it < t) ++it;
    if (it != present.end() && *it == t) {
      t += len;
      continue;
    }
    // t is missing: the gap runs to the next present open time (or the end of the range).
    const std::int64_t next_present = it == present.end() ? to_ms : std::min(*it, to_ms);
    std::int64_t gap_end = t + ((next_present - t + len - 1) / len) * len;  // first aligned >= next_present
    if (!out.empty() && out.back().to_ms == t)
      out.back().to_ms = gap_end;
    else
      out.push_back({t, gap_end});
    t = gap_end;
  }
  // The last gap ends at one interval past its last missing bar, which may exceed to_ms.
  return out;
}

std::int64_t bars_in(const TimeRange& r, std::uint32_t interval_s) {
  const std::int64_t len = std::int64_t{interval_s} * 1000;
  return interval_s == 0 || r.to_ms <= r.from_ms ? 0 : (r.to_ms - r.from_ms + len - 1) / len;
}

}  // namespace mdshm::store
