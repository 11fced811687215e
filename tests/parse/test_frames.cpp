#include <catch2/catch.hpp>

#include <algorithm>
#include <cstring>
#include <map>
#include <memory>

#include "parse/frame_parser.hpp"
#include "parse_test_util.hpp"

using namespace mdshm;
using namespace mdshm::parse;
using namespace mdshm::parse::test;

#include "alloc_counter.hpp"

using mdshm::parse::test::g_allocations;
using mdshm::parse::test::g_counting;

namespace {

// The raw text of the first string member `key` (e.g. "p") in a compact frame.
std::string field_text(const std::string& frame, const std::string& key) {
  const std::string open = "\"" + key + "\":\"";
  const auto at = frame.find(open);
  if (at == std::string::npos) return {};
  const auto begin = at + open.size();
  return frame.substr(begin, frame.find('"', begin) - begin);
}

const char* kAggTrade =
    R"({"stream":"ethusdt@aggTrade","data":{"e":"aggTrade","E":1675759520848,"s":"ETHUSDT","a":226532,)"
    R"("p":"1632.46000000","q":"0.34305000","f":228423,"l":228423,"T":1675759520847,"m":false,"M":true}})";

std::string with(std::string s, const std::string& from, const std::string& to) {
  const auto at = s.find(from);
  REQUIRE(at != std::string::npos);
  return s.replace(at, from.size(), to);
}

ParseResult parse_one(std::string_view frame, Event& ev) {
  static FrameParser p;
  return p.parse(frame, ev);
}

}  // namespace

TEST_CASE("every frame of the real captures parses or is classified ignored", "[frames]") {
  FrameParser p;
  Event ev;
  for (const auto& file : capture_files()) {
    std::map<std::string, int> counts;
    for (const auto& frame : capture_frames(file)) {
      const auto r = p.parse(frame, ev, 123);
      INFO(file << ": " << frame << " -> " << to_string(r.status) << " " << r.detail);
      REQUIRE((r.ok() || r.status == Status::ignored));
      const bool depth = frame.find("@depth") != std::string::npos, book = frame.find("@bookTicker") != std::string::npos;
      CHECK((r.status == Status::ignored) == (depth || book));
      counts[r.ok() ? std::string(to_string(ev.kind)) : "ignored"]++;
      if (!r.ok()) continue;
      // Every decimal came back exactly: its shortest printout is the exchange's digits.
      if (ev.kind == EventKind::agg_trade) {
        CHECK(ev.trade.recv_wall_ns == 123);
        CHECK(shortest(ev.trade.price) == strip_zeros(field_text(frame, "p")));
        CHECK(shortest(ev.trade.qty) == strip_zeros(field_text(frame, "q")));
      } else if (ev.kind == EventKind::kline) {
        CHECK(shortest(ev.kline.bar.open) == strip_zeros(field_text(frame, "o")));
        CHECK(shortest(ev.kline.bar.close) == strip_zeros(field_text(frame, "c")));
        CHECK(shortest(ev.kline.bar.high) == strip_zeros(field_text(frame, "h")));
        CHECK(shortest(ev.kline.bar.low) == strip_zeros(field_text(frame, "l")));
        CHECK(shortest(ev.kline.bar.volume) == strip_zeros(field_text(frame, "v")));
        CHECK(shortest(ev.kline.bar.taker_buy_quote_volume) == strip_zeros(field_text(frame, "Q")));
        CHECK(ev.kline.interval_s == 60);
      }
    }
    if (file.find("_TR") == std::string::npos) {
      CHECK(counts["aggTrade"] == 2);
      CHECK(counts["kline"] == 2);
      CHECK(counts["ignored"] == 177 + 84);
    } else {
      CHECK(counts["kline"] == 8);
      CHECK(counts["ignored"] == 84 + 47);
    }
  }
}

