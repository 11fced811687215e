// Ingest: aggTrade frames/s through the daemon's own frame path (feed::BinanceFeed::handle_frame:
// parse + validate + id continuity + aggregate into 1s and 1m bars + seqlock publish into two real
// segments) on one core, from memory. Frames are real-shaped (Binance's combined-stream aggTrade,
// as captured in shared/data/binance/ws/), ids contiguous, 100 trades per second of trade time.
// Target: >= 1,000,000 frames/s. Prints a table of per-batch ns/frame percentiles.
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <boost/asio/io_context.hpp>
#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include "aggregate/aggregator.hpp"
#include "bench_report.hpp"
#include "feed/binance_feed.hpp"
#include "feed/store_sink.hpp"
#include "mdshm/paths.hpp"
#include "publish/segment_writer.hpp"

namespace {

std::int64_t now_ns() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return std::int64_t{ts.tv_sec} * 1'000'000'000 + ts.tv_nsec;
}
std::int64_t wall_ns() {
  timespec ts{};
  clock_gettime(CLOCK_REALTIME, &ts);
  return std::int64_t{ts.tv_sec} * 1'000'000'000 + ts.tv_nsec;
}

std::string frame(std::int64_t id, std::int64_t t_ms, int i) {
  char price[32], qty[32];
  std::snprintf(price, sizeof price, "%d.%02d000000", 1900 + (i * 7) % 50, (i * 13) % 100);
  std::snprintf(qty, sizeof qty, "0.%04d0000", 1 + (i * 31) % 9999);
  return "{\"stream\":\"ethusdt@aggTrade\",\"data\":{\"e\":\"aggTrade\",\"E\":" + std::to_string(t_ms + 3) +
         ",\"s\":\"ETHUSDT\",\"a\":" + std::to_string(id) + ",\"p\":\"" + price + "\",\"q\":\"" + qty +
         "\",\"f\":" + std::to_string(id * 2) + ",\"l\":" + std::to_string(id * 2 + 1) + ",\"T\":" +
         std::to_string(t_ms) + ",\"m\":" + (i % 3 ? "true" : "false") + ",\"M\":true}}";
}

}  // namespace

int main(int argc, char** argv) {
  const std::size_t total = argc > 1 ? std::stoul(argv[1]) : 4'000'000;
  constexpr std::size_t kBatch = 10'000;
  const std::string dir = "/dev/shm";
  const std::string instance = "bench-ingest-" + std::to_string(getpid());

  mdshm::publish::SegmentOptions so;
  so.shm_dir = dir;
  so.instance = instance;
  auto w1s = mdshm::publish::SegmentWriter::open(so, {"eth_ticks", "ETHUSDT", 1, 86400});
  auto w1m = mdshm::publish::SegmentWriter::open(so, {"eth_1m", "ETHUSDT", 60, 10080});
  mdshm::feed::StoreSink s1s(w1s, nullptr), s1m(w1m, nullptr);
  std::vector<mdshm::aggregate::SymbolAggregator> aggs;
  aggs.emplace_back("ETHUSDT");
  aggs[0].add_interval(1, s1s, 86400);
  aggs[0].add_interval(60, s1m, 10080);

  boost::asio::io_context ioc;
  mdshm::feed::FeedOptions fo;
  fo.connect_ws = false;
  std::vector<mdshm::feed::FeedSeries> fs(2);
  fs[0] = {"eth_ticks", 0, 1, 86400, false, 0, &s1s};
  fs[1] = {"eth_1m", 0, 60, 10080, false, 0, &s1m};
  mdshm::feed::BinanceFeed feed(ioc, fo, aggs, fs);

  // Frames prepared up front: the benchmark measures ingest, not formatting. Each is followed by
  // the zero padding the WebSocket's read buffer provides (net::kWsFramePadding), so the parser
  // reads it in place as it does in the daemon.
  constexpr std::size_t kPad = mdshm::parse::FrameParser::kPadding;
  const std::int64_t t0 = wall_ns() / 1'000'000 - 3'600'000;
  std::vector<std::string> frames;
  frames.reserve(total);
  for (std::size_t i = 0; i < total; ++i)
    frames.push_back(frame(1'000'000 + static_cast<std::int64_t>(i), t0 + static_cast<std::int64_t>(i / 10) * 100, static_cast<int>(i)) +
                     std::string(kPad, '\0'));
  std::size_t bytes = 0;
  for (const auto& f : frames) bytes += f.size() - kPad;

  std::vector<double> per_frame_ns;
  const std::int64_t start = now_ns();
  for (std::size_t b = 0; b < total; b += kBatch) {
    const std::int64_t bs = now_ns();
    const std::int64_t recv = wall_ns();
    const std::size_t end = std::min(total, b + kBatch);
    for (std::size_t i = b; i < end; ++i)
      feed.handle_frame(std::string_view(frames[i]).substr(0, frames[i].size() - kPad), recv, mdshm::parse::Padding::zeroed);
    feed.tick();  // as the daemon's timer does: closes bars, flushes the batched statistics
    per_frame_ns.push_back(static_cast<double>(now_ns() - bs) / static_cast<double>(end - b));
  }
  const double secs = static_cast<double>(now_ns() - start) / 1e9;
  const auto st = bench::summarize(per_frame_ns);
  const auto trades = w1s.stat(mdshm::Stat::trades);
  const auto latencies = w1s.stat(mdshm::Stat::latency_count);

  std::printf("bench_ingest: %zu aggTrade frames (%.0f bytes avg), batches of %zu, one core\n", total,
              static_cast<double>(bytes) / static_cast<double>(total), kBatch);
  std::printf("%-34s %14s\n", "metric", "value");
  std::printf("%-34s %14.0f\n", "frames/s (overall)", static_cast<double>(total) / secs);
  std::printf("%-34s %14.1f\n", "ns/frame p50 (per batch)", st.p50);
  std::printf("%-34s %14.1f\n", "ns/frame p99 (per batch)", st.p99);
  std::printf("%-34s %14.1f\n", "ns/frame max (per batch)", st.max);
  std::printf("%-34s %14llu\n", "trades applied (1s series)", static_cast<unsigned long long>(trades));
  std::printf("%-34s %14llu\n", "1s bars", static_cast<unsigned long long>(w1s.head()));
  std::printf("%-34s %14s\n", "target >= 1,000,000 frames/s",
              static_cast<double>(total) / secs >= 1e6 ? "met" : "NOT met");

  std::error_code ec;  // the whole instance directory: segments, lock, consumers directory
  std::filesystem::remove_all(mdshm::paths::instance_dir(so.shm_dir, so.instance), ec);
  return trades == total && latencies == total ? 0 : 1;
}
