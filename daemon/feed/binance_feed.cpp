#include "feed/binance_feed.hpp"

#include <algorithm>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <optional>
#include <spdlog/spdlog.h>

#include "feed/bounded_log.hpp"
#include "feed/exchange_clock.hpp"
#include "feed/recorder.hpp"
#include "net/clock_sync.hpp"
#include "net/rest_client.hpp"
#include "net/tls_options.hpp"
#include "net/ws_feed.hpp"
#include "parse/frame_parser.hpp"

namespace mdshm::feed {

namespace asio = boost::asio;

std::vector<std::string> stream_names(const std::vector<std::string>& symbols,
                                      const std::vector<std::pair<std::string, std::uint32_t>>& symbol_intervals) {
  auto lower = [](std::string s) {
    for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return s;
  };
  std::vector<std::string> out;
  auto add = [&](std::string s) {
    if (std::find(out.begin(), out.end(), s) == out.end()) out.push_back(std::move(s));
  };
  for (const auto& s : symbols) add(lower(s) + "@aggTrade");
  for (const auto& [sym, iv] : symbol_intervals) add(lower(sym) + "@kline_" + std::string(interval_name(iv)));
  return out;
}

namespace {

constexpr int kAggTradesLimit = 1000;
constexpr int kKlinesLimit = 1000;
constexpr int kWeightAggTrades = 4;
constexpr int kWeightKlines = 2;
constexpr int kRepairAttempts = 3;
constexpr auto kRepairRetryMax = std::chrono::milliseconds(30'000);

// 1 s after the first failure, doubling, at most kRepairRetryMax.
std::chrono::milliseconds retry_delay(int failures) {
  return std::min<std::chrono::milliseconds>(std::chrono::milliseconds(1000) * (1 << std::clamp(failures - 1, 0, 5)),
                                             kRepairRetryMax);
}

// A repair request that failed because the network or the exchange is away (no answer, 5xx, 429,
// a 418 ban) is worth repeating for as long as it takes; a 4xx or a body that does not parse is not.
bool transient(net::RestError e) {
  switch (e) {
    case net::RestError::network:
    case net::RestError::timeout:
    case net::RestError::truncated:
    case net::RestError::rate_limited:
    case net::RestError::banned:
    case net::RestError::server_error: return true;
    default: return false;
  }
}

struct Held {
  bool is_kline = false;
  Trade trade;
  Kline kline;
};

struct SymbolState {
  std::string name;  // upper case
  std::vector<std::size_t> series;
  std::uint32_t catch_up_interval_s = 0;  // the largest interval <= catch_up_max (or the smallest)
  bool repairing = false;
  bool in_flight = false;
  bool resync_due = false;
  std::optional<std::int64_t> from_time;  // next repair request by startTime (catch-up)
  std::int64_t gap_from_ms = 0;           // last trade time when the gap opened
  std::vector<Held> held;
  std::int64_t last_trade_ms = 0;
  int failures = 0;
  std::chrono::steady_clock::time_point held_since{};  // when the first event of `held` came
  bool seen_since_connect = false;  // a frame of this symbol on the current connection
  std::uint64_t repaired_trades = 0;
  std::vector<std::pair<std::uint32_t, std::int64_t>> last_kline;  // interval -> newest closed kline open
  std::unique_ptr<asio::steady_timer> timer;
  // Gaps given up on (exchange-time ranges) whose bars still wait for the exchange's klines.
  std::vector<std::pair<std::int64_t, std::int64_t>> unhealed;
  bool healing = false;
  int heal_failures = 0;
  std::chrono::steady_clock::time_point next_heal{};
  // Counters flushed to the segments in tick(): the hot path touches no shared cache line.
  std::uint64_t frames = 0;
};

}  // namespace

struct BinanceFeed::Impl {
  Impl(asio::io_context& io, FeedOptions o, std::vector<aggregate::SymbolAggregator>& a, std::vector<FeedSeries> s)
      : ioc(io), opt(std::move(o)), aggs(a), series(std::move(s)) {
    net::RestOptions ro;
    ro.base_url = opt.rest_url;
    ro.tls.ca_file = opt.ca_file;
    ro.weight.budget = opt.rest_weight_budget;
    ro.ban_backoff = opt.rest_ban_backoff;
    rest = std::make_unique<net::RestClient>(ioc, ro);
    rest->set_abort(opt.abort);
    for (std::size_t i = 0; i < aggs.size(); ++i) {
      SymbolState st;
      st.name = aggs[i].symbol();
      st.timer = std::make_unique<asio::steady_timer>(ioc);
      syms.push_back(std::move(st));
    }
    for (std::size_t i = 0; i < series.size(); ++i) syms[series[i].symbol].series.push_back(i);
    for (auto& st : syms) {
      std::uint32_t smallest = 0, best = 0;
      for (auto i : st.series) {
        const auto iv = series[i].interval_s;
        if (!smallest || iv < smallest) smallest = iv;
        if (iv <= opt.catch_up_max_interval_s && iv > best) best = iv;
      }
      st.catch_up_interval_s = best ? best : smallest;
    }
  }

