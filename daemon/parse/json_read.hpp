// Internal to mdshm_parse: typed field readers over simdjson on-demand values. Each returns a
// ParseResult naming the field, so a caller can propagate the first problem with MDSHM_PARSE_TRY.
#pragma once

#include <cstdint>
#include <limits>
#include <memory>
#include <string_view>

#include <simdjson.h>

#include "parse/decimal.hpp"
#include "parse/frame_parser.hpp"

#define MDSHM_PARSE_TRY(expr)              \
  do {                                     \
    if (auto r_ = (expr); !r_.ok()) return r_; \
  } while (0)

namespace mdshm::parse::detail {

namespace od = simdjson::ondemand;

inline Status status_of(simdjson::error_code e) {
  switch (e) {
    case simdjson::INCORRECT_TYPE: return Status::bad_type;
    case simdjson::NUMBER_ERROR:
    case simdjson::NUMBER_OUT_OF_RANGE: return Status::bad_number;
    case simdjson::NO_SUCH_FIELD: return Status::missing_field;
    default: return Status::malformed_json;
  }
}

// For broken JSON simdjson's own message says more than the field we were reading.
inline ParseResult from_error(simdjson::error_code e, std::string_view field) {
  const Status s = status_of(e);
  return {s, s == Status::malformed_json ? std::string_view(simdjson::error_message(e)) : field};
}

inline ParseResult read_time(od::value& v, std::string_view field, std::int64_t& out) {
  std::int64_t t = 0;
  if (auto e = v.get_int64().get(t)) return from_error(e, field);
  if (!plausible_time_ms(t)) return {Status::bad_time, field};
  out = t;
  return {};
}

inline ParseResult read_int(od::value& v, std::string_view field, std::int64_t& out,
                            std::int64_t min = std::numeric_limits<std::int64_t>::min()) {
  std::int64_t x = 0;
  if (auto e = v.get_int64().get(x)) return from_error(e, field);
  if (x < min) return {Status::bad_value, field};
  out = x;
  return {};
}

inline ParseResult read_string(od::value& v, std::string_view field, std::string_view& out) {
  if (auto e = v.get_string().get(out)) return from_error(e, field);
  return {};
}

inline ParseResult read_decimal(od::value& v, std::string_view field, double& out) {
  std::string_view s;
  MDSHM_PARSE_TRY(read_string(v, field, s));
  if (!parse_decimal(s, out)) return {Status::bad_number, field};
  return {};
}

inline ParseResult read_bool(od::value& v, std::string_view field, bool& out) {
  if (auto e = v.get_bool().get(out)) return from_error(e, field);
  return {};
}

inline ParseResult read_symbol(od::value& v, std::string_view field, Symbol& out) {
  std::string_view s;
  MDSHM_PARSE_TRY(read_string(v, field, s));
  if (!out.assign(s)) return {Status::bad_value, field};
  return {};
}

// A member's key as written in the input, without unescaping (no copy into simdjson's string
// buffer: keys are most of a frame's strings). A key containing an escape sequence comes back as
// "\\", which matches no field name: such a member is skipped, so a field spelled with escapes
// counts as missing. Stage 1 has checked that every string is closed, and State::start() zeroes
// the padding after the input, so the scan always stops inside the buffer.
inline std::string_view raw_key(const od::field& field) {
  const char* const begin = field.key().raw();
  const char* p = begin;
  while (*p != '"' && *p != '\\' && *p != '\0') ++p;
  if (*p != '"') return "\\";
  return {begin, static_cast<std::size_t>(p - begin)};
}

// Calls on_field(key, value) for every member, in document order; stops at the first problem.
// Members the callback does not read are skipped (and still checked for structure) by simdjson.
template <class OnField>
ParseResult for_each_field(od::object& obj, OnField&& on_field) {
  for (auto member : obj) {
    od::field field;
    if (auto e = std::move(member).get(field)) return from_error(e, "object member");
    MDSHM_PARSE_TRY(on_field(raw_key(field), field.value()));
  }
  return {};
}

// Single-letter keys (Binance's payloads) as bits, for "which required fields were seen".
constexpr int key_index(char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return 26 + (c - 'a');
  return -1;
}
constexpr std::uint64_t key_bits(std::string_view keys) {
  std::uint64_t m = 0;
  for (char c : keys)
    if (key_index(c) >= 0) m |= std::uint64_t{1} << key_index(c);
  return m;
}
inline constexpr std::string_view kKeyLetters = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

inline ParseResult require(std::uint64_t seen, std::uint64_t required) {
  const std::uint64_t missing = required & ~seen;
  if (missing == 0) return {};
  return {Status::missing_field, kKeyLetters.substr(static_cast<std::size_t>(__builtin_ctzll(missing)), 1)};
}

// The aggTrade fields, shared by the stream (with `E` and `s`) and REST rows (without).
struct AggTradeBuilder {
  Trade& trade;
  Symbol* symbol;  // null for REST rows, which carry no `s`
  std::int64_t first = 0, last = 0;
  std::uint64_t seen = 0;

