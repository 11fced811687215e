// A BarSink that also persists closed bars: forwards everything to the segment and appends every
// closed bar it publishes or amends to the series' HistoryStore (the last record of an open time
// wins on load, so a reconciled rewrite simply supersedes). In-progress bars never reach the disk.
// Statistics are batched: add_stat/record_latency count in the sink's own StatBatch (no shared
// cache line per trade) and reach the segment header at flush_stats(), which the Binance feed
// calls once per tick (with the frame counters) and on stop, the synthetic loop with its
// advance_to(). Publishing thread only.
#pragma once

#include <functional>
#include <string>

#include "aggregate/bar_sink.hpp"
#include "publish/segment_writer.hpp"
#include "store/history_store.hpp"

namespace mdshm::feed {

class StoreSink final : public aggregate::BarSink {
 public:
  using ErrorFn = std::function<void(const std::string&)>;
  // `store` may be null (no history configured).
  StoreSink(publish::SegmentWriter& writer, store::HistoryStore* store, ErrorFn on_error = {})
      : w_(writer), store_(store), on_error_(std::move(on_error)) {}

  bool publish(const Bar& bar) override {
    const bool ok = w_.publish(bar);
    if (ok) persist(bar);
    return ok;
  }
  bool amend(std::uint64_t bar_index, const Bar& bar) override {
    const bool ok = w_.amend(bar_index, bar);
    if (ok) persist(bar);
    return ok;
  }
  std::uint64_t head() const override { return w_.head(); }
  std::optional<Bar> newest() const override { return w_.newest(); }
  std::optional<Bar> bar_at(std::uint64_t bar_index) const override { return w_.bar_at(bar_index); }
  void add_stat(Stat s, std::uint64_t n) override { batch_.add_stat(s, n); }
  void record_latency(std::uint64_t ns) override { batch_.record_latency(ns); }
  void flush_stats() override { w_.flush(batch_); }

  publish::SegmentWriter& writer() { return w_; }
  store::HistoryStore* store() { return store_; }
  std::uint64_t store_errors() const { return errors_; }

 private:
  void persist(const Bar& bar) {
    if (!store_ || !(bar.flags & flag::closed)) return;
    // The stored copy is the final bar; from_store is added when it is loaded again.
    Bar b = bar;
    b.flags &= ~flag::from_store;
    if (auto st = store_->append(b); !st.ok()) {
      ++errors_;
      if (on_error_) on_error_(st.message);
    }
  }

  publish::SegmentWriter& w_;
  store::HistoryStore* store_;
  ErrorFn on_error_;
  publish::StatBatch batch_;
  std::uint64_t errors_ = 0;
};

}  // namespace mdshm::feed
