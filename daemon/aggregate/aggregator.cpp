#include "aggregate/aggregator.hpp"

#include <time.h>

#include <algorithm>
#include <cmath>

namespace mdshm::aggregate {

std::int64_t system_wall_ns() {
  timespec ts{};
  clock_gettime(CLOCK_REALTIME, &ts);
  return std::int64_t{ts.tv_sec} * 1'000'000'000 + ts.tv_nsec;
}

namespace {

// Binance quantities have at most 8 decimals. Summing their nearest doubles drifts (0.1 + 0.2
// prints as 0.30000000000000004); snapping each sum to 1e-8 keeps it the nearest double of the
// exact decimal sum, as long as sum * 1e8 stays below 2^53 (sums up to 9e7 units). Larger sums
// (e.g. a week of a meme coin's quantity) are left as plain sums: there 1e-8 is below one ulp.
void add_decimal8(double& acc, double v) {
  const double sum = acc + v;
  acc = std::fabs(sum) < 9.0e7 ? std::round(sum * 1e8) / 1e8 : sum;
}

Bar flat_bar(std::int64_t open_ms, double price, std::uint32_t flags, std::int64_t now_ns) {
  Bar b{};
  b.open_time_ms = open_ms;
  b.open = b.high = b.low = b.close = price;
  b.first_trade_id = b.last_trade_id = -1;
  b.update_wall_ns = now_ns;
  b.flags = flags | flag::empty;
  return b;
}

// Close and open follow trade ids when both sides know them, else arrival order.
void merge(Bar& b, const Trade& t) {
  const bool first = (b.flags & flag::empty) != 0 || b.trade_count == 0;
  if (first) {
    b.open = b.high = b.low = b.close = t.price;
    b.first_trade_id = b.last_trade_id = t.id;
    b.flags &= ~flag::empty;
  } else {
    if (t.price > b.high) b.high = t.price;
    if (t.price < b.low) b.low = t.price;
    if (t.id < 0 || b.last_trade_id < 0 || t.id > b.last_trade_id) {
      b.close = t.price;
      b.last_trade_id = t.id;
    }
    if (t.id >= 0 && b.first_trade_id >= 0 && t.id < b.first_trade_id) {
      b.open = t.price;
      b.first_trade_id = t.id;
    }
  }
  add_decimal8(b.volume, t.qty);
  add_decimal8(b.quote_volume, t.price * t.qty);
  if (!t.buyer_is_maker) {
    add_decimal8(b.taker_buy_volume, t.qty);
    add_decimal8(b.taker_buy_quote_volume, t.price * t.qty);
  }
  ++b.trade_count;
}

}  // namespace

void merge_bar(Bar& acc, const Bar& later) {
  acc.high = std::max(acc.high, later.high);
  acc.low = std::min(acc.low, later.low);
  acc.close = later.close;
  add_decimal8(acc.volume, later.volume);
  add_decimal8(acc.quote_volume, later.quote_volume);
  add_decimal8(acc.taker_buy_volume, later.taker_buy_volume);
  add_decimal8(acc.taker_buy_quote_volume, later.taker_buy_quote_volume);
  acc.trade_count += later.trade_count;
}

namespace {

bool same_volume(double a, double b) {
  return std::fabs(a - b) <= 1e-9 * std::max(std::fabs(a), std::fabs(b)) + 1e-12;
}

bool finite_kline(const Bar& b) {
  for (double v : {b.open, b.high, b.low, b.close, b.volume, b.quote_volume, b.taker_buy_volume,
                   b.taker_buy_quote_volume})
    if (!std::isfinite(v) || v < 0) return false;
  return b.open > 0 && b.high > 0 && b.low > 0 && b.close > 0;
}

}  // namespace

IntervalAggregator::IntervalAggregator(std::uint32_t interval_s, BarSink& sink, std::uint64_t max_fill_bars)
    : interval_s_(interval_s), len_ms_(std::int64_t{interval_s} * 1000), sink_(sink),
      max_fill_(max_fill_bars == 0 ? 1 : max_fill_bars) {}

void IntervalAggregator::restore() {
  const auto head = sink_.head();
  const auto newest = head ? sink_.newest() : std::nullopt;
  have_ = newest.has_value();
  if (have_) {
    newest_ = *newest;
    newest_idx_ = head - 1;
  }
}

void IntervalAggregator::publish_newest() {
  sink_.publish(newest_);
  newest_idx_ = sink_.head() - 1;
}

void IntervalAggregator::start_bar(std::int64_t open_ms, const Trade& t, std::int64_t now_ns) {
  newest_ = flat_bar(open_ms, t.price, flag::in_progress, now_ns);
  merge(newest_, t);
  publish_newest();
}

void IntervalAggregator::close_newest(std::int64_t now_ns) {
  if (!(newest_.flags & flag::in_progress)) return;
  newest_.flags = (newest_.flags & ~flag::in_progress) | flag::closed;
  newest_.update_wall_ns = now_ns;
  sink_.publish(newest_);
  sink_.add_stat(Stat::bars_closed, 1);
}

void IntervalAggregator::roll_to(std::int64_t open_ms, std::int64_t now_ns) {
  close_newest(now_ns);
  std::int64_t next = newest_.open_time_ms + len_ms_;
  if (open_ms > next && static_cast<std::uint64_t>((open_ms - next) / len_ms_) > max_fill_)
    next = open_ms - static_cast<std::int64_t>(max_fill_) * len_ms_;
  std::uint64_t filled = 0;
  for (; next < open_ms; next += len_ms_, ++filled) {
    newest_ = flat_bar(next, newest_.close, flag::closed, now_ns);
    publish_newest();
  }
  if (filled) sink_.add_stat(Stat::bars_closed, filled);
}

bool IntervalAggregator::on_trade(const Trade& t, std::int64_t now_ns) {
  const std::int64_t open_ms = bar_open_ms(t.time_ms, interval_s_);
  if (!have_) {
    have_ = true;
    start_bar(open_ms, t, now_ns);
  } else if (open_ms == newest_.open_time_ms && (newest_.flags & flag::in_progress)) {
    merge(newest_, t);
    newest_.update_wall_ns = now_ns;
    sink_.publish(newest_);
  } else if (open_ms > newest_.open_time_ms) {
    roll_to(open_ms, now_ns);
    start_bar(open_ms, t, now_ns);
  } else {
    sink_.add_stat(Stat::out_of_order, 1);
    if (!amend_older(open_ms, t, now_ns)) return false;
  }
  sink_.add_stat(Stat::trades, 1);
  return true;
}

std::optional<std::uint64_t> IntervalAggregator::index_of(std::int64_t open_ms) const {
  if (!have_ || open_ms > newest_.open_time_ms) return std::nullopt;
  const auto back = static_cast<std::uint64_t>((newest_.open_time_ms - open_ms) / len_ms_);
  if (back > newest_idx_) return std::nullopt;
  return newest_idx_ - back;
}

bool IntervalAggregator::amend_older(std::int64_t open_ms, const Trade& t, std::int64_t now_ns) {
  const auto idx = index_of(open_ms);
  if (!idx) return false;
  auto bar = sink_.bar_at(*idx);
  // A mismatch means the bars are not contiguous there (a capped fill): nothing to amend.
  if (!bar || bar->open_time_ms != open_ms || (bar->flags & flag::reconciled)) return false;
  merge(*bar, t);
  bar->update_wall_ns = now_ns;
  if (!sink_.amend(*idx, *bar)) return false;
  if (*idx == newest_idx_) newest_ = *bar;
  return true;
}

void IntervalAggregator::advance_to(std::int64_t now_ms, std::int64_t now_ns) {
  if (!have_) return;
  const std::int64_t open_ms = bar_open_ms(now_ms, interval_s_);
  if (open_ms <= newest_.open_time_ms) return;
  roll_to(open_ms, now_ns);
  newest_ = flat_bar(open_ms, newest_.close, flag::in_progress, now_ns);
  publish_newest();
}

Bar IntervalAggregator::reconciled(const Bar& built, const Kline& k, std::int64_t now_ns) {
  const Bar& x = k.bar;
  const bool differs = built.open != x.open || built.high != x.high || built.low != x.low ||
                       built.close != x.close || !same_volume(built.volume, x.volume) ||
                       !same_volume(built.quote_volume, x.quote_volume);
  sink_.add_stat(Stat::reconcile_checks, 1);
  if (differs) sink_.add_stat(Stat::reconcile_diffs, 1);
  Bar r = built;
  r.open = x.open;
  r.high = x.high;
  r.low = x.low;
  r.close = x.close;
  r.volume = x.volume;
  r.quote_volume = x.quote_volume;
  r.taker_buy_volume = x.taker_buy_volume;
  r.taker_buy_quote_volume = x.taker_buy_quote_volume;
  r.trade_count = x.trade_count;
  const bool exchange_empty = x.volume == 0 && x.trade_count == 0;
  // The exchange's values make the bar right, even one a gap had left not_repaired.
  r.flags = (built.flags & ~(flag::in_progress | flag::empty | flag::reconcile_diff | flag::not_repaired)) | flag::closed |
            flag::reconciled | (differs ? flag::reconcile_diff : 0) | (exchange_empty ? flag::empty : 0);
  r.update_wall_ns = now_ns;
  return r;
}

bool IntervalAggregator::on_exchange_kline(const Kline& k, std::int64_t now_ns) {
  const std::int64_t open_ms = k.bar.open_time_ms;
  if (!have_) {
    // Nothing built yet: the exchange's bar starts the series.
    have_ = true;
    newest_ = k.bar;
    newest_.first_trade_id = newest_.last_trade_id = -1;  // a kline's f/L are trade ids, not aggTrade ids
    newest_.flags = flag::closed | flag::reconciled | (k.bar.volume == 0 ? flag::empty : 0);
    newest_.update_wall_ns = now_ns;
    publish_newest();
    sink_.add_stat(Stat::bars_closed, 1);
    return false;
  }
  if (open_ms > newest_.open_time_ms) advance_to(open_ms, now_ns);
  if (open_ms == newest_.open_time_ms) {
    const bool was_open = (newest_.flags & flag::in_progress) != 0;
    newest_ = reconciled(newest_, k, now_ns);
    sink_.publish(newest_);
    if (was_open) sink_.add_stat(Stat::bars_closed, 1);
    return true;
  }
  const auto idx = index_of(open_ms);
  if (!idx) return false;
  const auto bar = sink_.bar_at(*idx);
  if (!bar || bar->open_time_ms != open_ms) return false;
  const Bar r = reconciled(*bar, k, now_ns);
  sink_.amend(*idx, r);
  return true;
}

// ---------------------------------------------------------------------------------------------

SymbolAggregator::SymbolAggregator(std::string symbol, AggregatorOptions opt)
    : symbol_(std::move(symbol)), opt_(opt) {
  if (!opt_.wall_now_ns) opt_.wall_now_ns = &system_wall_ns;
}

void SymbolAggregator::add_interval(std::uint32_t interval_s, BarSink& sink, std::uint64_t max_fill_bars) {
  intervals_.emplace_back(interval_s, sink, max_fill_bars);
  applied_.push_back(0);
}

void SymbolAggregator::restore() {
  for (auto& iv : intervals_) {
    iv.restore();
    if (iv.has_bar() && iv.newest().last_trade_id > last_id_) last_id_ = iv.newest().last_trade_id;
  }
}

void SymbolAggregator::count_all(Stat s) {
  for (auto& iv : intervals_) iv.sink().add_stat(s, 1);
}

bool SymbolAggregator::plausible_time(std::int64_t t_ms, std::int64_t now_ns) const {
  return t_ms >= opt_.min_time_ms && t_ms <= now_ns / 1'000'000 + opt_.max_future_ms;
}

TradeOutcome SymbolAggregator::on_trade(const Trade& t) { return apply(t, true); }
TradeOutcome SymbolAggregator::on_repair_trade(const Trade& t) { return apply(t, false); }

TradeOutcome SymbolAggregator::apply(const Trade& t, bool check_duplicate) {
  const std::int64_t now_ns = opt_.wall_now_ns();
  if (!std::isfinite(t.price) || t.price <= 0 || !std::isfinite(t.qty) || t.qty < 0 ||
      !std::isfinite(t.price * t.qty) || !plausible_time(t.time_ms, now_ns)) {
    count_all(Stat::rejected_values);
    return TradeOutcome::rejected;
  }
  if (check_duplicate && t.id >= 0 && last_id_ >= 0 && t.id <= last_id_) {
    count_all(Stat::duplicate_trades);
    return TradeOutcome::duplicate;
  }
  if (t.id > last_id_) last_id_ = t.id;
  for (std::size_t i = 0; i < intervals_.size(); ++i) applied_[i] = intervals_[i].on_trade(t, now_ns);
  if (t.recv_wall_ns != 0) {
    // One clock read after every interval has published: the latency a reader of any of them sees.
    const std::int64_t after = opt_.wall_now_ns();
    const auto ns = static_cast<std::uint64_t>(after > t.recv_wall_ns ? after - t.recv_wall_ns : 0);
    for (std::size_t i = 0; i < intervals_.size(); ++i)
      if (applied_[i]) intervals_[i].sink().record_latency(ns);
  }
  return TradeOutcome::applied;
}

void SymbolAggregator::flush_stats() {
  for (auto& iv : intervals_) iv.sink().flush_stats();
}

bool SymbolAggregator::advance_to(std::int64_t exchange_now_ms) {
  const std::int64_t now_ns = opt_.wall_now_ns();
  if (!plausible_time(exchange_now_ms, now_ns)) return false;
  for (auto& iv : intervals_) iv.advance_to(exchange_now_ms, now_ns);
  return true;
}

std::size_t SymbolAggregator::on_exchange_kline(const Kline& k) {
  if (!k.closed) return 0;
  const std::int64_t now_ns = opt_.wall_now_ns();
  const bool valid = k.interval_s != 0 && bar_open_ms(k.bar.open_time_ms, k.interval_s) == k.bar.open_time_ms &&
                     plausible_time(k.bar.open_time_ms, now_ns) && finite_kline(k.bar) &&
                     k.bar.low <= k.bar.high;
  std::size_t compared = 0;
  for (auto& iv : intervals_) {
    if (iv.interval_s() != k.interval_s) continue;
    if (!valid) {
      iv.sink().add_stat(Stat::rejected_values, 1);
      continue;
    }
    compared += iv.on_exchange_kline(k, now_ns) ? 1 : 0;
  }
  return compared;
}

}  // namespace mdshm::aggregate
