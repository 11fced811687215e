// The feed's statistics are batched (publish::StatBatch in feed::StoreSink): per trade nothing
// reaches the shared segment header, and one flush makes every counter and the latency histogram
// exact again. Checked through the aggregator and a real segment writer in a temp dir.
#include <catch2/catch.hpp>

#include <unistd.h>

#include <filesystem>
#include <numeric>

#include "aggregate/aggregator.hpp"
#include "feed/store_sink.hpp"

using namespace mdshm;
namespace fs = std::filesystem;

namespace {

std::int64_t fixed_clock() { return 1'700'000'000'000LL * 1'000'000; }
constexpr std::int64_t kT0 = 1'660'435'200'000;

Trade trade(std::int64_t id, std::int64_t t_ms, std::int64_t latency_ns) {
  Trade t;
  t.id = id;
  t.time_ms = t_ms;
  t.price = 100.0 + static_cast<double>(id % 7);
  t.qty = 0.5;
  t.recv_wall_ns = fixed_clock() - latency_ns;
  return t;
}

// Segments of a scratch instance in a temp dir (not /dev/shm), removed afterwards.
struct Scratch {
  fs::path path = fs::temp_directory_path() / ("mdshm_statbatch_" + std::to_string(getpid()));
  publish::SegmentOptions so;
  Scratch() {
    fs::create_directories(path);
    so.shm_dir = path.string();
    so.instance = "statbatch-" + std::to_string(getpid());
  }
  ~Scratch() { fs::remove_all(path); }
  publish::SegmentWriter open(const char* id, std::uint32_t interval_s, std::uint64_t capacity) const {
    return publish::SegmentWriter::open(so, {id, "ETHUSDT", interval_s, capacity});
  }
};

std::uint64_t hist_total(const publish::SegmentWriter& w) {
  const auto& h = w.header()->latency_hist;
  return std::accumulate(std::begin(h), std::end(h), std::uint64_t{0});
}

}  // namespace

TEST_CASE("batched statistics: nothing in the header per trade, exact after one flush") {
  Scratch scratch;
  auto w1s = scratch.open("eth_ticks", 1, 256);
  auto w1m = scratch.open("eth_1m", 60, 16);
  feed::StoreSink s1s(w1s, nullptr), s1m(w1m, nullptr);
  aggregate::AggregatorOptions ao;
  ao.wall_now_ns = &fixed_clock;
  aggregate::SymbolAggregator agg("ETHUSDT", ao);
  agg.add_interval(1, s1s, 256);
  agg.add_interval(60, s1m, 16);

  constexpr std::int64_t kN = 1000;
  // Latencies 1 us .. ~1 ms: several histogram buckets; 10 trades per second of trade time.
  for (std::int64_t i = 0; i < kN; ++i)
    REQUIRE(agg.on_trade(trade(i + 1, kT0 + i * 100, 1000 + i * 997)) == aggregate::TradeOutcome::applied);
  agg.on_trade(trade(5, kT0 + 5, 1000));  // a duplicate: counted in the batch too

  // Bars are published at once; the counters wait in the sinks' batches.
  CHECK(w1s.newest()->last_trade_id == kN);
  CHECK(w1s.stat(Stat::trades) == 0);
  CHECK(w1s.stat(Stat::latency_count) == 0);
  CHECK(hist_total(w1s) == 0);

  s1s.flush_stats();
  s1m.flush_stats();
  for (auto* w : {&w1s, &w1m}) {
    CHECK(w->stat(Stat::trades) == kN);
    CHECK(w->stat(Stat::duplicate_trades) == 1);
    CHECK(w->stat(Stat::latency_count) == kN);
    CHECK(hist_total(*w) == kN);
    std::uint64_t sum = 0;
    for (std::int64_t i = 0; i < kN; ++i) sum += static_cast<std::uint64_t>(1000 + i * 997);
    CHECK(w->stat(Stat::latency_sum_ns) == sum);
    CHECK(w->stat(Stat::latency_max_ns) == static_cast<std::uint64_t>(1000 + (kN - 1) * 997));
    CHECK(w->header()->latency_hist[publish::latency_bucket(1000)] > 0);  // 1 us: bucket 9
  }
  // 1s bars: one per second of trade time (100 s), all but the newest closed.
  CHECK(w1s.stat(Stat::bars_closed) == w1s.head() - 1);

  // A second flush adds nothing; the next batch adds exactly its own trades.
  s1s.flush_stats();
  CHECK(w1s.stat(Stat::trades) == kN);
  agg.on_trade(trade(kN + 1, kT0 + kN * 100, 50));
  s1s.flush_stats();
  CHECK(w1s.stat(Stat::trades) == kN + 1);
  CHECK(w1s.stat(Stat::latency_count) == kN + 1);
  CHECK(hist_total(w1s) == kN + 1);
  CHECK(w1s.stat(Stat::latency_max_ns) == static_cast<std::uint64_t>(1000 + (kN - 1) * 997));
}

TEST_CASE("StatBatch flush equals the same counts made directly on the header") {
  Scratch scratch;
  auto direct = scratch.open("a", 60, 16);
  auto batched = scratch.open("b", 60, 16);
  publish::StatBatch b;
  const std::uint64_t samples[] = {0, 1, 2, 3, 1023, 1024, 65'000, 1ull << 40, ~0ull >> 1};
  for (auto ns : samples) {
    direct.record_latency(ns);
    b.record_latency(ns);
  }
  direct.add_stat(Stat::reconcile_checks, 3);
  b.add_stat(Stat::reconcile_checks, 3);
  direct.add_stat(Stat::frames, 1);
  b.add_stat(Stat::frames, 1);
  batched.flush(b);
  CHECK(b.empty());
  for (std::size_t i = 0; i < static_cast<std::size_t>(Stat::count_); ++i)
    CHECK(batched.stat(static_cast<Stat>(i)) == direct.stat(static_cast<Stat>(i)));
  for (std::size_t i = 0; i < kLatencyBuckets; ++i)
    CHECK(batched.header()->latency_hist[i] == direct.header()->latency_hist[i]);
}
