// Internal to mdshm_parse (frame_parser.cpp only): what stream names and `e` values mean, one
// builder per event kind, and PayloadParser, which turns a payload object into an Event.
#pragma once

#include <initializer_list>
#include <string_view>

#include "parse/json_read.hpp"

namespace mdshm::parse::detail {

// --- what a stream name or an `e` says -------------------------------------------------------

enum class Class : std::uint8_t { use, ignored, unknown };

struct StreamName {
  Class cls = Class::unknown;
  EventKind kind = EventKind::none;
  std::string_view symbol;  // lower case, as in the stream name
  std::uint32_t interval_s = 0;
};

inline bool starts_with_any(std::string_view s, std::initializer_list<std::string_view> prefixes) {
  for (auto p : prefixes)
    if (s.starts_with(p)) return true;
  return false;
}

// "<symbol>@aggTrade", "<symbol>@kline_1m", "<symbol>@depth@100ms", "!ticker@arr", ...
inline StreamName classify_stream(std::string_view s) {
  StreamName n;
  if (s.starts_with('!')) return n.cls = Class::ignored, n;  // all-market streams
  const auto at = s.find('@');
  if (at == std::string_view::npos || at == 0) return n;
  n.symbol = s.substr(0, at);
  const auto type = s.substr(at + 1);
  if (type == "aggTrade") return n.cls = Class::use, n.kind = EventKind::agg_trade, n;
  if (type == "trade") return n.cls = Class::use, n.kind = EventKind::trade, n;
  if (type.starts_with("kline_")) {
    const auto name = type.substr(6);
    if (const auto secs = interval_seconds(name)) {
      n.cls = Class::use, n.kind = EventKind::kline, n.interval_s = *secs;
      return n;
    }
    // 1M (calendar months) and time-zone variants ("kline_1d@+08:00") exist but are not ours.
    if (name == "1M" || name.find('@') != std::string_view::npos) n.cls = Class::ignored;
    return n;
  }
  if (starts_with_any(type, {"depth", "bookTicker", "ticker", "miniTicker", "avgPrice"}))
    n.cls = Class::ignored;
  return n;
}

struct EventName {
  Class cls = Class::unknown;
  EventKind kind = EventKind::none;
};

inline EventName classify_event(std::string_view e) {
  if (e == "aggTrade") return {Class::use, EventKind::agg_trade};
  if (e == "trade") return {Class::use, EventKind::trade};
  if (e == "kline") return {Class::use, EventKind::kline};
  if (e == "serverShutdown") return {Class::use, EventKind::server_shutdown};
  for (auto known : {"depthUpdate", "24hrTicker", "24hrMiniTicker", "1hTicker", "4hTicker", "1dTicker",
                     "avgPrice", "bookTicker"})
    if (e == known) return {Class::ignored, EventKind::none};
  return {};
}

// --- one builder per event kind: on_field() per member, finish() after the last ---------------


// Legacy `trade` stream. Its `b`/`a` (buyer and seller order ids) are gone from today's API and
// unused here, so they are skipped rather than required.
struct TradeBuilder {
  Trade& trade;
  Symbol& symbol;
  std::uint64_t seen = 0;

  ParseResult on_field(std::string_view key, od::value& v) {
    if (key.size() != 1) return {};
    switch (key[0]) {
      case 'E': MDSHM_PARSE_TRY(read_time(v, "E", trade.event_time_ms)); break;
      case 's': MDSHM_PARSE_TRY(read_symbol(v, "s", symbol)); break;
      case 't': MDSHM_PARSE_TRY(read_int(v, "t", trade.id, 0)); break;
      case 'p': MDSHM_PARSE_TRY(read_decimal(v, "p", trade.price)); break;
      case 'q': MDSHM_PARSE_TRY(read_decimal(v, "q", trade.qty)); break;
      case 'T': MDSHM_PARSE_TRY(read_time(v, "T", trade.time_ms)); break;
      case 'm': MDSHM_PARSE_TRY(read_bool(v, "m", trade.buyer_is_maker)); break;
      default: return {};
    }
    seen |= key_bits(key);
    return {};
  }
  ParseResult finish() const {
    MDSHM_PARSE_TRY(require(seen, key_bits("EstpqTm")));
    if (!(trade.price > 0)) return {Status::bad_value, "p (not positive)"};
    if (!(trade.qty > 0)) return {Status::bad_value, "q (not positive)"};
    return {};
  }
};

// The `k` object of a kline event.
struct KlineBodyBuilder {
  Kline& kline;
  Symbol symbol{};
  std::int64_t close_time_ms = 0;
  std::uint64_t seen = 0;

