// The exchange's clock as the feed sees it: local wall clock mapped through the latest
// /api/v3/time samples. Binance's clock runs at our rate, give or take NTP; the simulator's runs at
// --speed times ours and starts years in the past. So, unlike an NTP-style offset estimate (which
// trusts the shortest round trip among old samples, right only at rate 1), the rate is measured
// too: between the oldest kept sample and the newest. Trade times seen also push the clock
// forward (trade time is the truth); it never runs backwards.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <deque>
#include <optional>

namespace mdshm::feed {

class ExchangeClock {
 public:
  // local_mid_ns: midpoint of the request on CLOCK_REALTIME; server_ms: the exchange's answer.
  void add_sample(std::int64_t local_mid_ns, std::int64_t server_ms) {
    samples_.push_back({local_mid_ns, server_ms});
    while (samples_.size() > kKeep) samples_.pop_front();
    const auto& a = samples_.front();
    const auto& b = samples_.back();
    const double span_ns = static_cast<double>(b.local_ns - a.local_ns);
    if (span_ns >= 1e9) {
      const double r = static_cast<double>(b.server_ms - a.server_ms) * 1e6 / span_ns;
      // Within 2 % of real time it is real time: the difference is round-trip noise.
      rate_ = std::fabs(r - 1.0) < 0.02 ? 1.0 : std::clamp(r, 0.01, 100000.0);
    }
  }
  // A trade or event time received: the exchange clock has reached at least this.
  void saw_exchange_time(std::int64_t t_ms) { floor_ms_ = std::max(floor_ms_, t_ms); }

  bool synced() const { return !samples_.empty(); }
  double rate() const { return rate_; }

  // What the samples alone say the exchange clock read at `local_ns` (no floor, not monotonic):
  // for telling when something happened, e.g. how late a frame arrived. nullopt before a sample.
  std::optional<std::int64_t> at_ms(std::int64_t local_ns) const {
    if (samples_.empty()) return std::nullopt;
    const auto& b = samples_.back();
    return b.server_ms + static_cast<std::int64_t>(static_cast<double>(local_ns - b.local_ns) * rate_ / 1e6);
  }
  // nullopt before the first sample and the first event.
  std::optional<std::int64_t> now_ms(std::int64_t local_now_ns) {
    std::optional<std::int64_t> est = at_ms(local_now_ns);
    if (floor_ms_ > 0) est = std::max(est.value_or(0), floor_ms_);
    if (!est) return std::nullopt;
    last_ms_ = std::max(last_ms_, *est);
    return last_ms_;
  }
  // Offset (exchange - local) at the newest sample, for the REST weight windows.
  std::int64_t offset_ns() const {
    if (samples_.empty()) return 0;
    return samples_.back().server_ms * 1'000'000 - samples_.back().local_ns;
  }

 private:
  static constexpr std::size_t kKeep = 8;
  struct Sample {
    std::int64_t local_ns;
    std::int64_t server_ms;
  };
  std::deque<Sample> samples_;
  double rate_ = 1.0;
  std::int64_t floor_ms_ = 0;
  std::int64_t last_ms_ = 0;
};

}  // namespace mdshm::feed
