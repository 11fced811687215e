// mdshm::adapter — the Universal Data Adapter: model-ready windows cut from bars at a point in time.
//
//   std::vector<mdshm::adapter::SeriesInput> in = {{"eth_1m", 60, bars_1m}, {"eth_1h", 3600, bars_1h}};
//   mdshm::adapter::Options o;  o.window = 300;  o.as_of_ms = t;  o.price = PriceNorm::relative;
//   mdshm::adapter::Output out;
//   mdshm::adapter::build(in, o, out);     // out.tensor: [series][feature][time] float32, out.mask
//
// Point in time. Every series is cut at the same `as_of_ms` (exchange time): slot T-1 holds the bar
// that closed last by as_of (open + interval <= as_of), slot T-1-k the one k intervals earlier. A
// bar that closes after as_of never enters, so the output at as_of is bit-identical whether the
// input extends past as_of or not. With `in_progress`, one more slot holds the bar containing
// as_of, but only while it is still flagged in progress (a live bar): a bar that later closed
// carries trades after as_of and is masked instead. Its `elapsed_frac` feature says how much of
// the interval had passed.
//
// Missing data. A slot without a usable bar is zero in every feature and 0 in the mask: never
// forward-filled, never NaN or Inf. Usable: present, aligned to the interval, final (closed),
// not flagged not_repaired, finite, positive prices, low <= open,close <= high. Empty (no-trade)
// bars are real data and stay valid.
//
// Normalisation uses the window's own valid bars, all at or before as_of (no look-ahead); the
// affine parameters come back so outputs can be denormalised: x = out * scale + offset.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "mdshm/layout.hpp"
#include "mdshm/result.hpp"

