// FrameParser throughput over real aggTrade frames held in memory (no I/O): what one core can
// parse before aggregation and publishing. Prints frames/s and ns/frame percentiles over batches.
//   bench_parse [total_frames=5000000] [batch=1000]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>
#include <vector>

#include "parse/capture_line.hpp"
#include "parse/frame_parser.hpp"

namespace {

std::string data_dir() {
  if (const char* d = std::getenv("MDSHM_SHARED_DATA_DIR")) return d;
  // Default: the data beside the source tree (<repo>/../shared), found from this file's path.
  std::string here = __FILE__;
  here = here.substr(0, here.rfind('/'));  // <repo>/bench
  return here.substr(0, here.rfind('/')) + "/../shared/data/binance";
}

// The real aggTrade frames: those in the cryptofeed captures plus the single ETHUSDT frame
// (re-serialised on one line, as it arrives on the wire).
std::vector<std::string> real_agg_trade_frames() {
  std::vector<std::string> out;
  for (const char* f : {"/ws/cryptofeed-BINANCE.ws.1.0", "/ws/cryptofeed-BINANCE_TR.ws.1.0"}) {
    std::ifstream in(data_dir() + f);
    std::string line;
    while (std::getline(in, line))
      if (auto c = mdshm::parse::parse_capture_line(line); c && c->frame.find("@aggTrade\"") != std::string_view::npos)
        out.emplace_back(c->frame);
  }
  std::ifstream in(data_dir() + "/ws/ws_spot_agg_trade.json");
  std::string one, line;
  while (std::getline(in, line)) {
    line.erase(0, line.find_first_not_of(' '));
    one += line;
  }
  if (!one.empty()) out.push_back(one);
  return out;
}

std::string load_average() {
  std::ifstream in("/proc/loadavg");
  std::string one, five;
  in >> one >> five;
  return one + " " + five;
}

std::string cpu_model() {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("model name", 0) == 0) return line.substr(line.find(':') + 2);
  return "unknown CPU";
}

}  // namespace

int main(int argc, char** argv) {
  const long total = argc > 1 ? std::atol(argv[1]) : 5'000'000;
  const long batch = argc > 2 ? std::atol(argv[2]) : 1000;
  const auto sources = real_agg_trade_frames();
  if (sources.empty() || batch <= 0 || total < batch) {
    std::fprintf(stderr, "no aggTrade frames under %s (set MDSHM_SHARED_DATA_DIR)\n", data_dir().c_str());
    return 1;
  }
  // 4096 separate copies, cycling the real frames, so the input is not one hot cache line.
  std::vector<std::string> frames;
  for (std::size_t i = 0; i < 4096; ++i) frames.push_back(sources[i % sources.size()]);
  std::size_t bytes = 0;
  for (const auto& f : sources) bytes += f.size();

  mdshm::parse::FrameParser parser;
  mdshm::parse::Event ev;
  long ok = 0;
  for (const auto& f : frames) ok += parser.parse(f, ev).ok();  // warm-up
  if (ok != static_cast<long>(frames.size())) {
    std::fprintf(stderr, "warm-up: %ld of %zu frames parsed\n", ok, frames.size());
    return 1;
  }

  using clock = std::chrono::steady_clock;
  std::vector<double> ns_per_frame;
  ns_per_frame.reserve(static_cast<std::size_t>(total / batch));
  std::int64_t checksum = 0;
  std::size_t next = 0;
  const auto start = clock::now();
  for (long done = 0; done + batch <= total; done += batch) {
    const auto t0 = clock::now();
    for (long i = 0; i < batch; ++i) {
      const auto r = parser.parse(frames[next], ev);
      checksum += r.ok() ? ev.trade.id : -1;
      next = next + 1 == frames.size() ? 0 : next + 1;
    }
    const auto t1 = clock::now();
    ns_per_frame.push_back(std::chrono::duration<double, std::nano>(t1 - t0).count() / static_cast<double>(batch));
  }
  const double secs = std::chrono::duration<double>(clock::now() - start).count();
  const long parsed = static_cast<long>(ns_per_frame.size()) * batch;
  std::sort(ns_per_frame.begin(), ns_per_frame.end());
  auto pct = [&](double p) {
    return ns_per_frame[std::min(ns_per_frame.size() - 1, static_cast<std::size_t>(p * static_cast<double>(ns_per_frame.size())))];
  };

  std::printf("bench_parse: FrameParser::parse on real aggTrade frames, from memory, one core\n");
  std::printf("machine   : %s; simdjson on-demand kernel: %.*s\n", cpu_model().c_str(),
              static_cast<int>(mdshm::parse::FrameParser::simd_kernel().size()), mdshm::parse::FrameParser::simd_kernel().data());
  std::printf("load avg  : %s (1 and 5 min; a busy machine inflates the tail)\n", load_average().c_str());
  std::printf("input     : %zu distinct real frames (avg %zu bytes), %ld frames in batches of %ld\n", sources.size(),
              bytes / sources.size(), parsed, batch);
  std::printf("\n| metric            | value        |\n|-------------------|--------------|\n");
  std::printf("| frames/s          | %12.0f |\n", static_cast<double>(parsed) / secs);
  std::printf("| MB/s              | %12.1f |\n", static_cast<double>(parsed) * static_cast<double>(bytes) /
                                                        static_cast<double>(sources.size()) / secs / 1e6);
  std::printf("| ns/frame mean     | %12.1f |\n", secs * 1e9 / static_cast<double>(parsed));
  std::printf("| ns/frame p50      | %12.1f |\n", pct(0.50));
  std::printf("| ns/frame p99      | %12.1f |\n", pct(0.99));
  std::printf("| ns/frame p99.9    | %12.1f |\n", pct(0.999));
  std::printf("| ns/frame max      | %12.1f |\n", ns_per_frame.back());
  std::printf("\n(checksum %lld)\n", static_cast<long long>(checksum));
  return checksum == 0 ? 1 : 0;
}