  ParseResult on_field(std::string_view key, od::value& v) {
    if (key.size() != 1) return {};
    switch (key[0]) {
      case 'E': MDSHM_PARSE_TRY(read_time(v, "E", trade.event_time_ms)); break;
      case 's':
        if (!symbol) return {};
        MDSHM_PARSE_TRY(read_symbol(v, "s", *symbol));
        break;
      case 'a': MDSHM_PARSE_TRY(read_int(v, "a", trade.id, 0)); break;
      case 'p': MDSHM_PARSE_TRY(read_decimal(v, "p", trade.price)); break;
      case 'q': MDSHM_PARSE_TRY(read_decimal(v, "q", trade.qty)); break;
      case 'f': MDSHM_PARSE_TRY(read_int(v, "f", first, 0)); break;
      case 'l': MDSHM_PARSE_TRY(read_int(v, "l", last, 0)); break;
      case 'T': MDSHM_PARSE_TRY(read_time(v, "T", trade.time_ms)); break;
      case 'm': MDSHM_PARSE_TRY(read_bool(v, "m", trade.buyer_is_maker)); break;
      default: return {};
    }
    seen |= key_bits(key);
    return {};
  }
  ParseResult finish(std::uint64_t required) const {
    MDSHM_PARSE_TRY(require(seen, required));
    if (!(trade.price > 0)) return {Status::bad_value, "p (not positive)"};
    if (!(trade.qty > 0)) return {Status::bad_value, "q (not positive)"};
    if (last < first) return {Status::bad_value, "l (before f)"};
    return {};
  }
};
inline constexpr std::uint64_t kAggTradeStreamFields = key_bits("EsapqflTm");
inline constexpr std::uint64_t kAggTradeRestFields = key_bits("apqflTm");

// Whatever follows the top-level value (a second document, a stray brace) makes the input invalid.
inline ParseResult check_consumed(od::document& doc) {
  if (doc.current_location().error() == simdjson::OUT_OF_BOUNDS) return {};
  return {Status::malformed_json, "trailing content after the JSON value"};
}

}  // namespace mdshm::parse::detail

namespace mdshm::parse {

struct FrameParser::State {
  simdjson::ondemand::parser parser;
  std::unique_ptr<char[]> buf;  // the input, copied with simdjson's padding after it
  std::size_t buf_capacity = 0;
  std::int64_t api_code = 0;
  char api_msg[128] = {};

  // Copies `text` into the padded buffer and starts simdjson on it.
  ParseResult start(std::string_view text, std::size_t limit, simdjson::ondemand::document& doc,
                    Padding padding = Padding::none);
  ParseResult record_api_error(std::int64_t code, std::string_view msg);
  // An object where an array (or another shape) was expected: Binance's {"code":..,"msg":..}.
  ParseResult parse_api_error_object(simdjson::ondemand::object obj);
};

}  // namespace mdshm::parse

namespace mdshm::parse::detail {

// Checks shared by stream klines and REST rows: interval alignment, OHLC consistency, volumes.
ParseResult validate_kline(const Kline& k, std::int64_t close_time_ms);

}  // namespace mdshm::parse::detail