TEST_CASE("spot checks of exact values in the real frames", "[frames]") {
  FrameParser p;
  Event ev;
  SECTION("aggTrade with an extra st field") {
    const auto r = p.parse(read_file(data_path("ws/ws_spot_agg_trade.json")), ev);
    REQUIRE(r.ok());
    CHECK(ev.kind == EventKind::agg_trade);
    CHECK(ev.symbol.view() == "ETHUSDT");
    CHECK(ev.event_time_ms == 1675759520848);
    CHECK(ev.trade.id == 226532);
    CHECK(ev.trade.price == 1632.46);
    CHECK(ev.trade.qty == 0.34305);
    CHECK(ev.trade.time_ms == 1675759520847);
    CHECK(ev.trade.event_time_ms == 1675759520848);
    CHECK_FALSE(ev.trade.buyer_is_maker);
  }
  SECTION("legacy trade with b/a") {
    const auto r = p.parse(read_file(data_path("ws/ws_spot_trade.json")), ev);
    REQUIRE(r.ok());
    CHECK(ev.kind == EventKind::trade);
    CHECK(ev.trade.id == 705291099);
    CHECK(ev.trade.price == 4149.74);
    CHECK(ev.trade.qty == 0.4387);
    CHECK(ev.trade.time_ms == 1639351062243);
    CHECK(ev.trade.buyer_is_maker);
  }
  SECTION("kline and aggTrade from the cryptofeed capture") {
    bool saw_kline = false, saw_trade = false;
    for (const auto& frame : capture_frames("ws/cryptofeed-BINANCE.ws.1.0")) {
      if (frame.find("\"E\":1633998523963") == std::string::npos) continue;
      REQUIRE(p.parse(frame, ev).ok());
      CHECK(ev.symbol.view() == "NKNUSDT");
      if (ev.kind == EventKind::kline) {
        saw_kline = true;
        const Bar& b = ev.kline.bar;
        CHECK(b.open_time_ms == 1633998480000);
        CHECK(b.open == 0.3527);
        CHECK(b.close == 0.3528);
        CHECK(b.high == 0.3528);
        CHECK(b.low == 0.3522);
        CHECK(b.volume == 25877.0);
        CHECK(b.quote_volume == 9116.046);
        CHECK(b.taker_buy_volume == 58.0);
        CHECK(b.taker_buy_quote_volume == 20.4624);
        CHECK(b.trade_count == 30);
        CHECK(b.first_trade_id == 19862761);
        CHECK(b.last_trade_id == 19862790);
        CHECK(b.flags == 0);
        CHECK_FALSE(ev.kline.closed);
      } else if (ev.kind == EventKind::agg_trade) {
        saw_trade = true;
        CHECK(ev.trade.id == 15683430);
        CHECK(ev.trade.price == 0.3528);
        CHECK(ev.trade.qty == 58.0);
        CHECK(ev.trade.time_ms == 1633998523963);
      }
    }
    CHECK(saw_kline);
    CHECK(saw_trade);
  }
}

TEST_CASE("raw frames, shutdown, acks, error bodies and unknown events", "[frames]") {
  Event ev;
  SECTION("raw aggTrade without the combined-stream wrapper") {
    const std::string raw = R"({"e":"aggTrade","E":1675759520848,"s":"ETHUSDT","a":1,"p":"0.00141342","q":"2",)"
                            R"("f":1,"l":1,"T":1675759520847,"m":true,"M":true})";
    REQUIRE(parse_one(raw, ev).ok());
    CHECK(shortest(ev.trade.price) == "0.00141342");
  }
  SECTION("serverShutdown") {
    REQUIRE(parse_one(R"({"e":"serverShutdown","E":1700000000000})", ev).ok());
    CHECK(ev.kind == EventKind::server_shutdown);
    CHECK(ev.event_time_ms == 1700000000000);
    CHECK(parse_one(R"({"e":"serverShutdown"})", ev).status == Status::missing_field);
  }
  SECTION("REST-style error body") {
    FrameParser p;
    const auto r = p.parse(R"({"code":-1121,"msg":"Invalid symbol."})", ev);
    CHECK(r.status == Status::api_error);
    CHECK(r.detail == "Invalid symbol.");
    CHECK(p.api_error_code() == -1121);
    CHECK_FALSE(stat_for(r.status).has_value());
  }
  SECTION("subscription ack and raw book ticker are ignored") {
    CHECK(parse_one(R"({"result":null,"id":1})", ev).status == Status::ignored);
    CHECK(parse_one(R"({"u":400900217,"s":"BNBUSDT","b":"25.35","B":"31.2","a":"25.36","A":"40.6"})", ev).status ==
          Status::ignored);
    CHECK(parse_one(R"({"e":"24hrTicker","E":1,"s":"X"})", ev).status == Status::ignored);
    CHECK(parse_one(R"({"stream":"!ticker@arr","data":[]})", ev).status == Status::ignored);
  }
  SECTION("unknown events are named as such and counted as unknown_events") {
    auto r = parse_one(R"({"e":"fancyNewThing","E":1675759520848})", ev);
    CHECK(r.status == Status::unknown_event);
    CHECK(stat_for(r.status) == Stat::unknown_events);
    CHECK(parse_one(R"({"stream":"ethusdt@fancy","data":{"e":"fancy"}})", ev).status == Status::unknown_event);
    CHECK(parse_one(R"({"x":1})", ev).status == Status::unknown_event);
    CHECK(parse_one(R"({})", ev).status == Status::unknown_event);
    CHECK(parse_one(R"({"e":"serverShutdown","E":1700000000000,"e":"aggTrade"})", ev).status == Status::mismatch);
  }
}

