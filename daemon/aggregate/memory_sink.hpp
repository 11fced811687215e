// A BarSink that keeps every bar in memory: for unit tests, and for tools that aggregate offline.
#pragma once

#include <array>
#include <vector>

#include "aggregate/bar_sink.hpp"

namespace mdshm::aggregate {

class MemorySink final : public BarSink {
 public:
  bool publish(const Bar& bar) override {
    ++publishes;
    if (!bars.empty() && bar.open_time_ms == bars.back().open_time_ms) {
      bars.back() = bar;
      return true;
    }
    if (!bars.empty() && bar.open_time_ms < bars.back().open_time_ms) return false;
    bars.push_back(bar);
    return true;
  }
  bool amend(std::uint64_t bar_index, const Bar& bar) override {
    if (bar_index >= bars.size() || bars[bar_index].open_time_ms != bar.open_time_ms) return false;
    bars[bar_index] = bar;
    ++amends;
    return true;
  }
  std::uint64_t head() const override { return bars.size(); }
  std::optional<Bar> newest() const override {
    if (bars.empty()) return std::nullopt;
    return bars.back();
  }
  std::optional<Bar> bar_at(std::uint64_t bar_index) const override {
    if (bar_index >= bars.size()) return std::nullopt;
    return bars[bar_index];
  }
  void add_stat(Stat s, std::uint64_t n) override { stats[static_cast<std::size_t>(s)] += n; }
  void record_latency(std::uint64_t ns) override {
    ++latency_samples;
    last_latency_ns = ns;
  }

  std::uint64_t stat(Stat s) const { return stats[static_cast<std::size_t>(s)]; }

  std::vector<Bar> bars;
  std::array<std::uint64_t, kStatSlots> stats{};
  std::uint64_t publishes = 0;
  std::uint64_t amends = 0;
  std::uint64_t latency_samples = 0;
  std::uint64_t last_latency_ns = 0;
};

}  // namespace mdshm::aggregate
