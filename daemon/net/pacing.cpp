#include "net/pacing.hpp"

#include <algorithm>
#include <cmath>

namespace mdshm::net {

Backoff::Backoff(BackoffOptions options, std::uint64_t seed) : options_(options), rng_(seed) {}

Duration Backoff::next_delay(SteadyTime now) {
  if (connected_at_ && now - *connected_at_ >= options_.healthy_after) failures_ = 0;
  connected_at_.reset();
  const double initial = std::chrono::duration<double>(options_.initial).count();
  const double cap = std::chrono::duration<double>(options_.max).count();
  const double nominal = std::min(cap, initial * std::pow(options_.factor, std::min(failures_, 60)));
  ++failures_;
  std::uniform_real_distribution<double> jitter(nominal / 2, nominal);
  return std::chrono::duration_cast<Duration>(std::chrono::duration<double>(jitter(rng_)));
}

void ConnectRateLimiter::expire(SteadyTime now) {
  // An attempt at t stops counting strictly after t + window, so no closed window of that length
  // ever holds more than max_connects attempts.
  while (!starts_.empty() && now - starts_.front() > options_.window) starts_.pop_front();
}

int ConnectRateLimiter::in_window(SteadyTime now) {
  expire(now);
  return static_cast<int>(starts_.size());
}

Duration ConnectRateLimiter::acquire(SteadyTime now) {
  expire(now);
  if (static_cast<int>(starts_.size()) < options_.max_connects) {
    starts_.push_back(now);
    return Duration::zero();
  }
  return starts_.front() + options_.window - now + Duration(1);
}

std::int64_t WeightBudget::window_of(std::int64_t now_ms) const {
  const std::int64_t len = std::max<std::int64_t>(1, options_.window.count());
  return now_ms >= 0 ? now_ms / len : (now_ms - len + 1) / len;
}

int WeightBudget::used(std::int64_t now_ms) const {
  return window_of(now_ms) == window_ ? used_ : 0;
}

std::int64_t WeightBudget::delay_ms(std::int64_t now_ms, int cost) const {
  const int spent = used(now_ms);
  // A request heavier than the whole budget still goes, alone, into a fresh window.
  if (spent == 0 || spent + cost <= options_.budget) return 0;
  const std::int64_t len = options_.window.count();
  const std::int64_t next_window_start = (window_of(now_ms) + 1) * len;
  // Margin for the residual error of the clock offset: starting early would count in the old window.
  const std::int64_t margin = std::min<std::int64_t>(1000, len / 20);
  return next_window_start - now_ms + margin;
}

void WeightBudget::on_sent(std::int64_t now_ms, int cost) {
  const auto w = window_of(now_ms);
  if (w != window_) {
    window_ = w;
    used_ = 0;
  }
  used_ += cost;
}

void WeightBudget::on_used_header(std::int64_t now_ms, int used) {
  window_ = window_of(now_ms);
  used_ = used;
}

}  // namespace mdshm::net
