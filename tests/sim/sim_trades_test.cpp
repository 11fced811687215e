// Real trades in the simulator: aggTrades CSV and capture parsing (errors name the line), REST
// aggTrades and klines answered from replayed trades, and the stream replaying them.
//
// Data (all genuine Binance trades, see tests/sim/data/SOURCES.md and ../shared/data/binance):
// - kFixture: BTCUSDT aggTrades 966492862..966492871 (2021-10-22 23:08:16.633-18.216 UTC), the REST
//   reply in rest/http_spot_market_agg_trades.json rewritten in the data.binance.vision CSV layout.
//   Their ids are contiguous, so second 1634944097 (ids 866-868) holds every trade the exchange made
//   in it; the other bars hold only the fixture's part of the real market.
// - kCapture: ws/cryptofeed-BINANCE.ws.1.0, two aggTrade frames (NKNUSDT, LRCBTC) and kline frames.
#include <catch2/catch.hpp>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <unistd.h>

#include "decimal.hpp"
#include "rest.hpp"
#include "stream.hpp"
#include "trades.hpp"

using namespace mdshm::sim;

namespace {

const std::string kFixture = std::string(MDSHM_SOURCE_DIR) + "/tests/sim/data/BTCUSDT-aggTrades-2021-10-22-excerpt.csv";
const std::string kCapture = std::string(MDSHM_SHARED_DATA_DIR) + "/ws/cryptofeed-BINANCE.ws.1.0";
constexpr std::int64_t kMinute = 1634944080000;  // the fixture's minute
constexpr std::int64_t kAfter = 1634944098216;   // the fixture's last trade

std::vector<GenTrade> fixture() {
  auto r = load_agg_trades_csv(kFixture);
  if (auto* e = std::get_if<LoadError>(&r)) FAIL(e->message);
  return std::get<std::vector<GenTrade>>(r);
}

std::variant<std::vector<GenTrade>, LoadError> parse(const std::string& text) {
  std::istringstream in(text);
  return parse_agg_trades_csv(in, "t.csv");
}

std::string error_of(const std::variant<std::vector<GenTrade>, LoadError>& r) {
  const auto* e = std::get_if<LoadError>(&r);
  return e ? e->message : "(no error)";
}

// A file that lives for the test.
struct TempFile {
  std::string path;
  explicit TempFile(const std::string& text)
      : path((std::filesystem::temp_directory_path() / ("mdshm-sim-trades-" + std::to_string(getpid()) + ".txt")).string()) {
    std::ofstream(path) << text;
  }
  ~TempFile() { std::filesystem::remove(path); }
};

std::size_t count(const std::string& body, const std::string& what) {
  std::size_t n = 0;
  for (std::size_t p = 0; (p = body.find(what, p)) != std::string::npos; ++p) ++n;
  return n;
}

}  // namespace

TEST_CASE("a data.binance.vision aggTrades CSV loads with every column") {
  const auto t = fixture();
  REQUIRE(t.size() == 10);
  CHECK(t[0].id == 966492862);
  CHECK(t[0].price == *parse_decimal("60759.60000000"));
  CHECK(t[0].qty == *parse_decimal("0.00841000"));
  CHECK(t[0].first_trade == 1111480471);
  CHECK(t[0].last_trade == 1111480471);
  CHECK(t[0].time_ms == 1634944096633);
  CHECK_FALSE(t[0].buyer_is_maker);
  CHECK(t[2].buyer_is_maker);
  CHECK(t[9].id == 966492871);
}

TEST_CASE("aggTrades CSV: microsecond timestamps (2025 on), a header, an aggTrade of several trades") {
  // The first line of the fixture, its timestamp in µs as files from 2025-01-01 on write it.
  auto r = parse("agg_trade_id,price,quantity,first_trade_id,last_trade_id,transact_time,is_buyer_maker,is_best_match\n"
                 "966492862,60759.60000000,0.00841000,1111480471,1111480473,1634944096633123,False,True\r\n");
  REQUIRE(std::holds_alternative<std::vector<GenTrade>>(r));
  const auto& t = std::get<std::vector<GenTrade>>(r);
  REQUIRE(t.size() == 1);
  CHECK(t[0].time_ms == 1634944096633);
  CHECK(trades_in(t[0]) == 3);
}