  asio::io_context& ioc;
  FeedOptions opt;
  std::vector<aggregate::SymbolAggregator>& aggs;
  std::vector<FeedSeries> series;
  std::vector<SymbolState> syms;
  std::unique_ptr<net::RestClient> rest;
  std::unique_ptr<net::WsFeed> ws;
  std::unique_ptr<asio::steady_timer> clock_timer;
  parse::FrameParser parser;
  parse::Event ev;
  ExchangeClock clock;
  FrameRecorder recorder;
  bool connected = false;
  bool ever_connected = false;
  int clock_samples = 0;
  std::uint64_t unattributed_frames = 0, parse_errors = 0, rejected = 0, unknown_events = 0;
  std::vector<Kline> kline_buf;
  std::vector<Trade> trade_buf;
  BoundedLog bad_frames{"bad frames"};
  BoundedLog bad_trades{"rejected trades"};
  BoundedLog dup_trades{"duplicate trades"};
  BoundedLog rest_log{"REST"};

  // ---- helpers --------------------------------------------------------------------------------
  void for_series_of(std::size_t sym, Stat s, std::uint64_t n) {
    for (auto i : syms[sym].series) series[i].sink->writer().add_stat(s, n);
  }
  void for_all_series(Stat s, std::uint64_t n) {
    for (auto& fs : series) fs.sink->writer().add_stat(s, n);
  }
  std::optional<std::size_t> find_symbol(const parse::Symbol& s) const {
    for (std::size_t i = 0; i < syms.size(); ++i)
      if (s.equals_ignore_case(syms[i].name)) return i;
    return std::nullopt;
  }
  std::optional<std::int64_t> exchange_now() { return clock.now_ms(net::realtime_ns()); }

  void add_clock_sample(const net::RestResponse& r) {
    std::int64_t server_ms = 0;
    if (!r.ok() || !parser.parse_server_time(r.body, server_ms).ok()) return;
    clock.add_sample(r.sent_wall_ns / 2 + r.recv_wall_ns / 2, server_ms);
    rest->set_clock_offset_ns(clock.offset_ns());
    ++clock_samples;
  }

  // ---- startup backfill (blocking) ------------------------------------------------------------
  // Fills series `si` with closed bars whose open is before `end_excl`: the store's first, then
  // REST klines for only what neither the segment nor the store holds.
  void backfill_series(std::size_t si, std::int64_t end_excl, std::int64_t now_ms) {
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
    if (from >= end_excl) return;

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
      fetched += fetch_klines(si, r.from_ms, r.to_ms, now_ms);
    }
    publish_stored_before(end_excl);
    w.add_stat(Stat::store_hits, hits);
    w.add_stat(Stat::store_misses, misses);
    if (hits || misses)
      spdlog::info("{}: backfill: {} bar(s) from the history store, {} missing, {} fetched from REST", fs.id, hits,
                   misses, fetched);
  }

