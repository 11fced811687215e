// Startup backfill and the resync after a gap too long for aggTrades: the history store first, REST
// klines for only what is missing, then the bar in progress of intervals longer than the catch-up.
#include "feed/binance_feed_impl.hpp"

#include <spdlog/spdlog.h>

namespace mdshm::feed {

using namespace detail;

// Fills series `si` with closed bars whose open is before `end_excl`: the store's first, then
// REST klines for only what neither the segment nor the store holds. False when REST failed: the
// series then ends where the fill stopped, and running it again continues from there.
std::optional<Failure> BinanceFeed::Impl::backfill_series(std::size_t si, std::int64_t end_excl, std::int64_t now_ms) {
  auto& fs = series[si];
  auto& w = fs.sink->writer();
  const std::int64_t len = std::int64_t{fs.interval_s} * 1000;
  const std::uint64_t depth = fs.backfill_depth ? fs.backfill_depth : fs.capacity;
  std::int64_t from = end_excl - static_cast<std::int64_t>(depth) * len;
  if (auto newest = w.newest()) {
    // The segment already holds bars (a re-attach, or a gap after an outage): continue right after
    // them, or rewrite the unfinished newest one with its final values, so that every interval
    // keeps its bar; the configured depth is for an empty segment. A ring holds no more than
    // its capacity, though.
    const std::int64_t next = (newest->flags & flag::in_progress) ? newest->open_time_ms : newest->open_time_ms + len;
    from = std::max(next, end_excl - static_cast<std::int64_t>(fs.capacity) * len);
  }
  if (from >= end_excl) return std::nullopt;

  std::vector<Bar> stored;
  auto* st = fs.sink->store();
  if (st)
    for (const auto& b : st->loaded())
      if (b.open_time_ms >= from && b.open_time_ms < end_excl) stored.push_back(b);
  std::vector<store::TimeRange> missing;
  if (fs.backfill) {
    if (st) missing = st->missing(from, end_excl);
    else missing.push_back({from, end_excl});
  }
  std::size_t next_stored = 0;
  std::uint64_t hits = 0, misses = 0, fetched = 0;
  std::optional<Failure> failed;
  auto publish_stored_before = [&](std::int64_t t) {
    for (; next_stored < stored.size() && stored[next_stored].open_time_ms < t; ++next_stored) {
      Bar b = stored[next_stored];
      b.flags = (b.flags & ~flag::in_progress) | flag::closed | flag::from_store;
      if (w.publish(b)) ++hits;  // straight to the segment: it is on disk already
    }
  };
  for (const auto& r : missing) {
    publish_stored_before(r.from_ms);
    misses += static_cast<std::uint64_t>(store::bars_in(r, fs.interval_s));
    // A stored bar after a hole the klines did not fill would leave the hole behind the newest.
    if ((failed = fetch_klines(si, r.from_ms, r.to_ms, now_ms, fetched))) break;
  }
  if (!failed) publish_stored_before(end_excl);
  w.add_stat(Stat::store_hits, hits);
  w.add_stat(Stat::store_misses, misses);
  if (hits || misses)
    spdlog::info("{}: backfill: {} bar(s) from the history store, {} missing, {} fetched from REST", fs.id, hits,
                 misses, fetched);
  return failed;
}

// Blocking: the symbol's closed klines of `interval_s` opening in [from, to), in order, to `each`.
// How it failed when REST failed or answered nonsense (logged, naming `who`).
template <class Each>
std::optional<Failure> BinanceFeed::Impl::for_each_closed_kline(const std::string& who, const std::string& sym, std::uint32_t interval_s,
                           std::int64_t from, std::int64_t to, std::int64_t now_ms, Each&& each) {
  const std::int64_t len = std::int64_t{interval_s} * 1000;
  for (std::int64_t cursor = from; cursor < to;) {
    const std::int64_t n = std::min<std::int64_t>(kKlinesLimit, (to - cursor + len - 1) / len);
    const std::string target = klines_target(sym, interval_s, cursor, to - 1, n);
    auto resp = rest->get_blocking(target, kWeightKlines);
    if (!resp.ok()) {
      spdlog::error("{}: {} failed: {} ({})", who, target, net::to_string(resp.error), resp.message);
      return failure_of(resp.error);
    }
    const auto r = parser.parse_klines(resp.body, interval_s, kline_buf, now_ms);
    if (!r.ok()) {
      spdlog::error("{}: {}: bad response: {} {}", who, target, parse::to_string(r.status), r.detail);
      return Failure::permanent;
    }
    std::int64_t last_open = -1;
    for (const auto& k : kline_buf) {
      if (k.bar.open_time_ms < cursor || k.bar.open_time_ms >= to) continue;
      if (!kline_final(k, now_ms)) continue;  // the unfinished bar
      each(k.bar);
      last_open = k.bar.open_time_ms;
    }
    if (last_open < 0) break;  // the exchange has nothing (more) there
    cursor = last_open + len;
  }
  return std::nullopt;
}

std::optional<Failure> BinanceFeed::Impl::fetch_klines(std::size_t si, std::int64_t from, std::int64_t to, std::int64_t now_ms,
                                     std::uint64_t& fetched) {
  auto& fs = series[si];
  std::uint64_t published = 0;
  const auto failed = for_each_closed_kline(fs.id + ": backfill", syms[fs.symbol].name, fs.interval_s, from, to, now_ms, [&](const Bar& k) {
    Bar b = k;
    b.first_trade_id = b.last_trade_id = -1;  // a kline's f/L are trade ids, not aggTrade ids
    b.flags = flag::closed | flag::backfilled | (b.trade_count == 0 && b.volume == 0 ? flag::empty : 0);
    b.update_wall_ns = net::realtime_ns();
    if (fs.sink->publish(b)) ++published;
  });
  fs.sink->writer().add_stat(Stat::backfilled_bars, published);
  fetched += published;
  return failed;
}

// A series longer than the catch-up interval (1h, 1d) has its bar in progress since `open`,
// before the catch-up point t0: that part is the catch-up interval's closed bars, merged into one
// bar that the trades from t0 on continue. Without it the bar would hold only the trades since t0
// until the exchange's closed kline set it right, up to a day later. The catch-up series usually
// holds those bars already (backfilled just before, or from the store); REST is asked only for
// the part it does not hold.
std::optional<Failure> BinanceFeed::Impl::seed_in_progress(std::size_t si, std::int64_t open, std::int64_t t0, std::int64_t now_ms) {
  auto& fs = series[si];
  const auto& st = syms[fs.symbol];
  std::vector<Bar> parts;
  const std::int64_t held_from = held_closed_bars(fs.symbol, st.catch_up_interval_s, open, t0, parts);
  std::optional<Bar> seed;
  auto add = [&](const Bar& k) {
    if (seed) return aggregate::merge_bar(*seed, k);
    seed = k;
    seed->open_time_ms = open;
  };
  if (open < held_from)
    if (auto failed = for_each_closed_kline(fs.id + ": bar in progress", st.name, st.catch_up_interval_s, open,
                                            held_from, now_ms, add))
      return failed;
  for (const auto& b : parts) add(b);
  if (!seed) return std::nullopt;
  seed->first_trade_id = seed->last_trade_id = -1;
  seed->flags = flag::in_progress | flag::backfilled | (seed->trade_count == 0 ? flag::empty : 0);
  seed->update_wall_ns = net::realtime_ns();
  fs.sink->publish(*seed);
  return std::nullopt;
}

// The closed bars of the symbol's `interval_s` series in [from, to) that its segment holds
// contiguously back from `to`, oldest first, into `out`; returns the open time they start at
// (`to` when none).
std::int64_t BinanceFeed::Impl::held_closed_bars(std::size_t sym, std::uint32_t interval_s, std::int64_t from, std::int64_t to,
                              std::vector<Bar>& out) {
  const std::int64_t len = std::int64_t{interval_s} * 1000;
  std::int64_t expect = to - len;
  for (auto i : syms[sym].series) {
    if (series[i].interval_s != interval_s) continue;
    const auto* sink = series[i].sink;
    for (std::uint64_t idx = sink->head(); idx-- > 0 && expect >= from;) {
      const auto b = sink->bar_at(idx);
      if (!b) break;
      if (b->open_time_ms > expect) continue;  // the bar in progress at `to`
      if (b->open_time_ms != expect || !(b->flags & flag::closed)) break;
      out.push_back(*b);
      expect -= len;
    }
    break;
  }
  std::reverse(out.begin(), out.end());
  return expect + len;
}

// Backfill a symbol's series up to its catch-up point (blocking; at startup and for gaps too long
// for aggTrades); the machine then catches up from aggTrades since that point. Until the refill is
// complete the symbol is repairing: no bar of it closes on the clock, because a flat bar across the
// minutes the klines did not bring would be silently wrong. A refill that failed is run again from
// where it stopped.
RefillResult BinanceFeed::Impl::refill(std::size_t sym) {
  auto& st = syms[sym];
  const auto now = exchange_now();
  if (!now) return {Failure::transient, 0};
  if (st.gap->failures() == 0 && st.last_trade_ms > 0 && *now - st.last_trade_ms > opt.max_trade_repair.count())
    spdlog::warn("{}: gap of {} s: refilling bars from klines", st.name, (*now - st.last_trade_ms) / 1000);
  const std::int64_t t0 = bar_open_ms(*now, st.catch_up_interval_s);
  std::optional<Failure> failed;
  for (auto i : st.series)
    if (!failed) failed = backfill_series(i, bar_open_ms(t0, series[i].interval_s), *now);
  for (auto i : st.series)
    if (const std::int64_t open = bar_open_ms(t0, series[i].interval_s); !failed && open < t0)
      failed = seed_in_progress(i, open, t0, *now);
  aggs[sym].restore();  // continue from what the segments hold now, complete or not
  if (failed)
    spdlog::warn("{}: refilling bars from klines failed: its bars stay open until it is done", st.name);
  return {failed, t0};
}

}  // namespace mdshm::feed
