// The universal snapshot: the five series the models were built around, read together.
//
//   auto u = mdshm::Universal::open();                 // eth_ticks, eth_1m, eth_1h, eth_1d, btc_ticks
//   mdshm::UniversalSnapshot snap;
//   u->snapshot(snap, 300);                            // 300 newest bars of each
//   snap.eth_1m.rows  -> [timestamp_ms, open, high, low, close, volume] * n, row-major doubles
//
// Rows are flat double arrays (6 per bar), so a Python binding can hand them to numpy as (n, 6)
// without copying. Buffers are reused between calls: no allocation once warm.
#pragma once

#include <array>
#include <string>
#include <vector>

#include "mdshm/series.hpp"

namespace mdshm {

inline constexpr std::array<std::string_view, 5> kUniversalSeries = {"eth_ticks", "eth_1m", "eth_1h", "eth_1d",
                                                                     "btc_ticks"};
inline constexpr std::size_t kRowWidth = 6;  // timestamp_ms, open, high, low, close, volume

struct SeriesMeta {
  Errc status = Errc::not_found;  // ok, or why this series has no rows
  bool fresh = false;             // writer alive and updated within the snapshot's max_age
  WriterState writer = WriterState::dead;
  double update_age_s = 0;
  double heartbeat_age_s = 0;
  std::uint64_t generation = 0;
  std::size_t bars = 0;           // rows returned
  std::size_t missing = 0;        // intervals absent between the rows (should be 0)
  std::size_t not_repaired = 0;   // rows flagged not_repaired
  bool complete = false;          // bars == window requested, no missing, none unrepaired
};

struct SeriesRows {
  std::string id;
  std::vector<double> rows;       // kRowWidth doubles per bar, oldest first
  std::vector<std::uint32_t> flags;
  SeriesMeta meta;
  std::size_t size() const { return rows.size() / kRowWidth; }
  const double* row(std::size_t i) const { return rows.data() + i * kRowWidth; }
};

struct UniversalSnapshot {
  SeriesRows eth_ticks, eth_1m, eth_1h, eth_1d, btc_ticks;
  std::int64_t timestamp_ns = 0;  // CLOCK_REALTIME when the snapshot was taken
  bool all_fresh = false;
  bool all_complete = false;
  SeriesRows* begin() { return &eth_ticks; }
  SeriesRows* end() { return &btc_ticks + 1; }
  SeriesRows& operator[](std::size_t i) { return begin()[i]; }
};

class Universal {
 public:
  // Opens the five series; ones that are missing are reported per series at snapshot time (and
  // re-tried then), so a model can start before the daemon.
  static Universal open(const OpenOptions& opt = {}) {
    Universal u;
    u.opt_ = opt;
    for (std::size_t i = 0; i < kUniversalSeries.size(); ++i) u.try_open_(i);
    return u;
  }

  Errc snapshot(UniversalSnapshot& out, std::size_t window = 300,
                std::chrono::nanoseconds max_age = std::chrono::seconds(5)) {
    out.timestamp_ns = static_cast<std::int64_t>(detail::wall_ns());
    out.all_fresh = out.all_complete = true;
    scratch_.resize(window);
    for (std::size_t i = 0; i < kUniversalSeries.size(); ++i) {
      SeriesRows& r = out[i];
      r.id = kUniversalSeries[i];
      // No clear(): fill_ overwrites every element, and resize() to the same size then costs
      // nothing, where clear() + resize() zero-filled 14 KB per series on every snapshot.
      r.meta = SeriesMeta{};
      if (!series_[i]) try_open_(i);
      if (!series_[i]) {
        r.rows.clear();
        r.flags.clear();
        r.meta.status = open_err_[i];
        out.all_fresh = out.all_complete = false;
        continue;
      }
      Series& s = *series_[i];
      std::size_t n = 0;
      r.meta.status = s.last_n(std::span<Bar>(scratch_.data(), window), n);
      fill_(r, s, n, window, max_age);
      out.all_fresh = out.all_fresh && r.meta.fresh;
      out.all_complete = out.all_complete && r.meta.complete;
    }
    return Errc::ok;
  }

  Series* series(std::size_t i) { return series_[i] ? &*series_[i] : nullptr; }

 private:
  void try_open_(std::size_t i) {
    auto r = Series::open(kUniversalSeries[i], opt_);
    if (r) series_[i].emplace(std::move(r.value()));
    else open_err_[i] = r.error().code;
  }

  void fill_(SeriesRows& r, Series& s, std::size_t n, std::size_t window, std::chrono::nanoseconds max_age) {
    r.rows.resize(n * kRowWidth);
    r.flags.resize(n);
    const std::int64_t step = std::int64_t{s.interval_s()} * 1000;
    for (std::size_t k = 0; k < n; ++k) {
      const Bar& b = scratch_[k];
      double* row = r.rows.data() + k * kRowWidth;
      row[0] = static_cast<double>(b.open_time_ms);
      row[1] = b.open;
      row[2] = b.high;
      row[3] = b.low;
      row[4] = b.close;
      row[5] = b.volume;
      r.flags[k] = b.flags;
      if (b.flags & flag::not_repaired) ++r.meta.not_repaired;
      if (k > 0 && step > 0) {
        const std::int64_t gap = b.open_time_ms - scratch_[k - 1].open_time_ms;
        if (gap > step) r.meta.missing += static_cast<std::size_t>(gap / step - 1);
      }
    }
    r.meta.bars = n;
    r.meta.writer = s.writer_state();
    r.meta.update_age_s = std::chrono::duration<double>(s.update_age()).count();
    r.meta.heartbeat_age_s = std::chrono::duration<double>(s.heartbeat_age()).count();
    r.meta.generation = s.generation();
    r.meta.fresh = r.meta.writer == WriterState::alive && s.update_age() <= max_age;
    r.meta.complete = n == window && r.meta.missing == 0 && r.meta.not_repaired == 0;
  }

  OpenOptions opt_;
  std::array<std::optional<Series>, kUniversalSeries.size()> series_;
  std::array<Errc, kUniversalSeries.size()> open_err_{};
  std::vector<Bar> scratch_;
};

}  // namespace mdshm
