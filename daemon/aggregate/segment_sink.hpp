// BarSink over a shared-memory segment. Header-only so mdshm_aggregate does not depend on the
// publisher; whoever includes this links mdshm_publish.
#pragma once

#include "aggregate/bar_sink.hpp"
#include "publish/segment_writer.hpp"

namespace mdshm::aggregate {

class SegmentSink final : public BarSink {
 public:
  explicit SegmentSink(publish::SegmentWriter& writer) : w_(writer) {}
  bool publish(const Bar& bar) override { return w_.publish(bar); }
  bool amend(std::uint64_t bar_index, const Bar& bar) override { return w_.amend(bar_index, bar); }
  std::uint64_t head() const override { return w_.head(); }
  std::optional<Bar> newest() const override { return w_.newest(); }
  std::optional<Bar> bar_at(std::uint64_t bar_index) const override { return w_.bar_at(bar_index); }
  void add_stat(Stat s, std::uint64_t n) override { w_.add_stat(s, n); }
  void record_latency(std::uint64_t ns) override { w_.record_latency(ns); }

 private:
  publish::SegmentWriter& w_;
};

}  // namespace mdshm::aggregate
