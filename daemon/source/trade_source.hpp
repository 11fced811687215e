// What the daemon's main loop drives: something that produces trades (and, for the live feed,
// exchange klines) for the configured symbols. The synthetic source is one; the Binance feed will
// be another, plugged in next to it in app/daemon.cpp.
#pragma once

#include <cstddef>
#include <cstdint>

#include "model/market.hpp"

namespace mdshm::source {

// Receives what a source produced. `symbol` indexes the symbol list the source was built with.
class TradeHandler {
 public:
  virtual void on_trade(std::size_t symbol, const Trade& t) = 0;
  virtual void on_kline(std::size_t symbol, const Kline& k) = 0;

 protected:
  ~TradeHandler() = default;
};

class TradeSource {
 public:
  virtual ~TradeSource() = default;
  // Deliver whatever is due, waiting at most `max_wait_ns` when nothing is. Returns the number of
  // trades delivered. The caller loops, and between calls closes bars on time.
  virtual std::size_t poll(TradeHandler& h, std::int64_t max_wait_ns) = 0;
};

}  // namespace mdshm::source