TEST_CASE("key order does not matter (a writer that sorts keys)", "[frames]") {
  Event ev;
  const std::string sorted = R"({"data":{"E":1675759520848,"M":true,"T":1675759520847,"a":226532,"e":"aggTrade",)"
                             R"("f":228423,"l":228423,"m":false,"p":"1632.46000000","q":"0.34305000","s":"ETHUSDT"},)"
                             R"("stream":"ethusdt@aggTrade"})";
  REQUIRE(parse_one(sorted, ev).ok());
  CHECK(ev.kind == EventKind::agg_trade);
  CHECK(ev.trade.id == 226532);
  CHECK(ev.trade.price == 1632.46);
  CHECK(ev.trade.time_ms == 1675759520847);
  // ...and the cross-checks still happen after the fact.
  CHECK(parse_one(with(sorted, "ethusdt@aggTrade", "btcusdt@aggTrade"), ev).status == Status::mismatch);
  CHECK(parse_one(with(sorted, "ethusdt@aggTrade", "ethusdt@trade"), ev).status == Status::mismatch);
}

TEST_CASE("each kind of bad frame gets its own status and never ok", "[frames]") {
  Event ev;
  struct Case {
    std::string from, to;
    Status expect;
  };
  const Case cases[] = {
      {R"("p":"1632.46000000",)", "", Status::missing_field},
      {R"("p":"1632.46000000")", R"("p":1632.46)", Status::bad_type},
      {R"("p":"1632.46000000")", R"("p":"-1632.46")", Status::bad_number},
      {R"("p":"1632.46000000")", R"("p":"NaN")", Status::bad_number},
      {R"("p":"1632.46000000")", R"("p":"1e400")", Status::bad_number},
      {R"("p":"1632.46000000")", R"("p":"")", Status::bad_number},
      {R"("p":"1632.46000000")", R"("p":"0.00000000")", Status::bad_value},
      {R"("q":"0.34305000")", R"("q":"0")", Status::bad_value},
      {R"("a":226532)", R"("a":-5)", Status::bad_value},
      {R"("a":226532)", R"("a":1e400)", Status::bad_type},  // simdjson: a float is not an int64
      {R"("a":226532)", R"("a":99999999999999999999)", Status::bad_type},
      {R"("T":1675759520847)", R"("T":1675759520)", Status::bad_time},
      {R"("T":1675759520847)", R"("T":4102444800001)", Status::bad_time},
      {R"("m":false)", R"("m":"false")", Status::bad_type},
      {R"("s":"ETHUSDT")", R"("s":"BTCUSDT")", Status::mismatch},
      {R"("s":"ETHUSDT")", R"("s":"ETH/USDT")", Status::bad_value},
      {R"("e":"aggTrade")", R"("e":"trade")", Status::mismatch},
      {R"("e":"aggTrade",)", "", Status::missing_field},
      {R"("l":228423)", R"("l":228422)", Status::bad_value},
      {R"(}})", R"(}}})", Status::malformed_json},
      {R"(}})", R"(}} {})", Status::malformed_json},
      {R"(}})", R"(})", Status::malformed_json},
      {R"("data":{)", R"("data":[)", Status::bad_type},
  };
  for (const auto& c : cases) {
    const auto frame = with(kAggTrade, c.from, c.to);
    const auto r = parse_one(frame, ev);
    INFO(frame << " -> " << to_string(r.status) << " (" << r.detail << ")");
    CHECK(r.status == c.expect);
    CHECK_FALSE(r.detail.empty());
  }
  CHECK(parse_one("", ev).status == Status::malformed_json);
  CHECK(parse_one("not json", ev).status == Status::malformed_json);
  CHECK(parse_one("[1,2]", ev).status == Status::bad_type);
  CHECK(parse_one(std::string(FrameParser::kMaxFrameBytes + 1, ' '), ev).status == Status::too_large);
  // A failed parse leaves no stale event behind.
  REQUIRE(parse_one(kAggTrade, ev).ok());
  REQUIRE_FALSE(parse_one(with(kAggTrade, R"("q":"0.34305000")", R"("q":"x")"), ev).ok());
  CHECK(ev.kind == EventKind::none);
  REQUIRE(parse_one(kAggTrade, ev).ok());
  REQUIRE_FALSE(parse_one(with(kAggTrade, R"("q":"0.34305000")", R"("q":"0")"), ev).ok());  // fails in finish()
  CHECK(ev.kind == EventKind::none);
}

