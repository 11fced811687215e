// The live Binance source: one combined-stream WebSocket (net::WsFeed) -> FrameParser -> one
// SymbolAggregator per symbol, REST (net::RestClient) for the clock, startup backfill and gap
// repair. Everything runs on the caller's io_context, on one thread. docs/FEED.md tells the
// protocol below in prose.
//
//   startup   per symbol: history store, then REST klines for only what is missing (backfill), then
//             "catch-up": the aggTrades since the start of the current bar of the symbol's small
//             intervals (<= 5 min), so those bars in progress are exact; a larger interval's bar in
//             progress is seeded with the catch-up interval's closed klines since its open.
//   live      aggTrade ids must be contiguous per symbol. A hole, a lost connection or a stall (no
//             frame, ping or pong for stall_timeout) opens a gap, handled by the symbol's GapMachine
//             (gap_machine.hpp: live, in_flight, waiting, refill_due): the symbol's live events are
//             held, REST aggTrades?fromId=<last+1> fill it (in id order, on_repair_trade), then the
//             held events are applied and the symbol is healthy again. While a gap is open its bars
//             are not closed by the clock (no flat bars across missing trades). A gap longer than
//             max_trade_repair is refilled from klines (bars flagged backfilled) plus a catch-up; a
//             refill that fails leaves the bars open and runs again. A transient REST failure is
//             retried with backoff; while the stream is down too, for as long as it takes (the
//             series goes stale, no flat bars). With the stream back, held events wait at most
//             max_repair_hold: then the gap's bars are flagged not_repaired and reconciled with REST
//             klines once REST answers again ("healing").
//   time      exchange clock from /api/v3/time samples (rate measured too: the simulator replays
//             2022 at --speed) and trade times; tick() closes bars when it passes their end.
#pragma once

#include <atomic>

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "aggregate/aggregator.hpp"
#include "feed/store_sink.hpp"
#include "parse/frame_parser.hpp"

namespace boost::asio {
class io_context;
}

namespace mdshm::feed {

struct FeedSeries {
  std::string id;
  std::size_t symbol = 0;  // index into the aggregators
  std::uint32_t interval_s = 0;
  std::uint64_t capacity = 0;
  bool backfill = true;
  std::uint64_t backfill_depth = 0;  // bars; 0 = capacity
  StoreSink* sink = nullptr;          // the aggregator's sink for this series (segment + store)
};

struct FeedOptions {
  std::string ws_url = "wss://stream.binance.com:9443";
  std::string rest_url = "https://api.binance.com";
  std::string ca_file;  // empty: system store
  std::chrono::milliseconds stall_timeout{10'000};
  std::chrono::milliseconds ws_max_lifetime{23 * 3600'000};  // rotate (with overlap) before the 24 h cut
  int rest_weight_budget = 600;
  std::chrono::milliseconds rest_ban_backoff{5 * 60'000};  // after a 418, at least (Retry-After if longer)
  std::string record_path;  // empty: no recording
  std::chrono::milliseconds clock_sync_interval{30'000};
  // Local time a bar is kept open past its end for trades still in flight (times the clock rate).
  std::chrono::milliseconds close_grace{50};
  std::uint32_t catch_up_max_interval_s = 300;
  std::chrono::milliseconds max_trade_repair{15 * 60'000};  // exchange time; longer gaps use klines
  std::size_t max_held_events = 2'000'000;
  // Live events are held at most this long while REST is away (a 418 ban lasts minutes): then they
  // go live and the gap's bars are flagged not_repaired. Without a stream nothing is held and the
  // gap waits for REST however long it takes.
  std::chrono::milliseconds max_repair_hold{30'000};
  bool connect_ws = true;  // false: no WebSocket (benchmarks feed frames through handle_frame)
  // Set by SIGTERM: blocking startup requests (clock, backfill) give up within 100 ms of it.
  const std::atomic<bool>* abort = nullptr;
};

class BinanceFeed {
 public:
  BinanceFeed(boost::asio::io_context& ioc, FeedOptions options, std::vector<aggregate::SymbolAggregator>& aggs,
              std::vector<FeedSeries> series);
  ~BinanceFeed();
  BinanceFeed(const BinanceFeed&) = delete;
  BinanceFeed& operator=(const BinanceFeed&) = delete;

  // Clock sync and backfill (blocking: drives the io_context), then the WebSocket. Call before
  // running the io_context. Empty string = ok, else why not.
  std::string start();
  // Call at least every 100 ms from the thread that runs the io_context, outside its handlers:
  // closes bars on time, refills long gaps, syncs the stores, flushes counters and the recording.
  void tick();
  // Stops the network and flushes the stores.
  void stop();
  // SIGHUP: the REST weight budget may change at run time (the rest needs a restart).
  void set_rest_weight_budget(int budget);

  // One WebSocket message as received (public for the ingest benchmark and tests).
  // padding: Padding::zeroed when FrameParser::kPadding zero bytes follow `text` (parsed in place).
  void handle_frame(std::string_view text, std::int64_t recv_wall_ns, parse::Padding padding = parse::Padding::none);
  // Pretend the exchange clock is `ms` (benchmarks without REST).
  void set_exchange_time(std::int64_t local_ns, std::int64_t ms);
  bool repairing(std::size_t symbol) const;

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

// "<sym>@aggTrade" per symbol and "<sym>@kline_<i>" per series, lower case, without duplicates.
std::vector<std::string> stream_names(const std::vector<std::string>& symbols,
                                      const std::vector<std::pair<std::string, std::uint32_t>>& symbol_intervals);

}  // namespace mdshm::feed
