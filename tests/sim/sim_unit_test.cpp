// The simulator's data logic without the network: CSV loading, generated aggTrades against their
// klines, REST answers, stream sequencing, fault commands.
#include <catch2/catch.hpp>
#include <string>

#include "decimal.hpp"
#include "faults.hpp"
#include "market.hpp"
#include "rest.hpp"
#include "stream.hpp"

using namespace mdshm::sim;

namespace {

const std::string kDay1 = std::string(MDSHM_SHARED_DATA_DIR) + "/klines/ETHUSDT-1m-2022-08-14.csv";

std::vector<KlineRow> load(const std::string& path) {
  auto r = load_kline_csv(path, 60);
  REQUIRE(std::holds_alternative<std::vector<KlineRow>>(r));
  return std::get<std::vector<KlineRow>>(r);
}

}  // namespace

TEST_CASE("decimal strings round-trip exactly") {
  CHECK(parse_decimal("1983.55000000") == 198355000000);
  CHECK(parse_decimal("0.00141342") == 141342);
  CHECK(format_decimal(141342) == "0.00141342");
  CHECK(format_decimal(198355000000) == "1983.55000000");
  CHECK_FALSE(parse_decimal("-1"));
  CHECK_FALSE(parse_decimal("1.000000001"));
  CHECK_FALSE(parse_decimal("abc"));
  CHECK_FALSE(parse_decimal(""));
}

TEST_CASE("the real ETHUSDT CSV loads with every column") {
  const auto rows = load(kDay1);
  REQUIRE(rows.size() == 1440);
  CHECK(rows[0].open_ms == 1660435200000);
  CHECK(rows[0].close_ms == 1660435259999);
  CHECK(rows[0].open == 198355000000);
  CHECK(rows[0].volume == 20513100000);
  CHECK(rows[0].trade_count == 288);
  CHECK(rows[0].taker_buy_volume == 10529930000);
  auto missing = load_kline_csv("/nonexistent.csv", 60);
  REQUIRE(std::holds_alternative<LoadError>(missing));
  CHECK(std::get<LoadError>(missing).message.find("/nonexistent.csv") != std::string::npos);
}

TEST_CASE("generated aggTrades aggregate back to every kline") {
  Market market;
  auto csv = load(kDay1);
  Series& s = market.add("ETHUSDT", 60, csv);
  CHECK(s.rows_adjusted() == 0);
  std::int64_t expect_id = s.first_id();
  for (std::size_t i = 0; i < csv.size(); ++i) {
    const KlineRow& k = csv[i];
    const auto trades = s.trades_of(i);  // a copy: the cache may move on
    REQUIRE(static_cast<std::int64_t>(trades.size()) == k.trade_count);
    std::int64_t vol = 0, buy = 0, hi = trades.front().price, lo = trades.front().price;
    __int128 quote = 0, buy_quote = 0;
    for (const auto& t : trades) {
      const __int128 q = static_cast<__int128>(t.price) * t.qty / kUnitsPerOne;
      quote += q;
      buy_quote += t.buyer_is_maker ? 0 : q;
      REQUIRE(t.id == expect_id++);
      REQUIRE(t.time_ms >= k.open_ms);
      REQUIRE(t.time_ms <= k.close_ms);
      REQUIRE(t.qty > 0);
      vol += t.qty;
      buy += t.buyer_is_maker ? 0 : t.qty;
      hi = std::max(hi, t.price);
      lo = std::min(lo, t.price);
    }
    REQUIRE(trades.front().price == k.open);
    REQUIRE(trades.back().price == k.close);
    REQUIRE(hi == k.high);
    REQUIRE(lo == k.low);
    REQUIRE(vol == k.volume);
    REQUIRE(buy == k.taker_buy_volume);
    INFO("row " << i);
    CHECK(static_cast<std::int64_t>(quote) == k.quote_volume);  // the exchange's kline = the trades' sum
    CHECK(static_cast<std::int64_t>(buy_quote) == k.taker_buy_quote_volume);
    for (std::size_t j = 1; j < trades.size(); ++j) REQUIRE(trades[j - 1].time_ms <= trades[j].time_ms);
  }
  CHECK(s.last_id() == expect_id - 1);
  CHECK(s.quote_unmatched() == 0);
}