  // Blocking: the symbol's closed klines of `interval_s` opening in [from, to), in order, to `each`.
  // False when REST failed or answered nonsense (logged, naming `who`).
  template <class Each>
  bool for_each_closed_kline(const std::string& who, const std::string& sym, std::uint32_t interval_s,
                             std::int64_t from, std::int64_t to, std::int64_t now_ms, Each&& each) {
    const std::int64_t len = std::int64_t{interval_s} * 1000;
    for (std::int64_t cursor = from; cursor < to;) {
      const std::int64_t n = std::min<std::int64_t>(kKlinesLimit, (to - cursor + len - 1) / len);
      const std::string target = "/api/v3/klines?symbol=" + sym + "&interval=" + std::string(interval_name(interval_s)) +
                                 "&startTime=" + std::to_string(cursor) + "&endTime=" + std::to_string(to - 1) +
                                 "&limit=" + std::to_string(n);
      auto resp = rest->get_blocking(target, kWeightKlines);
      if (!resp.ok()) {
        spdlog::error("{}: {} failed: {} ({})", who, target, net::to_string(resp.error), resp.message);
        return false;
      }
      const auto r = parser.parse_klines(resp.body, interval_s, kline_buf, now_ms);
      if (!r.ok()) {
        spdlog::error("{}: {}: bad response: {} {}", who, target, parse::to_string(r.status), r.detail);
        return false;
      }
      std::int64_t last_open = -1;
      for (const auto& k : kline_buf) {
        if (k.bar.open_time_ms < cursor || k.bar.open_time_ms >= to) continue;
        if (!k.closed && k.bar.open_time_ms + len > now_ms) continue;  // the unfinished bar
        each(k.bar);
        last_open = k.bar.open_time_ms;
      }
      if (last_open < 0) break;  // the exchange has nothing (more) there
      cursor = last_open + len;
    }
    return true;
  }

  std::uint64_t fetch_klines(std::size_t si, std::int64_t from, std::int64_t to, std::int64_t now_ms) {
    auto& fs = series[si];
    std::uint64_t published = 0;
    for_each_closed_kline(fs.id + ": backfill", syms[fs.symbol].name, fs.interval_s, from, to, now_ms, [&](const Bar& k) {
      Bar b = k;
      b.first_trade_id = b.last_trade_id = -1;  // a kline's f/L are trade ids, not aggTrade ids
      b.flags = flag::closed | flag::backfilled | (b.trade_count == 0 && b.volume == 0 ? flag::empty : 0);
      b.update_wall_ns = net::realtime_ns();
      if (fs.sink->publish(b)) ++published;
    });
    fs.sink->writer().add_stat(Stat::backfilled_bars, published);
    return published;
  }

  // A series longer than the catch-up interval (1h, 1d) has its bar in progress since `open`,
  // before the catch-up point t0: that part is the catch-up interval's closed bars, merged into one
  // bar that the trades from t0 on continue. Without it the bar would hold only the trades since t0
  // until the exchange's closed kline set it right, up to a day later. The catch-up series usually
  // holds those bars already (backfilled just before, or from the store); REST is asked only for
  // the part it does not hold.
  void seed_in_progress(std::size_t si, std::int64_t open, std::int64_t t0, std::int64_t now_ms) {
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
    if (open < held_from &&
        !for_each_closed_kline(fs.id + ": bar in progress", st.name, st.catch_up_interval_s, open, held_from, now_ms, add))
      return;  // the bar then starts at t0, and reconciliation flags it when it closes
    for (const auto& b : parts) add(b);
    if (!seed) return;
    seed->first_trade_id = seed->last_trade_id = -1;
    seed->flags = flag::in_progress | flag::backfilled | (seed->trade_count == 0 ? flag::empty : 0);
    seed->update_wall_ns = net::realtime_ns();
    fs.sink->publish(*seed);
  }

