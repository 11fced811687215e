// Synthetic trades: a random walk per symbol, paced to a configured rate (up to millions of trades
// per second). Ids are contiguous per symbol, trade time is the wall clock. Trades are made in
// batches (at most max_batch per poll) and every trade of a batch carries the batch's wall time as
// recv_wall_ns, like a burst of frames read at once: at high rates the recorded event -> publish
// latency therefore includes the wait behind earlier trades of the same batch. One clock read per
// batch rather than per trade is on purpose: clock_gettime is the dearest call on this path.
#pragma once

#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "source/trade_source.hpp"

namespace mdshm::source {

struct SyntheticSymbol {
  std::string symbol;
  double start_price = 100;
  std::int64_t first_id = 1;  // continue after the last id already published (restart)
};

struct SyntheticOptions {
  double rate = 2000;            // trades per second, all symbols together
  std::uint64_t seed = 1;
  double volatility_bps = 1.0;   // standard deviation of one price step
  std::size_t max_batch = 4096;  // trades per poll at most: bars still close on time at high rates
};

class SyntheticSource final : public TradeSource {
 public:
  SyntheticSource(std::vector<SyntheticSymbol> symbols, SyntheticOptions opt);

  std::size_t poll(TradeHandler& h, std::int64_t max_wait_ns) override;

  // Generate the next trade for `symbol` at the given times, without pacing (tests, benchmarks).
  Trade next_trade(std::size_t symbol, std::int64_t wall_ns);

  std::uint64_t generated() const { return generated_; }
  double price(std::size_t symbol) const { return state_[symbol].price; }

 private:
  struct State {
    double price;
    double tick;       // price grid: prices are rounded to it like an exchange's tick size
    std::int64_t next_id;
  };
  std::vector<State> state_;
  SyntheticOptions opt_;
  std::mt19937_64 rng_;
  std::normal_distribution<double> step_{0.0, 1.0};
  std::exponential_distribution<double> qty_{1.0};
  std::int64_t start_mono_ns_ = -1;
  std::uint64_t generated_ = 0;
};

}  // namespace mdshm::source