namespace mdshm::adapter {

enum class PriceNorm { none, log_returns, zscore, minmax, relative };
enum class VolumeNorm { none, log1p, zscore };

// Features per slot, in tensor order. elapsed_frac only with Options::in_progress.
inline constexpr std::string_view kFeatureNames[] = {"open", "high", "low", "close", "volume", "elapsed_frac"};
inline constexpr std::size_t kPriceFeatures = 4;
inline constexpr std::size_t kVolumeFeature = 4;
inline constexpr std::size_t kElapsedFeature = 5;
inline constexpr double kCompletenessTarget = 0.999;  // the original specification's > 99.9 %

struct Options {
  std::size_t window = 300;       // T slots per series (one more with in_progress)
  std::int64_t as_of_ms = 0;      // exchange time, ms since the epoch
  bool in_progress = false;
  PriceNorm price = PriceNorm::none;
  VolumeNorm volume = VolumeNorm::none;
};

// One series: its bars oldest first (as the ring holds them), any span of history.
struct SeriesInput {
  std::string_view id;
  std::uint32_t interval_s = 0;
  std::span<const Bar> bars;
};

// out = (x - offset) / scale for the affine norms (none: 0 and 1). log_returns is not affine:
// out = log(x / previous valid close), and the price parameters stay 0 and 1.
struct Params {
  double price_offset = 0, price_scale = 1;
  double volume_offset = 0, volume_scale = 1;
};

// The "data quality assessment" for one series over the window.
struct Quality {
  std::size_t slots = 0;          // T
  std::size_t valid = 0;          // slots with a usable bar
  std::size_t missing = 0;        // slots without any bar (history absent or a gap)
  std::size_t gaps = 0;           // runs of missing slots between valid ones
  std::size_t not_repaired = 0;   // bars flagged not_repaired (masked)
  std::size_t reconciled = 0;     // bars checked against the exchange's kline
  std::size_t empty_bars = 0;     // no-trade bars (valid)
  std::size_t unfinished = 0;     // bars in a closed slot still flagged in progress (masked)
  std::size_t invalid_values = 0; // non-finite, non-positive price or OHLC invariant broken (masked)
  std::size_t misaligned = 0;     // open time off the interval grid (ignored)
  std::size_t non_monotonic = 0;  // open time not after the previous bar's (ignored)
  double completeness = 0;        // valid / slots
  bool meets_completeness = false;  // completeness > kCompletenessTarget
  bool timestamps_aligned = true;   // every bar on the grid: timestamp error 0 ms (< 1 ms target)
  std::int64_t last_valid_close_ms = -1;  // close time of the newest valid bar, -1 if none
  std::int64_t staleness_ms = -1;         // as_of - last_valid_close_ms, -1 if none
};

struct Output {
  std::size_t series = 0, features = 0, time = 0;
  std::vector<float> tensor;              // [series][features][time], C order
  std::vector<std::uint8_t> mask;         // [series][time], 1 = valid
  std::vector<std::int64_t> open_time_ms; // [series][time], the slot's grid time (padded slots too)
  std::vector<double> close;              // [series][time], raw close of valid slots, 0 elsewhere
  std::vector<Params> params;             // per series
  std::vector<Quality> quality;           // per series
  std::int64_t as_of_ms = 0;
  float at(std::size_t s, std::size_t f, std::size_t t) const { return tensor[(s * features + f) * time + t]; }
};

namespace detail {

inline std::int64_t floor_div(std::int64_t a, std::int64_t b) { return a / b - ((a % b != 0) && ((a < 0) != (b < 0))); }

inline bool usable_values(const Bar& b) {
  const double v[] = {b.open, b.high, b.low, b.close, b.volume};
  for (double x : v)
    if (!std::isfinite(x)) return false;
  return b.low > 0 && b.volume >= 0 && b.low <= b.high && b.low <= std::min(b.open, b.close) &&
         b.high >= std::max(b.open, b.close);
}

// Mean and standard deviation of the values picked by `get` over the valid slots.
template <class Get>
inline void mean_std(const std::vector<const Bar*>& slot, Get get, std::size_t per_bar, double& mean, double& sd) {
  double sum = 0, sq = 0;
  std::size_t n = 0;
  for (const Bar* b : slot) {
    if (!b) continue;
    for (std::size_t k = 0; k < per_bar; ++k) {
      const double x = get(*b, k);
      sum += x;
      sq += x * x;
      ++n;
    }
  }
  mean = n ? sum / static_cast<double>(n) : 0;
  const double var = n ? std::max(0.0, sq / static_cast<double>(n) - mean * mean) : 0;
  sd = std::sqrt(var);
}

inline double price_of(const Bar& b, std::size_t f) {
  return f == 0 ? b.open : f == 1 ? b.high : f == 2 ? b.low : b.close;
}

// A scale that cannot divide by zero or blow a flat window up to huge values.
inline double safe_scale(double scale, double magnitude) {
  return std::isfinite(scale) && scale > 1e-12 * std::max(1.0, std::abs(magnitude)) ? scale : 1.0;
}

inline float finite_or_zero(double x) {
  const float f = static_cast<float>(x);
  return std::isfinite(f) ? f : 0.0f;
}

}  // namespace detail

// Cuts, masks and normalises every series at o.as_of_ms. invalid_argument for a zero window or
// interval; otherwise ok, whatever the data (bad bars are masked and counted, never fatal).
[[nodiscard]] inline Errc build(std::span<const SeriesInput> in, const Options& o, Output& out) {
  if (o.window == 0) return Errc::invalid_argument;
  for (const auto& s : in)
    if (s.interval_s == 0) return Errc::invalid_argument;
  const std::size_t S = in.size(), T = o.window + (o.in_progress ? 1 : 0);
  const std::size_t F = o.in_progress ? kElapsedFeature + 1 : kVolumeFeature + 1;
  out.series = S;
  out.features = F;
  out.time = T;
  out.as_of_ms = o.as_of_ms;
  out.tensor.assign(S * F * T, 0.0f);
  out.mask.assign(S * T, 0);
  out.open_time_ms.assign(S * T, 0);
  out.close.assign(S * T, 0.0);
  out.params.assign(S, Params{});
  out.quality.assign(S, Quality{});
  std::vector<const Bar*> slot(T);

  for (std::size_t s = 0; s < S; ++s) {
    const SeriesInput& si = in[s];
    const std::int64_t step = std::int64_t{si.interval_s} * 1000;
    const std::int64_t containing = detail::floor_div(o.as_of_ms, step) * step;  // open of the bar holding as_of
    const std::int64_t last_open = o.in_progress ? containing : containing - step;
    const std::int64_t first_open = last_open - static_cast<std::int64_t>(T - 1) * step;
    Quality& q = out.quality[s];
    q.slots = T;
    std::fill(slot.begin(), slot.end(), nullptr);
    for (std::size_t t = 0; t < T; ++t) out.open_time_ms[s * T + t] = first_open + static_cast<std::int64_t>(t) * step;

    // Place the bars of [first_open, last_open] by open time (the ring keeps them sorted).
    const auto bars = si.bars;
    auto it = std::lower_bound(bars.begin(), bars.end(), first_open,
                               [](const Bar& b, std::int64_t t) { return b.open_time_ms < t; });
    std::int64_t prev_open = it == bars.begin() ? INT64_MIN : std::prev(it)->open_time_ms;
    std::vector<bool> seen(T, false);
    for (; it != bars.end() && it->open_time_ms <= last_open; ++it) {
      const Bar& b = *it;
      if (b.open_time_ms <= prev_open) {
        ++q.non_monotonic;
        continue;
      }
      prev_open = b.open_time_ms;
      if ((b.open_time_ms - first_open) % step != 0) {
        ++q.misaligned;
        continue;
      }
      const auto t = static_cast<std::size_t>((b.open_time_ms - first_open) / step);
      seen[t] = true;
      if (b.flags & flag::reconciled) ++q.reconciled;
      const bool live_slot = o.in_progress && t == T - 1;
      const bool final_bar = (b.flags & flag::closed) && !(b.flags & flag::in_progress);
      if (live_slot ? !(b.flags & flag::in_progress) : !final_bar) {
        ++q.unfinished;  // a closed slot whose bar was never closed, or a live slot's bar that closed later
        continue;
      }
      if (b.flags & flag::not_repaired) {
        ++q.not_repaired;
        continue;
      }
      if (!detail::usable_values(b)) {
        ++q.invalid_values;
        continue;
      }
      if (b.flags & flag::empty) ++q.empty_bars;
      slot[t] = &b;
    }
    q.timestamps_aligned = q.misaligned == 0;
    bool in_gap = false, any_valid = false;
    for (std::size_t t = 0; t < T; ++t) {
      if (!seen[t]) ++q.missing;
      if (slot[t]) {
        if (in_gap && any_valid) ++q.gaps;
        in_gap = false;
        any_valid = true;
        ++q.valid;
        q.last_valid_close_ms = slot[t]->open_time_ms + step;
      } else {
        in_gap = true;
      }
    }
    q.completeness = static_cast<double>(q.valid) / static_cast<double>(T);
    q.meets_completeness = q.completeness > kCompletenessTarget;
    if (q.last_valid_close_ms >= 0) q.staleness_ms = std::max<std::int64_t>(0, o.as_of_ms - q.last_valid_close_ms);

    // Parameters from the window's valid bars only.
    Params& p = out.params[s];
    double last_close = 0;
    for (std::size_t t = T; t-- > 0;)
      if (slot[t]) {
        last_close = slot[t]->close;
        break;
      }
    switch (o.price) {
      case PriceNorm::none:
      case PriceNorm::log_returns: break;
      case PriceNorm::zscore: {
        double m = 0, sd = 0;
        detail::mean_std(slot, detail::price_of, kPriceFeatures, m, sd);
        p.price_offset = m;
        p.price_scale = detail::safe_scale(sd, m);
        break;
      }
      case PriceNorm::minmax: {
        double lo = INFINITY, hi = -INFINITY;
        for (const Bar* b : slot)
          if (b) lo = std::min(lo, b->low), hi = std::max(hi, b->high);
        if (lo <= hi) {
          p.price_offset = lo;
          p.price_scale = detail::safe_scale(hi - lo, lo);
        }
        break;
      }
      case PriceNorm::relative:
        if (last_close > 0) p.price_offset = p.price_scale = last_close;
        break;
    }
    switch (o.volume) {
      case VolumeNorm::none:
      case VolumeNorm::log1p: break;
      case VolumeNorm::zscore: {
        double m = 0, sd = 0;
        detail::mean_std(slot, [](const Bar& b, std::size_t) { return b.volume; }, 1, m, sd);
        p.volume_offset = m;
        p.volume_scale = detail::safe_scale(sd, m);
        break;
      }
    }

    float* base = out.tensor.data() + s * F * T;
    double prev_close = 0;  // the last valid close before t (log returns)
    for (std::size_t t = 0; t < T; ++t) {
      const Bar* b = slot[t];
      if (!b) continue;
      out.mask[s * T + t] = 1;
      out.close[s * T + t] = b->close;
      for (std::size_t f = 0; f < kPriceFeatures; ++f) {
        const double x = detail::price_of(*b, f);
        const double y = o.price == PriceNorm::log_returns ? (prev_close > 0 ? std::log(x / prev_close) : 0.0)
                                                           : (x - p.price_offset) / p.price_scale;
        base[f * T + t] = detail::finite_or_zero(y);
      }
      prev_close = b->close;
      const double v = o.volume == VolumeNorm::log1p ? std::log1p(b->volume)
                                                     : (b->volume - p.volume_offset) / p.volume_scale;
      base[kVolumeFeature * T + t] = detail::finite_or_zero(v);
      if (o.in_progress) {
        const double frac = t == T - 1 ? static_cast<double>(o.as_of_ms - b->open_time_ms) / static_cast<double>(step) : 1.0;
        base[kElapsedFeature * T + t] = detail::finite_or_zero(std::clamp(frac, 0.0, 1.0));
      }
    }
  }
  return Errc::ok;
}

// Cross-asset context: the rolling Pearson correlation of two series' log close-to-close returns
// over the last `span` slots, for every slot t (corr[t] uses slots t-span+1 .. t only: no
// look-ahead either). Inputs are one series' row of Output::close and Output::mask each, of equal
// length and, to mean anything, of one interval (ETH and BTC 1 s). A return exists where a slot
// and the one before it are valid; corr[t] is computed where at least half the span has returns
// in both series and both vary, else 0 with mask 0.
[[nodiscard]] inline Errc rolling_correlation(std::span<const double> close_a, std::span<const std::uint8_t> mask_a,
                                              std::span<const double> close_b, std::span<const std::uint8_t> mask_b,
                                              std::size_t span, std::vector<float>& corr, std::vector<std::uint8_t>& mask) {
  const std::size_t T = close_a.size();
  if (span < 2 || mask_a.size() != T || close_b.size() != T || mask_b.size() != T) return Errc::invalid_argument;
  corr.assign(T, 0.0f);
  mask.assign(T, 0);
  auto ret = [](std::span<const double> c, std::span<const std::uint8_t> m, std::size_t t, double& r) {
    if (t == 0 || !m[t] || !m[t - 1]) return false;
    r = std::log(c[t] / c[t - 1]);
    return std::isfinite(r);
  };
  for (std::size_t t = 0; t < T; ++t) {
    double sx = 0, sy = 0, sxx = 0, syy = 0, sxy = 0;
    std::size_t n = 0;
    for (std::size_t u = t + 1 > span ? t + 1 - span : 0; u <= t; ++u) {
      double x = 0, y = 0;
      if (!ret(close_a, mask_a, u, x) || !ret(close_b, mask_b, u, y)) continue;
      sx += x, sy += y, sxx += x * x, syy += y * y, sxy += x * y;
      ++n;
    }
    if (2 * n < span || n < 2) continue;
    const double dn = static_cast<double>(n);
    const double vx = sxx - sx * sx / dn, vy = syy - sy * sy / dn;
    if (!(vx > 0) || !(vy > 0)) continue;
    const double c = (sxy - sx * sy / dn) / std::sqrt(vx * vy);
    if (!std::isfinite(c)) continue;
    corr[t] = static_cast<float>(std::clamp(c, -1.0, 1.0));
    mask[t] = 1;
  }
  return Errc::ok;
}

// Transformer layout of one series: [time][features], C order, copied from the CNN tensor.
inline void transformer(const Output& o, std::size_t s, std::vector<float>& out) {
  out.resize(o.time * o.features);
  for (std::size_t t = 0; t < o.time; ++t)
    for (std::size_t f = 0; f < o.features; ++f) out[t * o.features + f] = o.at(s, f, t);
}

// RL layout: the CNN tensor flattened as it lies; element (s, f, t) sits at (s * F + f) * T + t.
// The index map names each [begin, end) run: "<series id>.<feature>".
struct IndexEntry {
  std::string name;
  std::size_t begin = 0, end = 0;
};
inline std::vector<IndexEntry> rl_index(const Output& o, std::span<const SeriesInput> in) {
  std::vector<IndexEntry> idx;
  for (std::size_t s = 0; s < o.series; ++s)
    for (std::size_t f = 0; f < o.features; ++f) {
      const std::size_t b = (s * o.features + f) * o.time;
      idx.push_back({std::string(in[s].id) + "." + std::string(kFeatureNames[f]), b, b + o.time});
    }
  return idx;
}

}  // namespace mdshm::adapter
