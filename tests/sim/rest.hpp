// The REST endpoints the daemon uses, as pure functions of the market and the replay clock:
// GET /api/v3/klines, /api/v3/aggTrades, /api/v3/time, /api/v3/ping. Transport, weight headers and
// faults are the server's business.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "market.hpp"

namespace mdshm::sim {

// Binance's documented request weights (spot, 2024): klines 2, aggTrades 4, time and ping 1.
inline constexpr int kWeightKlines = 2;
inline constexpr int kWeightAggTrades = 4;
inline constexpr int kWeightTime = 1;
inline constexpr int kMaxLimit = 1000;

struct RestReply {
  int status = 200;
  std::string body;
  int weight = 1;
};

// `target` is the request target, e.g. "/api/v3/klines?symbol=ETHUSDT&interval=1m&limit=2".
// Only what has happened by clock_ms is visible: the kline containing it is the unfinished one.
RestReply handle_rest(Market& market, std::string_view target, std::int64_t clock_ms);

// Weight used in the current wall-clock minute, as X-MBX-USED-WEIGHT-1M reports it.
class WeightMeter {
 public:
  int add(std::int64_t wall_ms, int weight) {
    const std::int64_t minute = wall_ms / 60'000;
    if (minute != minute_) {
      minute_ = minute;
      used_ = 0;
    }
    used_ += weight;
    return used_;
  }

 private:
  std::int64_t minute_ = -1;
  int used_ = 0;
};

}  // namespace mdshm::sim
