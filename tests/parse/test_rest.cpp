#include <catch2/catch.hpp>

#include "parse/frame_parser.hpp"
#include "parse_test_util.hpp"

using namespace mdshm;
using namespace mdshm::parse;
using namespace mdshm::parse::test;

TEST_CASE("REST klines sample parses with exact values", "[rest]") {
  FrameParser p;
  std::vector<Kline> rows;
  const auto body = read_file(data_path("rest/http_spot_market_klines.json"));
  // Server time inside the last row: every row but the last is closed.
  const auto r = p.parse_klines(body, 60, rows, 1634943900000 + 30000);
  INFO(to_string(r.status) << " " << r.detail);
  REQUIRE(r.ok());
  REQUIRE(rows.size() >= 3);
  const Bar& b = rows[0].bar;
  CHECK(b.open_time_ms == 1634943780000);
  CHECK(b.open == 60685.22);
  CHECK(b.high == 60729.84);
  CHECK(b.low == 60670.90);
  CHECK(b.close == 60719.27);
  CHECK(b.volume == 21.63272);
  CHECK(b.quote_volume == 1313200.0134041);
  CHECK(b.trade_count == 617);
  CHECK(b.taker_buy_volume == 12.28492);
  CHECK(b.taker_buy_quote_volume == 745719.4102284);
  CHECK(b.first_trade_id == -1);
  CHECK(rows[0].interval_s == 60);
  CHECK(rows[1].bar.open_time_ms == 1634943840000);
  CHECK(rows[1].bar.trade_count == 769);
  CHECK(shortest(rows[1].bar.high) == "60780.41");
  for (std::size_t i = 0; i + 1 < rows.size(); ++i) CHECK(rows[i].closed == (i < 2));
  // The same body asked as 5m klines does not fit: the close times say 1m.
  CHECK(p.parse_klines(body, 300, rows).status == Status::bad_time);
  CHECK(rows.empty());
}

TEST_CASE("REST aggTrades sample parses with exact values", "[rest]") {
  FrameParser p;
  std::vector<Trade> trades;
  const auto r = p.parse_agg_trades(read_file(data_path("rest/http_spot_market_agg_trades.json")), trades);
  INFO(to_string(r.status) << " " << r.detail);
  REQUIRE(r.ok());
  REQUIRE(trades.size() >= 4);
  CHECK(trades[0].id == 966492862);
  CHECK(trades[0].price == 60759.6);
  CHECK(trades[0].qty == 0.00841);
  CHECK(trades[0].time_ms == 1634944096633);
  CHECK_FALSE(trades[0].buyer_is_maker);
  CHECK(trades[2].id == 966492864);
  CHECK(shortest(trades[2].price) == "60759.59");
  CHECK(shortest(trades[2].qty) == "0.00037");
  CHECK(trades[2].buyer_is_maker);
  for (std::size_t i = 1; i < trades.size(); ++i) CHECK(trades[i].id == trades[i - 1].id + 1);
}

TEST_CASE("REST server time and error bodies", "[rest]") {
  FrameParser p;
  std::int64_t t = 0;
  REQUIRE(p.parse_server_time(R"({"serverTime":1499827319559})", t).ok());
  CHECK(t == 1499827319559);
  CHECK(p.parse_server_time(R"({"serverTime":1499827319})", t).status == Status::bad_time);
  CHECK(p.parse_server_time(R"({"serverTime":"1499827319559"})", t).status == Status::bad_type);
  CHECK(p.parse_server_time(R"({})", t).status == Status::missing_field);
  CHECK(t == 1499827319559);
  // A server time of 0 is named as such, not reported as a missing serverTime.
  const auto zero = p.parse_server_time(R"({"serverTime":0})", t);
  CHECK(zero.status == Status::bad_time);
  CHECK(zero.detail == "serverTime is 0 (the server's clock is not set)");
  CHECK(t == 1499827319559);

  const std::string err = R"({"code":-1121,"msg":"Invalid symbol."})";
  std::vector<Kline> rows;
  std::vector<Trade> trades;
  auto r = p.parse_klines(err, 60, rows);
  CHECK(r.status == Status::api_error);
  CHECK(r.detail == "Invalid symbol.");
  CHECK(p.api_error_code() == -1121);
  CHECK(p.parse_agg_trades(R"({"code":-1003,"msg":"Too many requests."})", trades).status == Status::api_error);
  CHECK(p.api_error_code() == -1003);
  CHECK(p.parse_server_time(err, t).status == Status::api_error);
}

TEST_CASE("bad REST bodies are refused with a named problem", "[rest]") {
  FrameParser p;
  std::vector<Kline> rows;
  std::vector<Trade> trades;
  const std::string row1 = R"([1634943780000,"60685.22","60729.84","60670.90","60719.27","21.63",1634943839999,"1313200.0",617,"12.2","745719.4","0"])";
  const std::string row2 = R"([1634943840000,"60719.28","60780.41","60707.00","60771.81","21.91",1634943899999,"1331667.7",769,"11.5","701336.1","0"])";
  CHECK(p.parse_klines("[" + row1 + "," + row2 + "]", 60, rows).ok());
  CHECK(rows.size() == 2);
  CHECK(p.parse_klines("[]", 60, rows).ok());
  CHECK(rows.empty());
  CHECK(p.parse_klines("[" + row2 + "," + row1 + "]", 60, rows).status == Status::bad_value);  // not ascending
  CHECK(p.parse_klines(R"([[1634943780000,"1","2"]])", 60, rows).status == Status::missing_field);
  CHECK(p.parse_klines(R"([[1634943780000,60685.22,"60729.84","60670.90","60719.27","21.63",1634943839999,"1",617,"1","1","0"]])", 60, rows)
            .status == Status::bad_type);
  // Truncated: simdjson reports the unclosed array as a type problem of its first element.
  const auto truncated = p.parse_klines("[" + row1, 60, rows).status;
  CHECK((truncated == Status::malformed_json || truncated == Status::bad_type));
  CHECK(p.parse_klines("[" + row1 + "]", 61, rows).status == Status::bad_value);  // not an interval
  CHECK(p.parse_agg_trades(R"([{"a":1,"p":"1","q":"1","f":1,"l":1,"T":1634944096633}])", trades).status ==
        Status::missing_field);  // m
  CHECK(p.parse_agg_trades(R"([{"a":1,"p":"inf","q":"1","f":1,"l":1,"T":1634944096633,"m":true}])", trades).status ==
        Status::bad_number);
  CHECK(p.parse_agg_trades(R"([1,2])", trades).status == Status::bad_type);
  CHECK(trades.empty());
}
