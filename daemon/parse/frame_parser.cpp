#include "parse/frame_parser.hpp"

#include <algorithm>
#include <cstring>

#include "parse/json_read.hpp"
#include "parse/payload_parser.hpp"

namespace mdshm::parse {

using namespace detail;

std::string_view to_string(Status s) {
  switch (s) {
    case Status::ok: return "ok";
    case Status::ignored: return "ignored";
    case Status::unknown_event: return "unknown event";
    case Status::api_error: return "exchange error";
    case Status::malformed_json: return "malformed JSON";
    case Status::too_large: return "too large";
    case Status::missing_field: return "missing field";
    case Status::bad_type: return "wrong type";
    case Status::bad_number: return "bad number";
    case Status::bad_value: return "impossible value";
    case Status::bad_time: return "absurd timestamp";
    case Status::mismatch: return "stream/payload mismatch";
  }
  return "?";
}

std::optional<Stat> stat_for(Status s) {
  switch (s) {
    case Status::ok:
    case Status::ignored:
    case Status::api_error: return std::nullopt;  // not bad input: the caller acts on the code
    case Status::unknown_event: return Stat::unknown_events;
    case Status::bad_number:
    case Status::bad_value:
    case Status::bad_time: return Stat::rejected_values;
    default: return Stat::parse_errors;
  }
}

std::string_view to_string(EventKind k) {
  switch (k) {
    case EventKind::none: return "none";
    case EventKind::agg_trade: return "aggTrade";
    case EventKind::trade: return "trade";
    case EventKind::kline: return "kline";
    case EventKind::server_shutdown: return "serverShutdown";
  }
  return "?";
}

namespace detail {

ParseResult validate_kline(const Kline& k, std::int64_t close_time_ms) {
  const Bar& b = k.bar;
  const std::int64_t len_ms = std::int64_t{k.interval_s} * 1000;
  if (bar_open_ms(b.open_time_ms, k.interval_s) != b.open_time_ms) return {Status::bad_time, "t (not aligned)"};
  if (close_time_ms != b.open_time_ms + len_ms - 1) return {Status::bad_time, "T (not open + interval - 1)"};
  if (!(b.open > 0 && b.close > 0 && b.low > 0)) return {Status::bad_value, "o/c/l (not positive)"};
  if (b.high < std::max({b.open, b.close, b.low}) || b.low > std::min(b.open, b.close))
    return {Status::bad_value, "h/l (not the range of o and c)"};
  if (b.taker_buy_volume > b.volume || b.taker_buy_quote_volume > b.quote_volume)
    return {Status::bad_value, "V/Q (taker volume above volume)"};
  if (b.first_trade_id >= 0 && b.last_trade_id < b.first_trade_id) return {Status::bad_value, "L (before f)"};
  return {};
}

}  // namespace detail

// -----------------------------------------------------------------------------------------------

FrameParser::FrameParser() : state_(std::make_unique<State>()) {
  // Sized once for any realistic frame, so the steady state allocates nothing.
  // If this fails, start() asks again for the size it needs and reports too_large then.
  if (state_->parser.allocate(std::size_t{64} << 10) != simdjson::SUCCESS) return;
}
FrameParser::~FrameParser() = default;
FrameParser::FrameParser(FrameParser&&) noexcept = default;
FrameParser& FrameParser::operator=(FrameParser&&) noexcept = default;

std::int64_t FrameParser::api_error_code() const { return state_->api_code; }

// Stage 1 (the SIMD part) runs in the shared library, dispatched at run time to the best kernel.
std::string_view FrameParser::simd_kernel() { return simdjson::get_active_implementation()->name(); }

static_assert(FrameParser::kPadding >= simdjson::SIMDJSON_PADDING);

ParseResult FrameParser::State::start(std::string_view text, std::size_t limit, od::document& doc, Padding padding) {
  if (text.size() > limit) return {Status::too_large, "input longer than the limit"};
  // A frame whose fields precede `e` is read twice, unescaping its strings twice into the
  // parser's string buffer (5/3 of the capacity): capacity >= 2x the input keeps that in bounds.
  if (parser.capacity() < 2 * text.size()) {
    if (auto e = parser.allocate(2 * text.size())) return {Status::too_large, simdjson::error_message(e)};
  }
  if (padding == Padding::zeroed) {
    // The caller's buffer already ends in kPadding zero bytes: read the frame where it is.
    if (auto e = parser.iterate(simdjson::padded_string_view(text.data(), text.size(), text.size() + kPadding)).get(doc))
      return from_error(e, "document");
    return {};
  }
  const std::size_t need = text.size() + simdjson::SIMDJSON_PADDING;
  if (need > buf_capacity) {
    const std::size_t cap = std::max(need, std::size_t{16} << 10);
    buf = std::make_unique_for_overwrite<char[]>(cap);
    buf_capacity = cap;
  }
  std::memcpy(buf.get(), text.data(), text.size());
  std::memset(buf.get() + text.size(), 0, simdjson::SIMDJSON_PADDING);  // raw_key() stops at a NUL
  if (auto e = parser.iterate(simdjson::padded_string_view(buf.get(), text.size(), buf_capacity)).get(doc))
    return from_error(e, "document");
  return {};
}

ParseResult FrameParser::State::record_api_error(std::int64_t code, std::string_view msg) {
  api_code = code;
  const std::size_t n = std::min(msg.size(), sizeof(api_msg));
  std::memcpy(api_msg, msg.data(), n);
  return {Status::api_error, std::string_view(api_msg, n)};
}


ParseResult FrameParser::parse(std::string_view frame, Event& out, std::int64_t recv_wall_ns, Padding padding) {
  out = Event{};
  out.trade.recv_wall_ns = recv_wall_ns;
  const ParseResult r = parse_into(frame, out, padding);
  if (!r.ok()) out.kind = EventKind::none;  // a half-filled event must not look usable
  return r;
}

ParseResult FrameParser::parse_into(std::string_view frame, Event& out, Padding padding) {
  od::document doc;
  MDSHM_PARSE_TRY(state_->start(frame, kMaxFrameBytes, doc, padding));
  od::object top;
  if (auto e = doc.get_object().get(top)) {
    // An array is JSON of the wrong shape; a bare scalar or garbage is not a frame at all.
    od::json_type type{};
    if (e == simdjson::INCORRECT_TYPE && doc.type().get(type) == simdjson::SUCCESS && type == od::json_type::array)
      return {Status::bad_type, "frame (an array, not an object)"};
    return {Status::malformed_json, e == simdjson::INCORRECT_TYPE ? "frame (not a JSON object)" : simdjson::error_message(e)};
  }

  // A combined-stream frame starts with "stream" (or "data"); anything else is a raw payload.
  StreamName stream;
  bool wrapped = false, have_stream = false, have_data = false, data_first = false;
  std::uint32_t stream_interval = 0;
  PayloadParser::Outcome outcome;
  bool first_member = true;
  bool raw = false;
  auto on_top = [&](std::string_view key, od::value& v) -> ParseResult {
    if (first_member) {
      first_member = false;
      wrapped = key == "stream" || key == "data";
      if (!wrapped) return raw = true, ParseResult{Status::ok, "raw"};
    }
    if (key == "stream") {
      std::string_view s;
      MDSHM_PARSE_TRY(read_string(v, "stream", s));
      stream = classify_stream(s);
      have_stream = true;
      if (stream.cls == Class::ignored) return {Status::ignored, "stream"};
      if (stream.cls == Class::unknown) return {Status::unknown_event, "stream"};
      stream_interval = stream.interval_s;
      return {};
    }
    if (key == "data") {
      if (have_data) return {Status::malformed_json, "data (twice)"};
      have_data = true;
      data_first = !have_stream;
      od::object payload;
      if (auto e = v.get_object().get(payload)) return from_error(e, "data");
      PayloadParser p(out, stream_interval);
      outcome = p.parse(payload, have_stream ? stream.kind : EventKind::none);
      if (outcome.api_error) return {Status::unknown_event, "error body inside a stream frame"};
      if (!outcome.result.ok()) return outcome.result;
    }
    return {};
  };
  // A raw payload is recognised by its first key; the loop stops there and the object is re-read.
  for (auto member : top) {
    od::field field;
    if (auto e = std::move(member).get(field)) return from_error(e, "object member");
    MDSHM_PARSE_TRY(on_top(raw_key(field), field.value()));
    if (raw) break;
  }

  if (raw || first_member) {
    if (first_member) return {Status::unknown_event, "empty object"};
    if (auto e = top.reset().error()) return from_error(e, "rewind");
    PayloadParser p(out, 0);
    outcome = p.parse(top, EventKind::none);
  } else {
    if (!have_stream) return {Status::missing_field, "stream"};
    if (!have_data) return {Status::missing_field, "data"};
    if (data_first) {
      // The payload was read before the stream name: cross-check now.
      if (outcome.result.status == Status::ignored) return outcome.result;
      if (stream.kind != out.kind) return {Status::mismatch, "e (stream says otherwise)"};
      if (stream.kind == EventKind::kline && stream.interval_s != out.kline.interval_s)
        return {Status::mismatch, "k.i (stream says otherwise)"};
    }
  }
  if (outcome.api_error) return state_->record_api_error(outcome.api_code, outcome.result.detail);
  if (!outcome.result.ok()) return outcome.result;
  if (wrapped && !out.symbol.empty() && !out.symbol.equals_ignore_case(stream.symbol))
    return {Status::mismatch, "s (stream says otherwise)"};
  MDSHM_PARSE_TRY(check_consumed(doc));
  return {};
}

}  // namespace mdshm::parse
