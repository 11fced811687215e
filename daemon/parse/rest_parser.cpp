// FrameParser's REST half: /api/v3/klines, /api/v3/aggTrades, /api/v3/time.
#include <cstring>

#include "parse/frame_parser.hpp"
#include "parse/json_read.hpp"

namespace mdshm::parse {

using namespace detail;


ParseResult FrameParser::State::parse_api_error_object(od::object obj) {
  std::int64_t code = 0;
  std::string_view msg;
  bool have_code = false, have_msg = false;
  MDSHM_PARSE_TRY(for_each_field(obj, [&](std::string_view key, od::value& v) -> ParseResult {
    if (key == "code") return have_code = true, read_int(v, "code", code);
    if (key == "msg") return have_msg = true, read_string(v, "msg", msg);
    return {};
  }));
  if (!have_code || !have_msg) return {Status::bad_type, "body (an object, not the expected shape)"};
  return record_api_error(code, msg);
}

namespace {

// One row: [open time, o, h, l, c, v, close time, quote volume, trades, taker base, taker quote, ignore]
ParseResult read_kline_row(od::array& row, Kline& k, std::int64_t& close_time_ms) {
  Bar& b = k.bar;
  std::size_t i = 0;
  std::int64_t n = 0;
  for (auto element : row) {
    od::value v;
    if (auto e = std::move(element).get(v)) return from_error(e, "klines[]");
    switch (i++) {
      case 0: MDSHM_PARSE_TRY(read_time(v, "klines[][0] open time", b.open_time_ms)); break;
      case 1: MDSHM_PARSE_TRY(read_decimal(v, "klines[][1] open", b.open)); break;
      case 2: MDSHM_PARSE_TRY(read_decimal(v, "klines[][2] high", b.high)); break;
      case 3: MDSHM_PARSE_TRY(read_decimal(v, "klines[][3] low", b.low)); break;
      case 4: MDSHM_PARSE_TRY(read_decimal(v, "klines[][4] close", b.close)); break;
      case 5: MDSHM_PARSE_TRY(read_decimal(v, "klines[][5] volume", b.volume)); break;
      case 6: MDSHM_PARSE_TRY(read_time(v, "klines[][6] close time", close_time_ms)); break;
      case 7: MDSHM_PARSE_TRY(read_decimal(v, "klines[][7] quote volume", b.quote_volume)); break;
      case 8:
        MDSHM_PARSE_TRY(read_int(v, "klines[][8] trades", n, 0));
        b.trade_count = static_cast<std::uint64_t>(n);
        break;
      case 9: MDSHM_PARSE_TRY(read_decimal(v, "klines[][9] taker base", b.taker_buy_volume)); break;
      case 10: MDSHM_PARSE_TRY(read_decimal(v, "klines[][10] taker quote", b.taker_buy_quote_volume)); break;
      default: break;  // [11] "ignore", and any column Binance may add later
    }
  }
  if (i < 11) return {Status::missing_field, "klines[] (fewer than 11 columns)"};
  return {};
}

// A REST body is either the array asked for or Binance's {"code":…,"msg":…} error object.
ParseResult open_rest_array(FrameParser::State& state, std::string_view body, od::document& doc, od::array& rows) {
  MDSHM_PARSE_TRY(state.start(body, FrameParser::kMaxRestBytes, doc));
  od::json_type type{};
  if (auto e = doc.type().get(type)) return from_error(e, "body");
  if (type == od::json_type::object) {
    od::object obj;
    if (auto e = doc.get_object().get(obj)) return from_error(e, "body");
    return state.parse_api_error_object(obj);
  }
  if (auto e = doc.get_array().get(rows)) return from_error(e, "body (not an array)");
  return {Status::ok, {}};
}

}  // namespace

ParseResult FrameParser::parse_klines(std::string_view body, std::uint32_t interval_s, std::vector<Kline>& out,
                                      std::int64_t server_now_ms) {
  out.clear();
  if (interval_name(interval_s).empty()) return {Status::bad_value, "interval_s (not a Binance interval)"};
  od::document doc;
  od::array rows;
  MDSHM_PARSE_TRY(open_rest_array(*state_, body, doc, rows));
  for (auto element : rows) {
    od::array row;
    if (auto e = std::move(element).get_array().get(row)) return from_error(e, "klines[] (not an array)");
    Kline k;
    k.interval_s = interval_s;
    k.bar.first_trade_id = k.bar.last_trade_id = -1;  // REST rows do not carry trade ids
    std::int64_t close_time_ms = 0;
    MDSHM_PARSE_TRY(read_kline_row(row, k, close_time_ms));
    MDSHM_PARSE_TRY(validate_kline(k, close_time_ms));
    if (!out.empty() && k.bar.open_time_ms <= out.back().bar.open_time_ms)
      return {Status::bad_value, "klines[] (open times not ascending)"};
    k.closed = server_now_ms != 0 && close_time_ms < server_now_ms;
    out.push_back(k);
  }
  return check_consumed(doc);
}

ParseResult FrameParser::parse_agg_trades(std::string_view body, std::vector<Trade>& out) {
  out.clear();
  od::document doc;
  od::array rows;
  MDSHM_PARSE_TRY(open_rest_array(*state_, body, doc, rows));
  for (auto element : rows) {
    od::object obj;
    if (auto e = std::move(element).get_object().get(obj)) return from_error(e, "aggTrades[] (not an object)");
    Trade t;
    AggTradeBuilder row{t, nullptr};
    MDSHM_PARSE_TRY(for_each_field(obj, [&](std::string_view key, od::value& v) { return row.on_field(key, v); }));
    MDSHM_PARSE_TRY(row.finish(kAggTradeRestFields));
    out.push_back(t);
  }
  return check_consumed(doc);
}

ParseResult FrameParser::parse_server_time(std::string_view body, std::int64_t& server_time_ms) {
  od::document doc;
  MDSHM_PARSE_TRY(state_->start(body, kMaxRestBytes, doc));
  od::object obj;
  if (auto e = doc.get_object().get(obj)) return from_error(e, "body (not an object)");
  bool have_time = false, have_code = false, have_msg = false;
  std::int64_t t = 0, code = 0;
  std::string_view msg;
  MDSHM_PARSE_TRY(for_each_field(obj, [&](std::string_view key, od::value& v) -> ParseResult {
    if (key == "serverTime") {
      have_time = true;
      std::int64_t raw = 0;  // read once: an on-demand value cannot be read twice
      if (auto e = v.get_int64().get(raw)) return from_error(e, "serverTime");
      // 0 is what a server whose clock is not set answers: say so, not "absurd timestamp".
      if (raw == 0) return {Status::bad_time, "serverTime is 0 (the server's clock is not set)"};
      if (!plausible_time_ms(raw)) return {Status::bad_time, "serverTime"};
      t = raw;
      return {};
    }
    if (key == "code") return have_code = true, read_int(v, "code", code);
    if (key == "msg") return have_msg = true, read_string(v, "msg", msg);
    return {};
  }));
  if (!have_time) {
    if (have_code && have_msg) return state_->record_api_error(code, msg);
    return {Status::missing_field, "serverTime"};
  }
  MDSHM_PARSE_TRY(check_consumed(doc));
  server_time_ms = t;
  return {};
}

}  // namespace mdshm::parse