TEST_CASE("generation is deterministic") {
  Market a, b;
  auto csv = load(kDay1);
  auto& sa = a.add("ETHUSDT", 60, csv);
  auto& sb = b.add("ETHUSDT", 60, csv);
  const auto ta = sa.trades_of(100), tb = sb.trades_of(100);
  REQUIRE(ta.size() == tb.size());
  for (std::size_t i = 0; i < ta.size(); ++i) CHECK((ta[i].price == tb[i].price && ta[i].qty == tb[i].qty));
}

TEST_CASE("a derived series keeps the shape of its source") {
  auto csv = load(kDay1);
  Market m;
  auto& btc = m.add("BTCUSDT", 60, derive_rows(csv, 12.0, 1'000'000, 1'000));
  CHECK(btc.rows()[0].open == 12 * csv[0].open);
  CHECK(btc.rows()[0].high >= btc.rows()[0].low);
  const auto trades = btc.trades_of(5);
  std::int64_t vol = 0;
  for (const auto& t : trades) vol += t.qty;
  CHECK(vol == btc.rows()[5].volume);
  CHECK(btc.first_id() != m.find("btcusdt")->first_id() + 1);
  // Its trades add up to the source's quote volumes too (prices x factor, quantities / factor).
  for (std::size_t i = 0; i < btc.rows().size(); ++i) btc.trades_of(i);
  CHECK(btc.quote_unmatched() == 0);
}

TEST_CASE("klines of other intervals aggregate the source rows") {
  Market m;
  auto csv = load(kDay1);
  auto& s = m.add("ETHUSDT", 60, csv);
  const auto h = s.kline(3600, 1660435200000, INT64_MAX);
  REQUIRE(h);
  std::int64_t vol = 0, n = 0, hi = 0;
  for (int i = 0; i < 60; ++i) {
    vol += csv[i].volume;
    n += csv[i].trade_count;
    hi = std::max(hi, csv[i].high);
  }
  CHECK(h->volume == vol);
  CHECK(h->trade_count == n);
  CHECK(h->high == hi);
  CHECK(h->open == csv[0].open);
  CHECK(h->close == csv[59].close);
  // One-second bars from the generated trades of the first minute add up to that minute.
  std::int64_t sec_vol = 0, sec_n = 0;
  for (int i = 0; i < 60; ++i) {
    const auto b = s.kline(1, 1660435200000 + i * 1000, INT64_MAX);
    REQUIRE(b);
    sec_vol += b->volume;
    sec_n += b->trade_count;
    if (b->trade_count == 0) CHECK((b->open == b->close && b->volume == 0));
  }
  CHECK(sec_vol == csv[0].volume);
  CHECK(sec_n == csv[0].trade_count);
  // The bar holding the clock is the unfinished one: only trades up to the clock count.
  const auto partial = s.kline(60, 1660435200000, 1660435229999);
  REQUIRE(partial);
  CHECK(partial->volume < csv[0].volume);
  CHECK(partial->volume > 0);
}

TEST_CASE("REST klines, aggTrades and time") {
  Market m;
  auto csv = load(kDay1);
  auto& s = m.add("ETHUSDT", 60, csv);
  const std::int64_t clock = 1660435200000 + 10 * 60'000 + 30'000;  // 10.5 minutes in
  auto r = handle_rest(m, "/api/v3/klines?symbol=ETHUSDT&interval=1m&limit=1000", clock);
  CHECK(r.status == 200);
  CHECK(r.weight == kWeightKlines);
  CHECK(r.body.rfind("[[1660435200000,\"1983.55000000\",\"1983.90000000\",\"1982.14000000\",\"1982.29000000\","
                     "\"205.13100000\",1660435259999,\"406814.92308000\",288,\"105.29930000\",\"208854.93067400\",\"0\"]",
                     0) == 0);
  // 10 closed bars + the unfinished one.
  std::size_t rows = 0;
  for (std::size_t p = 0; (p = r.body.find("],[", p)) != std::string::npos; ++p) ++rows;
  CHECK(rows + 1 == 11);

  r = handle_rest(m, "/api/v3/klines?symbol=ETHUSDT&interval=1m&startTime=1660435260000&limit=2", clock);
  CHECK(r.body.rfind("[[1660435260000,", 0) == 0);
  CHECK(r.body.find("[1660435320000,") != std::string::npos);
  CHECK(r.body.find("1660435380000") == std::string::npos);

  r = handle_rest(m, "/api/v3/klines?symbol=ETHUSDT&interval=1m&limit=1001", clock);
  CHECK(r.status == 400);
  r = handle_rest(m, "/api/v3/klines?symbol=NOPE&interval=1m", clock);
  CHECK(r.status == 400);
  CHECK(r.body.find("-1121") != std::string::npos);

  r = handle_rest(m, "/api/v3/aggTrades?symbol=ETHUSDT&fromId=" + std::to_string(s.first_id() + 5) + "&limit=3", clock);
  CHECK(r.status == 200);
  CHECK(r.weight == kWeightAggTrades);
  CHECK(r.body.rfind("[{\"a\":" + std::to_string(s.first_id() + 5), 0) == 0);
  CHECK(r.body.find("\"a\":" + std::to_string(s.first_id() + 7)) != std::string::npos);
  CHECK(r.body.find("\"a\":" + std::to_string(s.first_id() + 8)) == std::string::npos);

  // Nothing after the clock is visible.
  r = handle_rest(m, "/api/v3/aggTrades?symbol=ETHUSDT&startTime=" + std::to_string(clock) + "&limit=10", clock);
  CHECK(r.body == "[]");
  r = handle_rest(m, "/api/v3/aggTrades?symbol=ETHUSDT&limit=1", clock);
  CHECK(r.body.find("\"T\":") != std::string::npos);

  r = handle_rest(m, "/api/v3/time", clock);
  CHECK(r.body == "{\"serverTime\":" + std::to_string(clock) + "}");
  CHECK(handle_rest(m, "/api/v3/nothing", clock).status == 404);
}

TEST_CASE("stream URLs and the event order") {
  CHECK(parse_stream_target("/stream?streams=ethusdt@aggTrade/ethusdt@kline_1m") ==
        std::vector<std::string>{"ethusdt@aggTrade", "ethusdt@kline_1m"});
  CHECK_FALSE(parse_stream_target("/ws/ethusdt@aggTrade"));
  CHECK_FALSE(parse_stream_target("/stream?streams="));

  Market m;
  auto& s = m.add("ETHUSDT", 60, load(kDay1));
  std::vector<ReplayFrame> none;
  StreamCursor c(m, none, {"ethusdt@aggTrade", "ethusdt@kline_1m"}, s.data_begin_ms());
  std::int64_t last_t = 0, trades = 0, klines = 0;
  while (klines < 2) {
    const auto t = c.next_time();
    REQUIRE(t);
    const Event e = c.pop();
    REQUIRE(e.time_ms >= last_t);
    last_t = e.time_ms;
    if (e.agg_trade) {
      ++trades;
    } else {
      ++klines;
      CHECK(e.frame.find("\"x\":true") != std::string::npos);
    }
  }
  CHECK(trades == 288 + 217);  // both first minutes' trades came before the second close
}

TEST_CASE("fault commands") {
  Faults f;
  ControlActions a;
  a.clock_ms = [] { return std::int64_t{42}; };
  CHECK(apply_command("hole 3", f, a) == "ok hole 3");
  CHECK(f.hole == 3);
  CHECK(apply_command("rest_error 429 2", f, a).rfind("ok", 0) == 0);
  RestFault rf;
  REQUIRE(f.next_rest_error(rf));
  CHECK(rf.status == 429);
  CHECK(rf.retry_after_s == 1);
  REQUIRE(f.next_rest_error(rf));
  CHECK_FALSE(f.next_rest_error(rf));
  CHECK(apply_command("clock", f, a) == "ok 42");
  CHECK(apply_command("bogus", f, a).rfind("error", 0) == 0);
  CHECK(apply_command("hole x", f, a).rfind("error", 0) == 0);
  CHECK(apply_command("stall 0.5", f, a) == "ok stall");
  CHECK(f.stalled());
  CHECK_FALSE(f.blacked_out());
  int dropped = 0;
  a.drop_all = [&dropped] { return ++dropped; };
  CHECK(apply_command("blackout 0.5", f, a) == "ok blackout, dropped 1");
  CHECK(f.blacked_out());
  CHECK(apply_command("blackout -1", f, a).rfind("error", 0) == 0);
  CHECK(apply_command("blackout", f, a).rfind("error", 0) == 0);
  CHECK_FALSE(f.rest_down());
  CHECK(apply_command("rest_down 0.5", f, a) == "ok rest_down");
  CHECK(f.rest_down());
}
