// Publish-path cost per update with 1, 16 and 64 reader processes attached, spinning
// (updates() + latest()) or blocked (Series::wait + latest()).
//
// Isolation on 2 cores: the writer thread is alone on core 0 at nice 0. The readers are pinned to
// core 1 at nice 19, together with the Publisher's notifier and heartbeat threads (nice 0, so
// the scheduler prefers them to the readers). What the writer's clock then sees is its own cost:
// the stores, the cache-line transfers the readers cause, and in the blocked case the check of
// the registry's waiter count and the notifier kick. The notifier's FUTEX_WAKE of N readers runs
// on core 1 and is not in the number, by design (that is what the notifier is for).
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
  std::uint64_t seen = s->updates(), reads = 0, wakes = 0;
  mdshm::Bar b;
  sh.ready.fetch_add(1);
  while (!sh.stop.load(std::memory_order_relaxed)) {
    if (blocking) {
      sh.blocked.fetch_add(1);
      const auto woke = s->wait(seen, std::chrono::milliseconds(200));
      sh.blocked.fetch_sub(1);
      if (woke == mdshm::WaitResult::updated) ++wakes;
    } else if (s->updates() == seen) {
      _mm_pause();
      continue;
    }
    seen = s->updates();
    reads += s->latest(b) == mdshm::Errc::ok;
  }
  sh.reads.fetch_add(reads);
  sh.wakes.fetch_add(wakes);
  return 0;
}

inline void bench_fanout(const Clock& clk, int rounds, int publishes, double pace_ns) {
  Table t("publish-path cost per update (writer thread alone on core 0; readers at nice 19 on core 1)");
  const int counts[] = {0, 1, 16, 64};  // 0: the publish alone, its lines hot in the writer's cache
  for (int r = 0; r < rounds; ++r) {
    for (bool blocking : {false, true}) {
      const std::string mode = blocking ? "blocked (Series::wait)" : "spinning (updates()+latest())";
      double p50_1 = 0, mean_1 = 0;
      for (int n : counts) {
        if (n == 0 && blocking) continue;
        unpin();
        ScratchInstance inst;
        mdshm::Bar bar = inst.prefill(0);
        // Notifier and heartbeat threads to the readers' core, so they never preempt the writer.
        for (pid_t tid : other_threads()) pin_to_core(1, tid);
        pin_to_core(0);
        Shared<FanoutShared> sh;
        const auto opt = inst.open_options();
        for (int k = 0; k < n; ++k) spawn([&] { return fanout_reader(opt, *sh, blocking); });
        if (!spin_until(clk, [&] { return sh->ready.load() == static_cast<std::uint32_t>(n); }, 20e9))
          throw std::runtime_error("readers did not start");
        if (blocking &&
            !spin_until(clk, [&] { return sh->blocked.load() == static_cast<std::uint32_t>(n); }, 20e9))
          throw std::runtime_error("not every reader blocked");
        auto& w = inst.writer(0);
        std::vector<double> cost;
        cost.reserve(static_cast<std::size_t>(publishes));
        std::uint64_t blocked_at_publish = 0;
        const int warm = publishes / 10;
        for (int i = 0; i < warm + publishes; ++i) {
          clk.spin_ns(pace_ns);
          blocked_at_publish += i >= warm ? sh->blocked.load(std::memory_order_relaxed) : 0;
          bar.close += 0.01;
          const std::uint64_t t0 = tsc_start();
          w.publish(bar);
          const std::uint64_t t1 = tsc_end();
          if (i >= warm) cost.push_back(clk.to_ns(static_cast<double>(clk.net(t0, t1))));
        }
        sh->stop.store(1);
        for (int i = 0; i < 50; ++i) {  // wake the blocked ones so they see `stop`
          bar.close += 0.01;
          w.publish(bar);
          ::usleep(2000);
        }
        if (!reap_children()) throw std::runtime_error("reader failed");
        const Stats s = summarize(cost);
        const std::string row = mode + ", " + std::to_string(n) + " reader" + (n != 1 ? "s" : "");
        t.add(row, s);
        if (n > 0)
          t.note(row, "reads per reader per publish", static_cast<double>(sh->reads.load()) / n / (warm + publishes + 50));
        if (blocking) t.note(row, "avg blocked at publish", static_cast<double>(blocked_at_publish) / publishes);
        if (n == 1) {
          p50_1 = s.p50;
          mean_1 = s.mean;
        } else if (n > 1) {
          t.note(row, "p50 / 1 reader", s.p50 / p50_1);
          t.note(row, "mean / 1 reader", s.mean / mean_1);
        }
        if (n == 64) t.target(row, "within 10% of 1 reader");
      }
    }
  }
  t.print();
}

}  // namespace bench