TEST_CASE("aggTrades CSV errors name the file and line") {
  const std::string ok = "966492862,60759.60000000,0.00841000,1111480471,1111480471,1634944096633,False,True\n";
  // Futures files have no is-best-match column: 7 columns load too.
  CHECK(parse(ok + "966492863,60759.60000000,0.00189000,1111480472,1111480472,1634944096848,False\n").index() == 0);
  CHECK(error_of(parse(ok + "966492863,60759.6,0.00189,1111480472\n")).rfind("t.csv:2: expected 8 columns", 0) == 0);
  CHECK(error_of(parse(ok + "966492863,x,0.00189000,1111480472,1111480472,1634944096848,False,True\n")) ==
        "t.csv:2: bad price 'x'");
  CHECK(error_of(parse(ok + "966492863,60759.6,0,1111480472,1111480472,1634944096848,False,True\n")) ==
        "t.csv:2: bad quantity '0'");
  CHECK(error_of(parse(ok + "966492863,60759.6,0.1,1111480472,1111480471,1634944096848,False,True\n")) ==
        "t.csv:2: bad first/last trade id");
  CHECK(error_of(parse(ok + "966492863,60759.6,0.1,1111480472,1111480472,1634944096848,maybe,True\n")) ==
        "t.csv:2: bad is-buyer-maker 'maybe' (True or False)");
  CHECK(error_of(parse(ok + ok)) == "t.csv:2: agg trade ids do not increase");
  CHECK(error_of(parse(ok + "966492863,60759.6,0.1,1111480472,1111480472,1634944096000,False,True\n")) ==
        "t.csv:2: timestamp goes back");
  CHECK(error_of(parse(ok + "\nnot,a,row\n")) == "t.csv:3: not an aggTrades row");
  CHECK(error_of(load_agg_trades_csv("/nonexistent/x.csv")) == "cannot open aggTrades CSV /nonexistent/x.csv");
}

TEST_CASE("a capture line without a receive time is an error naming the line") {
  TempFile f("wss://stream.binance.com:9443/stream?streams=a@aggTrade <-> 1633998511.159679\n"
             "1633998512.0633569: {\"stream\":\"a@aggTrade\",\"data\":{}}\n"
             "{\"stream\":\"a@aggTrade\",\"data\":{}}\n");
  auto r = load_replay({f.path});
  REQUIRE(std::holds_alternative<LoadError>(r));
  CHECK(std::get<LoadError>(r).message == f.path + ":3: capture line without a receive time (expected '<receive-time>: <frame>')");
}

TEST_CASE("the aggTrade frames of a real capture, and a broken one named by its line") {
  auto loaded = load_replay({kCapture});
  REQUIRE(std::holds_alternative<std::vector<ReplayFrame>>(loaded));
  auto r = capture_trades(std::get<std::vector<ReplayFrame>>(loaded));
  REQUIRE(r.index() == 0);
  const auto& by_symbol = std::get<0>(r);
  REQUIRE(by_symbol.size() == 2);
  const auto& lrc = by_symbol.at("LRCBTC");
  REQUIRE(lrc.size() == 1);
  CHECK(lrc[0].id == 9213679);
  CHECK(lrc[0].price == *parse_decimal("0.00000638"));
  CHECK(lrc[0].qty == *parse_decimal("177.00000000"));
  CHECK(lrc[0].first_trade == 12368013);
  CHECK(lrc[0].time_ms == 1633998534486);
  CHECK(by_symbol.at("NKNUSDT").at(0).id == 15683430);

  TempFile f("1633998523.957215: {\"stream\":\"nknusdt@aggTrade\",\"data\":{\"e\":\"aggTrade\",\"E\":1633998523963,"
             "\"s\":\"NKNUSDT\",\"a\":15683430,\"p\":\"0.35280000\",\"f\":19862790,\"l\":19862790,\"T\":1633998523963,"
             "\"m\":false,\"M\":true}}\n");
  auto broken = load_replay({f.path});
  REQUIRE(broken.index() == 0);
  auto e = capture_trades(std::get<0>(broken));
  REQUIRE(e.index() == 1);
  CHECK(std::get<1>(e).message == f.path + ":1: aggTrade frame without a valid s, a, p, q, f, l, T or m");
}

