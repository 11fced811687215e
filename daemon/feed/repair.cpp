// Gap repair: live events held while REST aggTrades fill an id hole or a lost connection, giving up
// when REST stays away, and healing the bars a given-up gap left not_repaired.
#include "feed/binance_feed_impl.hpp"

#include <spdlog/spdlog.h>

namespace mdshm::feed {

using namespace detail;

void BinanceFeed::Impl::open_gap(std::size_t sym, std::string_view why) {
  auto& st = syms[sym];
  if (st.repairing) return;
  st.repairing = true;
  st.failures = 0;
  st.repaired_trades = 0;
  st.gap_from_ms = st.last_trade_ms;
  for_series_of(sym, Stat::gaps_detected, 1);
  spdlog::warn("{}: gap after aggTrade {} ({}): repairing from REST", st.name, aggs[sym].last_trade_id(), why);
  request_repair(sym);
}

void BinanceFeed::Impl::request_repair(std::size_t sym) {
  auto& st = syms[sym];
  if (st.in_flight || !st.repairing || st.resync_due) return;
  auto& agg = aggs[sym];
  std::string target = "/api/v3/aggTrades?symbol=" + st.name + "&limit=" + std::to_string(kAggTradesLimit);
  if (st.from_time) {
    target += "&startTime=" + std::to_string(*st.from_time);
  } else if (agg.last_trade_id() >= 0) {
    const auto now = exchange_now();
    if (now && st.last_trade_ms > 0 && *now - st.last_trade_ms > opt.max_trade_repair.count()) {
      spdlog::warn("{}: gap of {} s: refilling bars from klines", st.name, (*now - st.last_trade_ms) / 1000);
      st.resync_due = true;  // tick() runs it: blocking requests must not run inside a handler
      return;
    }
    target += "&fromId=" + std::to_string(agg.last_trade_id() + 1);
  } else {
    // Nothing to continue from: the first live trade starts the series.
    finish_when_ready(sym, 0);
    return;
  }
  st.in_flight = true;
  rest->get(std::move(target), kWeightAggTrades, [this, sym](net::RestResponse r) { on_repair_response(sym, std::move(r)); });
}

void BinanceFeed::Impl::retry_later(std::size_t sym, std::chrono::milliseconds d) {
  auto& st = syms[sym];
  st.timer->expires_after(d);
  st.timer->async_wait([this, sym](const boost::system::error_code& ec) {
    if (!ec) request_repair(sym);
  });
}

// What a failed repair request leads to. While the stream is down too, waiting loses nothing:
// the gap stays open and its bars unclosed, so a network outage shows as staleness, never as
// flat bars, and is refilled (from klines if it grew long) once REST answers again. Once the
// stream is back and live events are held, waiting is bounded by max_repair_hold: then the held
// events go live and the gap's bars are flagged not_repaired. An answer that retrying cannot fix
// gives up after kRepairAttempts.
void BinanceFeed::Impl::on_repair_failure(std::size_t sym, bool is_transient) {
  auto& st = syms[sym];
  ++st.failures;
  if (!is_transient && st.failures >= kRepairAttempts) return give_up(sym);
  if (is_transient && connected && !st.held.empty() &&
      std::chrono::steady_clock::now() - st.held_since > opt.max_repair_hold)
    return give_up(sym);
  retry_later(sym, retry_delay(st.failures));
}

void BinanceFeed::Impl::on_repair_response(std::size_t sym, net::RestResponse r) {
  auto& st = syms[sym];
  st.in_flight = false;
  if (r.error == net::RestError::stopped) return;
  if (!r.ok()) {
    rest_log.warn("{}: aggTrades repair failed: {} ({})", st.name, net::to_string(r.error), r.message);
    return on_repair_failure(sym, transient(r.error));
  }
  const auto pr = parser.parse_agg_trades(r.body, trade_buf);
  if (!pr.ok()) {
    rest_log.warn("{}: aggTrades repair: bad response: {} {}", st.name, parse::to_string(pr.status), pr.detail);
    return on_repair_failure(sym, false);
  }
  st.failures = 0;
  auto& agg = aggs[sym];
  const std::optional<std::int64_t> from_time = st.from_time;
  st.from_time.reset();
  for (const auto& t : trade_buf) {
    if (from_time && t.time_ms < *from_time) continue;
    if (agg.last_trade_id() >= 0 && t.id <= agg.last_trade_id()) continue;
    if (agg.on_repair_trade(t) == aggregate::TradeOutcome::applied) {
      ++st.repaired_trades;
      note_trade(st, t);
    }
  }
  finish_when_ready(sym, trade_buf.size());
}

// After a repair step: apply held events that now continue the ids; done when nothing is held
// and the stream is back, else ask REST for more.
void BinanceFeed::Impl::finish_when_ready(std::size_t sym, std::size_t received) {
  auto& st = syms[sym];
  auto& agg = aggs[sym];
  std::size_t i = 0;
  for (; i < st.held.size(); ++i) {
    const auto& h = st.held[i];
    if (h.is_kline) {
      apply_kline(sym, h.kline);
      continue;
    }
    const auto last = agg.last_trade_id();
    if (last >= 0 && h.trade.id > last + 1) break;  // still a hole before this one
    if (last >= 0 && h.trade.id <= last) continue;  // REST brought it already: overlap, not a duplicate
    apply_trade(sym, h.trade);
  }
  st.held.erase(st.held.begin(), st.held.begin() + static_cast<std::ptrdiff_t>(i));
  if (received >= static_cast<std::size_t>(kAggTradesLimit)) return request_repair(sym);
  if (!st.held.empty()) return retry_later(sym, std::chrono::milliseconds(50));  // REST behind the stream
  // Healthy only once the new connection delivers this symbol: trades between REST's answer and
  // the stream's start would otherwise go unnoticed until the next trade.
  if (!connected || !st.seen_since_connect) return retry_later(sym, std::chrono::milliseconds(250));
  st.repairing = false;
  for_series_of(sym, Stat::gaps_repaired, 1);
  spdlog::info("{}: healthy: {} trade(s) repaired from REST, continuing after aggTrade {}", st.name,
               st.repaired_trades, agg.last_trade_id());
  st.repaired_trades = 0;
}

// REST cannot fill the gap: continue from what is held and flag the bars the gap touched.
void BinanceFeed::Impl::give_up(std::size_t sym) {
  auto& st = syms[sym];
  auto& agg = aggs[sym];
  spdlog::error("{}: gap after aggTrade {} could not be repaired; bars it touched are flagged not_repaired",
                st.name, agg.last_trade_id());
  // The gap ends at the first held trade (held klines carry no trade time), else now.
  const auto first_trade = std::find_if(st.held.begin(), st.held.end(), [](const Held& h) { return !h.is_kline; });
  const std::int64_t gap_to =
      first_trade != st.held.end() ? first_trade->trade.time_ms : exchange_now().value_or(st.gap_from_ms);
  const std::int64_t gap_from = st.gap_from_ms ? st.gap_from_ms : gap_to;
  for (const auto& h : st.held) {
    if (h.is_kline) apply_kline(sym, h.kline);
    else apply_trade(sym, h.trade);
  }
  st.held.clear();
  for (auto si : st.series) flag_not_repaired(si, gap_from, gap_to);
  st.unhealed.emplace_back(gap_from, gap_to);
  st.repairing = false;
  st.resync_due = false;  // a refill that could not finish is given up on with the rest
  st.from_time.reset();
  st.failures = 0;
}

// Bars a gap left not_repaired are reconciled with the exchange's REST klines once REST answers
// again: the exchange's values win and the flag goes. One request at a time, series by series;
// bars still open by then are reconciled by the stream's own closed kline instead.
void BinanceFeed::Impl::heal(std::size_t sym) {
  auto& st = syms[sym];
  const auto now = exchange_now();
  if (!now || st.unhealed.empty()) return;
  st.healing = true;
  heal_step(sym, 0, st.unhealed.front().first, *now);
}

void BinanceFeed::Impl::heal_step(std::size_t sym, std::size_t k, std::int64_t cursor, std::int64_t now) {
  auto& st = syms[sym];
  const auto [gap_from, gap_to] = st.unhealed.front();
  for (; k < st.series.size(); ++k, cursor = gap_from) {
    const auto& fs = series[st.series[k]];
    const std::int64_t len = std::int64_t{fs.interval_s} * 1000;
    const std::int64_t from = bar_open_ms(cursor, fs.interval_s);
    const std::int64_t to = std::min(bar_open_ms(gap_to, fs.interval_s), bar_open_ms(now, fs.interval_s) - len);
    if (from > to) continue;
    const std::int64_t n = std::min<std::int64_t>(kKlinesLimit, (to - from) / len + 1);
    auto target = klines_target(st.name, fs.interval_s, from, to, n);
    rest->get(std::move(target), kWeightKlines, [this, sym, k, to, len, now](net::RestResponse r) {
      auto& s = syms[sym];
      const auto& f = series[s.series[k]];
      // A new gap's resync rewrites these bars anyway; its own failures come back here later.
      if (r.error == net::RestError::stopped || s.repairing) {
        s.healing = false;
        return;
      }
      const auto pr = r.ok() ? parser.parse_klines(r.body, f.interval_s, kline_buf, now) : parse::ParseResult{};
      if (!r.ok() || !pr.ok()) {
        rest_log.warn("{}: klines for bars not repaired: {}", f.id, r.ok() ? pr.detail : r.message);
        s.healing = false;
        s.next_heal = std::chrono::steady_clock::now() + retry_delay(++s.heal_failures);
        return;
      }
      std::int64_t last = -1;
      for (const auto& kl : kline_buf) {
        if (kl.bar.open_time_ms > to || !kline_final(kl, now)) continue;
        Kline closed = kl;
        closed.closed = true;
        aggs[sym].on_exchange_kline(closed);
        last = kl.bar.open_time_ms;
      }
      if (last >= 0 && last < to) return heal_step(sym, k, last + len, now);
      heal_step(sym, k + 1, s.unhealed.front().first, now);
    });
    return;
  }
  spdlog::info("{}: bars of the gap {}..{} reconciled with the exchange's klines", st.name, gap_from, gap_to);
  st.unhealed.erase(st.unhealed.begin());
  st.healing = false;
  st.heal_failures = 0;
}

// Bars that carry the exchange's values (reconciled with its closed kline, or refilled from its
// klines) are right whatever the gap did to the trades: they are not flagged.
void BinanceFeed::Impl::flag_not_repaired(std::size_t si, std::int64_t from_ms, std::int64_t to_ms) {
  auto& fs = series[si];
  const std::int64_t lo = bar_open_ms(from_ms, fs.interval_s), hi = bar_open_ms(to_ms, fs.interval_s);
  std::uint64_t n = 0;
  for (std::uint64_t idx = fs.sink->head(); idx-- > 0;) {
    auto b = fs.sink->bar_at(idx);
    if (!b || b->open_time_ms < lo) break;
    if (b->open_time_ms > hi) continue;
    if ((b->flags & flag::reconciled) || (b->flags & (flag::closed | flag::backfilled)) == (flag::closed | flag::backfilled))
      continue;
    b->flags |= flag::not_repaired;
    if (fs.sink->amend(idx, *b)) ++n;
  }
  fs.sink->add_stat(Stat::not_repaired_bars, n);
}

}  // namespace mdshm::feed
