// Read costs in a reader process (core 1): the newest bar through the latch (Series::latest) and
// through the plain per-slot seqlock (Series::read(head - 1)), a consistent copy of 300 bars
// (Series::last_n) and the universal snapshot (5 x 300), with the writer process idle and with it
// rewriting the bar in progress at full speed on core 0.
//
// Under the full-speed writer the interesting number is not only the time but whether reads
// succeed at all: the per-slot seqlock of the bar being rewritten is odd (write in progress) much
// of the time, so its readers retry; the latch always offers a copy that is not being written. A
// second pass over the seqlock primitives (the same protocol Series uses) counts those retries.
#pragma once

#include <atomic>
#include <cstdint>
#include <string>
#include <vector>

#include <mdshm/client.hpp>

#include "bench_clock.hpp"
#include "bench_proc.hpp"
#include "bench_report.hpp"

namespace bench {

enum ReadCase : int {
  latest_batch, latest_each, slot_batch, slot_each, last_n_300, five_last_n, writer_state, snapshot_5x300, kReadCases
};

struct ReadCaseInfo {
  const char* name;
  const char* target;
  int per;  // calls per timed sample
};
inline constexpr ReadCaseInfo kReadCase[kReadCases] = {
    {"latest(): newest bar via the latch [batches of 32]", "<= 20", 32},
    {"latest(): single calls (10 ns TSC steps)", "", 1},
    {"read(head-1): newest bar via its slot seqlock [batches of 32]", "", 32},
    {"read(head-1): single calls (10 ns TSC steps)", "", 1},
    {"last_n(300): consistent copy of 300 bars", "<= 2000", 1},
    {"5 x last_n(300): the snapshot's copying alone", "", 1},
    {"writer_state(): liveness check, once per series in a snapshot", "", 1},
    {"Universal::snapshot(5 x 300), with metadata", "<= 10000", 1},
};

struct ReadCaseResult {
  std::uint64_t errs[32];      // calls by mdshm::Errc (index 0 = ok)
  double writer_mups;          // writer's updates per µs while the case ran, seen by the reader
  TickHist hist;
};

struct ReadShared {
  std::atomic<std::uint32_t> ready{0}, done{0};
  std::atomic<int> target{-1};  // series the writer hammers: -1 none, 0..4 one, 5 all five in turn
  // Retry passes over the primitives: reads done, failed attempts, worst attempts for one read,
  // reads that exhausted Series' bound (kMaxReadAttempts).
  std::uint64_t latch_reads, latch_retries, latch_worst, latch_gave_up;
  std::uint64_t slot_reads, slot_busy, slot_changed, slot_worst, slot_gave_up;
  double latch_writer_mups, slot_writer_mups;  // the writer's rate during each pass
  ReadCaseResult cases[kReadCases];
};

// The reader's side: runs every case for `seconds`, filling the shared histograms.
inline int read_cases_child(const Clock& clk, const mdshm::OpenOptions& opt, ReadShared& sh, double seconds,
                            bool writer_active) {
  using mdshm::Errc;
  pin_to_core(1);
  auto s = mdshm::Series::open("eth_ticks", opt);
  if (!s) return 2;
  std::vector<mdshm::Series> five;
  for (auto id : mdshm::kUniversalSeries) {
    auto r = mdshm::Series::open(id, opt);
    if (!r) return 2;
    five.push_back(std::move(r.value()));
  }
  auto uni = mdshm::Universal::open(opt);
  mdshm::UniversalSnapshot snap;
  std::vector<mdshm::Bar> buf(300);
  mdshm::Bar b;
  const std::uint64_t duration = clk.ns_to_ticks(seconds * 1e9);
  sh.ready.store(1);

  auto run = [&](ReadCase c, int target, auto&& op) {
    ReadCaseResult& res = sh.cases[c];
    sh.target.store(writer_active ? target : -1);
    clk.spin_ns(2e6);  // let the writer switch series
    for (int i = 0; i < 1000; ++i) (void)op();  // warm caches and buffers
    const std::uint64_t u0 = s->updates(), t0 = __rdtsc();
    const std::uint64_t end = t0 + duration;
    for (std::uint64_t i = 0;; ++i) {
      if ((i & 63) == 0 && __rdtsc() > end) break;
      const std::uint64_t a = tsc_start();
      const Errc e = op();
      res.hist.add(clk.net(a, tsc_end()));
      ++res.errs[static_cast<std::size_t>(e) & 31];
    }
    // eth_ticks gets every update, or one in five when the writer takes the five in turn.
    const double updates = static_cast<double>(s->updates() - u0) * (target == 5 ? 5.0 : 1.0);
    res.writer_mups = updates / clk.to_ns(static_cast<double>(__rdtsc() - t0)) * 1e3;
  };
  auto first_bad = [](Errc acc, Errc e) { return acc != Errc::ok ? acc : e; };

  run(latest_batch, 0, [&] {
    Errc e = Errc::ok;
    for (int k = 0; k < 32; ++k) e = first_bad(e, s->latest(b));
    return e;
  });
  run(latest_each, 0, [&] { return s->latest(b); });
  run(slot_batch, 0, [&] {
    Errc e = Errc::ok;
    for (int k = 0; k < 32; ++k) e = first_bad(e, s->read(s->head() - 1, b));
    return e;
  });
  run(slot_each, 0, [&] { return s->read(s->head() - 1, b); });
  run(last_n_300, 0, [&] {
    std::size_t got = 0;
    const Errc e = s->last_n(buf, got);
    return e == Errc::ok && got != 300 ? Errc::not_held : e;
  });
  run(five_last_n, 5, [&] {
    Errc e = Errc::ok;
    for (auto& x : five) {
      std::size_t got = 0;
      const Errc r = x.last_n(buf, got);
      e = first_bad(e, r == Errc::ok && got != 300 ? Errc::not_held : r);
    }
    return e;
  });
  run(writer_state, 5, [&] { return s->writer_state() == mdshm::WriterState::alive ? Errc::ok : Errc::writer_dead; });
  run(snapshot_5x300, 5, [&] {
    uni.snapshot(snap, 300);
    Errc e = Errc::ok;
    for (auto& r : snap) e = first_bad(e, r.meta.status == Errc::ok && r.meta.bars != 300 ? Errc::not_held : r.meta.status);
    return e;
  });

  // Retry passes: the protocols of Series::latest and read_slot_ (pause between attempts included),
  // counting failed attempts. Back to back, as a reader polling the newest bar would.
  sh.target.store(writer_active ? 0 : -1);
  clk.spin_ns(2e6);
  const auto& h = s->header();
  const mdshm::BarSlot* ring = mdshm::ring_of(&h);
  auto writer_rate = [&](std::uint64_t u0, std::uint64_t t0) {
    return static_cast<double>(s->updates() - u0) / clk.to_ns(static_cast<double>(__rdtsc() - t0)) * 1e3;
  };
  std::uint64_t reads = 0, retries = 0, worst = 0, gave_up = 0;
  std::uint64_t u0 = s->updates(), t0 = __rdtsc();
  for (const std::uint64_t end = __rdtsc() + duration; __rdtsc() < end; ++reads) {
    std::uint64_t idx = 0, a = 0;
    while (!mdshm::seqlock::try_read_latch(h.latch_seq, h.latch, idx, b) && ++a < mdshm::kMaxReadAttempts)
      _mm_pause();  // as Series does between attempts
    retries += a;
    worst = std::max(worst, a);
    gave_up += a >= mdshm::kMaxReadAttempts;
  }
  sh.latch_reads = reads;
  sh.latch_retries = retries;
  sh.latch_worst = worst;
  sh.latch_gave_up = gave_up;
  sh.latch_writer_mups = writer_rate(u0, t0);
  u0 = s->updates();
  t0 = __rdtsc();
  std::uint64_t busy = 0, changed = 0;
  reads = worst = gave_up = 0;
  for (const std::uint64_t end = __rdtsc() + duration; __rdtsc() < end; ++reads) {
    const std::uint64_t want = s->head() - 1;
    std::uint64_t got = 0, a = 0;
    for (; a < mdshm::kMaxReadAttempts; ++a) {
      const auto st = mdshm::seqlock::try_read_slot(ring[want % s->capacity()], got, b);
      if (st == mdshm::seqlock::ReadStatus::ok) break;
      (st == mdshm::seqlock::ReadStatus::busy ? busy : changed) += 1;
      _mm_pause();
    }
    worst = std::max(worst, a);
    gave_up += a >= mdshm::kMaxReadAttempts;
  }
  sh.slot_reads = reads;
  sh.slot_busy = busy;
  sh.slot_changed = changed;
  sh.slot_worst = worst;
  sh.slot_gave_up = gave_up;
  sh.slot_writer_mups = writer_rate(u0, t0);
  sh.done.store(1);
  return 0;
}

inline void bench_reads(const Clock& clk, int rounds, double seconds_per_case) {
  Table t("read costs in a reader process (core 1); writer process on core 0 idle, or rewriting the bar in progress "
          "at full speed (eth_ticks; all five in turn for the 5-series rows)");
  for (int r = 0; r < rounds; ++r) {
    for (bool active : {false, true}) {
      unpin();
      ScratchInstance inst;
      mdshm::Bar bars[5];
      for (std::size_t i = 0; i < 5; ++i) bars[i] = inst.prefill(i);
      Shared<ReadShared> sh;
      const auto opt = inst.open_options();
      spawn([&] { return read_cases_child(clk, opt, *sh, seconds_per_case, active); });
      pin_to_core(0);
      std::uint64_t updates = 0;
      while (!sh->done.load(std::memory_order_relaxed)) {
        const int tg = sh->target.load(std::memory_order_relaxed);
        if (tg < 0) {
          if (!active) ::usleep(1000);
          continue;
        }
        const std::size_t i = tg == 5 ? updates % 5 : static_cast<std::size_t>(tg);
        bars[i].close += 0.01;
        inst.writer(i).publish(bars[i]);
        ++updates;
      }
      if (!reap_children()) throw std::runtime_error("reader process failed");

      const std::string suffix = active ? " | writer full speed" : " | writer idle";
      for (int c = 0; c < kReadCases; ++c) {
        const ReadCaseResult& res = sh->cases[c];
        const std::string row = std::string(kReadCase[c].name) + suffix;
        t.add(row, res.hist.summarize(clk.ticks_per_ns, kReadCase[c].per));
        t.target(row, kReadCase[c].target);
        for (std::size_t e = 1; e < 32; ++e)
          if (res.errs[e]) t.note(row, std::string(mdshm::to_string(static_cast<mdshm::Errc>(e))), static_cast<double>(res.errs[e]));
        if (active) t.note(row, "writer M upd/s", res.writer_mups);
      }
      const std::string latch = std::string("retry pass, latch (try_read_latch)") + suffix;
      t.note(latch, "retries per 1e6 reads", 1e6 * static_cast<double>(sh->latch_retries) / static_cast<double>(sh->latch_reads));
      t.note(latch, "worst attempts", static_cast<double>(sh->latch_worst));
      t.note(latch, "gave up (4096 attempts)", static_cast<double>(sh->latch_gave_up));
      if (active) t.note(latch, "writer M upd/s", sh->latch_writer_mups);
      const std::string slot = std::string("retry pass, slot seqlock (try_read_slot)") + suffix;
      t.note(slot, "busy per 1e6 reads", 1e6 * static_cast<double>(sh->slot_busy) / static_cast<double>(sh->slot_reads));
      t.note(slot, "changed per 1e6 reads", 1e6 * static_cast<double>(sh->slot_changed) / static_cast<double>(sh->slot_reads));
      t.note(slot, "worst attempts", static_cast<double>(sh->slot_worst));
      t.note(slot, "gave up (4096 attempts)", static_cast<double>(sh->slot_gave_up));
      if (active) t.note(slot, "writer M upd/s", sh->slot_writer_mups);
    }
  }
  t.print();
}

}  // namespace bench
