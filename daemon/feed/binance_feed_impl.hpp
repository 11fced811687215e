// BinanceFeed's state and the members of its three parts, private to feed/: binance_feed.cpp
// (live events, the connection, the clock and tick), backfill.cpp (startup backfill, the resync
// after a long gap, the bar in progress of long intervals) and repair.cpp (gap repair from REST
// aggTrades, giving up, and healing what was given up). All of it runs on the io_context's thread.
#pragma once

#include <algorithm>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "feed/binance_feed.hpp"
#include "feed/bounded_log.hpp"
#include "feed/exchange_clock.hpp"
#include "feed/gap_machine.hpp"
#include "feed/recorder.hpp"
#include "net/rest_client.hpp"
#include "net/ws_feed.hpp"
#include "parse/frame_parser.hpp"

namespace mdshm::feed {

namespace asio = boost::asio;

namespace detail {

inline constexpr int kAggTradesLimit = 1000;
inline constexpr int kKlinesLimit = 1000;
inline constexpr int kWeightAggTrades = 4;
inline constexpr int kWeightKlines = 2;
// A repair request that failed because the network or the exchange is away (no answer, 5xx, 429,
// a 418 ban) is worth repeating for as long as it takes; a 4xx or a body that does not parse is not.
inline Failure failure_of(net::RestError e) {
  switch (e) {
    case net::RestError::network:
    case net::RestError::timeout:
    case net::RestError::truncated:
    case net::RestError::rate_limited:
    case net::RestError::banned:
    case net::RestError::server_error: return Failure::transient;
    default: return Failure::permanent;
  }
}

// GET /api/v3/klines for opens in [from, to_incl], at most `limit` rows (Binance: 1000).
// Whether a kline's values are final: closed, or (REST rows carry no `x`) its interval is over.
inline bool kline_final(const Kline& k, std::int64_t now_ms) {
  return k.closed || k.bar.open_time_ms + std::int64_t{k.interval_s} * 1000 <= now_ms;
}

inline std::string klines_target(const std::string& symbol, std::uint32_t interval_s, std::int64_t from,
                                 std::int64_t to_incl, std::int64_t limit) {
  return "/api/v3/klines?symbol=" + symbol + "&interval=" + std::string(interval_name(interval_s)) +
         "&startTime=" + std::to_string(from) + "&endTime=" + std::to_string(to_incl) + "&limit=" + std::to_string(limit);
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
  std::unique_ptr<GapPort> port;  // the machine's view of this symbol, REST, the clock and the timer
  std::unique_ptr<GapMachine> gap;
  std::int64_t gap_from_ms = 0;  // last trade time when the gap opened
  std::vector<Held> held;
  std::int64_t last_trade_ms = 0;
  std::chrono::steady_clock::time_point held_since{};  // when the first event of `held` came
  bool seen_since_connect = false;  // a frame of this symbol on the current connection
  // After a rotation, until the new connection delivers a trade past the newest one applied, both
  // connections deliver the same trades: those repeats are expected, not duplicates.
  bool overlap = false;
  std::uint64_t overlap_trades = 0;
  std::uint64_t repaired_trades = 0;
  std::vector<std::pair<std::uint32_t, std::int64_t>> last_kline;  // interval -> newest closed kline open
  // Gaps given up on (exchange-time ranges) whose bars still wait for the exchange's klines.
  std::vector<std::pair<std::int64_t, std::int64_t>> unhealed;
  bool healing = false;
  int heal_failures = 0;
  std::chrono::steady_clock::time_point next_heal{};
  // Counters flushed to the segments in tick(): the hot path touches no shared cache line.
  std::uint64_t frames = 0;
};

}  // namespace detail

// The GapPort of symbol `sym` over the feed (repair.cpp).
std::unique_ptr<GapPort> make_symbol_port(BinanceFeed::Impl& feed, std::size_t sym);

struct BinanceFeed::Impl {
  using Held = detail::Held;
  using SymbolState = detail::SymbolState;

