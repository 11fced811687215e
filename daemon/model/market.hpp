// What flows between the stages of the daemon: net -> parse -> aggregate -> publish.
// Plain values, no allocation: a parsed frame becomes one of these and nothing else.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

#include "mdshm/layout.hpp"

namespace mdshm {

// One trade (Binance aggTrade). Prices and quantities are the nearest doubles to the exchange's
// decimal strings (correctly rounded, so they print back to the same decimal).
struct Trade {
  std::int64_t id = -1;          // aggTrade id `a`; contiguous per symbol on Binance
  std::int64_t time_ms = 0;      // trade time `T`: the truth for bar assignment
  double price = 0;
  double qty = 0;
  bool buyer_is_maker = false;   // `m`: true = the taker sold
  std::int64_t event_time_ms = 0;  // `E`
  std::int64_t recv_wall_ns = 0;   // when the frame arrived (CLOCK_REALTIME); 0 = unknown
};

// An exchange kline (stream `<sym>@kline_<i>` or REST /api/v3/klines row), as a Bar.
struct Kline {
  std::uint32_t interval_s = 0;
  bool closed = false;           // `x`
  Bar bar{};                     // flags left 0. first/last_trade_id hold the kline's `f`/`L`:
                                 // plain trade ids, NOT aggTrade ids — never compare them with `a`
};

// Binance interval names and their lengths, as listed for spot's `<symbol>@kline_<interval>`
// streams ("Kline/Candlestick Streams for UTC", binance-spot-api-docs web-socket-streams.md: 1s is
// a spot interval, pushed every 1000 ms, the others every 2000 ms) and /api/v3/klines. Fixed-length
// intervals only: 1M (calendar month) has no fixed length and is refused by the config.
struct IntervalName {
  std::string_view name;
  std::uint32_t seconds;
};
inline constexpr IntervalName kIntervals[] = {
    {"1s", 1},        {"1m", 60},        {"3m", 180},       {"5m", 300},        {"15m", 900},
    {"30m", 1800},    {"1h", 3600},      {"2h", 7200},      {"4h", 14400},      {"6h", 21600},
    {"8h", 28800},    {"12h", 43200},    {"1d", 86400},     {"3d", 259200},     {"1w", 604800},
};

constexpr std::optional<std::uint32_t> interval_seconds(std::string_view name) {
  for (const auto& i : kIntervals)
    if (i.name == name) return i.seconds;
  return std::nullopt;
}
constexpr std::string_view interval_name(std::uint32_t seconds) {
  for (const auto& i : kIntervals)
    if (i.seconds == seconds) return i.name;
  return {};
}

// Open time of the bar that contains `t_ms`. Binance aligns every interval to the Unix epoch except
// weeks, which open on Monday 00:00 UTC (the epoch was a Thursday: 4 days earlier).
constexpr std::int64_t bar_open_ms(std::int64_t t_ms, std::uint32_t interval_s) {
  const std::int64_t len = std::int64_t{interval_s} * 1000;
  const std::int64_t offset = interval_s == 604800 ? 4LL * 86400 * 1000 : 0;
  std::int64_t x = t_ms - offset;
  std::int64_t q = x / len;
  if (x % len < 0) --q;  // floor for times before the epoch
  return q * len + offset;
}
static_assert(bar_open_ms(1660435261234, 60) == 1660435260000);
static_assert(bar_open_ms(-1, 1) == -1000);

}  // namespace mdshm