TEST_CASE("REST klines from a capture's trades equal the exchange's kline frame of that minute") {
  // The capture's LRCBTC kline at E=1633998534486 (x:false) lists one trade, f=L=12368013: the
  // captured aggTrade. Every trade of that bar so far is in the capture.
  auto loaded = load_replay({kCapture});
  REQUIRE(loaded.index() == 0);
  auto r = capture_trades(std::get<0>(loaded));
  REQUIRE(r.index() == 0);
  Market m;
  m.add_trades("LRCBTC", std::get<0>(r).at("LRCBTC"), false);
  const auto k = handle_rest(m, "/api/v3/klines?symbol=LRCBTC&interval=1m&limit=1", 1633998534486);
  CHECK(k.body ==
        "[[1633998480000,\"0.00000638\",\"0.00000638\",\"0.00000638\",\"0.00000638\",\"177.00000000\",1633998539999,"
        "\"0.00112926\",1,\"177.00000000\",\"0.00112926\",\"0\"]]");
  // One millisecond earlier the trade had not happened.
  CHECK(handle_rest(m, "/api/v3/aggTrades?symbol=LRCBTC&limit=5", 1633998534485).body == "[]");
}

TEST_CASE("REST klines of several intervals computed from real trades") {
  Market m;
  m.add_trades("btcusdt", fixture(), true);
  const auto one = [&](const std::string& q, std::int64_t clock = kAfter + 60'000) {
    return handle_rest(m, "/api/v3/klines?symbol=BTCUSDT&" + q, clock).body;
  };
  // Hand-checked from the ten trades (price x quantity is exact at 1e-8 for each).
  // Second 1634944097 is whole: trades 866-868, all taker buys at 60759.60.
  CHECK(one("interval=1s&startTime=1634944096000&limit=4") ==
        "[[1634944096000,\"60759.60000000\",\"60759.60000000\",\"60759.59000000\",\"60759.60000000\",\"0.01167000\","
        "1634944096999,\"709.06452830\",4,\"0.01130000\",\"686.58348000\",\"0\"],"
        "[1634944097000,\"60759.60000000\",\"60759.60000000\",\"60759.60000000\",\"60759.60000000\",\"0.00631000\","
        "1634944097999,\"383.39307600\",3,\"0.00631000\",\"383.39307600\",\"0\"],"
        "[1634944098000,\"60759.59000000\",\"60759.60000000\",\"60759.59000000\",\"60759.60000000\",\"0.00150000\","
        "1634944098999,\"91.13939500\",3,\"0.00100000\",\"60.75960000\",\"0\"],"
        // A second without trades: flat at the previous close, zero volume, as Binance sends it.
        "[1634944099000,\"60759.60000000\",\"60759.60000000\",\"60759.60000000\",\"60759.60000000\",\"0.00000000\","
        "1634944099999,\"0.00000000\",0,\"0.00000000\",\"0.00000000\",\"0\"]]");
  const std::string minute =
      "\"60759.60000000\",\"60759.60000000\",\"60759.59000000\",\"60759.60000000\",\"0.01948000\",";
  CHECK(one("interval=1m&limit=1") ==
        "[[1634944080000," + minute + "1634944139999,\"1183.59699930\",10,\"0.01861000\",\"1130.73615600\",\"0\"]]");
  CHECK(one("interval=5m&limit=1") ==
        "[[1634943900000," + minute + "1634944199999,\"1183.59699930\",10,\"0.01861000\",\"1130.73615600\",\"0\"]]");
  CHECK(one("interval=1h&limit=1") ==
        "[[1634943600000," + minute + "1634947199999,\"1183.59699930\",10,\"0.01861000\",\"1130.73615600\",\"0\"]]");
  // The unfinished bar: at 1634944097600 the second 097 holds 866 and 867 only.
  CHECK(one("interval=1s&startTime=1634944097000&limit=5", 1634944097600) ==
        "[[1634944097000,\"60759.60000000\",\"60759.60000000\",\"60759.60000000\",\"60759.60000000\",\"0.00531000\","
        "1634944097999,\"322.63347600\",2,\"0.00531000\",\"322.63347600\",\"0\"]]");
  // endTime without startTime: the newest `limit` bars up to it.
  CHECK(one("interval=1s&endTime=1634944097500&limit=2").rfind("[[1634944096000,", 0) == 0);
  CHECK(count(one("interval=1s&endTime=1634944097500&limit=2"), "],[") == 1);
}

