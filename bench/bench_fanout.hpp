// Publish-path cost per update with 0, 1, 8 and 32 reader processes attached, spinning
// (updates() + latest()) or blocked (Series::wait + latest()).
//
// Isolation on 2 cores: the writer thread is alone on core 0 at nice 0. The readers are pinned to
// core 1 at nice 19, together with the Publisher's heartbeat thread (nice 0, so the scheduler
// prefers it to the readers). What the writer's clock then sees is its own cost: the stores and
// the cache-line transfers the readers cause. publish() makes no syscall; blocked readers are
// woken by wake_readers() after each publish (here every publish is a batch), whose cost is
// reported beside it: one FUTEX_WAKE of ONE sleeper, whatever the number of readers, because a
// woken reader wakes the others on its own core.
//
// The writer publishes at a steady pace (one update every `pace` µs, spinning in between), not
// flat out: between two updates every spinning reader pulls the hot lines back, so each publish
// pays for them again, and every blocked reader has time to go back to sleep.
#pragma once

#include <atomic>
#include <cstdint>
#include <string>
#include <vector>

#include <mdshm/client.hpp>

#include "bench_clock.hpp"
#include "bench_latency.hpp"
#include "bench_proc.hpp"
#include "bench_report.hpp"

namespace bench {

struct FanoutShared {
  std::atomic<std::uint32_t> ready{0};
  std::atomic<std::uint32_t> stop{0};
  std::atomic<std::uint64_t> reads{0};
  std::atomic<std::uint64_t> wakes{0};
  std::atomic<std::uint32_t> blocked{0};  // readers inside wait(): the bench's own count
};

inline int fanout_reader(const mdshm::OpenOptions& opt, FanoutShared& sh, bool blocking) {
  pin_to_core(1);
  be_nice(19);
  auto s = mdshm::Series::open("eth_ticks", opt);
  if (!s) return 2;
  std::uint64_t reads = 0, wakes = 0;
  mdshm::Bar b;
  sh.ready.fetch_add(1);
  while (!sh.stop.load(std::memory_order_relaxed)) {
    if (blocking) {
      if (s->wait(std::chrono::milliseconds(200)) == mdshm::WaitResult::updated) ++wakes;
    } else if (s->updates() <= s->seen()) {
      _mm_pause();
      continue;
    }
    reads += s->latest(b) == mdshm::Errc::ok;
  }
  sh.reads.fetch_add(reads);
  sh.wakes.fetch_add(wakes);
  return 0;
}

inline void bench_fanout(const Clock& clk, int rounds, int publishes, double pace_ns) {
  Table t("publish-path cost per update (writer thread alone on core 0; readers at nice 19 on core 1)");
  const int counts[] = {0, 1, 8, 32};  // 0: the publish alone, its lines hot in the writer's cache
  for (int r = 0; r < rounds; ++r) {
    double p50_0 = 0;  // this round's publish alone (spinning mode runs first)
    for (bool blocking : {false, true}) {
      const std::string mode = blocking ? "blocked (Series::wait)" : "spinning (updates()+latest())";
      for (int n : counts) {
        if (n == 0 && blocking) continue;
        unpin();
        ScratchInstance inst;
        mdshm::Bar bar = inst.prefill(0);
        // The heartbeat thread to the readers' core, so it never preempts the writer.
        for (pid_t tid : other_threads()) pin_to_core(1, tid);
        pin_to_core(0);
        Shared<FanoutShared> sh;
        const auto opt = inst.open_options();
        for (int k = 0; k < n; ++k) spawn([&] { return fanout_reader(opt, *sh, blocking); });
        if (!spin_until(clk, [&] { return sh->ready.load() == static_cast<std::uint32_t>(n); }, 20e9))
          throw std::runtime_error("readers did not start");
        if (blocking) ::usleep(200'000);  // nothing is published: let every reader fall asleep
        auto& w = inst.writer(0);
        std::vector<double> cost, wake_cost;
        cost.reserve(static_cast<std::size_t>(publishes));
        wake_cost.reserve(static_cast<std::size_t>(publishes));
        const int warm = publishes / 10;
        for (int i = 0; i < warm + publishes; ++i) {
          clk.spin_ns(pace_ns);
          bar.close += 0.01;
          const std::uint64_t t0 = tsc_start();
          w.publish(bar);
          const std::uint64_t t1 = tsc_end();
          w.wake_readers();  // one batch per publish: the dearest case for the writer
          const std::uint64_t t2 = tsc_end();
          if (i >= warm) {
            cost.push_back(clk.to_ns(static_cast<double>(clk.net(t0, t1))));
            wake_cost.push_back(clk.to_ns(static_cast<double>(clk.net(t1, t2))));
          }
        }
        sh->stop.store(1);
        for (int i = 0; i < 50; ++i) {  // wake the blocked ones so they see `stop`
          bar.close += 0.01;
          w.publish(bar);
          w.wake_readers();
          ::usleep(2000);
        }
        if (!reap_children()) throw std::runtime_error("reader failed");
        const Stats s = summarize(cost);
        const std::string row = mode + ", " + std::to_string(n) + " reader" + (n != 1 ? "s" : "");
        t.add(row, s);
        if (n > 0)
          t.note(row, "reads per reader per publish", static_cast<double>(sh->reads.load()) / n / (warm + publishes + 50));
        const Stats ws = summarize(wake_cost);
        t.note(row, "wake_readers() p50 ns", ws.p50);
        t.note(row, "wake_readers() p99 ns", ws.p99);
        if (n == 0) p50_0 = s.p50;
        else t.note(row, "p50 / no reader", s.p50 / p50_0);
        if (n == 32 && blocking) t.target(row, "publish p50 within 10% of no reader");
      }
    }
  }
  t.print();
}

}  // namespace bench
