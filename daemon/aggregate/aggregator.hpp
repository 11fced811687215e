// Bars from trades: one SymbolAggregator per symbol feeds every configured interval of it.
//
// What a reader of a series sees:
//  - the bar in progress is republished on every trade (flag in_progress);
//  - a trade in a later interval, or advance_to(now), closes it (flag closed, Stat::bars_closed)
//    and opens the next one; advance_to publishes the new interval's bar at once, flat at the
//    previous close with volume 0 (in_progress|empty), exactly as Binance's kline stream does;
//  - intervals without trades get a closed bar flat at the previous close, volume 0 (flag empty),
//    also when time jumps several intervals (at most `max_fill_bars` of them: older ones would be
//    lapped in the ring anyway);
//  - impossible values (NaN/inf/<=0 price, NaN/inf/negative quantity, a time before 2010 or more
//    than a day ahead of the wall clock) are counted (Stat::rejected_values) and never reach a bar;
//  - a trade id not above the last one applied is a duplicate (Stat::duplicate_trades), dropped.
//
// Out-of-order policy (a trade whose interval is older than the bar in progress, or whose bar was
// already closed): counted as Stat::out_of_order in that series, then merged into its own bar with
// amend() if the sink still holds that bar and the exchange has not reconciled it yet (the
// exchange's values are final); otherwise dropped. Close and open follow trade ids, not arrival
// order, so a late trade with a lower id does not become the close. Empty bars after an amended
// one stay flat at the close they were written with.
//
// Reconciliation (on_exchange_kline, closed klines only): the exchange's OHLC, volumes and trade
// count win (Stat::reconcile_checks; Stat::reconcile_diffs and flag reconcile_diff when OHLC or
// volume differed); the first/last aggTrade ids stay ours (a kline's f/L are trade ids, another id
// space). A kline for the bar in progress closes it. A kline for a bar the sink no longer holds is
// ignored.
//
// Gap repair (the feed's job): trades fetched from REST for an id hole go through
// on_repair_trade(), which skips the duplicate check but otherwise behaves as on_trade().
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "aggregate/bar_sink.hpp"
#include "model/market.hpp"

namespace mdshm::aggregate {

using WallClockFn = std::int64_t (*)();  // CLOCK_REALTIME in ns; injectable for tests
std::int64_t system_wall_ns();

struct AggregatorOptions {
  std::int64_t min_time_ms = 1'262'304'000'000;  // 2010-01-01: anything earlier is garbage
  std::int64_t max_future_ms = 86'400'000;       // tolerated lead over the local wall clock
  WallClockFn wall_now_ns = &system_wall_ns;
};

// `later` (the next bar in time, e.g. a 1m kline) merged into `acc`: high/low/close, volumes and
// trade count as one bar of both; acc's open time and open stay. Volumes summed exactly to 1e-8.
void merge_bar(Bar& acc, const Bar& later);

enum class TradeOutcome { applied, rejected, duplicate };

// One interval of one symbol, writing to one sink. Normally used through SymbolAggregator.
class IntervalAggregator {
 public:
  IntervalAggregator(std::uint32_t interval_s, BarSink& sink, std::uint64_t max_fill_bars);

  void restore();                                          // continue from the sink's newest bar
  bool on_trade(const Trade& t, std::int64_t now_ns);      // t already validated; true if in a bar
  void advance_to(std::int64_t now_ms, std::int64_t now_ns);
  bool on_exchange_kline(const Kline& k, std::int64_t now_ns);  // true if compared

  std::uint32_t interval_s() const { return interval_s_; }
  BarSink& sink() { return sink_; }
  bool has_bar() const { return have_; }
  const Bar& newest() const { return newest_; }  // valid when has_bar()

 private:
  void start_bar(std::int64_t open_ms, const Trade& t, std::int64_t now_ns);
  void publish_newest();
  void close_newest(std::int64_t now_ns);
  void roll_to(std::int64_t open_ms, std::int64_t now_ns);  // close newest, fill empties before open_ms
  bool amend_older(std::int64_t open_ms, const Trade& t, std::int64_t now_ns);
  std::optional<std::uint64_t> index_of(std::int64_t open_ms) const;
  Bar reconciled(const Bar& built, const Kline& k, std::int64_t now_ns);

  std::uint32_t interval_s_;
  std::int64_t len_ms_;
  BarSink& sink_;
  std::uint64_t max_fill_;
  bool have_ = false;
  Bar newest_{};
  std::uint64_t newest_idx_ = 0;
};

class SymbolAggregator {
 public:
  explicit SymbolAggregator(std::string symbol, AggregatorOptions opt = {});

  // The sink must outlive the aggregator. max_fill_bars: the series' capacity is a good value.
  void add_interval(std::uint32_t interval_s, BarSink& sink, std::uint64_t max_fill_bars = kMaxCapacity);

  // After a restart: every interval continues from the newest bar in its sink; trade ids continue
  // after the largest last_trade_id found. Call before the first trade.
  void restore();

  TradeOutcome on_trade(const Trade& t);
  TradeOutcome on_repair_trade(const Trade& t);
  // Closes every bar whose interval ended by `exchange_now_ms` and opens the current one. Call at
  // least every 100 ms. False (nothing done) for an absurd time.
  bool advance_to(std::int64_t exchange_now_ms);
  // Closed exchange kline for this symbol; routed to every interval of its length. Returns how many
  // bars were compared.
  std::size_t on_exchange_kline(const Kline& k);
  // Applies the statistics the sinks batched (BarSink::flush_stats); call once per tick.
  void flush_stats();

  const std::string& symbol() const { return symbol_; }
  std::int64_t last_trade_id() const { return last_id_; }
  std::vector<IntervalAggregator>& intervals() { return intervals_; }

 private:
  TradeOutcome apply(const Trade& t, bool check_duplicate);
  bool plausible_time(std::int64_t t_ms, std::int64_t now_ns) const;
  void count_all(Stat s);

  std::string symbol_;
  AggregatorOptions opt_;
  std::vector<IntervalAggregator> intervals_;
  std::vector<char> applied_;  // per interval: did the current trade land in a bar
  std::int64_t last_id_ = -1;
};

}  // namespace mdshm::aggregate