TEST_CASE("REST aggTrades from real trades by id and by time, with Binance's limit") {
  Market m;
  m.add_trades("BTCUSDT", fixture(), true);
  const auto ask = [&](const std::string& q, std::int64_t clock = kAfter + 1) {
    return handle_rest(m, "/api/v3/aggTrades?symbol=BTCUSDT&" + q, clock).body;
  };
  CHECK(ask("fromId=966492867&limit=2") ==
        "[{\"a\":966492867,\"p\":\"60759.60000000\",\"q\":\"0.00100000\",\"f\":1111480476,\"l\":1111480476,"
        "\"T\":1634944097501,\"m\":false,\"M\":true},"
        "{\"a\":966492868,\"p\":\"60759.60000000\",\"q\":\"0.00100000\",\"f\":1111480477,\"l\":1111480477,"
        "\"T\":1634944097857,\"m\":false,\"M\":true}]");
  CHECK(count(ask("fromId=1&limit=1000"), "\"a\":") == 10);  // before the data: from its first trade
  CHECK(ask("fromId=966492872") == "[]");
  // Not yet happened at the clock.
  CHECK(count(ask("fromId=966492862", 1634944097038), "\"a\":") == 5);
  // startTime/endTime are inclusive.
  const auto in_097 = ask("startTime=1634944097000&endTime=1634944097999");
  CHECK(count(in_097, "\"a\":") == 3);
  CHECK(in_097.rfind("[{\"a\":966492866,", 0) == 0);
  CHECK(count(ask("startTime=1634944097038&endTime=1634944097501"), "\"a\":") == 2);
  CHECK(count(ask("startTime=1634944097000&limit=2"), "\"a\":") == 2);
  // Neither: the most recent trades.
  CHECK(ask("limit=1").rfind("[{\"a\":966492871,", 0) == 0);
  CHECK(handle_rest(m, "/api/v3/aggTrades?symbol=BTCUSDT&startTime=1&endTime=3600002", kAfter).status == 400);
}

TEST_CASE("ids with holes: fromId finds the next trade") {
  // Two real trades of different days would leave a hole; here two of the fixture's, 862 and 871.
  auto t = fixture();
  std::vector<GenTrade> sparse = {t.front(), t.back()};
  Market m;
  m.add_trades("BTCUSDT", sparse, true);
  CHECK(handle_rest(m, "/api/v3/aggTrades?symbol=BTCUSDT&fromId=966492863", kAfter).body.rfind("[{\"a\":966492871,", 0) == 0);
}

TEST_CASE("the stream replays real trades and closes klines computed from them") {
  Market m;
  auto& s = m.add_trades("BTCUSDT", fixture(), true);
  std::vector<ReplayFrame> none;
  StreamCursor c(m, none, {"btcusdt@aggTrade", "btcusdt@kline_1s"}, 1634944096001);
  std::vector<std::string> frames;
  while (frames.size() < 13) {
    REQUIRE(c.next_time());
    frames.push_back(c.pop().frame);
  }
  // 862-865, the close of 096, 866-868, the close of 097, 869-871, the close of 098.
  CHECK(frames[0].find("\"a\":966492862,\"p\":\"60759.60000000\",\"q\":\"0.00841000\",\"f\":1111480471") != std::string::npos);
  CHECK(frames[4].find("\"t\":1634944096000") != std::string::npos);
  CHECK(frames[8].find("\"t\":1634944097000") != std::string::npos);
  CHECK(frames[8].find("\"v\":\"0.00631000\",\"n\":3,\"x\":true") != std::string::npos);
  // A kline's f and L are the exchange's trade ids, not aggTrade ids.
  CHECK(frames[8].find("\"f\":1111480475,\"L\":1111480477,") != std::string::npos);
  CHECK(frames[11].find("\"a\":966492871") != std::string::npos);
  CHECK(frames[12].find("\"t\":1634944098000") != std::string::npos);
  CHECK(s.real());

  // A capture's symbol is not streamed again: its frames are relayed as recorded.
  Market cap;
  cap.add_trades("BTCUSDT", fixture(), false);
  StreamCursor quiet(cap, none, {"btcusdt@aggTrade"}, 1634944096000);
  CHECK_FALSE(quiet.next_time());
}
