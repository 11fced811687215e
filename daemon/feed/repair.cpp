// Gap repair: live events held while REST aggTrades fill an id hole or a lost connection, giving up
// when REST stays away, and healing the bars a given-up gap left not_repaired.
#include "feed/binance_feed_impl.hpp"

#include <spdlog/spdlog.h>

namespace mdshm::feed {

using namespace detail;

namespace {

// The GapMachine's view of one symbol of the feed.
class SymbolPort final : public GapPort {
 public:
  SymbolPort(BinanceFeed::Impl& f, std::size_t sym) : f_(f), sym_(sym), timer_(f.ioc) {}

  std::optional<std::int64_t> exchange_now_ms() override { return f_.exchange_now(); }
  SteadyTime steady_now() override { return std::chrono::steady_clock::now(); }
  std::int64_t last_trade_id() override { return f_.aggs[sym_].last_trade_id(); }
  std::int64_t last_trade_ms() override { return st().last_trade_ms; }
  bool holding() override { return !st().held.empty(); }
  SteadyTime held_since() override { return st().held_since; }
  bool stream_up() override { return f_.connected; }
  bool stream_delivered() override { return st().seen_since_connect; }
  void drain_held() override { f_.drain_held(sym_); }
  void request_trades_from_id(std::int64_t id, std::uint64_t seq) override {
    f_.request_trades(sym_, "&fromId=" + std::to_string(id), seq, std::nullopt);
  }
  void request_trades_since(std::int64_t time_ms, std::uint64_t seq) override {
    f_.request_trades(sym_, "&startTime=" + std::to_string(time_ms), seq, time_ms);
  }
  RefillResult refill() override { return f_.refill(sym_); }
  void start_timer(std::chrono::milliseconds d) override {
    timer_.expires_after(d);
    timer_.async_wait([this](const boost::system::error_code& ec) {
      if (!ec) st().gap->on_timer();
    });
  }
  void cancel_timer() override { timer_.cancel(); }
  void gave_up() override { f_.give_up(sym_); }
  void healthy() override { f_.on_healthy(sym_); }

 private:
  SymbolState& st() { return f_.syms[sym_]; }
  BinanceFeed::Impl& f_;
  std::size_t sym_;
  asio::steady_timer timer_;
};

}  // namespace

std::unique_ptr<GapPort> make_symbol_port(BinanceFeed::Impl& feed, std::size_t sym) {
  return std::make_unique<SymbolPort>(feed, sym);
}

void BinanceFeed::Impl::open_gap(std::size_t sym, std::string_view why) {
  auto& st = syms[sym];
  if (st.gap->repairing()) return;
  st.repaired_trades = 0;
  st.gap_from_ms = st.last_trade_ms;
  for_series_of(sym, Stat::gaps_detected, 1);
  spdlog::warn("{}: gap after aggTrade {} ({}): repairing from REST", st.name, aggs[sym].last_trade_id(), why);
  st.gap->open_gap();
}

void BinanceFeed::Impl::request_trades(std::size_t sym, std::string query, std::uint64_t seq,
                                       std::optional<std::int64_t> since) {
  auto& st = syms[sym];
  std::string target =
      "/api/v3/aggTrades?symbol=" + st.name + "&limit=" + std::to_string(kAggTradesPage) + std::move(query);
  rest->get(std::move(target), kWeightAggTrades, [this, sym, seq, since](net::RestResponse r) {
    on_repair_response(sym, seq, since, std::move(r));
  });
}

void BinanceFeed::Impl::on_repair_response(std::size_t sym, std::uint64_t seq, std::optional<std::int64_t> since,
                                           net::RestResponse r) {
  auto& st = syms[sym];
  if (r.error == net::RestError::stopped || !st.gap->expects(seq)) return;
  if (!r.ok()) {
    rest_log.warn("{}: aggTrades repair failed: {} ({})", st.name, net::to_string(r.error), r.message);
    return st.gap->on_failure(seq, failure_of(r.error));
  }
  const auto pr = parser.parse_agg_trades(r.body, trade_buf);
  if (!pr.ok()) {
    rest_log.warn("{}: aggTrades repair: bad response: {} {}", st.name, parse::to_string(pr.status), pr.detail);
    return st.gap->on_failure(seq, Failure::permanent);
  }
  auto& agg = aggs[sym];
  for (const auto& t : trade_buf) {
    if (since && t.time_ms < *since) continue;
    if (agg.last_trade_id() >= 0 && t.id <= agg.last_trade_id()) continue;
    if (agg.on_repair_trade(t) == aggregate::TradeOutcome::applied) {
      ++st.repaired_trades;
      note_trade(st, t);
    }
  }
  drain_held(sym);
  st.gap->on_trades(seq, trade_buf.size());
}

// Applies the held events that now continue the ids (those REST already brought are skipped).
void BinanceFeed::Impl::drain_held(std::size_t sym) {
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
}

void BinanceFeed::Impl::on_healthy(std::size_t sym) {
  auto& st = syms[sym];
  for_series_of(sym, Stat::gaps_repaired, 1);
  spdlog::info("{}: healthy: {} trade(s) repaired from REST, continuing after aggTrade {}", st.name,
               st.repaired_trades, aggs[sym].last_trade_id());
  st.repaired_trades = 0;
}

// REST cannot fill the gap (the machine gave up): continue from what is held and flag the bars
// the gap touched.
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
      if (r.error == net::RestError::stopped || s.gap->repairing()) {
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