TEST_CASE("kline frames are checked for consistency", "[frames]") {
  const std::string kline =
      R"({"stream":"ethusdt@kline_1m","data":{"e":"kline","E":1660435261234,"s":"ETHUSDT","k":{"t":1660435260000,)"
      R"("T":1660435319999,"s":"ETHUSDT","i":"1m","f":100,"L":200,"o":"1900.10","c":"1901.20","h":"1902.00",)"
      R"("l":"1899.50","v":"10.5","n":101,"x":true,"q":"19950.1","V":"4.5","Q":"8550.2","B":"0"}}})";
  Event ev;
  REQUIRE(parse_one(kline, ev).ok());
  CHECK(ev.kline.closed);
  CHECK(ev.kline.interval_s == 60);
  CHECK(ev.kline.bar.high == 1902.0);
  // An interval without trades: Binance sends f = L = -1, zero volumes, flat at the previous close.
  const std::string empty = R"({"e":"kline","E":1660435261234,"s":"ETHUSDT","k":{"t":1660435260000,"T":1660435319999,)"
                            R"("s":"ETHUSDT","i":"1m","f":-1,"L":-1,"o":"1900.1","c":"1900.1","h":"1900.1","l":"1900.1",)"
                            R"("v":"0.0","n":0,"x":true,"q":"0.0","V":"0.0","Q":"0.0","B":"0"}})";
  REQUIRE(parse_one(empty, ev).ok());
  CHECK(ev.kline.bar.first_trade_id == -1);
  CHECK(ev.kline.bar.trade_count == 0);
  CHECK(ev.kline.bar.volume == 0);
  const std::pair<std::pair<std::string, std::string>, Status> cases[] = {
      {{R"("h":"1902.00")", R"("h":"1800")"}, Status::bad_value},
      {{R"("l":"1899.50")", R"("l":"1950")"}, Status::bad_value},
      {{R"("t":1660435260000)", R"("t":1660435260001)"}, Status::bad_time},
      {{R"("T":1660435319999)", R"("T":1660435320000)"}, Status::bad_time},
      {{R"("i":"1m")", R"("i":"5m")"}, Status::bad_time},  // T no longer open + 5m - 1
      {{R"("i":"1m")", R"("i":"7m")"}, Status::bad_value},
      {{R"("s":"ETHUSDT","i")", R"("s":"BTCUSDT","i")"}, Status::mismatch},
      {{R"("n":101)", R"("n":-1)"}, Status::bad_value},
      {{R"("V":"4.5")", R"("V":"10.6")"}, Status::bad_value},
      {{R"("L":200)", R"("L":99)"}, Status::bad_value},
      {{R"("x":true)", R"("x":1)"}, Status::bad_type},
      {{R"("o":"1900.10",)", ""}, Status::missing_field},
  };
  for (const auto& [edit, expect] : cases) {
    const auto frame = with(kline, edit.first, edit.second);
    const auto r = parse_one(frame, ev);
    INFO(frame << " -> " << to_string(r.status) << " (" << r.detail << ")");
    CHECK(r.status == expect);
  }
  // The stream's interval must match the payload's.
  CHECK(parse_one(with(kline, "@kline_1m", "@kline_5m"), ev).status == Status::mismatch);
}

