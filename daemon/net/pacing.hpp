// How fast the feed may (re)connect and spend REST weight. Pure arithmetic on times the caller
// passes in, so the rules are unit-tested without sockets or sleeping.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <optional>
#include <random>

namespace mdshm::net {

using SteadyTime = std::chrono::steady_clock::time_point;
using Duration = std::chrono::steady_clock::duration;

struct BackoffOptions {
  std::chrono::milliseconds initial{500};
  std::chrono::milliseconds max{30'000};
  double factor = 2.0;
  // A connection that stayed up this long counts as healthy: the next failure starts from initial.
  std::chrono::milliseconds healthy_after{60'000};
};

// Exponential backoff with "equal jitter": the delay is uniform in [d/2, d], so reconnecting
// clients spread out but none retries sooner than half the nominal delay.
class Backoff {
 public:
  explicit Backoff(BackoffOptions options = {}, std::uint64_t seed = std::random_device{}());
  void on_connected(SteadyTime now) { connected_at_ = now; }
  Duration next_delay(SteadyTime now);  // call once per failure
  void reset() { failures_ = 0; connected_at_.reset(); }
  int failures() const { return failures_; }

 private:
  BackoffOptions options_;
  std::mt19937_64 rng_;
  int failures_ = 0;
  std::optional<SteadyTime> connected_at_;
};

struct ConnectRateOptions {
  int max_connects = 300;  // Binance: 300 connection attempts per 5 minutes per IP
  std::chrono::milliseconds window{5 * 60 * 1000};
};

// Sliding window over the start times of connection attempts.
class ConnectRateLimiter {
 public:
  explicit ConnectRateLimiter(ConnectRateOptions options = {}) : options_(options) {}
  // Zero: go now, and the attempt is recorded. Otherwise: wait this long, then ask again.
  Duration acquire(SteadyTime now);
  int in_window(SteadyTime now);

 private:
  void expire(SteadyTime now);
  ConnectRateOptions options_;
  std::deque<SteadyTime> starts_;
};

struct WeightBudgetOptions {
  int budget = 3000;                        // weight we allow ourselves per window
  std::chrono::milliseconds window{60'000};  // X-MBX-USED-WEIGHT-1M resets each exchange minute
};

// Binance counts request weight in fixed windows aligned to the exchange's minute. Times are
// exchange-clock milliseconds (local wall clock + measured offset).
class WeightBudget {
 public:
  explicit WeightBudget(WeightBudgetOptions options = {}) : options_(options) {}
  // How long to hold a request of `cost` so the window's total stays within budget; 0 = send now.
  std::int64_t delay_ms(std::int64_t now_ms, int cost) const;
  void on_sent(std::int64_t now_ms, int cost);
  // The header is the exchange's own count: it replaces our estimate for that window.
  void on_used_header(std::int64_t now_ms, int used);
  int used(std::int64_t now_ms) const;
  void set_budget(int budget) { options_.budget = budget; }  // SIGHUP reload

 private:
  std::int64_t window_of(std::int64_t now_ms) const;
  WeightBudgetOptions options_;
  std::int64_t window_ = -1;
  int used_ = 0;
};

}  // namespace mdshm::net
