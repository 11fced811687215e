// Real Binance 1m klines (shared/data/binance/klines) rebuilt from synthetic trades: for each kline
// a handful of trades that visit its open, high, low and close, in that order of time. The built
// 1m bars must reproduce every row's OHLC exactly and its volume; the 1h and 1d bars must be the
// merge of the rows, as Binance's own 1h/1d klines are.
#include <catch2/catch.hpp>

#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "aggregate/aggregator.hpp"
#include "aggregate/memory_sink.hpp"

using namespace mdshm;
using namespace mdshm::aggregate;

namespace {

std::int64_t fixed_clock() { return 1'700'000'000'000LL * 1'000'000; }

struct Row {
  std::int64_t open_ms;
  double open, high, low, close, volume;
  std::uint64_t count;
};

std::vector<Row> load(const std::string& path) {
  std::ifstream in(path);
  std::vector<Row> rows;
  std::string line;
  while (std::getline(in, line)) {
    std::vector<std::string> f;
    std::stringstream ss(line);
    std::string cell;
    while (std::getline(ss, cell, ',')) f.push_back(cell);
    if (f.size() < 12) continue;
    rows.push_back({std::stoll(f[0]), std::stod(f[1]), std::stod(f[2]), std::stod(f[3]), std::stod(f[4]),
                    std::stod(f[5]), std::stoull(f[8])});
  }
  return rows;
}

}  // namespace

TEST_CASE("real 1m klines are reproduced from trades, and 1h/1d are their merge") {
  std::vector<Row> rows;
  for (const char* day : {"14", "15"}) {
    auto r = load(std::string(MDSHM_SHARED_DATA_DIR) + "/klines/ETHUSDT-1m-2022-08-" + day + ".csv");
    REQUIRE(r.size() == 1440);
    rows.insert(rows.end(), r.begin(), r.end());
  }
  MemorySink m1, h1, d1;
  AggregatorOptions opt;
  opt.wall_now_ns = &fixed_clock;
  SymbolAggregator agg("ETHUSDT", opt);
  agg.add_interval(60, m1);
  agg.add_interval(3600, h1);
  agg.add_interval(86400, d1);

  std::mt19937_64 rng(7);
  std::int64_t id = 1;
  for (const Row& r : rows) {
    std::vector<double> prices;
    if (r.count == 1) {
      prices = {r.open};
    } else {
      std::uniform_real_distribution<double> mid(r.low, r.high);
      const bool high_first = rng() & 1;
      prices = {r.open, high_first ? r.high : r.low, mid(rng), high_first ? r.low : r.high, r.close};
    }
    const double qty = r.volume / static_cast<double>(prices.size());
    for (std::size_t i = 0; i < prices.size(); ++i) {
      Trade t;
      t.id = id++;
      t.time_ms = r.open_ms + static_cast<std::int64_t>(i) * 10'000;
      t.price = prices[i];
      t.qty = qty;
      REQUIRE(agg.on_trade(t) == TradeOutcome::applied);
    }
  }
  agg.advance_to(rows.back().open_ms + 86'400'000);

  REQUIRE(m1.bars.size() >= rows.size());
  for (std::size_t i = 0; i < rows.size(); ++i) {
    const Bar& b = m1.bars[i];
    const Row& r = rows[i];
    INFO("row " << i << " open " << r.open_ms);
    REQUIRE(b.open_time_ms == r.open_ms);
    CHECK(b.open == r.open);
    CHECK(b.high == r.high);
    CHECK(b.low == r.low);
    CHECK(b.close == r.close);
    CHECK(b.volume == Approx(r.volume).epsilon(1e-12));
    CHECK((b.flags & flag::closed) != 0);
  }
  // 48 hours, 2 days, each the merge of its 60 / 1440 rows.
  auto check_merge = [&](const std::vector<Bar>& bars, std::size_t rows_per_bar, std::size_t n_bars) {
    REQUIRE(bars.size() >= n_bars);
    for (std::size_t k = 0; k < n_bars; ++k) {
      const Row* first = &rows[k * rows_per_bar];
      double high = 0, low = 1e18, vol = 0;
      for (std::size_t j = 0; j < rows_per_bar; ++j) {
        const Row& r = first[j];
        high = std::max(high, r.high);
        low = std::min(low, r.low);
        vol += r.volume;
      }
      const Bar& b = bars[k];
      CHECK(b.open_time_ms == first->open_ms);
      CHECK(b.open == first->open);
      CHECK(b.close == first[rows_per_bar - 1].close);
      CHECK(b.high == high);
      CHECK(b.low == low);
      CHECK(b.volume == Approx(vol).epsilon(1e-9));
    }
  };
  check_merge(h1.bars, 60, 48);
  check_merge(d1.bars, 1440, 2);
  CHECK(m1.stat(Stat::rejected_values) == 0);
  CHECK(m1.stat(Stat::out_of_order) == 0);
}