TEST_CASE("steady-state parsing allocates nothing", "[frames]") {
  FrameParser p;
  Event ev;
  const auto frames = all_real_frames();
  for (const auto& f : frames) (void)p.parse(f, ev);  // warm-up: buffers reach their size
  g_allocations = 0;
  g_counting = true;
  int ok = 0;
  for (int round = 0; round < 10; ++round)
    for (const auto& f : frames) ok += p.parse(f, ev).ok();
  g_counting = false;
  CHECK(ok == 10 * 14);  // 2 aggTrade + 2 kline + 8 kline + 2 single frames, ten times
  CHECK(g_allocations == 0);
}

TEST_CASE("keys that are not plain strings", "[frames]") {
  Event ev;
  for (const char* frame : {R"({1:2})", R"({"e":"aggTrade",2:3})", R"({true:1})", R"({"stream":"x@aggTrade",)",
                            R"({"\u0065":"aggTrade"})", R"({"e\"":"x"})", R"({"stre)"}) {
    INFO(frame);
    CHECK_FALSE(parse_one(frame, ev).ok());
  }
  // An escaped key is not unescaped: the field counts as missing rather than being misread.
  CHECK(parse_one(with(kAggTrade, R"("p":)", R"("\u0070":)"), ev).status == Status::missing_field);
}

TEST_CASE("a frame followed by zero padding is parsed in place exactly as a copied one", "[frames]") {
  // What WsFeed hands over: the frame in its read buffer with FrameParser::kPadding zero bytes
  // after it. Each buffer is allocated at exactly that size, so a read past the padding would leave
  // the allocation. Every real frame and every truncation of it must give the same result both ways.
  FrameParser copied, in_place;
  Event a, b;
  long compared = 0, ok = 0;
  for (const auto& frame : all_real_frames()) {
    for (std::size_t cut = 0; cut <= std::min<std::size_t>(64, frame.size()); ++cut) {  // whole, then 64 cuts
      const std::size_t n = frame.size() - cut;
      const auto text = std::string_view(frame).substr(0, n);
      auto buf = std::make_unique<char[]>(n + FrameParser::kPadding);  // value-initialised: zeroes
      std::memcpy(buf.get(), text.data(), n);
      const auto ra = copied.parse(text, a, 7);
      const auto rb = in_place.parse(std::string_view(buf.get(), n), b, 7, Padding::zeroed);
      INFO(text);
      REQUIRE(ra.status == rb.status);
      REQUIRE(a.kind == b.kind);
      CHECK(a.symbol.view() == b.symbol.view());
      CHECK(a.event_time_ms == b.event_time_ms);
      CHECK(a.trade.id == b.trade.id);
      CHECK(a.trade.price == b.trade.price);
      CHECK(a.trade.qty == b.trade.qty);
      CHECK(a.trade.time_ms == b.trade.time_ms);
      CHECK(a.trade.recv_wall_ns == b.trade.recv_wall_ns);
      CHECK(a.kline.bar.open_time_ms == b.kline.bar.open_time_ms);
      CHECK(a.kline.bar.close == b.kline.bar.close);
      CHECK(a.kline.bar.volume == b.kline.bar.volume);
      CHECK(a.kline.closed == b.kline.closed);
      ++compared;
      ok += ra.ok();
    }
  }
  CHECK(compared > 1000);
  CHECK(ok >= 14);  // every usable frame, whole
}