  ParseResult on_field(std::string_view key, od::value& v) {
    if (key.size() != 1) return {};
    Bar& b = kline.bar;
    std::int64_t n = 0;
    std::string_view interval;
    switch (key[0]) {
      case 't': MDSHM_PARSE_TRY(read_time(v, "k.t", b.open_time_ms)); break;
      case 'T': MDSHM_PARSE_TRY(read_time(v, "k.T", close_time_ms)); break;
      case 's': MDSHM_PARSE_TRY(read_symbol(v, "k.s", symbol)); break;
      case 'i':
        MDSHM_PARSE_TRY(read_string(v, "k.i", interval));
        if (const auto secs = interval_seconds(interval)) kline.interval_s = *secs;
        else return {Status::bad_value, "k.i (unknown interval)"};
        break;
      case 'f': MDSHM_PARSE_TRY(read_int(v, "k.f", b.first_trade_id, -1)); break;
      case 'L': MDSHM_PARSE_TRY(read_int(v, "k.L", b.last_trade_id, -1)); break;
      case 'o': MDSHM_PARSE_TRY(read_decimal(v, "k.o", b.open)); break;
      case 'c': MDSHM_PARSE_TRY(read_decimal(v, "k.c", b.close)); break;
      case 'h': MDSHM_PARSE_TRY(read_decimal(v, "k.h", b.high)); break;
      case 'l': MDSHM_PARSE_TRY(read_decimal(v, "k.l", b.low)); break;
      case 'v': MDSHM_PARSE_TRY(read_decimal(v, "k.v", b.volume)); break;
      case 'q': MDSHM_PARSE_TRY(read_decimal(v, "k.q", b.quote_volume)); break;
      case 'V': MDSHM_PARSE_TRY(read_decimal(v, "k.V", b.taker_buy_volume)); break;
      case 'Q': MDSHM_PARSE_TRY(read_decimal(v, "k.Q", b.taker_buy_quote_volume)); break;
      case 'n':
        MDSHM_PARSE_TRY(read_int(v, "k.n", n, 0));
        b.trade_count = static_cast<std::uint64_t>(n);
        break;
      case 'x': MDSHM_PARSE_TRY(read_bool(v, "k.x", kline.closed)); break;
      default: return {};
    }
    seen |= key_bits(key);
    return {};
  }
  ParseResult finish() const {
    MDSHM_PARSE_TRY(require(seen, key_bits("tTsiochlvqVQnx")));
    return validate_kline(kline, close_time_ms);
  }
};

// A payload object (the `data` of a combined frame, or a raw frame). `expected` comes from the
// stream name (none for raw frames); `e` decides otherwise. Binance puts `e` first, so fields are
// normally handled in one pass; if other members come before `e` (a JSON writer that sorts keys)
// the object is read a second time once the kind is known.
class PayloadParser {
 public:
  PayloadParser(Event& out, std::uint32_t expected_interval_s)
      : out_(out), expected_interval_s_(expected_interval_s) {}

  struct Outcome {
    ParseResult result;
    bool api_error = false;  // result.detail is then the raw msg; code in api_code
    std::int64_t api_code = 0;
  };