  // The closed bars of the symbol's `interval_s` series in [from, to) that its segment holds
  // contiguously back from `to`, oldest first, into `out`; returns the open time they start at
  // (`to` when none).
  std::int64_t held_closed_bars(std::size_t sym, std::uint32_t interval_s, std::int64_t from, std::int64_t to,
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

  // Backfill a symbol's series up to its catch-up point and hold its live events until the
  // aggTrades since then are in. Blocking; at startup and for gaps too long for aggTrades.
  void resync(std::size_t sym) {
    auto& st = syms[sym];
    const auto now = exchange_now();
    if (!now) return;
    const std::int64_t t0 = bar_open_ms(*now, st.catch_up_interval_s);
    for (auto i : st.series) backfill_series(i, bar_open_ms(t0, series[i].interval_s), *now);
    for (auto i : st.series)
      if (const std::int64_t open = bar_open_ms(t0, series[i].interval_s); open < t0) seed_in_progress(i, open, t0, *now);
    aggs[sym].restore();
    st.resync_due = false;
    st.repairing = true;
    st.from_time = t0;
    request_repair(sym);
  }

  // ---- gap repair (asynchronous) --------------------------------------------------------------
  void open_gap(std::size_t sym, std::string_view why) {
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

  void request_repair(std::size_t sym) {
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

  void retry_later(std::size_t sym, std::chrono::milliseconds d) {
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
  void on_repair_failure(std::size_t sym, bool is_transient) {
    auto& st = syms[sym];
    ++st.failures;
    if (!is_transient && st.failures >= kRepairAttempts) return give_up(sym);
    if (is_transient && connected && !st.held.empty() &&
        std::chrono::steady_clock::now() - st.held_since > opt.max_repair_hold)
      return give_up(sym);
    retry_later(sym, retry_delay(st.failures));
  }

  void on_repair_response(std::size_t sym, net::RestResponse r) {
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
  void finish_when_ready(std::size_t sym, std::size_t received) {
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
  void give_up(std::size_t sym) {
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
    st.failures = 0;
  }

  // ---- healing (asynchronous) -------------------------------------------------------------------
  // Bars a gap left not_repaired are reconciled with the exchange's REST klines once REST answers
  // again: the exchange's values win and the flag goes. One request at a time, series by series;
  // bars still open by then are reconciled by the stream's own closed kline instead.
  void heal(std::size_t sym) {
    auto& st = syms[sym];
    const auto now = exchange_now();
    if (!now || st.unhealed.empty()) return;
    st.healing = true;
    heal_step(sym, 0, st.unhealed.front().first, *now);
  }

  void heal_step(std::size_t sym, std::size_t k, std::int64_t cursor, std::int64_t now) {
    auto& st = syms[sym];
    const auto [gap_from, gap_to] = st.unhealed.front();
    for (; k < st.series.size(); ++k, cursor = gap_from) {
      const auto& fs = series[st.series[k]];
      const std::int64_t len = std::int64_t{fs.interval_s} * 1000;
      const std::int64_t from = bar_open_ms(cursor, fs.interval_s);
      const std::int64_t to = std::min(bar_open_ms(gap_to, fs.interval_s), bar_open_ms(now, fs.interval_s) - len);
      if (from > to) continue;
      const std::int64_t n = std::min<std::int64_t>(kKlinesLimit, (to - from) / len + 1);
      std::string target = "/api/v3/klines?symbol=" + st.name + "&interval=" + std::string(interval_name(fs.interval_s)) +
                           "&startTime=" + std::to_string(from) + "&endTime=" + std::to_string(to) +
                           "&limit=" + std::to_string(n);
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
          if (kl.bar.open_time_ms > to || (!kl.closed && kl.bar.open_time_ms + len > now)) continue;
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

  void flag_not_repaired(std::size_t si, std::int64_t from_ms, std::int64_t to_ms) {
    auto& fs = series[si];
    const std::int64_t lo = bar_open_ms(from_ms, fs.interval_s), hi = bar_open_ms(to_ms, fs.interval_s);
    std::uint64_t n = 0;
    for (std::uint64_t idx = fs.sink->head(); idx-- > 0;) {
      auto b = fs.sink->bar_at(idx);
      if (!b || b->open_time_ms < lo) break;
      if (b->open_time_ms > hi) continue;
      b->flags |= flag::not_repaired;
      if (fs.sink->amend(idx, *b)) ++n;
    }
    fs.sink->add_stat(Stat::not_repaired_bars, n);
  }

  // ---- live events ----------------------------------------------------------------------------
  void note_trade(SymbolState& st, const Trade& t) {
    st.last_trade_ms = std::max(st.last_trade_ms, t.time_ms);
    clock.saw_exchange_time(t.time_ms);
  }

  void apply_trade(std::size_t sym, const Trade& t) {
    auto& agg = aggs[sym];
    switch (agg.on_trade(t)) {
      case aggregate::TradeOutcome::applied: note_trade(syms[sym], t); break;
      case aggregate::TradeOutcome::rejected:
        bad_trades.warn("{}: trade {} rejected (price {}, qty {}, time {})", agg.symbol(), t.id, t.price, t.qty, t.time_ms);
        break;
      case aggregate::TradeOutcome::duplicate: dup_trades.warn("{}: duplicate aggTrade {} dropped", agg.symbol(), t.id); break;
    }
  }

  void apply_kline(std::size_t sym, const Kline& k) {
    auto& st = syms[sym];
    for (auto& [iv, open] : st.last_kline)
      if (iv == k.interval_s) {
        if (k.bar.open_time_ms <= open) return;  // seen (two connections overlap during a rotation)
        open = k.bar.open_time_ms;
        aggs[sym].on_exchange_kline(k);
        return;
      }
    st.last_kline.emplace_back(k.interval_s, k.bar.open_time_ms);
    aggs[sym].on_exchange_kline(k);
  }

  void hold(std::size_t sym, Held h) {
    auto& st = syms[sym];
    if (st.held.size() >= opt.max_held_events) {
      spdlog::error("{}: {} live events held while repairing: giving up the repair", st.name, st.held.size());
      give_up(sym);
      return apply_live(sym, std::move(h));
    }
    if (st.held.empty()) st.held_since = std::chrono::steady_clock::now();
    st.held.push_back(std::move(h));
  }

  void apply_live(std::size_t sym, Held h) {
    if (h.is_kline) apply_kline(sym, h.kline);
    else apply_trade(sym, h.trade);
  }

  void on_trade_event(std::size_t sym, const Trade& t) {
    auto& st = syms[sym];
    if (st.repairing) return hold(sym, Held{false, t, {}});
    const auto last = aggs[sym].last_trade_id();
    if (last >= 0 && t.id > last + 1) {
      open_gap(sym, "aggTrade id hole: " + std::to_string(last + 1) + ".." + std::to_string(t.id - 1));
      return hold(sym, Held{false, t, {}});
    }
    apply_trade(sym, t);
  }

  void on_kline_event(std::size_t sym, const Kline& k) {
    if (!k.closed) return;  // only closed klines reconcile
    if (syms[sym].repairing) return hold(sym, Held{true, {}, k});
    apply_kline(sym, k);
  }

  void handle_frame(std::string_view text, std::int64_t recv_ns) {
    recorder.write(recv_ns, text);
    const auto r = parser.parse(text, ev, recv_ns);
    if (!r.ok()) {
      ++unattributed_frames;
      if (r.status == parse::Status::ignored) return;
      if (const auto stat = parse::stat_for(r.status)) {
        if (*stat == Stat::unknown_events) ++unknown_events;
        else if (*stat == Stat::rejected_values) ++rejected;
        else ++parse_errors;
      }
      bad_frames.warn("bad frame: {} ({}): {:.200}", parse::to_string(r.status), r.detail, text);
      return;
    }
    if (ev.kind == parse::EventKind::server_shutdown) {
      ++unattributed_frames;
      spdlog::info("serverShutdown received: rotating the connection");
      if (ws) ws->request_rotation("serverShutdown");
      return;
    }
    const auto sym = find_symbol(ev.symbol);
    if (!sym) {
      ++unattributed_frames;
      ++unknown_events;
      bad_frames.warn("frame for a symbol not configured: {}", ev.symbol.view());
      return;
    }
    ++syms[*sym].frames;
    syms[*sym].seen_since_connect = true;
    switch (ev.kind) {
      case parse::EventKind::agg_trade: on_trade_event(*sym, ev.trade); break;
      case parse::EventKind::kline: on_kline_event(*sym, ev.kline); break;
      default: break;  // legacy `trade` stream: not subscribed, not an aggTrade id
    }
  }

  void on_ws_event(const net::WsEvent& e) {
    switch (e.kind) {
      case net::WsEvent::Kind::connected:
        spdlog::info("stream connected (connection {}{})", e.conn_id, e.rotation ? ", rotation" : "");
        if (!e.rotation && ever_connected) for_all_series(Stat::reconnects, 1);
        connected = true;
        ever_connected = true;
        if (!e.rotation)
          for (std::size_t s = 0; s < syms.size(); ++s) {
            syms[s].seen_since_connect = false;
            // A repair waiting out an outage goes again now rather than at its next retry.
            if (syms[s].repairing && !syms[s].in_flight) {
              syms[s].timer->cancel();
              request_repair(s);
            }
          }
        break;
      case net::WsEvent::Kind::rotated:
        spdlog::info("stream rotated: connection {} took over from {}", e.conn_id, e.previous_conn_id);
        break;
      case net::WsEvent::Kind::stalled: spdlog::warn("stream stalled (connection {}): {}", e.conn_id, e.reason); break;
      case net::WsEvent::Kind::disconnected:
        spdlog::warn("stream disconnected (connection {}): {}{}", e.conn_id, e.reason, e.feed_lost ? "" : " (covered)");
        if (e.feed_lost) {
          connected = false;
          for (std::size_t s = 0; s < syms.size(); ++s) open_gap(s, "connection lost");
        }
        break;
    }
  }

  // ---- periodic ---------------------------------------------------------------------------------
  void schedule_clock_sync() {
    // The first few samples come fast so the clock's rate is known within seconds.
    const auto d = clock_samples < 4 ? std::chrono::milliseconds(1000) : opt.clock_sync_interval;
    clock_timer->expires_after(d);
    clock_timer->async_wait([this](const boost::system::error_code& ec) {
      if (ec) return;
      rest->get("/api/v3/time", 1, [this](net::RestResponse r) {
        if (r.error == net::RestError::stopped) return;
        if (r.ok()) add_clock_sample(r);
        else rest_log.warn("clock sync failed: {} ({})", net::to_string(r.error), r.message);
        schedule_clock_sync();
      });
    });
  }

  void tick() {
    const auto steady = std::chrono::steady_clock::now();
    for (std::size_t s = 0; s < syms.size(); ++s) {
      auto& st = syms[s];
      if (st.resync_due && !st.in_flight) resync(s);
      if (!st.repairing && !st.healing && !st.unhealed.empty() && steady >= st.next_heal && !rest->banned_until_ns())
        heal(s);
    }
    if (const auto now = exchange_now()) {
      const auto grace = static_cast<std::int64_t>(static_cast<double>(opt.close_grace.count()) * clock.rate());
      for (std::size_t s = 0; s < syms.size(); ++s)
        if (!syms[s].repairing) aggs[s].advance_to(*now - grace);
    }
    for (auto& fs : series)
      if (auto* st = fs.sink->store()) {
        if (auto r = st->maybe_sync(steady); !r.ok()) rest_log.warn("{}: store sync: {}", fs.id, r.message);
      }
    flush_counters();
    recorder.flush();
  }

  void flush_counters() {
    for (std::size_t s = 0; s < syms.size(); ++s) {
      if (syms[s].frames) for_series_of(s, Stat::frames, syms[s].frames);
      syms[s].frames = 0;
    }
    if (unattributed_frames) for_all_series(Stat::frames, unattributed_frames);
    if (parse_errors) for_all_series(Stat::parse_errors, parse_errors);
    if (rejected) for_all_series(Stat::rejected_values, rejected);
    if (unknown_events) for_all_series(Stat::unknown_events, unknown_events);
    unattributed_frames = parse_errors = rejected = unknown_events = 0;
    const auto& rs = rest->stats();
    const auto offset_ms = static_cast<std::uint64_t>(clock.offset_ns() / 1'000'000);
    for (auto& fs : series) {
      fs.sink->writer().set_stat(Stat::exchange_offset_ms, offset_ms);
      fs.sink->writer().set_stat(Stat::rest_requests, rs.requests);
      if (rs.last_used_weight >= 0) fs.sink->writer().set_stat(Stat::rest_weight_used, static_cast<std::uint64_t>(rs.last_used_weight));
    }
  }

  std::string start() {
    if (!rest->setup_error().empty()) return "REST: " + rest->setup_error();
    if (!opt.record_path.empty() && !recorder.open(opt.record_path))
      return "cannot open --record file " + opt.record_path + ": " + std::strerror(errno);
    for (int i = 0; i < 2; ++i) {
      auto r = rest->get_blocking("/api/v3/time", 1);
      if (!r.ok())
        return "GET " + opt.rest_url + "/api/v3/time: " + std::string(net::to_string(r.error)) + " (" + r.message + ")";
      add_clock_sample(r);
    }
    if (!clock.synced()) return "GET /api/v3/time: no serverTime in the response";
    spdlog::info("exchange clock: {} ms (offset {} ms)", *exchange_now(), clock.offset_ns() / 1'000'000);
    for (std::size_t s = 0; s < syms.size(); ++s) resync(s);
    flush_counters();

    clock_timer = std::make_unique<asio::steady_timer>(ioc);
    schedule_clock_sync();
    if (!opt.connect_ws) {
      connected = true;
      return {};
    }
    net::WsFeedOptions wo;
    wo.url = opt.ws_url;
    wo.tls.ca_file = opt.ca_file;
    wo.stall_timeout = opt.stall_timeout;
    wo.max_lifetime = opt.ws_max_lifetime;
    std::vector<std::string> names;
    std::vector<std::pair<std::string, std::uint32_t>> ivs;
    for (auto& st : syms) names.push_back(st.name);
    for (auto& fs : series) ivs.emplace_back(syms[fs.symbol].name, fs.interval_s);
    wo.streams = stream_names(names, ivs);
    ws = std::make_unique<net::WsFeed>(
        ioc, wo, [this](const net::WsFrame& f) { handle_frame(f.text, f.recv_wall_ns); },
        [this](const net::WsEvent& e) { on_ws_event(e); });
    if (auto err = ws->start(); !err.empty()) return "WebSocket: " + err;
    return {};
  }

  void stop() {
    if (ws) ws->stop();
    if (clock_timer) clock_timer->cancel();
    for (auto& st : syms) st.timer->cancel();
    rest->stop();
    flush_counters();
    recorder.flush();
    for (auto& fs : series)
      if (auto* st = fs.sink->store()) {
        if (auto r = st->flush(); !r.ok()) spdlog::error("{}: store flush: {}", fs.id, r.message);
      }
  }
};

BinanceFeed::BinanceFeed(asio::io_context& ioc, FeedOptions options, std::vector<aggregate::SymbolAggregator>& aggs,
                         std::vector<FeedSeries> series)
    : impl_(std::make_unique<Impl>(ioc, std::move(options), aggs, std::move(series))) {}
BinanceFeed::~BinanceFeed() = default;
std::string BinanceFeed::start() { return impl_->start(); }
void BinanceFeed::tick() { impl_->tick(); }
void BinanceFeed::stop() { impl_->stop(); }
void BinanceFeed::set_rest_weight_budget(int budget) { impl_->rest->set_weight_budget(budget); }
void BinanceFeed::handle_frame(std::string_view text, std::int64_t recv_wall_ns) { impl_->handle_frame(text, recv_wall_ns); }
void BinanceFeed::set_exchange_time(std::int64_t local_ns, std::int64_t ms) { impl_->clock.add_sample(local_ns, ms); }
bool BinanceFeed::repairing(std::size_t symbol) const { return impl_->syms.at(symbol).repairing; }

}  // namespace mdshm::feed