  Impl(asio::io_context& io, FeedOptions o, std::vector<aggregate::SymbolAggregator>& a, std::vector<FeedSeries> s);

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
  std::uint64_t frame_conn = 0;   // the connection of the frame being handled
  // The newest event time (`E`) the stream delivered and when its frame arrived (CLOCK_REALTIME):
  // tick() tells from them how late the stream runs, off the per-frame path.
  std::int64_t stream_event_ms = 0, stream_event_recv_ns = 0;
  std::uint64_t frames_since_tick = 0;  // tick() tells a backlog being read from a quiet stream
  std::chrono::steady_clock::time_point last_tick{};
  std::uint64_t newest_conn = 0;  // the connection that came up last
  int clock_samples = 0;
  std::uint64_t unattributed_frames = 0, parse_errors = 0, rejected = 0, unknown_events = 0;
  std::vector<Kline> kline_buf;
  std::vector<Trade> trade_buf;
  BoundedLog bad_frames{"bad frames"};
  BoundedLog bad_trades{"rejected trades"};
  BoundedLog dup_trades{"duplicate trades"};
  BoundedLog rest_log{"REST"};

  // ---- helpers --------------------------------------------------------------------------------
  void for_series_of(std::size_t sym, Stat s, std::uint64_t n);
  void for_all_series(Stat s, std::uint64_t n);
  std::optional<std::size_t> find_symbol(const parse::Symbol& s) const;
  std::optional<std::int64_t> exchange_now();
  void add_clock_sample(const net::RestResponse& r);

  // ---- startup backfill (blocking) ------------------------------------------------------------
  [[nodiscard]] std::optional<Failure> backfill_series(std::size_t si, std::int64_t end_excl, std::int64_t now_ms);
  template <class Each>
  [[nodiscard]] std::optional<Failure> for_each_closed_kline(const std::string& who, const std::string& sym, std::uint32_t interval_s,
                             std::int64_t from, std::int64_t to, std::int64_t now_ms, Each&& each);
  [[nodiscard]] std::optional<Failure> fetch_klines(std::size_t si, std::int64_t from, std::int64_t to,
                                                    std::int64_t now_ms, std::uint64_t& fetched);
  [[nodiscard]] std::optional<Failure> seed_in_progress(std::size_t si, std::int64_t open, std::int64_t t0, std::int64_t now_ms);
  std::int64_t held_closed_bars(std::size_t sym, std::uint32_t interval_s, std::int64_t from, std::int64_t to,
                                std::vector<Bar>& out);
  [[nodiscard]] RefillResult refill(std::size_t sym);

  // ---- gap repair (asynchronous; the decisions are the GapMachine's) ---------------------------
  void open_gap(std::size_t sym, std::string_view why);
  void request_trades(std::size_t sym, std::string query, std::uint64_t seq, std::optional<std::int64_t> since);
  void on_repair_response(std::size_t sym, std::uint64_t seq, std::optional<std::int64_t> since, net::RestResponse r);
  void drain_held(std::size_t sym);
  void on_healthy(std::size_t sym);
  void give_up(std::size_t sym);

  // ---- healing (asynchronous) -------------------------------------------------------------------
  void heal(std::size_t sym);
  void heal_step(std::size_t sym, std::size_t k, std::int64_t cursor, std::int64_t now);
  void flag_not_repaired(std::size_t si, std::int64_t from_ms, std::int64_t to_ms);

  // ---- live events ----------------------------------------------------------------------------
  void note_trade(SymbolState& st, const Trade& t);
  void apply_trade(std::size_t sym, const Trade& t);
  void apply_kline(std::size_t sym, const Kline& k);
  void hold(std::size_t sym, Held h);
  void apply_live(std::size_t sym, Held h);
  void on_trade_event(std::size_t sym, const Trade& t);
  void on_kline_event(std::size_t sym, const Kline& k);
  void handle_frame(std::string_view text, std::int64_t recv_ns, parse::Padding padding = parse::Padding::none);
  void on_ws_event(const net::WsEvent& e);

  // ---- periodic ---------------------------------------------------------------------------------
  void schedule_clock_sync();
  void tick();
  void flush_counters();
  std::string check_segments_behind(std::int64_t now_ms);
  std::string start();
  void stop();
};

}  // namespace mdshm::feed
