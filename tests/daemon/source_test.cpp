// The synthetic trade source on its own: ids, prices, determinism, pacing.
#include <catch2/catch.hpp>

#include <chrono>
#include <cmath>
#include <vector>

#include "source/synthetic.hpp"

using namespace mdshm;
using namespace mdshm::source;

namespace {

struct Collect final : TradeHandler {
  std::vector<std::pair<std::size_t, Trade>> trades;
  void on_trade(std::size_t s, const Trade& t) override { trades.emplace_back(s, t); }
  void on_kline(std::size_t, const Kline&) override {}
};

}  // namespace

TEST_CASE("synthetic trades: contiguous ids per symbol, sane values, same seed same walk") {
  SyntheticOptions opt;
  opt.seed = 11;
  opt.volatility_bps = 5;
  SyntheticSource a({{"ETHUSDT", 1900.0, 500}, {"BTCUSDT", 24000.0, 1}}, opt);
  SyntheticSource b({{"ETHUSDT", 1900.0, 500}, {"BTCUSDT", 24000.0, 1}}, opt);
  const std::int64_t wall = 1'660'435'200'123'456'789;
  for (int i = 0; i < 1000; ++i) {
    const Trade t = a.next_trade(0, wall);
    const Trade u = b.next_trade(0, wall);
    REQUIRE(t.id == 500 + i);
    REQUIRE(t.price == u.price);
    REQUIRE(t.qty == u.qty);
    REQUIRE(t.price > 0);
    REQUIRE(t.qty > 0);
    REQUIRE(std::fabs(t.price / 0.01 - std::round(t.price / 0.01)) < 1e-6);  // on the tick grid
    REQUIRE(t.time_ms == 1'660'435'200'123);
    REQUIRE(t.recv_wall_ns == wall);
  }
  CHECK(std::fabs(a.price(0) / 1900.0 - 1) < 0.2);  // 1000 steps of 5 bps: a walk, not a jump
  CHECK(a.next_trade(1, wall).id == 1);
  CHECK(a.generated() == 1001);
}

TEST_CASE("poll paces to the configured rate and respects the batch size") {
  SyntheticOptions opt;
  opt.rate = 20'000;
  opt.max_batch = 256;
  SyntheticSource src({{"ETHUSDT", 1900.0, 1}, {"BTCUSDT", 24000.0, 1}}, opt);
  Collect c;
  const auto start = std::chrono::steady_clock::now();
  std::size_t biggest = 0;
  while (std::chrono::steady_clock::now() - start < std::chrono::milliseconds(200))
    biggest = std::max(biggest, src.poll(c, 5'000'000));
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  const double expected = 20'000 * secs;
  CHECK(static_cast<double>(c.trades.size()) > 0.6 * expected);
  CHECK(static_cast<double>(c.trades.size()) < 1.2 * expected + 256);
  CHECK(biggest <= 256);
  // Both symbols are served, each with contiguous ids.
  std::int64_t next[2] = {1, 1};
  for (const auto& [s, t] : c.trades) REQUIRE(t.id == next[s]++);
  CHECK(next[0] > 1);
  CHECK(next[1] > 1);
}

TEST_CASE("poll waits (does not spin out trades) when nothing is due") {
  SyntheticOptions opt;
  opt.rate = 10;  // one trade per 100 ms
  SyntheticSource src({{"ETHUSDT", 1900.0, 1}}, opt);
  Collect c;
  const auto start = std::chrono::steady_clock::now();
  std::size_t polls = 0;
  while (std::chrono::steady_clock::now() - start < std::chrono::milliseconds(250)) {
    src.poll(c, 20'000'000);
    ++polls;
  }
  CHECK(c.trades.size() <= 4);
  CHECK(polls < 100);  // each poll slept up to 20 ms instead of returning at once
}
