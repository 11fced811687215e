// The aggregator through the real shared-memory writer (in a temp dir, not /dev/shm): bars land in
// the segment, stats and latency reach its header, and a new writer + restore() continues the
// series where the old one stopped.
#include <catch2/catch.hpp>

#include <unistd.h>

#include <filesystem>

#include "aggregate/aggregator.hpp"
#include "aggregate/segment_sink.hpp"

using namespace mdshm;
using namespace mdshm::aggregate;
namespace fs = std::filesystem;

namespace {

std::int64_t fixed_clock() { return 1'700'000'000'000LL * 1'000'000; }
constexpr std::int64_t kT0 = 1'660'435'200'000;

Trade trade(std::int64_t id, std::int64_t t_ms, double price) {
  Trade t;
  t.id = id;
  t.time_ms = t_ms;
  t.price = price;
  t.qty = 1.0;
  t.recv_wall_ns = fixed_clock() - 1000;
  return t;
}

struct TempDir {
  fs::path path = fs::temp_directory_path() / ("mdshm_aggsink_" + std::to_string(getpid()));
  TempDir() { fs::create_directories(path); }
  ~TempDir() { fs::remove_all(path); }
};

}  // namespace

TEST_CASE("aggregating into a segment, then restoring after a writer restart") {
  TempDir dir;
  publish::SegmentOptions so;
  so.shm_dir = dir.path.string();
  so.instance = "aggsink";
  const publish::SeriesSpec spec{"eth_1m", "ETHUSDT", 60, 16};
  AggregatorOptions ao;
  ao.wall_now_ns = &fixed_clock;
  {
    auto w = publish::SegmentWriter::open(so, spec);
    SegmentSink sink(w);
    SymbolAggregator agg("ETHUSDT", ao);
    agg.add_interval(60, sink, spec.capacity);
    agg.restore();
    agg.on_trade(trade(1, kT0 + 1000, 100.0));
    agg.on_trade(trade(2, kT0 + 2000, 105.0));
    agg.on_trade(trade(3, kT0 + 3 * 60'000, 99.0));
    REQUIRE(w.head() == 4);
    CHECK(w.bar_at(0)->high == 105.0);
    CHECK(w.bar_at(1)->flags == (flag::closed | flag::empty));
    CHECK(w.newest()->close == 99.0);
    CHECK(w.stat(Stat::bars_closed) == 3);
    CHECK(w.stat(Stat::trades) == 3);
    CHECK(w.stat(Stat::latency_count) == 3);
  }
  publish::AttachInfo info;
  auto w = publish::SegmentWriter::open(so, spec, &info);
  REQUIRE(info.outcome == publish::AttachOutcome::reattached);
  SegmentSink sink(w);
  SymbolAggregator agg("ETHUSDT", ao);
  agg.add_interval(60, sink, spec.capacity);
  agg.restore();
  CHECK(agg.last_trade_id() == 3);
  agg.on_trade(trade(4, kT0 + 3 * 60'000 + 500, 98.0));  // same bar as before the restart
  REQUIRE(w.head() == 4);
  CHECK(w.newest()->trade_count == 2);
  CHECK(w.newest()->low == 98.0);
  // Far beyond the capacity: the fill stops at the capacity instead of writing a day of empties.
  agg.advance_to(kT0 + 86'400'000);
  CHECK(w.head() == 4 + 16 + 1);
  CHECK(w.newest()->open_time_ms == kT0 + 86'400'000);
  CHECK((w.newest()->flags & flag::in_progress) != 0);
}