  Outcome parse(od::object& obj, EventKind expected) {
    kind_ = expected;
    bool deferred = false;
    bool have_e = false, have_code = false, have_msg = false, have_ack = false, have_book = false;
    std::string_view msg;
    std::int64_t code = 0;
    auto first_pass = [&](std::string_view key, od::value& v) -> ParseResult {
      if (key == "e") {
        std::string_view e;
        MDSHM_PARSE_TRY(read_string(v, "e", e));
        const EventName n = classify_event(e);
        if (expected != EventKind::none && (n.cls != Class::use || n.kind != expected))
          return {Status::mismatch, "e (stream says otherwise)"};
        if (n.cls == Class::ignored) return {Status::ignored, "e"};
        if (n.cls == Class::unknown) return {Status::unknown_event, "e"};
        if (have_e && n.kind != kind_) return {Status::mismatch, "e (twice, differing)"};
        kind_ = n.kind;
        have_e = true;
        return {};
      }
      if (kind_ != EventKind::none && !deferred) return on_field(key, v);
      deferred = true;
      if (key == "code") return have_code = true, read_int(v, "code", code);
      if (key == "msg") return have_msg = true, read_string(v, "msg", msg);
      if (key == "result" || key == "id") have_ack = true;
      if (key == "u" || key == "lastUpdateId") have_book = true;
      return {};
    };
    if (auto r = for_each_field(obj, first_pass); !r.ok()) return {r};
    if (!have_e) {
      if (expected != EventKind::none) return {{Status::missing_field, "e"}};
      if (have_code && have_msg) return {{Status::api_error, msg}, true, code};
      if (have_ack || have_book) return {{Status::ignored, "no e (ack or book ticker)"}};
      return {{Status::unknown_event, "no e"}};
    }
    if (deferred) {
      if (auto e = obj.reset().error()) return {from_error(e, "rewind")};
      auto second_pass = [&](std::string_view key, od::value& v) -> ParseResult {
        return key == "e" ? ParseResult{} : on_field(key, v);
      };
      if (auto r = for_each_field(obj, second_pass); !r.ok()) return {r};
    }
    return {finish()};
  }

 private:
  ParseResult on_field(std::string_view key, od::value& v) {
    switch (kind_) {
      case EventKind::agg_trade: return agg_.on_field(key, v);
      case EventKind::trade: return trade_.on_field(key, v);
      case EventKind::server_shutdown:
        if (key == "E") return seen_time_ = true, read_time(v, "E", out_.event_time_ms);
        return {};
      case EventKind::kline:
        if (key == "E") return seen_time_ = true, read_time(v, "E", out_.event_time_ms);
        if (key == "s") return read_symbol(v, "s", out_.symbol);
        if (key == "k") {
          od::object k;
          if (auto e = v.get_object().get(k)) return from_error(e, "k");
          seen_k_ = true;
          return for_each_field(k, [&](std::string_view kk, od::value& kv) { return kline_.on_field(kk, kv); });
        }
        return {};
      case EventKind::none: return {};
    }
    return {};
  }

  ParseResult finish() {
    out_.kind = kind_;
    switch (kind_) {
      case EventKind::agg_trade:
        MDSHM_PARSE_TRY(agg_.finish(kAggTradeStreamFields));
        out_.event_time_ms = out_.trade.event_time_ms;
        return {};
      case EventKind::trade:
        MDSHM_PARSE_TRY(trade_.finish());
        out_.event_time_ms = out_.trade.event_time_ms;
        return {};
      case EventKind::kline:
        if (!seen_time_) return {Status::missing_field, "E"};
        if (out_.symbol.empty()) return {Status::missing_field, "s"};
        if (!seen_k_) return {Status::missing_field, "k"};
        MDSHM_PARSE_TRY(kline_.finish());
        if (kline_.symbol.view() != out_.symbol.view()) return {Status::mismatch, "k.s (differs from s)"};
        if (expected_interval_s_ != 0 && out_.kline.interval_s != expected_interval_s_)
          return {Status::mismatch, "k.i (stream says otherwise)"};
        return {};
      case EventKind::server_shutdown:
        if (!seen_time_) return {Status::missing_field, "E"};
        return {};
      case EventKind::none: break;
    }
    return {Status::unknown_event, "no e"};
  }

  Event& out_;
  std::uint32_t expected_interval_s_;
  EventKind kind_ = EventKind::none;
  bool seen_time_ = false, seen_k_ = false;
  AggTradeBuilder agg_{out_.trade, &out_.symbol};
  TradeBuilder trade_{out_.trade, out_.symbol};
  KlineBodyBuilder kline_{out_.kline};
};

}  // namespace mdshm::parse::detail
