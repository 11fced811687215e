// Bar aggregation on its own, through MemorySink: no shared memory involved.
#include <catch2/catch.hpp>

#include <cmath>
#include <limits>
#include <random>

#include "aggregate/aggregator.hpp"
#include "aggregate/memory_sink.hpp"

using namespace mdshm;
using namespace mdshm::aggregate;

namespace {

// 2022-08-16 00:00 UTC: after every trade below, so none of them is "in the future".
std::int64_t g_now_ns = 1'660'608'000'000LL * 1'000'000;
std::int64_t fake_clock() { return g_now_ns; }

AggregatorOptions test_options() {
  AggregatorOptions o;
  o.wall_now_ns = &fake_clock;
  return o;
}

constexpr std::int64_t kT0 = 1'660'435'200'000;  // 2022-08-14 00:00:00 UTC

Trade trade(std::int64_t id, std::int64_t t_ms, double price, double qty, bool buyer_is_maker = false) {
  Trade t;
  t.id = id;
  t.time_ms = t_ms;
  t.price = price;
  t.qty = qty;
  t.buyer_is_maker = buyer_is_maker;
  return t;
}

}  // namespace

TEST_CASE("a bar in progress carries OHLCV, volumes, ids and flags") {
  MemorySink s;
  SymbolAggregator agg("ETHUSDT", test_options());
  agg.add_interval(60, s);
  REQUIRE(agg.on_trade(trade(10, kT0 + 1000, 100.0, 1.0, false)) == TradeOutcome::applied);
  agg.on_trade(trade(11, kT0 + 2000, 105.0, 2.0, true));
  agg.on_trade(trade(12, kT0 + 3000, 95.0, 1.0, false));
  agg.on_trade(trade(13, kT0 + 59'999, 101.0, 0.5, true));
  REQUIRE(s.bars.size() == 1);
  const Bar& b = s.bars[0];
  CHECK(b.open_time_ms == kT0);
  CHECK(b.open == 100.0);
  CHECK(b.high == 105.0);
  CHECK(b.low == 95.0);
  CHECK(b.close == 101.0);
  CHECK(b.volume == Approx(4.5));
  CHECK(b.quote_volume == Approx(100.0 + 210.0 + 95.0 + 50.5));
  CHECK(b.taker_buy_volume == Approx(2.0));
  CHECK(b.taker_buy_quote_volume == Approx(195.0));
  CHECK(b.trade_count == 4);
  CHECK(b.first_trade_id == 10);
  CHECK(b.last_trade_id == 13);
  CHECK(b.flags == flag::in_progress);
  CHECK(b.update_wall_ns == g_now_ns);
  CHECK(s.publishes == 4);  // republished on every trade
  CHECK(s.stat(Stat::trades) == 4);
  CHECK(s.stat(Stat::bars_closed) == 0);
}

TEST_CASE("a gap of several intervals gets flat empty bars at the previous close") {
  MemorySink s;
  SymbolAggregator agg("ETHUSDT", test_options());
  agg.add_interval(60, s);
  agg.on_trade(trade(1, kT0 + 10, 100.0, 1.0));
  agg.on_trade(trade(2, kT0 + 20, 102.0, 1.0));
  agg.on_trade(trade(3, kT0 + 3 * 60'000 + 5, 99.0, 1.0));  // two empty minutes between
  REQUIRE(s.bars.size() == 4);
  CHECK(s.bars[0].flags == flag::closed);
  for (int i : {1, 2}) {
    const Bar& e = s.bars[i];
    CHECK(e.open_time_ms == kT0 + i * 60'000);
    CHECK(e.flags == (flag::closed | flag::empty));
    CHECK(e.open == 102.0);
    CHECK(e.high == 102.0);
    CHECK(e.low == 102.0);
    CHECK(e.close == 102.0);
    CHECK(e.volume == 0.0);
    CHECK(e.trade_count == 0);
    CHECK(e.first_trade_id == -1);
  }
  CHECK(s.bars[3].open == 99.0);
  CHECK(s.bars[3].flags == flag::in_progress);
  CHECK(s.stat(Stat::bars_closed) == 3);
}

TEST_CASE("bars close on time without trades (advance_to)") {
  MemorySink s;
  SymbolAggregator agg("ETHUSDT", test_options());
  agg.add_interval(1, s);
  agg.advance_to(kT0 + 5000);  // nothing known yet: nothing to publish
  CHECK(s.bars.empty());
  agg.on_trade(trade(1, kT0 + 100, 50.0, 1.0));
  REQUIRE(agg.advance_to(kT0 + 3500));
  REQUIRE(s.bars.size() == 4);
  CHECK(s.bars[0].flags == flag::closed);
  CHECK(s.bars[1].flags == (flag::closed | flag::empty));
  CHECK(s.bars[2].flags == (flag::closed | flag::empty));
  CHECK(s.bars[3].flags == (flag::in_progress | flag::empty));
  CHECK(s.bars[3].open_time_ms == kT0 + 3000);
  CHECK(s.bars[3].close == 50.0);
  CHECK(s.stat(Stat::bars_closed) == 3);
  agg.advance_to(kT0 + 3900);  // same interval: nothing new
  CHECK(s.bars.size() == 4);
  // The first trade of an interval that started empty opens it at its own price.
  agg.on_trade(trade(2, kT0 + 3950, 51.0, 2.0));
  REQUIRE(s.bars.size() == 4);
  CHECK(s.bars[3].open == 51.0);
  CHECK(s.bars[3].low == 51.0);
  CHECK(s.bars[3].volume == 2.0);
  CHECK(s.bars[3].flags == flag::in_progress);
  CHECK(s.bars[3].first_trade_id == 2);
  // An absurd exchange time is refused, not filled.
  CHECK_FALSE(agg.advance_to(4'102'444'800'000));
  CHECK(s.bars.size() == 4);
}

TEST_CASE("a long gap fills at most max_fill_bars") {
  MemorySink s;
  SymbolAggregator agg("BTCUSDT", test_options());
  agg.add_interval(1, s, 100);
  agg.on_trade(trade(1, kT0, 20000.0, 1.0));
  agg.on_trade(trade(2, kT0 + 86'400'000, 20001.0, 1.0));
  REQUIRE(s.bars.size() == 102);  // the first, 100 empties, the new one
  CHECK(s.bars[1].open_time_ms == kT0 + 86'400'000 - 100'000);
  CHECK(s.bars[100].open_time_ms == kT0 + 86'400'000 - 1000);
  CHECK(s.bars[101].open == 20001.0);
}

TEST_CASE("day boundary: 1d bars open at UTC midnight") {
  MemorySink day, hour;
  SymbolAggregator agg("ETHUSDT", test_options());
  agg.add_interval(86400, day);
  agg.add_interval(3600, hour);
  agg.on_trade(trade(1, kT0 - 1, 10.0, 1.0));  // 2022-08-13 23:59:59.999
  agg.on_trade(trade(2, kT0, 11.0, 1.0));      // 2022-08-14 00:00:00.000
  REQUIRE(day.bars.size() == 2);
  CHECK(day.bars[0].open_time_ms == kT0 - 86'400'000);
  CHECK(day.bars[0].close == 10.0);
  CHECK(day.bars[0].flags == flag::closed);
  CHECK(day.bars[1].open_time_ms == kT0);
  CHECK(day.bars[1].open == 11.0);
  REQUIRE(hour.bars.size() == 2);
  CHECK(hour.bars[0].open_time_ms == kT0 - 3'600'000);
  CHECK(hour.bars[1].open_time_ms == kT0);
}

TEST_CASE("1s, 1m, 1h and 1d from one trade stream agree") {
  MemorySink s1, m1, h1, d1;
  SymbolAggregator agg("ETHUSDT", test_options());
  agg.add_interval(1, s1);
  agg.add_interval(60, m1);
  agg.add_interval(3600, h1);
  agg.add_interval(86400, d1);
  std::mt19937_64 rng(42);
  std::uniform_int_distribution<int> dt(0, 1500);  // sometimes a whole second without trades
  std::normal_distribution<double> step(0, 0.05);
  std::uniform_real_distribution<double> qty(0.001, 2.0);
  double price = 1900;
  std::int64_t t = kT0 - 1800 * 1000;  // crosses an hour and the day boundary
  std::int64_t id = 1;
  while (t < kT0 + 1800 * 1000) {
    price = std::max(1.0, price + step(rng));
    agg.on_trade(trade(id++, t, std::round(price * 100) / 100, qty(rng), rng() & 1));
    t += dt(rng);
  }
  agg.advance_to(t + 86'400'000);  // close everything
  REQUIRE(d1.bars.size() >= 2);
  CHECK(d1.bars[0].open_time_ms == kT0 - 86'400'000);
  CHECK(d1.bars[1].open_time_ms == kT0);
  REQUIRE(m1.bars.size() >= 60);

  // Every closed coarse bar equals the merge of the fine bars inside it.
  auto check_merge = [](const std::vector<Bar>& fine, const Bar& coarse, std::int64_t len_ms) {
    double high = -1, low = 1e18, vol = 0, taker = 0;
    std::uint64_t n = 0;
    const Bar* first = nullptr;
    const Bar* last = nullptr;
    for (const Bar& f : fine) {
      if (f.open_time_ms < coarse.open_time_ms || f.open_time_ms >= coarse.open_time_ms + len_ms) continue;
      if (f.flags & flag::empty) continue;
      if (!first) first = &f;
      last = &f;
      high = std::max(high, f.high);
      low = std::min(low, f.low);
      vol += f.volume;
      taker += f.taker_buy_volume;
      n += f.trade_count;
    }
    if (!first) {
      CHECK((coarse.flags & flag::empty) != 0);
      return;
    }
    CHECK(coarse.open == first->open);
    CHECK(coarse.close == last->close);
    CHECK(coarse.high == high);
    CHECK(coarse.low == low);
    CHECK(coarse.volume == Approx(vol));
    CHECK(coarse.taker_buy_volume == Approx(taker));
    CHECK(coarse.trade_count == n);
    CHECK(coarse.first_trade_id == first->first_trade_id);
    CHECK(coarse.last_trade_id == last->last_trade_id);
  };
  for (const Bar& m : m1.bars)
    if (m.flags & flag::closed) check_merge(s1.bars, m, 60'000);
  for (const Bar& h : h1.bars)
    if (h.flags & flag::closed) check_merge(m1.bars, h, 3'600'000);
  for (const Bar& d : d1.bars)
    if (d.flags & flag::closed) check_merge(h1.bars, d, 86'400'000);
  // Bars are contiguous in time: empty intervals were filled.
  for (std::size_t i = 1; i < s1.bars.size(); ++i)
    REQUIRE(s1.bars[i].open_time_ms == s1.bars[i - 1].open_time_ms + 1000);
}

TEST_CASE("impossible values are counted and never reach a bar") {
  MemorySink a, b;
  SymbolAggregator agg("ETHUSDT", test_options());
  agg.add_interval(1, a);
  agg.add_interval(60, b);
  const double nan = std::numeric_limits<double>::quiet_NaN();
  const double inf = std::numeric_limits<double>::infinity();
  const Trade bad[] = {
      trade(1, kT0, nan, 1.0),    trade(2, kT0, inf, 1.0),   trade(3, kT0, -5.0, 1.0),
      trade(4, kT0, 0.0, 1.0),    trade(5, kT0, 10.0, -1.0), trade(6, kT0, 10.0, nan),
      trade(7, kT0, 10.0, inf),   trade(8, 0, 10.0, 1.0),    trade(9, 4'102'444'800'000, 10.0, 1.0),
      trade(10, kT0, 1e300, 1e300),
  };
  for (const Trade& t : bad) CHECK(agg.on_trade(t) == TradeOutcome::rejected);
  CHECK(a.bars.empty());
  CHECK(b.bars.empty());
  CHECK(a.stat(Stat::rejected_values) == std::size(bad));
  CHECK(b.stat(Stat::rejected_values) == std::size(bad));
  // A rejected id is not "seen": the same id with good values still counts.
  CHECK(agg.on_trade(trade(1, kT0, 10.0, 1.0)) == TradeOutcome::applied);
  CHECK(a.bars.size() == 1);
  CHECK(a.bars[0].low == 10.0);
}

TEST_CASE("duplicate trade ids are dropped") {
  MemorySink s;
  SymbolAggregator agg("ETHUSDT", test_options());
  agg.add_interval(60, s);
  agg.on_trade(trade(5, kT0, 10.0, 1.0));
  CHECK(agg.on_trade(trade(5, kT0 + 1, 11.0, 1.0)) == TradeOutcome::duplicate);
  CHECK(agg.on_trade(trade(4, kT0 + 2, 12.0, 1.0)) == TradeOutcome::duplicate);
  CHECK(s.stat(Stat::duplicate_trades) == 2);
  CHECK(s.bars[0].volume == 1.0);
  CHECK(s.bars[0].high == 10.0);
}

TEST_CASE("out-of-order trades amend a held bar or are dropped") {
  MemorySink s;
  SymbolAggregator agg("ETHUSDT", test_options());
  agg.add_interval(60, s);
  agg.on_trade(trade(1, kT0 + 1000, 100.0, 1.0));
  agg.on_trade(trade(2, kT0 + 61'000, 101.0, 1.0));  // closes bar 0
  // Arrives late, belongs to bar 0 (closed, still held): amended. Higher id -> it is the close.
  CHECK(agg.on_trade(trade(3, kT0 + 59'000, 90.0, 2.0)) == TradeOutcome::applied);
  CHECK(s.stat(Stat::out_of_order) == 1);
  CHECK(s.amends == 1);
  CHECK(s.bars[0].low == 90.0);
  CHECK(s.bars[0].close == 90.0);
  CHECK(s.bars[0].volume == 3.0);
  CHECK(s.bars[0].trade_count == 2);
  CHECK(s.bars[0].flags == flag::closed);
  CHECK(s.bars[1].volume == 1.0);  // the bar in progress is untouched
  // Before anything the sink holds: counted and dropped.
  agg.on_trade(trade(4, kT0 - 60'000, 80.0, 1.0));
  CHECK(s.stat(Stat::out_of_order) == 2);
  CHECK(s.bars.size() == 2);
  CHECK(s.stat(Stat::trades) == 3);
  // A repaired trade with a lower id does not become the close (ids order trades).
  CHECK(agg.on_repair_trade(trade(0, kT0 + 500, 120.0, 1.0)) == TradeOutcome::applied);
  CHECK(s.bars[0].close == 90.0);
  CHECK(s.bars[0].open == 120.0);
  CHECK(s.bars[0].first_trade_id == 0);
  CHECK(s.bars[0].high == 120.0);
}

TEST_CASE("reconciliation with exchange klines") {
  MemorySink s;
  SymbolAggregator agg("ETHUSDT", test_options());
  agg.add_interval(60, s);
  agg.on_trade(trade(1, kT0 + 1000, 100.0, 1.0));
  agg.on_trade(trade(2, kT0 + 2000, 102.0, 1.0));
  agg.on_trade(trade(3, kT0 + 61'000, 103.0, 1.0));
  agg.on_trade(trade(4, kT0 + 121'000, 104.0, 1.0));

  Kline same{60, true, s.bars[0]};
  same.bar.flags = 0;
  CHECK(agg.on_exchange_kline(same) == 1);
  CHECK(s.stat(Stat::reconcile_checks) == 1);
  CHECK(s.stat(Stat::reconcile_diffs) == 0);
  CHECK(s.bars[0].flags == (flag::closed | flag::reconciled));

  Kline other{60, true, s.bars[1]};
  other.bar.flags = 0;
  other.bar.high = 110.0;
  other.bar.volume = 7.0;
  other.bar.trade_count = 9;
  CHECK(agg.on_exchange_kline(other) == 1);
  CHECK(s.stat(Stat::reconcile_diffs) == 1);
  CHECK(s.bars[1].high == 110.0);
  CHECK(s.bars[1].volume == 7.0);
  CHECK(s.bars[1].trade_count == 9);
  CHECK(s.bars[1].first_trade_id == 3);  // aggTrade ids stay ours
  CHECK(s.bars[1].flags == (flag::closed | flag::reconciled | flag::reconcile_diff));

  // A closed kline for the bar in progress closes it, exchange values win.
  Kline cur{60, true, s.bars[2]};
  cur.bar.flags = 0;
  CHECK(agg.on_exchange_kline(cur) == 1);
  CHECK(s.bars[2].flags == (flag::closed | flag::reconciled));
  CHECK(s.stat(Stat::bars_closed) == 3);
  // A late trade for a reconciled bar is not merged: the exchange's values are final.
  agg.on_trade(trade(5, kT0 + 121'500, 1.0, 1.0));
  CHECK(s.bars[2].low == 104.0);
  CHECK(s.stat(Stat::out_of_order) == 1);

  // Not closed, other interval, garbage: nothing compared.
  Kline open = cur;
  open.closed = false;
  CHECK(agg.on_exchange_kline(open) == 0);
  Kline hour = cur;
  hour.interval_s = 3600;
  CHECK(agg.on_exchange_kline(hour) == 0);
  Kline nan = cur;
  nan.bar.close = std::numeric_limits<double>::quiet_NaN();
  CHECK(agg.on_exchange_kline(nan) == 0);
  CHECK(s.stat(Stat::rejected_values) == 1);
  CHECK(s.stat(Stat::reconcile_checks) == 3);

  // An exchange kline after a quiet interval: our empty bar vs. the exchange's trades.
  agg.advance_to(kT0 + 240'500);
  Kline busy{60, true, s.bars[3]};
  busy.bar.flags = 0;
  REQUIRE((s.bars[3].flags & flag::empty) != 0);
  busy.bar.volume = 3;
  busy.bar.trade_count = 2;
  busy.bar.high = 105;
  CHECK(agg.on_exchange_kline(busy) == 1);
  CHECK((s.bars[3].flags & flag::empty) == 0);
  CHECK((s.bars[3].flags & flag::reconcile_diff) != 0);

  // A bar a gap left not_repaired is right once the exchange's kline is in: the flag goes.
  Bar hurt = s.bars[0];
  hurt.flags |= flag::not_repaired;
  REQUIRE(s.amend(0, hurt));
  CHECK(agg.on_exchange_kline(same) == 1);
  CHECK(s.bars[0].flags == (flag::closed | flag::reconciled));
}

TEST_CASE("restore continues from the newest bar in the sink") {
  MemorySink s;
  {
    SymbolAggregator first("ETHUSDT", test_options());
    first.add_interval(60, s);
    first.on_trade(trade(100, kT0 + 1000, 50.0, 1.0));
    first.on_trade(trade(101, kT0 + 2000, 51.0, 1.0));
  }
  SymbolAggregator again("ETHUSDT", test_options());
  again.add_interval(60, s);
  again.restore();
  CHECK(again.last_trade_id() == 101);
  CHECK(again.on_trade(trade(101, kT0 + 3000, 60.0, 1.0)) == TradeOutcome::duplicate);
  again.on_trade(trade(102, kT0 + 4000, 52.0, 1.0));  // same bar, still in progress
  REQUIRE(s.bars.size() == 1);
  CHECK(s.bars[0].trade_count == 3);
  CHECK(s.bars[0].close == 52.0);
  again.advance_to(kT0 + 180'001);  // two intervals later: closed, one empty, one in progress
  REQUIRE(s.bars.size() == 4);
  CHECK(s.bars[0].flags == flag::closed);
  CHECK(s.bars[1].flags == (flag::closed | flag::empty));
  CHECK(s.bars[1].close == 52.0);
}

TEST_CASE("latency is recorded when the receive time is known") {
  MemorySink s;
  SymbolAggregator agg("ETHUSDT", test_options());
  agg.add_interval(1, s);
  Trade t = trade(1, kT0, 10.0, 1.0);
  agg.on_trade(t);
  CHECK(s.latency_samples == 0);
  t.id = 2;
  t.recv_wall_ns = g_now_ns - 1500;
  agg.on_trade(t);
  CHECK(s.latency_samples == 1);
  CHECK(s.last_latency_ns == 1500);
}
