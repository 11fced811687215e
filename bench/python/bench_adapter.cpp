// bench_adapter: the Universal Data Adapter in C++, the CNN tensor for 5 series x 300 bars
// (target: p50 <= 50 us). In-memory bars, so this is the adapter alone, not the shared memory.
//
//   bench_adapter [--iterations N] [--window W] [--norm none|relative|zscore]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "mdshm/adapter.hpp"

using namespace mdshm;

int main(int argc, char** argv) {
  std::size_t iterations = 20000, window = 300;
  adapter::PriceNorm norm = adapter::PriceNorm::relative;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string a = argv[i], v = argv[i + 1];
    if (a == "--iterations") iterations = std::stoul(v);
    else if (a == "--window") window = std::stoul(v);
    else if (a == "--norm") norm = v == "none" ? adapter::PriceNorm::none : v == "zscore" ? adapter::PriceNorm::zscore
                                                                                          : adapter::PriceNorm::relative;
  }
  const std::uint32_t intervals[] = {1, 60, 3600, 86400, 1};
  const char* ids[] = {"eth_ticks", "eth_1m", "eth_1h", "eth_1d", "btc_ticks"};
  const std::int64_t as_of = 1'700'000'000'000;
  std::vector<std::vector<Bar>> bars(5);
  for (std::size_t s = 0; s < 5; ++s) {
    const std::int64_t step = std::int64_t{intervals[s]} * 1000;
    const std::int64_t last = as_of / step * step - step;
    for (std::size_t k = 0; k < window + 50; ++k) {  // a little history beyond the window
      Bar b{};
      b.open_time_ms = last - static_cast<std::int64_t>(window + 49 - k) * step;
      b.open = 1900 + static_cast<double>(k % 17);
      b.close = b.open + 0.5;
      b.high = b.close + 1;
      b.low = b.open - 1;
      b.volume = 3;
      b.flags = flag::closed;
      bars[s].push_back(b);
    }
  }
  std::vector<adapter::SeriesInput> in;
  for (std::size_t s = 0; s < 5; ++s) in.push_back({ids[s], intervals[s], bars[s]});
  adapter::Options o;
  o.window = window;
  o.as_of_ms = as_of;
  o.price = norm;
  o.volume = adapter::VolumeNorm::log1p;
  adapter::Output out;
  std::vector<double> ns(iterations);
  for (std::size_t i = 0; i < iterations; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    if (adapter::build(in, o, out) != Errc::ok) return 1;
    ns[i] = std::chrono::duration<double, std::nano>(std::chrono::steady_clock::now() - t0).count();
  }
  std::sort(ns.begin(), ns.end());
  auto pct = [&](double p) { return ns[static_cast<std::size_t>(p * static_cast<double>(ns.size() - 1))] / 1000; };
  std::printf("adapter build 5 x %zu (CNN [5,5,%zu] float32): p50 %.1f us  p90 %.1f us  p99 %.1f us  (%zu runs)\n",
              window, window, pct(0.5), pct(0.9), pct(0.99), iterations);
  return out.mask[0] == 1 ? 0 : 1;
}
