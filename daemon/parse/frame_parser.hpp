// Binance JSON -> the plain values of model/market.hpp, with simdjson's on-demand API.
//
//   FrameParser p;                       // one per connection/thread; not thread-safe
//   Event ev;
//   ParseResult r = p.parse(frame, ev, recv_wall_ns);
//   if (r.ok()) { ev.kind == EventKind::agg_trade -> ev.trade ... }
//   else if (auto stat = stat_for(r.status)) count(*stat), log(to_string(r.status), r.detail);
//
// Errors are values: nothing here throws, and no frame, however broken, crashes the parser or
// comes back `ok` with a NaN, a negative price, an absurd timestamp or an inconsistent kline.
// Steady-state parsing allocates nothing: the simdjson parser and the padded input buffer are
// owned by the FrameParser and reused (they grow only for a larger document than any before).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string_view>
#include <vector>

#include "model/market.hpp"
#include "parse/decimal.hpp"

namespace mdshm::parse {

enum class Status : std::uint8_t {
  ok = 0,
  ignored,         // a known event we do not use (depthUpdate, bookTicker, 24hrTicker, acks ...)
  unknown_event,   // a stream or event type we do not know
  api_error,       // a Binance error body {"code":..,"msg":..}; see FrameParser::api_error_code()
  malformed_json,  // not JSON, truncated, trailing content, wrong shape
  too_large,       // input longer than the limit for its kind
  missing_field,   // a required field is absent
  bad_type,        // a field has the wrong JSON type
  bad_number,      // a number or decimal string that is not a plain non-negative finite decimal
  bad_value,       // a well-formed value that cannot be true (zero price, high < low, bad symbol)
  bad_time,        // a timestamp outside 2009..2100 or inconsistent with the interval
  mismatch,        // the stream name disagrees with the payload (symbol, event type, interval)
};

std::string_view to_string(Status s);

// The segment counter a caller bumps for a failed parse (none for ok and ignored).
std::optional<Stat> stat_for(Status s);

struct ParseResult {
  Status status = Status::ok;
  // Which field or what went wrong, e.g. "data.p" or simdjson's message; static text, or for
  // api_error the exchange's message (valid until the next call on the same FrameParser).
  std::string_view detail;
  bool ok() const { return status == Status::ok; }
};

enum class EventKind : std::uint8_t {
  none = 0,
  agg_trade,        // trade.id = aggTrade id `a`
  trade,            // legacy `trade` stream: trade.id = trade id `t` (not an aggTrade id)
  kline,
  server_shutdown,  // Binance is about to close the connection for maintenance: reconnect now
};
std::string_view to_string(EventKind k);

struct Event {
  EventKind kind = EventKind::none;
  Symbol symbol;                 // payload `s`, upper case; empty for server_shutdown
  std::int64_t event_time_ms = 0;  // `E`
  Trade trade;                   // agg_trade, trade
  Kline kline;                   // kline (bar.flags 0, update_wall_ns 0)
};

// Whether the bytes after a frame may be read by simdjson: `zeroed` promises that at least
// FrameParser::kPadding bytes after the text are readable and zero (a receive buffer that has
// room for them), so the parser reads the frame in place instead of copying it into its own
// padded buffer first.
enum class Padding : std::uint8_t { none, zeroed };

class FrameParser {
 public:
  static constexpr std::size_t kPadding = 64;  // simdjson::SIMDJSON_PADDING (checked in the .cpp)
  static constexpr std::size_t kMaxFrameBytes = std::size_t{1} << 20;  // one WebSocket message
  static constexpr std::size_t kMaxRestBytes = std::size_t{32} << 20;  // one REST response body

  FrameParser();
  ~FrameParser();
  FrameParser(FrameParser&&) noexcept;
  FrameParser& operator=(FrameParser&&) noexcept;

  // One WebSocket message: a combined-stream frame {"stream":..,"data":{..}} or a raw payload.
  // `recv_wall_ns` is copied into trade.recv_wall_ns. `out` is overwritten even on failure.
  ParseResult parse(std::string_view frame, Event& out, std::int64_t recv_wall_ns = 0,
                    Padding padding = Padding::none);

  // GET /api/v3/klines: appends to `out` (cleared first). Rows are checked against `interval_s`
  // and must ascend. A row is marked closed when its close time is before `server_now_ms`
  // (0 = unknown: every row left open, the caller decides).
  ParseResult parse_klines(std::string_view body, std::uint32_t interval_s, std::vector<Kline>& out,
                           std::int64_t server_now_ms = 0);
  // GET /api/v3/aggTrades: appends to `out` (cleared first), in the exchange's order.
  ParseResult parse_agg_trades(std::string_view body, std::vector<Trade>& out);
  // GET /api/v3/time.
  ParseResult parse_server_time(std::string_view body, std::int64_t& server_time_ms);

  // After Status::api_error: the exchange's code (e.g. -1121 invalid symbol); detail is its msg.
  std::int64_t api_error_code() const;

  // The simdjson kernel this library was compiled for ("westmere", "haswell", "fallback" ...).
  static std::string_view simd_kernel();

  struct State;  // the simdjson parser and buffers (json_read.hpp)

 private:
  ParseResult parse_into(std::string_view frame, Event& out, Padding padding);

  // Behind a pointer: simdjson::ondemand names a different kernel namespace depending on the
  // compiler flags of the including file, so its types must not appear in this header.
  std::unique_ptr<State> state_;
};

}  // namespace mdshm::parse
