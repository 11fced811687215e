// Where an aggregator writes its bars. publish::SegmentWriter is the real one (segment_sink.hpp
// adapts it); MemorySink (memory_sink.hpp) keeps bars in a vector for tests and tools.
// The method names are SegmentWriter's, so the adapter is a one-liner per method.
#pragma once

#include <cstdint>
#include <optional>

#include "mdshm/layout.hpp"

namespace mdshm::aggregate {

class BarSink {
 public:
  virtual ~BarSink() = default;
  // Update the newest bar in place (same open time) or append the next one (later open time).
  virtual bool publish(const Bar& bar) = 0;
  // Rewrite a bar still held (same open time); false when it is no longer held.
  virtual bool amend(std::uint64_t bar_index, const Bar& bar) = 0;
  virtual std::uint64_t head() const = 0;  // newest bar index + 1; 0 = empty
  virtual std::optional<Bar> newest() const = 0;
  virtual std::optional<Bar> bar_at(std::uint64_t bar_index) const = 0;
  virtual void add_stat(Stat s, std::uint64_t n) = 0;
  virtual void record_latency(std::uint64_t ns) = 0;
  // A sink may batch add_stat/record_latency (feed::StoreSink does) until this call; whoever drives
  // the aggregator calls it once per batch of trades (per tick), from the publishing thread.
  virtual void flush_stats() {}
};

}  // namespace mdshm::aggregate
