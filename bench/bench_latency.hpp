// Publish -> visible in another process: a spinning reader, a blocked reader woken through the
// Publisher's wake_readers(), and a raw futex ping-pong between two processes as the floor for the latter.
//
// Protocol, identical in all three: the writer (core 0) stamps the TSC into the bar (first_trade_id)
// or a shared word just before publishing, the reader process (core 1) takes the TSC as soon as
// it holds the bar and records the difference, then acknowledges. The writer publishes again only
// after the acknowledgement and a random gap, so there is never more than one update in flight and
// a blocked reader is really asleep in the kernel when the next one comes.
#pragma once

#include <linux/futex.h>
#include <sys/syscall.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include <mdshm/client.hpp>

#include "bench_clock.hpp"
#include "bench_proc.hpp"
#include "bench_report.hpp"

namespace bench {

struct LatencyShared {
  alignas(64) std::atomic<std::uint32_t> ready{0};
  alignas(64) std::uint32_t ping = 0;  // futex words: accessed through std::atomic_ref
  alignas(64) std::uint32_t pong = 0;
  alignas(64) std::atomic<std::uint64_t> stamp{0};
  alignas(64) std::atomic<std::uint64_t> ack{0};
  std::atomic<std::uint64_t> negative{0};  // one-way samples < 0: the cores' TSCs disagree
  std::atomic<std::uint64_t> failures{0};
  alignas(64) std::atomic<std::uint32_t> blocked{0};  // the reader is inside wait(): the bench's own count
  // then: std::int64_t oneway[samples]
};

inline std::uint32_t load32(std::uint32_t& w) { return std::atomic_ref<std::uint32_t>(w).load(std::memory_order_acquire); }
inline void post32(std::uint32_t& w, std::uint32_t v) {
  std::atomic_ref<std::uint32_t>(w).store(v, std::memory_order_release);
  mdshm::detail::futex_wake_shared(&w, 1);
}
// Block until w != old (1 s cap per sleep; gives up after `limit` sleeps).
inline bool await32(std::uint32_t& w, std::uint32_t old, int limit = 5) {
  for (int i = 0; i < limit; ++i) {
    if (load32(w) != old) return true;
    mdshm::detail::futex_wait_shared(&w, old, std::chrono::seconds(1));
  }
  return load32(w) != old;
}

template <class Pred>
bool spin_until(const Clock& clk, Pred pred, double timeout_ns = 2e9) {
  const std::uint64_t end = __rdtsc() + clk.ns_to_ticks(timeout_ns);
  while (!pred()) {
    if (__rdtsc() > end) return false;
  }
  return true;
}

// One-way samples (reader TSC - writer TSC) to ns; negatives (TSC skew) clamp to 0 and are counted.
inline std::vector<double> oneway_ns(const Clock& clk, const std::int64_t* v, std::size_t n) {
  std::vector<double> out;
  out.reserve(n);
  for (std::size_t i = 0; i < n; ++i) out.push_back(v[i] > 0 ? clk.to_ns(static_cast<double>(v[i])) : 0.0);
  return out;
}

// ---- spinning reader -------------------------------------------------------------------------------

inline void bench_spin_visible(const Clock& clk, int rounds, int samples) {
  Table t("publish -> visible in another process, spinning reader (eth_ticks, bar rewritten in place)");
  const std::string oneway = "one-way: publish() called -> bar in hand via latest()";
  const std::string variant = "variant: reader polls latch_seq instead of updates()";
  t.target(oneway, "p50 <= 200");
  const int warm = 1000;
  std::mt19937 rng(42);
  std::uniform_real_distribution<double> gap(1000, 10000);
  const std::string floor = "floor: one cache line, store -> seen by the spinning process";
  for (int r = 0; r < rounds; ++r) {
    {
      // The hardware's floor for the same two cores: one store, one spinning load, nothing else.
      unpin();
      Shared<LatencyShared> sh(sizeof(std::int64_t) * static_cast<std::size_t>(samples));
      std::int64_t* ow = sh.tail<std::int64_t>();
      spawn([&] {
        pin_to_core(1);
        sh->ready.store(1);
        std::uint64_t seen = 0;
        for (int i = 0; i < warm + samples; ++i) {
          std::uint64_t v;
          while ((v = sh->stamp.load(std::memory_order_acquire)) == seen) {
          }
          seen = v;
          const auto now = static_cast<std::int64_t>(tsc_end());
          if (i >= warm) ow[i - warm] = now - static_cast<std::int64_t>(v);
          sh->ack.store(static_cast<std::uint64_t>(i + 1), std::memory_order_release);
        }
        return 0;
      });
      pin_to_core(0);
      spin_until(clk, [&] { return sh->ready.load() != 0; });
      std::vector<double> rtt_half;
      for (int i = 0; i < warm + samples; ++i) {
        clk.spin_ns(gap(rng));
        const std::uint64_t t0 = tsc_start();
        sh->stamp.store(t0, std::memory_order_release);
        if (!spin_until(clk, [&] { return sh->ack.load(std::memory_order_acquire) == static_cast<std::uint64_t>(i + 1); }))
          throw std::runtime_error("cache-line reader stopped acknowledging");
        if (i >= warm) rtt_half.push_back(clk.to_ns(static_cast<double>(clk.net(t0, tsc_end()))) / 2);
      }
      if (!reap_children()) throw std::runtime_error("cache-line reader failed");
      t.add(floor, summarize(oneway_ns(clk, ow, static_cast<std::size_t>(samples))));
      t.add("floor: round trip / 2", summarize(rtt_half));
    }
    // Readers poll updates() (the documented way) or, as a variant, the latch sequence that
    // latest() reads anyway: one cache line fewer to fetch after the change is seen.
    for (bool poll_latch : {false, true}) {
      unpin();
      ScratchInstance inst;
      mdshm::Bar bar = inst.prefill(0);
      Shared<LatencyShared> sh(sizeof(std::int64_t) * static_cast<std::size_t>(samples));
      std::int64_t* ow = sh.tail<std::int64_t>();
      const auto opt = inst.open_options();
      spawn([&] {
        pin_to_core(1);
        auto s = mdshm::Series::open("eth_ticks", opt);
        if (!s) return 2;
        const auto& h = s->header();
        std::uint64_t seen = poll_latch ? mdshm::load_field(h.latch_seq) : s->updates();
        sh->ready.store(1);
        mdshm::Bar b{};
        for (int i = 0; i < warm + samples; ++i) {
          std::uint64_t u;
          if (poll_latch) {
            // The latch moves twice per publish; the new bar is there from the second move on.
            const std::int64_t before = b.first_trade_id;
            do {
              while ((u = mdshm::load_field(h.latch_seq, std::memory_order_acquire)) == seen) {
              }
              seen = u;
              if (s->latest(b) != mdshm::Errc::ok) sh->failures.fetch_add(1);
            } while (b.first_trade_id == before);
          } else {
            while ((u = s->updates()) == seen) {
            }
            seen = u;
            if (s->latest(b) != mdshm::Errc::ok) sh->failures.fetch_add(1);
          }
          const auto now = static_cast<std::int64_t>(tsc_end());
          if (i >= warm) {
            ow[i - warm] = now - b.first_trade_id;
            if (ow[i - warm] < 0) sh->negative.fetch_add(1);
          }
          sh->ack.store(static_cast<std::uint64_t>(i + 1), std::memory_order_release);
        }
        return 0;
      });
      pin_to_core(0);
      if (!spin_until(clk, [&] { return sh->ready.load() != 0; })) throw std::runtime_error("spin reader did not start");
      auto& w = inst.writer(0);
      std::vector<double> rtt_half, cost;
      for (int i = 0; i < warm + samples; ++i) {
        clk.spin_ns(gap(rng));
        bar.close += 0.01;
        const std::uint64_t t0 = tsc_start();
        bar.first_trade_id = static_cast<std::int64_t>(t0);
        w.publish(bar);
        const std::uint64_t t1 = tsc_end();
        if (!spin_until(clk, [&] { return sh->ack.load(std::memory_order_acquire) == static_cast<std::uint64_t>(i + 1); }))
          throw std::runtime_error("spin reader stopped acknowledging");
        const std::uint64_t t2 = tsc_end();
        if (i >= warm) {
          rtt_half.push_back(clk.to_ns(static_cast<double>(clk.net(t0, t2))) / 2);
          cost.push_back(clk.to_ns(static_cast<double>(clk.net(t0, t1))));
        }
      }
      if (!reap_children()) throw std::runtime_error("spin reader failed");
      const std::string row = poll_latch ? variant : oneway;
      t.add(row, summarize(oneway_ns(clk, ow, static_cast<std::size_t>(samples))));
      t.note(row, "TSC-skew negatives", static_cast<double>(sh->negative.load()));
      t.note(row, "read failures", static_cast<double>(sh->failures.load()));
      if (poll_latch) continue;
      t.add("round trip / 2 (writer's TSC only: cross-check)", summarize(rtt_half));
      t.add("publish() call itself, on the writer", summarize(cost));
    }
  }
  t.print();
}

// ---- blocked reader vs raw futex ---------------------------------------------------------------------

inline void bench_futex_wake(const Clock& clk, int rounds, int samples) {
  Table t("publish -> blocked reader woken (futex), beside a raw futex ping-pong, same rounds");
  const std::string raw = "raw futex: FUTEX_WAKE -> other process running";
  const std::string mds = "mdshm: publish() -> Series::wait returns, bar in hand";
  const int warm = 200;
  std::mt19937 rng(7);
  std::uniform_real_distribution<double> gap(50'000, 100'000);  // long enough for the reader to be asleep
  for (int r = 0; r < rounds; ++r) {
    double raw_p50 = 0;  // this round's, for the ratio
    // -- raw ping-pong: child sleeps on ping, parent stamps and wakes it; child answers on pong.
    {
      unpin();
      Shared<LatencyShared> sh(sizeof(std::int64_t) * static_cast<std::size_t>(samples));
      std::int64_t* ow = sh.tail<std::int64_t>();
      spawn([&] {
        pin_to_core(1);
        sh->ready.store(1);
        for (int i = 0; i < warm + samples; ++i) {
          if (!await32(sh->ping, static_cast<std::uint32_t>(i))) return 3;
          const auto now = static_cast<std::int64_t>(tsc_end());
          if (i >= warm) ow[i - warm] = now - static_cast<std::int64_t>(sh->stamp.load());
          post32(sh->pong, static_cast<std::uint32_t>(i + 1));
        }
        return 0;
      });
      pin_to_core(0);
      spin_until(clk, [&] { return sh->ready.load() != 0; });
      std::vector<double> rtt_half;
      for (int i = 0; i < warm + samples; ++i) {
        clk.spin_ns(gap(rng));
        const std::uint64_t t0 = tsc_start();
        sh->stamp.store(t0);
        post32(sh->ping, static_cast<std::uint32_t>(i + 1));
        if (!await32(sh->pong, static_cast<std::uint32_t>(i))) throw std::runtime_error("futex ping-pong stalled");
        if (i >= warm) rtt_half.push_back(clk.to_ns(static_cast<double>(clk.net(t0, tsc_end()))) / 2);
      }
      if (!reap_children()) throw std::runtime_error("futex child failed");
      const auto rs = summarize(oneway_ns(clk, ow, static_cast<std::size_t>(samples)));
      raw_p50 = rs.p50;
      t.add(raw, rs);
      t.add("raw futex: round trip / 2", summarize(rtt_half));
    }
    // -- mdshm: the same, through publish() + wake_readers() (one FUTEX_WAKE) -> Series::wait.
    {
      unpin();
      ScratchInstance inst;  // its heartbeat thread floats over both cores, as in the daemon
      mdshm::Bar bar = inst.prefill(0);
      Shared<LatencyShared> sh(sizeof(std::int64_t) * static_cast<std::size_t>(samples));
      std::int64_t* ow = sh.tail<std::int64_t>();
      const auto opt = inst.open_options();
      spawn([&] {
        pin_to_core(1);
        auto s = mdshm::Series::open("eth_ticks", opt);
        if (!s) return 2;
        sh->ready.store(1);
        mdshm::Bar b;
        for (int i = 0; i < warm + samples; ++i) {
          if (s->wait(std::chrono::seconds(5)) != mdshm::WaitResult::updated) return 3;
          if (s->latest(b) != mdshm::Errc::ok) sh->failures.fetch_add(1);
          const auto now = static_cast<std::int64_t>(tsc_end());
          if (i >= warm) ow[i - warm] = now - b.first_trade_id;
          post32(sh->pong, static_cast<std::uint32_t>(i + 1));
        }
        return 0;
      });
      pin_to_core(0);
      spin_until(clk, [&] { return sh->ready.load() != 0; });
      auto& w = inst.writer(0);
      std::vector<double> rtt_half, cost, wake_cost;
      for (int i = 0; i < warm + samples; ++i) {
        clk.spin_ns(gap(rng));  // the reader answered the previous one; let it reach FUTEX_WAIT
        bar.close += 0.01;
        const std::uint64_t t0 = tsc_start();
        bar.first_trade_id = static_cast<std::int64_t>(t0);
        w.publish(bar);
        const std::uint64_t t1 = tsc_end();
        w.wake_readers();  // the end of the feed's batch
        const std::uint64_t t2 = tsc_end();
        if (!await32(sh->pong, static_cast<std::uint32_t>(i))) throw std::runtime_error("blocked reader stalled");
        if (i >= warm) {
          rtt_half.push_back(clk.to_ns(static_cast<double>(clk.net(t0, tsc_end()))) / 2);
          cost.push_back(clk.to_ns(static_cast<double>(clk.net(t0, t1))));
          wake_cost.push_back(clk.to_ns(static_cast<double>(clk.net(t1, t2))));
        }
      }
      if (!reap_children()) throw std::runtime_error("blocked reader failed");
      const auto m = summarize(oneway_ns(clk, ow, static_cast<std::size_t>(samples)));
      t.add(mds, m);
      t.note(mds, "x raw p50", m.p50 / raw_p50);
      t.add("mdshm: round trip / 2", summarize(rtt_half));
      t.add("mdshm: publish() call with 1 reader blocked", summarize(cost));
      t.add("mdshm: wake_readers() call (FUTEX_WAKE of 1 sleeper)", summarize(wake_cost));
    }
  }
  t.print();
}

}  // namespace bench
