#include "source/synthetic.hpp"

#include <time.h>

#include <algorithm>
#include <cmath>

namespace mdshm::source {

namespace {

std::int64_t clock_ns(clockid_t id) {
  timespec ts{};
  clock_gettime(id, &ts);
  return std::int64_t{ts.tv_sec} * 1'000'000'000 + ts.tv_nsec;
}

// A power-of-ten tick of 1e-6..1e-5 of the start price (0.01 for 1900, 0.1 for 24000), so the
// walk moves on a grid as exchange prices do.
double tick_for(double price) {
  const double t = std::pow(10.0, std::floor(std::log10(price)) - 5);
  return std::max(t, 1e-8);
}

}  // namespace

SyntheticSource::SyntheticSource(std::vector<SyntheticSymbol> symbols, SyntheticOptions opt)
    : opt_(opt), rng_(opt.seed) {
  if (opt_.max_batch == 0) opt_.max_batch = 1;
  for (const auto& s : symbols) {
    const double p = s.start_price > 0 ? s.start_price : 100.0;
    state_.push_back({p, tick_for(p), s.first_id});
  }
}

Trade SyntheticSource::next_trade(std::size_t symbol, std::int64_t wall_ns) {
  State& s = state_[symbol];
  double p = s.price * (1.0 + step_(rng_) * opt_.volatility_bps * 1e-4);
  p = std::max(s.tick, std::round(p / s.tick) * s.tick);
  s.price = p;
  Trade t;
  t.id = s.next_id++;
  t.time_ms = wall_ns / 1'000'000;
  t.event_time_ms = t.time_ms;
  t.price = p;
  t.qty = std::max(1e-4, std::round(qty_(rng_) * 0.5 * 1e4) / 1e4);
  t.buyer_is_maker = (rng_() & 1) != 0;
  t.recv_wall_ns = wall_ns;
  ++generated_;
  return t;
}

std::size_t SyntheticSource::poll(TradeHandler& h, std::int64_t max_wait_ns) {
  if (state_.empty()) {
    timespec ts{0, std::clamp<long>(max_wait_ns, 0, 999'999'999)};
    nanosleep(&ts, nullptr);
    return 0;
  }
  std::int64_t now = clock_ns(CLOCK_MONOTONIC);
  if (start_mono_ns_ < 0) start_mono_ns_ = now;
  // Pacing by the total owed since the start, not by per-trade sleeps: a late wake-up catches up,
  // and the rate holds on average whatever the batch size.
  auto owed = [&](std::int64_t t) {
    const double due = static_cast<double>(t - start_mono_ns_) * 1e-9 * opt_.rate;
    return due > static_cast<double>(generated_) ? static_cast<std::uint64_t>(due) - generated_ : 0;
  };
  std::uint64_t n = owed(now);
  if (n == 0) {
    const double next_due_ns = (static_cast<double>(generated_ + 1) / opt_.rate) * 1e9 + static_cast<double>(start_mono_ns_);
    const std::int64_t wait = std::min<std::int64_t>(max_wait_ns, static_cast<std::int64_t>(next_due_ns) - now + 1);
    // Short waits spin (sleep granularity is ~50-100 us); longer ones sleep.
    if (wait > 50'000) {
      timespec ts{static_cast<time_t>(wait / 1'000'000'000), static_cast<long>(wait % 1'000'000'000)};
      nanosleep(&ts, nullptr);
    }
    now = clock_ns(CLOCK_MONOTONIC);
    n = owed(now);
    if (n == 0) return 0;
  }
  n = std::min<std::uint64_t>(n, opt_.max_batch);
  // A generation far behind (the process was stopped) does not replay the backlog in a burst.
  if (owed(now) > 10 * opt_.max_batch + static_cast<std::uint64_t>(opt_.rate)) {
    generated_ = static_cast<std::uint64_t>(static_cast<double>(now - start_mono_ns_) * 1e-9 * opt_.rate) - n;
  }
  const std::int64_t wall = clock_ns(CLOCK_REALTIME);
  std::uniform_int_distribution<std::size_t> pick(0, state_.size() - 1);
  for (std::uint64_t i = 0; i < n; ++i) {
    const std::size_t sym = state_.size() == 1 ? 0 : pick(rng_);
    h.on_trade(sym, next_trade(sym, wall));
  }
  return n;
}

}  // namespace mdshm::source
